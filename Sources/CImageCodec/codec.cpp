// Decoding, resizing, warping and encoding over OpenCV, exposed through the C API in CImageCodec.h.
#include "internal.hpp"

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <dlfcn.h>
#include <malloc.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <exception>
#include <vector>

struct cic_image {
    cv::Mat rgb;   // CV_8UC3, continuous
};

static void setMessage(char *buffer, size_t length, const std::string &text) {
    if (buffer == nullptr || length == 0) return;
    std::strncpy(buffer, text.c_str(), length - 1);
    buffer[length - 1] = 0;
}

/// OpenCV's image codecs (libopencv_imgcodecs), opened on first use rather than linked: loading them
/// at start brought in 83 more libraries (GDAL, Poppler, ...; `ldd extract`: 159 against 76) whose
/// symbol binding every `extract` and `train-head` process paid, twice with the OpenMP re-exec: `perf
/// record extract --help` put 60% of its time in the dynamic loader's symbol lookup, and `/usr/bin/time
/// extract --help` took 0.15 s linked, 0.04-0.11 s without (3 runs each). Plain JPEGs never need them.
/// The executable exports the libjpeg/libpng message hooks (Package.swift) so they still apply.
namespace cic {
struct Imgcodecs {
    cv::Mat (*imdecode)(const cv::_InputArray &, int) = nullptr;
    bool (*imencode)(const cv::String &, const cv::_InputArray &, std::vector<uchar> &, const std::vector<int> &) = nullptr;
    std::string error;
};

static const Imgcodecs &imgcodecs() {
    static const Imgcodecs lib = [] {
        Imgcodecs l;
        char soname[64];
        std::snprintf(soname, sizeof soname, "libopencv_imgcodecs.so.%d%02d", CV_VERSION_MAJOR, CV_VERSION_MINOR);
        void *h = dlopen(soname, RTLD_NOW | RTLD_GLOBAL);
        if (!h) h = dlopen("libopencv_imgcodecs.so", RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
            const char *e = dlerror();
            char package[64];
            std::snprintf(package, sizeof package, "libopencv-imgcodecs%d%02d", CV_VERSION_MAJOR, CV_VERSION_MINOR);
            l.error = std::string("OpenCV's image codecs could not be loaded (") + (e ? e : soname)
                + "); install them: apt-get install " + package;
            return l;
        }
        l.imdecode = reinterpret_cast<decltype(l.imdecode)>(dlsym(h, "_ZN2cv8imdecodeERKNS_11_InputArrayEi"));
        l.imencode = reinterpret_cast<decltype(l.imencode)>(
            dlsym(h, "_ZN2cv8imencodeERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERKNS_11_InputArrayERSt6vectorIhSaIhEERKSB_IiSaIiEE"));
        if (!l.imdecode || !l.imencode) l.error = std::string(soname) + " lacks cv::imdecode or cv::imencode (another OpenCV version?)";
        return l;
    }();
    return lib;
}
}   // namespace cic

