// Statistics used across analysis: exact percentiles, time-weighted averages,
// and confidence intervals across independent runs (Student's t), written on
// Eigen vectors.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <vector>

namespace flotilla::analysis {

// The q-quantile (0 <= q <= 1) of `values` by linear interpolation between
// order statistics (type 7, numpy's default). Sorts a copy; NaN when empty.
double percentile(std::vector<double> values, double q);
// The same on data already sorted ascending.
double percentile_sorted(const std::vector<double>& sorted, double q);

struct Interval {
  double mean = 0;
  double half_width = 0;  // mean +- half_width is the confidence interval
  double stddev = 0;      // sample standard deviation
  int n = 0;
};

// Mean with a two-sided confidence interval (default 95%) from independent
// samples, using Student's t with n-1 degrees of freedom. n < 2 gives a zero
// half width.
Interval confidence_interval(const Eigen::VectorXd& samples, double confidence = 0.95);

// Two-sided Student's t critical value for `confidence` with `dof` degrees of freedom.
double student_t_critical(double confidence, int dof);

}  // namespace flotilla::analysis
