#include "scenarios/serve_runtime.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <map>

#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"
#include "backends/live/live_network.h"
#include "backends/live/tcp_proxy.h"
#include "backends/storage/durable_store.h"
#include "core/agent/node_agent.h"
#include "core/api/object.h"
#include "core/proxy/service_proxy.h"
#include "scenarios/control_plane.h"
#include "scenarios/control_plane_link.h"
#include "scenarios/loader.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "sim/faults/faults.h"
#include "sim/world/world.h"

namespace flotilla::scenarios {

namespace {

namespace net = boost::asio;

// The scenario behind a serve: the given file, or one generated from the flags.
StatusOr<LoadedScenario> serve_scenario(const ServeOptions& o) {
  if (!o.scenario_path.empty()) return load_scenario(o.scenario_path, o.overrides);
  if (o.nodes < 1) return invalid_error("--nodes must be at least 1");
  auto quoted = [](const std::string& s) { return "\"" + s + "\""; };
  std::string text =
      "name: serve\n"
      "seed: " + std::to_string(o.seed) + "\n"
      "duration: 8760h\n"
      "cluster:\n"
      "  timing: " + o.timing + "\n"
      "  node_groups:\n"
      "    - name: node\n"
      "      count: " + std::to_string(o.nodes) + "\n"
      "      capacity: {cpu: " + quoted(o.node_cpu) + ", memory: " + quoted(o.node_memory) +
      ", pods: " + quoted(o.node_pods) + "}\n"
      "  runtime:\n"
      "    image_pull: {constant: 1s}\n";
  return load_scenario_text(text, "flotilla serve flags", ".", o.overrides);
}

// "default", "kube-system" and "kube-node-lease", as a fresh Kubernetes cluster
// has them.
void create_namespaces(Store& store) {
  for (const char* name : {"default", "kube-system", "kube-node-lease"}) {
    api::Namespace ns;
    ns.mutable_metadata()->set_name(name);
    ns.mutable_status()->set_phase("Active");
    (void)store.create(api::share(std::move(ns)));
  }
}

struct PlannedNode {
  std::string name;
  sim::NodeResources capacity, allocatable;
  std::map<std::string, std::string> labels;
};

// The scenario's nodes, named and labelled as sim::World names them.
std::vector<PlannedNode> plan_nodes(const LoadedScenario& sc) {
  std::vector<PlannedNode> out;
  for (const auto& g : sc.node_groups) {
    const int zones = static_cast<int>(std::max<size_t>(g.zones.size(), 1));
    for (int i = 0; i < g.count; ++i) {
      PlannedNode n;
      n.name = g.name + "-" + std::to_string(i);
      std::string zone = g.zones.empty() ? "zone-a" : g.zones[static_cast<size_t>(i % zones)];
      n.capacity = g.capacity;
      n.allocatable = g.allocatable.value_or(g.capacity);
      n.labels = g.labels;
      n.labels[std::string(sim::kZoneLabel)] = zone;
      n.labels[std::string(sim::kRackLabel)] =
          g.name + "-" + zone + "-r" + std::to_string(i / zones / std::max(g.nodes_per_rack, 1));
      n.labels[std::string(sim::kHostnameLabel)] = n.name;
      out.push_back(std::move(n));
    }
  }
  return out;
}

std::string node_range(const std::vector<std::string>& names) {
  if (names.empty()) return "";
  if (names.size() == 1) return names[0];
  return names.front() + " .. " + names.back();
}

// ---------------------------------------------------------------------------
// sim: the simulator paced to the wall clock. The API server's sockets and a
// steady timer share one io_context on one thread; each tick runs the
// simulator up to start + elapsed wall time, so store calls from requests and
// simulated events never race.

class SimServe final : public ServeRuntime {
 public:
  SimServe(const ServeOptions& o, LoadedScenario sc)
      : opts_(o),
        sc_(std::move(sc)),
        sim_(sim_options()),
        random_(sc_.seed),
        pace_timer_(io_),
        signals_(io_) {}

