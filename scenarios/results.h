// The results tail shared by the simulator's and the live runner: assertions
// evaluated against a run's summary, summary.json and the CSV time series
// written into the run's directory, then report.html. Both worlds write the
// same files in the same shape.
#pragma once

#include <nlohmann/json.hpp>

#include "analysis/metrics.h"
#include "scenarios/loader.h"
#include "scenarios/sim_runner.h"

namespace flotilla::scenarios {

// Evaluates the scenario's assertions into `summary["assertions"]` and
// `outcome` (assertions, passed, summary), writes outcome.out_dir/summary.json
// and the CSV time series of `metrics`. Errors: kUnavailable when a file
// cannot be written.
Status write_summary_and_series(const LoadedScenario& sc, nlohmann::ordered_json summary,
                                const analysis::MetricsCollector& metrics, RunOutcome& outcome);

// The scenario as it ran, self-contained: the decoded scenario (overrides
// applied) with `seed` and every workload step rebuilt from the resolved
// actions, manifests inline (files read). Loading it back gives the same run.
Scenario resolved_scenario(const LoadedScenario& sc, uint64_t seed);

// Writes out_dir/scenario.yaml: resolved_scenario() behind a `# base_dir:`
// comment (where relative files named in it, e.g. distributions, are), so a
// results directory can be replayed (`flotilla replay DIR --format flotilla`).
Status write_scenario_copy(const LoadedScenario& sc, uint64_t seed, const std::string& out_dir);

// Writes outcome.out_dir/report.html (gnuplot) and records its path and any
// warning in `outcome`.
Status write_run_report(RunOutcome& outcome);

}  // namespace flotilla::scenarios
