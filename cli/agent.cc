// `flotilla agent`: the node agent ("kubelet") of one node on this host's
// Docker, joined to a control plane elsewhere through its Kubernetes API only:
// it caches its Node and its pods from list + watch streams (RemoteStore),
// posts pod status and node heartbeats over HTTP, and reconnects when the
// server goes away. It also runs the node's Service plumbing
// (live::NodeServices over cached Services and EndpointSlices): the service proxy
// on every VIP, the VIPs on the pod bridge and the DNS server on its gateway,
// unless --no-service-proxy. SIGINT/SIGTERM stop it; pod containers keep
// running and a restarted agent adopts them, unless --stop-pods-on-exit.
#include <unistd.h>

#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <iostream>
#include <random>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/apiclient/api_client.h"
#include "backends/apiclient/remote_store.h"
#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"
#include "backends/live/live_network.h"
#include "backends/live/node_services.h"
#include "backends/live/pod_routes.h"
#include "cli/command.h"
#include "core/agent/node_agent.h"
#include "core/api/quantity.h"
#include "core/ports/trace.h"
#include "core/timing/timing.h"
#include "sim/engine/random.h"

namespace flotilla::cli {
namespace {

constexpr int kExitBadInput = 2;

struct AgentArgs {
  std::string server;
  std::string token;
  std::string node_name;
  std::string docker_socket = "/var/run/docker.sock";
  std::string network = "flotilla";
  std::string runtime_node_prefix;
  std::string address = "127.0.0.1";
  std::string cpu;
  std::string memory;
  std::string pods = "110";
  std::string timing = "kubernetes";
  std::vector<std::string> labels;
  bool stop_pods_on_exit = false;
  // Cross-host pod networking (docs/multihost.md): "" keeps a Docker network
  // of its own choosing (pods reachable from this host only).
  std::string pod_network;
  std::string node_ip;
  std::string cluster_cidr = "10.244.0.0/16";
  std::string pod_bridge = "flpod0";
  bool no_service_proxy = false;
  int dns_port = 53;
  int service_port_offset = 30000;
};

std::string host_memory() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page = ::sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return "1Gi";
  return std::to_string(static_cast<int64_t>(pages) * page / 1024) + "Ki";
}

int run_agent(const AgentArgs& a) {
  auto fail = [](const std::string& msg, int code = 1) {
    std::cerr << "flotilla agent: " << msg << "\n";
    return code;
  };
  if (a.node_name.empty()) return fail("--node-name is required", kExitBadInput);
  StatusOr<TimingProfile> timing = TimingProfile::named(a.timing);
  if (!timing.is_ok()) return fail("--timing: " + timing.status().message(), kExitBadInput);

  agent::NodeDescription desc;
  unsigned cores = std::thread::hardware_concurrency();
  desc.capacity["cpu"] = a.cpu.empty() ? std::to_string(cores == 0 ? 1 : cores) : a.cpu;
  desc.capacity["memory"] = a.memory.empty() ? host_memory() : a.memory;
  desc.capacity["pods"] = a.pods;
  for (const auto& [name, value] : desc.capacity) {
    auto q = api::Quantity::parse(value);
    if (!q.is_ok()) return fail("--" + name + " " + value + ": " + q.status().message(), 2);
  }
  for (const std::string& l : a.labels) {
    size_t eq = l.find('=');
    if (eq == std::string::npos || eq == 0) {
      return fail("--label wants KEY=VALUE, got \"" + l + "\"", kExitBadInput);
    }
    desc.labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  std::optional<live::PodNetworkMode> pod_mode;
  if (!a.pod_network.empty()) {
    auto m = live::parse_pod_network_mode(a.pod_network);
    if (!m.is_ok()) return fail("--pod-network: " + m.status().message(), kExitBadInput);
    pod_mode = *m;
    if (a.node_ip.empty()) {
      return fail("--pod-network needs --node-ip (this host's address the other hosts reach)",
                  kExitBadInput);
    }
  }
  const std::string internal_ip = a.node_ip.empty() ? a.address : a.node_ip;
  desc.addresses = {{"InternalIP", internal_ip}, {"Hostname", a.node_name}};
  desc.container_runtime_version = "docker://" + a.network;

  std::string token = a.token;
  if (token.empty()) {
    if (const char* t = std::getenv("FLOTILLA_TOKEN")) token = t;
  }

  live::AsioEventLoop loop;
  auto client = apiclient::ApiClient::create(loop.io_context(), {.server = a.server, .token = token});
  if (!client.is_ok()) return fail(client.status().message(), kExitBadInput);

  apiclient::RemoteStoreOptions so;
  apiclient::InformerSpec pods;
  pods.kind = api::Kind::kPod;
  auto pod_fields = api::FieldSelector::parse("spec.nodeName=" + a.node_name);
  auto node_fields = api::FieldSelector::parse("metadata.name=" + a.node_name);
  if (!pod_fields.is_ok() || !node_fields.is_ok()) {
    return fail("--node-name " + a.node_name + ": not a valid name", kExitBadInput);
  }
  pods.fields = *pod_fields;
  apiclient::InformerSpec nodes;
  nodes.kind = api::Kind::kNode;
  // Routing to the other nodes' pods needs every Node, not only this one.
  if (!pod_mode) nodes.fields = *node_fields;
  so.informers = {pods, nodes};
  if (!a.no_service_proxy) {
    for (const auto& i : apiclient::service_informers()) so.informers.push_back(i);
  }
  so.redeliver_after = timing->agent_sync_period;
  apiclient::RemoteStore remote(loop, **client, so);

  bool stopping = false;
  boost::asio::signal_set signals(loop.io_context(), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    std::cerr << "flotilla agent: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping\n";
    stopping = true;
    loop.stop();
  });

  remote.start();
  std::cerr << "flotilla agent: node " << a.node_name << " connecting to " << a.server << "\n";
  while (!stopping && !remote.synced()) {
    if (loop.run_until([&] { return stopping || remote.synced(); }, seconds(5))) break;
    std::cerr << "flotilla agent: waiting for the API server at " << a.server << ": "
              << remote.last_error().message() << "\n";
  }
  if (stopping) return 0;

  docker::DockerRuntimeOptions ro;
  ro.node = a.runtime_node_prefix + a.node_name;
  ro.socket_path = a.docker_socket;
  ro.network = a.network;
  ro.worker_threads = 4;
  docker::DockerNetworkInfo net;
  std::unique_ptr<live::PodRoutes> routes;
  if (pod_mode) {
    // The Node is registered first so the control plane's node IPAM gives it
    // a podCIDR; this host's Docker network is made from that CIDR before the
    // runtime (which would otherwise pick a subnet of its own) starts.
    if (!remote.get(api::Kind::kNode, "", a.node_name).is_ok()) {
      api::Node n;
      n.set_api_version("v1");
      n.set_kind("Node");
      n.mutable_metadata()->set_name(a.node_name);
      (*n.mutable_metadata()->mutable_labels())["kubernetes.io/hostname"] = a.node_name;
      for (const auto& [type, address] : desc.addresses) {
        auto* ad = n.mutable_status()->add_addresses();
        ad->set_type(type);
        ad->set_address(address);
      }
      auto created = remote.create(api::share(std::move(n)));
      if (!created.is_ok()) {
        return fail("registering node " + a.node_name + ": " + created.status().message());
      }
    }
    auto pod_cidr = [&] {
      auto n = remote.get(api::Kind::kNode, "", a.node_name);
      return n.is_ok() ? api::as<api::Node>(*n)->spec().pod_cidr() : std::string();
    };
    while (!stopping && pod_cidr().empty()) {
      if (loop.run_until([&] { return stopping || !pod_cidr().empty(); }, seconds(5))) break;
      std::cerr << "flotilla agent: waiting for node " << a.node_name
                << " to get a spec.podCIDR (does the control plane run the node IPAM "
                   "controller? flotilla serve --cluster-cidr)\n";
    }
    if (stopping) return 0;
    const std::string cidr = pod_cidr();
    const int underlay = live::mtu_of_address(a.node_ip);
    live::PodNetworkSpec spec;
    spec.name = a.network;
    spec.pod_cidr = cidr;
    spec.bridge = a.pod_bridge;
    if (*pod_mode == live::PodNetworkMode::kVxlan && underlay > 0) spec.mtu = underlay - 50;
    docker::DockerClient docker_client(a.docker_socket);
    auto made = live::ensure_pod_network(docker_client, spec);
    if (!made.is_ok()) return fail("pod network: " + made.status().message());
    net = *made;
    Status nat = live::ensure_pod_nat_rules(cidr, a.cluster_cidr, net.bridge);
    if (!nat.is_ok()) std::cerr << "flotilla agent: warning: " << nat.message() << "\n";
    live::PodRoutesOptions po;
    po.mode = *pod_mode;
    po.node_name = a.node_name;
    po.node_ip = a.node_ip;
    routes = std::make_unique<live::PodRoutes>(remote, po);
    Status rs = routes->start(cidr);
    if (!rs.is_ok()) return fail("pod routes: " + rs.message());
    std::cerr << "flotilla agent: pod network " << a.network << " on " << cidr << " (bridge "
              << net.bridge << ", gateway " << net.gateway << "; " << live::to_string(*pod_mode)
              << " routes to the other nodes' pods)\n";
  } else if (!a.no_service_proxy) {
    docker::DockerClient docker_client(a.docker_socket);
    auto n = docker::ensure_network(docker_client, a.network, ro.subnets);
    if (!n.is_ok()) return fail("network " + a.network + ": " + n.status().message());
    net = *n;
  }
  // The pod network's gateway is the pods' resolver, where NodeServices
  // serves DNS; its bridge holds the Service VIPs.
  if (!a.no_service_proxy && !net.gateway.empty()) ro.dns_servers = {net.gateway};
  auto runtime = docker::DockerContainerRuntime::create(loop, ro);
  if (!runtime.is_ok()) return fail(runtime.status().message());

  live::LiveNetwork network(loop);
  NullTraceSink trace;
  agent::NodeAgent node_agent(a.node_name, loop, remote, **runtime, network, trace, *timing,
                              desc);
  sim::SimRandom random(std::random_device{}());
  live::NodeServicesOptions nso;
  nso.proxy = proxy::ServiceProxyOptions::from_timing(*timing, a.node_name);
  nso.bridge = net.bridge;
  nso.gateway = net.gateway;
  nso.dns_port = a.dns_port;
  nso.host_port_offset = a.service_port_offset;
  nso.max_retries = timing->proxy_max_retries;
  live::NodeServices services(loop, remote, network, random, nso);
  services.decisions().set_on_health_change(
      [](const NetEndpoint& e, bool usable, const std::string& why) {
        std::cerr << "flotilla agent: proxy: endpoint " << endpoint_string(e)
                  << (usable ? " back in rotation: " : " out of rotation: ") << why << "\n";
      });

  Status started = node_agent.start();
  if (!started.is_ok()) return fail("registering node " + a.node_name + ": " + started.message());
  std::cerr << "flotilla agent: node " << a.node_name << " registered with " << a.server
            << " (cpu " << desc.capacity["cpu"] << ", memory " << desc.capacity["memory"]
            << ", pods " << desc.capacity["pods"] << "; Docker node label "
            << ro.node << ", network " << a.network << ")\n";
  size_t warned = 0;
  if (!a.no_service_proxy) {
    Status ss = services.start();
    if (!ss.is_ok()) return fail("service proxy: " + ss.message());
    std::cerr << "flotilla agent: service proxy on the VIPs (bridge " << net.bridge
              << ") and on 127.0.0.1:<port + " << a.service_port_offset << ">; DNS "
              << (services.dns_address().empty() ? "off" : "at " + services.dns_address())
              << "\n";
  }

  // Says when the API server goes away and comes back (the store reconnects).
  bool connected = true;
  std::function<void()> check;
  TimerHandle check_timer;
  check = [&] {
    const auto warnings = services.warnings();
    for (; warned < warnings.size(); ++warned) {
      std::cerr << "flotilla agent: warning: " << warnings[warned] << "\n";
    }
    bool now_connected = remote.connected();
    if (now_connected != connected) {
      connected = now_connected;
      if (connected) {
        std::cerr << "flotilla agent: reconnected to " << a.server << "\n";
      } else {
        std::cerr << "flotilla agent: lost the API server (" << remote.last_error().message()
                  << "); reconnecting\n";
      }
    }
    check_timer = loop.run_after(seconds(1), check);
  };
  check_timer = loop.run_after(seconds(1), check);

  loop.run();
  check_timer.reset();
  services.stop();
  node_agent.stop();

  if (a.stop_pods_on_exit) {
    int pending = -1;
    (*runtime)->list_pod_sandboxes([&](StatusOr<std::vector<PodSandboxStatus>> sandboxes) {
      if (!sandboxes.is_ok()) {
        std::cerr << "flotilla agent: listing pods to stop: " << sandboxes.status().message()
                  << "\n";
        pending = 0;
        return;
      }
      pending = static_cast<int>(sandboxes->size());
      for (const PodSandboxStatus& sb : *sandboxes) {
        (*runtime)->remove_pod_sandbox(sb.id, timing->default_termination_grace,
                                       [&](Status s) {
                                         if (!s.is_ok()) {
                                           std::cerr << "flotilla agent: stopping a pod: "
                                                     << s.message() << "\n";
                                         }
                                         --pending;
                                       });
      }
    });
    if (!loop.run_until([&] { return pending == 0; },
                        timing->default_termination_grace + seconds(30))) {
      std::cerr << "flotilla agent: some pods did not stop in time\n";
    } else {
      std::cerr << "flotilla agent: stopped the node's pods\n";
    }
  } else {
    std::cerr << "flotilla agent: pod containers keep running; an agent started again with "
                 "--node-name "
              << a.node_name << " adopts them\n";
  }
  std::cerr << "flotilla agent: stopped\n";
  return 0;
}

}  // namespace

