// Metrics from a trace, in one streaming pass: time-weighted service
// availability and ready-endpoint distributions, request latency percentiles,
// controller readiness, node failures and downtime, pod churn and scheduling
// latency, plus bucketed time series for CSVs and plots. Feed records in trace
// order, then finish() at the run's end time.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/api/trace.pb.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::analysis {

struct ServiceMetrics {
  double availability = 0;  // fraction of time with >= 1 ready endpoint
  std::map<int, double> ready_endpoints_time_fraction;
  int64_t requests_total = 0;
  int64_t requests_failed = 0;
  double latency_mean_ms = 0, latency_p50_ms = 0, latency_p90_ms = 0, latency_p99_ms = 0;
  double first_ready_s = -1;  // when it first had a ready endpoint; -1 never
};

struct ControllerMetrics {
  int64_t desired = 0;             // at the end
  int64_t ready = 0;               // at the end
  double ready_time_fraction = 0;  // fraction of time with ready >= desired
};

struct NodeMetrics {
  int64_t count = 0;
  int64_t failures = 0;
  double downtime_fraction = 0;
  double mttf_s = 0;  // measured: up time / failures (0 when no failure)
  double mttr_s = 0;  // measured: mean length of completed down periods
};

struct PodMetrics {
  int64_t created = 0;
  int64_t restarts = 0;
  int64_t evicted = 0;
  int64_t scheduled = 0;
  double scheduling_latency_p50_ms = 0;
  double scheduling_latency_p99_ms = 0;
  double max_pending_s = 0;  // longest a pod waited unscheduled (incl. still pending at end)
  int64_t pending_at_end = 0;
};

struct Metrics {
  double start_s = 0, end_s = 0;
  int64_t records = 0;
  std::map<std::string, ServiceMetrics> services;        // "<ns>/<name>"
  std::map<std::string, ControllerMetrics> controllers;  // "<ns>/<name>"
  NodeMetrics nodes;
  PodMetrics pods;
  std::vector<double> scheduling_latencies_ms;  // sorted, for the CDF
};

// One row per bucket of the run, for CSVs and plots.
struct TimeSeries {
  double bucket_s = 0;
  std::vector<double> t;  // bucket end times, seconds
  std::map<std::string, std::vector<int64_t>> ready_endpoints;           // per service
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> replicas;  // desired, ready
  std::vector<int64_t> nodes_up;
  std::vector<int64_t> requests, requests_failed;
  std::vector<double> latency_p50_ms, latency_p99_ms;  // NaN in buckets without requests
  std::vector<double> cpu_allocated, memory_allocated;  // fractions, NaN without samples
};

class MetricsCollector {
 public:
  // Time series are bucketed on the fly with width `bucket` (> 0) from `start`.
  MetricsCollector(TimePoint start, Duration bucket);
  void add(const trace::Record& r);
  // Closes every open interval at `end`. Call once, after the last add().
  void finish(TimePoint end);

  const Metrics& metrics() const { return metrics_; }
  const TimeSeries& series() const { return series_; }

 private:
  // A piecewise-constant count over time, measured from the first time it
  // became positive.
  struct Level {
    int64_t value = 0;
    int64_t since_ns = 0;
    bool started = false;
    int64_t start_ns = 0;
    std::map<int64_t, int64_t> time_at;  // value -> ns spent
    void set(int64_t now_ns, int64_t v);
  };
  struct ServiceState {
    Level ready;
    std::vector<double> latencies_ms;
    int64_t failed = 0;
  };
  struct ControllerState {
    int64_t desired = 0, ready = 0;
    bool started = false;
    int64_t start_ns = 0, since_ns = 0, ok_ns = 0;
    void set(int64_t now_ns, int64_t d, int64_t r);
  };
  struct NodeState {
    bool up = true;
    int64_t down_since = 0;
    int64_t up_since = 0;
  };

  void close_buckets_until(int64_t t_ns);
  void close_one_bucket();

  int64_t start_ns_, bucket_ns_, bucket_end_ns_;
  Metrics metrics_;
  TimeSeries series_;
  std::map<std::string, ServiceState> services_;
  std::map<std::string, ControllerState> controllers_;
  std::map<std::string, NodeState> nodes_;
  std::unordered_map<std::string, int64_t> pending_since_;  // pod uid -> created ns
  int64_t nodes_up_ = 0;
  int64_t up_ns_total_ = 0, down_ns_total_ = 0, repaired_count_ = 0, repair_ns_total_ = 0;
  int64_t last_ns_ = 0;
  // The bucket being filled.
  std::vector<double> bucket_latencies_;
  int64_t bucket_requests_ = 0, bucket_failed_ = 0;
  double cpu_fraction_ = std::numeric_limits<double>::quiet_NaN();
  double memory_fraction_ = std::numeric_limits<double>::quiet_NaN();
};

// Reads a trace file and computes its metrics; the run spans from its
// RUN_STARTED to its RUN_ENDED record (or first to last record), bucketed into
// about 720 buckets.
StatusOr<MetricsCollector> collect_metrics(const std::string& trace_path);

// The summary.json "services" / "controllers" / "nodes" / "pods" members.
nlohmann::ordered_json metrics_to_json(const Metrics& m);

// Writes the time series as CSV files into `dir`: services.csv, controllers.csv,
// nodes.csv, requests.csv, allocation.csv, scheduling_latency_cdf.csv.
Status write_time_series_csv(const MetricsCollector& c, const std::string& dir);

}  // namespace flotilla::analysis
