// CRC-32C (Castagnoli), the checksum of every framed record the persistent
// store writes: detects torn and corrupted records at recovery. Table-driven
// software implementation (slicing by 8), no CPU-specific instructions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace flotilla::storage {

// Extends `crc` (0 to start) over `data`.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);
inline uint32_t crc32c(std::string_view data) { return crc32c_extend(0, data.data(), data.size()); }

}  // namespace flotilla::storage
