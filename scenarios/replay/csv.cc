#include "scenarios/replay/csv.h"

#include <zlib.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace flotilla::replay {

namespace {
constexpr size_t kChunk = 1 << 16;
}

StatusOr<std::unique_ptr<LineReader>> LineReader::open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status(StatusCode::kNotFound, path + ": no such file");
  }
  if (std::filesystem::is_directory(path, ec)) {
    return Status(StatusCode::kBadRequest, path + ": is a directory, expected a file");
  }
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) {
    return Status(StatusCode::kUnavailable, path + ": cannot open: " + std::strerror(errno));
  }
  gzbuffer(gz, 1 << 17);
  return std::unique_ptr<LineReader>(new LineReader(gz, path));
}

LineReader::LineReader(void* gz, std::string path)
    : gz_(gz), path_(std::move(path)), name_(std::filesystem::path(path_).filename().string()) {}

LineReader::~LineReader() { gzclose(static_cast<gzFile>(gz_)); }

Status LineReader::fill() {
  buffer_.erase(0, pos_);
  pos_ = 0;
  size_t old = buffer_.size();
  buffer_.resize(old + kChunk);
  int n = gzread(static_cast<gzFile>(gz_), buffer_.data() + old, static_cast<unsigned>(kChunk));
  if (n < 0) {
    int errnum = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &errnum);
    buffer_.resize(old);
    return Status(StatusCode::kBadRequest, name_ + ":" + std::to_string(line_ + 1) +
                                               ": cannot read: " + (msg ? msg : "gzip error"));
  }
  buffer_.resize(old + static_cast<size_t>(n));
  if (n == 0) {
    // gzread returns 0 at the end, and also for a truncated stream: tell them apart.
    int errnum = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
      return Status(StatusCode::kBadRequest, name_ + ":" + std::to_string(line_ + 1) +
                                                 ": cannot read: " + (msg ? msg : "gzip error"));
    }
    eof_ = true;
  }
  return Status::ok();
}

StatusOr<std::optional<std::string_view>> LineReader::next() {
  while (true) {
    size_t nl = buffer_.find('\n', pos_);
    size_t length = (nl == std::string::npos ? buffer_.size() : nl) - pos_;
    if (length > kMaxLineBytes) {
      return Status(StatusCode::kBadRequest,
                    name_ + ":" + std::to_string(line_ + 1) + ": line longer than " +
                        std::to_string(kMaxLineBytes) +
                        " bytes (a trace line has a few hundred; is this the right file?)");
    }
    if (nl != std::string::npos) {
      size_t end = nl;
      if (end > pos_ && buffer_[end - 1] == '\r') --end;
      line_buf_.assign(buffer_, pos_, end - pos_);
      pos_ = nl + 1;
      ++line_;
      return std::optional<std::string_view>(line_buf_);
    }
    if (eof_) {
      if (pos_ >= buffer_.size()) return std::optional<std::string_view>();
      size_t end = buffer_.size();
      if (buffer_[end - 1] == '\r') --end;
      line_buf_.assign(buffer_, pos_, end - pos_);
      pos_ = buffer_.size();
      ++line_;
      return std::optional<std::string_view>(line_buf_);
    }
    FLOTILLA_RETURN_IF_ERROR(fill());
  }
}

CsvRow::CsvRow(const LineReader& reader, std::string_view line)
    : reader_(reader), line_length_(static_cast<int>(line.size())) {
  size_t i = 0;
  while (true) {
    CsvField f;
    f.column = static_cast<int>(i) + 1;
    if (i < line.size() && line[i] == '"') {
      std::string value;
      size_t j = i + 1;
      while (j < line.size()) {
        if (line[j] == '"') {
          if (j + 1 < line.size() && line[j + 1] == '"') {
            value += '"';
            j += 2;
            continue;
          }
          ++j;
          break;
        }
        value += line[j++];
      }
      unquoted_.push_back(std::move(value));
      size_t comma = line.find(',', j);
      fields_.push_back(f);  // text filled below, once unquoted_ stops moving
      if (comma == std::string_view::npos) break;
      i = comma + 1;
    } else {
      size_t comma = line.find(',', i);
      f.text = line.substr(i, comma == std::string_view::npos ? std::string_view::npos : comma - i);
      fields_.push_back(f);
      if (comma == std::string_view::npos) break;
      i = comma + 1;
    }
  }
  // Point quoted fields at their storage (a vector that no longer grows).
  size_t q = 0;
  for (size_t k = 0; k < fields_.size(); ++k) {
    size_t col = static_cast<size_t>(fields_[k].column - 1);
    if (col < line.size() && line[col] == '"') fields_[k].text = unquoted_[q++];
  }
}

std::string_view CsvRow::text(size_t i) const {
  return i < fields_.size() ? fields_[i].text : std::string_view();
}

std::string CsvRow::where() const {
  return reader_.name() + ":" + std::to_string(reader_.line_number());
}

Status CsvRow::error(size_t i, std::string_view column, std::string_view what) const {
  int col = i < fields_.size() ? fields_[i].column : line_length_ + 1;
  return Status(StatusCode::kBadRequest, where() + ":" + std::to_string(col) + ": column " +
                                             std::string(column) + ": " + std::string(what));
}

Status CsvRow::row_error(std::string_view what) const {
  return Status(StatusCode::kBadRequest, where() + ": " + std::string(what));
}

StatusOr<int64_t> CsvRow::integer(size_t i, std::string_view column,
                                  std::optional<int64_t> fallback) const {
  std::string_view t = text(i);
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (t.empty()) {
    if (fallback) return *fallback;
    return error(i, column, i < fields_.size() ? "empty, expected an integer"
                                               : "missing, expected an integer");
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec == std::errc() && p == t.data() + t.size()) return v;
  // Integers written as decimals ("12.0") are accepted when whole.
  auto d = decimal(i, column);
  if (d.is_ok() && std::isfinite(*d) && *d == std::floor(*d) && std::fabs(*d) < 9.2e18) {
    return static_cast<int64_t>(*d);
  }
  if (ec == std::errc::result_out_of_range) {
    return error(i, column, "\"" + std::string(t) + "\" is out of range");
  }
  return error(i, column, "expected an integer, got \"" + std::string(t) + "\"");
}

StatusOr<double> CsvRow::decimal(size_t i, std::string_view column,
                                 std::optional<double> fallback) const {
  std::string_view t = text(i);
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (t.empty()) {
    if (fallback) return *fallback;
    return error(i, column, i < fields_.size() ? "empty, expected a number"
                                               : "missing, expected a number");
  }
  std::string s(t);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) {
    return error(i, column, "expected a number, got \"" + s + "\"");
  }
  return v;
}

bool sampled(std::string_view name, double fraction) {
  if (fraction >= 1.0) return true;
  if (fraction <= 0.0) return false;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  // Finalise (splitmix64) so similar names spread over the whole range.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53 < fraction;
}

}  // namespace flotilla::replay
