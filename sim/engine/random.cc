#include "sim/engine/random.h"

namespace flotilla::sim {

Xoshiro256StarStar::Xoshiro256StarStar(uint64_t seed) {
  uint64_t sm = seed;
  for (uint64_t& word : s_) word = splitmix64_next(sm);
  // SplitMix64 is a bijection of a counter, so four consecutive outputs are
  // never all zero; keep the invariant explicit anyway.
  if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;
}

uint64_t SimRandom::stream_seed(std::string_view name) const {
  // Mix the seed and the name's hash separately, then once more together, so
  // nearby seeds and similar names land far apart.
  uint64_t a = seed_;
  uint64_t b = fnv1a64(name);
  uint64_t mixed = splitmix64_next(a) ^ (splitmix64_next(b) * 0xd1b54a32d192ed03ULL);
  return splitmix64_next(mixed);
}

Xoshiro256StarStar SimRandom::make_stream(std::string_view name) const {
  return Xoshiro256StarStar(stream_seed(name));
}

std::unique_ptr<RandomStream> SimRandom::stream(std::string_view name) {
  return std::make_unique<Xoshiro256StarStar>(stream_seed(name));
}

}  // namespace flotilla::sim