  ~SimServe() override {
    if (api_) api_->stop();
    for (auto& a : agents_) a->stop();
  }

  Status build() {
    // Catch SIGINT/SIGTERM from now on (run() acts on them): a signal sent
    // as soon as the API line is printed must not kill the process uncleanly.
    if (opts_.handle_signals) {
      signals_.add(SIGINT);
      signals_.add(SIGTERM);
    }
    world_ = std::make_unique<sim::World>(sim_, random_, trace_, sc_.world);
    for (const auto& g : sc_.node_groups) FLOTILLA_RETURN_IF_ERROR(world_->add_node_group(g));
    if (world_->node_count() == 0) return invalid_error("the cluster has no nodes");
    control_ = std::make_unique<ControlPlane>(sim_, random_, world_->network(), trace_, sc_);
    FLOTILLA_RETURN_IF_ERROR(control_->start());
    if (!opts_.cluster_cidr.empty()) {
      FLOTILLA_RETURN_IF_ERROR(control_->enable_node_ipam(
          {.cluster_cidr = opts_.cluster_cidr, .node_mask_size = opts_.node_cidr_mask_size}));
    }
    Store& store = control_->store();
    create_namespaces(store);
    for (sim::NodeId id = 0; id < world_->node_count(); ++id) {
      const sim::SimNode& n = world_->node(id);
      agent::NodeDescription desc;
      desc.capacity = format_node_resources(n.capacity);
      desc.allocatable = format_node_resources(n.allocatable);
      desc.labels = n.labels;
      desc.addresses = {{"InternalIP", "192.168." + std::to_string(id / 256) + "." +
                                           std::to_string(id % 256)},
                        {"Hostname", n.name}};
      desc.container_runtime_version = "flotilla-sim://1";
      links_.push_back(std::make_unique<ControlPlaneLink>(store, world_->topology(), id));
      agents_.push_back(std::make_unique<agent::NodeAgent>(n.name, sim_, *links_.back(),
                                                           world_->runtime(id), world_->network(),
                                                           trace_, sc_.timing, std::move(desc)));
      FLOTILLA_RETURN_IF_ERROR(agents_.back()->start());
      names_.push_back(n.name);
    }
    // A machine that comes back (a fault healed) boots its agent again.
    node_sub_ = world_->on_node_state([this](const std::string& node, bool up) {
      auto id = world_->find_node(node);
      if (!id) return;
      if (!up) {
        agents_[*id]->stop();
        return;
      }
      sim_.post([this, id = *id] {
        if (world_->node(id).up && !agents_[id]->running()) (void)agents_[id]->start();
      });
    });
    // Scheduled faults count from the start of the serve.
    faults_ = std::make_unique<sim::FaultInjector>(*world_, random_);
    for (sim::FaultSpec f : sc_.faults) {
      f.at += sim_.now().time_since_epoch();
      Status s = faults_->add(f);
      if (!s.is_ok()) return s.with_prefix(sc_.path + ": ");
    }
    for (size_t i = 0; i < sc_.workload.size(); ++i) {
      sim_.schedule_after(sc_.workload[i].at, [this, i] { control_->apply(sc_.workload[i]); });
    }
    apiserver::ApiServerOptions api = opts_.api;
    api.logs = [this](const std::string& node, const std::string& id, bool follow,
                      std::function<void(std::string)> on_data,
                      Callback<Status> done) -> std::unique_ptr<ContainerLogStream> {
      auto n = world_->find_node(node);
      if (!n) return nullptr;
      return world_->runtime(*n).read_logs(id, follow, std::move(on_data), std::move(done));
    };
    api_ = std::make_unique<apiserver::ApiServer>(sim_, io_, store, std::move(api));
    FLOTILLA_RETURN_IF_ERROR(api_->start());
    // Registration and the first scheduling pass happen before any request.
    sim_.run_until(sim_.now());
    return Status::ok();
  }

