#include "scenarios/sim_runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <vector>

#include "analysis/metrics.h"
#include "analysis/report.h"
#include "analysis/trace_io.h"
#include "core/agent/node_agent.h"
#include "core/api/quantity.h"
#include "core/proxy/service_proxy.h"
#include "scenarios/control_plane.h"
#include "scenarios/control_plane_link.h"
#include "scenarios/results.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "sim/faults/faults.h"
#include "sim/traffic/traffic.h"
#include "sim/world/world.h"

namespace flotilla::scenarios {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// Feeds every trace record to the streaming metrics as it is written.
class MetricsSink final : public TraceSink {
 public:
  explicit MetricsSink(analysis::MetricsCollector& c) : c_(c) {}
  void record(const trace::Record& r) override { c_.add(r); }

 private:
  analysis::MetricsCollector& c_;
};

// The whole simulated cluster of one run. Members are declared in dependency
// order, so they are destroyed in reverse.
class SimRun {
 public:
  SimRun(const LoadedScenario& sc, uint64_t seed, analysis::FileTraceSink& file)
      : sc_(sc),
        seed_(seed),
        random_(seed),
        metrics_(kTimeZero, std::max<Duration>(sc.sample_period, milliseconds(1))),
        metrics_sink_(metrics_) {
    tee_.add(&file);
    tee_.add(&metrics_sink_);
  }

  Status build() {
    world_ = std::make_unique<sim::World>(sim_, random_, tee_, sc_.world);
    record(trace::RUN_STARTED, [&](trace::Record& r) {
      r.set_name(sc_.name);
      r.set_value(static_cast<int64_t>(seed_));
      (*r.mutable_attrs())["backend"] = "sim";
      (*r.mutable_attrs())["duration_s"] = std::to_string(to_seconds(sc_.duration));
    });
    for (const auto& g : sc_.node_groups) FLOTILLA_RETURN_IF_ERROR(world_->add_node_group(g));

    control_ = std::make_unique<ControlPlane>(sim_, random_, world_->network(), tee_, sc_);
    FLOTILLA_RETURN_IF_ERROR(control_->start());
    Store& store = control_->store();
    allocation_ = std::make_unique<AllocationTracker>(sim_, store, tee_, sc_.sample_period);
    FLOTILLA_RETURN_IF_ERROR(allocation_->start());

    // One agent per node, talking to the store over its control-plane link.
    for (sim::NodeId id = 0; id < world_->node_count(); ++id) {
      const sim::SimNode& n = world_->node(id);
      agent::NodeDescription desc;
      desc.capacity = format_node_resources(n.capacity);
      desc.allocatable = format_node_resources(n.allocatable);
      desc.labels = n.labels;
      desc.addresses = {{"InternalIP", "192.168." + std::to_string(id / 256) + "." +
                                           std::to_string(id % 256)},
                        {"Hostname", n.name}};
      links_.push_back(std::make_unique<ControlPlaneLink>(store, world_->topology(), id));
      agents_.push_back(std::make_unique<agent::NodeAgent>(
          n.name, sim_, *links_.back(), world_->runtime(id), world_->network(), tee_,
          sc_.timing, std::move(desc)));
      FLOTILLA_RETURN_IF_ERROR(agents_.back()->start());
      allocation_->add_allocatable(n.allocatable.cpu_millis, n.allocatable.memory_bytes);
    }
    node_sub_ = world_->on_node_state([this](const std::string& node, bool up) {
      auto id = world_->find_node(node);
      if (!id) return;
      const sim::SimNode& n = world_->node(*id);
      if (up) {
        allocation_->add_allocatable(n.allocatable.cpu_millis, n.allocatable.memory_bytes);
        // A machine that comes back boots its agent, which finds no sandboxes.
        sim_.post([this, id = *id] {
          if (world_->node(id).up && !agents_[id]->running()) (void)agents_[id]->start();
        });
      } else {
        allocation_->add_allocatable(-n.allocatable.cpu_millis, -n.allocatable.memory_bytes);
        agents_[*id]->stop();
      }
    });

    // Service proxies for the nodes clients use.
    for (const auto& t : sc_.traffic) {
      std::string node = t.from_node.empty() ? world_->node(0).name : t.from_node;
      if (!world_->find_node(node)) {
        return Status(StatusCode::kNotFound,
                      sc_.path + ": " + t.name + ".from_node: no node named \"" + node + "\"");
      }
      FLOTILLA_RETURN_IF_ERROR(proxy_for_node(node).status());
    }
    traffic_ = std::make_unique<sim::TrafficGenerator>(
        sim_, *world_, random_, tee_,
        [this](const std::string& node) -> proxy::ServiceProxy& { return *proxies_.at(node); });
    for (const auto& t : sc_.traffic) traffic_->add(t);

    faults_ = std::make_unique<sim::FaultInjector>(*world_, random_);
    Status fs = faults_->add_all(sc_.faults);
    if (!fs.is_ok()) return fs.with_prefix(sc_.path + ": ");

    const TimePoint end = kTimeZero + sc_.duration;
    sample_timer_ = sim_.run_after(sc_.sample_period, [this, end] { allocation_->sample(end); });
    for (size_t i = 0; i < sc_.workload.size(); ++i) {
      sim_.schedule_at(kTimeZero + sc_.workload[i].at,
                       [this, i] { control_->apply(sc_.workload[i]); });
    }
    return Status::ok();
  }

