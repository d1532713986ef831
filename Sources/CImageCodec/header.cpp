// Reads image headers (size, alpha, completeness) straight from the bytes, without OpenCV.
//
// Why our own parser: OpenCV 4.6 has no public "read header only" call (cv::ImageCollection came later),
// and its only size guard is the process-wide OPENCV_IO_MAX_IMAGE_PIXELS variable read once at start-up.
// The pipeline wants a per-call pixel limit checked BEFORE any pixel buffer is allocated, a clear message
// per failure, and detection of truncated JPEGs (libjpeg only warns and fills the rest with grey).
#include "internal.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>

namespace cic {

static uint32_t be16(const uint8_t *p) { return (uint32_t(p[0]) << 8) | p[1]; }
static uint32_t be32(const uint8_t *p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
static uint32_t le16(const uint8_t *p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
static uint32_t le24(const uint8_t *p) { return le16(p) | (uint32_t(p[2]) << 16); }
static uint32_t le32(const uint8_t *p) { return le24(p) | (uint32_t(p[3]) << 24); }

static int fail(std::string &msg, int code, const std::string &text) {
    msg = text;
    return code;
}

/// JPEG: walk the marker segments to the first SOFn (size) and the first SOS (start of scan data), then
/// require an EOI marker after the scan data. Inside entropy-coded data 0xFF is always followed by 0x00
/// or a restart marker, so FF D9 after SOS can only be the real end-of-image marker.
static int probeJPEG(const uint8_t *d, size_t n, Header &h, std::string &msg) {
    h.format = CIC_FORMAT_JPEG;
    size_t i = 2, sos = 0;
    bool haveFrame = false;
    while (i + 1 < n) {
        if (d[i] != 0xFF) { ++i; continue; }           // stray bytes between segments: libjpeg skips them
        uint8_t m = d[i + 1];
        if (m == 0xFF) { ++i; continue; }              // fill byte
        i += 2;
        if (m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue;   // markers without a length
        if (m == 0xD9) break;                          // EOI before any scan
        if (i + 2 > n) break;
        size_t length = be16(d + i);
        if (length < 2) return fail(msg, CIC_ERR_BAD_HEADER, "JPEG marker segment has an invalid length");
        bool isFrame = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (isFrame && !haveFrame) {
            if (i + 8 > n) break;
            h.height = int(be16(d + i + 3));
            h.width = int(be16(d + i + 5));
            haveFrame = true;
        }
        if (m == 0xDA) { sos = i; break; }
        i += length;
    }
    if (!haveFrame) {
        if (i + 1 >= n) return fail(msg, CIC_ERR_BAD_HEADER, "JPEG header is cut short (no frame header before end of file)");
        return fail(msg, CIC_ERR_BAD_HEADER, "JPEG has no frame header (SOF marker)");
    }
    h.has_alpha = 0;
    h.complete = false;
    if (sos != 0) {
        for (size_t j = n - 2; j > sos; --j) {
            if (d[j] == 0xFF && d[j + 1] == 0xD9) { h.complete = true; break; }
        }
    }
    return CIC_OK;
}

/// PNG: IHDR gives size, bit depth and colour type; a tRNS chunk before the first IDAT adds alpha.
static int probePNG(const uint8_t *d, size_t n, Header &h, std::string &msg) {
    h.format = CIC_FORMAT_PNG;
    if (n < 33 || std::memcmp(d + 12, "IHDR", 4) != 0)
        return fail(msg, CIC_ERR_BAD_HEADER, "PNG header is cut short or has no IHDR chunk");
    uint32_t w = be32(d + 16), hh = be32(d + 20);
    if (w > 0x7FFFFFFF || hh > 0x7FFFFFFF) return fail(msg, CIC_ERR_BAD_HEADER, "PNG header declares an invalid size");
    h.width = int(w);
    h.height = int(hh);
    uint8_t colorType = d[25];
    h.has_alpha = (colorType == 4 || colorType == 6) ? 1 : 0;
    size_t pos = 8;
    while (pos + 8 <= n) {
        uint32_t length = be32(d + pos);
        const uint8_t *type = d + pos + 4;
        if (std::memcmp(type, "IDAT", 4) == 0 || std::memcmp(type, "IEND", 4) == 0) break;
        if (std::memcmp(type, "tRNS", 4) == 0) { h.has_alpha = 1; break; }
        if (length > n) break;
        pos += 12 + size_t(length);
    }
    h.complete = true;   // libpng itself reports missing data as an error, so OpenCV fails cleanly
    return CIC_OK;
}

/// BMP: BITMAPCOREHEADER (12 bytes, 16-bit sizes) or BITMAPINFOHEADER and later (32-bit, height may be
/// negative for top-down bitmaps). Alpha in 32-bit BMPs is ignored: many writers leave it zero.
static int probeBMP(const uint8_t *d, size_t n, Header &h, std::string &msg) {
    h.format = CIC_FORMAT_BMP;
    if (n < 26) return fail(msg, CIC_ERR_BAD_HEADER, "BMP header is cut short");
    uint32_t dib = le32(d + 14);
    if (dib == 12) {
        h.width = int(le16(d + 18));
        h.height = int(le16(d + 20));
    } else if (dib >= 16 && dib <= 1024) {
        int32_t w = int32_t(le32(d + 18)), hh = int32_t(le32(d + 22));
        if (w < 0 || hh == INT32_MIN) return fail(msg, CIC_ERR_BAD_HEADER, "BMP header declares an invalid size");
        h.width = w;
        h.height = hh < 0 ? -hh : hh;
    } else {
        return fail(msg, CIC_ERR_BAD_HEADER, "BMP header has an unknown info-header size");
    }
    h.has_alpha = 0;
    h.complete = true;
    return CIC_OK;
}

/// WebP: RIFF container with a VP8 (lossy), VP8L (lossless) or VP8X (extended) first chunk.
static int probeWebP(const uint8_t *d, size_t n, Header &h, std::string &msg) {
    h.format = CIC_FORMAT_WEBP;
    if (n < 30) return fail(msg, CIC_ERR_BAD_HEADER, "WebP header is cut short");
    h.complete = true;
    if (std::memcmp(d + 12, "VP8 ", 4) == 0) {
        if (d[23] != 0x9D || d[24] != 0x01 || d[25] != 0x2A)
            return fail(msg, CIC_ERR_BAD_HEADER, "WebP (VP8) frame header is invalid");
        h.width = int(le16(d + 26) & 0x3FFF);
        h.height = int(le16(d + 28) & 0x3FFF);
        h.has_alpha = 0;
    } else if (std::memcmp(d + 12, "VP8L", 4) == 0) {
        if (d[20] != 0x2F) return fail(msg, CIC_ERR_BAD_HEADER, "WebP (VP8L) header is invalid");
        uint32_t bits = le32(d + 21);
        h.width = int((bits & 0x3FFF) + 1);
        h.height = int(((bits >> 14) & 0x3FFF) + 1);
        h.has_alpha = int((bits >> 28) & 1);
    } else if (std::memcmp(d + 12, "VP8X", 4) == 0) {
        uint8_t flags = d[20];
        if (flags & 0x02) return fail(msg, CIC_ERR_UNSUPPORTED, "animated WebP is not supported");
        h.width = int(le24(d + 24) + 1);
        h.height = int(le24(d + 27) + 1);
        h.has_alpha = (flags & 0x10) ? 1 : 0;
    } else {
        return fail(msg, CIC_ERR_BAD_HEADER, "WebP file has an unknown first chunk");
    }
    return CIC_OK;
}

/// Names formats we recognise but do not decode, so the message says what the file actually is.
static const char *unsupportedName(const uint8_t *d, size_t n) {
    auto starts = [&](const char *s, size_t at = 0) {
        size_t k = std::strlen(s);
        return n >= at + k && std::memcmp(d + at, s, k) == 0;
    };
    if (starts("GIF87a") || starts("GIF89a")) return "GIF";
    if (starts("II*\0", 0) && n >= 4 && d[2] == 0x2A && d[3] == 0) return "TIFF";
    if (n >= 4 && d[0] == 'M' && d[1] == 'M' && d[2] == 0 && d[3] == 0x2A) return "TIFF";
    if (starts("ftypheic", 4) || starts("ftypheix", 4) || starts("ftypmif1", 4) || starts("ftypmsf1", 4)) return "HEIC/HEIF";
    if (starts("ftypavif", 4)) return "AVIF";
    if (n >= 12 && d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0x0C && d[4] == 'j' && d[5] == 'P') return "JPEG 2000";
    if (n >= 4 && d[0] == 0xFF && d[1] == 0x4F && d[2] == 0xFF && d[3] == 0x51) return "JPEG 2000 codestream";
    if (starts("8BPS")) return "Photoshop (PSD)";
    if (n >= 4 && d[0] == 0 && d[1] == 0 && d[2] == 1 && d[3] == 0) return "Windows icon (ICO)";
    if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') return "Netpbm (PBM/PGM/PPM)";
    if (starts("%PDF")) return "PDF";
    if (starts("qoif")) return "QOI";
    if (starts("\x76\x2f\x31\x01")) return "OpenEXR";
    if (starts("#?RADIANCE") || starts("#?RGBE")) return "Radiance HDR";
    return nullptr;
}

static int probeFormat(const uint8_t *d, size_t n, Header &h, std::string &msg);

/// Every format's size fields go through one check, so a header that declares a zero or negative
/// dimension is refused here, for that file only, whoever asked (decoding or the identify pass).
int probe(const uint8_t *d, size_t n, Header &h, std::string &msg) {
    int rc = probeFormat(d, n, h, msg);
    if (rc == CIC_OK && (h.width <= 0 || h.height <= 0)) {
        return fail(msg, CIC_ERR_ZERO_DIMENSION, std::string(formatName(h.format)) + " header declares a size of " +
                    std::to_string(h.width) + "x" + std::to_string(h.height) + " pixels (a dimension is 0 or negative)");
    }
    return rc;
}

static int probeFormat(const uint8_t *d, size_t n, Header &h, std::string &msg) {
    h = Header();
    if (n == 0 || d == nullptr) return fail(msg, CIC_ERR_EMPTY, "file is empty (0 bytes)");
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return probeJPEG(d, n, h, msg);
    if (n >= 8 && std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return probePNG(d, n, h, msg);
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return probeBMP(d, n, h, msg);
    if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return probeWebP(d, n, h, msg);
    if (const char *name = unsupportedName(d, n))
        return fail(msg, CIC_ERR_UNSUPPORTED, std::string(name) + " images are not supported (use JPEG, PNG, BMP or WebP)");
    // Say whether it looks like text: the common case is a note or HTML page saved with an image name.
    size_t look = n < 64 ? n : 64, printable = 0;
    for (size_t i = 0; i < look; ++i)
        if (std::isprint(d[i]) || d[i] == '\n' || d[i] == '\r' || d[i] == '\t') ++printable;
    if (printable == look) return fail(msg, CIC_ERR_NOT_IMAGE, "content is text, not an image");
    char hex[64];
    std::snprintf(hex, sizeof hex, "%02X %02X %02X %02X", d[0], n > 1 ? d[1] : 0, n > 2 ? d[2] : 0, n > 3 ? d[3] : 0);
    return fail(msg, CIC_ERR_NOT_IMAGE, std::string("content is not a JPEG, PNG, BMP or WebP image (starts with ") + hex + ")");
}

}  // namespace cic
