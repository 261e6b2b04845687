// Replaying a run Flotilla recorded itself (`flotilla replay DIR --format
// flotilla`): a results directory of `flotilla sim` or `flotilla live`
// (trace.pb, summary.json, scenario.yaml) becomes a scenario for the
// simulator that re-applies the recorded workload at its recorded times and
// re-injects the recorded node outages and container faults at theirs, under
// the recorded scenario's or a base scenario's cluster and policies. Also the
// end state of a run read from its trace, to compare recorded and replayed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scenarios/replay/replay.h"

namespace flotilla::replay {

// What a recorded run's directory holds, read back.
struct RecordedRun {
  std::string dir;
  std::string trace_path;
  std::string backend;  // "sim" or "docker" (RUN_STARTED attrs)
  uint64_t seed = 1;
  scenarios::LoadedScenario scenario;  // DIR/scenario.yaml
  Duration length{};                   // RUN_ENDED time (the scenario's duration if absent)
  bool interrupted = false;
  // The recorded inputs, on the recorded time axis, in trace order.
  std::vector<scenarios::WorkloadAction> workload;  // one action per WORKLOAD_APPLIED
  std::vector<sim::FaultSpec> faults;               // node outages and container faults
  std::vector<analysis::ReplayPod> pods;            // workload Pods (namespace default)
  int64_t records = 0;                              // records in the recorded trace
  std::vector<std::string> warnings;
};

// `path` is a results directory or its trace.pb. Errors: kNotFound when
// trace.pb or scenario.yaml is missing (runs recorded before scenario.yaml was
// written need `base`'s manifests: not supported), kBadRequest for a corrupt
// trace or a WORKLOAD_APPLIED whose object is not in the scenario.
StatusOr<RecordedRun> read_recorded_run(const std::string& path);

// The replay scenario: without `base`, the recorded scenario's cluster,
// timing, runtime model, traffic model and assertions, with its workload and
// faults replaced by the recorded ones; with `base`, base's everything plus
// the recorded workload and faults (recorded faults on nodes base lacks are
// dropped with a warning). options.window_* / speedup map recorded times
// (seconds) as for the cluster traces; inputs before the window start happen
// at 0, after its end not at all.
StatusOr<ReplayScenario> build_recorded_replay(const RecordedRun& run,
                                               const scenarios::LoadedScenario* base,
                                               const ImportOptions& options);

// The end state of a run, folded from its trace: what a user checks after an
// incident. Controller pods get random names, so per-pod restarts are
// compared as a sorted profile; named (workload) pods also by name.
struct RunEndState {
  std::map<std::string, std::pair<int64_t, int64_t>> controllers;  // "ns/name" -> desired, ready
  std::map<std::string, int64_t> endpoints;                        // "ns/name" -> ready addresses
  std::map<std::string, std::string> nodes;  // name -> "up/Ready", "down/NotReady", ...
  std::map<std::string, int64_t> pod_restarts;  // "ns/name" of pods alive at the end
  int64_t pods_alive = 0;
  std::vector<int64_t> restart_profile() const;  // pod_restarts' values, sorted
};

StatusOr<RunEndState> read_end_state(const std::string& trace_path);
nlohmann::ordered_json end_state_to_json(const RunEndState& s);

// Differences a user would notice ("controller default/web ready: 3 vs 2");
// empty when the end states agree. `named_pods`: pods compared by name too.
std::vector<std::string> compare_end_states(const RunEndState& recorded, const RunEndState& replay,
                                            const std::vector<std::string>& named_pods);

// Runs the replay (run_replay) and adds "end_state" to its summary's
// "replay" member: the recorded and replayed end states and their
// differences. `recorded_records_per_second`: the recorded trace's records
// per second of replay wall time.
struct RecordedReplayOutcome {
  ReplayOutcome replay;
  RunEndState recorded, replayed;
  std::vector<std::string> differences;
  double recorded_records_per_second = 0;
};
StatusOr<RecordedReplayOutcome> run_recorded_replay(const RecordedRun& run,
                                                    const ReplayScenario& replay,
                                                    const scenarios::SimRunOptions& options);

}  // namespace flotilla::replay
