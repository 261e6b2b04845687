// sim::Simulator: the EventLoop port in virtual time. A discrete-event loop over
// an EventQueue of (time, sequence) keys: events at one instant run in the order
// they were posted or scheduled, and time jumps from one event to the next. Each
// Simulator is self-contained (no globals), so two worlds can live in one test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/ports/event_loop.h"
#include "sim/engine/event_queue.h"

namespace flotilla::sim {

struct SimulatorOptions {
  // The ladder queue: a 4-ary heap below 4096 pending events, flat hold time
  // above (see docs/simulator.md, Benchmarks).
  QueueKind queue = QueueKind::kLadder;
  TimePoint start = kTimeZero;
  // Insertion sequence numbers are renumbered (order kept) when they reach this
  // limit; tests lower it to exercise that path. 0 means the built-in limit.
  uint64_t sequence_limit = 0;
};

class Simulator final : public EventLoop {
 public:
  explicit Simulator(SimulatorOptions options = {});
  ~Simulator() override;
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // --- EventLoop ---
  TimePoint now() const override { return now_; }
  // Runs `fn` at now(), after every event already due at now().
  void post(std::function<void()> fn) override;
  // The handle may outlive the simulator (it then does nothing). Cancelling
  // frees the callback at once; the 16-byte queue entry is dropped when it
  // reaches the head of the queue or in a bulk purge, whichever comes first.
  [[nodiscard]] TimerHandle run_after(Duration d, std::function<void()> fn) override;
  // One slot and one handle for the whole series: each run puts the same
  // callback back in the queue (no allocation per period).
  [[nodiscard]] TimerHandle run_every(Duration period, std::function<void()> fn) override;

  // Like run_after/run_at but without a handle (cannot be cancelled); cheaper.
  void schedule_after(Duration d, std::function<void()> fn);
  void schedule_at(TimePoint t, std::function<void()> fn);

  // --- Driving ---
  // Each returns the number of callbacks it ran. The run_* calls return early
  // when a callback calls stop() or the stop predicate becomes true.
  // Runs until no event is pending.
  uint64_t run();
  // Runs every event due at or before `t`, then sets now() to `t` (unless
  // stopped early, when now() is the time of the last event run). A `t` in the
  // past runs only the events due now and leaves the clock where it is.
  uint64_t run_until(TimePoint t);
  uint64_t run_for(Duration d) { return run_until(saturating_add(now_, d)); }
  // Runs the next pending event, if any; returns whether one ran. Ignores stop().
  bool step();
  // Makes the innermost run/run_until/run_for return after the current callback.
  void stop() { stop_requested_ = true; }
  // Checked after every event; when it returns true the run returns. Empty
  // function clears it.
  void set_stop_predicate(std::function<bool()> predicate) {
    stop_predicate_ = std::move(predicate);
  }

  // Events scheduled and not yet run nor cancelled.
  size_t pending_events() const { return live_events_; }
  // Callbacks run since construction.
  uint64_t events_processed() const { return events_processed_; }
  // The time of the next pending event; kTimeMax when there is none.
  TimePoint next_event_time();
  // Bytes held by the queue and the callback slab (capacity).
  size_t memory_bytes() const;
  const EventQueue& queue() const {
    flush_taken_head();
    return *queue_;
  }

 private:
  class TimerImpl;
  // kRunning: a repeating timer's callback is running (its slot is kept).
  enum class SlotState : uint8_t { kFree, kPending, kCancelled, kRunning };
  struct Slot {
    std::function<void()> fn;
    uint32_t generation = 0;
    uint32_t next_free = 0;
    SlotState state = SlotState::kFree;
    // Nonzero for a repeating timer (run_every).
    int64_t period_ns = 0;
  };
  static constexpr int kSlotBits = 28;
  static constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  static TimePoint saturating_add(TimePoint t, Duration d);
  // Returns the slot index; the entry is in the queue.
  uint32_t schedule(TimePoint t, std::function<void()>&& fn);
  // Queues `slot` (already filled) to run at `t`.
  void enqueue(TimePoint t, uint32_t slot);
  uint32_t allocate_slot();
  void free_slot(uint32_t slot);
  // free_slot() for a slot whose callback has already been moved out.
  void release_slot(uint32_t slot);
  // Pops the entry of the running callback if it is still in the queue (see
  // head_taken_). Every queue access other than schedule()'s calls it first.
  void flush_taken_head() const {
    if (head_taken_) {
      head_taken_ = false;
      queue_->pop();
    }
  }
  void cancel(uint32_t slot, uint32_t generation);
  bool is_pending(uint32_t slot, uint32_t generation) const;
  // Pops cancelled entries off the head; true when a live event is at the head.
  bool settle_head();
  // Runs the event at the head (which must be live).
  void run_head();
  // run_head() for a repeating timer: runs it and queues it again.
  void run_repeating(uint32_t slot);
  void purge_cancelled();
  void renumber_sequences();
  bool should_stop();

  std::unique_ptr<EventQueue> queue_;
  std::vector<Slot> slots_;
  uint32_t free_head_ = kNoSlot;
  TimePoint now_;
  uint64_t next_seq_ = 0;
  uint64_t sequence_limit_;
  size_t live_events_ = 0;
  size_t cancelled_in_queue_ = 0;
  uint64_t events_processed_ = 0;
  bool stop_requested_ = false;
  // While a callback runs, its own entry stays at the head of the queue: if
  // the callback schedules an event, the first schedule() replaces the head
  // (one sift instead of a pop and a push: the common "event schedules its
  // successor" case); otherwise it is popped when the callback returns or
  // before any other use of the queue. Mutable so const readers can flush it.
  mutable bool head_taken_ = false;
  std::function<bool()> stop_predicate_;
  // Shared with every TimerHandle so a handle that outlives the simulator
  // sees nullptr instead of a dangling pointer.
  std::shared_ptr<Simulator*> self_;
};

}  // namespace flotilla::sim
