// sim::World: the simulated machines. Owns the topology, the nodes (capacity,
// labels, up/down), one SimContainerRuntime per node, one SimNetwork, and the
// pod IP registry (node i owns 10.(i/256).(i%256).0/24; virtual addresses that
// never carry real traffic). Faults act on it (kill_node, restart_node, hang or
// kill containers); the node agent sees it only through the two ports.
// All state lives in compact slabs so 150,000 containers stay cheap.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/api/labels.h"
#include "core/ports/container_runtime.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/ports/trace.h"
#include "sim/engine/distribution.h"
#include "sim/engine/simulator.h"
#include "sim/world/behaviour.h"
#include "sim/world/topology.h"

namespace flotilla::sim {

class World;

struct NodeResources {
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  int64_t pods = 0;
  int64_t ephemeral_storage_bytes = 0;
  std::map<std::string, int64_t> extended;  // "nvidia.com/gpu" -> 2
};

inline constexpr std::string_view kZoneLabel = "topology.kubernetes.io/zone";
inline constexpr std::string_view kRackLabel = "flotilla.io/rack";
inline constexpr std::string_view kHostnameLabel = "kubernetes.io/hostname";

struct NodeSpec {
  std::string name;
  std::string zone;
  std::string rack;
  NodeResources capacity;
  std::optional<NodeResources> allocatable;  // default: capacity
  std::map<std::string, std::string> labels;  // zone, rack, hostname labels are added
};

// Many identical nodes: `<name>-<i>` for i in [0, count), spread round-robin
// over `zones`, `nodes_per_rack` consecutive nodes of a zone per rack
// ("<name>-<zone>-r<k>").
struct NodeGroupSpec {
  std::string name;
  int count = 0;
  std::vector<std::string> zones = {"zone-a"};
  int nodes_per_rack = 20;
  NodeResources capacity;
  std::optional<NodeResources> allocatable;
  std::map<std::string, std::string> labels;
};

struct SimNode {
  NodeId id = 0;
  std::string name;
  std::string zone;
  std::string rack;
  NodeResources capacity;
  NodeResources allocatable;
  std::map<std::string, std::string> labels;
  std::string pod_cidr;  // "10.0.3.0/24"
  bool up = true;
};

// A distribution that always gives `d`.
inline Distribution fixed_duration(Duration d) {
  return Distribution::constant(static_cast<double>(d.count()));
}

// How long runtime operations take and which images exist.
struct RuntimeModel {
  Distribution image_pull = fixed_duration(std::chrono::seconds(5));
  Distribution sandbox_start = fixed_duration(std::chrono::milliseconds(500));
  Distribution container_start = fixed_duration(std::chrono::milliseconds(300));
  // A container that honours TERM exits this long after it (capped by the grace).
  Distribution stop = fixed_duration(std::chrono::milliseconds(200));
  Distribution exec = fixed_duration(std::chrono::milliseconds(10));
  Duration sandbox_remove = std::chrono::milliseconds(100);
  // Default: every image can be pulled except `missing_images`. With
  // accept_any_image false, only `known_images` can.
  bool accept_any_image = true;
  std::set<std::string> missing_images;
  std::set<std::string> known_images;
  std::vector<BehaviourSpec> behaviours;
};

struct WorldOptions {
  LatencyModel latency;
  RuntimeModel runtime;
  // The TCP connect / HTTP round trip adds this on top of twice the latency.
  Duration service_time = std::chrono::microseconds(100);
};

// Whether a pod IP:port would accept a connection now (for the traffic model).
enum class EndpointState {
  kOk,        // a running, ready, non-hung container listens
  kNoHost,    // no sandbox holds the IP
  kNodeDown,  // the IP's node is down
  kRefused,   // the sandbox exists but nothing listens (not running, not ready, port)
  kHung,      // a container listens but does not answer
};

// A stochastic container fault: every container whose pod matches `selector`
// crashes (exit `exit_code`, reason Error) after a time drawn per start.
struct ContainerHazard {
  api::LabelSelector selector;
  Distribution time_to_crash = Distribution::constant(0);
  int exit_code = 137;
  std::string name;  // for the trace ("faults[3]")
};

class SimContainerRuntime;
class SimNetwork;

class World {
 public:
  World(Simulator& sim, Random& random, TraceSink& trace, WorldOptions options = {});
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // --- Nodes ---
  // Errors: kAlreadyExists, kInvalid (empty name, rack in two zones, more than
  // 65,536 nodes). Records NODE_ADDED.
  StatusOr<NodeId> add_node(const NodeSpec& spec);
  // Adds every node of the group; stops at the first error.
  Status add_node_group(const NodeGroupSpec& spec);
  size_t node_count() const { return nodes_.size(); }
  const SimNode& node(NodeId id) const { return nodes_[id]->info; }
  std::optional<NodeId> find_node(std::string_view name) const { return topology_.find_node(name); }
  const Topology& topology() const { return topology_; }
  Topology& topology() { return topology_; }