void add_agent_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<AgentArgs>();
  CLI::App* cmd = app.add_subcommand(
      "agent", "Run the node agent of one node on this host's Docker, joined to a control plane "
               "through its Kubernetes API");
  cmd->add_option("--server", args->server, "The API server, http://HOST:PORT")->required();
  cmd->add_option("--token", args->token,
                  "Bearer token for the API server (default: $FLOTILLA_TOKEN)");
  cmd->add_option("--node-name", args->node_name, "This node's name")->required();
  cmd->add_option("--docker-socket", args->docker_socket, "Docker Engine API socket");
  cmd->add_option("--network", args->network, "Docker bridge network for pod IPs");
  cmd->add_option("--node-label-prefix", args->runtime_node_prefix,
                  "Prefix of the flotilla.io/node label on this node's containers (isolates "
                  "tests and several agents on one Docker)");
  cmd->add_option("--address", args->address, "The node's InternalIP (pods' hostIP)");
  cmd->add_option("--cpu", args->cpu, "CPU capacity (default: the host's cores)");
  cmd->add_option("--memory", args->memory, "Memory capacity, e.g. 8Gi (default: the host's)");
  cmd->add_option("--pods", args->pods, "Pod capacity");
  cmd->add_option("--timing", args->timing,
                  "Timing profile (heartbeat period, resyncs): kubernetes or fast; match the "
                  "control plane's");
  cmd->add_option("--label", args->labels, "A node label KEY=VALUE (repeatable)");
  cmd->add_option("--pod-network", args->pod_network,
                  "Cross-host pod networking: host-gw (hosts on one L2 segment) or vxlan; pods "
                  "get IPs from the node's spec.podCIDR and reach every other node's pods "
                  "without NAT (docs/multihost.md)")
      ->check(CLI::IsMember({"host-gw", "vxlan"}));
  cmd->add_option("--node-ip", args->node_ip,
                  "This host's address the other hosts reach (the node's InternalIP; routes "
                  "and VXLAN use it)");
  cmd->add_option("--cluster-cidr", args->cluster_cidr,
                  "The cluster's pod CIDR (with --pod-network): pod traffic to anywhere else "
                  "is masqueraded");
  cmd->add_option("--pod-bridge", args->pod_bridge,
                  "Linux bridge name of the pod network (with --pod-network)");
  cmd->add_flag("--stop-pods-on-exit", args->stop_pods_on_exit,
                "Stop and remove the node's pod containers when the agent exits (default: "
                "leave them running for the next agent to adopt)");
  cmd->add_flag("--no-service-proxy", args->no_service_proxy,
                "Do not run the node's service proxy, Service VIPs and DNS server");
  cmd->add_option("--dns-port", args->dns_port,
                  "Port of the pods' DNS server on the pod network's gateway");
  cmd->add_option("--service-port-offset", args->service_port_offset,
                  "Service port P is reachable on 127.0.0.1:P+offset (give agents sharing a "
                  "host different offsets)");
  cmd->callback([args, exit_code] { *exit_code = run_agent(*args); });
}

}  // namespace flotilla::cli
