// Seeded random streams for the simulator. SimRandom turns one 64-bit scenario
// seed into any number of named streams: each stream's state is derived from
// (seed, FNV-1a hash of its name) through SplitMix64, and draws come from
// xoshiro256**. Adding, removing or reordering streams never shifts another's
// draws, and the bits are identical on every platform and run.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "core/ports/random.h"

namespace flotilla::sim {

// 64-bit FNV-1a: a fixed, platform-independent hash (unlike std::hash).
constexpr uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// SplitMix64 (Steele, Lea, Flood 2014): advances `state` and returns a
// well-mixed 64-bit value. Used to seed, never to draw.
constexpr uint64_t splitmix64_next(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256** 1.0 (Blackman, Vigna 2018): 256 bits of state, period 2^256-1.
class Xoshiro256StarStar final : public RandomStream {
 public:
  // Seeds the four state words from SplitMix64 started at `seed`.
  explicit Xoshiro256StarStar(uint64_t seed);
  // Raw state, for reference tests; must not be all zero.
  Xoshiro256StarStar(uint64_t s0, uint64_t s1, uint64_t s2, uint64_t s3) : s_{s0, s1, s2, s3} {}

  uint64_t next_u64() override { return next(); }
  // Non-virtual draw for hot loops that hold the concrete type.
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static constexpr uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

class SimRandom final : public Random {
 public:
  explicit SimRandom(uint64_t seed) : seed_(seed) {}
  uint64_t seed() const { return seed_; }

  // A fresh stream for `name`; two calls with one name give equal sequences.
  std::unique_ptr<RandomStream> stream(std::string_view name) override;
  // The same stream by value, for callers that want the concrete type.
  Xoshiro256StarStar make_stream(std::string_view name) const;
  // The 64-bit value the stream `name` is seeded from.
  uint64_t stream_seed(std::string_view name) const;

 private:
  uint64_t seed_;
};

}  // namespace flotilla::sim