  void run(bool progress) {
    const TimePoint end = kTimeZero + sc_.duration;
    const auto wall_start = std::chrono::steady_clock::now();
    if (progress) {
      auto last = wall_start;
      uint64_t last_events = 0;
      // Checked every 1/1000 of the run: cheap, and never reads the wall clock
      // inside the control plane.
      const Duration step = std::max<Duration>(sc_.duration / 1000, milliseconds(1));
      std::function<void()> tick;
      tick = [&, this] {
        auto now = std::chrono::steady_clock::now();
        double dt = std::chrono::duration<double>(now - last).count();
        if (dt >= 0.25) {
          double frac = to_seconds(sim_.now()) / to_seconds(sc_.duration);
          int bar = static_cast<int>(frac * 30);
          std::fprintf(stderr, "\r  [%-30s] %5.1f%%  sim %s / %s  %.2fM events/s   ",
                       std::string(static_cast<size_t>(bar), '#').c_str(), frac * 100,
                       format_duration(sim_.now() - kTimeZero).c_str(),
                       format_duration(sc_.duration).c_str(),
                       static_cast<double>(sim_.events_processed() - last_events) / dt / 1e6);
          last = now;
          last_events = sim_.events_processed();
        }
        if (sim_.now() + step < end) sim_.schedule_after(step, tick);
      };
      sim_.schedule_after(step, tick);
      sim_.run_until(end);
      std::fprintf(stderr, "\r%100s\r", "");
    } else {
      sim_.run_until(end);
    }
    wall_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    allocation_->sample(end);
    record(trace::RUN_ENDED, [&](trace::Record& r) {
      r.set_name(sc_.name);
      r.set_value(static_cast<int64_t>(sim_.events_processed()));
    });
    metrics_.finish(end);
  }

  const analysis::MetricsCollector& metrics() const { return metrics_; }
  uint64_t events() const { return sim_.events_processed(); }
  double wall_seconds() const { return wall_seconds_; }
  const sim::TrafficStats traffic_stats() const { return traffic_->stats(); }
  uint64_t faults_injected() const { return faults_->injected(); }

 private:
  template <typename F>
  void record(trace::EventType type, F fill) {
    trace::Record r;
    r.set_time_ns(to_nanos(sim_.now()));
    r.set_type(type);
    fill(r);
    tee_.record(r);
  }

  StatusOr<proxy::ServiceProxy*> proxy_for_node(const std::string& node) {
    auto it = proxies_.find(node);
    if (it != proxies_.end()) return it->second.get();
    auto p = std::make_unique<proxy::ServiceProxy>(
        sim_, control_->store(), world_->network(), random_,
        proxy::ServiceProxyOptions::from_timing(sc_.timing, node), nullptr);
    FLOTILLA_RETURN_IF_ERROR(p->start());
    proxy::ServiceProxy* raw = p.get();
    proxies_.emplace(node, std::move(p));
    return raw;
  }

  const LoadedScenario& sc_;
  uint64_t seed_;
  sim::Simulator sim_;
  sim::SimRandom random_;
  analysis::MetricsCollector metrics_;
  MetricsSink metrics_sink_;
  analysis::TeeTraceSink tee_;
  std::unique_ptr<sim::World> world_;
  std::unique_ptr<ControlPlane> control_;
  std::unique_ptr<AllocationTracker> allocation_;
  std::vector<std::unique_ptr<ControlPlaneLink>> links_;
  std::vector<std::unique_ptr<agent::NodeAgent>> agents_;
  std::unique_ptr<sim::World::NodeStateSubscription> node_sub_;
  std::map<std::string, std::unique_ptr<proxy::ServiceProxy>> proxies_;
  std::unique_ptr<sim::TrafficGenerator> traffic_;
  std::unique_ptr<sim::FaultInjector> faults_;
  TimerHandle sample_timer_;
  double wall_seconds_ = 0;
};

double get_number(const ordered_json& j, std::initializer_list<const char*> path, double fallback) {
  const ordered_json* cur = &j;
  for (const char* p : path) {
    if (!cur->is_object() || !cur->contains(p)) return fallback;
    cur = &(*cur)[p];
  }
  return cur->is_number() ? cur->get<double>() : fallback;
}

// Runs left for the process's exit to reclaim (SimRunOptions::free_at_end):
// still reachable from here, so tools that look for leaks do not count them.
void keep_until_exit(std::unique_ptr<SimRun> run) {
  static std::mutex mu;
  static auto* kept = new std::vector<std::unique_ptr<SimRun>>();
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(std::move(run));
}

}  // namespace

