// NodeAgent: the node agent ("kubelet") of one node. It registers the Node and
// heartbeats its Ready condition, watches the pods bound to the node and
// reconciles each one level-triggered against the node's ContainerRuntime:
// sandbox, image pulls, containers, restarts with the Kubernetes crash-loop
// backoff, liveness/readiness/startup probes, pod status and graceful deletion.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/api/types.pb.h"
#include "core/controllers/event_recorder.h"
#include "core/ports/container_runtime.h"
#include "core/ports/event_loop.h"
#include "core/ports/network.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "core/timing/timing.h"

namespace flotilla::agent {

// What the agent reports about its machine when it registers the Node.
struct NodeDescription {
  std::map<std::string, std::string> capacity;     // "cpu": "4", "memory": "8Gi", "pods": "110"
  std::map<std::string, std::string> allocatable;  // defaults to capacity when empty
  std::map<std::string, std::string> labels;       // merged into the Node's labels
  // {type, address}: {"InternalIP", "10.0.0.5"}, {"Hostname", "node-1"}. The
  // first InternalIP (else the first address) is every pod's hostIP.
  std::vector<std::pair<std::string, std::string>> addresses;
  std::string os_image = "Flotilla";
  std::string container_runtime_version = "flotilla://1";
};

class NodeAgent final {
 public:
  // Borrows every port; they must outlive the agent. Does nothing until start().
  NodeAgent(std::string node_name, EventLoop& loop, Store& store, ContainerRuntime& runtime,
            Network& network, TraceSink& trace, TimingProfile timing, NodeDescription node);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Registers (or updates) the Node object, then heartbeats as the kubelet
  // does: renews its Lease (kube-node-lease/<node>) every quarter of
  // node_lease_duration, and every node_status_update_period checks the Node's
  // status, writing it only when it differs from what the agent reports or
  // node_status_report_period has passed since the last write; lists the runtime's sandboxes, adopts those of
  // pods still bound here, removes the others, and starts watching the node's
  // pods. Errors: whatever the store returns when the Node cannot be written.
  Status start();
  // Stops everything at once and silently: no more writes, heartbeats, runtime
  // calls or callbacks (a dead node's agent posts nothing). Containers are left
  // as they are. start() may be called again later (an agent restart).
  void stop();
  bool running() const { return running_; }

  const std::string& node_name() const { return node_name_; }
  // Pods the agent currently tracks (bound here and not yet cleaned up).
  size_t tracked_pods() const { return pods_.size(); }
  // Pod syncs run since construction (for tests and benchmarks).
  uint64_t syncs() const { return syncs_; }
  // Tracked pods whose last sync did not find them settled (running, status
  // written): the ones the periodic resync visits.
  size_t unsettled_pods() const { return unsettled_; }

 private:
  struct ProbeState;
  struct ContainerRecord;
  struct PodRecord;

  // Wraps a callback so it does nothing once the agent stopped or died.
  template <typename F>
  auto guard(F fn);

  // --- node ---
  Status register_node();
  // Writes Ready=True and fresh heartbeat times unless `only_if_changed` and
  // the stored status already says what the agent would write.
  void post_node_status(bool only_if_changed);
  void schedule_heartbeat();
  void renew_lease();
  void schedule_lease_renewal();
  // A quarter of the lease duration (at least 1 ms).
  Duration lease_renew_period() const;
  // The renewal rides on the status-check timer (the periods are equal).
  bool renews_with_heartbeat() const;

  // --- pods: watch and queue ---
  void on_sandboxes_listed(StatusOr<std::vector<PodSandboxStatus>> sandboxes);
  void on_pod_event(const WatchEvent& event);
  void on_runtime_event(const ContainerEvent& event);
  void track_pod(std::shared_ptr<const api::Pod> pod);
  // Makes `pod` the record's latest snapshot (and its containers' spec source
  // when their names and images are unchanged).
  void set_snapshot(PodRecord& rec, std::shared_ptr<const api::Pod> pod);
  void forget_pod(const std::string& uid, bool remove_sandbox);
  // Sets `pod.settled`, keeping unsettled_ in step.
  void set_settled(PodRecord& pod, bool settled);
  // `resync`: the periodic resync's visit, which does not mark the pod dirty.
  void enqueue(const std::string& uid, bool resync = false);
  void drain_queue();
  void schedule_resync();
  void wake_at(PodRecord& pod, TimePoint t);

