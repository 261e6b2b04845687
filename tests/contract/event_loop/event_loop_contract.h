// The EventLoop port's contract as a typed GoogleTest suite. Every
// implementation (sim::Simulator in virtual time, the live Boost.Asio loop in
// real time) instantiates it with one line over a factory that returns an
// EventLoopHarness: the loop plus a generic way to drive it. Durations are
// small so a real-time loop passes in well under a second.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/ports/event_loop.h"

namespace flotilla::contract {

// Drives one loop. In virtual time every call returns at once.
class EventLoopHarness {
 public:
  virtual ~EventLoopHarness() = default;
  virtual EventLoop& loop() = 0;
  // Runs callbacks until none is pending (waiting for timers as needed).
  virtual void run_until_idle() = 0;
  // Lets `d` of the loop's time pass, running every callback due meanwhile.
  virtual void advance(Duration d) = 0;
  // True when time moves only between events, so timers fire exactly on time
  // and the suite can assert equalities instead of lower bounds.
  virtual bool virtual_time() const = 0;
};

// Factory: a type with `static std::unique_ptr<EventLoopHarness> make();`.
template <typename Factory>
class EventLoopContractTest : public ::testing::Test {
 protected:
  EventLoopContractTest() : harness_(Factory::make()) {}
  EventLoop& loop() { return harness_->loop(); }
  EventLoopHarness& harness() { return *harness_; }
  // `seen[i]` was the run due at start + (i + 1) * period: exactly then in
  // virtual time, never earlier in real time.
  void expect_every(const std::vector<TimePoint>& seen, TimePoint start, Duration period) {
    for (size_t i = 0; i < seen.size(); ++i) {
      const TimePoint due = start + period * static_cast<int>(i + 1);
      if (harness_->virtual_time()) {
        EXPECT_EQ(seen[i], due) << "run " << i;
      } else {
        EXPECT_GE(seen[i], due) << "run " << i;
      }
    }
  }
  std::unique_ptr<EventLoopHarness> harness_;
};

TYPED_TEST_SUITE_P(EventLoopContractTest);

using std::chrono::milliseconds;

TYPED_TEST_P(EventLoopContractTest, TimersFireInOrderOfTheirTime) {
  std::string order;
  auto c = this->loop().run_after(milliseconds(30), [&] { order += 'c'; });
  auto a = this->loop().run_after(milliseconds(10), [&] { order += 'a'; });
  auto b = this->loop().run_after(milliseconds(20), [&] { order += 'b'; });
  this->harness().run_until_idle();
  EXPECT_EQ(order, "abc");
}

TYPED_TEST_P(EventLoopContractTest, PostedCallbacksRunInFifoOrder) {
  std::string order;
  for (char c = 'a'; c <= 'j'; ++c) this->loop().post([&order, c] { order += c; });
  EXPECT_EQ(order, "");  // never re-entrantly from inside post()
  this->harness().run_until_idle();
  EXPECT_EQ(order, "abcdefghij");
}

TYPED_TEST_P(EventLoopContractTest, PostAndZeroDelayTimersShareOneFifo) {
  std::string order;
  this->loop().post([&] { order += 'a'; });
  auto b = this->loop().run_after(Duration::zero(), [&] { order += 'b'; });
  this->loop().post([&] { order += 'c'; });
  auto d = this->loop().run_after(milliseconds(-5), [&] { order += 'd'; });  // counts as zero
  this->loop().post([&] { order += 'e'; });
  this->harness().run_until_idle();
  EXPECT_EQ(order, "abcde");
}

TYPED_TEST_P(EventLoopContractTest, TimersForTheSameInstantRunInScheduleOrder) {
  std::string order;
  // Scheduled from one callback so every timer has the same now() + d.
  std::vector<TimerHandle> handles;
  this->loop().post([&] {
    for (char c = 'a'; c <= 'f'; ++c) {
      handles.push_back(this->loop().run_after(milliseconds(10), [&order, c] { order += c; }));
    }
  });
  this->harness().run_until_idle();
  EXPECT_EQ(order, "abcdef");
}

TYPED_TEST_P(EventLoopContractTest, DestroyingTheHandleCancels) {
  int fired = 0;
  auto kept = this->loop().run_after(milliseconds(10), [&] { fired += 1; });
  { auto dropped = this->loop().run_after(milliseconds(5), [&] { fired += 100; }); }
  this->harness().run_until_idle();
  EXPECT_EQ(fired, 1);
}

TYPED_TEST_P(EventLoopContractTest, CancelPreventsTheCallbackAndIsIdempotent) {
  int fired = 0;
  auto t = this->loop().run_after(milliseconds(5), [&] { ++fired; });
  EXPECT_TRUE(t->pending());
  t->cancel();
  EXPECT_FALSE(t->pending());
  t->cancel();
  this->harness().run_until_idle();
  EXPECT_EQ(fired, 0);
}

TYPED_TEST_P(EventLoopContractTest, CancelAfterFiringIsANoOp) {
  int fired = 0;
  auto t = this->loop().run_after(milliseconds(1), [&] { ++fired; });
  this->harness().run_until_idle();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t->pending());
  t->cancel();
  t.reset();
  this->harness().run_until_idle();
  EXPECT_EQ(fired, 1);
}

