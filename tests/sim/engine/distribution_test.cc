#include "sim/engine/distribution.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <vector>

#include "sim/engine/random.h"
#include "tests/scratch_dir.h"

namespace flotilla::sim {
namespace {

using ::testing::HasSubstr;

constexpr int kDraws = 200000;

struct Moments {
  double mean, variance;
};

Moments sample_moments(const Distribution& d, uint64_t seed = 12345, int n = kDraws) {
  Xoshiro256StarStar rng = SimRandom(seed).make_stream("moments");
  // Welford's algorithm.
  double mean = 0, m2 = 0;
  for (int i = 1; i <= n; ++i) {
    double x = d.sample(rng);
    double delta = x - mean;
    mean += delta / i;
    m2 += delta * (x - mean);
  }
  return {mean, m2 / n};
}

// Checks the sample mean within 5 standard errors and the sample variance
// within `var_tol` (relative).
void expect_moments(const Distribution& d, double var_tol = 0.03) {
  SCOPED_TRACE(d.describe());
  Moments m = sample_moments(d);
  double se = std::sqrt(d.variance() / kDraws);
  EXPECT_NEAR(m.mean, d.mean(), 5 * se + 1e-12 * std::abs(d.mean()));
  EXPECT_NEAR(m.variance, d.variance(), var_tol * d.variance() + 1e-12);
}

// Kolmogorov-Smirnov statistic against `cdf`, compared with the 1% critical value.
void expect_matches_cdf(const Distribution& d, const std::function<double(double)>& cdf) {
  SCOPED_TRACE(d.describe());
  Xoshiro256StarStar rng = SimRandom(777).make_stream("ks");
  const int n = 20000;
  std::vector<double> xs(n);
  for (double& x : xs) x = d.sample(rng);
  std::sort(xs.begin(), xs.end());
  double dmax = 0;
  for (int i = 0; i < n; ++i) {
    double f = cdf(xs[i]);
    dmax = std::max({dmax, std::abs(f - double(i) / n), std::abs(f - double(i + 1) / n)});
  }
  EXPECT_LT(dmax, 1.63 / std::sqrt(n));
}

Distribution ok(StatusOr<Distribution> d) {
  EXPECT_TRUE(d.is_ok()) << d.status().to_string();
  return d.is_ok() ? *d : Distribution::constant(0);
}

TEST(DistributionTest, ConstantAndUniform) {
  Distribution c = Distribution::constant(4.5);
  auto rng = SimRandom(1).make_stream("x");
  EXPECT_EQ(c.sample(rng), 4.5);
  EXPECT_EQ(c.variance(), 0);
  Distribution u = ok(Distribution::uniform(2, 10));
  EXPECT_DOUBLE_EQ(u.mean(), 6);
  EXPECT_DOUBLE_EQ(u.variance(), 64.0 / 12);
  expect_moments(u);
  expect_matches_cdf(u, [](double x) { return std::clamp((x - 2) / 8, 0.0, 1.0); });
}

TEST(DistributionTest, Exponential) {
  Distribution e = ok(Distribution::exponential(30));
  EXPECT_DOUBLE_EQ(e.mean(), 30);
  EXPECT_DOUBLE_EQ(e.variance(), 900);
  expect_moments(e);
  expect_matches_cdf(e, [](double x) { return 1 - std::exp(-x / 30); });
}

TEST(DistributionTest, Normal) {
  Distribution n = ok(Distribution::normal(10, 2));
  expect_moments(n);
  expect_matches_cdf(n, [](double x) { return 0.5 * std::erfc(-(x - 10) / 2 / std::sqrt(2.0)); });
}

TEST(DistributionTest, TruncatedNormalMomentsAreAnalytic) {
  // Standard normal on [0, inf): the half-normal.
  Distribution half = ok(Distribution::truncated_normal(0, 1, 0, INFINITY));
  EXPECT_NEAR(half.mean(), std::sqrt(2 / M_PI), 1e-12);
  EXPECT_NEAR(half.variance(), 1 - 2 / M_PI, 1e-12);
  expect_moments(half);
}

TEST(DistributionTest, TruncatedNormalInEveryRegime) {
  struct Case {
    double mean, stddev, min, max;
  };
  for (Case c : std::vector<Case>{
           {1, 2, 0, INFINITY},           // cuts off a large left part
           {10, 2, 0, INFINITY},          // barely truncated
           {0, 1, 5, INFINITY},           // far right tail: exponential proposal
           {0, 1, -INFINITY, -4},         // far left tail, by symmetry
           {0, 1, 3, 3.1},                // narrow tail window: uniform proposal
           {0, 1, -0.2, 0.3},             // narrow window around the mode
           {5, 3, 0, 20},                 // two-sided, wide
       }) {
    Distribution d = ok(Distribution::truncated_normal(c.mean, c.stddev, c.min, c.max));
    expect_moments(d, 0.04);
    auto rng = SimRandom(3).make_stream("bounds");
    for (int i = 0; i < 10000; ++i) {
      double x = d.sample(rng);
      ASSERT_GE(x, c.min);
      ASSERT_LE(x, c.max);
    }
  }
}

TEST(DistributionTest, LognormalBothParameterisations) {
  Distribution by_log = ok(Distribution::lognormal(0.5, 0.4));
  EXPECT_NEAR(by_log.mean(), std::exp(0.5 + 0.08), 1e-12);
  expect_moments(by_log);
  expect_matches_cdf(by_log, [](double x) {
    return 0.5 * std::erfc(-(std::log(x) - 0.5) / 0.4 / std::sqrt(2.0));
  });
  Distribution by_moments = ok(Distribution::lognormal_from_moments(1.0, 0.5));
  EXPECT_NEAR(by_moments.mean(), 1.0, 1e-12);
  EXPECT_NEAR(by_moments.variance(), 0.25, 1e-12);
  expect_moments(by_moments);
}

TEST(DistributionTest, Weibull) {
  Distribution w = ok(Distribution::weibull(1.5, 2));
  EXPECT_NEAR(w.mean(), 2 * std::tgamma(1 + 1 / 1.5), 1e-12);
  expect_moments(w);
  expect_matches_cdf(w, [](double x) { return 1 - std::exp(-std::pow(x / 2, 1.5)); });
}

TEST(DistributionTest, Pareto) {
  Distribution heavy = ok(Distribution::pareto(2.5, 100));
  EXPECT_NEAR(heavy.mean(), 2.5 * 100 / 1.5, 1e-9);
  // The variance is finite but its estimator converges slowly (infinite
  // fourth moment): check the mean and the distribution function.
  Moments m = sample_moments(heavy);
  EXPECT_NEAR(m.mean, heavy.mean(), 0.01 * heavy.mean());
  expect_matches_cdf(heavy, [](double x) { return x < 100 ? 0 : 1 - std::pow(100 / x, 2.5); });
  expect_moments(ok(Distribution::pareto(8, 3)), 0.06);
  Distribution no_mean = ok(Distribution::pareto(1, 1));
  EXPECT_TRUE(std::isinf(no_mean.mean()));
  EXPECT_TRUE(std::isinf(ok(Distribution::pareto(2, 1)).variance()));
}

TEST(DistributionTest, EmpiricalDrawsOnlyTheGivenValues) {
  Distribution e = ok(Distribution::empirical({5, 1, 2}));
  EXPECT_DOUBLE_EQ(e.mean(), 8.0 / 3);
  auto rng = SimRandom(9).make_stream("e");
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 30000; ++i) {
    double x = e.sample(rng);
    ASSERT_TRUE(x == 1 || x == 2 || x == 5) << x;
    ++counts[static_cast<int>(x)];
  }
  EXPECT_NEAR(counts[1], 10000, 400);
  EXPECT_NEAR(counts[5], 10000, 400);
  expect_moments(e);
}

TEST(DistributionTest, EmpiricalInterpolatedFollowsThePiecewiseLinearEcdf) {
  Distribution e = ok(Distribution::empirical({0, 1, 3}, /*interpolate=*/true));
  // Half the mass uniform on [0, 1], half on [1, 3].
  EXPECT_DOUBLE_EQ(e.mean(), 0.5 * 0.5 + 0.5 * 2);
  expect_moments(e);
  expect_matches_cdf(e, [](double x) { return x <= 1 ? x / 2 : 0.5 + (x - 1) / 4; });
}

TEST(DistributionTest, FactoriesRejectBadParameters) {
  EXPECT_THAT(Distribution::exponential(-1).status().message(), HasSubstr("mean must be > 0"));
  EXPECT_THAT(Distribution::normal(0, -1).status().message(), HasSubstr("stddev must be >= 0"));
  EXPECT_THAT(Distribution::weibull(0, 1).status().message(), HasSubstr("shape must be > 0"));
  EXPECT_THAT(Distribution::pareto(1, -2).status().message(), HasSubstr("scale must be > 0"));
  EXPECT_THAT(Distribution::uniform(3, 1).status().message(), HasSubstr("must not exceed"));
  EXPECT_THAT(Distribution::truncated_normal(0, 1, 60, 70).status().message(),
              HasSubstr("no probability mass"));
  EXPECT_FALSE(Distribution::empirical({}).is_ok());
}

TEST(DistributionTest, SameSeedSameDraws) {
  Distribution d = ok(Distribution::lognormal(1, 1));
  auto a = SimRandom(5).make_stream("lat");
  auto b = SimRandom(5).make_stream("lat");
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(d.sample(a), d.sample(b));
  // Integer paths are exact on every platform: pin them.
  Distribution dice = ok(Distribution::empirical({1, 2, 3, 4, 5, 6}));
  auto r = SimRandom(2024).make_stream("dice");
  std::vector<double> got;
  for (int i = 0; i < 8; ++i) got.push_back(dice.sample(r));
  auto r2 = SimRandom(2024).make_stream("dice");
  std::vector<double> expected;
  for (int i = 0; i < 8; ++i) expected.push_back(1.0 + static_cast<double>(r2.next_below(6)));
  EXPECT_EQ(got, expected);
}

TEST(DistributionTest, DurationsClampNegativeDrawsToZero) {
  Distribution d = ok(Distribution::normal(0, 1e9));
  auto rng = SimRandom(1).make_stream("d");
  int zeros = 0;
  for (int i = 0; i < 10000; ++i) {
    Duration x = d.sample_duration(rng);
    ASSERT_GE(x, Duration::zero());
    zeros += x == Duration::zero();
  }
  EXPECT_NEAR(zeros, 5000, 300);
  Distribution huge = Distribution::constant(1e30);
  EXPECT_EQ(huge.sample_duration(rng), Duration::max());
}

// ------------------------------------------------------------------ parsing

StatusOr<Distribution> parse_d(const std::string& yaml) {
  return parse_duration_distribution(YAML::Load(yaml), "spec.delay");
}

constexpr double kSec = 1e9;

TEST(ParseDistributionTest, EveryDurationFormFromTheSpecLanguage) {
  struct Case {
    std::string yaml;
    Distribution::Kind kind;
    double mean;
  };
  for (const Case& c : std::vector<Case>{
           {"5s", Distribution::Kind::kConstant, 5 * kSec},
           {"{constant: 5s}", Distribution::Kind::kConstant, 5 * kSec},
           {"{constant: {value: 250ms}}", Distribution::Kind::kConstant, 0.25 * kSec},
           {"{exponential: {mean: 30d}}", Distribution::Kind::kExponential, 30 * 86400 * kSec},
           {"{exponential: 2m}", Distribution::Kind::kExponential, 120 * kSec},
           {"{uniform: {min: 1s, max: 3s}}", Distribution::Kind::kUniform, 2 * kSec},
           {"{normal: {mean: 10s, stddev: 2s}}", Distribution::Kind::kNormal, 10 * kSec},
           {"{normal: {mean: 10s, stddev: 2s, min: 0s}}", Distribution::Kind::kTruncatedNormal,
            -1},
           {"{truncated_normal: {mean: 1s, stddev: 1s, min: 0s, max: 2s}}",
            Distribution::Kind::kTruncatedNormal, 1 * kSec},
           {"{weibull: {shape: 1.5, scale: 2h}}", Distribution::Kind::kWeibull,
            7200 * kSec * std::tgamma(1 + 1 / 1.5)},
           {"{pareto: {shape: 2.5, scale: 100ms}}", Distribution::Kind::kPareto,
            2.5 * 0.1 * kSec / 1.5},
           {"{pareto: {alpha: 3, xm: 1s}}", Distribution::Kind::kPareto, 1.5 * kSec},
           {"{lognormal: {mean: 1s, stddev: 500ms}}", Distribution::Kind::kLogNormal, 1 * kSec},
           {"{lognormal: {median: 1s, sigma: 0}}", Distribution::Kind::kLogNormal, 1 * kSec},
           {"{lognormal: {mu: 0, sigma: 0}}", Distribution::Kind::kLogNormal, 1 * kSec},
           {"{empirical: {values: [1s, 2s, 6s]}}", Distribution::Kind::kEmpirical, 3 * kSec},
           {"{empirical: {values: [0s, 2s], interpolate: true}}", Distribution::Kind::kEmpirical,
            1 * kSec},
       }) {
    SCOPED_TRACE(c.yaml);
    StatusOr<Distribution> d = parse_d(c.yaml);
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    EXPECT_EQ(d->kind(), c.kind);
    if (c.mean >= 0) {
      EXPECT_NEAR(d->mean(), c.mean, 1e-9 * c.mean + 1e-6);
    }
  }
}

TEST(ParseDistributionTest, NumberAndSizeSpecs) {
  auto p = [](const std::string& yaml) {
    return parse_number_distribution(YAML::Load(yaml), "workload.size");
  };
  EXPECT_DOUBLE_EQ(ok(p("64Mi")).mean(), 64.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(ok(p("1.5k")).mean(), 1500);
  EXPECT_DOUBLE_EQ(ok(p("{uniform: {min: 1Ki, max: 3Ki}}")).mean(), 2048);
  EXPECT_DOUBLE_EQ(ok(p("{exponential: {mean: 2Gi}}")).mean(), 2.0 * (1 << 30));
  EXPECT_DOUBLE_EQ(ok(p("{constant: 12}")).mean(), 12);
  EXPECT_DOUBLE_EQ(ok(p("{empirical: {values: [1, 2, 3e3]}}")).mean(), 3003.0 / 3);
  // mu is the log of the value itself for numbers.
  EXPECT_NEAR(ok(p("{lognormal: {mu: 1, sigma: 0}}")).mean(), std::exp(1.0), 1e-12);
  EXPECT_THAT(p("5m").status().message(), HasSubstr("unknown suffix \"m\""));
}

TEST(ParseDistributionTest, ParsedSamplesMatchTheSpec) {
  Distribution d = ok(parse_d("{exponential: {mean: 30s}}"));
  auto rng = SimRandom(8).make_stream("p");
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) sum += to_seconds(d.sample_duration(rng));
  EXPECT_NEAR(sum / kDraws, 30, 30 * 5 / std::sqrt(kDraws));
}

TEST(ParseDistributionTest, ErrorsNameTheFieldTheLineAndTheProblem) {
  struct Case {
    std::string yaml;
    std::vector<std::string> parts;
  };
  for (const Case& c : std::vector<Case>{
           {"{gaussian: {mean: 1s}}", {"spec.delay", "line 1", "unknown distribution \"gaussian\""}},
           {"a: 1\nb:\n  exponential:\n    mean: -5s\n",
            {"spec.delay.exponential.mean (line 4, column 11)", "mean must be > 0"}},
           {"{normal: {mean: 1s}}", {"spec.delay.normal", "missing parameter \"stddev\""}},
           {"{normal: {mean: 1s, stddev: -2s}}",
            {"spec.delay.normal.stddev", "stddev must be >= 0"}},
           {"{weibull: {shape: 0, scale: 1h}}", {"weibull.shape", "shape must be > 0"}},
           {"{weibull: {shape: 1.5, scale: 1h, scael: 2}}", {"unknown parameter \"scael\""}},
           {"{pareto: {shape: -1, scale: 1s}}", {"pareto.shape", "shape must be > 0"}},
           {"{uniform: {min: 3s, max: 1s}}", {"uniform.max", "must not exceed"}},
           {"{exponential: {mean: 30}}", {"exponential.mean", "missing unit"}},
           {"{exponential: {mean: 30x}}", {"unknown unit \"x\""}},
           {"{lognormal: {mean: 1s, mu: 2}}", {"either {mean, stddev}"}},
           {"{exponential: {mean: 1s}, constant: 2s}", {"exactly one key", "got 2 keys"}},
           {"[1s, 2s]", {"got a list"}},
           {"{empirical: {values: []}}", {"values", "at least one value"}},
           {"{empirical: {values: [1s, 2q]}}", {"values[1]", "unknown unit"}},
           {"{empirical: {csv: /nonexistent/x.csv, column: a}}", {"cannot open"}},
           {"{empirical: {values: [1s], csv: x.csv}}", {"exactly one of \"values\""}},
           {"~", {"missing distribution"}},
       }) {
    SCOPED_TRACE(c.yaml);
    YAML::Node root = YAML::Load(c.yaml);
    YAML::Node node = root.IsMap() && root["b"] ? root["b"] : root;
    StatusOr<Distribution> d = parse_duration_distribution(node, "spec.delay");
    ASSERT_FALSE(d.is_ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalid);
    for (const std::string& part : c.parts) EXPECT_THAT(d.status().message(), HasSubstr(part));
  }
}

// Found by tests/fuzz (distribution target): a map or list where a kind or a
// parameter name belongs threw YAML::BadConversion out of the parser.
TEST(ParseDistributionTest, NonScalarKeysAreErrorsNotExceptions) {
  for (const char* yaml : {"{empirical: {csv: lat.sv, column: 0, header: true}}:\n",
                           "? [a, b]\n: 1s\n", "{exponential: {[mean]: 1s}}",
                           "{uniform: {{min: 1}: 1s, max: 2s}}"}) {
    SCOPED_TRACE(yaml);
    StatusOr<Distribution> d = parse_d(yaml);
    ASSERT_FALSE(d.is_ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalid);
    EXPECT_THAT(d.status().message(), HasSubstr("spec.delay"));
  }
}

// Found by tests/fuzz (distribution target): parse_duration let std::stold
// throw on a lone "." and on numbers beyond long double's range.
TEST(ParseDistributionTest, MalformedAndHugeDurationNumbersAreErrors) {
  for (const std::string& yaml : {std::string("1ms.ms.1.="), std::string("{constant: .s}"),
                                  std::string(5000, '9') + "s"}) {
    SCOPED_TRACE(yaml.substr(0, 40));
    StatusOr<Distribution> d = parse_d(yaml);
    ASSERT_FALSE(d.is_ok());
    EXPECT_THAT(d.status().message(), HasSubstr("spec.delay"));
  }
  EXPECT_TRUE(parse_d("1.5s").is_ok());
}

// Files in the process's scratch root (tests/scratch_dir.h): removed at exit.
class CsvTest : public ::testing::Test {
 protected:
  std::string dir() const { return flotilla::testing::scratch_root("distribution").string(); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
};

TEST_F(CsvTest, ReadsAColumnByNameOrIndex) {
  write("lat.csv", "host,latency\na,1s\nb,\"2s\"\n\nc, 6s\n");
  DistributionParseOptions opts{.base_dir = dir()};
  Distribution by_name = ok(parse_duration_distribution(
      YAML::Load("{empirical: {csv: lat.csv, column: latency}}"), "x", opts));
  EXPECT_DOUBLE_EQ(by_name.mean(), 3 * kSec);
  Distribution by_index = ok(parse_duration_distribution(
      YAML::Load("{empirical: {csv: lat.csv, column: 1, interpolate: true}}"), "x", opts));
  EXPECT_DOUBLE_EQ(by_index.mean(), (1.5 + 4) / 2 * kSec);
}

TEST_F(CsvTest, BareNumbersWithAUnitAndNoHeader) {
  std::string path = write("ms.csv", "10\n20\n30\n");
  Distribution d = ok(parse_duration_distribution(
      YAML::Load("{empirical: {csv: " + path + ", column: 0, header: false, unit: ms}}"), "x"));
  EXPECT_DOUBLE_EQ(d.mean(), 20e6);
  Distribution sizes = ok(parse_number_distribution(
      YAML::Load("{empirical: {csv: " + path + ", column: 0, header: false}}"), "x"));
  EXPECT_DOUBLE_EQ(sizes.mean(), 20);
}

TEST_F(CsvTest, ErrorsPointAtTheFileLineAndColumn) {
  std::string path = write("bad.csv", "a,b\n1s,2s\n3s,oops\n");
  StatusOr<Distribution> d = parse_duration_distribution(
      YAML::Load("{empirical: {csv: " + path + ", column: b}}"), "faults.repair");
  ASSERT_FALSE(d.is_ok());
  EXPECT_THAT(d.status().message(), HasSubstr("faults.repair.empirical.csv"));
  EXPECT_THAT(d.status().message(), HasSubstr("bad.csv:3"));
  EXPECT_THAT(d.status().message(), HasSubstr("\"oops\""));
  StatusOr<Distribution> missing = parse_duration_distribution(
      YAML::Load("{empirical: {csv: " + path + ", column: c}}"), "faults.repair");
  EXPECT_THAT(missing.status().message(), HasSubstr("no column \"c\""));
  EXPECT_THAT(missing.status().message(), HasSubstr("columns: a, b"));
}

}  // namespace
}  // namespace flotilla::sim
