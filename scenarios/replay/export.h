// Writes a replay as an ordinary scenario file a user can edit and run with
// `flotilla sim`: node_groups (identical machines grouped, with a count), the
// replay timing, machine additions/removals as faults, and one workload step
// per pod arrival (an inline Pod manifest) and departure (a delete).
#pragma once

#include <string>

#include "scenarios/replay/replay.h"

namespace flotilla::replay {

// Only for replays on the trace's own machines (the builder's base == null).
// Errors: kUnavailable when the file cannot be written.
Status write_scenario_yaml(const ReplayScenario& replay, const std::string& path);

}  // namespace flotilla::replay