  std::string url() const override { return api_->url(); }
  std::string description() const override {
    return std::to_string(names_.size()) + " simulated nodes (" + node_range(names_) +
           "), timing " + sc_.timing.name + ", simulator paced to the wall clock every " +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(opts_.tick).count()) +
           " ms";
  }

  Status run() override {
    wall_start_ = std::chrono::steady_clock::now();
    sim_start_ = sim_.now();
    if (opts_.handle_signals) {
      signals_.async_wait([this](const boost::system::error_code& ec, int) {
        if (!ec) io_.stop();
      });
    }
    pace();
    io_.run();
    api_->stop();
    for (auto& a : agents_) a->stop();
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    pace_timer_.cancel();
    return Status::ok();
  }
  void stop() override { io_.stop(); }

 private:
  static sim::SimulatorOptions sim_options() {
    // Simulated time starts at the wall clock, so timestamps and ages read
    // as they would on a real cluster.
    sim::SimulatorOptions so;
    so.start = TimePoint(std::chrono::duration_cast<Duration>(
        std::chrono::system_clock::now().time_since_epoch()));
    return so;
  }

  void pace() {
    const auto elapsed = std::chrono::steady_clock::now() - wall_start_;
    sim_.run_until(sim_start_ + std::chrono::duration_cast<Duration>(elapsed));
    pace_timer_.expires_after(opts_.tick);
    pace_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) pace();
    });
  }

  ServeOptions opts_;
  LoadedScenario sc_;
  net::io_context io_;
  sim::Simulator sim_;
  sim::SimRandom random_;
  NullTraceSink trace_;
  std::unique_ptr<sim::World> world_;
  std::unique_ptr<ControlPlane> control_;
  std::vector<std::unique_ptr<ControlPlaneLink>> links_;
  std::vector<std::unique_ptr<agent::NodeAgent>> agents_;
  std::unique_ptr<sim::World::NodeStateSubscription> node_sub_;
  std::unique_ptr<sim::FaultInjector> faults_;
  std::unique_ptr<apiserver::ApiServer> api_;
  std::vector<std::string> names_;
  net::steady_timer pace_timer_;
  net::signal_set signals_;
  std::chrono::steady_clock::time_point wall_start_;
  TimePoint sim_start_{};
};

// ---------------------------------------------------------------------------
// docker: the live world of scenarios/live_runner.h driven by the API: one
// NodeAgent per logical node with its own DockerContainerRuntime, the host's
// service proxy (TcpServiceProxy on 127.0.0.1:<port + offset>), on one
// AsioEventLoop that also runs the API server's sockets.

class DockerServe final : public ServeRuntime {
 public:
  DockerServe(const ServeOptions& o, LoadedScenario sc)
      : opts_(o), sc_(std::move(sc)), random_(sc_.seed), network_(loop_),
        client_(o.docker_socket) {}

  ~DockerServe() override { (void)teardown(); }

