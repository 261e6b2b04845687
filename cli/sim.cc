// `flotilla sim`, `flotilla report`, `flotilla trace` and `flotilla analyze`:
// running scenarios in the simulator and reading their results.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <Eigen/Core>

#include "analysis/metrics.h"
#include "analysis/models.h"
#include "analysis/report.h"
#include "analysis/stats.h"
#include "analysis/trace_io.h"
#include "cli/command.h"
#include "core/api/codec.h"
#include "scenarios/loader.h"
#include "scenarios/sim_runner.h"

namespace flotilla::cli {

namespace {

using nlohmann::ordered_json;
constexpr int kExitBadInput = 2;
constexpr int kExitAssertion = 3;

std::string fmt(double v, const char* f = "%.6g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void print_summary(std::ostream& out, const ordered_json& s, const std::string& report_path) {
  out << "Scenario " << s["scenario"].get<std::string>() << " (" << s["backend"].get<std::string>()
      << ", seed " << s["seed"] << "): " << format_duration(duration_from_seconds(s["sim_seconds"].get<double>()))
      << " simulated in " << fmt(s["wall_seconds"].get<double>(), "%.2f") << " s wall, "
      << s["events"] << " events\n";
  out << "trace sha256 " << s["trace_sha256"].get<std::string>() << "\n";
  if (!s["services"].empty()) {
    std::fprintf(stdout, "%s", "");
    char line[256];
    out << "\n";
    std::snprintf(line, sizeof line, "%-28s %12s %10s %8s %9s %9s\n", "SERVICE", "AVAILABILITY",
                  "REQUESTS", "FAILED", "P50(ms)", "P99(ms)");
    out << line;
    for (const auto& [name, v] : s["services"].items()) {
      std::snprintf(line, sizeof line, "%-28s %12.6f %10lld %8lld %9.2f %9.2f\n", name.c_str(),
                    v["availability"].get<double>(),
                    static_cast<long long>(v["requests"]["total"].get<int64_t>()),
                    static_cast<long long>(v["requests"]["failed"].get<int64_t>()),
                    v["requests"]["latency_ms"]["p50"].get<double>(),
                    v["requests"]["latency_ms"]["p99"].get<double>());
      out << line;
    }
  }
  if (!s["controllers"].empty()) {
    char line[256];
    out << "\n";
    std::snprintf(line, sizeof line, "%-28s %8s %8s %18s\n", "CONTROLLER", "DESIRED", "READY",
                  "FULLY-READY-TIME");
    out << line;
    for (const auto& [name, v] : s["controllers"].items()) {
      std::snprintf(line, sizeof line, "%-28s %8lld %8lld %18.6f\n", name.c_str(),
                    static_cast<long long>(v["desired"].get<int64_t>()),
                    static_cast<long long>(v["ready"].get<int64_t>()),
                    v["ready_time_fraction"].get<double>());
      out << line;
    }
  }
  const auto& n = s["nodes"];
  const auto& p = s["pods"];
  out << "\nnodes " << n["count"] << ", failures " << n["failures"] << ", downtime "
      << fmt(n["downtime_fraction"].get<double>() * 100, "%.3f") << "%\n";
  out << "pods created " << p["created"] << ", container restarts " << p["restarts"]
      << ", evicted " << p["evicted"] << ", pending at end " << p["pending_at_end"]
      << ", scheduling latency p50 " << fmt(p["scheduling_latency_ms"]["p50"].get<double>(), "%.1f")
      << " ms p99 " << fmt(p["scheduling_latency_ms"]["p99"].get<double>(), "%.1f") << " ms\n";
  if (!s["assertions"].empty()) {
    out << "\nassertions\n";
    for (const auto& a : s["assertions"]) {
      out << "  " << (a["passed"].get<bool>() ? "PASS" : "FAIL") << "  "
          << a["name"].get<std::string>() << "  (" << fmt(a["value"].get<double>()) << ")\n";
    }
  }
  if (!report_path.empty()) out << "\nreport: " << report_path << "\n";
}

struct SimArgs {
  std::string scenario;
  std::optional<uint64_t> seed;
  int runs = 1;
  std::string out;
  std::vector<std::string> sets;
  bool no_report = false;
  bool quiet = false;
};

int run_sim(const SimArgs& args) {
  auto loaded = scenarios::load_scenario(args.scenario, args.sets);
  if (!loaded.is_ok()) {
    std::cerr << loaded.status().message() << "\n";
    return kExitBadInput;
  }
  for (const auto& w : loaded->warnings) std::cerr << w << "\n";
  const uint64_t base_seed = args.seed.value_or(loaded->seed);
  if (args.runs <= 1) {
    scenarios::SimRunOptions opt;
    opt.seed = base_seed;
    opt.out_dir = args.out;
    opt.progress = !args.quiet && ::isatty(2);
    opt.report = !args.no_report;
    opt.free_at_end = false;  // the process ends with the run
    auto outcome = scenarios::run_simulation(*loaded, opt);
    if (!outcome.is_ok()) {
      std::cerr << outcome.status().message() << "\n";
      return kExitBadInput;
    }
    if (!args.quiet) print_summary(std::cout, outcome->summary, outcome->report_path);
    if (!outcome->report_warning.empty()) std::cerr << "report: " << outcome->report_warning << "\n";
    return outcome->passed ? 0 : kExitAssertion;
  }

  // Several seeds in parallel, one thread per core.
  const int n = args.runs;
  std::vector<StatusOr<scenarios::RunOutcome>> results(n, Status(StatusCode::kInternal, "not run"));
  std::mutex mu;
  int next = 0, done = 0;
  const std::string base_out =
      args.out.empty() ? "results/" + loaded->name + "-runs" : args.out;
  auto worker = [&] {
    while (true) {
      int i;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next >= n) return;
        i = next++;
      }
      scenarios::SimRunOptions opt;
      opt.seed = base_seed + static_cast<uint64_t>(i);
      opt.out_dir = base_out + "/seed-" + std::to_string(*opt.seed);
      opt.report = !args.no_report;
      auto r = scenarios::run_simulation(*loaded, opt);
      std::lock_guard<std::mutex> lock(mu);
      results[i] = std::move(r);
      ++done;
      if (!args.quiet && ::isatty(2)) std::fprintf(stderr, "\r  %d/%d runs done   ", done, n);
    }
  };
  unsigned threads = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), n));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (!args.quiet && ::isatty(2)) std::fprintf(stderr, "\r%40s\r", "");
  bool all_passed = true;
  std::vector<const ordered_json*> sums;
  for (int i = 0; i < n; ++i) {
    if (!results[i].is_ok()) {
      std::cerr << results[i].status().message() << "\n";
      return kExitBadInput;
    }
    all_passed = all_passed && results[i]->passed;
    sums.push_back(&results[i]->summary);
  }
  // Means with 95% confidence intervals of the main figures.
  ordered_json agg;
  agg["scenario"] = loaded->name;
  agg["backend"] = "sim";
  agg["runs"] = n;
  agg["seeds"] = ordered_json::array();
  for (int i = 0; i < n; ++i) agg["seeds"].push_back(base_seed + static_cast<uint64_t>(i));
  auto interval = [&](const std::function<double(const ordered_json&)>& get) {
    Eigen::VectorXd v(n);
    for (int i = 0; i < n; ++i) v(i) = get(*sums[i]);
    analysis::Interval ci = analysis::confidence_interval(v);
    return ordered_json{{"mean", ci.mean}, {"ci95", ci.half_width}, {"stddev", ci.stddev}};
  };
  ordered_json services = ordered_json::object();
  for (const auto& [name, v] : (*sums[0])["services"].items()) {
    const std::string key = name;
    auto field = [&](std::initializer_list<const char*> path) {
      return interval([&, path](const ordered_json& s) {
        if (!s["services"].contains(key)) return 0.0;
        const ordered_json* cur = &s["services"][key];
        for (const char* p : path) cur = &(*cur)[p];
        return cur->get<double>();
      });
    };
    services[key] = {{"availability", field({"availability"})},
                     {"p99_latency_ms", field({"requests", "latency_ms", "p99"})},
                     {"failed_requests", field({"requests", "failed"})}};
  }
  agg["services"] = services;
  agg["nodes_failures"] = interval([](const ordered_json& s) { return s["nodes"]["failures"].get<double>(); });
  agg["pods_restarts"] = interval([](const ordered_json& s) { return s["pods"]["restarts"].get<double>(); });
  agg["all_assertions_passed"] = all_passed;
  std::filesystem::create_directories(base_out);
  std::ofstream(base_out + "/summary.json") << agg.dump(2) << "\n";
  if (!args.quiet) {
    std::cout << "Scenario " << loaded->name << ": " << n << " runs (seeds " << base_seed << ".."
              << base_seed + static_cast<uint64_t>(n) - 1 << "), means with 95% confidence intervals\n\n";
    for (const auto& [name, v] : services.items()) {
      std::cout << "  " << name << "  availability " << fmt(v["availability"]["mean"].get<double>())
                << " +- " << fmt(v["availability"]["ci95"].get<double>()) << ", p99 latency "
                << fmt(v["p99_latency_ms"]["mean"].get<double>(), "%.2f") << " +- "
                << fmt(v["p99_latency_ms"]["ci95"].get<double>(), "%.2f") << " ms\n";
    }
    std::cout << "  node failures " << fmt(agg["nodes_failures"]["mean"].get<double>()) << " +- "
              << fmt(agg["nodes_failures"]["ci95"].get<double>()) << ", container restarts "
              << fmt(agg["pods_restarts"]["mean"].get<double>()) << " +- "
              << fmt(agg["pods_restarts"]["ci95"].get<double>()) << "\n";
    for (int i = 0; i < n; ++i) {
      std::cout << "  seed " << base_seed + static_cast<uint64_t>(i) << ": "
                << (results[i]->passed ? "assertions passed" : "ASSERTION FAILED") << "  "
                << results[i]->out_dir << "\n";
    }
    std::cout << "\nsummary: " << base_out << "/summary.json\n";
  }
  return all_passed ? 0 : kExitAssertion;
}

