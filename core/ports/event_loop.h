// EventLoop: the one thing the control plane knows about time. The simulator
// implements it in virtual time (sim::Simulator), live mode on Boost.Asio.
// Everything asynchronous in the core comes back through post/run_after, never
// re-entrantly, so events happen in the same order in both worlds.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>

#include "core/util/time.h"

namespace flotilla {

// The continuation of an asynchronous port call; ports run it through the
// event loop.
template <typename T>
using Callback = std::function<void(T)>;

// A timer that has not fired yet. Destroying it or calling cancel() before it
// fires guarantees its callback never runs. Not thread-safe: use on the loop.
class Timer {
 public:
  virtual ~Timer() = default;
  // Idempotent; a no-op once the timer has fired.
  virtual void cancel() = 0;
  // True until the callback has started running or the timer was cancelled;
  // a repeating timer (run_every) stays pending until cancelled.
  virtual bool pending() const = 0;
};
using TimerHandle = std::unique_ptr<Timer>;

class EventLoop;
namespace detail {
TimerHandle run_every_by_rearming(EventLoop& loop, Duration period, std::function<void()> fn);
}  // namespace detail

class EventLoop {
 public:
  virtual ~EventLoop() = default;

  // The world's current time. Never decreases. In the simulator it moves only
  // between events; in live mode it is a steady clock.
  virtual TimePoint now() const = 0;

  // Runs `fn` once, after the current callback returns, at the current time.
  // Callbacks due at the same instant run in the order they were posted or
  // scheduled (FIFO). In live mode this is the one method other threads may
  // call (backends post their results back to the loop this way).
  virtual void post(std::function<void()> fn) = 0;

  // Runs `fn` once at now() + d (a negative d counts as zero), unless the
  // returned handle is destroyed or cancelled first. Loop thread only.
  [[nodiscard]] virtual TimerHandle run_after(Duration d, std::function<void()> fn) = 0;

  // Runs `fn` every `period` (at least 1 ns), first at now() + period, until
  // the handle is destroyed or cancelled (also from inside `fn`). The next
  // run is armed when `fn` returns, so it is ordered after whatever `fn`
  // scheduled: as a callback that re-arms its own timer last, at one timer
  // for the whole series. Loop thread only.
  [[nodiscard]] virtual TimerHandle run_every(Duration period, std::function<void()> fn) {
    return detail::run_every_by_rearming(*this, period, std::move(fn));
  }
  // Convenience: run at an absolute time (now() if `t` has passed).
  [[nodiscard]] TimerHandle run_at(TimePoint t, std::function<void()> fn) {
    return run_after(t - now(), std::move(fn));
  }
};

namespace detail {

// run_every for any loop: a one-shot timer armed again after each run.
class RearmingTimer final : public Timer {
 public:
  static TimerHandle start(EventLoop& loop, Duration period, std::function<void()> fn) {
    auto state = std::make_shared<State>(State{loop, period, std::move(fn), nullptr, false});
    arm(state);
    return TimerHandle(new RearmingTimer(std::move(state)));
  }
  ~RearmingTimer() override { cancel(); }
  void cancel() override {
    state_->cancelled = true;
    state_->next.reset();
  }
  bool pending() const override { return !state_->cancelled; }

 private:
  struct State {
    EventLoop& loop;
    Duration period;
    std::function<void()> fn;
    TimerHandle next;
    bool cancelled;
  };
  explicit RearmingTimer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  static void arm(const std::shared_ptr<State>& state) {
    state->next = state->loop.run_after(std::max(state->period, Duration(1)),
                                        [weak = std::weak_ptr<State>(state)] {
                                          std::shared_ptr<State> s = weak.lock();
                                          if (s == nullptr || s->cancelled) return;
                                          s->fn();
                                          if (!s->cancelled) arm(s);
                                        });
  }
  std::shared_ptr<State> state_;
};

inline TimerHandle run_every_by_rearming(EventLoop& loop, Duration period,
                                         std::function<void()> fn) {
  return RearmingTimer::start(loop, period, std::move(fn));
}

}  // namespace detail
}  // namespace flotilla
