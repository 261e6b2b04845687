// Fuzzes the trace-file reader: the input bytes are written to a temporary
// file and read back with analysis::read_trace; every record must be handed
// over or a corrupt one reported, never a crash or an unbounded allocation.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "analysis/trace_io.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace flotilla;
  static const std::string path = [] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp && *tmp ? tmp : "/tmp") + "/flotilla-trace-fuzz-" +
           std::to_string(::getpid()) + ".trace";
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  FUZZ_CHECK(f != nullptr, "cannot write " + path);
  FUZZ_CHECK(std::fwrite(data, 1, size, f) == size, "short write to " + path);
  std::fclose(f);

  int64_t records = 0;
  int64_t last_time = 0;
  Status s = analysis::read_trace(path, [&](const trace::Record& r) {
    ++records;
    last_time = r.time_ns();
    (void)analysis::trace_type_name(r.type());
    return true;
  });
  (void)last_time;
  if (!s.is_ok()) {
    FUZZ_CHECK(s.message().find("record") != std::string::npos,
               "a read error that names no record: " + s.to_string());
  }
  FUZZ_CHECK(records <= static_cast<int64_t>(size), "more records than bytes");
  std::remove(path.c_str());
  return 0;
}
