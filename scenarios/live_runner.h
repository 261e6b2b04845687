// Runs a loaded scenario live on the local Docker engine, in real time: the
// same control plane as the simulator (scenarios/control_plane.h) on an
// AsioEventLoop, one NodeAgent per logical node with its own
// DockerContainerRuntime, the host's live::NodeServices (service proxy on
// 127.0.0.1:<service port + offset> and on the VIPs, DNS, VIPs), real HTTP
// traffic and real faults; writes the same trace, summary ("backend":
// "docker"), CSVs and report as `flotilla sim`. The end of the run, SIGINT and
// SIGTERM remove every container, volume and network the run created.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "scenarios/loader.h"
#include "scenarios/sim_runner.h"

namespace flotilla::live {
class AsioEventLoop;
}
namespace flotilla::docker {
struct DockerNetworkInfo;
}

namespace flotilla::scenarios {

// A view of a live run while it runs, for tests: called on the loop thread.
class LiveRunView;

struct LiveRunOptions {
  std::string out_dir;    // default: results/<scenario>-live
  bool progress = false;  // a progress line on stderr
  bool report = true;     // write report.html (gnuplot)
  // Docker side. Tests give each run its own network and node-label prefix so
  // runs never touch each other's containers.
  std::string docker_socket = "/var/run/docker.sock";
  std::string docker_network = "flotilla";
  std::string node_label_prefix;  // flotilla.io/node = prefix + node name
  int host_port_offset = 30000;   // Service port P is reachable on 127.0.0.1:P+offset
  int max_nodes = 8;              // more nodes are refused (one host runs them all)
  bool handle_signals = true;     // SIGINT/SIGTERM end the run early (and clean up)
  bool cleanup = true;            // remove the run's Docker objects at the end
  // Pods reach Services by name and VIP: a DnsServer on the network's gateway
  // at `dns_port` is every pod's resolver, and each Service's ClusterIP is
  // added to the network's bridge with the proxy listening on VIP:port.
  bool pod_services = true;
  int dns_port = 53;
  // Called on the loop thread every `watch_period` with the running run (tests).
  std::function<void(LiveRunView&)> on_tick;
  Duration watch_period = seconds(1);
  // Called on the loop thread once the run's time is up (or it was
  // interrupted), before anything is torn down: the final state (tests).
  std::function<void(LiveRunView&)> on_end;
};

class LiveRunView {
 public:
  virtual ~LiveRunView() = default;
  virtual Store& store() = 0;
  virtual live::AsioEventLoop& loop() = 0;
  virtual Duration elapsed() const = 0;
  // 127.0.0.1:<port> of a Service port ("<ns>/<name>", port); kNotFound before
  // the proxy has it.
  virtual StatusOr<NetEndpoint> service_address(const std::string& service, int port) const = 0;
  // Ends the run now (as Ctrl-C would).
  virtual void stop() = 0;
  // The Docker network the pods are on (gateway = their DNS server).
  virtual const docker::DockerNetworkInfo& pod_network() const = 0;
};

// Errors: Docker is unreachable (kUnavailable, with how to start it), the
// scenario has too many nodes or names a node that does not exist, the
// results cannot be written. A failed assertion is not an error.
StatusOr<RunOutcome> run_live(const LoadedScenario& scenario, const LiveRunOptions& options);

// `flotilla live down`: removes every container, volume and network labelled
// flotilla.io/managed=true. Returns how many of each it found.
struct LiveDownCounts {
  int containers = 0, volumes = 0, networks = 0;
};
StatusOr<LiveDownCounts> live_down(const std::string& docker_socket = "/var/run/docker.sock");

// The Docker objects of one run still present (containers and volumes with
// its node labels, and its network), for tests and the run's own check.
StatusOr<LiveDownCounts> live_leftovers(const std::string& docker_socket,
                                        const std::vector<std::string>& docker_nodes,
                                        const std::string& network);

}  // namespace flotilla::scenarios
