// CImageCodec: a small C API over OpenCV 4 (core, imgcodecs, imgproc) for the extractor's image pipeline.
//
// Why a C API: Swift imports C cleanly, and keeping every OpenCV type behind this header means the
// Swift side never sees C++ (no C++ interop flags in dependent targets). Every function catches C++
// exceptions and returns an error code; none of them aborts on bad input.
//
// Pixel buffers are always tightly packed 8-bit RGB, row-major, HWC (3 bytes per pixel, no row padding).
#ifndef CIMAGECODEC_H
#define CIMAGECODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Result codes. CIC_OK is 0; everything else comes with a message in the caller's buffer.
enum {
    CIC_OK = 0,
    CIC_ERR_EMPTY = 1,              // zero bytes
    CIC_ERR_NOT_IMAGE = 2,          // content is not a known image format
    CIC_ERR_UNSUPPORTED = 3,        // a known image format the pipeline does not decode (GIF, TIFF, HEIC, ...)
    CIC_ERR_BAD_HEADER = 4,         // header present but malformed / cut short
    CIC_ERR_ZERO_DIMENSION = 5,     // header declares a width or height of 0
    CIC_ERR_TOO_LARGE = 6,          // width*height above the caller's pixel limit (checked before decoding)
    CIC_ERR_TRUNCATED = 7,          // JPEG without end-of-image marker after its scan data
    CIC_ERR_DECODE = 8,             // OpenCV could not decode the data
    CIC_ERR_INTERNAL = 9,           // allocation failure or unexpected OpenCV exception
    CIC_ERR_ARGUMENT = 10           // invalid argument (size <= 0, ...)
};

/// Container formats recognised from the first bytes.
enum {
    CIC_FORMAT_UNKNOWN = 0,
    CIC_FORMAT_JPEG = 1,
    CIC_FORMAT_PNG = 2,
    CIC_FORMAT_BMP = 3,
    CIC_FORMAT_WEBP = 4
};

/// What the header says, read without decoding any pixels.
typedef struct {
    int format;      // CIC_FORMAT_*
    int width;       // as stored (before EXIF orientation)
    int height;
    int has_alpha;   // 1 if the image may carry transparency (PNG colour types 4/6 or tRNS, WebP alpha)
} cic_header;

/// Reads the header of an encoded image. Returns CIC_OK or an error code with `msg` filled.
int cic_probe(const uint8_t *data, size_t len, cic_header *out, char *msg, size_t msg_len);

/// A decoded RGB image owned by the shim; release with cic_image_free.
typedef struct cic_image cic_image;

/// Decodes an encoded JPEG/PNG/BMP/WebP buffer into 8-bit RGB.
/// - refuses images whose header declares more than `max_pixels` pixels, before allocating;
/// - applies EXIF orientation (OpenCV IMREAD_COLOR does it) for images without alpha;
/// - images with alpha are decoded IMREAD_UNCHANGED and composited on black (out = c * a / 255, rounded);
/// - 16-bit samples are reduced to 8 bits by dropping the low byte (what libpng's strip_16 does);
/// - libjpeg/libpng messages are never printed: an error carries them in `msg`; a JPEG whose data ends
///   early (libjpeg would fill the rest with grey) is refused as CIC_ERR_TRUNCATED; other warnings of a
///   decoded image are returned in `msg` with CIC_OK (empty `msg`: none).
int cic_decode(const uint8_t *data, size_t len, int64_t max_pixels, cic_image **out, char *msg, size_t msg_len);

/// Plain 3-component JPEGs without EXIF decode through libjpeg straight to RGB (1, the default) or
/// through OpenCV like every other image (0). Both give the same pixels; for tests and benchmarks.
void cic_set_plain_jpeg_path(int enabled);

/// glibc: serve allocations up to 64 MB from the heap instead of mmap, and keep up to 256 MB of freed
/// heap, so per-image buffers are reused instead of page-faulted in afresh. No effect elsewhere.
void cic_keep_buffers_in_heap(void);

int cic_image_width(const cic_image *image);
int cic_image_height(const cic_image *image);
const uint8_t *cic_image_pixels(const cic_image *image);
void cic_image_free(cic_image *image);

/// OpenCV interpolation codes used by the resize functions below.
enum { CIC_INTER_LINEAR = 1, CIC_INTER_AREA = 3 };

/// Resizes `src` (sw x sh) to rw x rh with `interpolation`, then places it with its top-left corner at
/// (ox, oy) inside the zero-filled dw x dh `dst`. Offsets may be negative (the resized image is cropped)
/// or positive (it is padded). This one call implements pad, stretch and center-crop.
int cic_resize_place(const uint8_t *src, int sw, int sh, int rw, int rh, int ox, int oy,
                     uint8_t *dst, int dw, int dh, int interpolation);

/// One bilinear affine warp: dst(x, y) = contrast(src)(inverse * (x, y, 1)) * coverage(x, y).
/// `inverse` is the 2x3 destination->source matrix in pixel-index coordinates (OpenCV WARP_INVERSE_MAP).
/// `window` = {x0, y0, x1, y1} is the part of the source that is the image content (the crop window), in
/// continuous source coordinates (pixel i covers [i, i+1)). Sampling replicates the source edge (like
/// cv::resize does), and each output pixel is scaled by how much of it lies inside the window, measured in
/// output pixels: 1 inside, 0 outside (black padding), anti-aliased across the edge. At an identity
/// geometry this reproduces cv::resize + pad exactly, without the dark fringe BORDER_CONSTANT leaves.
/// Contrast is applied to the source first as saturate(alpha * v + beta), skipped when alpha == 1 and
/// beta == 0.
int cic_warp_affine(const uint8_t *src, int sw, int sh, const double inverse[6], const double window[4],
                    double alpha, double beta, uint8_t *dst, int dw, int dh);

/// Mean luminance (0.299 R + 0.587 G + 0.114 B) of an RGB buffer, in 0...255.
double cic_gray_mean(const uint8_t *src, int w, int h);

/// Encodes RGB as PNG. On success *out is a malloc'd buffer the caller releases with cic_free.
int cic_encode_png(const uint8_t *src, int w, int h, uint8_t **out, size_t *out_len, char *msg, size_t msg_len);
/// Encodes RGB as baseline JPEG with `quality` 0...100 (OpenCV IMWRITE_JPEG_QUALITY); released like PNG.
int cic_encode_jpeg(const uint8_t *src, int w, int h, int quality, uint8_t **out, size_t *out_len, char *msg, size_t msg_len);
void cic_free(void *pointer);

/// Sets OpenCV's internal thread count (0 = run its functions on the calling thread). The pipeline
/// parallelises across images itself, so it sets this to 0 to avoid oversubscribing the cores.
void cic_set_opencv_threads(int threads);

/// OpenCV version string, e.g. "4.6.0".
const char *cic_opencv_version(void);

#ifdef __cplusplus
}
#endif

#endif
