// Turns an imported trace into a LoadedScenario the simulator runs unchanged:
// the trace's machines (identical machines grouped into node groups) or a base
// scenario's cluster, policies, faults and traffic; one bare Pod per trace pod
// (restartPolicy Never) created at its arrival and deleted at the end of its
// trace lifetime; machine additions and removals as node faults. Also counts
// the pods no node of the cluster could ever fit.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "analysis/replay_metrics.h"
#include "scenarios/loader.h"
#include "scenarios/sim_runner.h"
#include "scenarios/replay/trace_model.h"

namespace flotilla::replay {

// The timing used when the trace brings its own machines: Kubernetes' values,
// except rare node heartbeats and agent resyncs (12 h, grace 36 h), since a
// replay studies placement over weeks and 1,500 nodes beating every 10 s would
// be most of the work. A base scenario keeps its own timing.
TimingProfile replay_timing();

struct ReplayScenario {
  scenarios::LoadedScenario scenario;
  std::map<std::string, std::string> node_of_machine;  // trace machine id -> node name
  std::map<std::string, std::string> gpu_model_of_node;  // node name -> model label
  std::vector<analysis::ReplayPod> pods;   // for analysis::compute_replay_metrics
  analysis::ReplayCapacity capacity;       // of the cluster at the start
  int64_t pods_never_placeable = 0;        // no node could ever fit them
  std::vector<std::string> never_placeable_examples;  // up to 10 names
  int64_t trace_events = 0;  // pod arrivals + departures + machine events replayed
  std::vector<std::string> warnings;
};

// `base` null: the trace's own machines (error if the trace has none).
// Errors: kInvalid for duplicate pod names or a cluster with no nodes.
StatusOr<ReplayScenario> build_replay_scenario(const ImportedTrace& trace,
                                               const scenarios::LoadedScenario* base,
                                               const ImportOptions& options);

// Whether a pod's requests and GPU model constraint fit a node of this
// capacity and labels when the node is empty.
bool fits_empty_node(const TracePod& pod, const sim::NodeResources& allocatable,
                     const std::map<std::string, std::string>& labels);

}  // namespace flotilla::replay

namespace flotilla::replay {

struct ReplayOutcome {
  scenarios::RunOutcome run;  // run.summary has the "replay" member
  analysis::ReplayMetrics metrics;
  std::string comparison_html;  // DIR/replay.html
  double trace_events_per_second = 0;  // trace events replayed / simulation wall time
};

// Runs the replay scenario with scenarios::run_simulation, then reads the
// run's trace back, adds "replay" to summary.json (pods_submitted,
// pods_placed, pods_never_placed, peak_pending, queueing_delay_s, plus
// pods_never_placeable, trace_events and the trace's own figures) and writes
// the comparison with the trace (analysis::write_replay_report).
StatusOr<ReplayOutcome> run_replay(const ReplayScenario& replay,
                                   const scenarios::SimRunOptions& options);

}  // namespace flotilla::replay
