// The cluster `flotilla serve` puts behind the Kubernetes API: the shared
// control plane (scenarios/control_plane.h) with one NodeAgent per node, over
// either simulated nodes paced to wall-clock time (`sim`, as KWOK does) or the
// local Docker engine (`docker`, the live world of scenarios/live_runner.h),
// and the ApiServer over the very same store, all on one thread. kubectl
// creates a pod; the scheduler binds it; a node agent runs it; `kubectl logs`
// reads the node's runtime.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/apiserver/api_server.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::scenarios {

struct ServeOptions {
  std::string backend = "sim";  // "sim" or "docker"
  // The cluster (node groups, timing, scheduler, runtime model, behaviours),
  // workload steps (applied at their times from the start) and, with `sim`,
  // faults come from this scenario file; empty: `nodes` nodes named
  // node-0..node-<N-1> with the capacity below.
  std::string scenario_path;
  std::vector<std::string> overrides;  // "path=value", as `flotilla sim --set`
  int nodes = 3;
  std::string node_cpu = "4";
  std::string node_memory = "8Gi";
  std::string node_pods = "110";
  std::string timing = "fast";  // without a scenario: "fast" or "kubernetes"
  uint64_t seed = 1;            // without a scenario
  apiserver::ApiServerOptions api;
  // sim: how often the simulator catches up with the wall clock.
  Duration tick = std::chrono::milliseconds(5);
  // docker: as LiveRunOptions.
  std::string docker_socket = "/var/run/docker.sock";
  std::string docker_network = "flotilla-serve";
  std::string node_label_prefix = "serve-";  // flotilla.io/node = prefix + node name
  int host_port_offset = 30000;  // Service port P is reachable on 127.0.0.1:P+offset
  int max_docker_nodes = 8;
  // Non-empty: the node IPAM controller gives every Node a spec.podCIDR block
  // of this CIDR (agents with --pod-network need it; docs/multihost.md).
  std::string cluster_cidr;
  int node_cidr_mask_size = 24;
  bool cleanup = true;         // docker: remove the containers and network at the end
  // docker: keep the store in this directory (backends/storage/durable_store.h:
  // write-ahead log, snapshots); a restart on the same directory recovers
  // every object and the node agents adopt the containers still running.
  // Empty: the store lives in memory. Not with sim (its nodes are simulated).
  std::string data_dir;
  bool repair = false;            // as DurableOptions.repair
  int64_t snapshot_every = 10000;  // as DurableOptions.snapshot_every
  std::function<void(const std::string&)> log;  // recovery notes; empty: none
  bool handle_signals = true;  // SIGINT/SIGTERM end run()
};

class ServeRuntime {
 public:
  // Builds the world and the control plane, starts the agents and the API
  // server (listening once this returns). Errors: kInvalid for a bad option
  // or scenario, kUnavailable when Docker or the port cannot be reached.
  static StatusOr<std::unique_ptr<ServeRuntime>> create(const ServeOptions& options);
  virtual ~ServeRuntime() = default;

  // "http://127.0.0.1:<port>".
  virtual std::string url() const = 0;
  // One line for the operator: "3 simulated nodes (node-0 .. node-2), ...".
  virtual std::string description() const = 0;
  // Serves until stop(), SIGINT or SIGTERM; then stops the API server and the
  // agents and (docker) removes every container and the network it created.
  virtual Status run() = 0;
  // Thread-safe: makes run() return.
  virtual void stop() = 0;
};

}  // namespace flotilla::scenarios
