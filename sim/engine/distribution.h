// Probability distributions for scenario parameters (failure intervals, repair
// times, request sizes, latencies), sampled from a RandomStream with our own
// algorithms (never std:: distributions, whose output differs between standard
// library versions) so a seed gives the same draws everywhere. Parsed from
// YAML specs with units; see docs/simulator.md for the spec language.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/ports/random.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace YAML {
class Node;
}

namespace flotilla::sim {

// An immutable distribution over real numbers; cheap to copy. Duration
// distributions hold nanoseconds. Factories validate their parameters and
// return kInvalid with a message saying which one is wrong.
class Distribution {
 public:
  enum class Kind {
    kConstant,
    kUniform,          // [min, max)
    kExponential,      // mean
    kNormal,           // mean, stddev
    kTruncatedNormal,  // a normal(mean, stddev) conditioned on [min, max]
    kLogNormal,        // exp(normal(mu, sigma))
    kWeibull,          // shape k, scale lambda
    kPareto,           // shape alpha, scale x_m (the minimum)
    kEmpirical,        // the given values, or their interpolated ECDF
  };

  static Distribution constant(double value);
  static StatusOr<Distribution> uniform(double min, double max);
  static StatusOr<Distribution> exponential(double mean);
  static StatusOr<Distribution> normal(double mean, double stddev);
  // Bounds may be -inf/+inf (one-sided); min < max.
  static StatusOr<Distribution> truncated_normal(double mean, double stddev, double min,
                                                 double max);
  // Parameterised by the mean and standard deviation of log(X).
  static StatusOr<Distribution> lognormal(double mu, double sigma);
  // Parameterised by the mean and standard deviation of X itself:
  // sigma^2 = ln(1 + stddev^2/mean^2), mu = ln(mean) - sigma^2/2.
  static StatusOr<Distribution> lognormal_from_moments(double mean, double stddev);
  static StatusOr<Distribution> weibull(double shape, double scale);
  static StatusOr<Distribution> pareto(double shape, double scale);
  // Draws one of `values` uniformly; with `interpolate`, draws from the
  // piecewise-linear ECDF through the sorted values instead (continuous,
  // between the least and the greatest value).
  static StatusOr<Distribution> empirical(std::vector<double> values, bool interpolate = false);

  double sample(RandomStream& rng) const;
  // sample() read as nanoseconds: rounded, negative draws clamp to zero,
  // overflowing ones to Duration::max().
  Duration sample_duration(RandomStream& rng) const;

  // Analytic where defined; +inf where the moment is infinite (Pareto with
  // shape <= 1 or <= 2).
  double mean() const;
  double variance() const;
  Kind kind() const { return kind_; }
  // "exponential(mean=30)", for messages and logs.
  std::string describe() const;

 private:
  Distribution(Kind kind, double p0 = 0, double p1 = 0, double p2 = 0, double p3 = 0)
      : kind_(kind), p_{p0, p1, p2, p3} {}
  void compute_moments();

  Kind kind_;
  // Parameters by kind: constant {v}; uniform {min, max}; exponential {mean};
  // normal {mean, stddev}; truncated normal {mean, stddev, min, max};
  // lognormal {mu, sigma}; weibull {shape, scale}; pareto {shape, scale};
  // empirical {interpolate}.
  double p_[4];
  double mean_ = 0;
  double variance_ = 0;
  std::shared_ptr<const std::vector<double>> values_;  // empirical, sorted
};

struct DistributionParseOptions {
  // Where relative `csv:` paths of empirical distributions are looked up
  // (usually the scenario file's directory). Empty: the working directory.
  std::string base_dir;
};

// Parses a duration distribution spec: "5s", {constant: 5s},
// {exponential: {mean: 30d}}, {uniform: {min: 1s, max: 3s}}, ... (values in
// nanoseconds). Errors are kInvalid and read
// `<field_path> (line L, column C): <what is wrong>`.
StatusOr<Distribution> parse_duration_distribution(const YAML::Node& node,
                                                   std::string_view field_path,
                                                   const DistributionParseOptions& options = {});
// The same for dimensionless quantities and sizes: plain numbers ("12",
// "0.5", "1e6") or with a binary (Ki, Mi, Gi, Ti, Pi) or decimal (k, M, G, T,
// P) suffix: "64Mi" = 67108864.
StatusOr<Distribution> parse_number_distribution(const YAML::Node& node,
                                                 std::string_view field_path,
                                                 const DistributionParseOptions& options = {});

// "64Mi" -> 67108864, "1.5k" -> 1500, "42" -> 42. kBadRequest otherwise.
StatusOr<double> parse_number_with_suffix(std::string_view text);

}  // namespace flotilla::sim
