#include "scenarios/live_runner.h"

#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "analysis/metrics.h"
#include "analysis/trace_io.h"
#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"
#include "backends/live/live_faults.h"
#include "backends/live/live_network.h"
#include "backends/live/live_traffic.h"
#include "backends/live/node_services.h"
#include "core/agent/node_agent.h"
#include "core/api/quantity.h"
#include "core/proxy/service_proxy.h"
#include "scenarios/control_plane.h"
#include "scenarios/results.h"
#include "sim/engine/random.h"

namespace flotilla::scenarios {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

// Feeds every trace record to the streaming metrics as it is written.
class MetricsSink final : public TraceSink {
 public:
  explicit MetricsSink(analysis::MetricsCollector& c) : c_(c) {}
  void record(const trace::Record& r) override { c_.add(r); }

 private:
  analysis::MetricsCollector& c_;
};

// Live time is wall-aligned; the trace counts from the run's start, as the
// simulator's does, so both worlds' traces and metrics read the same.
class RebasingSink final : public TraceSink {
 public:
  RebasingSink(TraceSink& inner, int64_t base_ns) : inner_(inner), base_ns_(base_ns) {}
  void record(const trace::Record& r) override {
    trace::Record copy = r;
    copy.set_time_ns(r.time_ns() - base_ns_);
    inner_.record(copy);
  }

 private:
  TraceSink& inner_;
  int64_t base_ns_;
};

struct NodePlan {
  live::LiveNodeInfo info;
  sim::NodeResources capacity, allocatable;
  std::map<std::string, std::string> labels;
};

// The nodes of the scenario's node groups, named and placed as sim::World does.
StatusOr<std::vector<NodePlan>> plan_nodes(const LoadedScenario& sc, const std::string& prefix) {
  std::vector<NodePlan> out;
  for (const auto& g : sc.node_groups) {
    if (g.zones.empty() || g.nodes_per_rack <= 0) {
      return invalid_error(sc.path + ": node group \"" + g.name + "\": no zones or bad nodes_per_rack");
    }
    const int zones = static_cast<int>(g.zones.size());
    for (int i = 0; i < g.count; ++i) {
      NodePlan n;
      n.info.name = g.name + "-" + std::to_string(i);
      n.info.zone = g.zones[static_cast<size_t>(i % zones)];
      n.info.rack = g.name + "-" + n.info.zone + "-r" + std::to_string(i / zones / g.nodes_per_rack);
      n.info.docker_node = prefix + n.info.name;
      n.capacity = g.capacity;
      n.allocatable = g.allocatable.value_or(g.capacity);
      n.labels = g.labels;
      n.labels[std::string(sim::kZoneLabel)] = n.info.zone;
      n.labels[std::string(sim::kRackLabel)] = n.info.rack;
      n.labels[std::string(sim::kHostnameLabel)] = n.info.name;
      out.push_back(std::move(n));
    }
  }
  return out;
}

std::string service_key(const std::string& service) {
  if (service.find('/') != std::string::npos) return service;
  if (auto dot = service.find('.'); dot != std::string::npos) {
    // "web.default[.svc.cluster.local]"
    auto rest = service.substr(dot + 1);
    return rest.substr(0, rest.find('.')) + "/" + service.substr(0, dot);
  }
  return "default/" + service;
}

// The whole live cluster of one run. Members are declared in dependency
// order, so they are destroyed in reverse.
class LiveRun final : public LiveRunView, public live::LiveNodeControl {
 public:
  LiveRun(const LoadedScenario& sc, const LiveRunOptions& opts, analysis::FileTraceSink& file)
      : sc_(sc),
        opts_(opts),
        base_(loop_.now()),
        random_(sc.seed),
        metrics_(kTimeZero, std::max<Duration>(sc.sample_period, milliseconds(1))),
        metrics_sink_(metrics_),
        rebase_(tee_, to_nanos(base_)),
        network_(loop_),
        client_(opts.docker_socket) {
    tee_.add(&file);
    tee_.add(&metrics_sink_);
  }

