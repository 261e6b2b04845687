#include "sim/engine/simulator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace flotilla::sim {

std::unique_ptr<EventQueue> make_event_queue(QueueKind kind) {
  switch (kind) {
    case QueueKind::kBinaryHeap:
      return std::make_unique<BinaryHeapQueue>();
    case QueueKind::kQuaternaryHeap:
      return std::make_unique<QuaternaryHeapQueue>();
    case QueueKind::kOctonaryHeap:
      return std::make_unique<OctonaryHeapQueue>();
    case QueueKind::kLadder:
      return std::make_unique<LadderQueue>();
  }
  return std::make_unique<QuaternaryHeapQueue>();
}

class Simulator::TimerImpl final : public Timer {
 public:
  TimerImpl(std::shared_ptr<Simulator*> sim, uint32_t slot, uint32_t generation)
      : sim_(std::move(sim)), slot_(slot), generation_(generation) {}
  ~TimerImpl() override { cancel(); }
  void cancel() override {
    if (Simulator* s = *sim_) s->cancel(slot_, generation_);
  }
  bool pending() const override {
    Simulator* s = *sim_;
    return s != nullptr && s->is_pending(slot_, generation_);
  }

 private:
  std::shared_ptr<Simulator*> sim_;
  uint32_t slot_;
  uint32_t generation_;
};

namespace {
// Sequence numbers live in the key's high 36 bits: 6.9e10 events between
// renumberings.
constexpr uint64_t kDefaultSequenceLimit = uint64_t{1} << 36;
}  // namespace

Simulator::Simulator(SimulatorOptions options)
    : queue_(make_event_queue(options.queue)),
      now_(options.start),
      sequence_limit_(options.sequence_limit == 0
                          ? kDefaultSequenceLimit
                          : std::min(options.sequence_limit, kDefaultSequenceLimit)),
      self_(std::make_shared<Simulator*>(this)) {}

Simulator::~Simulator() { *self_ = nullptr; }

TimePoint Simulator::saturating_add(TimePoint t, Duration d) {
  if (d <= Duration::zero()) return t;
  if (d > kTimeMax - t) return kTimeMax;
  return t + d;
}

void Simulator::post(std::function<void()> fn) { schedule(now_, std::move(fn)); }

TimerHandle Simulator::run_after(Duration d, std::function<void()> fn) {
  uint32_t slot = schedule(saturating_add(now_, d), std::move(fn));
  return std::make_unique<TimerImpl>(self_, slot, slots_[slot].generation);
}

TimerHandle Simulator::run_every(Duration period, std::function<void()> fn) {
  const int64_t p = std::max<int64_t>(1, to_nanos(period));
  uint32_t slot = schedule(saturating_add(now_, Duration(p)), std::move(fn));
  slots_[slot].period_ns = p;
  return std::make_unique<TimerImpl>(self_, slot, slots_[slot].generation);
}

void Simulator::schedule_after(Duration d, std::function<void()> fn) {
  schedule(saturating_add(now_, d), std::move(fn));
}

void Simulator::schedule_at(TimePoint t, std::function<void()> fn) {
  schedule(std::max(t, now_), std::move(fn));
}

