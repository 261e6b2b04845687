// Streaming input for trace importers: a line reader over plain or
// gzip-compressed files (zlib detects which, so `.csv` and `.csv.gz` shards
// read the same way, one buffer at a time, never the whole file), and CSV rows
// whose fields parse into numbers with errors naming file:line:column.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/util/status.h"

namespace flotilla::replay {

class LineReader {
 public:
  // The longest line next() returns (1 MiB; a trace line is a few hundred
  // bytes). A longer one is an error naming file and line, found after
  // reading at most this much more of it, so no input makes a reader hold
  // more than about this plus one buffer in memory.
  static constexpr size_t kMaxLineBytes = size_t{1} << 20;

  // Errors: kNotFound (missing file), kUnavailable (cannot open).
  static StatusOr<std::unique_ptr<LineReader>> open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its end of line ("\n" or "\r\n"); nullopt at the end
  // of the file. The view is valid until the next call. Errors: kBadRequest
  // for a corrupt or truncated gzip stream, or a line over kMaxLineBytes,
  // naming the file and line.
  StatusOr<std::optional<std::string_view>> next();
  // 1-based number of the line last returned.
  int64_t line_number() const { return line_; }
  const std::string& path() const { return path_; }
  // The file's name without directories, for messages.
  const std::string& name() const { return name_; }

 private:
  LineReader(void* gz, std::string path);
  Status fill();

  void* gz_;  // gzFile
  std::string path_, name_;
  std::string buffer_;
  size_t pos_ = 0;
  bool eof_ = false;
  std::string line_buf_;
  int64_t line_ = 0;
};

struct CsvField {
  std::string_view text;
  int column = 1;  // 1-based character column of the field's start
};

// One CSV row of a LineReader, split on commas (a field in double quotes may
// hold commas; "" inside quotes is a quote). Accessors name the row's file,
// line, column and the field's column name in every error.
class CsvRow {
 public:
  CsvRow(const LineReader& reader, std::string_view line);

  size_t size() const { return fields_.size(); }
  // The field's text, or "" past the end of the row (a missing trailing field).
  std::string_view text(size_t i) const;
  bool empty(size_t i) const { return text(i).empty(); }
  // Integer / decimal fields. Errors (kBadRequest): "file:L:C: column NAME:
  // expected an integer, got \"x\"". A missing or empty field is an error
  // unless `fallback` is given.
  StatusOr<int64_t> integer(size_t i, std::string_view column,
                            std::optional<int64_t> fallback = std::nullopt) const;
  StatusOr<double> decimal(size_t i, std::string_view column,
                           std::optional<double> fallback = std::nullopt) const;
  // An error about field i ("file:L:C: column NAME: what").
  Status error(size_t i, std::string_view column, std::string_view what) const;
  // An error about the whole row ("file:L: what").
  Status row_error(std::string_view what) const;
  // "file:L" for warnings.
  std::string where() const;

 private:
  const LineReader& reader_;
  std::vector<CsvField> fields_;
  std::vector<std::string> unquoted_;  // storage for fields that had quotes
  int line_length_ = 0;
};

// Deterministic sampling: whether `name` falls in the first `fraction` of the
// 64-bit FNV-1a hash space (fraction >= 1 keeps everything).
bool sampled(std::string_view name, double fraction);

}  // namespace flotilla::replay
