#include "core/controllers/work_queue.h"

#include <utility>

namespace flotilla::ctrl {

Duration ExponentialBackoff::next(const std::string& key) {
  int n = failures_[key]++;
  Duration d = initial_;
  for (int i = 0; i < n && d < max_; ++i) d *= 2;
  return d < max_ ? d : max_;
}

int ExponentialBackoff::failures(const std::string& key) const {
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

WorkQueue::WorkQueue(EventLoop& loop, std::string name, ReconcileFn reconcile,
                     WorkQueueOptions options)
    : loop_(loop),
      name_(std::move(name)),
      reconcile_(std::move(reconcile)),
      options_(options),
      backoff_(options.backoff_initial, options.backoff_max),
      self_(std::make_shared<WorkQueue*>(this)) {
  if (options_.max_per_pass < 1) options_.max_per_pass = 1;
}

WorkQueue::~WorkQueue() { *self_ = nullptr; }

void WorkQueue::add(const std::string& key) {
  if (shut_down_) return;
  if (!dirty_.insert(key).second) return;  // already queued (or re-added while processing)
  if (processing_.count(key) > 0) return;  // requeued when its pass ends
  queue_.push_back(key);
  schedule_pass();
}

void WorkQueue::add_after(const std::string& key, Duration d) {
  if (shut_down_) return;
  if (d <= Duration(0)) {
    add(key);
    return;
  }
  TimePoint when = loop_.now() + d;
  auto it = waiting_.find(key);
  if (it != waiting_.end() && it->second.when <= when) return;
  std::weak_ptr<WorkQueue*> weak = self_;
  TimerHandle timer = loop_.run_after(d, [weak, key] {
    auto self = weak.lock();
    if (!self || *self == nullptr) return;
    WorkQueue* q = *self;
    q->waiting_.erase(key);
    q->add(key);
  });
  waiting_[key] = Waiting{when, std::move(timer)};
}

void WorkQueue::add_batched(const std::string& key, Duration period) {
  if (period <= Duration(0)) {
    add(key);
    return;
  }
  if (dirty_.count(key) > 0) return;
  add_after(key, period);
}

void WorkQueue::add_rate_limited(const std::string& key) { add_after(key, backoff_.next(key)); }

void WorkQueue::shut_down() {
  shut_down_ = true;
  waiting_.clear();
  queue_.clear();
  dirty_.clear();
}

void WorkQueue::schedule_pass() {
  if (pass_scheduled_ || shut_down_) return;
  pass_scheduled_ = true;
  std::weak_ptr<WorkQueue*> weak = self_;
  loop_.post([weak] {
    auto self = weak.lock();
    if (!self || *self == nullptr) return;
    (*self)->run_pass();
  });
}

void WorkQueue::run_pass() {
  pass_scheduled_ = false;
  for (int i = 0; i < options_.max_per_pass && !queue_.empty() && !shut_down_; ++i) {
    std::string key = std::move(queue_.front());
    queue_.pop_front();
    process(key);
  }
  if (!queue_.empty()) schedule_pass();
}

void WorkQueue::process(const std::string& key) {
  dirty_.erase(key);
  processing_.insert(key);
  ++reconciles_;
  ReconcileResult r = reconcile_(key);
  processing_.erase(key);
  if (shut_down_) return;
  if (dirty_.count(key) > 0) {  // re-added while being processed
    queue_.push_back(key);
    schedule_pass();
  }
  switch (r.kind) {
    case ReconcileResult::Kind::kOk:
      backoff_.forget(key);
      break;
    case ReconcileResult::Kind::kRequeueAfter:
      backoff_.forget(key);
      add_after(key, r.after);
      break;
    case ReconcileResult::Kind::kRequeue:
    case ReconcileResult::Kind::kError:
      add_rate_limited(key);
      break;
  }
}

}  // namespace flotilla::ctrl
