// A direct libjpeg(-turbo) path for plain JPEGs, decoding straight to RGB.
//
// Why: Debian's OpenCV asks libjpeg for RGB, swaps it to BGR with a scalar byte loop, and we swap it
// back with cvtColor: on 150x150 scenes6 JPEGs those two copies were about a quarter of the image
// pipeline's CPU time (perf, `extract bench --pipeline`). OpenCV uses libjpeg with its defaults
// (islow DCT, fancy upsampling), so decoding here with the same defaults gives the same pixels;
// ImagingTests checks that on every scenes6 file and the fixtures.
//
// Only the simple case takes this path: 3-component (YCbCr or RGB) JPEGs with no EXIF block (so
// no orientation to apply) and no Adobe marker, decoded without a single libjpeg warning. Anything
// else (EXIF, CMYK, grayscale, corrupt data) returns false and goes through OpenCV as before.
#include "internal.hpp"

#include <opencv2/core.hpp>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>

namespace {

struct ErrorManager {
    jpeg_error_mgr base;
    std::jmp_buf jump;
};

extern "C" void onError(j_common_ptr cinfo) {
    (*cinfo->err->output_message)(cinfo);   // captured, not printed (codec_messages.cpp)
    auto *e = reinterpret_cast<ErrorManager *>(cinfo->err);
    std::longjmp(e->jump, 1);
}

extern "C" void onMessage(j_common_ptr cinfo, int level) {
    // level < 0: a warning (corrupt data libjpeg recovered from). Keep the first one's text, as
    // libjpeg's own handler does; tracing messages (level >= 0) are dropped.
    if (level < 0) {
        if (cinfo->err->num_warnings == 0) (*cinfo->err->output_message)(cinfo);
        cinfo->err->num_warnings++;
    }
}

/// True when the marker segments before the first SOS hold no APP1 "Exif" and no APP14 "Adobe".
bool plainMarkers(const uint8_t *data, size_t len) {
    if (len < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
    size_t i = 2;
    while (i + 4 <= len) {
        if (data[i] != 0xFF) return false;
        const uint8_t marker = data[i + 1];
        if (marker == 0xFF) { ++i; continue; }           // fill byte
        if (marker == 0xDA) return true;                  // start of scan: header done
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { i += 2; continue; }
        const size_t segment = (size_t(data[i + 2]) << 8) | data[i + 3];
        if (segment < 2 || i + 2 + segment > len) return false;
        const uint8_t *payload = data + i + 4;
        const size_t n = segment - 2;
        if (marker == 0xE1 && n >= 4 && std::memcmp(payload, "Exif", 4) == 0) return false;
        if (marker == 0xEE && n >= 5 && std::memcmp(payload, "Adobe", 5) == 0) return false;
        i += 2 + segment;
    }
    return false;
}

}  // namespace

namespace cic {

bool decodePlainJPEG(const uint8_t *data, size_t len, cv::Mat &rgb) {
    if (!plainMarkers(data, len)) return false;
    jpeg_decompress_struct cinfo;
    ErrorManager err;
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = onError;
    err.base.emit_message = onMessage;
    // Everything below that can longjmp only touches `cinfo` and `rgb` (no C++ objects with
    // destructors are created between setjmp and the jump).
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        rgb.release();
        return false;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK || cinfo.num_components != 3 ||
        (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_RGB)) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    rgb.create(int(cinfo.output_height), int(cinfo.output_width), CV_8UC3);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb.ptr<uint8_t>(int(cinfo.output_scanline));
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
    }
    const bool whole = cinfo.output_scanline == cinfo.output_height;
    if (whole) jpeg_finish_decompress(&cinfo);
    const bool clean = whole && err.base.num_warnings == 0;
    jpeg_destroy_decompress(&cinfo);
    if (!clean) rgb.release();
    return clean;
}

}  // namespace cic