  // The node dies: every container and sandbox on it is gone at once, its
  // runtime's subscribers get kSandboxLost for each sandbox, calls in flight
  // fail with kUnavailable, new calls too. Records NODE_DOWN. No-op when down.
  Status kill_node(std::string_view name, std::string_view reason = "killed");
  void kill_node(NodeId id, std::string_view reason = "killed");
  // The node is back, empty (images stay cached on its disk). Records NODE_UP.
  // No-op when up.
  Status restart_node(std::string_view name, std::string_view reason = "restarted");
  void restart_node(NodeId id, std::string_view reason = "restarted");

  // Called synchronously whenever a node goes down or comes up, after the
  // world's own state changed. The handle unsubscribes when destroyed.
  class NodeStateSubscription {
   public:
    virtual ~NodeStateSubscription() = default;
  };
  [[nodiscard]] std::unique_ptr<NodeStateSubscription> on_node_state(
      std::function<void(const std::string& node, bool up)> fn);

  // --- Ports ---
  ContainerRuntime& runtime(NodeId id);
  SimContainerRuntime& sim_runtime(NodeId id);
  Network& network();
  SimNetwork& sim_network() { return *network_; }

  // --- Pods and containers, for faults and the traffic model ---
  EndpointState endpoint_state(const NetEndpoint& target) const;
  // The node holding a pod IP now, if any sandbox does.
  std::optional<NodeId> node_of_ip(std::string_view ip) const;
  // Ids of running containers whose pod labels match, ordered by id.
  std::vector<std::string> running_containers(const api::LabelSelector& selector) const;
  // The container stops answering (until it stops). Errors: kNotFound, kFailedPrecondition.
  Status hang_container(const std::string& container_id);
  // The container exits now with `exit_code` (reason Error). Errors as above.
  Status kill_container(const std::string& container_id, int exit_code = 137);
  // Adds a stochastic crash model applied to every later container start.
  void add_hazard(ContainerHazard hazard);

  size_t running_container_count() const { return running_containers_; }
  size_t sandbox_count() const { return live_sandboxes_; }

  Simulator& simulator() { return sim_; }
  TraceSink& trace() { return trace_; }
  const WorldOptions& options() const { return options_; }

 private:
  friend class SimContainerRuntime;
  friend class SimNetwork;

  enum class Reason : uint8_t { kNone, kCompleted, kError, kOomKilled };
  enum Flag : uint8_t { kInUse = 1, kHung = 2, kStopping = 4 };