  Status build() {
    // As SimServe: signals are caught from here on and acted on by run().
    if (opts_.handle_signals) {
      signals_ = std::make_unique<net::signal_set>(loop_.io_context(), SIGINT, SIGTERM);
    }
    FLOTILLA_RETURN_IF_ERROR(client_.ping());
    plan_ = plan_nodes(sc_);
    if (plan_.empty()) return invalid_error("the cluster has no nodes");
    if (static_cast<int>(plan_.size()) > opts_.max_docker_nodes) {
      return invalid_error(std::to_string(plan_.size()) +
                           " nodes are too many for Docker on one host (at most " +
                           std::to_string(opts_.max_docker_nodes) + ")");
    }
    if (!sc_.faults.empty()) {
      warnings_.push_back("the scenario's faults are ignored with --backend docker");
    }
    storage::DurableStore* durable = nullptr;
    if (opts_.data_dir.empty()) {
      control_ = std::make_unique<ControlPlane>(loop_, random_, network_, trace_, sc_);
    } else {
      store_rng_ = random_.stream("store");
      storage::DurableOptions d{
          .dir = opts_.data_dir, .snapshot_every = opts_.snapshot_every, .repair = opts_.repair};
      d.log = opts_.log;
      auto opened =
          storage::DurableStore::open(loop_, *store_rng_, ControlPlane::store_options(), d);
      if (!opened.is_ok()) return opened.status();
      durable = opened->get();
      recovered_ = durable->recovery().resource_version;
      control_ = std::make_unique<ControlPlane>(loop_, random_, network_, trace_, sc_,
                                                std::move(opened).value());
    }
    FLOTILLA_RETURN_IF_ERROR(control_->start());
    if (!opts_.cluster_cidr.empty()) {
      FLOTILLA_RETURN_IF_ERROR(control_->enable_node_ipam(
          {.cluster_cidr = opts_.cluster_cidr, .node_mask_size = opts_.node_cidr_mask_size}));
    }
    Store& store = control_->store();
    create_namespaces(store);
    // The agents list their runtime's containers (by the flotilla.io/node
    // label) as they start and adopt those of pods still bound to them, so a
    // restart on a recovered store leaves running containers alone.
    for (const auto& n : plan_) {
      docker::DockerRuntimeOptions ro;
      ro.node = opts_.node_label_prefix + n.name;
      ro.socket_path = opts_.docker_socket;
      ro.network = opts_.docker_network;
      ro.worker_threads = 4;
      auto rt = docker::DockerContainerRuntime::create(loop_, ro);
      if (!rt.is_ok()) return rt.status();
      runtimes_.emplace(n.name, std::move(rt).value());
      agent::NodeDescription desc;
      desc.capacity = format_node_resources(n.capacity);
      desc.allocatable = format_node_resources(n.allocatable);
      desc.labels = n.labels;
      desc.addresses = {{"InternalIP", "127.0.0.1"}, {"Hostname", n.name}};
      desc.container_runtime_version = "docker://" + opts_.docker_network;
      agents_.push_back(std::make_unique<agent::NodeAgent>(n.name, loop_, store,
                                                           *runtimes_.at(n.name), network_,
                                                           trace_, sc_.timing, std::move(desc)));
      FLOTILLA_RETURN_IF_ERROR(agents_.back()->start());
    }
    decisions_ = std::make_unique<proxy::ServiceProxy>(
        loop_, store, network_, random_,
        proxy::ServiceProxyOptions::from_timing(sc_.timing, plan_[0].name), nullptr);
    FLOTILLA_RETURN_IF_ERROR(decisions_->start());
    live::TcpServiceProxyOptions to;
    to.host_port_offset = opts_.host_port_offset;
    to.max_retries = sc_.timing.proxy_max_retries;
    tcp_ = std::make_unique<live::TcpServiceProxy>(loop_, store, *decisions_, to);
    FLOTILLA_RETURN_IF_ERROR(tcp_->start());
    for (size_t i = 0; i < sc_.workload.size(); ++i) {
      workload_timers_.push_back(
          loop_.run_after(sc_.workload[i].at, [this, i] { control_->apply(sc_.workload[i]); }));
    }
    apiserver::ApiServerOptions api = opts_.api;
    api.logs = [this](const std::string& node, const std::string& id, bool follow,
                      std::function<void(std::string)> on_data,
                      Callback<Status> done) -> std::unique_ptr<ContainerLogStream> {
      auto it = runtimes_.find(node);
      if (it == runtimes_.end()) return nullptr;
      return it->second->read_logs(id, follow, std::move(on_data), std::move(done));
    };
    if (durable != nullptr) {
      // No reply reports a write before it is on disk.
      api.before_reply = [durable](std::function<void()> send) {
        durable->when_durable(std::move(send));
      };
    }
    api_ = std::make_unique<apiserver::ApiServer>(loop_, store, std::move(api));
    return api_->start();
  }

