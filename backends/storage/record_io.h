// Record framing for the persistent store's files: each record is
//   u32 length (little-endian) | u32 CRC-32C of (length bytes + payload) | payload
// so a reader tells a complete record from a torn or corrupted one. Plus the
// few POSIX file operations the store needs, as Status-returning helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/util/status.h"

namespace flotilla::storage {

inline constexpr size_t kFrameHeaderBytes = 8;
// No record is larger (the API refuses bodies over 3 MiB); a length field
// above this is corruption.
inline constexpr uint32_t kMaxRecordBytes = 16u << 20;

// Appends the framed `payload` to *out.
void append_frame(std::string_view payload, std::string* out);

enum class FrameStatus {
  kOk,           // payload is valid
  kEnd,          // offset == data.size(): no more records
  kShort,        // the header or the payload runs past the end of data
  kBadChecksum,  // complete, but the CRC does not match (or the length is absurd)
};

struct Frame {
  FrameStatus status = FrameStatus::kEnd;
  std::string_view payload;  // kOk only
  size_t next = 0;           // offset just after this record (kOk only)
};

// The frame at `offset` of `data` (offset <= data.size()).
Frame read_frame(std::string_view data, size_t offset);

// The first offset after `offset` where a valid frame starts, if any: tells a
// corrupted record in the middle of a file (valid records follow) from a torn
// last record (nothing valid follows).
std::optional<size_t> next_valid_frame(std::string_view data, size_t offset);

// --- files (POSIX) ---
StatusOr<std::string> read_whole_file(const std::string& path);
// Writes `data` to fd completely (retrying short writes and EINTR).
Status write_all(int fd, std::string_view data, const std::string& path);
// fsync of a directory, so a created, renamed or removed entry is durable.
Status sync_directory(const std::string& dir);
// Truncates `path` to `size` bytes and fsyncs it.
Status truncate_file(const std::string& path, uint64_t size);
// "<what> <path>: <strerror(errno)>"
Status errno_status(std::string_view what, const std::string& path);

}  // namespace flotilla::storage
