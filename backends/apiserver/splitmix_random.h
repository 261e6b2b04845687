// SplitMix64Stream: a small RandomStream for live processes that have no
// simulator (flotilla serve, tests of the API server): uids and generated
// names. Seed it from the OS for a server, from a constant for a test.
#pragma once

#include <cstdint>

#include "core/ports/random.h"

namespace flotilla::apiserver {

class SplitMix64Stream final : public RandomStream {
 public:
  explicit SplitMix64Stream(uint64_t seed) : state_(seed) {}
  uint64_t next_u64() override {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace flotilla::apiserver
