// A controller's work queue with client-go semantics: keys are deduplicated
// while queued; a key re-added while it is being processed is processed again
// afterwards (the dirty set); failures back off per key exponentially; keys can
// be added after a delay. Processing runs on the EventLoop in bounded passes and
// a reconcile result (ok / requeue / requeue_after / error) drives the requeue.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "core/ports/event_loop.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::ctrl {

// What a reconcile pass asks the queue to do with its key next.
struct ReconcileResult {
  enum class Kind { kOk, kRequeue, kRequeueAfter, kError };
  Kind kind = Kind::kOk;
  Duration after{0};  // kRequeueAfter only
  Status status;      // kError only

  // Done: the key's failure history is forgotten.
  static ReconcileResult ok() { return {}; }
  // Try again after the key's next backoff step (not an error, e.g. a conflict).
  static ReconcileResult requeue() { return {Kind::kRequeue, Duration(0), Status()}; }
  // Done for now; look again after `d` (e.g. minReadySeconds); history forgotten.
  static ReconcileResult requeue_after(Duration d) { return {Kind::kRequeueAfter, d, Status()}; }
  // Failed: retried after the key's next backoff step.
  static ReconcileResult error(Status s) { return {Kind::kError, Duration(0), std::move(s)}; }
  static ReconcileResult from(const Status& s) { return s.is_ok() ? ok() : error(s); }
};

// client-go's ItemExponentialFailureRateLimiter: the n-th consecutive failure
// of a key waits initial * 2^(n-1), capped at max.
class ExponentialBackoff {
 public:
  ExponentialBackoff(Duration initial, Duration max) : initial_(initial), max_(max) {}
  // The delay before the next retry of `key`; counts one more failure.
  Duration next(const std::string& key);
  void forget(const std::string& key) { failures_.erase(key); }
  int failures(const std::string& key) const;

 private:
  Duration initial_;
  Duration max_;
  std::map<std::string, int> failures_;
};

struct WorkQueueOptions {
  Duration backoff_initial = milliseconds(5);
  Duration backoff_max = seconds(1000);
  // Keys reconciled per pass before yielding back to the loop.
  int max_per_pass = 64;
};

class WorkQueue {
 public:
  using ReconcileFn = std::function<ReconcileResult(const std::string& key)>;

  // `loop` must outlive the queue. Nothing runs until a key is added.
  WorkQueue(EventLoop& loop, std::string name, ReconcileFn reconcile, WorkQueueOptions options);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` unless it is already queued; a key being reconciled right now
  // is reconciled once more after the current pass over it.
  void add(const std::string& key);
  // Adds `key` after `d` (at once when d <= 0). Of several pending delayed adds
  // of one key, the earliest wins.
  void add_after(const std::string& key, Duration d);
  // Batches bursts of changes (client-go users' AddAfter(key, batchPeriod)):
  // a key already queued is left alone (its pass will see this change);
  // otherwise it is added after `period`, so every change within the period
  // costs one reconcile. period <= 0: add(key).
  void add_batched(const std::string& key, Duration period);
  // Adds `key` after its next backoff step.
  void add_rate_limited(const std::string& key);
  // Clears the key's failure history.
  void forget(const std::string& key) { backoff_.forget(key); }
  // Stops processing; later adds are ignored. Pending timers are cancelled.
  void shut_down();

  const std::string& name() const { return name_; }
  // Keys waiting to be reconciled (not counting delayed ones).
  size_t queued() const { return queue_.size(); }
  // Keys waiting on a delay (add_after or backoff).
  size_t waiting() const { return waiting_.size(); }
  bool is_queued(const std::string& key) const { return dirty_.count(key) > 0; }
  int failures(const std::string& key) const { return backoff_.failures(key); }
  // Reconcile calls made since construction.
  uint64_t reconciles() const { return reconciles_; }

 private:
  struct Waiting {
    TimePoint when;
    TimerHandle timer;
  };
  void schedule_pass();
  void run_pass();
  void process(const std::string& key);

  EventLoop& loop_;
  std::string name_;
  ReconcileFn reconcile_;
  WorkQueueOptions options_;
  ExponentialBackoff backoff_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;       // queued, or re-added while processing
  std::set<std::string> processing_;  // being reconciled now
  std::map<std::string, Waiting> waiting_;
  bool pass_scheduled_ = false;
  bool shut_down_ = false;
  uint64_t reconciles_ = 0;
  // Posted passes hold a weak reference so a destroyed queue is never touched.
  std::shared_ptr<WorkQueue*> self_;
};

}  // namespace flotilla::ctrl