  // ~64 bytes; the container's pending behaviour timers carry `epoch` and do
  // nothing once it changed.
  struct ContainerRec {
    uint32_t sandbox = 0;
    uint32_t generation = 0;
    uint32_t epoch = 0;
    uint32_t name = 0;   // interned
    uint32_t image = 0;  // interned
    uint16_t behaviour = 0;  // index + 1 into behaviours; 0: runs until stopped
    ContainerState state = ContainerState::kCreated;
    uint8_t flags = 0;
    Reason reason = Reason::kNone;
    int32_t exit_code = 0;
    int64_t memory_limit = 0;
    int64_t started_ns = 0;
    int64_t finished_ns = 0;
    int64_t ready_ns = 0;
  };
  struct PortRec {
    uint16_t container_port;
    uint16_t host_port;
    bool udp;
  };
  struct SandboxRec {
    NodeId node = 0;
    uint32_t generation = 0;
    uint8_t host = 0;  // last octet of the IP
    bool in_use = false;
    bool ready = false;
    bool removing = false;
    std::string pod_uid;
    std::string ns;
    std::string name;
    const api::Labels* labels = nullptr;  // interned
    std::vector<PortRec> ports;
    std::vector<uint32_t> containers;  // slots, start order
  };
  struct NodeRec {
    SimNode info;
    uint32_t incarnation = 0;
    std::unique_ptr<SimContainerRuntime> runtime;
    std::vector<uint32_t> sandboxes;   // slots, creation order
    uint32_t ip_slots[256] = {};       // host octet -> sandbox slot + 1 (0: free)
    uint8_t ip_cursor = 0;
  };

  // Interning keeps per-container strings to 4-byte indices.
  uint32_t intern(std::string_view s);
  const std::string& interned(uint32_t i) const { return strings_[i]; }
  const api::Labels* intern_labels(const std::map<std::string, std::string>& labels);

  // Slabs.
  uint32_t alloc_container();
  void free_container(uint32_t slot);
  uint32_t alloc_sandbox();
  void free_sandbox(uint32_t slot);
  static std::string container_id(uint32_t slot, uint32_t gen);
  static std::string sandbox_id(uint32_t slot, uint32_t gen);
  // Slot of a live container / sandbox id, or nullopt.
  std::optional<uint32_t> find_container(std::string_view id) const;
  std::optional<uint32_t> find_sandbox(std::string_view id) const;
  std::string ip_string(NodeId node, uint8_t host) const;
  // (node, host octet) of a pod IP in 10.0.0.0/8, or nullopt.
  static std::optional<std::pair<NodeId, uint8_t>> parse_pod_ip(std::string_view ip);

  // Container transitions.
  void container_started(uint32_t slot);
  void container_exited(uint32_t slot, int exit_code, Reason reason);
  // key: low 24 bits of the epoch << 8 | what.
  void on_container_timer(uint32_t slot, uint32_t key);
  ContainerStatus container_status(uint32_t slot) const;
  PodSandboxStatus sandbox_status(uint32_t slot) const;
  void remove_container_now(uint32_t slot);
  void remove_sandbox_now(uint32_t slot);
  uint16_t match_behaviour(uint32_t image, const api::Labels* labels) const;
  const BehaviourSpec* behaviour_of(const ContainerRec& c) const {
    return c.behaviour == 0 ? nullptr : &options_.runtime.behaviours[c.behaviour - 1];
  }
  void emit(NodeId node, ContainerEvent event);
  void record_node(trace::EventType type, NodeId id, std::string_view reason);

  Simulator& sim_;
  Random& random_;
  TraceSink& trace_;
  WorldOptions options_;
  Topology topology_;
  std::vector<std::unique_ptr<NodeRec>> nodes_;
  std::unique_ptr<SimNetwork> network_;

  std::vector<ContainerRec> containers_;
  std::vector<uint32_t> free_containers_;
  std::vector<SandboxRec> sandboxes_;
  std::vector<uint32_t> free_sandboxes_;
  size_t running_containers_ = 0;
  size_t live_sandboxes_ = 0;

  std::vector<std::string> strings_;
  std::unordered_map<std::string, uint32_t> string_index_;
  std::map<std::map<std::string, std::string>, std::unique_ptr<api::Labels>> label_sets_;
  mutable std::map<std::pair<uint32_t, const api::Labels*>, uint16_t> behaviour_cache_;
  std::vector<ContainerHazard> hazards_;

  class NodeStateSub;
  std::vector<std::pair<uint64_t, std::function<void(const std::string&, bool)>>> node_subs_;
  uint64_t next_node_sub_ = 1;
};

// The ContainerRuntime of one simulated node. Results and events come back via
// the simulator, never re-entrantly. Random draws come from "runtime/<node>".
class SimContainerRuntime final : public ContainerRuntime {
 public:
  SimContainerRuntime(World& world, NodeId node);
  ~SimContainerRuntime() override;

