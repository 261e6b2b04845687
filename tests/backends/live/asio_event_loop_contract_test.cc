// The EventLoop contract (tests/contract/event_loop) on live::AsioEventLoop, in
// real time, plus what only a real-time loop has: post() from other threads.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "backends/live/asio_event_loop.h"
#include "tests/contract/event_loop/event_loop_contract.h"

namespace flotilla::contract {
namespace {

class AsioHarness final : public EventLoopHarness {
 public:
  EventLoop& loop() override { return loop_; }
  void run_until_idle() override { loop_.run_until_idle(); }
  void advance(Duration d) override { loop_.run_for(d); }
  bool virtual_time() const override { return false; }

 private:
  live::AsioEventLoop loop_;
};

struct AsioFactory {
  static std::unique_ptr<EventLoopHarness> make() { return std::make_unique<AsioHarness>(); }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Asio, EventLoopContractTest, ::testing::Types<AsioFactory>);

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(AsioEventLoopTest, PostFromOtherThreadsRunsOnTheLoopThreadInPerThreadOrder) {
  live::AsioEventLoop loop;
  const std::thread::id loop_thread = std::this_thread::get_id();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::vector<int>> seen(kThreads);
  std::atomic<int> foreign_runs{0};
  int total = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop.post([&, t, i] {
          if (std::this_thread::get_id() != loop_thread) foreign_runs.fetch_add(1);
          seen[t].push_back(i);
          ++total;
        });
      }
    });
  }
  const bool all = loop.run_until([&] { return total == kThreads * kPerThread; }, seconds(10));
  for (auto& th : threads) th.join();
  ASSERT_TRUE(all) << "ran " << total;
  EXPECT_EQ(foreign_runs.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), static_cast<size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) EXPECT_EQ(seen[t][i], i);
  }
}

TEST(AsioEventLoopTest, CancelOfAnExpiredTimerWhoseTurnHasNotComeStillPreventsIt) {
  live::AsioEventLoop loop;
  int fired = 0;
  TimerHandle victim;
  // The first callback busy-waits past the victim's due time, so the victim is
  // expired and next in line when the first callback cancels it.
  loop.post([&] {
    victim = loop.run_after(milliseconds(1), [&] { ++fired; });
    const TimePoint until = loop.now() + milliseconds(5);
    while (loop.now() < until) {
    }
    EXPECT_TRUE(victim->pending());
    victim->cancel();
  });
  loop.run_until_idle();
  loop.run_for(milliseconds(10));
  EXPECT_EQ(fired, 0);
  EXPECT_FALSE(victim->pending());
}

TEST(AsioEventLoopTest, StopFromAnotherThreadEndsRun) {
  live::AsioEventLoop loop;
  std::atomic<int> ticks{0};
  TimerHandle t;
  std::function<void()> tick = [&] {
    ticks.fetch_add(1);
    t = loop.run_after(milliseconds(1), tick);
  };
  t = loop.run_after(milliseconds(1), tick);
  std::thread stopper([&] {
    while (ticks.load() < 3) std::this_thread::yield();  // the loop is running
    loop.stop();
  });
  loop.run();  // returns only because of stop()
  stopper.join();
  EXPECT_GE(ticks.load(), 3);
  t.reset();
  // The stop request was consumed: a later run_for runs normally.
  int after = 0;
  loop.post([&] { ++after; });
  loop.run_for(milliseconds(5));
  EXPECT_EQ(after, 1);
}

TEST(AsioEventLoopTest, NowFollowsTheWallClockAtStartAndNeverDecreases) {
  live::AsioEventLoop loop;
  const auto wall = std::chrono::system_clock::now().time_since_epoch();
  const TimePoint t0 = loop.now();
  EXPECT_LT(std::chrono::abs(t0.time_since_epoch() - wall), seconds(1));
  TimePoint prev = t0;
  for (int i = 0; i < 1000; ++i) {
    TimePoint t = loop.now();
    EXPECT_GE(t, prev);
    prev = t;
  }
}

TEST(AsioEventLoopTest, TimerHandleMayOutliveTheLoop) {
  TimerHandle t;
  {
    live::AsioEventLoop loop;
    t = loop.run_after(seconds(10), [] {});
  }
  EXPECT_TRUE(t->pending());
  t->cancel();
  EXPECT_FALSE(t->pending());
}

}  // namespace
}  // namespace flotilla::contract
