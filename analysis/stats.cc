#include "analysis/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace flotilla::analysis {

double percentile_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  return percentile_sorted(values, q);
}

namespace {

// Regularized incomplete beta by continued fraction (Numerical Recipes' betacf).
double betacf(double a, double b, double x) {
  const int kMaxIt = 300;
  const double kEps = 1e-14, kFpMin = 1e-300;
  double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < kFpMin) d = kFpMin;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIt; ++m) {
    int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kFpMin) d = kFpMin;
    c = 1 + aa / c;
    if (std::fabs(c) < kFpMin) c = kFpMin;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kFpMin) d = kFpMin;
    c = 1 + aa / c;
    if (std::fabs(c) < kFpMin) c = kFpMin;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < kEps) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double bt = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) +
                       b * std::log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
  return 1 - bt * betacf(b, a, 1 - x) / b;
}

// P(|T| <= t) for Student's t with v degrees of freedom.
double t_two_sided_cdf(double t, int v) {
  double x = v / (v + t * t);
  return 1 - incomplete_beta(v / 2.0, 0.5, x);
}

}  // namespace

double student_t_critical(double confidence, int dof) {
  if (dof < 1) return 0;
  double lo = 0, hi = 1000;
  for (int i = 0; i < 200; ++i) {
    double mid = (lo + hi) / 2;
    if (t_two_sided_cdf(mid, dof) < confidence) lo = mid; else hi = mid;
  }
  return (lo + hi) / 2;
}

Interval confidence_interval(const Eigen::VectorXd& samples, double confidence) {
  Interval out;
  out.n = static_cast<int>(samples.size());
  if (out.n == 0) return out;
  out.mean = samples.mean();
  if (out.n < 2) return out;
  double var = (samples.array() - out.mean).square().sum() / (out.n - 1);
  out.stddev = std::sqrt(var);
  out.half_width = student_t_critical(confidence, out.n - 1) * out.stddev / std::sqrt(out.n);
  return out;
}

}  // namespace flotilla::analysis
