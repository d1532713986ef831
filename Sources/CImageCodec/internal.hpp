// Internal declarations shared by the shim's C++ files (not part of the C API).
#pragma once

#include "CImageCodec.h"

#include <string>

namespace cic {

/// Header facts plus `complete`: false when a JPEG lacks its end-of-image marker after the scan data.
struct Header : cic_header {
    bool complete = true;
    Header() : cic_header{CIC_FORMAT_UNKNOWN, 0, 0, 0} {}
};

/// Parses the header; returns CIC_OK or an error code with a human-readable `msg`.
int probe(const uint8_t *data, size_t len, Header &header, std::string &msg);

}  // namespace cic