/// Reduces 16-bit samples to 8 bits by keeping the high byte, like libpng's png_set_strip_16
/// (which is what OpenCV's IMREAD_COLOR path does), so both decode paths agree.
static cv::Mat to8Bit(const cv::Mat &m) {
    if (m.depth() == CV_8U) return m;
    if (m.depth() == CV_16U) {
        cv::Mat out(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
        for (int y = 0; y < m.rows; ++y) {
            const uint16_t *s = m.ptr<uint16_t>(y);
            uint8_t *d = out.ptr<uint8_t>(y);
            for (int i = 0, e = m.cols * m.channels(); i < e; ++i) d[i] = uint8_t(s[i] >> 8);
        }
        return out;
    }
    cv::Mat out;
    m.convertTo(out, CV_MAKETYPE(CV_8U, m.channels()), m.depth() == CV_32F || m.depth() == CV_64F ? 255.0 : 1.0);
    return out;
}

/// Composites BGRA (or gray+alpha) on black into RGB: out = (c * a + 127) / 255, integer rounding.
static cv::Mat compositeOnBlack(const cv::Mat &m) {
    cv::Mat out(m.rows, m.cols, CV_8UC3);
    const int ch = m.channels();
    for (int y = 0; y < m.rows; ++y) {
        const uint8_t *s = m.ptr<uint8_t>(y);
        uint8_t *d = out.ptr<uint8_t>(y);
        for (int x = 0; x < m.cols; ++x, s += ch, d += 3) {
            const unsigned a = s[ch - 1];
            if (ch == 2) {
                const uint8_t g = uint8_t((s[0] * a + 127) / 255);
                d[0] = d[1] = d[2] = g;
            } else {
                d[0] = uint8_t((s[2] * a + 127) / 255);   // BGRA -> RGB
                d[1] = uint8_t((s[1] * a + 127) / 255);
                d[2] = uint8_t((s[0] * a + 127) / 255);
            }
        }
    }
    return out;
}

bool cic::plainJPEGEnabled = true;

extern "C" void cic_keep_buffers_in_heap(void) {
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

extern "C" void cic_set_plain_jpeg_path(int enabled) { cic::plainJPEGEnabled = enabled != 0; }

extern "C" int cic_probe(const uint8_t *data, size_t len, cic_header *out, char *msg, size_t msg_len) {
    try {
        cic::Header h;
        std::string text;
        int rc = cic::probe(data, len, h, text);
        if (out) *out = h;
        if (rc != CIC_OK) setMessage(msg, msg_len, text);
        return rc;
    } catch (...) {
        setMessage(msg, msg_len, "unexpected error while reading the header");
        return CIC_ERR_INTERNAL;
    }
}

extern "C" int cic_decode(const uint8_t *data, size_t len, int64_t max_pixels, cic_image **out, char *msg,
                          size_t msg_len) {
    if (out == nullptr) return CIC_ERR_ARGUMENT;
    *out = nullptr;
    cic::CodecMessageScope capture;
    // The reason for a failure, with what the codec library said about it.
    auto failWith = [&](int code, std::string text) {
        const std::string said = cic::takeCodecMessages();
        setMessage(msg, msg_len, said.empty() ? text : text + " (" + said + ")");
        return code;
    };
    try {
        cic::Header h;
        std::string text;
        int rc = cic::probe(data, len, h, text);
        if (rc != CIC_OK) { setMessage(msg, msg_len, text); return rc; }
        const char *name = cic::formatName(h.format);
        const int64_t pixels = int64_t(h.width) * int64_t(h.height);
        if (pixels > max_pixels) {
            setMessage(msg, msg_len, std::string(name) + " header declares " + std::to_string(h.width) + "x" +
                                         std::to_string(h.height) + " = " + std::to_string(pixels) +
                                         " pixels, above the limit of " + std::to_string(max_pixels) +
                                         " (refused before decoding; raise maxPixels if the image is genuine)");
            return CIC_ERR_TOO_LARGE;
        }
        if (!h.complete) {
            setMessage(msg, msg_len, "JPEG is truncated (no end-of-image marker after the image data)");
            return CIC_ERR_TRUNCATED;
        }
        // Images without alpha: IMREAD_COLOR, which also applies EXIF orientation and converts gray, CMYK,
        // palette and 16-bit to 8-bit BGR. Images with alpha: IMREAD_UNCHANGED keeps the alpha channel
        // (OpenCV ignores EXIF orientation in that mode) and we composite on black ourselves.
        if (h.format == CIC_FORMAT_JPEG && cic::plainJPEGEnabled) {
            auto image = new cic_image();
            if (cic::decodePlainJPEG(data, len, image->rgb)) {
                *out = image;
                return CIC_OK;
            }
            delete image;
            cic::clearCodecMessages();   // OpenCV's decode below says it again if it still applies
        }
        const bool keepAlpha = h.has_alpha && (h.format == CIC_FORMAT_PNG || h.format == CIC_FORMAT_WEBP);
        const cv::Mat encoded(1, int(len), CV_8U, const_cast<uint8_t *>(data));
        const cic::Imgcodecs &codecs = cic::imgcodecs();
        if (!codecs.imdecode) return failWith(CIC_ERR_INTERNAL, codecs.error);
        cv::Mat decoded = codecs.imdecode(encoded, keepAlpha ? cv::IMREAD_UNCHANGED : cv::IMREAD_COLOR);
        if (decoded.empty())
            return failWith(CIC_ERR_DECODE, std::string("OpenCV could not decode the ") + name + " data (corrupt or truncated file)");
        const std::string warnings = cic::takeCodecMessages();
        if (warnings.find("remature end") != std::string::npos) {   // libjpeg: "Premature end of JPEG file", "... premature end of data segment"
            setMessage(msg, msg_len, "JPEG data ends early; the missing part would be decoded as grey (" + warnings + ")");
            return CIC_ERR_TRUNCATED;
        }
        setMessage(msg, msg_len, warnings);
        cv::Mat m = to8Bit(decoded);
        auto image = new cic_image();
        switch (m.channels()) {
        case 1: cv::cvtColor(m, image->rgb, cv::COLOR_GRAY2RGB); break;
        case 3: cv::cvtColor(m, image->rgb, cv::COLOR_BGR2RGB); break;
        case 2:
        case 4: image->rgb = compositeOnBlack(m); break;
        default:
            delete image;
            setMessage(msg, msg_len, std::string(name) + " decoded to an unexpected channel count");
            return CIC_ERR_DECODE;
        }
        if (!image->rgb.isContinuous()) image->rgb = image->rgb.clone();
        *out = image;
        return CIC_OK;
    } catch (const std::bad_alloc &) {
        return failWith(CIC_ERR_INTERNAL, "out of memory while decoding");
    } catch (const cv::Exception &e) {
        return failWith(CIC_ERR_DECODE, std::string("OpenCV could not decode the image: ") + e.msg);
    } catch (...) {
        return failWith(CIC_ERR_INTERNAL, "unexpected error while decoding");
    }
}

extern "C" int cic_image_width(const cic_image *image) { return image ? image->rgb.cols : 0; }
extern "C" int cic_image_height(const cic_image *image) { return image ? image->rgb.rows : 0; }
extern "C" const uint8_t *cic_image_pixels(const cic_image *image) { return image ? image->rgb.data : nullptr; }
extern "C" void cic_image_free(cic_image *image) { delete image; }

extern "C" int cic_resize_place(const uint8_t *src, int sw, int sh, int rw, int rh, int ox, int oy, uint8_t *dst,
                                int dw, int dh, int interpolation) {
    if (!src || !dst || sw <= 0 || sh <= 0 || rw <= 0 || rh <= 0 || dw <= 0 || dh <= 0) return CIC_ERR_ARGUMENT;
    try {
        const cv::Mat s(sh, sw, CV_8UC3, const_cast<uint8_t *>(src));
        cv::Mat d(dh, dw, CV_8UC3, dst);
        const int interp = interpolation == CIC_INTER_AREA ? cv::INTER_AREA : cv::INTER_LINEAR;
        const cv::Rect placed(ox, oy, rw, rh);
        const cv::Rect visible = placed & cv::Rect(0, 0, dw, dh);
        if (visible != placed || rw != dw || rh != dh) std::memset(dst, 0, size_t(dw) * size_t(dh) * 3);
        if (visible.area() == 0) return CIC_OK;
        if (visible == placed) {
            cv::Mat roi = d(placed);                 // resize writes straight into the padded frame
            cv::resize(s, roi, cv::Size(rw, rh), 0, 0, interp);
        } else {
            cv::Mat resized;
            cv::resize(s, resized, cv::Size(rw, rh), 0, 0, interp);
            resized(cv::Rect(visible.x - ox, visible.y - oy, visible.width, visible.height)).copyTo(d(visible));
        }
        return CIC_OK;
    } catch (...) {
        return CIC_ERR_INTERNAL;
    }
}

static inline double clamp01(double v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

/// A span [lo, hi] of x values (as reals) on one output row, narrowed by linear constraints.
struct Span {
    double lo, hi;
    static Span all(int width) { return Span{0.0, double(width - 1)}; }
    /// Keeps the x with lower <= a * x + b <= upper.
    void restrict(double a, double b, double lower, double upper) {
        if (std::fabs(a) < 1e-12) {
            if (b < lower || b > upper) { lo = 1; hi = 0; }
            return;
        }
        double p = (lower - b) / a, q = (upper - b) / a;
        if (p > q) std::swap(p, q);
        lo = std::max(lo, p);
        hi = std::min(hi, q);
    }
};

extern "C" int cic_warp_affine(const uint8_t *src, int sw, int sh, const double inverse[6], const double window[4],
                               double alpha, double beta, uint8_t *dst, int dw, int dh) {
    if (!src || !dst || !inverse || !window || sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0) return CIC_ERR_ARGUMENT;
    try {
        cv::Mat s(sh, sw, CV_8UC3, const_cast<uint8_t *>(src));
        cv::Mat adjusted;
        if (alpha != 1.0 || beta != 0.0) {
            s.convertTo(adjusted, CV_8UC3, alpha, beta);   // saturate_cast rounds to nearest
            s = adjusted;
        }
        cv::Mat d(dh, dw, CV_8UC3, dst);
        const cv::Mat m(2, 3, CV_64F, const_cast<double *>(inverse));
        cv::warpAffine(s, d, m, cv::Size(dw, dh), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_REPLICATE);

        // Coverage of each output pixel by the content window, in output-pixel units along each source
        // axis: (distance to the edge) / |gradient of the source coordinate| + 0.5, clamped to [0, 1].
        // Per row, u and v are linear in x, so the fully covered span (left as is) and the span with any
        // coverage are solved for directly; only the anti-aliased edge pixels are computed one by one.
        const double *iv = inverse;
        const double gx = std::hypot(iv[0], iv[1]), gy = std::hypot(iv[3], iv[4]);
        const double rgx = 1.0 / gx, rgy = 1.0 / gy;
        const double x0 = window[0], y0 = window[1], x1 = window[2], y1 = window[3];
        for (int y = 0; y < dh; ++y) {
            uint8_t *row = dst + size_t(y) * size_t(dw) * 3;
            const double bu = iv[1] * y + iv[2] + 0.5, bv = iv[4] * y + iv[5] + 0.5;   // u = iv[0] x + bu
            Span full = Span::all(dw), any = Span::all(dw);
            full.restrict(iv[0], bu, x0 + 0.5 * gx, x1 - 0.5 * gx);
            full.restrict(iv[3], bv, y0 + 0.5 * gy, y1 - 0.5 * gy);
            any.restrict(iv[0], bu, x0 - 0.5 * gx, x1 + 0.5 * gx);
            any.restrict(iv[3], bv, y0 - 0.5 * gy, y1 + 0.5 * gy);
            const int anyLo = std::max(0, int(std::floor(any.lo)) - 1), anyHi = std::min(dw - 1, int(std::ceil(any.hi)) + 1);
            const int fullLo = int(std::ceil(full.lo)) + 1, fullHi = int(std::floor(full.hi)) - 1;
            if (anyLo > anyHi) { std::memset(row, 0, size_t(dw) * 3); continue; }
            if (anyLo > 0) std::memset(row, 0, size_t(anyLo) * 3);
            if (anyHi < dw - 1) std::memset(row + 3 * (anyHi + 1), 0, size_t(dw - 1 - anyHi) * 3);
            for (int x = anyLo; x <= anyHi; ++x) {
                if (x >= fullLo && x <= fullHi) { x = fullHi; continue; }
                const double u = iv[0] * x + bu, v = iv[3] * x + bv;   // continuous source coordinates
                const double c = clamp01((u - x0) * rgx + 0.5) * clamp01((x1 - u) * rgx + 0.5) *
                                 clamp01((v - y0) * rgy + 0.5) * clamp01((y1 - v) * rgy + 0.5);
                if (c >= 1.0) continue;
                uint8_t *p = row + 3 * x;
                if (c <= 0.0) { p[0] = p[1] = p[2] = 0; continue; }
                p[0] = uint8_t(p[0] * c + 0.5);
                p[1] = uint8_t(p[1] * c + 0.5);
                p[2] = uint8_t(p[2] * c + 0.5);
            }
        }
        return CIC_OK;
    } catch (...) {
        return CIC_ERR_INTERNAL;
    }
}

extern "C" double cic_gray_mean(const uint8_t *src, int w, int h) {
    if (!src || w <= 0 || h <= 0) return 0;
    double r = 0, g = 0, b = 0;
    for (int y = 0; y < h; ++y) {
        const uint8_t *p = src + size_t(y) * size_t(w) * 3;
        uint64_t sr = 0, sg = 0, sb = 0;
        for (int x = 0; x < w; ++x, p += 3) { sr += p[0]; sg += p[1]; sb += p[2]; }
        r += double(sr); g += double(sg); b += double(sb);
    }
    const double n = double(w) * double(h);
    return (0.299 * r + 0.587 * g + 0.114 * b) / n;
}

/// Encodes RGB through cv::imencode with `ext` (".png", ".jpg") and its parameters.
static int encodeRGB(const char *ext, const char *name, const std::vector<int> &params, const uint8_t *src, int w, int h,
                     uint8_t **out, size_t *out_len, char *msg, size_t msg_len) {
    if (!src || !out || !out_len || w <= 0 || h <= 0) return CIC_ERR_ARGUMENT;
    *out = nullptr;
    *out_len = 0;
    try {
        const cv::Mat s(h, w, CV_8UC3, const_cast<uint8_t *>(src));
        cv::Mat bgr;
        cv::cvtColor(s, bgr, cv::COLOR_RGB2BGR);
        std::vector<uint8_t> buffer;
        const cic::Imgcodecs &codecs = cic::imgcodecs();
        if (!codecs.imencode) {
            setMessage(msg, msg_len, codecs.error);
            return CIC_ERR_INTERNAL;
        }
        if (!codecs.imencode(ext, bgr, buffer, params)) {
            setMessage(msg, msg_len, std::string("OpenCV could not encode ") + name);
            return CIC_ERR_INTERNAL;
        }
        auto *copy = static_cast<uint8_t *>(std::malloc(buffer.size()));
        if (!copy) return CIC_ERR_INTERNAL;
        std::memcpy(copy, buffer.data(), buffer.size());
        *out = copy;
        *out_len = buffer.size();
        return CIC_OK;
    } catch (const cv::Exception &e) {
        setMessage(msg, msg_len, std::string("OpenCV could not encode ") + name + ": " + e.msg);
        return CIC_ERR_INTERNAL;
    } catch (...) {
        setMessage(msg, msg_len, std::string("unexpected error while encoding ") + name);
        return CIC_ERR_INTERNAL;
    }
}

extern "C" int cic_encode_png(const uint8_t *src, int w, int h, uint8_t **out, size_t *out_len, char *msg,
                              size_t msg_len) {
    return encodeRGB(".png", "PNG", {}, src, w, h, out, out_len, msg, msg_len);
}

extern "C" int cic_encode_jpeg(const uint8_t *src, int w, int h, int quality, uint8_t **out, size_t *out_len, char *msg,
                               size_t msg_len) {
    if (quality < 0 || quality > 100) return CIC_ERR_ARGUMENT;
    return encodeRGB(".jpg", "JPEG", {cv::IMWRITE_JPEG_QUALITY, quality}, src, w, h, out, out_len, msg, msg_len);
}

extern "C" void cic_free(void *pointer) { std::free(pointer); }

extern "C" void cic_set_opencv_threads(int threads) {
    try { cv::setNumThreads(threads); } catch (...) {}
}

extern "C" const char *cic_opencv_version(void) { return CV_VERSION; }
