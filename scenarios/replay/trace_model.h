// What every trace importer produces: the trace's machines (with later
// additions and removals) and its pods (requests, arrival, trace lifetime,
// the trace's own scheduling time), already cut to the user's window,
// sampled, and on the replay's time axis (window start = 0, divided by the
// speed-up). The replay builder turns it into a scenario.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/util/status.h"
#include "core/util/time.h"
#include "sim/world/world.h"

namespace flotilla::replay {

// Extended resources and labels the importers use.
inline constexpr const char* kGpuResource = "alibaba.com/gpu";
inline constexpr const char* kGpuMilliResource = "alibaba.com/gpu-milli";
inline constexpr const char* kGpuModelLabel = "alibaba.com/gpu-model";
inline constexpr const char* kGpuModelAllowAnnotation = "alibaba.com/gpu-model-allow";

struct ImportOptions {
  // Trace seconds [start, end): pods created in it are kept; absent: the whole trace.
  std::optional<double> window_start_s;
  std::optional<double> window_end_s;
  double sample = 1.0;      // fraction of pods kept, by a hash of the pod name
  double speedup = 1.0;     // replay time = (trace time - window start) / speedup
  double node_scale = 1.0;  // machines of each shape: round(count * node_scale)
  // The traces give no pod limit per machine; this one never binds before cpu
  // for pods of >= 1 core on machines of <= 256 cores.
  int64_t pods_per_node = 256;
  // google-2011 / alibaba-2018: what the normalised 1.0 (largest machine) or
  // 100 (memory) stands for.
  int64_t machine_cpu_millis = 64000;
  int64_t machine_memory_bytes = int64_t{256} << 30;
};

// "START:END" in seconds (either side may be empty: "3600:" or ":7200").
Status parse_window(const std::string& text, ImportOptions* options);

struct TraceNode {
  std::string id;  // the trace's machine name or id
  sim::NodeResources capacity;
  std::map<std::string, std::string> labels;
};

// A machine joining (up) or leaving (down) after the replay's start.
struct NodeEvent {
  Duration at{};
  std::string id;
  bool up = false;
};

struct TracePod {
  std::string name;  // a DNS-1123 name, unique in the trace
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  std::vector<std::pair<std::string, int64_t>> extended;  // sorted by name
  std::string gpu_model_allow;                            // "A|B"; empty: any
  std::map<std::string, std::string> labels;
  Duration created{};
  std::optional<Duration> deleted;    // trace lifetime end; absent: runs to the end
  std::optional<Duration> scheduled;  // when the trace placed it; absent: never
  int64_t gpu_milli() const;          // alibaba.com/gpu-milli requested (0 if none)
};

struct ImportStats {
  int64_t rows = 0;               // data rows read (all files)
  int64_t pods_outside_window = 0;
  int64_t pods_sampled_out = 0;
  int64_t events_ignored = 0;     // e.g. after-the-end sentinels, updates
  int64_t unknown_machines = 0;   // events naming a machine never added
};

struct ImportedTrace {
  std::string format;
  std::vector<TraceNode> nodes;  // machines present at the start (or added later, see events)
  std::vector<NodeEvent> node_events;  // sorted by time
  std::vector<TracePod> pods;          // sorted by created, then name
  Duration end{};                      // the replay's natural length
  ImportStats stats;
  std::vector<std::string> warnings;   // capped; "file:line: ..."
  double speedup = 1.0;
  double window_start_s = 0;

  // Adds a warning, keeping at most 20 (the rest are counted).
  void warn(std::string w);
  int64_t warnings_dropped = 0;
};

// Maps trace seconds to replay time for the options' window and speed-up.
Duration to_replay_time(double trace_seconds, const ImportOptions& options);

}  // namespace flotilla::replay