int run_trace(const std::string& dir, const std::string& format) {
  if (format != "jsonl") {
    std::cerr << "flotilla trace: unsupported --format \"" << format << "\" (supported: jsonl)\n";
    return kExitBadInput;
  }
  std::string path = std::filesystem::is_directory(dir) ? dir + "/trace.pb" : dir;
  static const char* kTypeNames[] = {nullptr};
  (void)kTypeNames;
  Status s = analysis::read_trace(path, [](const trace::Record& r) {
    ordered_json j;
    j["t"] = static_cast<double>(r.time_ns()) / 1e9;
    j["type"] = analysis::trace_type_name(r.type());
    if (!r.node().empty()) j["node"] = r.node();
    if (!r.namespace_().empty()) j["namespace"] = r.namespace_();
    if (!r.name().empty()) j["name"] = r.name();
    if (!r.uid().empty()) j["uid"] = r.uid();
    if (!r.container().empty()) j["container"] = r.container();
    if (!r.service().empty()) j["service"] = r.service();
    if (!r.endpoint().empty()) j["endpoint"] = r.endpoint();
    if (!r.reason().empty()) j["reason"] = r.reason();
    if (!r.message().empty()) j["message"] = r.message();
    if (r.exit_code() != 0) j["exit_code"] = r.exit_code();
    if (r.latency_ns() != 0) j["latency_ms"] = static_cast<double>(r.latency_ns()) / 1e6;
    if (r.value() != 0) j["value"] = r.value();
    if (r.value2() != 0) j["value2"] = r.value2();
    if (!r.attrs().empty()) {
      std::map<std::string, std::string> sorted(r.attrs().begin(), r.attrs().end());
      j["attrs"] = sorted;
    }
    std::cout << j.dump() << "\n";
    return static_cast<bool>(std::cout);
  });
  if (!s.is_ok()) {
    std::cerr << s.message() << "\n";
    return kExitBadInput;
  }
  return 0;
}