TYPED_TEST_P(EventLoopContractTest, PendingTurnsFalseWhenTheCallbackStarts) {
  TimerHandle t;
  bool pending_inside = true;
  t = this->loop().run_after(milliseconds(1), [&] { pending_inside = t->pending(); });
  EXPECT_TRUE(t->pending());
  this->harness().run_until_idle();
  EXPECT_FALSE(pending_inside);
}

TYPED_TEST_P(EventLoopContractTest, ACallbackCanCancelAnotherTimer) {
  int fired = 0;
  TimerHandle later = this->loop().run_after(milliseconds(20), [&] { ++fired; });
  auto first = this->loop().run_after(milliseconds(5), [&] { later->cancel(); });
  this->harness().run_until_idle();
  EXPECT_EQ(fired, 0);
}

TYPED_TEST_P(EventLoopContractTest, CallbacksScheduleCallbacks) {
  EventLoop& loop = this->loop();
  const TimePoint start = loop.now();
  std::vector<TimePoint> seen;
  TimerHandle next;
  std::function<void()> tick = [&] {
    seen.push_back(loop.now());
    if (seen.size() < 5) next = loop.run_after(milliseconds(4), tick);
  };
  next = loop.run_after(milliseconds(4), tick);
  this->harness().run_until_idle();
  ASSERT_EQ(seen.size(), 5u);
  this->expect_every(seen, start, milliseconds(4));
}

TYPED_TEST_P(EventLoopContractTest, PostFromACallbackRunsAfterItReturns) {
  std::string order;
  this->loop().post([&] {
    this->loop().post([&] { order += 'c'; });
    order += 'a';
  });
  this->loop().post([&] { order += 'b'; });
  this->harness().run_until_idle();
  EXPECT_EQ(order, "abc");
}

TYPED_TEST_P(EventLoopContractTest, NowNeverDecreasesAndTimersAreNeverEarly) {
  EventLoop& loop = this->loop();
  const TimePoint start = loop.now();
  std::vector<std::pair<TimePoint, TimePoint>> due_and_seen;  // (due, now() inside)
  std::vector<TimerHandle> handles;
  for (int ms : {7, 3, 3, 12, 0, 5, 9, 1}) {
    TimePoint due = start + milliseconds(ms);
    handles.push_back(loop.run_after(milliseconds(ms), [&loop, &due_and_seen, due] {
      due_and_seen.push_back({due, loop.now()});
    }));
  }
  this->harness().run_until_idle();
  ASSERT_EQ(due_and_seen.size(), 8u);
  for (size_t i = 0; i < due_and_seen.size(); ++i) {
    EXPECT_GE(due_and_seen[i].second, due_and_seen[i].first);
    if (this->harness().virtual_time()) {
      EXPECT_EQ(due_and_seen[i].second, due_and_seen[i].first);
    }
    if (i > 0) {
      EXPECT_GE(due_and_seen[i].second, due_and_seen[i - 1].second);
      EXPECT_GE(due_and_seen[i].first, due_and_seen[i - 1].first);  // fired in due order
    }
  }
}

