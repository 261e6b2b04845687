// EventLoop: the one thing the control plane knows about time. The simulator
// implements it in virtual time (sim::Simulator), live mode on Boost.Asio.
// Everything asynchronous in the core comes back through post/run_after, never
// re-entrantly, so events happen in the same order in both worlds.
#pragma once

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
  // True until the callback has started running or the timer was cancelled.
  virtual bool pending() const = 0;
};
using TimerHandle = std::unique_ptr<Timer>;

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

  // Convenience: run at an absolute time (now() if `t` has passed).
  [[nodiscard]] TimerHandle run_at(TimePoint t, std::function<void()> fn) {
    return run_after(t - now(), std::move(fn));
  }
};

}  // namespace flotilla