int run_report(const std::string& dir) {
  auto r = analysis::write_report(dir);
  if (!r.is_ok()) {
    std::cerr << r.status().message() << "\n";
    return kExitBadInput;
  }
  if (!r->warning.empty()) std::cerr << "report: " << r->warning << "\n";
  std::cout << r->html_path << "\n";
  return 0;
}

}  // namespace

void add_sim_commands(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<SimArgs>();
  CLI::App* sim = app.add_subcommand("sim", "Run a scenario in the simulator (virtual time)");
  sim->add_option("scenario", args->scenario, "Scenario file (YAML)")->required();
  sim->add_option("--seed", args->seed, "Random seed (default: the scenario's)");
  sim->add_option("--runs", args->runs, "Run N seeds in parallel and report means with 95% CIs")
      ->check(CLI::Range(1, 10000));
  sim->add_option("--out", args->out, "Results directory (default results/<scenario>-<seed>)");
  sim->add_option("--set", args->sets, "Override a scenario field: path=value (repeatable)");
  sim->add_flag("--no-report", args->no_report, "Skip report.html");
  sim->add_flag("--quiet", args->quiet, "No progress and no summary table");
  sim->callback([args, exit_code] { *exit_code = run_sim(*args); });

  auto dir = std::make_shared<std::string>();
  CLI::App* report = app.add_subcommand("report", "Write DIR/report.html from a run's results");
  report->add_option("dir", *dir, "Results directory")->required();
  report->callback([dir, exit_code] { *exit_code = run_report(*dir); });

  auto tdir = std::make_shared<std::string>();
  auto format = std::make_shared<std::string>("jsonl");
  CLI::App* tr = app.add_subcommand("trace", "Print a run's trace as JSON lines");
  tr->add_option("dir", *tdir, "Results directory or trace.pb file")->required();
  tr->add_option("--format", *format, "Output format (jsonl)");
  tr->callback([tdir, format, exit_code] { *exit_code = run_trace(*tdir, *format); });
}

}  // namespace flotilla::cli