  ~LiveRun() override { (void)teardown(); }

  Status build() {
    FLOTILLA_RETURN_IF_ERROR(client_.ping());
    auto plan = plan_nodes(sc_, opts_.node_label_prefix);
    if (!plan.is_ok()) return plan.status();
    plan_ = std::move(*plan);
    if (plan_.empty()) return invalid_error(sc_.path + ": the scenario has no nodes");
    if (static_cast<int>(plan_.size()) > opts_.max_nodes) {
      return invalid_error(sc_.path + ": " + std::to_string(plan_.size()) +
                           " nodes are too many for live mode on one Docker host (at most " +
                           std::to_string(opts_.max_nodes) +
                           "); lower them with --set cluster.node_groups[0].count=3");
    }
    record(trace::RUN_STARTED, [&](trace::Record& r) {
      r.set_name(sc_.name);
      r.set_value(static_cast<int64_t>(sc_.seed));
      (*r.mutable_attrs())["backend"] = "docker";
      (*r.mutable_attrs())["duration_s"] = std::to_string(to_seconds(sc_.duration));
    });
    for (const auto& n : plan_) {
      record(trace::NODE_ADDED, [&](trace::Record& r) { r.set_node(n.info.name); });
    }

    // The pod network; its gateway is every pod's resolver (NodeServices
    // serves DNS there) and its bridge holds the Service VIPs.
    auto net = docker::ensure_network(client_, opts_.docker_network,
                                      docker::DockerRuntimeOptions{}.subnets);
    if (!net.is_ok()) return net.status();
    net_ = *net;
    if (opts_.pod_services && net_.gateway.empty()) {
      warnings_.push_back("network " + opts_.docker_network +
                          " has no IPv4 gateway: pods cannot reach Services by name or VIP");
    }
    const bool pod_services = opts_.pod_services && !net_.gateway.empty();

    control_ = std::make_unique<ControlPlane>(loop_, random_, network_, rebase_, sc_);
    FLOTILLA_RETURN_IF_ERROR(control_->start());
    Store& store = control_->store();
    allocation_ = std::make_unique<AllocationTracker>(loop_, store, rebase_, sc_.sample_period);
    FLOTILLA_RETURN_IF_ERROR(allocation_->start());

    // The host's NodeServices (before the agents, so pods get a resolver that
    // answers): the decisions of the clients' node, the TCP data path on
    // 127.0.0.1 and the VIPs, the VIPs on the bridge, DNS on its gateway.
    std::string proxy_node = plan_[0].info.name;
    for (const auto& t : sc_.traffic) {
      if (t.from_node.empty()) continue;
      if (find_node(t.from_node) < 0) {
        return Status(StatusCode::kNotFound,
                      sc_.path + ": " + t.name + ".from_node: no node named \"" + t.from_node + "\"");
      }
      proxy_node = t.from_node;
    }
    live::NodeServicesOptions so;
    so.proxy = proxy::ServiceProxyOptions::from_timing(sc_.timing, proxy_node);
    so.host_port_offset = opts_.host_port_offset;
    so.max_retries = sc_.timing.proxy_max_retries;
    if (pod_services) {
      so.bridge = net_.bridge;
      so.gateway = net_.gateway;
      so.dns_port = opts_.dns_port;
    }
    services_ = std::make_unique<live::NodeServices>(loop_, store, network_, random_, so);
    FLOTILLA_RETURN_IF_ERROR(services_->start());
    dns_address_ = services_->dns_address();

    // One agent per logical node, each with its own runtime and link.
    for (const auto& n : plan_) {
      docker::DockerRuntimeOptions ro;
      ro.node = n.info.docker_node;
      ro.socket_path = opts_.docker_socket;
      ro.network = opts_.docker_network;
      ro.worker_threads = 4;
      // The pods' resolver: the DNS server on the gateway, when it listens.
      if (services_->dns() != nullptr) ro.dns_servers = {net_.gateway};
      auto rt = docker::DockerContainerRuntime::create(loop_, ro);
      if (!rt.is_ok()) return rt.status();
      runtimes_.push_back(std::move(rt).value());
      agent::NodeDescription desc;
      desc.capacity = format_node_resources(n.capacity);
      desc.allocatable = format_node_resources(n.allocatable);
      desc.labels = n.labels;
      desc.addresses = {{"InternalIP", "127.0.0.1"}, {"Hostname", n.info.name}};
      desc.container_runtime_version = "docker://" + opts_.docker_network;
      links_.push_back(std::make_unique<live::SwitchableStoreLink>(store, n.info.name));
      agents_.push_back(std::make_unique<agent::NodeAgent>(
          n.info.name, loop_, *links_.back(), *runtimes_.back(), network_, rebase_, sc_.timing,
          std::move(desc)));
      FLOTILLA_RETURN_IF_ERROR(agents_.back()->start());
      allocation_->add_allocatable(n.allocatable.cpu_millis, n.allocatable.memory_bytes);
    }

    traffic_ = std::make_unique<live::LiveTrafficGenerator>(
        loop_, random_, rebase_, [this](const sim::TrafficSpec& spec) -> StatusOr<live::LiveTarget> {
          const std::string key = service_key(spec.service);
          auto addr = service_address(key, spec.port);
          if (!addr.is_ok()) return addr.status();
          return live::LiveTarget{*addr, key};
        });
    for (const auto& t : sc_.traffic) {
      traffic_->add(t, t.from_node.empty() ? plan_[0].info.name : t.from_node);
    }

    std::vector<live::LiveNodeInfo> infos;
    for (const auto& n : plan_) {
      infos.push_back(n.info);
      infos.back().labels = n.labels;
    }
    faults_ = std::make_unique<live::LiveFaultInjector>(loop_, random_, rebase_, store, client_,
                                                        *this, infos, opts_.docker_network);
    Status fs = faults_->add_all(sc_.faults);
    if (!fs.is_ok()) return fs.with_prefix(sc_.path + ": ");

    const TimePoint end = base_ + sc_.duration;
    sample_timer_ = loop_.run_after(sc_.sample_period, [this, end] { allocation_->sample(end); });
    for (size_t i = 0; i < sc_.workload.size(); ++i) {
      workload_timers_.push_back(
          loop_.run_after(sc_.workload[i].at, [this, i] { control_->apply(sc_.workload[i]); }));
    }
    return Status::ok();
  }

