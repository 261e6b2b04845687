#include "analysis/models.h"

#include <Eigen/Dense>

#include <cmath>

namespace flotilla::analysis {

double k_of_n_availability(int n, int k, double mttf, double mttr) {
  if (k <= 0) return 1;
  if (k > n) return 0;
  double a = mttf / (mttf + mttr);
  double total = 0;
  for (int i = k; i <= n; ++i) {
    double log_c = std::lgamma(n + 1) - std::lgamma(i + 1) - std::lgamma(n - i + 1);
    total += std::exp(log_c + i * std::log(a) + (n - i) * std::log1p(-a));
  }
  return std::min(1.0, total);
}

double k_of_n_availability_ctmc(int n, int k, double mttf, double mttr, int crews) {
  if (k <= 0) return 1;
  if (k > n) return 0;
  // State j = number of units down, 0..n. Failure rate (n-j)/mttf, repair rate
  // min(j, crews)/mttr. Solve pi Q = 0, sum pi = 1.
  const int states = n + 1;
  Eigen::MatrixXd q = Eigen::MatrixXd::Zero(states, states);
  for (int j = 0; j < states; ++j) {
    if (j < n) q(j, j + 1) = (n - j) / mttf;
    if (j > 0) q(j, j - 1) = std::min(j, crews) / mttr;
    q(j, j) = -q.row(j).sum();
  }
  Eigen::MatrixXd a = q.transpose();
  a.row(states - 1).setOnes();
  Eigen::VectorXd b = Eigen::VectorXd::Zero(states);
  b(states - 1) = 1;
  Eigen::VectorXd pi = a.colPivHouseholderQr().solve(b);
  double up = 0;
  for (int j = 0; j <= n - k; ++j) up += pi(j);
  return std::clamp(up, 0.0, 1.0);
}

QueueModel mm1(double lambda, double mu) {
  QueueModel m;
  m.utilization = lambda / mu;
  m.stable = lambda < mu;
  if (!m.stable) return m;
  double rate = mu - lambda;  // response time ~ Exp(mu - lambda)
  m.mean_response_s = 1 / rate;
  m.p50_response_s = std::log(2.0) / rate;
  m.p99_response_s = std::log(100.0) / rate;
  m.probability_wait = m.utilization;
  return m;
}

QueueModel mm1_random_balancing(double lambda, double mu, int c) {
  return mm1(lambda / c, mu);
}

QueueModel mmc(double lambda, double mu, int c) {
  QueueModel m;
  double a = lambda / mu;  // offered load in Erlangs
  m.utilization = a / c;
  m.stable = m.utilization < 1;
  if (!m.stable) return m;
  // Erlang C via the numerically stable Erlang B recursion.
  double b = 1;
  for (int i = 1; i <= c; ++i) b = a * b / (i + a * b);
  double pw = b / (1 - m.utilization * (1 - b));
  m.probability_wait = pw;
  double theta = c * mu - lambda;  // waiting time, given a wait, ~ Exp(theta)
  m.mean_response_s = pw / theta + 1 / mu;
  // P(T > t) for T = W + S, S ~ Exp(mu), W = 0 w.p. 1-pw else Exp(theta).
  auto tail = [&](double t) {
    double s = std::exp(-mu * t);
    double w;
    if (std::fabs(theta - mu) < 1e-12) {
      w = (1 + mu * t) * std::exp(-mu * t);
    } else {
      w = (theta * std::exp(-mu * t) - mu * std::exp(-theta * t)) / (theta - mu);
    }
    return (1 - pw) * s + pw * w;
  };
  auto quantile = [&](double q) {
    double lo = 0, hi = 1 / mu;
    while (tail(hi) > 1 - q) hi *= 2;
    for (int i = 0; i < 100; ++i) {
      double mid = (lo + hi) / 2;
      if (tail(mid) > 1 - q) lo = mid; else hi = mid;
    }
    return (lo + hi) / 2;
  };
  m.p50_response_s = quantile(0.5);
  m.p99_response_s = quantile(0.99);
  return m;
}

}  // namespace flotilla::analysis
