// `flotilla replay`: imports a cluster trace (streaming), builds a scenario
// from it (the trace's machines, or a base scenario's cluster, policies and
// faults) and runs it in the simulator; reports like `sim`, plus the
// comparison with the trace itself (DIR/replay.html). `--format flotilla`
// replays a recorded `sim`/`live` run and compares the end states.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cli/command.h"
#include "scenarios/loader.h"
#include "scenarios/replay/export.h"
#include "scenarios/replay/importers.h"
#include "scenarios/replay/recorded.h"
#include "scenarios/replay/replay.h"
#include "scenarios/sim_runner.h"

namespace flotilla::cli {

namespace {

constexpr int kExitBadInput = 2;

struct ReplayArgs {
  std::string trace;
  std::string format = "alibaba-gpu-2023";
  std::string node_list;
  std::string machine_events;
  std::string machine_meta;
  std::string container_meta;
  double machine_cpus = 64;
  double machine_memory_gib = 256;
  std::string scenario;
  std::string window;
  double speedup = 1.0;
  double sample = 1.0;
  double node_scale = 1.0;
  int64_t pods_per_node = 256;
  std::string out;
  std::string to;
  std::optional<uint64_t> seed;
  bool no_report = false;
  bool quiet = false;
};

StatusOr<replay::ImportedTrace> import(const ReplayArgs& a, const replay::ImportOptions& opt) {
  if (a.format == "alibaba-gpu-2023") {
    if (a.node_list.empty()) {
      return Status(StatusCode::kBadRequest,
                    "--format alibaba-gpu-2023 needs --node-list FILE (openb_node_list_*.csv)");
    }
    return replay::import_alibaba_gpu_2023(a.trace, a.node_list, opt);
  }
  if (a.format == "google-2011") {
    if (a.machine_events.empty()) {
      return Status(StatusCode::kBadRequest,
                    "--format google-2011 needs --machine-events FILE|DIR (machine_events shards)");
    }
    return replay::import_google_2011(a.trace, a.machine_events, opt);
  }
  if (a.format == "alibaba-2018") {
    if (a.machine_meta.empty()) {
      return Status(StatusCode::kBadRequest, "--format alibaba-2018 needs --machine-meta FILE");
    }
    return replay::import_alibaba_2018(a.trace, a.machine_meta, a.container_meta, opt);
  }
  return Status(StatusCode::kBadRequest,
                "unknown --format \"" + a.format +
                    "\" (supported: alibaba-gpu-2023, google-2011, alibaba-2018, flotilla)");
}

// --format flotilla: a results directory of `flotilla sim` / `flotilla live`.
int run_recorded_command(const ReplayArgs& a, const replay::ImportOptions& opt,
                         const scenarios::LoadedScenario* base) {
  if (a.sample != 1.0 || a.node_scale != 1.0) {
    std::cerr << "warning: --sample and --node-scale do not apply to --format flotilla (use "
                 "--scenario for another cluster)\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto run = replay::read_recorded_run(a.trace);
  if (!run.is_ok()) {
    std::cerr << "flotilla replay: " << run.status().message() << "\n";
    return kExitBadInput;
  }
  auto rs = replay::build_recorded_replay(*run, base, opt);
  if (!rs.is_ok()) {
    std::cerr << "flotilla replay: " << rs.status().message() << "\n";
    return kExitBadInput;
  }
  const double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& w : rs->warnings) std::cerr << "warning: " << w << "\n";
  if (!a.quiet) {
    std::printf("read recorded %s run %s: %lld records in %.2f s; %zu workload steps, %zu faults "
                "(node outages, container faults) to replay on %d nodes\n",
                run->backend.c_str(), run->dir.c_str(), static_cast<long long>(run->records), read_s,
                run->workload.size(), run->faults.size(), rs->scenario.total_nodes());
    std::fflush(stdout);
  }
  if (!a.to.empty()) {
    Status s = replay::write_resolved_scenario_yaml(*rs, a.to);
    if (!s.is_ok()) {
      std::cerr << "flotilla replay: " << s.message() << "\n";
      return kExitBadInput;
    }
    if (!a.quiet) std::printf("wrote %s (run it with: flotilla sim %s)\n", a.to.c_str(), a.to.c_str());
    return 0;
  }
  scenarios::SimRunOptions so;
  so.seed = a.seed;
  so.out_dir = a.out;
  so.progress = !a.quiet && ::isatty(2);
  so.report = !a.no_report;
  auto outcome = replay::run_recorded_replay(*run, *rs, so);
  if (!outcome.is_ok()) {
    std::cerr << "flotilla replay: " << outcome.status().message() << "\n";
    return kExitBadInput;
  }
  if (!a.quiet) {
    const auto& s = outcome->replay.run.summary;
    std::printf("replayed %s in %.2f s wall (%llu sim events; %.0f recorded records/s)\n",
                format_duration(rs->scenario.duration).c_str(), s["wall_seconds"].get<double>(),
                static_cast<unsigned long long>(s["events"].get<uint64_t>()),
                outcome->recorded_records_per_second);
    if (outcome->differences.empty()) {
      std::printf("end state: the same as the recorded run (%zu controllers, %zu services, %zu "
                  "nodes, %lld pods)\n",
                  outcome->recorded.controllers.size(), outcome->recorded.endpoints.size(),
                  outcome->recorded.nodes.size(), static_cast<long long>(outcome->recorded.pods_alive));
    } else {
      std::printf("end state differs from the recorded run (recorded vs replay):\n");
      for (const auto& d : outcome->differences) std::printf("  %s\n", d.c_str());
    }
    for (const auto& as : outcome->replay.run.assertions) {
      std::printf("  [%s] %s (%g)\n", as.passed ? "pass" : "FAIL", as.name.c_str(), as.value);
    }
    std::printf("results: %s\n", outcome->replay.run.out_dir.c_str());
  }
  if (!outcome->replay.run.report_warning.empty()) {
    std::cerr << "report: " << outcome->replay.run.report_warning << "\n";
  }
  return 0;
}

int run_replay_command(const ReplayArgs& a) {
  replay::ImportOptions opt;
  if (!a.window.empty()) {
    Status s = replay::parse_window(a.window, &opt);
    if (!s.is_ok()) {
      std::cerr << "flotilla replay: " << s.message() << "\n";
      return kExitBadInput;
    }
  }
  opt.speedup = a.speedup;
  opt.sample = a.sample;
  opt.node_scale = a.node_scale;
  opt.pods_per_node = a.pods_per_node;
  opt.machine_cpu_millis = static_cast<int64_t>(a.machine_cpus * 1000);
  opt.machine_memory_bytes = static_cast<int64_t>(a.machine_memory_gib * 1073741824.0);
  if (a.format == "flotilla") {
    std::optional<scenarios::LoadedScenario> base;
    if (!a.scenario.empty()) {
      auto loaded = scenarios::load_scenario(a.scenario);
      if (!loaded.is_ok()) {
        std::cerr << loaded.status().message() << "\n";
        return kExitBadInput;
      }
      for (const auto& w : loaded->warnings) std::cerr << w << "\n";
      base = std::move(loaded).value();
    }
    return run_recorded_command(a, opt, base ? &*base : nullptr);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto trace = import(a, opt);
  if (!trace.is_ok()) {
    std::cerr << "flotilla replay: " << trace.status().message() << "\n";
    return kExitBadInput;
  }
  const double import_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::optional<scenarios::LoadedScenario> base;
  if (!a.scenario.empty()) {
    auto loaded = scenarios::load_scenario(a.scenario);
    if (!loaded.is_ok()) {
      std::cerr << loaded.status().message() << "\n";
      return kExitBadInput;
    }
    for (const auto& w : loaded->warnings) std::cerr << w << "\n";
    base = std::move(loaded).value();
  }
  auto rs = replay::build_replay_scenario(*trace, base ? &*base : nullptr, opt);
  if (!rs.is_ok()) {
    std::cerr << "flotilla replay: " << rs.status().message() << "\n";
    return kExitBadInput;
  }
  for (const auto& w : rs->warnings) std::cerr << "warning: " << w << "\n";
  if (!a.quiet) {
    std::printf("imported %s: %lld rows in %.2f s; %zu pods kept (%lld outside the window, %lld "
                "sampled out); %d nodes; %lld pods never placeable (no node fits them)\n",
                trace->format.c_str(), static_cast<long long>(trace->stats.rows), import_s,
                trace->pods.size(), static_cast<long long>(trace->stats.pods_outside_window),
                static_cast<long long>(trace->stats.pods_sampled_out),
                rs->scenario.total_nodes(), static_cast<long long>(rs->pods_never_placeable));
    std::fflush(stdout);
  }
  if (!a.to.empty()) {
    if (base) {
      std::cerr << "flotilla replay: --to writes the trace's own machines; drop --scenario\n";
      return kExitBadInput;
    }
    Status s = replay::write_scenario_yaml(*rs, a.to);
    if (!s.is_ok()) {
      std::cerr << "flotilla replay: " << s.message() << "\n";
      return kExitBadInput;
    }
    if (!a.quiet) std::printf("wrote %s (run it with: flotilla sim %s)\n", a.to.c_str(), a.to.c_str());
    return 0;
  }
  scenarios::SimRunOptions so;
  so.seed = a.seed;
  so.out_dir = a.out;
  so.progress = !a.quiet && ::isatty(2);
  so.report = !a.no_report;
  auto outcome = replay::run_replay(*rs, so);
  if (!outcome.is_ok()) {
    std::cerr << "flotilla replay: " << outcome.status().message() << "\n";
    return kExitBadInput;
  }
  if (!a.quiet) {
    const auto& s = outcome->run.summary;
    const auto& r = s["replay"];
    std::printf("replayed %s in %.2f s wall (%llu sim events, %.0f trace events/s)\n",
                format_duration(rs->scenario.duration).c_str(), s["wall_seconds"].get<double>(),
                static_cast<unsigned long long>(s["events"].get<uint64_t>()),
                outcome->trace_events_per_second);
    std::printf("pods submitted %lld, placed %lld, never placed %lld (never placeable %lld), "
                "peak pending %lld\n",
                static_cast<long long>(r["pods_submitted"].get<int64_t>()),
                static_cast<long long>(r["pods_placed"].get<int64_t>()),
                static_cast<long long>(r["pods_never_placed"].get<int64_t>()),
                static_cast<long long>(r["pods_never_placeable"].get<int64_t>()),
                static_cast<long long>(r["peak_pending"].get<int64_t>()));
    std::printf("queueing delay: replay mean %.3f s p99 %.3f s; trace mean %.3f s p99 %.3f s\n",
                r["queueing_delay_s"]["mean"].get<double>(),
                r["queueing_delay_s"]["p99"].get<double>(),
                r["trace"]["queueing_delay_s"]["mean"].get<double>(),
                r["trace"]["queueing_delay_s"]["p99"].get<double>());
    std::printf("results: %s (summary.json, replay_comparison.csv, %s)\n",
                outcome->run.out_dir.c_str(),
                outcome->run.report_path.empty() ? "replay.html" : "report.html, replay.html");
  }
  if (!outcome->run.report_warning.empty()) {
    std::cerr << "report: " << outcome->run.report_warning << "\n";
  }
  return 0;
}

}  // namespace

void add_replay_command(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ReplayArgs>();
  CLI::App* cmd = app.add_subcommand(
      "replay", "Replay a cluster trace in the simulator, on its own machines or a scenario's");
  cmd->add_option("trace", a->trace,
                  "Trace file or shard directory (alibaba-gpu-2023: the pod list; google-2011: "
                  "task_events; alibaba-2018: batch_task; flotilla: a results directory of "
                  "flotilla sim/live or its trace.pb)")
      ->required();
  cmd->add_option("--format", a->format, "alibaba-gpu-2023 (default), google-2011, alibaba-2018, flotilla (a recorded run)");
  cmd->add_option("--node-list", a->node_list, "alibaba-gpu-2023: the node list CSV");
  cmd->add_option("--machine-events", a->machine_events, "google-2011: machine_events file or dir");
  cmd->add_option("--machine-meta", a->machine_meta, "alibaba-2018: machine_meta file");
  cmd->add_option("--container-meta", a->container_meta, "alibaba-2018: container_meta file");
  cmd->add_option("--machine-cpus", a->machine_cpus,
                  "google-2011: cores of the largest machine (normalised 1.0); default 64")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--machine-memory-gib", a->machine_memory_gib,
                  "google-2011 / alibaba-2018: memory of the largest machine (1.0 / 100); "
                  "default 256")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--scenario", a->scenario,
                  "Base scenario: its cluster, timing, policies, faults and traffic, plus the "
                  "trace's pods");
  cmd->add_option("--window", a->window, "Trace seconds START:END to keep (either may be empty)");
  cmd->add_option("--speedup", a->speedup, "Divide trace times by X")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--sample", a->sample, "Keep this fraction of pods (by a hash of the name)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--node-scale", a->node_scale, "Machines of each shape: round(count * S)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--pods-per-node", a->pods_per_node, "Pod capacity of each trace machine")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--out", a->out, "Results directory (default results/<name>-<seed>)");
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_option("--to", a->to,
                  "Write the replay as an editable scenario YAML (node_groups + workload steps) "
                  "instead of running it");
  cmd->add_flag("--no-report", a->no_report, "Skip report.html (replay.html is still written)");
  cmd->add_flag("--quiet", a->quiet, "No progress and no summary");
  cmd->callback([a, exit_code] { *exit_code = run_replay_command(*a); });
}

}  // namespace flotilla::cli
