#include "sim/engine/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace flotilla::sim {
namespace {

std::vector<uint64_t> draw(RandomStream& s, int n) {
  std::vector<uint64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.next_u64());
  return out;
}

TEST(RandomTest, BuildingBlocksMatchTheirReferenceOutputs) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
  uint64_t sm = 0;
  EXPECT_EQ(splitmix64_next(sm), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(splitmix64_next(sm), 0x6e789e6aa1b965f4ULL);
  // xoshiro256** from state {1, 2, 3, 4}, as in the authors' reference code.
  Xoshiro256StarStar x(1, 2, 3, 4);
  EXPECT_EQ(x.next(), 11520u);
  EXPECT_EQ(x.next(), 0u);
  EXPECT_EQ(x.next(), 1509978240u);
  EXPECT_EQ(x.next(), 1215971899390074240u);
}

TEST(RandomTest, StreamsArePinnedAcrossRunsAndPlatforms) {
  // Golden values: if these change, every scenario's trace changes with them.
  SimRandom r(42);
  auto s = r.stream("scheduler");
  std::vector<uint64_t> got = draw(*s, 3);
  Xoshiro256StarStar same = r.make_stream("scheduler");
  EXPECT_EQ(got, draw(same, 3));
  // Recompute by hand from the documented derivation.
  uint64_t a = 42, b = fnv1a64("scheduler");
  uint64_t mixed = splitmix64_next(a) ^ (splitmix64_next(b) * 0xd1b54a32d192ed03ULL);
  Xoshiro256StarStar manual(splitmix64_next(mixed));
  EXPECT_EQ(got, draw(manual, 3));
}

TEST(RandomTest, SameSeedAndNameGiveIdenticalDraws) {
  SimRandom a(7), b(7);
  auto sa = a.stream("net");
  auto sb = b.stream("net");
  EXPECT_EQ(draw(*sa, 1000), draw(*sb, 1000));
  auto again = a.stream("net");
  auto first = a.stream("net");
  EXPECT_EQ(draw(*again, 10), draw(*first, 10));
}

TEST(RandomTest, DifferentSeedsOrNamesGiveDifferentDraws) {
  SimRandom a(7), b(8);
  EXPECT_NE(draw(*a.stream("net"), 4), draw(*b.stream("net"), 4));
  EXPECT_NE(draw(*a.stream("net"), 4), draw(*a.stream("net2"), 4));
  EXPECT_NE(draw(*a.stream(""), 4), draw(*a.stream("a"), 4));
}

TEST(RandomTest, AddingAStreamDoesNotShiftAnother) {
  SimRandom r1(99), r2(99);
  auto faults1 = r1.stream("faults");
  std::vector<uint64_t> alone = draw(*faults1, 100);

  auto traffic = r2.stream("traffic");  // a new stream, created first and drawn from
  draw(*traffic, 57);
  auto faults2 = r2.stream("faults");
  std::vector<uint64_t> interleaved;
  for (int i = 0; i < 100; ++i) {
    interleaved.push_back(faults2->next_u64());
    traffic->next_u64();
  }
  EXPECT_EQ(alone, interleaved);
}

TEST(RandomTest, StreamsForSimilarNamesAreUncorrelated) {
  // Pearson correlation of next_double() between "node-1" and "node-2" streams.
  SimRandom r(1);
  auto a = r.stream("node-1");
  auto b = r.stream("node-2");
  const int n = 100000;
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (int i = 0; i < n; ++i) {
    double x = a->next_double(), y = b->next_double();
    sa += x, sb += y, saa += x * x, sbb += y * y, sab += x * y;
  }
  double cov = sab / n - (sa / n) * (sb / n);
  double corr = cov / std::sqrt((saa / n - sa * sa / n / n) * (sbb / n - sb * sb / n / n));
  EXPECT_LT(std::abs(corr), 0.02);
  EXPECT_NEAR(sa / n, 0.5, 0.01);
}

TEST(RandomTest, NextBelowIsUniform) {
  SimRandom r(3);
  auto s = r.stream("dice");
  std::vector<int> counts(6, 0);
  const int n = 600000;
  for (int i = 0; i < n; ++i) ++counts[s->next_below(6)];
  double chi2 = 0;
  for (int c : counts) chi2 += (c - n / 6.0) * (c - n / 6.0) / (n / 6.0);
  EXPECT_LT(chi2, 20.5);  // p = 0.001 at 5 degrees of freedom
}

}  // namespace
}  // namespace flotilla::sim