  void run() {
    const auto wall_start = std::chrono::steady_clock::now();
    std::unique_ptr<boost::asio::signal_set> signals;
    if (opts_.handle_signals) {
      signals = std::make_unique<boost::asio::signal_set>(loop_.io_context(), SIGINT, SIGTERM);
      signals->async_wait([this](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        interrupted_ = sig;
        loop_.stop();
      });
    }
    if (opts_.progress || opts_.on_tick) tick();
    const Duration left = base_ + sc_.duration - loop_.now();
    if (left > Duration(0)) loop_.run_for(left);
    tick_timer_ = TimerHandle();
    if (opts_.progress) std::fprintf(stderr, "\r%100s\r", "");
    if (signals) {
      boost::system::error_code ignored;
      signals->cancel(ignored);
    }
    if (traffic_) traffic_->stop();
    if (opts_.on_end) opts_.on_end(*this);
    wall_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    end_ = loop_.now();
    allocation_->sample(end_);
    record(trace::RUN_ENDED, [&](trace::Record& r) {
      r.set_name(sc_.name);
      r.set_value(interrupted_);
      if (interrupted_ != 0) r.set_reason("Interrupted");
    });
    metrics_.finish(kTimeZero + (end_ - base_));
  }

  // Stops everything and removes the run's Docker objects.
  Status teardown() {
    if (torn_down_) return Status::ok();
    torn_down_ = true;
    // What the summary reports, kept before the parts go.
    if (traffic_) traffic_stats_ = traffic_->stats();
    if (faults_) {
      faults_injected_ = faults_->injected();
      warnings_.insert(warnings_.end(), faults_->warnings().begin(), faults_->warnings().end());
    }
    faults_.reset();
    traffic_.reset();
    if (services_) {
      services_->stop();  // listeners, VIPs and the DNS server go
      const auto w = services_->warnings();
      warnings_.insert(warnings_.end(), w.begin(), w.end());
      services_.reset();
    }
    for (auto& a : agents_) a->stop();
    runtimes_.clear();  // joins their workers and event threads
    if (!opts_.cleanup) return Status::ok();
    Status first;
    for (const auto& n : plan_) {
      Status s = docker::remove_all_flotilla_objects(client_, n.info.docker_node);
      if (!s.is_ok() && first.is_ok()) first = s;
    }
    // The network, unless someone else's containers still use it.
    auto del = client_.call("DELETE", "/networks/" + docker::url_encode(opts_.docker_network));
    if (!del.is_ok() && del.status().code() != StatusCode::kNotFound &&
        del.status().code() != StatusCode::kConflict && first.is_ok()) {
      // Docker answers 403 "has active endpoints" (kInternal or another code)
      // when other runs' pods are still attached: that is not our leftover.
      if (del.status().message().find("active endpoints") == std::string::npos) first = del.status();
    }
    return first;
  }