  void pull_image(const std::string& image, Callback<Status> done) override;
  void run_pod_sandbox(const PodSandboxConfig& config,
                       Callback<StatusOr<PodSandboxStatus>> done) override;
  void remove_pod_sandbox(const std::string& sandbox_id, Duration grace,
                          Callback<Status> done) override;
  void start_container(const std::string& sandbox_id, const ContainerConfig& config,
                       Callback<StatusOr<std::string>> done) override;
  void stop_container(const std::string& container_id, Duration grace,
                      Callback<Status> done) override;
  void exec(const std::string& container_id, const std::vector<std::string>& command,
            Duration timeout, Callback<StatusOr<int>> done) override;
  void list_pod_sandboxes(Callback<StatusOr<std::vector<PodSandboxStatus>>> done) override;
  [[nodiscard]] std::unique_ptr<RuntimeSubscription> subscribe(
      std::function<void(const ContainerEvent&)> on_event) override;
  // Lines the simulated container "wrote": started (image, pod, node), ready
  // (its ports answer), exited (code, reason), stamped with simulated time.
  // With `follow`, new lines are looked for every 500 ms of simulated time.
  [[nodiscard]] std::unique_ptr<ContainerLogStream> read_logs(
      const std::string& container_id, bool follow, std::function<void(std::string)> on_data,
      Callback<Status> done) override;

  // Whether `image` is cached on this node.
  bool has_image(const std::string& image) const;
  NodeId node() const { return node_; }

 private:
  friend class World;
  class Sub;
  class LogReader;
  // The log text of one of this node's containers so far; nullopt when it is
  // gone. `exited` tells whether it can still write.
  std::optional<std::string> log_text(const std::string& container_id, bool* exited) const;

  template <typename T>
  void reply(Callback<T> done, T value, Duration after = Duration::zero());
  Status down_error() const;
  Duration draw(const Distribution& d);
  // Checks the image can be pulled; kNotFound otherwise.
  Status image_available(const std::string& image) const;
  // Calls `then` after the image is present (pulling it if needed), or with
  // the error; ensures one pull per image at a time.
  void ensure_image(uint32_t image, std::function<void(Status)> then);
  void stop_one(uint32_t slot, Duration grace, std::function<void()> then);
  void deliver(const ContainerEvent& event);

  World& world_;
  NodeId node_;
  std::unique_ptr<RandomStream> stream_;
  std::vector<bool> images_;  // by interned image index
  std::map<uint32_t, std::vector<std::function<void(Status)>>> pulling_;
  std::map<std::pair<bool, uint16_t>, uint32_t> host_ports_;  // (udp, port) -> sandbox slot
  std::vector<std::pair<uint64_t, std::function<void(const ContainerEvent&)>>> subs_;
  uint64_t next_sub_ = 1;
};

// The Network of the simulated world: probes and connects follow container
// state, node state, partitions and topology latency.
//   unreachable (target node down, partition)  -> kDeadlineExceeded after the timeout
//   refused (no listener, not running/ready)   -> kUnavailable after a round trip
//   hung container                             -> kDeadlineExceeded after the timeout
//   prober's own node down                     -> kUnavailable at once
class SimNetwork final : public Network {
 public:
  explicit SimNetwork(World& world) : world_(world) {}

  void probe(const ProbeRequest& request, Callback<Status> done) override;
  void connect(const std::string& from_node, const NetEndpoint& target, Duration timeout,
               Callback<Status> done) override;
  void set_dns_record(const std::string& name, const std::string& ip) override;

  // The IP published for `name`, if any.
  std::optional<std::string> lookup(const std::string& name) const;
  // The outcome a connection from `from` to `target` would have now and how
  // long it takes; for the traffic model (no event is scheduled).
  struct Outcome {
    Status status;
    Duration after;
  };
  Outcome evaluate(NodeId from, const NetEndpoint& target, Duration timeout) const;

 private:
  void attempt(const std::string& from_node, const NetEndpoint& target, Duration timeout,
               Callback<Status> done);
  World& world_;
  std::map<std::string, std::string> dns_;
};

}  // namespace flotilla::sim
