#include "sim/engine/distribution.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

namespace flotilla::sim {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Uniform in (0, 1]: safe to take the logarithm of.
double open_unit(RandomStream& rng) { return 1.0 - rng.next_double(); }

// Standard normal by Marsaglia's polar method (uses only log and sqrt; the
// second variate of each pair is dropped so sampling stays stateless).
double std_normal(RandomStream& rng) {
  for (;;) {
    double u = 2.0 * rng.next_double() - 1.0;
    double v = 2.0 * rng.next_double() - 1.0;
    double s = u * u + v * v;
    if (s >= 1.0 || s == 0.0) continue;
    return u * std::sqrt(-2.0 * std::log(s) / s);
  }
}

// Standard normal conditioned on [a, b], 0 <= a < b (b may be +inf):
// C. P. Robert, "Simulation of truncated normal variables" (1995).
double std_normal_right_tail(RandomStream& rng, double a, double b) {
  const double root = std::sqrt(a * a + 4.0);
  const double lambda = (a + root) / 2.0;
  // Below this width a uniform proposal beats the exponential one.
  const double uniform_width = 2.0 * std::sqrt(std::exp(1.0)) / (a + root) *
                               std::exp((a * a - a * root) / 4.0);
  if (b - a < uniform_width) {
    for (;;) {
      double z = a + (b - a) * rng.next_double();
      if (rng.next_double() <= std::exp((a * a - z * z) / 2.0)) return z;
    }
  }
  for (;;) {
    double z = a - std::log(open_unit(rng)) / lambda;
    if (z > b) continue;
    double d = z - lambda;
    if (rng.next_double() <= std::exp(-d * d / 2.0)) return z;
  }
}

// Standard normal conditioned on [a, b], a < b.
double std_normal_truncated(RandomStream& rng, double a, double b) {
  if (a >= 0) return std_normal_right_tail(rng, a, b);
  if (b <= 0) return -std_normal_right_tail(rng, -b, -a);
  // The interval holds the mode.
  if (b - a < std::sqrt(2.0 * kPi)) {
    for (;;) {
      double z = a + (b - a) * rng.next_double();
      if (rng.next_double() <= std::exp(-z * z / 2.0)) return z;
    }
  }
  for (;;) {  // width >= 2.5 around 0: plain rejection accepts >= 49%
    double z = std_normal(rng);
    if (z >= a && z <= b) return z;
  }
}

double phi(double x) { return std::isinf(x) ? 0.0 : std::exp(-x * x / 2.0) / std::sqrt(2 * kPi); }
// P(Z > x)
double upper_tail(double x) { return 0.5 * std::erfc(x / std::sqrt(2.0)); }
// P(a < Z < b), accurate in either tail.
double mass_between(double a, double b) {
  if (a >= 0) return upper_tail(a) - upper_tail(b);
  if (b <= 0) return upper_tail(-b) - upper_tail(-a);
  return 1.0 - upper_tail(b) - upper_tail(-a);
}
// x * phi(x), taken as 0 at infinity.
double x_phi(double x) { return std::isinf(x) ? 0.0 : x * phi(x); }

}  // namespace

// ---------------------------------------------------------------- factories

