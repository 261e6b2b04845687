// Shared by the libFuzzer targets: FUZZ_CHECK aborts with a message when a
// property (a round trip, an invariant) fails, so libFuzzer records the input
// as a crash. Not for production code: targets only.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace flotilla::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* cond, const std::string& detail) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n%s\n", file, line, cond, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

}  // namespace flotilla::fuzz

#define FUZZ_CHECK(cond, detail)                                      \
  do {                                                                \
    if (!(cond)) ::flotilla::fuzz::fail(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)
