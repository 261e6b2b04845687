// Live faults: the scenario's `faults:` (sim::FaultSpec, the same names as in
// the simulator) done for real on Docker. kill_containers -> SIGKILL of the
// matching pods' app containers; hang_containers -> docker pause; kill_node ->
// the node's agent stops at once and every container of the node is killed;
// restart_node -> a fresh agent (it adopts or cleans up what it finds);
// partition -> the node's pods are disconnected from the pod network and its
// agent is cut off from the control plane, then reconnected after `for`;
// power_off -> kill_node for each node of a rack or zone. Every fault and heal
// goes to the trace as in the simulator. Engine API calls run on a worker
// thread; their effects come back through the event loop.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/docker/docker_client.h"
#include "core/ports/event_loop.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "sim/faults/faults.h"

namespace flotilla::live {

// One logical node of a live run.
struct LiveNodeInfo {
  std::string name;         // the Node object's name
  std::string zone;
  std::string rack;
  std::string docker_node;  // its containers' flotilla.io/node label value
  std::map<std::string, std::string> labels;  // the Node's labels (stochastic node selectors)
};

// What the runner does when a node goes down or comes back (it owns agents).
class LiveNodeControl {
 public:
  virtual ~LiveNodeControl() = default;
  // Stops the node's agent at once and silently, and records NODE_DOWN.
  virtual void node_down(const std::string& node, const std::string& reason) = 0;
  // Starts the node's agent again and records NODE_UP.
  virtual void node_up(const std::string& node, const std::string& reason) = 0;
  // Cuts the node's agent off from the control plane (or reconnects it).
  virtual void set_cut_off(const std::string& node, bool cut_off) = 0;
};

// A Store seen through one node's link to the control plane: forwards to the
// cluster's store, or fails with kUnavailable while the node is cut off (as
// scenarios::ControlPlaneLink does in the simulator). Watches keep flowing.
class SwitchableStoreLink final : public Store {
 public:
  SwitchableStoreLink(Store& inner, std::string node) : inner_(inner), node_(std::move(node)) {}
  void set_cut_off(bool cut) { cut_off_ = cut; }
  bool cut_off() const { return cut_off_; }

  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override;
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override;
  StatusOr<api::Object> create(api::Object object) override;
  StatusOr<api::Object> update(api::Object object) override;
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options) override;
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override;
  int64_t resource_version() const override { return inner_.resource_version(); }
  int64_t kind_resource_version(api::Kind kind) const override {
    return inner_.kind_resource_version(kind);
  }

 private:
  Status refused() const;
  Store& inner_;
  std::string node_;
  bool cut_off_ = false;
};

class LiveFaultInjector {
 public:
  // Borrows every argument. `network` is the Docker network the pods are on.
  LiveFaultInjector(EventLoop& loop, Random& random, TraceSink& trace, Store& store,
                    const docker::DockerClient& client, LiveNodeControl& control,
                    std::vector<LiveNodeInfo> nodes, std::string network);
  // Drops faults not yet fired and waits for the Engine API call in flight.
  ~LiveFaultInjector();
  LiveFaultInjector(const LiveFaultInjector&) = delete;
  LiveFaultInjector& operator=(const LiveFaultInjector&) = delete;

  // Schedules one fault at spec.at from now, or starts a stochastic one with
  // the simulator's model (sim/faults) on real time: for `nodes`, each unit
  // (node, rack or zone, in node order) fails after a ttf draw from the stream
  // "faults/<name>/<unit>" (its nodes go down as by kill_node, trace reason
  // node_failure), is repaired after a ttr draw, and so on; for `containers`,
  // every start of a matching pod's container (a new container id in the
  // pod's status) draws a time to crash from "faults/<name>", after which the
  // container gets SIGKILL (trace reason container_crash, exit code 137).
  // Errors: kNotFound for an unknown node, rack or zone; kInvalid for a spec
  // missing a field.
  Status add(const sim::FaultSpec& spec);
  Status add_all(const std::vector<sim::FaultSpec>& specs);
  // Fires one fault now (tests, tools).
  Status fire_now(const sim::FaultSpec& spec);

  uint64_t injected() const { return injected_; }
  uint64_t healed() const { return healed_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Containers killed or paused so far by container faults, with the pod
  // ("<ns>/<name>") each belonged to.
  const std::vector<std::string>& affected_pods() const { return affected_pods_; }
  // Engine API jobs queued or running.
  size_t busy() const;

 private:
  struct Unit {
    std::string name;  // node, rack or zone
    std::vector<size_t> nodes;
    sim::FaultSpec spec;
    std::unique_ptr<RandomStream> stream;
    TimerHandle timer;
  };
  struct Hazard {
    sim::FaultSpec spec;
    std::unique_ptr<RandomStream> stream;
  };
  Status add_stochastic_nodes(const sim::FaultSpec& spec);
  Status add_stochastic_containers(const sim::FaultSpec& spec);
  void unit_fail(size_t unit);
  void unit_repair(size_t unit);
  void on_pod(const WatchEvent& e);
  void crash(size_t hazard, const std::string& container_id, const std::string& node,
             const std::string& ns, const std::string& name, const std::string& uid,
             const std::string& container);
  StatusOr<std::vector<size_t>> resolve_nodes(const sim::FaultSpec& spec) const;
  void fire(const sim::FaultSpec& spec, const std::vector<size_t>& nodes);
  void node_down(size_t node, const std::string& reason);
  void node_up(size_t node, const std::string& reason);
  void partition(size_t node, bool cut);
  void containers(const sim::FaultSpec& spec);
  void record(trace::EventType type, const sim::FaultSpec& spec, const std::string& reason,
              const std::string& node, const std::string& message);
  // Runs `job` on the worker thread.
  void enqueue(std::function<void()> job);
  void worker_main();

  EventLoop& loop_;
  Random& random_;
  TraceSink& trace_;
  Store& store_;
  const docker::DockerClient& client_;
  LiveNodeControl& control_;
  std::vector<LiveNodeInfo> nodes_;
  std::string network_;
  std::vector<uint32_t> holds_;  // by node: faults holding it down
  std::vector<TimerHandle> timers_;
  std::vector<std::unique_ptr<Unit>> units_;
  std::vector<Hazard> hazards_;
  WatchHandle pod_watch_;
  // Container starts already given a crash time, by hazard: container ids.
  std::vector<std::set<std::string>> hazard_seen_;
  // Pending crashes: (hazard, container id) -> timer.
  std::map<std::pair<size_t, std::string>, TimerHandle> crash_timers_;
  uint64_t injected_ = 0;
  uint64_t healed_ = 0;
  std::vector<std::string> warnings_;
  std::vector<std::string> affected_pods_;
  // Pod IPs of disconnected sandboxes, by node: (container id, ip).
  std::shared_ptr<std::map<size_t, std::vector<std::pair<std::string, std::string>>>> detached_ =
      std::make_shared<std::map<size_t, std::vector<std::pair<std::string, std::string>>>>();
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  int running_jobs_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace flotilla::live
