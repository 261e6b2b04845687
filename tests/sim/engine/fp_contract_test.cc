// The simulator's samples (exponential gaps, service times, jitter) are
// products and sums of doubles. Built for a CPU with FMA, GCC would fuse
// a*b+c into one instruction with one rounding instead of two, and a
// scenario's trace would change with the CPU the binary was built for. The
// project compiles with -ffp-contract=off; this file is built with -mfma.
#include <cmath>

#include <gtest/gtest.h>

namespace {

double multiply_add(double a, double b, double c) { return a * b + c; }

TEST(FloatingPoint, MultiplyAddRoundsTwiceWhereTheCpuCouldFuseIt) {
  if (!__builtin_cpu_supports("fma")) GTEST_SKIP() << "this CPU has no FMA";
  // a*b = 1 - 2^-60 exactly: rounded, 1.0; so a*b + c is 0 with two
  // roundings and -2^-60 fused.
  volatile double a = 1.0 + 0x1p-30, b = 1.0 - 0x1p-30, c = -1.0;
  volatile double product = a * b;
  const double twice = product + c;
  const double fused = std::fma(a, b, c);
  ASSERT_NE(fused, twice);
  EXPECT_EQ(multiply_add(a, b, c), twice);
}

}  // namespace
