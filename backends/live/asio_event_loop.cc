#include "backends/live/asio_event_loop.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <chrono>

namespace flotilla::live {
namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct AsioEventLoop::TimerState {
  enum class Phase { kPending, kCancelled, kStarted };
  Phase phase = Phase::kPending;
  std::function<void()> fn;
};

class AsioEventLoop::TimerImpl final : public Timer {
 public:
  TimerImpl(std::weak_ptr<Core> core, std::shared_ptr<TimerState> state, Key key)
      : core_(std::move(core)), state_(std::move(state)), key_(key) {}
  ~TimerImpl() override { cancel(); }

  void cancel() override {
    if (state_->phase != TimerState::Phase::kPending) return;
    state_->phase = TimerState::Phase::kCancelled;
    std::function<void()> drop;  // destroyed outside the lock
    drop.swap(state_->fn);
    if (auto core = core_.lock()) {
      std::lock_guard<std::mutex> lock(core->mu);
      core->queue.erase(key_);
    }
  }
  bool pending() const override { return state_->phase == TimerState::Phase::kPending; }

 private:
  std::weak_ptr<Core> core_;
  std::shared_ptr<TimerState> state_;
  Key key_;
};

AsioEventLoop::AsioEventLoop()
    : timer_(io_), offset_ns_(wall_ns() - steady_ns()), core_(std::make_shared<Core>()) {}

AsioEventLoop::~AsioEventLoop() {
  // Callbacks still queued are destroyed with the core; timers' handles then
  // find it gone.
  timer_.cancel();
}

TimePoint AsioEventLoop::now() const { return time_from_nanos(steady_ns() + offset_ns_); }

AsioEventLoop::Key AsioEventLoop::insert(int64_t due_ns, Entry e) {
  std::lock_guard<std::mutex> lock(core_->mu);
  Key key{due_ns, core_->next_seq++};
  core_->queue.emplace(key, std::move(e));
  return key;
}

void AsioEventLoop::post(std::function<void()> fn) {
  insert(to_nanos(now()), Entry{std::move(fn), nullptr});
  kick();
}

TimerHandle AsioEventLoop::run_after(Duration d, std::function<void()> fn) {
  if (d < Duration::zero()) d = Duration::zero();
  auto state = std::make_shared<TimerState>();
  state->fn = std::move(fn);
  const int64_t due = to_nanos(now() + d);
  Key key = insert(due, Entry{nullptr, state});
  if (d == Duration::zero()) {
    kick();
  } else {
    arm();
  }
  return std::make_unique<TimerImpl>(core_, std::move(state), key);
}

void AsioEventLoop::kick() {
  if (dispatch_posted_.exchange(true)) return;
  boost::asio::post(io_, [this] { dispatch(); });
}

void AsioEventLoop::dispatch() {
  dispatch_posted_.store(false);
  std::function<void()> fn;
  bool more_due = false;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    auto it = core_->queue.begin();
    if (it != core_->queue.end() && it->first.first <= to_nanos(now())) {
      Entry e = std::move(it->second);
      core_->queue.erase(it);
      if (e.timer) {
        // Entries of cancelled timers are erased by cancel(), so this one is live.
        e.timer->phase = TimerState::Phase::kStarted;
        fn = std::move(e.timer->fn);
        e.timer->fn = nullptr;
      } else {
        fn = std::move(e.fn);
      }
      auto next = core_->queue.begin();
      more_due = next != core_->queue.end() && next->first.first <= to_nanos(now());
    }
  }
  // Kick before running so a callback that stops the loop leaves the rest queued.
  if (more_due) kick();
  if (fn) fn();
  if (!more_due) arm();
}

void AsioEventLoop::arm() {
  int64_t head;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (core_->queue.empty()) {
      head = -1;
    } else {
      head = core_->queue.begin()->first.first;
    }
  }
  if (head < 0) {
    if (armed_ns_ >= 0) {
      timer_.cancel();
      armed_ns_ = -1;
    }
    return;
  }
  if (head <= to_nanos(now())) {
    kick();
    return;
  }
  if (armed_ns_ == head) return;
  armed_ns_ = head;
  timer_.expires_at(std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::nanoseconds(head - offset_ns_))));
  timer_.async_wait([this, head](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed or cancelled
    if (armed_ns_ == head) armed_ns_ = -1;
    dispatch();
  });
}

size_t AsioEventLoop::pending() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->queue.size();
}

bool AsioEventLoop::run_one(Duration max_wait) {
  if (io_.stopped()) io_.restart();
  auto guard = boost::asio::make_work_guard(io_);
  io_.run_one_for(std::chrono::duration_cast<std::chrono::steady_clock::duration>(max_wait));
  return true;
}

void AsioEventLoop::stop() {
  stop_requested_.store(true);
  boost::asio::post(io_, [] {});  // wakes a loop blocked waiting
}

void AsioEventLoop::run() {
  while (!stop_requested_.load()) run_one(std::chrono::hours(1));
  stop_requested_.store(false);
}

void AsioEventLoop::run_for(Duration d) {
  run_until([] { return false; }, d);
}

bool AsioEventLoop::run_until(const std::function<bool()>& done, Duration timeout) {
  const TimePoint deadline = now() + timeout;
  bool result = done();
  while (!result && !stop_requested_.load()) {
    const Duration left = deadline - now();
    if (left <= Duration::zero()) break;
    run_one(left);
    result = done();
  }
  stop_requested_.store(false);
  return result;
}

void AsioEventLoop::run_until_idle() {
  while (!stop_requested_.load() && pending() > 0) run_one(std::chrono::hours(1));
  stop_requested_.store(false);
}

}  // namespace flotilla::live