  std::string url() const override { return api_->url(); }
  std::string description() const override {
    std::vector<std::string> names;
    for (const auto& n : plan_) names.push_back(n.name);
    std::string out = std::to_string(plan_.size()) + " nodes on Docker (" + node_range(names) +
                      ", network " + opts_.docker_network + "), timing " + sc_.timing.name +
                      ", Service port P on 127.0.0.1:P+" + std::to_string(opts_.host_port_offset);
    if (!opts_.data_dir.empty()) {
      out += "; store in " + opts_.data_dir + " (recovered up to resourceVersion " +
             std::to_string(recovered_) + ")";
    }
    for (const auto& w : warnings_) out += "; " + w;
    return out;
  }

  Status run() override {
    if (signals_) {
      signals_->async_wait([this](const boost::system::error_code& ec, int) {
        if (!ec) loop_.stop();
      });
    }
    loop_.run();
    if (signals_) {
      boost::system::error_code ignored;
      signals_->cancel(ignored);
    }
    return teardown();
  }
  void stop() override { loop_.stop(); }

 private:
  // Stops everything and removes the containers and network this serve made.
  Status teardown() {
    if (torn_down_) return Status::ok();
    torn_down_ = true;
    if (api_) api_->stop();
    workload_timers_.clear();
    tcp_.reset();
    decisions_.reset();
    for (auto& a : agents_) a->stop();
    runtimes_.clear();  // joins their workers and event threads
    if (!opts_.cleanup) return Status::ok();
    Status first;
    for (const auto& n : plan_) {
      Status s = docker::remove_all_flotilla_objects(client_, opts_.node_label_prefix + n.name);
      if (!s.is_ok() && first.is_ok()) first = s;
    }
    auto del = client_.call("DELETE", "/networks/" + docker::url_encode(opts_.docker_network));
    if (!del.is_ok() && del.status().code() != StatusCode::kNotFound &&
        del.status().message().find("active endpoints") == std::string::npos && first.is_ok()) {
      first = del.status();
    }
    return first;
  }

  ServeOptions opts_;
  LoadedScenario sc_;
  live::AsioEventLoop loop_;
  std::unique_ptr<net::signal_set> signals_;  // made in build(), before the API line
  sim::SimRandom random_;
  NullTraceSink trace_;
  live::LiveNetwork network_;
  docker::DockerClient client_;
  std::vector<PlannedNode> plan_;
  std::vector<std::string> warnings_;
  std::unique_ptr<RandomStream> store_rng_;  // the durable store's; outlives control_
  int64_t recovered_ = 0;
  std::unique_ptr<ControlPlane> control_;
  std::map<std::string, std::unique_ptr<docker::DockerContainerRuntime>> runtimes_;
  std::vector<std::unique_ptr<agent::NodeAgent>> agents_;
  std::unique_ptr<proxy::ServiceProxy> decisions_;
  std::unique_ptr<live::TcpServiceProxy> tcp_;
  std::vector<TimerHandle> workload_timers_;
  std::unique_ptr<apiserver::ApiServer> api_;
  bool torn_down_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<ServeRuntime>> ServeRuntime::create(const ServeOptions& options) {
  if (options.backend != "sim" && options.backend != "docker") {
    return invalid_error("unknown backend \"" + options.backend + "\" (known: sim, docker, none)");
  }
  if (options.backend == "sim" && !options.data_dir.empty()) {
    return invalid_error(
        "a data directory needs --backend docker or none: the sim backend's nodes and "
        "containers are simulated and do not survive a restart");
  }
  auto sc = serve_scenario(options);
  if (!sc.is_ok()) return sc.status();
  if (options.backend == "sim") {
    auto s = std::make_unique<SimServe>(options, std::move(*sc));
    FLOTILLA_RETURN_IF_ERROR(s->build());
    return std::unique_ptr<ServeRuntime>(std::move(s));
  }
  auto d = std::make_unique<DockerServe>(options, std::move(*sc));
  FLOTILLA_RETURN_IF_ERROR(d->build());
  return std::unique_ptr<ServeRuntime>(std::move(d));
}

}  // namespace flotilla::scenarios
