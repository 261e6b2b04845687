// Runs a loaded scenario in the simulator: builds the simulated world and the
// shared control plane (store, scheduler, controllers, one node agent per node,
// service proxies), applies the workload, traffic and faults on virtual time,
// writes the trace, then the summary, CSV time series and report.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "scenarios/loader.h"

namespace flotilla::scenarios {

struct SimRunOptions {
  std::optional<uint64_t> seed;  // default: the scenario's
  std::string out_dir;           // default: results/<scenario>-<seed>
  bool progress = false;         // a progress line on stderr
  bool report = true;            // write report.html (gnuplot)
  // Whether the simulated cluster is torn down when the run ends. `flotilla
  // sim` with one run leaves it for the process's exit to reclaim, as a
  // compiler leaves its last structures: freeing a large cluster's millions
  // of objects one by one, cold, took ~17% of a 4 h large run's CPU.
  bool free_at_end = true;
};

struct AssertionResult {
  std::string name;
  bool passed = false;
  double value = 0;
};

struct RunOutcome {
  std::string out_dir;
  nlohmann::ordered_json summary;
  std::vector<AssertionResult> assertions;
  bool passed = true;  // every assertion held
  std::string report_path;
  std::string report_warning;
};

// Errors: the scenario refers to something that does not exist (a node in a
// fault, ...), or the results cannot be written. An assertion that fails is
// not an error: see RunOutcome::passed.
StatusOr<RunOutcome> run_simulation(const LoadedScenario& scenario, const SimRunOptions& options);

// Evaluates assertions against a summary (as written to summary.json).
std::vector<AssertionResult> evaluate_assertions(const std::vector<AssertionSpec>& specs,
                                                 const nlohmann::ordered_json& summary);

}  // namespace flotilla::scenarios
