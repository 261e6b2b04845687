// Replay metrics: what happened to a replayed trace's pods in a run (read back
// from the run's trace file) next to what the original trace says happened to
// them: submitted / placed / never placed, peak pending, queueing delay (the
// trace's scheduled_time - creation_time vs the replay's POD_SCHEDULED), and
// allocation over time. Writes replay_comparison.csv, replay_queueing_cdf.csv
// and replay.html with gnuplot SVGs.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/util/status.h"

namespace flotilla::analysis {

// One replayed pod as the original trace describes it, on the replay's time
// axis (seconds from the run's start).
struct ReplayPod {
  std::string name;  // namespace "default"
  double created_s = 0;
  std::optional<double> trace_scheduled_s;  // absent: the trace never placed it
  std::optional<double> deleted_s;          // absent: lives to the end
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  int64_t gpu_milli = 0;
};

struct ReplayCapacity {
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  int64_t gpu_milli = 0;
};

struct QueueingDelay {
  int64_t count = 0;
  double mean_s = 0;
  double p50_s = 0;
  double p99_s = 0;
  double max_s = 0;
};

// Allocation and pending pods at the end of each bucket, trace vs replay.
struct ReplaySeriesPoint {
  double t_s = 0;
  double trace_cpu = 0, replay_cpu = 0;  // fractions of the cluster's capacity
  double trace_memory = 0, replay_memory = 0;
  double trace_gpu = 0, replay_gpu = 0;
  int64_t trace_pending = 0, replay_pending = 0;
  int64_t trace_running = 0, replay_running = 0;
};

struct ReplayMetrics {
  int64_t pods_submitted = 0;     // POD_CREATED for a trace pod
  int64_t pods_placed = 0;        // scheduled at least once
  int64_t pods_never_placed = 0;  // submitted, never scheduled
  int64_t peak_pending = 0;       // most trace pods waiting at once
  QueueingDelay queueing;         // replay, placed pods
  // The same figures from the trace itself, over the same pods.
  int64_t trace_pods_placed = 0;
  int64_t trace_peak_pending = 0;
  QueueingDelay trace_queueing;
  std::vector<double> replay_delays_s, trace_delays_s;  // sorted, for the CDFs
  std::vector<ReplaySeriesPoint> series;
  // Pod name -> node of its first placement (for checks and drill-down).
  std::vector<std::pair<std::string, std::string>> placements;  // sorted by pod name
  int64_t trace_records = 0;
};

// Reads `trace_path` (a run's trace.pb) and compares with `pods`. `end_s` is
// the run's length; the series has `buckets` points.
StatusOr<ReplayMetrics> compute_replay_metrics(const std::string& trace_path,
                                               const std::vector<ReplayPod>& pods,
                                               const ReplayCapacity& capacity, double end_s,
                                               int buckets = 720);

// The summary.json "replay" member: pods_submitted, pods_placed,
// pods_never_placed, peak_pending, queueing_delay_s {mean, p99}, and a "trace"
// member with the trace's own figures.
nlohmann::ordered_json replay_metrics_to_json(const ReplayMetrics& m);

struct ReplayReport {
  std::string html_path;
  int plots = 0;
  std::string warning;  // gnuplot missing: CSVs and tables only
};

// Writes DIR/replay_comparison.csv, DIR/replay_queueing_cdf.csv, the plots
// (DIR/plots/replay_*.svg via gnuplot) and DIR/replay.html; appends a link to
// replay.html to DIR/report.html when that exists.
StatusOr<ReplayReport> write_replay_report(const ReplayMetrics& m,
                                           const nlohmann::ordered_json& replay_json,
                                           const std::string& dir);

}  // namespace flotilla::analysis
