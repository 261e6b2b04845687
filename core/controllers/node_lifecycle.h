// The node lifecycle controller (Kubernetes' node_lifecycle_controller, sized
// down): turns missing heartbeats into Ready=Unknown, marks the node's pods not
// ready at once, evicts them (graceful delete_pod, rate-limited per node) after
// the eviction timeout so replication recreates them elsewhere, and force-
// removes pods left Terminating on a node that stays unreachable past their
// grace period (Kubernetes would leave them; see docs/controllers.md).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "core/controllers/context.h"
#include "core/controllers/event_recorder.h"
#include "core/util/flat_index.h"

namespace flotilla::ctrl {

inline constexpr std::string_view kTaintUnreachable = "node.kubernetes.io/unreachable";
inline constexpr std::string_view kTaintNotReady = "node.kubernetes.io/not-ready";
// Where node agents keep their Leases (one per node, named after it).
inline constexpr std::string_view kNodeLeaseNamespace = "kube-node-lease";

// Kubernetes' token bucket on the world's clock: `rate` tokens per second up
// to `burst`; starts full. A rate <= 0 means unlimited.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst, TimePoint start)
      : rate_(rate), burst_(burst), tokens_(burst), last_(start) {}
  // Takes a token if one is available at `now`.
  bool try_take(TimePoint now);
  // How long from `now` until a token is available (zero if one is).
  Duration wait(TimePoint now);

 private:
  void refill(TimePoint now);
  double rate_;
  double burst_;
  double tokens_;
  TimePoint last_;
};

class NodeLifecycleController {
 public:
  static constexpr std::string_view kComponent = "node-controller";

  explicit NodeLifecycleController(ControllerContext ctx);
  ~NodeLifecycleController();
  NodeLifecycleController(const NodeLifecycleController&) = delete;
  NodeLifecycleController& operator=(const NodeLifecycleController&) = delete;

  // Watches nodes, node Leases and pods and starts the monitor every
  // node_monitor_period. A Node status heartbeat or a Lease renewal is proof of
  // life, as in Kubernetes (tryUpdateNodeHealth).
  Status start();
  // One monitor pass over every known node (the timer calls it).
  void monitor();

  // What the controller believes of a node: "True", "False", "Unknown", or ""
  // when unknown to it / never posted.
  std::string observed_ready(const std::string& node) const;
  bool evicted(const std::string& node) const;
  size_t eviction_queue_size() const { return eviction_queue_.size(); }
  uint64_t pods_evicted() const { return pods_evicted_; }
  uint64_t pods_force_removed() const { return pods_force_removed_; }

 private:
  struct NodeHealth {
    int64_t heartbeat = -1;  // Ready.lastHeartbeatTime last seen (ns); -1 never
    int64_t lease_renew = -1;  // its Lease's spec.renewTime last seen (ns); -1 never
    TimePoint probe;         // our time when either last changed
    std::string ready;       // our view of the Ready condition
    TimePoint not_ready_since;
    bool eviction_queued = false;
    bool evicted = false;
    TimePoint next_force_check = kTimeMax;
  };
  void on_node(const WatchEvent& e);
  void on_lease(const WatchEvent& e);
  // The node's Lease renewTime in the store (-1 when it has none).
  int64_t stored_lease_renew(const std::string& name);
  void on_pod(const WatchEvent& e);
  // The node went from Ready (or never seen ready) to not ready.
  void became_not_ready(const std::string& name, NodeHealth& h, const api::Node& node,
                        const std::string& status, const std::string& reason);
  void became_ready(const std::string& name, NodeHealth& h, const api::Node& node);
  // Sets Ready (and every other condition) to Unknown; false when the store
  // refused.
  bool mark_unknown(const std::string& name, NodeHealth& h);
  void set_taints(const std::string& name, std::string_view status);
  void mark_pods_not_ready(const std::string& name, NodeHealth& h);
  void process_evictions();
  void evict(const std::string& name, NodeHealth& h);
  void force_sweep(const std::string& name, NodeHealth& h);
  void remove_all_pods(const std::string& name);
  void schedule_monitor();
  void trace_node(trace::EventType type, const std::string& node, const std::string& reason,
                  const std::string& message);

  ControllerContext ctx_;
  EventRecorder recorder_;
  TokenBucket eviction_limiter_;
  using NodeMap = std::map<std::string, NodeHealth>;
  NodeMap nodes_;  // ordered: monitor() visits nodes by name
  // The same entries hashed by name, for the per-event lookups (a Lease
  // renewal every 10 s per node).
  struct NameOf {
    std::string_view operator()(const NodeMap::iterator& it) const { return it->first; }
  };
  FlatIndex<NodeMap::iterator, NameOf> by_name_;
  static uint64_t name_hash(std::string_view name) { return std::hash<std::string_view>()(name); }
  NodeHealth* find_node(std::string_view name) {
    const NodeMap::iterator* it = by_name_.find(name, name_hash(name));
    return it == nullptr ? nullptr : &(*it)->second;
  }
  std::deque<std::string> eviction_queue_;
  TimerHandle monitor_timer_;
  TimerHandle eviction_timer_;
  WatchHandle node_watch_;
  WatchHandle lease_watch_;
  WatchHandle pod_watch_;
  uint64_t pods_evicted_ = 0;
  uint64_t pods_force_removed_ = 0;
};

}  // namespace flotilla::ctrl
