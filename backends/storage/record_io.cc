#include "backends/storage/record_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "backends/storage/crc32c.h"

namespace flotilla::storage {
namespace {

void put_u32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

uint32_t frame_crc(const char* length_bytes, std::string_view payload) {
  return crc32c_extend(crc32c_extend(0, length_bytes, 4), payload.data(), payload.size());
}

}  // namespace

void append_frame(std::string_view payload, std::string* out) {
  char header[kFrameHeaderBytes];
  put_u32(static_cast<uint32_t>(payload.size()), header);
  put_u32(frame_crc(header, payload), header + 4);
  out->append(header, kFrameHeaderBytes);
  out->append(payload);
}

Frame read_frame(std::string_view data, size_t offset) {
  Frame f;
  if (offset >= data.size()) return f;
  size_t left = data.size() - offset;
  if (left < kFrameHeaderBytes) {
    f.status = FrameStatus::kShort;
    return f;
  }
  const char* h = data.data() + offset;
  uint32_t length = get_u32(h);
  if (length == 0 || length > kMaxRecordBytes) {
    f.status = FrameStatus::kBadChecksum;
    return f;
  }
  if (left - kFrameHeaderBytes < length) {
    f.status = FrameStatus::kShort;
    return f;
  }
  std::string_view payload = data.substr(offset + kFrameHeaderBytes, length);
  if (frame_crc(h, payload) != get_u32(h + 4)) {
    f.status = FrameStatus::kBadChecksum;
    return f;
  }
  f.status = FrameStatus::kOk;
  f.payload = payload;
  f.next = offset + kFrameHeaderBytes + length;
  return f;
}

std::optional<size_t> next_valid_frame(std::string_view data, size_t offset) {
  for (size_t at = offset + 1; at + kFrameHeaderBytes < data.size(); ++at) {
    if (read_frame(data, at).status == FrameStatus::kOk) return at;
  }
  return std::nullopt;
}

Status errno_status(std::string_view what, const std::string& path) {
  int e = errno;
  return unavailable_error(std::string(what) + " " + path + ": " + std::strerror(e));
}

StatusOr<std::string> read_whole_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open", path);
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = errno_status("cannot read", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status("cannot write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

Status sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open directory", dir);
  int rc = ::fsync(fd);
  Status s = rc == 0 ? Status::ok() : errno_status("cannot fsync directory", dir);
  ::close(fd);
  return s;
}

Status truncate_file(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("cannot open", path);
  Status s;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    s = errno_status("cannot truncate", path);
  } else if (::fsync(fd) != 0) {
    s = errno_status("cannot fsync", path);
  }
  ::close(fd);
  return s;
}

}  // namespace flotilla::storage
