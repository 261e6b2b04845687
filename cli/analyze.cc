// `flotilla analyze DIR`: a run's measured figures next to what theory
// predicts, where the scenario fits a model: machine availability from the
// stochastic failure model, a Service's availability as 1-out-of-n over
// independent machines, and request latency from queueing formulas (M/M/1 per
// pod under random balancing, M/M/c for one shared queue).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "analysis/models.h"
#include "cli/command.h"
#include "scenarios/loader.h"

namespace flotilla::cli {

namespace {

using nlohmann::json;

void row(const std::string& what, double measured, double predicted, const char* unit) {
  std::printf("  %-52s %12.6g %12.6g  %s\n", what.c_str(), measured, predicted, unit);
}

int run_analyze(const std::string& dir) {
  std::ifstream f(dir + "/summary.json");
  if (!f) {
    std::cerr << "flotilla analyze: cannot read " << dir << "/summary.json\n";
    return 2;
  }
  json s = json::parse(f, nullptr, false);
  if (s.is_discarded() || !s.is_object()) {
    std::cerr << "flotilla analyze: " << dir << "/summary.json is not valid JSON\n";
    return 2;
  }
  const std::string file = s.value("scenario_file", "");
  auto sc = scenarios::load_scenario(file);
  if (!sc.is_ok()) {
    std::cerr << "flotilla analyze: " << sc.status().message() << "\n";
    return 2;
  }
  std::printf("%s (seed %s): measured vs predicted\n", sc->name.c_str(), s["seed"].dump().c_str());
  std::printf("  %-52s %12s %12s\n", "", "measured", "predicted");
  int models = 0;

  // Machines: stochastic node failures with exponential TTF and TTR.
  double node_availability = -1;
  for (const auto& fault : sc->faults) {
    if (fault.kind != sim::FaultSpec::Kind::kStochasticNodes || !fault.ttf || !fault.ttr) continue;
    if (fault.domain != sim::FaultSpec::Domain::kNode) continue;
    const double mttf = fault.ttf->mean() / 1e9, mttr = fault.ttr->mean() / 1e9;
    node_availability = mttf / (mttf + mttr);
    const auto& n = s["nodes"];
    row("machine availability (1 - downtime)", 1 - n["downtime_fraction"].get<double>(),
        node_availability, "");
    if (n["mttf_s"].get<double>() > 0) row("machine MTTF", n["mttf_s"].get<double>(), mttf, "s");
    if (n["mttr_s"].get<double>() > 0) row("machine MTTR", n["mttr_s"].get<double>(), mttr, "s");
    ++models;
    break;
  }

  // Services: replicas from the controller of the same name.
  std::map<std::string, int> replicas;
  for (const auto& step : sc->workload) {
    for (const auto& o : step.apply) {
      if (o.kind != api::Kind::kReplicationController) continue;
      const auto& rc = static_cast<const api::ReplicationController&>(*o.object);
      std::string ns = rc.metadata().namespace_().empty() ? "default" : rc.metadata().namespace_();
      replicas[ns + "/" + rc.metadata().name()] = rc.spec().has_replicas() ? rc.spec().replicas() : 1;
    }
  }
  for (const auto& t : sc->traffic) {
    const std::string key = t.service.find('/') == std::string::npos ? "default/" + t.service : t.service;
    if (!s["services"].contains(key) || !replicas.count(key)) continue;
    const json& svc = s["services"][key];
    const int n = replicas[key];
    if (node_availability > 0) {
      // Up while at least one of n replicas' machines is up (pods on distinct
      // machines, re-placement ignored: a lower bound).
      row("availability of " + key + " (1-of-" + std::to_string(n) + " machines)",
          svc["availability"].get<double>(),
          analysis::k_of_n_availability(n, 1, node_availability, 1 - node_availability), "");
      ++models;
    }
    if (t.arrival != sim::TrafficSpec::Arrival::kPoisson || !t.calls.empty()) continue;
    if (t.service_time.kind() != sim::Distribution::Kind::kExponential) continue;
    const double lambda = t.rate_per_s, mu = 1e9 / t.service_time.mean();
    const double measured_mean = svc["requests"]["latency_ms"]["mean"].get<double>();
    const double measured_p99 = svc["requests"]["latency_ms"]["p99"].get<double>();
    if (t.concurrency == 1) {
      analysis::QueueModel q = analysis::mm1_random_balancing(lambda, mu, n);
      if (q.stable) {
        row(key + " mean latency, M/M/1 x" + std::to_string(n) + " random", measured_mean,
            q.mean_response_s * 1e3, "ms");
        row(key + " p99 latency, M/M/1 x" + std::to_string(n) + " random", measured_p99,
            q.p99_response_s * 1e3, "ms");
        ++models;
      }
    }
    const int servers = t.concurrency == 0 ? 0 : n * t.concurrency;
    if (servers > 0) {
      analysis::QueueModel q = analysis::mmc(lambda, mu, servers);
      if (q.stable) {
        row(key + " mean latency, M/M/" + std::to_string(servers) + " (shared queue)",
            measured_mean, q.mean_response_s * 1e3, "ms");
        ++models;
      }
    } else {
      row(key + " mean latency, M/M/inf (service time only)", measured_mean, 1e3 / mu, "ms");
      ++models;
    }
  }
  if (models == 0) {
    std::printf("  no part of this scenario fits a model (exponential failures or Poisson "
                "traffic with exponential service times)\n");
  }
  std::printf("  (network round trips add ~0.1-4 ms to measured latencies)\n");
  return 0;
}

}  // namespace

void add_analyze_command(CLI::App& app, int* exit_code) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("analyze", "Measured vs predicted (availability, queueing)");
  cmd->add_option("dir", *dir, "Results directory of a `flotilla sim` run")->required();
  cmd->callback([dir, exit_code] { *exit_code = run_analyze(*dir); });
}

}  // namespace flotilla::cli
