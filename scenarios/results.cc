#include "scenarios/results.h"

#include <fstream>

#include "analysis/report.h"

namespace flotilla::scenarios {

Status write_summary_and_series(const LoadedScenario& sc, nlohmann::ordered_json summary,
                                const analysis::MetricsCollector& metrics, RunOutcome& outcome) {
  outcome.assertions = evaluate_assertions(sc.assertions, summary);
  nlohmann::ordered_json as = nlohmann::ordered_json::array();
  for (const auto& a : outcome.assertions) {
    as.push_back({{"name", a.name}, {"passed", a.passed}, {"value", a.value}});
    outcome.passed = outcome.passed && a.passed;
  }
  summary["assertions"] = as;
  outcome.summary = summary;
  {
    std::ofstream f(outcome.out_dir + "/summary.json", std::ios::trunc);
    f << summary.dump(2) << "\n";
    if (!f) return Status(StatusCode::kUnavailable, "cannot write " + outcome.out_dir + "/summary.json");
  }
  return analysis::write_time_series_csv(metrics, outcome.out_dir);
}

Status write_run_report(RunOutcome& outcome) {
  auto rep = analysis::write_report(outcome.out_dir);
  if (!rep.is_ok()) return rep.status();
  outcome.report_path = rep->html_path;
  outcome.report_warning = rep->warning;
  return Status::ok();
}

}  // namespace flotilla::scenarios
