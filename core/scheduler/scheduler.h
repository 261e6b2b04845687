// The scheduling loop: watches Nodes and Pods through the Store port, keeps the
// Snapshot current, queues unscheduled pods, places them (greedy one by one, or
// in min-cost-flow batches per cycle), binds by writing spec.nodeName with
// optimistic concurrency, and reports Scheduled / FailedScheduling Events and
// trace records. Unschedulable pods back off (1s doubling to 10s, as kube's
// podInitialBackoff/podMaxBackoff) and return to the queue when the cluster
// changes. Runs on one EventLoop; timers only via run_after.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ports/event_loop.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "core/scheduler/flow_placement.h"
#include "core/scheduler/framework.h"
#include "core/scheduler/placement.h"
#include "core/scheduler/snapshot.h"

namespace flotilla::sched {

struct SchedulerOptions {
  PlacementMode mode = PlacementMode::kGreedy;
  PlacementOptions placement;
  FlowOptions flow;
  // Pods whose spec.schedulerName is empty or one of these are ours.
  std::vector<std::string> scheduler_names = {"flotilla", "default-scheduler"};
  // Pods handled per loop callback (greedy) or per flow batch; the rest go in
  // the next cycle, so other events interleave.
  int max_pods_per_cycle = 1000;
  Duration initial_backoff = seconds(1);
  Duration max_backoff = seconds(10);
  // Unschedulable pods are retried at least this often even without a
  // cluster change (kube: podMaxInUnschedulablePodsDuration).
  Duration unschedulable_flush = minutes(5);
  bool emit_events = true;
  std::string component = "flotilla-scheduler";
};

struct SchedulerStats {
  int64_t scheduled = 0;
  int64_t failed_attempts = 0;  // FailedScheduling reported
  int64_t bind_conflicts = 0;
  int64_t cycles = 0;
};

class Scheduler {
 public:
  // All references are borrowed and must outlive the scheduler. `framework`
  // null: make_default_framework().
  Scheduler(Store& store, EventLoop& loop, TraceSink& trace, SchedulerOptions options = {},
            std::unique_ptr<Framework> framework = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts watching nodes and pods (with initial events). Errors from the store.
  Status start();
  // Stops watches and timers; pending work is dropped.
  void stop();

  const Snapshot& snapshot() const { return snapshot_; }
  const SchedulerStats& stats() const { return stats_; }
  // Pods waiting: in the active queue, or backing off / unschedulable.
  size_t pending() const { return pending_.size(); }
  size_t active() const { return active_.size(); }

 private:
  enum class State { kActive, kBackoff, kUnschedulable };
  struct Pending {
    PodInfo info;
    State state = State::kActive;
    int attempts = 0;
    TimePoint backoff_until = kTimeZero;
    TimePoint unschedulable_since = kTimeZero;
  };

  void on_node(const WatchEvent& e);
  void on_pod(const WatchEvent& e);
  bool ours(const api::Pod& pod) const;
  void enqueue(std::shared_ptr<const api::Pod> pod);
  void activate(const std::string& key);
  // The cluster changed in a way that may let unschedulable pods fit.
  void on_cluster_change();
  void arm_cycle();
  void ensure_ordered_active(std::vector<std::string>& keys);
  void arm_timer();
  void on_timer();
  void run_cycle();
  void schedule_greedy(std::vector<std::string>& keys);
  void schedule_flow(std::vector<std::string>& keys);
  // Writes the binding; on success the pod leaves the queue. Returns whether bound.
  bool bind(Pending& p, int node);
  void failed(Pending& p, const std::string& message);
  void emit_event(const PodInfo& pod, const std::string& type, const std::string& reason,
                  const std::string& message);

  Store& store_;
  EventLoop& loop_;
  TraceSink& trace_;
  SchedulerOptions options_;
  std::unique_ptr<Framework> framework_;
  GreedyPlacer greedy_;
  FlowPlacer flow_;
  Snapshot snapshot_;
  WatchHandle node_watch_;
  WatchHandle pod_watch_;
  std::map<std::string, Pending> pending_;  // ordered: iteration reaches decisions
  std::deque<std::string> active_;  // keys, FIFO; entries whose state moved on are skipped
  std::set<std::pair<TimePoint, std::string>> timers_;  // backoff expiries and flushes
  TimerHandle timer_;
  TimePoint timer_at_ = kTimeMax;
  TimerHandle cycle_;
  SchedulerStats stats_;
  int64_t event_seq_ = 0;
};

}  // namespace flotilla::sched
