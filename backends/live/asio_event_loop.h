// AsioEventLoop: the EventLoop port in real time, on Boost.Asio. now() is a
// steady clock aligned to the wall clock when the loop was built (so RFC 3339
// timestamps read sensibly); posts and timers share one (due, sequence) queue so
// callbacks due at one instant run FIFO, exactly as in sim::Simulator. Backends
// that block on other threads post their results back with post(), the one
// thread-safe method; sockets of the live data path run on io_context().
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "core/ports/event_loop.h"

namespace flotilla::live {

class AsioEventLoop final : public EventLoop {
 public:
  AsioEventLoop();
  ~AsioEventLoop() override;
  AsioEventLoop(const AsioEventLoop&) = delete;
  AsioEventLoop& operator=(const AsioEventLoop&) = delete;

  // --- EventLoop ---
  TimePoint now() const override;
  // Thread-safe. Runs `fn` on the loop thread after every callback already due.
  void post(std::function<void()> fn) override;
  // Loop thread only. The handle may outlive the loop (it then does nothing).
  [[nodiscard]] TimerHandle run_after(Duration d, std::function<void()> fn) override;

  // --- Driving (from the one thread that runs the loop) ---
  // Each returns early, after the current callback, once stop() was called; the
  // stop request is then consumed. Callbacks and Asio handlers (sockets) run.
  // Runs until stop().
  void run();
  // Runs for `d` of real time.
  void run_for(Duration d);
  // Runs until `done()` (checked after every callback) is true or `timeout`
  // passed; returns done().
  bool run_until(const std::function<bool()>& done, Duration timeout);
  // Runs callbacks and timers until none is pending (sleeping until timers are
  // due). Asio handlers of sockets do not count as pending work.
  void run_until_idle();
  // Thread-safe: makes the innermost run* call return after the current callback.
  void stop();

  // Callbacks and timers pending (not yet run nor cancelled).
  size_t pending() const;
  boost::asio::io_context& io_context() { return io_; }

 private:
  class TimerImpl;
  struct TimerState;
  struct Entry {
    std::function<void()> fn;           // for posts
    std::shared_ptr<TimerState> timer;  // for timers
  };
  using Key = std::pair<int64_t, uint64_t>;  // (due ns, sequence)
  // Shared with timer handles so cancel() can drop the entry, and so a handle
  // outliving the loop finds it gone.
  struct Core {
    std::mutex mu;
    std::map<Key, Entry> queue;
    uint64_t next_seq = 0;
  };

  // Inserts an entry; returns its key.
  Key insert(int64_t due_ns, Entry e);
  // Makes sure dispatch() runs soon (thread-safe).
  void kick();
  // Runs the head entry when due, then re-arms the timer or kicks again.
  void dispatch();
  // Arms the steady_timer for the head entry when it is in the future.
  void arm();
  // One io_context handler (or none when `block` is false and none is ready).
  // Returns false when the io_context ran out of work.
  bool run_one(Duration max_wait);

  boost::asio::io_context io_;
  boost::asio::steady_timer timer_;
  int64_t armed_ns_ = -1;  // due of the armed timer, -1: not armed
  int64_t offset_ns_;      // wall clock minus steady clock at construction
  std::shared_ptr<Core> core_;
  std::atomic<bool> dispatch_posted_{false};
  std::atomic<bool> stop_requested_{false};
};

}  // namespace flotilla::live