TYPED_TEST_P(EventLoopContractTest, AdvanceRunsOnlyWhatIsDue) {
  EventLoop& loop = this->loop();
  const TimePoint start = loop.now();
  std::string order;
  auto early = loop.run_after(milliseconds(5), [&] { order += 'e'; });
  auto late = loop.run_after(milliseconds(200), [&] { order += 'l'; });
  this->harness().advance(milliseconds(50));
  EXPECT_EQ(order, "e");
  EXPECT_TRUE(late->pending());
  EXPECT_FALSE(early->pending());
  EXPECT_GE(loop.now(), start + milliseconds(50));
  if (this->harness().virtual_time()) {
    EXPECT_EQ(loop.now(), start + milliseconds(50));
  }
  late.reset();
  this->harness().run_until_idle();
  EXPECT_EQ(order, "e");
}

TYPED_TEST_P(EventLoopContractTest, RunAtInThePastRunsAtOnceInOrder) {
  EventLoop& loop = this->loop();
  this->harness().advance(milliseconds(10));
  std::string order;
  loop.post([&] { order += 'a'; });
  auto past = loop.run_at(loop.now() - milliseconds(5), [&] { order += 'b'; });
  auto future = loop.run_at(loop.now() + milliseconds(5), [&] { order += 'c'; });
  this->harness().run_until_idle();
  EXPECT_EQ(order, "abc");
}

// run_every: each run no earlier than its period after the last one's due
// time, pending until cancelled, ended by a cancel from inside its callback.
TYPED_TEST_P(EventLoopContractTest, RunEveryRepeatsUntilItsHandleGoesEvenFromInside) {
  EventLoop& loop = this->loop();
  const TimePoint start = loop.now();
  std::vector<TimePoint> seen;
  bool pending_inside = false;
  std::string order;
  TimerHandle every;
  every = loop.run_every(milliseconds(4), [&] {
    seen.push_back(loop.now());
    pending_inside = every->pending();
    order += 'r';
    loop.post([&] { order += 'p'; });  // runs before the next run
    if (seen.size() == 5) every.reset();
  });
  EXPECT_TRUE(every->pending());
  this->harness().run_until_idle();  // returns once nothing is left armed
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_TRUE(pending_inside);
  EXPECT_EQ(order, "rprprprprp");
  this->expect_every(seen, start, milliseconds(4));
}

TYPED_TEST_P(EventLoopContractTest, RunEveryStopsWhenCancelledBetweenRuns) {
  EventLoop& loop = this->loop();
  int runs = 0;
  TimerHandle every = loop.run_every(milliseconds(3), [&] { ++runs; });
  TimerHandle stop = loop.run_after(milliseconds(10), [&] {
    EXPECT_TRUE(every->pending());
    every->cancel();
    EXPECT_FALSE(every->pending());
  });
  this->harness().run_until_idle();
  EXPECT_GE(runs, 1);
  EXPECT_LE(runs, 3);
  if (this->harness().virtual_time()) {
    EXPECT_EQ(runs, 3);
  }
  EXPECT_FALSE(every->pending());
}

REGISTER_TYPED_TEST_SUITE_P(EventLoopContractTest, TimersFireInOrderOfTheirTime,
                            PostedCallbacksRunInFifoOrder, PostAndZeroDelayTimersShareOneFifo,
                            TimersForTheSameInstantRunInScheduleOrder, DestroyingTheHandleCancels,
                            CancelPreventsTheCallbackAndIsIdempotent, CancelAfterFiringIsANoOp,
                            PendingTurnsFalseWhenTheCallbackStarts, ACallbackCanCancelAnotherTimer,
                            CallbacksScheduleCallbacks, PostFromACallbackRunsAfterItReturns,
                            NowNeverDecreasesAndTimersAreNeverEarly, AdvanceRunsOnlyWhatIsDue,
                            RunAtInThePastRunsAtOnceInOrder,
                            RunEveryRepeatsUntilItsHandleGoesEvenFromInside,
                            RunEveryStopsWhenCancelledBetweenRuns);

}  // namespace flotilla::contract
