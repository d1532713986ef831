// Internal declarations shared by the shim's C++ files (not part of the C API).
#pragma once

#include "CImageCodec.h"

#include <string>

namespace cv { class Mat; }

namespace cic {

/// Header facts plus `complete`: false when a JPEG lacks its end-of-image marker after the scan data.
struct Header : cic_header {
    bool complete = true;
    Header() : cic_header{CIC_FORMAT_UNKNOWN, 0, 0, 0} {}
};

/// Decodes a plain 3-component JPEG (no EXIF, no Adobe marker) straight to RGB with libjpeg; false
/// (and `rgb` empty) for anything else, which then goes through OpenCV (jpeg_rgb.cpp).
bool decodePlainJPEG(const uint8_t *data, size_t len, cv::Mat &rgb);

/// Whether cic_decode may use decodePlainJPEG (tests compare both paths).
extern bool plainJPEGEnabled;

inline const char *formatName(int format) {
    switch (format) {
    case CIC_FORMAT_JPEG: return "JPEG";
    case CIC_FORMAT_PNG: return "PNG";
    case CIC_FORMAT_BMP: return "BMP";
    case CIC_FORMAT_WEBP: return "WebP";
    default: return "image";
    }
}

/// Parses the header, and refuses a zero or negative width or height (CIC_ERR_ZERO_DIMENSION); returns CIC_OK or an error code with a human-readable `msg`.
int probe(const uint8_t *data, size_t len, Header &header, std::string &msg);

/// Messages libjpeg/libpng (and OpenCV on std::cerr) produced on this thread since the last clear
/// ("libjpeg: ...; libpng: ..."), captured instead of printed (codec_messages.cpp).
void clearCodecMessages();
std::string takeCodecMessages();
void endCodecMessages();

/// Captures on this thread from construction (cleared) to destruction.
struct CodecMessageScope {
    CodecMessageScope() { clearCodecMessages(); }
    ~CodecMessageScope() { endCodecMessages(); }
    CodecMessageScope(const CodecMessageScope &) = delete;
    CodecMessageScope &operator=(const CodecMessageScope &) = delete;
};

}  // namespace cic