  // --- the per-pod reconcile ---
  void sync_pod(PodRecord& pod);
  void sync_terminating(PodRecord& pod);
  void ensure_sandbox(PodRecord& pod);
  void sync_container(PodRecord& pod, size_t index);
  void pull_image(PodRecord& pod, size_t index);
  void start_container(PodRecord& pod, size_t index);
  bool should_restart(const PodRecord& pod, const ContainerRecord& c) const;
  bool pod_finished(const PodRecord& pod) const;
  void on_container_exit(PodRecord& pod, ContainerRecord& c, const ContainerStatus& status,
                         bool oom);
  void kill_container(PodRecord& pod, size_t index, Duration grace, const std::string& why);
  void adopt(PodRecord& pod, const PodSandboxStatus& sandbox);
  void seed_from_status(PodRecord& pod);

  // --- probes ---
  void start_probes(PodRecord& pod, size_t index);
  void stop_probes(ContainerRecord& c);
  void schedule_probe(PodRecord& pod, size_t index, int kind, Duration delay);
  void run_probe(const std::string& uid, size_t index, int kind, uint64_t instance);
  void on_probe_result(const std::string& uid, size_t index, int kind, uint64_t instance,
                       Status result);

  // --- status, events, traces ---
  api::PodStatus compute_status(const PodRecord& pod, const api::PodStatus& old) const;
  void write_status(PodRecord& pod);
  void record_event(PodRecord& pod, const std::string& type, const std::string& reason,
                    const std::string& message);
  void trace(trace::EventType type, const PodRecord& pod, const std::string& container = "",
             const std::string& reason = "", const std::string& message = "",
             int exit_code = 0, int64_t value = 0);
  Duration grace_period(const PodRecord& pod) const;
  PodRecord* find(const std::string& uid);

  std::string node_name_;
  EventLoop& loop_;
  Store& store_;
  ContainerRuntime& runtime_;
  Network& network_;
  TraceSink& trace_;
  TimingProfile timing_;
  NodeDescription node_;
  ctrl::EventRecorder recorder_;
  std::string host_ip_;

  bool running_ = false;
  uint64_t epoch_ = 0;                  // bumped by stop(): stale callbacks are dropped
  std::shared_ptr<int> alive_;          // callbacks hold a weak_ptr to it
  WatchHandle pod_watch_;
  std::unique_ptr<RuntimeSubscription> runtime_sub_;
  TimerHandle heartbeat_timer_;
  TimerHandle lease_timer_;
  TimePoint last_status_report_;
  std::string node_uid_;  // of the Node as last registered (the Lease's owner)
  // The Lease as this agent last wrote it (client-go's latestLease): the next
  // renewal starts from it instead of reading the store; a conflict drops it.
  api::Object lease_;
  // The stored Node snapshot last found (or written) with the conditions this
  // agent reports: while the store still holds it, a status check compares
  // nothing.
  api::Object node_as_reported_;
  TimerHandle resync_timer_;

  // Ordered by uid so a full resync visits pods in a deterministic order.
  std::map<std::string, std::unique_ptr<PodRecord>> pods_;
  // How many of them are not settled: the periodic resync walks the pods
  // only when some are (150,000 pods once a minute otherwise: ~6% of the
  // large scenario's time, mostly cache misses).
  size_t unsettled_ = 0;
  std::deque<std::string> queue_;
  bool drain_posted_ = false;
  uint64_t syncs_ = 0;
  uint64_t next_instance_ = 1;
};

}  // namespace flotilla::agent
