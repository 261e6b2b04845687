// Random: named, seeded streams of random bits. The simulator derives every
// stream from the scenario's seed and the stream's name, so adding a stream
// never shifts the draws of another; live mode may seed from the OS. The core
// owns no randomness of its own: UIDs, balancer picks and jitter come from here.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace flotilla {

// One stream. Not thread-safe; each user holds its own.
class RandomStream {
 public:
  virtual ~RandomStream() = default;
  // 64 uniformly distributed bits.
  virtual uint64_t next_u64() = 0;

  // Uniform in [0, 1) with 53 bits of precision.
  double next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) for n > 0, without modulo bias (Lemire's method).
  uint64_t next_below(uint64_t n) {
    __extension__ typedef unsigned __int128 U128;
    U128 m = static_cast<U128>(next_u64()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      uint64_t threshold = -n % n;
      while (low < threshold) {
        m = static_cast<U128>(next_u64()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
};

class Random {
 public:
  virtual ~Random() = default;
  // The stream called `name`. Asking twice for one name gives two independent
  // objects that produce the same sequence. Deterministic for a seed.
  virtual std::unique_ptr<RandomStream> stream(std::string_view name) = 0;
};

}  // namespace flotilla