Distribution Distribution::constant(double value) {
  Distribution d(Kind::kConstant, value);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::uniform(double min, double max) {
  if (!std::isfinite(min) || !std::isfinite(max)) return invalid_error("min and max must be finite");
  if (min > max) {
    return invalid_error("min (" + fmt(min) + ") must not exceed max (" + fmt(max) + ")");
  }
  Distribution d(Kind::kUniform, min, max);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::exponential(double mean) {
  if (!(mean > 0) || !std::isfinite(mean)) {
    return invalid_error("mean must be > 0, got " + fmt(mean));
  }
  Distribution d(Kind::kExponential, mean);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::normal(double mean, double stddev) {
  if (!std::isfinite(mean)) return invalid_error("mean must be finite");
  if (!(stddev >= 0) || !std::isfinite(stddev)) {
    return invalid_error("stddev must be >= 0, got " + fmt(stddev));
  }
  Distribution d(Kind::kNormal, mean, stddev);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::truncated_normal(double mean, double stddev, double min,
                                                      double max) {
  if (!std::isfinite(mean)) return invalid_error("mean must be finite");
  if (!(stddev > 0) || !std::isfinite(stddev)) {
    return invalid_error("stddev must be > 0 for a truncated normal, got " + fmt(stddev));
  }
  if (!(min < max)) {
    return invalid_error("min (" + fmt(min) + ") must be less than max (" + fmt(max) + ")");
  }
  double a = (min - mean) / stddev, b = (max - mean) / stddev;
  if (!(mass_between(a, b) > 1e-300)) {
    return invalid_error("[min, max] = [" + fmt(min) + ", " + fmt(max) +
                         "] holds no probability mass of normal(mean=" + fmt(mean) +
                         ", stddev=" + fmt(stddev) + ")");
  }
  Distribution d(Kind::kTruncatedNormal, mean, stddev, min, max);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::lognormal(double mu, double sigma) {
  if (!std::isfinite(mu)) return invalid_error("mu must be finite");
  if (!(sigma >= 0) || !std::isfinite(sigma)) {
    return invalid_error("sigma must be >= 0, got " + fmt(sigma));
  }
  Distribution d(Kind::kLogNormal, mu, sigma);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::lognormal_from_moments(double mean, double stddev) {
  if (!(mean > 0) || !std::isfinite(mean)) {
    return invalid_error("mean must be > 0 for a lognormal, got " + fmt(mean));
  }
  if (!(stddev >= 0) || !std::isfinite(stddev)) {
    return invalid_error("stddev must be >= 0, got " + fmt(stddev));
  }
  double sigma2 = std::log1p((stddev / mean) * (stddev / mean));
  return lognormal(std::log(mean) - sigma2 / 2.0, std::sqrt(sigma2));
}

StatusOr<Distribution> Distribution::weibull(double shape, double scale) {
  if (!(shape > 0) || !std::isfinite(shape)) {
    return invalid_error("shape must be > 0, got " + fmt(shape));
  }
  if (!(scale > 0) || !std::isfinite(scale)) {
    return invalid_error("scale must be > 0, got " + fmt(scale));
  }
  Distribution d(Kind::kWeibull, shape, scale);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::pareto(double shape, double scale) {
  if (!(shape > 0) || !std::isfinite(shape)) {
    return invalid_error("shape must be > 0, got " + fmt(shape));
  }
  if (!(scale > 0) || !std::isfinite(scale)) {
    return invalid_error("scale must be > 0, got " + fmt(scale));
  }
  Distribution d(Kind::kPareto, shape, scale);
  d.compute_moments();
  return d;
}

StatusOr<Distribution> Distribution::empirical(std::vector<double> values, bool interpolate) {
  if (values.empty()) return invalid_error("needs at least one value");
  for (double v : values) {
    if (!std::isfinite(v)) return invalid_error("values must be finite");
  }
  std::sort(values.begin(), values.end());
  Distribution d(Kind::kEmpirical, interpolate && values.size() > 1 ? 1.0 : 0.0);
  d.values_ = std::make_shared<const std::vector<double>>(std::move(values));
  d.compute_moments();
  return d;
}

void Distribution::compute_moments() {
  switch (kind_) {
    case Kind::kConstant:
      mean_ = p_[0], variance_ = 0;
      break;
    case Kind::kUniform:
      mean_ = (p_[0] + p_[1]) / 2, variance_ = (p_[1] - p_[0]) * (p_[1] - p_[0]) / 12;
      break;
    case Kind::kExponential:
      mean_ = p_[0], variance_ = p_[0] * p_[0];
      break;
    case Kind::kNormal:
      mean_ = p_[0], variance_ = p_[1] * p_[1];
      break;
    case Kind::kTruncatedNormal: {
      double mu = p_[0], s = p_[1];
      double a = (p_[2] - mu) / s, b = (p_[3] - mu) / s;
      double z = mass_between(a, b);
      double shift = (phi(a) - phi(b)) / z;
      mean_ = mu + s * shift;
      variance_ = s * s * (1 + (x_phi(a) - x_phi(b)) / z - shift * shift);
      break;
    }
    case Kind::kLogNormal: {
      double s2 = p_[1] * p_[1];
      mean_ = std::exp(p_[0] + s2 / 2);
      variance_ = std::expm1(s2) * std::exp(2 * p_[0] + s2);
      break;
    }
    case Kind::kWeibull: {
      double g1 = std::tgamma(1 + 1 / p_[0]), g2 = std::tgamma(1 + 2 / p_[0]);
      mean_ = p_[1] * g1;
      variance_ = p_[1] * p_[1] * (g2 - g1 * g1);
      break;
    }
    case Kind::kPareto: {
      double a = p_[0], xm = p_[1];
      mean_ = a > 1 ? a * xm / (a - 1) : kInf;
      variance_ = a > 2 ? xm * xm * a / ((a - 1) * (a - 1) * (a - 2)) : kInf;
      break;
    }
    case Kind::kEmpirical: {
      const std::vector<double>& v = *values_;
      const size_t n = v.size();
      if (p_[0] == 0) {
        double sum = 0;
        for (double x : v) sum += x;
        mean_ = sum / static_cast<double>(n);
        double ss = 0;
        for (double x : v) ss += (x - mean_) * (x - mean_);
        variance_ = ss / static_cast<double>(n);
      } else {
        // n-1 segments of equal probability, uniform within each.
        double m1 = 0, m2 = 0;
        for (size_t i = 0; i + 1 < n; ++i) {
          double a = v[i], b = v[i + 1];
          m1 += (a + b) / 2;
          m2 += (a * a + a * b + b * b) / 3;
        }
        m1 /= static_cast<double>(n - 1);
        m2 /= static_cast<double>(n - 1);
        mean_ = m1;
        variance_ = std::max(0.0, m2 - m1 * m1);
      }
      break;
    }
  }
}

// ---------------------------------------------------------------- sampling

double Distribution::sample(RandomStream& rng) const {
  switch (kind_) {
    case Kind::kConstant:
      return p_[0];
    case Kind::kUniform:
      return p_[0] + (p_[1] - p_[0]) * rng.next_double();
    case Kind::kExponential:
      return -p_[0] * std::log(open_unit(rng));
    case Kind::kNormal:
      return p_[0] + p_[1] * std_normal(rng);
    case Kind::kTruncatedNormal: {
      double a = (p_[2] - p_[0]) / p_[1], b = (p_[3] - p_[0]) / p_[1];
      double x = p_[0] + p_[1] * std_normal_truncated(rng, a, b);
      return std::clamp(x, p_[2], p_[3]);  // guard the last ulp
    }
    case Kind::kLogNormal:
      return std::exp(p_[0] + p_[1] * std_normal(rng));
    case Kind::kWeibull:
      return p_[1] * std::pow(-std::log(open_unit(rng)), 1.0 / p_[0]);
    case Kind::kPareto:
      return p_[1] * std::pow(open_unit(rng), -1.0 / p_[0]);
    case Kind::kEmpirical: {
      const std::vector<double>& v = *values_;
      if (p_[0] == 0) return v[rng.next_below(v.size())];
      double pos = rng.next_double() * static_cast<double>(v.size() - 1);
      size_t i = static_cast<size_t>(pos);
      double frac = pos - static_cast<double>(i);
      return v[i] + frac * (v[i + 1] - v[i]);
    }
  }
  return 0;
}

Duration Distribution::sample_duration(RandomStream& rng) const {
  double ns = sample(rng);
  if (!(ns > 0)) return Duration::zero();  // also NaN
  if (ns >= 9.2e18) return Duration::max();
  return Duration(std::llround(ns));
}

double Distribution::mean() const { return mean_; }
double Distribution::variance() const { return variance_; }

std::string Distribution::describe() const {
  switch (kind_) {
    case Kind::kConstant:
      return "constant(" + fmt(p_[0]) + ")";
    case Kind::kUniform:
      return "uniform(min=" + fmt(p_[0]) + ", max=" + fmt(p_[1]) + ")";
    case Kind::kExponential:
      return "exponential(mean=" + fmt(p_[0]) + ")";
    case Kind::kNormal:
      return "normal(mean=" + fmt(p_[0]) + ", stddev=" + fmt(p_[1]) + ")";
    case Kind::kTruncatedNormal:
      return "truncated_normal(mean=" + fmt(p_[0]) + ", stddev=" + fmt(p_[1]) +
             ", min=" + fmt(p_[2]) + ", max=" + fmt(p_[3]) + ")";
    case Kind::kLogNormal:
      return "lognormal(mu=" + fmt(p_[0]) + ", sigma=" + fmt(p_[1]) + ")";
    case Kind::kWeibull:
      return "weibull(shape=" + fmt(p_[0]) + ", scale=" + fmt(p_[1]) + ")";
    case Kind::kPareto:
      return "pareto(shape=" + fmt(p_[0]) + ", scale=" + fmt(p_[1]) + ")";
    case Kind::kEmpirical:
      return std::string("empirical(") + std::to_string(values_->size()) + " values" +
             (p_[0] != 0 ? ", interpolated)" : ")");
  }
  return "?";
}

// ---------------------------------------------------------------- parsing

StatusOr<double> parse_number_with_suffix(std::string_view text) {
  std::string s(text);
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kBadRequest, "invalid number \"" + s + "\": " + why);
  };
  if (s.empty()) return bad("empty");
  const char* begin = s.c_str();
  char* end = nullptr;
  double v = std::strtod(begin, &end);
  if (end == begin) return bad("expected a number");
  std::string suffix(end);
  static const std::map<std::string, double> kSuffixes = {
      {"", 1},           {"k", 1e3},          {"M", 1e6},          {"G", 1e9},
      {"T", 1e12},       {"P", 1e15},         {"Ki", 1024.0},      {"Mi", 1048576.0},
      {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}, {"Pi", 1125899906842624.0}};
  auto it = kSuffixes.find(suffix);
  if (it == kSuffixes.end()) {
    return bad("unknown suffix \"" + suffix + "\" (use k, M, G, T, P, Ki, Mi, Gi, Ti or Pi)");
  }
  if (!std::isfinite(v)) return bad("not finite");
  return v * it->second;
}

namespace {

// Reads scalars of one field type (durations in ns, or plain numbers).
struct ValueType {
  bool duration;
  const char* noun() const { return duration ? "duration" : "number"; }
};

class Parser {
 public:
  Parser(ValueType type, const DistributionParseOptions& options)
      : type_(type), options_(options) {}

  StatusOr<Distribution> parse(const YAML::Node& node, const std::string& path);

 private:
  static std::string where(const YAML::Node& node, const std::string& path) {
    const YAML::Mark m = node.Mark();
    if (m.is_null() || m.line < 0) return path;
    return path + " (line " + std::to_string(m.line + 1) + ", column " +
           std::to_string(m.column + 1) + ")";
  }
  static Status error(const YAML::Node& node, const std::string& path, const std::string& what) {
    return invalid_error(where(node, path) + ": " + what);
  }

  StatusOr<double> scalar_value(const YAML::Node& node, const std::string& path) const {
    if (!node.IsScalar()) {
      return error(node, path, std::string("expected a ") + type_.noun() + ", got a " +
                                   (node.IsMap() ? "map" : node.IsSequence() ? "list" : "null"));
    }
    return text_value(node.Scalar(), node, path);
  }
  StatusOr<double> text_value(const std::string& text, const YAML::Node& node,
                              const std::string& path) const {
    StatusOr<double> v = raw_value(text);
    if (!v) return error(node, path, v.status().message());
    return v;
  }
  // Without location: the caller adds it.
  StatusOr<double> raw_value(const std::string& text) const {
    if (type_.duration) {
      StatusOr<Duration> d = parse_duration(text);
      if (!d) return d.status();
      return static_cast<double>(d->count());
    }
    return parse_number_with_suffix(text);
  }
  static StatusOr<double> plain_number(const YAML::Node& node, const std::string& path) {
    if (!node.IsScalar()) return error(node, path, "expected a plain number");
    const std::string& s = node.Scalar();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v)) {
      return error(node, path, "expected a plain number, got \"" + s + "\"");
    }
    return v;
  }
  static StatusOr<bool> boolean(const YAML::Node& node, const std::string& path) {
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    return error(node, path, "expected true or false");
  }

  StatusOr<Distribution> parse_empirical(const YAML::Node& body, const std::string& path,
                                         const std::map<std::string, YAML::Node>& params);
  StatusOr<std::vector<double>> read_csv(const YAML::Node& body, const std::string& path,
                                         const std::map<std::string, YAML::Node>& params);

  ValueType type_;
  const DistributionParseOptions& options_;
};

const char* const kKinds =
    "constant, uniform, exponential, normal, truncated_normal, lognormal, weibull, pareto, "
    "empirical";

// Allowed parameter names per kind, for "unknown parameter" errors.
const std::map<std::string, std::set<std::string>>& allowed_params() {
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"constant", {"value"}},
      {"uniform", {"min", "max"}},
      {"exponential", {"mean"}},
      {"normal", {"mean", "stddev", "min", "max"}},
      {"truncated_normal", {"mean", "stddev", "min", "max"}},
      {"lognormal", {"mean", "stddev", "median", "mu", "sigma"}},
      {"weibull", {"shape", "scale"}},
      {"pareto", {"shape", "alpha", "scale", "xm"}},
      {"empirical", {"values", "csv", "column", "header", "unit", "interpolate"}},
  };
  return kAllowed;
}

std::string join(const std::set<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

StatusOr<Distribution> Parser::parse(const YAML::Node& node, const std::string& path) {
  if (!node.IsDefined() || node.IsNull()) {
    return error(node, path, "missing distribution (give a value like \"5s\" or a map such as "
                             "{exponential: {mean: 30s}})");
  }
  if (node.IsScalar()) {
    StatusOr<double> v = scalar_value(node, path);
    if (!v) return v.status();
    return Distribution::constant(*v);
  }
  if (node.IsSequence()) {
    return error(node, path, "expected a distribution (a value or a one-key map), got a list");
  }
  if (node.size() != 1) {
    return error(node, path, "a distribution is a map with exactly one key naming its kind (" +
                                 std::string(kKinds) + "), got " + std::to_string(node.size()) +
                                 " keys");
  }
  const auto entry = *node.begin();
  if (!entry.first.IsScalar()) {
    return error(entry.first, path, "expected the name of a distribution kind (" +
                                        std::string(kKinds) + ") as the key");
  }
  const std::string kind = entry.first.as<std::string>();
  const YAML::Node body = entry.second;
  const std::string kpath = path + "." + kind;
  auto allowed_it = allowed_params().find(kind);
  if (allowed_it == allowed_params().end()) {
    return error(entry.first, path, "unknown distribution \"" + kind + "\" (expected one of " +
                                        kKinds + ")");
  }
  const std::set<std::string>& allowed = allowed_it->second;

  // A scalar body is shorthand for the kind's main parameter.
  std::map<std::string, YAML::Node> params;
  if (body.IsScalar()) {
    if (kind == "constant") params["value"] = body;
    else if (kind == "exponential") params["mean"] = body;
    else return error(body, kpath, "expected a map of parameters (" + join(allowed) + ")");
  } else if (body.IsMap()) {
    for (const auto& p : body) {
      if (!p.first.IsScalar()) {
        return error(p.first, kpath, "expected a parameter name (" + join(allowed) + ")");
      }
      std::string name = p.first.as<std::string>();
      if (!allowed.count(name)) {
        return error(p.first, kpath, "unknown parameter \"" + name + "\" for " + kind +
                                         " (expected " + join(allowed) + ")");
      }
      params[name] = p.second;
    }
  } else {
    return error(body, kpath, "expected a map of parameters (" + join(allowed) + ")");
  }

  auto has = [&](const char* name) { return params.count(name) > 0; };
  auto missing = [&](const char* name) {
    return error(body, kpath, std::string("missing parameter \"") + name + "\" for " + kind);
  };
  // A value of the field's type (with units).
  auto value = [&](const char* name) -> StatusOr<double> {
    if (!has(name)) return missing(name);
    return scalar_value(params[name], kpath + "." + name);
  };
  // A dimensionless parameter (shape, sigma).
  auto number = [&](const char* name) -> StatusOr<double> {
    if (!has(name)) return missing(name);
    return plain_number(params[name], kpath + "." + name);
  };
  // Attaches the location of parameter `name` (or the body) to a factory error.
  auto located = [&](StatusOr<Distribution> d, const char* name) -> StatusOr<Distribution> {
    if (d) return d;
    const bool at_param = name != nullptr && has(name);
    std::string message = d.status().message();
    // Quote the value as written ("-5s"), not as held (nanoseconds).
    size_t got = message.rfind(", got ");
    if (at_param && got != std::string::npos && params[name].IsScalar()) {
      message = message.substr(0, got) + ", got " + params[name].Scalar();
    }
    return error(at_param ? params[name] : body, at_param ? kpath + "." + name : kpath, message);
  };
#define FLOTILLA_TRY_ASSIGN(var, expr) \
  auto var##_or = (expr);              \
  if (!var##_or) return var##_or.status(); \
  const double var = *var##_or

  if (kind == "constant") {
    FLOTILLA_TRY_ASSIGN(v, value("value"));
    return Distribution::constant(v);
  }
  if (kind == "uniform") {
    FLOTILLA_TRY_ASSIGN(lo, value("min"));
    FLOTILLA_TRY_ASSIGN(hi, value("max"));
    if (lo > hi) {
      return error(params["max"], kpath + ".max", "min (" + params["min"].Scalar() +
                                                      ") must not exceed max (" +
                                                      params["max"].Scalar() + ")");
    }
    return located(Distribution::uniform(lo, hi), "max");
  }
  if (kind == "exponential") {
    FLOTILLA_TRY_ASSIGN(mean, value("mean"));
    return located(Distribution::exponential(mean), "mean");
  }
  if (kind == "normal" || kind == "truncated_normal") {
    FLOTILLA_TRY_ASSIGN(mean, value("mean"));
    FLOTILLA_TRY_ASSIGN(stddev, value("stddev"));
    if (stddev < 0) {
      return error(params["stddev"], kpath + ".stddev", "stddev must be >= 0, got " +
                                                            params["stddev"].Scalar());
    }
    if (kind == "truncated_normal" && !has("min") && !has("max")) {
      return error(body, kpath, "truncated_normal needs at least one of \"min\" and \"max\"");
    }
    if (!has("min") && !has("max")) return located(Distribution::normal(mean, stddev), "stddev");
    double lo = -kInf, hi = kInf;
    if (has("min")) {
      FLOTILLA_TRY_ASSIGN(v, value("min"));
      lo = v;
    }
    if (has("max")) {
      FLOTILLA_TRY_ASSIGN(v, value("max"));
      hi = v;
    }
    if (stddev == 0) {
      if (mean < lo || mean > hi) {
        return error(body, kpath, "mean lies outside [min, max] and stddev is 0");
      }
      return Distribution::constant(mean);
    }
    return located(Distribution::truncated_normal(mean, stddev, lo, hi), nullptr);
  }
  if (kind == "lognormal") {
    const bool by_moments = has("mean") || has("stddev");
    const bool by_median = has("median");
    const bool by_log = has("mu");
    if (int(by_moments) + int(by_median) + int(by_log) != 1) {
      return error(body, kpath, "lognormal takes either {mean, stddev} of the value, "
                                "{median, sigma}, or {mu, sigma} of its logarithm");
    }
    if (by_moments) {
      FLOTILLA_TRY_ASSIGN(mean, value("mean"));
      FLOTILLA_TRY_ASSIGN(stddev, value("stddev"));
      return located(Distribution::lognormal_from_moments(mean, stddev),
                     mean <= 0 ? "mean" : "stddev");
    }
    FLOTILLA_TRY_ASSIGN(sigma, number("sigma"));
    if (by_median) {
      FLOTILLA_TRY_ASSIGN(median, value("median"));
      if (!(median > 0)) return error(params["median"], kpath + ".median", "median must be > 0");
      return located(Distribution::lognormal(std::log(median), sigma), "sigma");
    }
    FLOTILLA_TRY_ASSIGN(mu, number("mu"));
    // mu is the log of the value in seconds for durations; we hold nanoseconds.
    const double shift = type_.duration ? std::log(1e9) : 0.0;
    return located(Distribution::lognormal(mu + shift, sigma), "sigma");
  }
  if (kind == "weibull") {
    FLOTILLA_TRY_ASSIGN(shape, number("shape"));
    FLOTILLA_TRY_ASSIGN(scale, value("scale"));
    return located(Distribution::weibull(shape, scale), shape <= 0 ? "shape" : "scale");
  }
  if (kind == "pareto") {
    if (has("shape") == has("alpha")) {
      return error(body, kpath, "pareto needs exactly one of \"shape\" and \"alpha\"");
    }
    if (has("scale") == has("xm")) {
      return error(body, kpath, "pareto needs exactly one of \"scale\" and \"xm\"");
    }
    const char* shape_name = has("shape") ? "shape" : "alpha";
    const char* scale_name = has("scale") ? "scale" : "xm";
    FLOTILLA_TRY_ASSIGN(shape, number(shape_name));
    FLOTILLA_TRY_ASSIGN(scale, value(scale_name));
    return located(Distribution::pareto(shape, scale), shape <= 0 ? shape_name : scale_name);
  }
#undef FLOTILLA_TRY_ASSIGN
  return parse_empirical(body, kpath, params);
}

StatusOr<Distribution> Parser::parse_empirical(const YAML::Node& body, const std::string& path,
                                               const std::map<std::string, YAML::Node>& params) {
  auto has = [&](const char* name) { return params.count(name) > 0; };
  bool interpolate = false;
  if (has("interpolate")) {
    StatusOr<bool> b = boolean(params.at("interpolate"), path + ".interpolate");
    if (!b) return b.status();
    interpolate = *b;
  }
  if (has("values") == has("csv")) {
    return error(body, path, "empirical needs exactly one of \"values\" (a list) and \"csv\" "
                             "(a file path, with \"column\")");
  }
  std::vector<double> values;
  if (has("values")) {
    for (const char* csv_only : {"column", "header", "unit"}) {
      if (has(csv_only)) {
        return error(params.at(csv_only), path + "." + csv_only,
                     std::string("\"") + csv_only + "\" applies only with \"csv\"");
      }
    }
    const YAML::Node& list = params.at("values");
    if (!list.IsSequence()) return error(list, path + ".values", "expected a list of values");
    if (list.size() == 0) return error(list, path + ".values", "needs at least one value");
    for (size_t i = 0; i < list.size(); ++i) {
      StatusOr<double> v = scalar_value(list[i], path + ".values[" + std::to_string(i) + "]");
      if (!v) return v.status();
      values.push_back(*v);
    }
  } else {
    StatusOr<std::vector<double>> read = read_csv(body, path, params);
    if (!read) return read.status();
    values = std::move(*read);
  }
  StatusOr<Distribution> d = Distribution::empirical(std::move(values), interpolate);
  if (!d) return error(body, path, d.status().message());
  return d;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.push_back(cell);
      cell.clear();
    } else {
      cell += c;
    }
  }
  cells.push_back(cell);
  for (std::string& s : cells) {
    size_t b = s.find_first_not_of(" \t\r");
    size_t e = s.find_last_not_of(" \t\r");
    s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  }
  return cells;
}

StatusOr<std::vector<double>> Parser::read_csv(const YAML::Node& body, const std::string& path,
                                               const std::map<std::string, YAML::Node>& params) {
  auto has = [&](const char* name) { return params.count(name) > 0; };
  const YAML::Node& csv_node = params.at("csv");
  if (!csv_node.IsScalar() || csv_node.Scalar().empty()) {
    return error(csv_node, path + ".csv", "expected a file path");
  }
  if (!has("column")) {
    return error(body, path, "missing parameter \"column\" (a header name or a 0-based index)");
  }
  bool header = true;
  if (has("header")) {
    StatusOr<bool> b = boolean(params.at("header"), path + ".header");
    if (!b) return b.status();
    header = *b;
  }
  // Bare numbers in the file are read in this unit (durations only).
  double unit_ns = 0;
  if (has("unit")) {
    const YAML::Node& u = params.at("unit");
    if (!type_.duration) return error(u, path + ".unit", "\"unit\" applies to durations only");
    StatusOr<Duration> d = u.IsScalar() ? parse_duration("1" + u.Scalar())
                                        : StatusOr<Duration>(bad_request_error("not a unit"));
    if (!d) return error(u, path + ".unit", "expected a unit: ns, us, ms, s, m, h or d");
    unit_ns = static_cast<double>(d->count());
  }

  std::filesystem::path file(csv_node.Scalar());
  if (file.is_relative() && !options_.base_dir.empty()) file = options_.base_dir / file;
  std::ifstream in(file);
  if (!in) return error(csv_node, path + ".csv", "cannot open \"" + file.string() + "\"");

  std::string line;
  size_t line_no = 0;
  std::vector<std::string> names;
  if (header) {
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") != std::string::npos) break;
    }
    names = split_csv_line(line);
  }
  const YAML::Node& col_node = params.at("column");
  if (!col_node.IsScalar()) return error(col_node, path + ".column", "expected a name or index");
  size_t column = 0;
  {
    const std::string& c = col_node.Scalar();
    char* end = nullptr;
    long idx = std::strtol(c.c_str(), &end, 10);
    if (!c.empty() && *end == '\0') {
      if (idx < 0) return error(col_node, path + ".column", "index must be >= 0");
      column = static_cast<size_t>(idx);
    } else {
      if (!header) {
        return error(col_node, path + ".column",
                     "a column name needs a header row (header: false was given)");
      }
      auto it = std::find(names.begin(), names.end(), c);
      if (it == names.end()) {
        std::string known;
        for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
        return error(col_node, path + ".column",
                     "no column \"" + c + "\" in " + file.string() + " (columns: " + known + ")");
      }
      column = static_cast<size_t>(it - names.begin());
    }
  }

  std::vector<double> values;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<std::string> cells = split_csv_line(line);
    const std::string at = file.string() + ":" + std::to_string(line_no);
    if (column >= cells.size()) {
      return error(csv_node, path + ".csv", at + ": no column " + std::to_string(column));
    }
    const std::string& cell = cells[column];
    if (cell.empty()) continue;  // missing value
    if (type_.duration && unit_ns > 0) {
      char* end = nullptr;
      double v = std::strtod(cell.c_str(), &end);
      if (*end == '\0' && std::isfinite(v)) {
        values.push_back(v * unit_ns);
        continue;
      }
    }
    StatusOr<double> v = raw_value(cell);
    if (!v) return error(csv_node, path + ".csv", at + ": " + v.status().message());
    values.push_back(*v);
  }
  if (values.empty()) {
    return error(csv_node, path + ".csv", "no values in " + file.string());
  }
  return values;
}

}  // namespace

StatusOr<Distribution> parse_duration_distribution(const YAML::Node& node,
                                                   std::string_view field_path,
                                                   const DistributionParseOptions& options) {
  return Parser(ValueType{true}, options).parse(node, std::string(field_path));
}

StatusOr<Distribution> parse_number_distribution(const YAML::Node& node,
                                                 std::string_view field_path,
                                                 const DistributionParseOptions& options) {
  return Parser(ValueType{false}, options).parse(node, std::string(field_path));
}

}  // namespace flotilla::sim