  // --- LiveRunView ---
  Store& store() override { return control_->store(); }
  live::AsioEventLoop& loop() override { return loop_; }
  Duration elapsed() const override { return loop_.now() - base_; }
  StatusOr<NetEndpoint> service_address(const std::string& service, int port) const override {
    int p = port;
    if (p == 0) {
      auto slash = service.find('/');
      auto svc = control_->store().get(api::Kind::kService, service.substr(0, slash),
                                       service.substr(slash + 1));
      if (!svc.is_ok()) return svc.status();
      const auto& s = *api::as<api::Service>(*svc);
      if (s.spec().ports_size() != 1) {
        return invalid_error("service " + service + " has " + std::to_string(s.spec().ports_size()) +
                             " ports; name one in traffic.port");
      }
      p = s.spec().ports(0).port();
    }
    return services_->host_endpoint(service, p);
  }
  void stop() override { loop_.stop(); }
  const docker::DockerNetworkInfo& pod_network() const override { return net_; }

  // --- LiveNodeControl ---
  void node_down(const std::string& node, const std::string& reason) override {
    int i = find_node(node);
    if (i < 0 || !agents_[i]->running()) return;
    agents_[i]->stop();
    allocation_->add_allocatable(-plan_[i].allocatable.cpu_millis, -plan_[i].allocatable.memory_bytes);
    record(trace::NODE_DOWN, [&](trace::Record& r) {
      r.set_node(node);
      r.set_reason(reason);
    });
  }
  void node_up(const std::string& node, const std::string& reason) override {
    int i = find_node(node);
    if (i < 0 || agents_[i]->running()) return;
    record(trace::NODE_UP, [&](trace::Record& r) {
      r.set_node(node);
      r.set_reason(reason);
    });
    allocation_->add_allocatable(plan_[i].allocatable.cpu_millis, plan_[i].allocatable.memory_bytes);
    // A machine that comes back boots its agent, which adopts or removes
    // whatever it finds.
    (void)agents_[i]->start();
  }
  void set_cut_off(const std::string& node, bool cut_off) override {
    int i = find_node(node);
    if (i >= 0) links_[i]->set_cut_off(cut_off);
  }

