#include "scenarios/results.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

#include "analysis/report.h"
#include "core/api/codec.h"

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
  FLOTILLA_RETURN_IF_ERROR(write_scenario_copy(
      sc, summary.contains("seed") ? summary["seed"].get<uint64_t>() : sc.seed, outcome.out_dir));
  {
    std::ofstream f(outcome.out_dir + "/summary.json", std::ios::trunc);
    f << summary.dump(2) << "\n";
    if (!f) return Status(StatusCode::kUnavailable, "cannot write " + outcome.out_dir + "/summary.json");
  }
  return analysis::write_time_series_csv(metrics, outcome.out_dir);
}

namespace {

// "90s", "1500ms", "123ns": exact, and read back by the loader.
std::string exact_duration(Duration d) {
  const int64_t ns = d.count();
  if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + "s";
  if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + "ms";
  if (ns % 1000 == 0) return std::to_string(ns / 1000) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace

Scenario resolved_scenario(const LoadedScenario& sc, uint64_t seed) {
  Scenario p = sc.proto;
  p.set_name(sc.name);
  p.set_seed(seed);
  p.set_duration(exact_duration(sc.duration));
  p.clear_workload();
  for (const WorkloadAction& a : sc.workload) {
    WorkloadStep* step = p.add_workload();
    step->set_at(exact_duration(a.at));
    for (const auto& obj : a.apply) {
      google::protobuf::Value v;
      Status s = api::decode_into(YAML::Load(api::encode_json(*obj.object)), &v, "", nullptr);
      if (s.is_ok()) *step->add_apply() = std::move(v);
    }
    if (a.scale) *step->mutable_scale() = *a.scale;
    if (a.remove) *step->mutable_delete_() = *a.remove;
  }
  return p;
}

Status write_scenario_copy(const LoadedScenario& sc, uint64_t seed, const std::string& out_dir) {
  std::error_code ec;
  const std::string base = std::filesystem::absolute(sc.base_dir.empty() ? "." : sc.base_dir, ec).string();
  std::ofstream f(out_dir + "/scenario.yaml", std::ios::trunc);
  f << "# The scenario as it ran (overrides applied, manifests inline); written by the run.\n"
    << "# base_dir: " << base << "\n"
    << api::encode_yaml(resolved_scenario(sc, seed));
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + out_dir + "/scenario.yaml");
  return Status::ok();
}

Status write_run_report(RunOutcome& outcome) {
  auto rep = analysis::write_report(outcome.out_dir);
  if (!rep.is_ok()) return rep.status();
  outcome.report_path = rep->html_path;
  outcome.report_warning = rep->warning;
  return Status::ok();
}

}  // namespace flotilla::scenarios
