// Writes a replay as an ordinary scenario file a user can edit and run with
// `flotilla sim`: node_groups (identical machines grouped, with a count), the
// replay timing, machine additions/removals as faults, and one workload step
// per pod arrival (an inline Pod manifest) and departure (a delete).
#pragma once

#include <google/protobuf/struct.pb.h>

#include <string>

#include "scenarios/replay/replay.h"

namespace flotilla::replay {

// A scheduled fault as the scenario's `faults:` list writes it ({at: 30s,
// kill_node: node-0}, ...). Errors: kInvalid for stochastic faults (their
// distributions have no writer).
StatusOr<google::protobuf::Value> fault_value(const sim::FaultSpec& fault);

// Any replay scenario whose proto is kept in step with it (the recorded-run
// replay's): scenarios::resolved_scenario, manifests inline. Errors:
// kUnavailable when the file cannot be written.
Status write_resolved_scenario_yaml(const ReplayScenario& replay, const std::string& path);

// Only for replays on the trace's own machines (the builder's base == null).
// Errors: kUnavailable when the file cannot be written.
Status write_scenario_yaml(const ReplayScenario& replay, const std::string& path);

}  // namespace flotilla::replay
