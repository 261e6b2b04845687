// Analytical models to check a run against theory: steady-state availability
// of k-out-of-n systems with exponential failures and repairs, and queueing
// formulas for a service (M/M/1 per pod under random balancing, M/M/c for a
// shared queue). Times are in seconds, rates per second.
#pragma once

#include <optional>

namespace flotilla::analysis {

// Probability that at least k of n independent units are up, each with
// availability mttf / (mttf + mttr) (one repair crew per unit).
double k_of_n_availability(int n, int k, double mttf, double mttr);

// The same with a limited number of repair crews, as a birth-death Markov
// chain solved for its stationary distribution (Eigen). crews >= n equals the
// independent case.
double k_of_n_availability_ctmc(int n, int k, double mttf, double mttr, int crews);

struct QueueModel {
  double utilization = 0;        // rho per server
  double mean_response_s = 0;    // waiting + service
  double p50_response_s = 0;
  double p99_response_s = 0;
  double probability_wait = 0;   // an arrival waits (Erlang C for M/M/c)
  bool stable = false;           // rho < 1; other fields are meaningless otherwise
};

// One M/M/1 server with arrival rate lambda and service rate mu.
QueueModel mm1(double lambda, double mu);
// c pods, each its own FIFO queue, each request sent to a random pod: c
// independent M/M/1 queues with arrival rate lambda / c.
QueueModel mm1_random_balancing(double lambda, double mu, int c);
// One queue feeding c servers (M/M/c, Erlang C). Percentiles of the response
// time are computed numerically from its distribution.
QueueModel mmc(double lambda, double mu, int c);

}  // namespace flotilla::analysis
