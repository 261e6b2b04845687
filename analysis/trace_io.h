// Trace files: a sequence of length-delimited trace::Record messages, written
// deterministically (same records, same bytes) with a running SHA-256 so a run
// can state its trace digest. The simulator and live mode write the same files;
// every analysis reads them back through TraceReader, one record at a time.
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "core/ports/trace.h"
#include "core/util/status.h"

namespace flotilla::analysis {

class FileTraceSink final : public TraceSink {
 public:
  // Opens `path` for writing (truncating). Errors name the path.
  static StatusOr<std::unique_ptr<FileTraceSink>> open(const std::string& path);
  ~FileTraceSink() override;

  void record(const trace::Record& r) override;
  // Flushes and closes; returns the first write error, if any. Idempotent.
  Status close();

  int64_t records() const { return records_; }
  // Hex SHA-256 of every byte written so far (callable before and after close).
  std::string sha256_hex() const;

 private:
  FileTraceSink(std::FILE* f, std::string path);
  void flush_buffer();

  std::FILE* file_;
  std::string path_;
  std::string buffer_;
  std::string scratch_;
  int64_t records_ = 0;
  Status error_;
  struct Digest;
  std::unique_ptr<Digest> digest_;
};

// A sink that fans records out to several others (e.g. a file and live metrics).
class TeeTraceSink final : public TraceSink {
 public:
  void add(TraceSink* sink) { sinks_.push_back(sink); }
  void record(const trace::Record& r) override {
    for (TraceSink* s : sinks_) s->record(r);
  }

 private:
  std::vector<TraceSink*> sinks_;
};

// Reads every record of a trace file in order and hands it to `visit`; stops
// early when visit returns false. Errors: kNotFound for a missing file,
// kBadRequest naming the record index for a corrupt record (a torn last record
// is reported too, never silently skipped).
Status read_trace(const std::string& path, const std::function<bool(const trace::Record&)>& visit);

// "NodeDown" for NODE_DOWN: the trace's event type names in JSON output.
std::string trace_type_name(trace::EventType type);

// SHA-256 of a file's bytes, hex; for checking a recorded digest.
StatusOr<std::string> sha256_file(const std::string& path);

}  // namespace flotilla::analysis