  const analysis::MetricsCollector& metrics() const { return metrics_; }
  double wall_seconds() const { return wall_seconds_; }
  // After teardown().
  sim::TrafficStats traffic_stats() const { return traffic_stats_; }
  uint64_t faults_injected() const { return faults_injected_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  int interrupted() const { return interrupted_; }
  std::vector<std::string> docker_nodes() const {
    std::vector<std::string> out;
    for (const auto& n : plan_) out.push_back(n.info.docker_node);
    return out;
  }
  size_t node_count() const { return plan_.size(); }
  // Where pods' DNS queries go ("" when the server could not listen).
  std::string dns_address() const { return dns_address_; }

 private:
  template <typename F>
  void record(trace::EventType type, F fill) {
    trace::Record r;
    r.set_time_ns(to_nanos(loop_.now()));
    r.set_type(type);
    fill(r);
    rebase_.record(r);
  }

  int find_node(const std::string& name) const {
    for (size_t i = 0; i < plan_.size(); ++i) {
      if (plan_[i].info.name == name) return static_cast<int>(i);
    }
    return -1;
  }

  void tick() {
    if (opts_.on_tick) opts_.on_tick(*this);
    if (opts_.progress) {
      const double frac = std::min(1.0, to_seconds(elapsed()) / to_seconds(sc_.duration));
      const int bar = static_cast<int>(frac * 30);
      const auto ts = traffic_ ? traffic_->stats() : sim::TrafficStats{};
      std::fprintf(stderr, "\r  [%-30s] %5.1f%%  %s / %s  requests %lld ok %lld failed   ",
                   std::string(static_cast<size_t>(bar), '#').c_str(), frac * 100,
                   format_duration(std::chrono::duration_cast<Duration>(
                                       std::chrono::seconds(static_cast<int64_t>(to_seconds(elapsed())))))
                       .c_str(),
                   format_duration(sc_.duration).c_str(), static_cast<long long>(ts.served),
                   static_cast<long long>(ts.failed));
    }
    tick_timer_ = loop_.run_after(opts_.progress ? std::min(opts_.watch_period, Duration(seconds(1)))
                                                 : opts_.watch_period,
                                  [this] { tick(); });
  }

  const LoadedScenario& sc_;
  const LiveRunOptions& opts_;
  live::AsioEventLoop loop_;
  TimePoint base_;
  TimePoint end_{};
  sim::SimRandom random_;
  analysis::MetricsCollector metrics_;
  MetricsSink metrics_sink_;
  analysis::TeeTraceSink tee_;
  RebasingSink rebase_;
  live::LiveNetwork network_;
  docker::DockerClient client_;
  std::vector<NodePlan> plan_;
  docker::DockerNetworkInfo net_;
  std::string dns_address_;
  std::unique_ptr<ControlPlane> control_;
  std::unique_ptr<AllocationTracker> allocation_;
  std::vector<std::unique_ptr<docker::DockerContainerRuntime>> runtimes_;
  std::vector<std::unique_ptr<live::SwitchableStoreLink>> links_;
  std::vector<std::unique_ptr<agent::NodeAgent>> agents_;
  std::unique_ptr<live::NodeServices> services_;
  std::unique_ptr<live::LiveTrafficGenerator> traffic_;
  std::unique_ptr<live::LiveFaultInjector> faults_;
  TimerHandle sample_timer_;
  TimerHandle tick_timer_;
  std::vector<TimerHandle> workload_timers_;
  double wall_seconds_ = 0;
  sim::TrafficStats traffic_stats_;
  uint64_t faults_injected_ = 0;
  std::vector<std::string> warnings_;
  int interrupted_ = 0;
  bool torn_down_ = false;
};

int count_of(const StatusOr<json>& j) {
  return j.is_ok() && j->is_array() ? static_cast<int>(j->size()) : 0;
}

}  // namespace

StatusOr<RunOutcome> run_live(const LoadedScenario& sc, const LiveRunOptions& options) {
  RunOutcome outcome;
  outcome.out_dir = options.out_dir.empty() ? "results/" + sc.name + "-live" : options.out_dir;
  std::error_code ec;
  fs::create_directories(outcome.out_dir, ec);
  if (ec) {
    return Status(StatusCode::kUnavailable, "cannot create " + outcome.out_dir + ": " + ec.message());
  }
  auto file = analysis::FileTraceSink::open(outcome.out_dir + "/trace.pb");
  if (!file.is_ok()) return file.status();

  auto run = std::make_unique<LiveRun>(sc, options, **file);
  Status built = run->build();
  if (!built.is_ok()) {
    (void)run->teardown();
    return built;
  }
  run->run();
  Status cleaned = run->teardown();
  FLOTILLA_RETURN_IF_ERROR((*file)->close());

  ordered_json summary;
  summary["scenario"] = sc.name;
  summary["backend"] = "docker";
  summary["seed"] = sc.seed;
  summary["sim_seconds"] = to_seconds(sc.duration);
  summary["wall_seconds"] = run->wall_seconds();
  summary["events"] = (*file)->records();
  summary["trace_sha256"] = (*file)->sha256_hex();
  summary["trace_records"] = (*file)->records();
  ordered_json m = analysis::metrics_to_json(run->metrics().metrics());
  for (auto& [k, v] : m.items()) summary[k] = v;
  const sim::TrafficStats ts = run->traffic_stats();
  summary["traffic"] = {{"sent", ts.sent}, {"served", ts.served}, {"failed", ts.failed},
                        {"retries", ts.retries}};
  summary["faults_injected"] = run->faults_injected();
  summary["live"] = {{"nodes", run->node_count()},
                     {"docker_network", options.docker_network},
                     {"pod_network", {{"subnet", run->pod_network().subnet},
                                      {"dns", run->dns_address()},
                                      {"bridge", run->pod_network().bridge}}},
                     {"interrupted", run->interrupted() != 0},
                     {"cleanup", cleaned.is_ok() ? "ok" : cleaned.message()},
                     {"warnings", run->warnings()}};
  FLOTILLA_RETURN_IF_ERROR(write_summary_and_series(sc, std::move(summary), run->metrics(), outcome));
  run.reset();
  if (options.report) FLOTILLA_RETURN_IF_ERROR(write_run_report(outcome));
  return outcome;
}

StatusOr<LiveDownCounts> live_down(const std::string& docker_socket) {
  docker::DockerClient client(docker_socket);
  FLOTILLA_RETURN_IF_ERROR(client.ping());
  const json filters = {{"label", json::array({std::string(docker::kManagedLabel) + "=true"})}};
  const std::string f = docker::encode_filters(filters);
  LiveDownCounts c;
  c.containers = count_of(client.call("GET", "/containers/json?all=1&filters=" + f));
  auto vols = client.call("GET", "/volumes?filters=" + f);
  if (vols.is_ok() && (*vols)["Volumes"].is_array()) c.volumes = static_cast<int>((*vols)["Volumes"].size());
  c.networks = count_of(client.call("GET", "/networks?filters=" + f));
  FLOTILLA_RETURN_IF_ERROR(docker::remove_all_flotilla_objects(client));
  return c;
}

StatusOr<LiveDownCounts> live_leftovers(const std::string& docker_socket,
                                        const std::vector<std::string>& docker_nodes,
                                        const std::string& network) {
  docker::DockerClient client(docker_socket);
  LiveDownCounts c;
  for (const auto& node : docker_nodes) {
    const json filters = {{"label", json::array({std::string(docker::kManagedLabel) + "=true",
                                                 std::string(docker::kNodeLabel) + "=" + node})}};
    const std::string f = docker::encode_filters(filters);
    auto cs = client.call("GET", "/containers/json?all=1&filters=" + f);
    if (!cs.is_ok()) return cs.status();
    c.containers += count_of(cs);
    auto vols = client.call("GET", "/volumes?filters=" + f);
    if (!vols.is_ok()) return vols.status();
    if ((*vols)["Volumes"].is_array()) c.volumes += static_cast<int>((*vols)["Volumes"].size());
  }
  auto net = client.call("GET", "/networks/" + docker::url_encode(network));
  if (net.is_ok()) {
    c.networks = 1;
  } else if (net.status().code() != StatusCode::kNotFound) {
    return net.status();
  }
  return c;
}

}  // namespace flotilla::scenarios