std::vector<AssertionResult> evaluate_assertions(const std::vector<AssertionSpec>& specs,
                                                 const ordered_json& summary) {
  std::vector<AssertionResult> out;
  for (const AssertionSpec& a : specs) {
    AssertionResult r;
    r.name = a.name;
    const char* t = a.target.c_str();
    switch (a.kind) {
      case AssertionSpec::Kind::kAvailability:
        r.value = get_number(summary, {"services", t, "availability"}, 0);
        r.passed = r.value >= a.bound;
        break;
      case AssertionSpec::Kind::kErrorRate: {
        double total = get_number(summary, {"services", t, "requests", "total"}, 0);
        double failed = get_number(summary, {"services", t, "requests", "failed"}, 0);
        r.value = total > 0 ? failed / total : 0;
        r.passed = total > 0 && r.value <= a.bound;
        break;
      }
      case AssertionSpec::Kind::kLatency: {
        const char* key = a.percentile == 50 ? "p50" : a.percentile == 90 ? "p90" : "p99";
        double total = get_number(summary, {"services", t, "requests", "total"}, 0);
        r.value = get_number(summary, {"services", t, "requests", "latency_ms", key}, 0);
        r.passed = total > 0 && r.value <= a.bound;
        break;
      }
      case AssertionSpec::Kind::kMaxPending:
        r.value = get_number(summary, {"pods", "max_pending_s"}, 0);
        r.passed = r.value <= a.bound;
        break;
      case AssertionSpec::Kind::kReadyReplicas:
        r.value = get_number(summary, {"controllers", t, "ready_time_fraction"}, 0);
        r.passed = r.value >= a.bound;
        break;
      case AssertionSpec::Kind::kMaxRestarts:
        r.value = get_number(summary, {"pods", "restarts"}, 0);
        r.passed = r.value <= a.bound;
        break;
      case AssertionSpec::Kind::kFinalReplicas:
        r.value = get_number(summary, {"controllers", t, "ready"}, -1);
        r.passed = r.value == a.bound;
        break;
    }
    out.push_back(std::move(r));
  }
  return out;
}

StatusOr<RunOutcome> run_simulation(const LoadedScenario& sc, const SimRunOptions& options) {
  const uint64_t seed = options.seed.value_or(sc.seed);
  RunOutcome outcome;
  outcome.out_dir = options.out_dir.empty()
                        ? "results/" + sc.name + "-" + std::to_string(seed)
                        : options.out_dir;
  std::error_code ec;
  fs::create_directories(outcome.out_dir, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable, "cannot create " + outcome.out_dir + ": " + ec.message());
  }
  auto file = analysis::FileTraceSink::open(outcome.out_dir + "/trace.pb");
  if (!file.is_ok()) return file.status();

  auto run = std::make_unique<SimRun>(sc, seed, **file);
  FLOTILLA_RETURN_IF_ERROR(run->build());
  run->run(options.progress);
  FLOTILLA_RETURN_IF_ERROR((*file)->close());

  ordered_json summary;
  summary["scenario"] = sc.name;
  summary["scenario_file"] = std::filesystem::absolute(sc.path).string();
  summary["backend"] = "sim";
  summary["seed"] = seed;
  summary["sim_seconds"] = to_seconds(sc.duration);
  summary["wall_seconds"] = run->wall_seconds();
  summary["events"] = run->events();
  summary["trace_sha256"] = (*file)->sha256_hex();
  summary["trace_records"] = (*file)->records();
  ordered_json m = analysis::metrics_to_json(run->metrics().metrics());
  for (auto& [k, v] : m.items()) summary[k] = v;
  const sim::TrafficStats ts = run->traffic_stats();
  summary["traffic"] = {{"sent", ts.sent}, {"served", ts.served}, {"failed", ts.failed},
                        {"retries", ts.retries}};
  summary["faults_injected"] = run->faults_injected();
  FLOTILLA_RETURN_IF_ERROR(write_summary_and_series(sc, std::move(summary), run->metrics(), outcome));
  if (options.free_at_end) {
    run.reset();
  } else {
    keep_until_exit(std::move(run));
  }
  if (options.report) FLOTILLA_RETURN_IF_ERROR(write_run_report(outcome));
  return outcome;
}

}  // namespace flotilla::scenarios
