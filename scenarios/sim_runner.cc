#include "scenarios/sim_runner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "analysis/metrics.h"
#include "analysis/report.h"
#include "analysis/trace_io.h"
#include "core/agent/node_agent.h"
#include "core/api/names.h"
#include "core/api/pod_util.h"
#include "core/api/quantity.h"
#include "core/api/validation.h"
#include "core/controllers/controller_manager.h"
#include "core/controllers/pod_deletion.h"
#include "core/proxy/service_ip.h"
#include "core/proxy/service_proxy.h"
#include "core/scheduler/scheduler.h"
#include "core/store/in_memory_store.h"
#include "scenarios/control_plane_link.h"
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

std::map<std::string, std::string> resource_strings(const sim::NodeResources& r) {
  std::map<std::string, std::string> out;
  out["cpu"] = api::Quantity::from_milli(r.cpu_millis).to_string();
  out["memory"] = api::Quantity::from_value(r.memory_bytes).to_string();
  out["pods"] = std::to_string(r.pods);
  if (r.ephemeral_storage_bytes > 0) {
    out["ephemeral-storage"] = api::Quantity::from_value(r.ephemeral_storage_bytes).to_string();
  }
  for (const auto& [k, v] : r.extended) out[k] = std::to_string(v);
  return out;
}

struct PodRequests {
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  bool bound = false;
};

