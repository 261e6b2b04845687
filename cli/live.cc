// `flotilla live SCENARIO` and `flotilla live down`: running a scenario on the
// local Docker engine in real time, and removing everything Flotilla made there.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "scenarios/live_runner.h"
#include "scenarios/loader.h"

namespace flotilla::cli {

namespace {

using nlohmann::ordered_json;
constexpr int kExitBadInput = 2;
constexpr int kExitAssertion = 3;

struct LiveArgs {
  std::string scenario;
  std::string out;
  std::vector<std::string> sets;
  bool no_report = false;
  bool quiet = false;
};

void print_live_summary(const ordered_json& s, const std::string& report_path) {
  std::printf("Scenario %s (docker): %.1f s live, %lld trace records\n",
              s["scenario"].get<std::string>().c_str(), s["wall_seconds"].get<double>(),
              static_cast<long long>(s["trace_records"].get<int64_t>()));
  if (s["live"]["interrupted"].get<bool>()) std::printf("interrupted: stopped early\n");
  for (const auto& [name, v] : s["services"].items()) {
    std::printf("service %-24s availability %.6f  requests %lld  failed %lld  p50 %.2f ms  p99 %.2f ms\n",
                name.c_str(), v["availability"].get<double>(),
                static_cast<long long>(v["requests"]["total"].get<int64_t>()),
                static_cast<long long>(v["requests"]["failed"].get<int64_t>()),
                v["requests"]["latency_ms"]["p50"].get<double>(),
                v["requests"]["latency_ms"]["p99"].get<double>());
  }
  for (const auto& [name, v] : s["controllers"].items()) {
    std::printf("controller %-21s desired %lld  ready %lld\n", name.c_str(),
                static_cast<long long>(v["desired"].get<int64_t>()),
                static_cast<long long>(v["ready"].get<int64_t>()));
  }
  const auto& p = s["pods"];
  std::printf("pods created %lld, container restarts %lld, evicted %lld; faults injected %lld\n",
              static_cast<long long>(p["created"].get<int64_t>()),
              static_cast<long long>(p["restarts"].get<int64_t>()),
              static_cast<long long>(p["evicted"].get<int64_t>()),
              static_cast<long long>(s["faults_injected"].get<int64_t>()));
  for (const auto& w : s["live"]["warnings"]) std::printf("warning: %s\n", w.get<std::string>().c_str());
  if (s["live"]["cleanup"] != "ok") {
    std::printf("cleanup: %s (run `flotilla live down`)\n", s["live"]["cleanup"].get<std::string>().c_str());
  }
  if (!s["assertions"].empty()) {
    std::printf("\nassertions\n");
    for (const auto& a : s["assertions"]) {
      std::printf("  %s  %s  (%g)\n", a["passed"].get<bool>() ? "PASS" : "FAIL",
                  a["name"].get<std::string>().c_str(), a["value"].get<double>());
    }
  }
  if (!report_path.empty()) std::printf("\nreport: %s\n", report_path.c_str());
}

int run_live_command(const LiveArgs& args) {
  auto loaded = scenarios::load_scenario(args.scenario, args.sets);
  if (!loaded.is_ok()) {
    std::cerr << loaded.status().message() << "\n";
    return kExitBadInput;
  }
  for (const auto& w : loaded->warnings) std::cerr << w << "\n";
  scenarios::LiveRunOptions opt;
  opt.out_dir = args.out;
  opt.progress = !args.quiet && ::isatty(2);
  opt.report = !args.no_report;
  auto outcome = scenarios::run_live(*loaded, opt);
  if (!outcome.is_ok()) {
    std::cerr << outcome.status().message() << "\n";
    return kExitBadInput;
  }
  if (!args.quiet) print_live_summary(outcome->summary, outcome->report_path);
  if (!outcome->report_warning.empty()) std::cerr << "report: " << outcome->report_warning << "\n";
  return outcome->passed ? 0 : kExitAssertion;
}

int run_live_down() {
  auto c = scenarios::live_down();
  if (!c.is_ok()) {
    std::cerr << c.status().message() << "\n";
    return kExitBadInput;
  }
  std::printf("removed %d containers, %d volumes, %d networks\n", c->containers, c->volumes,
              c->networks);
  return 0;
}

}  // namespace

void add_live_commands(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<LiveArgs>();
  CLI::App* live = app.add_subcommand(
      "live", "Run a scenario on the local Docker engine in real time (or: live down)");
  live->add_option("scenario", args->scenario, "Scenario file (YAML), or `down`")->required();
  live->add_option("--out", args->out, "Results directory (default results/<scenario>-live)");
  live->add_option("--set", args->sets, "Override a scenario field: path=value (repeatable)");
  live->add_flag("--no-report", args->no_report, "Skip report.html");
  live->add_flag("--quiet", args->quiet, "No progress and no summary");
  live->callback([args, exit_code] {
    *exit_code = args->scenario == "down" ? run_live_down() : run_live_command(*args);
  });
}

}  // namespace flotilla::cli