uint32_t Simulator::allocate_slot() {
  if (free_head_ != kNoSlot) {
    uint32_t slot = free_head_;
    free_head_ = slots_[slot].next_free;
    return slot;
  }
  if (slots_.size() > kSlotMask) {
    std::fprintf(stderr, "sim::Simulator: more than %llu pending events\n",
                 static_cast<unsigned long long>(kSlotMask + 1));
    std::abort();
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

void Simulator::free_slot(uint32_t slot) {
  // Destroy the callback after the slot is free: its destructors may cancel
  // other timers.
  std::function<void()> doomed = std::move(slots_[slot].fn);
  slots_[slot].fn = nullptr;
  release_slot(slot);
}

void Simulator::release_slot(uint32_t slot) {
  Slot& s = slots_[slot];
  s.state = SlotState::kFree;
  s.period_ns = 0;
  ++s.generation;
  s.next_free = free_head_;
  free_head_ = slot;
}

uint32_t Simulator::schedule(TimePoint t, std::function<void()>&& fn) {
  uint32_t slot = allocate_slot();
  Slot& s = slots_[slot];
  s.fn = std::move(fn);
  enqueue(t, slot);
  return slot;
}

void Simulator::enqueue(TimePoint t, uint32_t slot) {
  if (next_seq_ >= sequence_limit_) renumber_sequences();
  slots_[slot].state = SlotState::kPending;
  QueueEntry entry{to_nanos(t), (next_seq_++ << kSlotBits) | slot};
  if (head_taken_) {
    head_taken_ = false;
    queue_->replace_top(entry);
  } else {
    queue_->push(entry);
  }
  ++live_events_;
}

void Simulator::cancel(uint32_t slot, uint32_t generation) {
  Slot& s = slots_[slot];
  if (s.generation != generation) return;
  if (s.state == SlotState::kRunning) {
    // A repeating timer cancelled from its own callback (which holds its
    // function): run_repeating() frees the slot when the callback returns.
    s.state = SlotState::kCancelled;
    return;
  }
  if (s.state != SlotState::kPending) return;
  // Release the captured state now, not when the entry surfaces; destroy it
  // last, since its destructors may cancel other timers.
  std::function<void()> doomed = std::move(s.fn);
  s.fn = nullptr;
  s.state = SlotState::kCancelled;
  --live_events_;
  ++cancelled_in_queue_;
  // Keep dead entries at most about half the queue so a workload that arms
  // and cancels long timers (the usual timeout pattern) stays bounded.
  if (cancelled_in_queue_ >= 1024 && cancelled_in_queue_ * 2 > queue_->size()) {
    purge_cancelled();
  }
}

bool Simulator::is_pending(uint32_t slot, uint32_t generation) const {
  const Slot& s = slots_[slot];
  return s.generation == generation &&
         (s.state == SlotState::kPending || s.state == SlotState::kRunning);
}

void Simulator::purge_cancelled() {
  flush_taken_head();
  queue_->remove_if([this](const QueueEntry& e) {
    uint32_t slot = static_cast<uint32_t>(e.key & kSlotMask);
    if (slots_[slot].state != SlotState::kCancelled) return false;
    free_slot(slot);
    return true;
  });
  cancelled_in_queue_ = 0;
}

void Simulator::renumber_sequences() {
  // Pops every entry in order and pushes it back with sequence 0, 1, 2, ...:
  // the relative order of pending events is unchanged.
  flush_taken_head();
  std::vector<QueueEntry> entries;
  entries.reserve(queue_->size());
  while (!queue_->empty()) {
    entries.push_back(queue_->top());
    queue_->pop();
  }
  next_seq_ = 0;
  for (QueueEntry e : entries) {
    e.key = (next_seq_++ << kSlotBits) | (e.key & kSlotMask);
    queue_->push(e);
  }
}

bool Simulator::settle_head() {
  flush_taken_head();
  while (!queue_->empty()) {
    uint32_t slot = static_cast<uint32_t>(queue_->top().key & kSlotMask);
    if (slots_[slot].state == SlotState::kPending) return true;
    queue_->pop();
    free_slot(slot);
    --cancelled_in_queue_;
  }
  return false;
}

void Simulator::run_head() {
  const QueueEntry& e = queue_->top();
  uint32_t slot = static_cast<uint32_t>(e.key & kSlotMask);
  now_ = time_from_nanos(e.time);
  if (slots_[slot].period_ns != 0) {
    run_repeating(slot);
    return;
  }
  // Move the callback out and free the slot first: the callback may schedule
  // (growing the slab) and its timer must read as no longer pending. The
  // entry stays in the queue for now (see head_taken_). Moving from a
  // std::function leaves it empty, so the slot keeps no captured state.
  std::function<void()> fn = std::move(slots_[slot].fn);
  release_slot(slot);
  --live_events_;
  ++events_processed_;
  head_taken_ = true;
  fn();
  flush_taken_head();
}

void Simulator::run_repeating(uint32_t slot) {
  // The callback runs outside the slab (which it may grow); the slot stays
  // taken, kRunning, so the handle reads as pending and can cancel it.
  std::function<void()> fn = std::move(slots_[slot].fn);
  slots_[slot].state = SlotState::kRunning;
  --live_events_;
  ++events_processed_;
  head_taken_ = true;
  fn();
  Slot& s = slots_[slot];
  if (s.state == SlotState::kRunning) {
    // Queued again after whatever the callback scheduled (one sift when it
    // scheduled nothing: the head entry is replaced).
    s.fn = std::move(fn);
    enqueue(saturating_add(now_, Duration(s.period_ns)), slot);
    return;
  }
  // Cancelled from inside: free the slot, then the callback (its
  // destructors may cancel other timers).
  release_slot(slot);
  flush_taken_head();
}

TimePoint Simulator::next_event_time() {
  return settle_head() ? time_from_nanos(queue_->top().time) : kTimeMax;
}

bool Simulator::should_stop() { return stop_requested_ || (stop_predicate_ && stop_predicate_()); }

uint64_t Simulator::run() {
  stop_requested_ = false;
  uint64_t ran = 0;
  while (settle_head()) {
    run_head();
    ++ran;
    if (should_stop()) break;
  }
  return ran;
}

uint64_t Simulator::run_until(TimePoint t) {
  stop_requested_ = false;
  uint64_t ran = 0;
  const int64_t limit = to_nanos(std::max(t, now_));
  while (settle_head() && queue_->top().time <= limit) {
    run_head();
    ++ran;
    if (should_stop()) return ran;
  }
  now_ = std::max(now_, t);
  return ran;
}

bool Simulator::step() {
  if (!settle_head()) return false;
  run_head();
  return true;
}

size_t Simulator::memory_bytes() const {
  return queue_->memory_bytes() + slots_.capacity() * sizeof(Slot);
}

}  // namespace flotilla::sim