PodRequests requests_of(const api::Pod& pod) {
  PodRequests r;
  for (const auto& c : pod.spec().containers()) {
    const auto& req = c.resources().requests();
    if (auto it = req.find("cpu"); it != req.end()) {
      if (auto q = api::Quantity::parse(it->second); q.is_ok()) r.cpu_millis += q->milli_value();
    }
    if (auto it = req.find("memory"); it != req.end()) {
      if (auto q = api::Quantity::parse(it->second); q.is_ok()) r.memory_bytes += q->value();
    }
  }
  r.bound = !pod.spec().node_name().empty() && !api::is_pod_finished(pod);
  return r;
}

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
    store_rng_ = random_.stream("store");
    store::StoreOptions so;
    so.validator = [](const google::protobuf::Message& obj,
                      const google::protobuf::Message* old) -> Status {
      std::vector<api::FieldError> errors =
          old == nullptr ? api::validate(obj) : api::validate_update(*old, obj);
      if (errors.empty()) return Status::ok();
      return api::invalid_status(obj, errors);
    };
    store_ = std::make_unique<store::InMemoryStore>(sim_, *store_rng_, so);

    world_ = std::make_unique<sim::World>(sim_, random_, tee_, sc_.world);
    record(trace::RUN_STARTED, [&](trace::Record& r) {
      r.set_name(sc_.name);
      r.set_value(static_cast<int64_t>(seed_));
      (*r.mutable_attrs())["backend"] = "sim";
      (*r.mutable_attrs())["duration_s"] = std::to_string(to_seconds(sc_.duration));
    });
    for (const auto& g : sc_.node_groups) FLOTILLA_RETURN_IF_ERROR(world_->add_node_group(g));

    ctrl::ControllerContext ctx{*store_, sim_, tee_, sc_.timing};
    controllers_ = std::make_unique<ctrl::ControllerManager>(ctx);
    FLOTILLA_RETURN_IF_ERROR(controllers_->start());
    auto ips = proxy::ServiceIPAllocator::create(sim_, *store_, world_->network());
    if (!ips.is_ok()) return ips.status();
    service_ips_ = std::move(ips).value();
    FLOTILLA_RETURN_IF_ERROR(service_ips_->start());

    sched::SchedulerOptions sched_opts;
    sched_opts.mode = sc_.scheduler_mode == "flow" ? sched::PlacementMode::kFlow
                                                   : sched::PlacementMode::kGreedy;
    sched_opts.placement.percentage_of_nodes_to_score = sc_.percentage_of_nodes_to_score;
    sched_opts.initial_backoff = sc_.timing.scheduler_backoff_initial;
    sched_opts.max_backoff = sc_.timing.scheduler_backoff_max;
    scheduler_ = std::make_unique<sched::Scheduler>(*store_, sim_, tee_, sched_opts);
    FLOTILLA_RETURN_IF_ERROR(scheduler_->start());

    // One agent per node, talking to the store over its control-plane link.
    for (sim::NodeId id = 0; id < world_->node_count(); ++id) {
      const sim::SimNode& n = world_->node(id);
      agent::NodeDescription desc;
      desc.capacity = resource_strings(n.capacity);
      desc.allocatable = resource_strings(n.allocatable);
      desc.labels = n.labels;
      desc.addresses = {{"InternalIP", "192.168." + std::to_string(id / 256) + "." +
                                           std::to_string(id % 256)},
                        {"Hostname", n.name}};
      links_.push_back(std::make_unique<ControlPlaneLink>(*store_, world_->topology(), id));
      agents_.push_back(std::make_unique<agent::NodeAgent>(
          n.name, sim_, *links_.back(), world_->runtime(id), world_->network(), tee_,
          sc_.timing, std::move(desc)));
      FLOTILLA_RETURN_IF_ERROR(agents_.back()->start());
      allocatable_cpu_ += n.allocatable.cpu_millis;
      allocatable_mem_ += n.allocatable.memory_bytes;
    }
    node_sub_ = world_->on_node_state([this](const std::string& node, bool up) {
      auto id = world_->find_node(node);
      if (!id) return;
      const sim::SimNode& n = world_->node(*id);
      if (up) {
        allocatable_cpu_ += n.allocatable.cpu_millis;
        allocatable_mem_ += n.allocatable.memory_bytes;
        // A machine that comes back boots its agent, which finds no sandboxes.
        sim_.post([this, id = *id] {
          if (world_->node(id).up && !agents_[id]->running()) (void)agents_[id]->start();
        });
      } else {
        allocatable_cpu_ -= n.allocatable.cpu_millis;
        allocatable_mem_ -= n.allocatable.memory_bytes;
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

    // Allocation samples from an incremental view of the pods.
    auto pod_watch = store_->watch(api::Kind::kPod, WatchOptions{},
                                   [this](const WatchEvent& e) { on_pod_event(e); });
    if (!pod_watch.is_ok()) return pod_watch.status();
    pod_watch_ = std::move(pod_watch).value();
    sample_timer_ = sim_.run_after(sc_.sample_period, [this] { sample(); });

    for (size_t i = 0; i < sc_.workload.size(); ++i) {
      sim_.schedule_at(kTimeZero + sc_.workload[i].at, [this, i] { apply(sc_.workload[i]); });
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
    sample();
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
        sim_, *store_, world_->network(), random_,
        proxy::ServiceProxyOptions::from_timing(sc_.timing, node), nullptr);
    FLOTILLA_RETURN_IF_ERROR(p->start());
    proxy::ServiceProxy* raw = p.get();
    proxies_.emplace(node, std::move(p));
    return raw;
  }

  void on_pod_event(const WatchEvent& e) {
    const auto& pod = static_cast<const api::Pod&>(*e.object);
    PodRequests now = e.type == WatchEventType::kDeleted ? PodRequests{} : requests_of(pod);
    PodRequests& was = pods_[pod.metadata().uid()];
    if (was.bound) {
      requested_cpu_ -= was.cpu_millis;
      requested_mem_ -= was.memory_bytes;
    }
    if (now.bound) {
      requested_cpu_ += now.cpu_millis;
      requested_mem_ += now.memory_bytes;
    }
    if (e.type == WatchEventType::kDeleted) {
      pods_.erase(pod.metadata().uid());
      if (!pod.metadata().uid().empty()) {
        record(trace::POD_DELETED, [&](trace::Record& r) {
          r.set_namespace_(pod.metadata().namespace_());
          r.set_name(pod.metadata().name());
          r.set_uid(pod.metadata().uid());
          r.set_node(pod.spec().node_name());
        });
      }
    } else {
      was = now;
      if (e.type == WatchEventType::kAdded) {
        record(trace::POD_CREATED, [&](trace::Record& r) {
          r.set_namespace_(pod.metadata().namespace_());
          r.set_name(pod.metadata().name());
          r.set_uid(pod.metadata().uid());
        });
      }
    }
  }

  void sample() {
    int64_t bound = 0;
    for (const auto& [uid, p] : pods_) bound += p.bound;
    record(trace::CLUSTER_SAMPLE, [&](trace::Record& r) {
      r.set_value(requested_cpu_);
      r.set_value2(requested_mem_);
      auto& a = *r.mutable_attrs();
      a["cpu_allocatable"] = std::to_string(allocatable_cpu_);
      a["memory_allocatable"] = std::to_string(allocatable_mem_);
      a["pods_bound"] = std::to_string(bound);
      a["pods_pending"] = std::to_string(static_cast<int64_t>(pods_.size()) - bound);
    });
    if (sim_.now() + sc_.sample_period <= kTimeZero + sc_.duration) {
      sample_timer_ = sim_.run_after(sc_.sample_period, [this] { sample(); });
    }
  }

  void apply(const WorkloadAction& a) {
    for (const auto& obj : a.apply) {
      auto copy = std::shared_ptr<google::protobuf::Message>(obj.object->New());
      copy->CopyFrom(*obj.object);
      api::fill_type_meta(copy.get());
      const api::KindInfo& k = api::kind_info(obj.kind);
      api::ObjectMeta* meta = k.mutable_meta(*copy);
      if (k.namespaced && meta->namespace_().empty()) meta->set_namespace_("default");
      auto created = store_->create(copy);
      Status s = created.status();
      if (s.code() == StatusCode::kAlreadyExists) {
        auto existing = store_->get(obj.kind, meta->namespace_(), meta->name());
        if (existing.is_ok()) {
          meta->set_resource_version(k.meta(**existing).resource_version());
          s = store_->update(copy).status();
        }
      }
      record(trace::WORKLOAD_APPLIED, [&](trace::Record& r) {
        r.set_namespace_(meta->namespace_());
        r.set_name(meta->name());
        r.set_reason(std::string(k.name));
        if (obj.kind == api::Kind::kService) r.set_service(meta->namespace_() + "/" + meta->name());
        if (!s.is_ok()) r.set_message(s.message());
      });
    }
    if (a.scale) {
      for (int attempt = 0; attempt < 5; ++attempt) {
        auto rc = store_->get(api::Kind::kReplicationController, a.scale->namespace_(), a.scale->name());
        if (!rc.is_ok()) break;
        api::ReplicationController copy = *api::as<api::ReplicationController>(*rc);
        copy.mutable_spec()->set_replicas(a.scale->replicas());
        if (store_->update(api::share(std::move(copy))).is_ok()) break;
      }
      record(trace::WORKLOAD_APPLIED, [&](trace::Record& r) {
        r.set_namespace_(a.scale->namespace_());
        r.set_name(a.scale->name());
        r.set_reason("Scale");
        r.set_value(a.scale->replicas());
      });
    }
    if (a.remove) {
      const api::KindInfo* k = api::kind_by_name(a.remove->kind());
      if (k->kind == api::Kind::kPod) {
        (void)ctrl::delete_pod(*store_, a.remove->namespace_(), a.remove->name(), sim_.now(),
                               std::nullopt);
      } else {
        (void)store_->remove(k->kind, a.remove->namespace_(), a.remove->name());
      }
      record(trace::WORKLOAD_APPLIED, [&](trace::Record& r) {
        r.set_namespace_(a.remove->namespace_());
        r.set_name(a.remove->name());
        r.set_reason("Delete" + std::string(k->name));
      });
    }
  }

  const LoadedScenario& sc_;
  uint64_t seed_;
  sim::Simulator sim_;
  sim::SimRandom random_;
  analysis::MetricsCollector metrics_;
  MetricsSink metrics_sink_;
  analysis::TeeTraceSink tee_;
  std::unique_ptr<RandomStream> store_rng_;
  std::unique_ptr<store::InMemoryStore> store_;
  std::unique_ptr<sim::World> world_;
  std::unique_ptr<ctrl::ControllerManager> controllers_;
  std::unique_ptr<proxy::ServiceIPAllocator> service_ips_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::vector<std::unique_ptr<ControlPlaneLink>> links_;
  std::vector<std::unique_ptr<agent::NodeAgent>> agents_;
  std::unique_ptr<sim::World::NodeStateSubscription> node_sub_;
  std::map<std::string, std::unique_ptr<proxy::ServiceProxy>> proxies_;
  std::unique_ptr<sim::TrafficGenerator> traffic_;
  std::unique_ptr<sim::FaultInjector> faults_;
  WatchHandle pod_watch_;
  TimerHandle sample_timer_;
  std::map<std::string, PodRequests> pods_;
  int64_t requested_cpu_ = 0, requested_mem_ = 0;
  int64_t allocatable_cpu_ = 0, allocatable_mem_ = 0;
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
  outcome.assertions = evaluate_assertions(sc.assertions, summary);
  ordered_json as = ordered_json::array();
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
  FLOTILLA_RETURN_IF_ERROR(analysis::write_time_series_csv(run->metrics(), outcome.out_dir));
  run.reset();
  if (options.report) {
    auto rep = analysis::write_report(outcome.out_dir);
    if (!rep.is_ok()) return rep.status();
    outcome.report_path = rep->html_path;
    outcome.report_warning = rep->warning;
  }
  return outcome;
}

}  // namespace flotilla::scenarios
