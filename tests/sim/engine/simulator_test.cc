#include "sim/engine/simulator.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/engine/random.h"

namespace flotilla::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class SimulatorTest : public ::testing::TestWithParam<QueueKind> {
 protected:
  Simulator sim_{SimulatorOptions{.queue = GetParam()}};
};

TEST_P(SimulatorTest, RunsEventsInTimeOrderAndAdvancesVirtualTime) {
  std::vector<std::pair<int, int64_t>> log;
  auto h3 = sim_.run_after(seconds(3), [&] { log.push_back({3, to_nanos(sim_.now())}); });
  auto h1 = sim_.run_after(seconds(1), [&] { log.push_back({1, to_nanos(sim_.now())}); });
  auto h2 = sim_.run_after(seconds(2), [&] { log.push_back({2, to_nanos(sim_.now())}); });
  EXPECT_EQ(sim_.pending_events(), 3u);
  EXPECT_EQ(sim_.run(), 3u);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0], (std::pair<int, int64_t>{1, 1'000'000'000}));
  EXPECT_EQ(log[1], (std::pair<int, int64_t>{2, 2'000'000'000}));
  EXPECT_EQ(log[2], (std::pair<int, int64_t>{3, 3'000'000'000}));
  EXPECT_EQ(sim_.now(), time_from_nanos(3'000'000'000));
  EXPECT_EQ(sim_.pending_events(), 0u);
  EXPECT_EQ(sim_.events_processed(), 3u);
}

TEST_P(SimulatorTest, TiesRunInInsertionOrderAcrossPostAndRunAfter) {
  std::string order;
  sim_.post([&] { order += 'a'; });
  auto h = sim_.run_after(Duration::zero(), [&] { order += 'b'; });
  sim_.post([&] { order += 'c'; });
  auto h2 = sim_.run_after(milliseconds(-5), [&] { order += 'd'; });  // negative = zero
  auto t1 = sim_.run_after(seconds(1), [&] { order += '1'; });
  auto t2 = sim_.run_after(seconds(1), [&] { order += '2'; });
  sim_.run();
  EXPECT_EQ(order, "abcd12");
}

TEST_P(SimulatorTest, PostFromCallbackRunsAfterEventsAlreadyDueNow) {
  std::string order;
  sim_.post([&] {
    order += 'a';
    sim_.post([&] { order += 'c'; });
  });
  sim_.post([&] { order += 'b'; });
  sim_.run();
  EXPECT_EQ(order, "abc");
  EXPECT_EQ(sim_.now(), kTimeZero);
}

TEST_P(SimulatorTest, DestroyingOrCancellingTheHandlePreventsTheCallback) {
  int fired = 0;
  auto keep = sim_.run_after(seconds(1), [&] { fired += 1; });
  auto cancelled = sim_.run_after(seconds(1), [&] { fired += 10; });
  {
    auto dropped = sim_.run_after(seconds(1), [&] { fired += 100; });
  }
  EXPECT_TRUE(cancelled->pending());
  cancelled->cancel();
  cancelled->cancel();  // idempotent
  EXPECT_FALSE(cancelled->pending());
  EXPECT_EQ(sim_.pending_events(), 1u);
  sim_.run();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(keep->pending());
  keep->cancel();  // after firing: a no-op
  EXPECT_EQ(sim_.events_processed(), 1u);
}

TEST_P(SimulatorTest, CancelReleasesCapturedStateImmediately) {
  auto token = std::make_shared<int>(7);
  std::weak_ptr<int> weak = token;
  auto h = sim_.run_after(hours(1000), [token] { (void)*token; });
  token.reset();
  EXPECT_FALSE(weak.expired());
  h.reset();
  EXPECT_TRUE(weak.expired());
}

TEST_P(SimulatorTest, ManyCancelledTimersDoNotAccumulateInTheQueue) {
  // The timeout pattern: arm a long timer, cancel it, repeat.
  for (int i = 0; i < 100000; ++i) {
    auto h = sim_.run_after(hours(1), [] {});
  }
  EXPECT_EQ(sim_.pending_events(), 0u);
  EXPECT_LE(sim_.queue().size(), 4096u);
  EXPECT_EQ(sim_.run(), 0u);
}

TEST_P(SimulatorTest, PendingIsFalseWhileTheCallbackRuns) {
  TimerHandle h;
  bool pending_inside = true;
  h = sim_.run_after(seconds(1), [&] { pending_inside = h->pending(); });
  sim_.run();
  EXPECT_FALSE(pending_inside);
}

TEST_P(SimulatorTest, CallbackCanCancelALaterTimer) {
  int fired = 0;
  TimerHandle later = sim_.run_after(seconds(2), [&] { ++fired; });
  auto first = sim_.run_after(seconds(1), [&] { later->cancel(); });
  sim_.run();
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(sim_.now(), time_from_nanos(1'000'000'000));
}

TEST_P(SimulatorTest, RunUntilRunsDueEventsAndLeavesClockAtTarget) {
  std::vector<int> fired;
  auto a = sim_.run_after(seconds(1), [&] { fired.push_back(1); });
  auto b = sim_.run_after(seconds(5), [&] { fired.push_back(5); });
  auto c = sim_.run_after(seconds(10), [&] { fired.push_back(10); });
  EXPECT_EQ(sim_.run_until(time_from_nanos(5'000'000'000)), 2u);  // inclusive
  EXPECT_EQ(fired, (std::vector<int>{1, 5}));
  EXPECT_EQ(sim_.now(), time_from_nanos(5'000'000'000));
  EXPECT_EQ(sim_.run_for(seconds(2)), 0u);
  EXPECT_EQ(sim_.now(), time_from_nanos(7'000'000'000));
  EXPECT_EQ(sim_.pending_events(), 1u);
  // A target in the past does not move the clock back.
  sim_.run_until(time_from_nanos(1));
  EXPECT_EQ(sim_.now(), time_from_nanos(7'000'000'000));
  sim_.run();
  EXPECT_EQ(fired, (std::vector<int>{1, 5, 10}));
}

TEST_P(SimulatorTest, StopFromInsideACallbackEndsTheRun) {
  int count = 0;
  std::function<void()> tick = [&] {
    ++count;
    if (count == 3) sim_.stop();
    sim_.schedule_after(seconds(1), tick);
  };
  sim_.post(tick);
  EXPECT_EQ(sim_.run(), 3u);
  EXPECT_EQ(count, 3);
  EXPECT_EQ(sim_.now(), time_from_nanos(2'000'000'000));
  EXPECT_EQ(sim_.pending_events(), 1u);
  // The next run starts afresh.
  EXPECT_EQ(sim_.run_for(seconds(2)), 2u);
  EXPECT_EQ(count, 5);
}

TEST_P(SimulatorTest, StopPredicateIsCheckedAfterEveryEvent) {
  int count = 0;
  std::function<void()> tick = [&] {
    ++count;
    sim_.schedule_after(milliseconds(10), tick);
  };
  sim_.post(tick);
  sim_.set_stop_predicate([&] { return count >= 50; });
  sim_.run();
  EXPECT_EQ(count, 50);
  EXPECT_EQ(sim_.now(), time_from_nanos(490'000'000));
}

TEST_P(SimulatorTest, StepRunsOneEventAtATime) {
  std::string order;
  auto a = sim_.run_after(seconds(2), [&] { order += 'b'; });
  sim_.post([&] { order += 'a'; });
  auto dead = sim_.run_after(seconds(1), [&] { order += 'x'; });
  dead.reset();
  EXPECT_TRUE(sim_.step());
  EXPECT_EQ(order, "a");
  EXPECT_EQ(sim_.next_event_time(), time_from_nanos(2'000'000'000));
  EXPECT_TRUE(sim_.step());
  EXPECT_EQ(order, "ab");
  EXPECT_FALSE(sim_.step());
}

TEST_P(SimulatorTest, HandleOutlivingTheSimulatorIsHarmless) {
  TimerHandle h;
  {
    Simulator local(SimulatorOptions{.queue = GetParam()});
    h = local.run_after(seconds(1), [] {});
    EXPECT_TRUE(h->pending());
  }
  EXPECT_FALSE(h->pending());
  h->cancel();
  h.reset();
}

TEST_P(SimulatorTest, TwoSimulatorsAreIndependent) {
  Simulator other(SimulatorOptions{.queue = GetParam()});
  int a = 0, b = 0;
  auto ha = sim_.run_after(seconds(1), [&] { ++a; });
  auto hb = other.run_after(seconds(5), [&] { ++b; });
  sim_.run();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 0);
  EXPECT_EQ(other.now(), kTimeZero);
  EXPECT_EQ(other.pending_events(), 1u);
  other.run();
  EXPECT_EQ(b, 1);
  EXPECT_EQ(sim_.now(), time_from_nanos(1'000'000'000));
}

TEST_P(SimulatorTest, FarFutureTimersSaturateInsteadOfOverflowing) {
  sim_.run_until(time_from_nanos(1'000));
  bool fired = false;
  auto h = sim_.run_after(Duration::max(), [&] { fired = true; });
  EXPECT_EQ(sim_.next_event_time(), kTimeMax);
  sim_.run();
  EXPECT_TRUE(fired);
  EXPECT_EQ(sim_.now(), kTimeMax);
}

TEST_P(SimulatorTest, RenumberingSequencesKeepsFifoOrder) {
  Simulator small(SimulatorOptions{.queue = GetParam(), .sequence_limit = 8});
  std::vector<int> order;
  std::vector<TimerHandle> handles;
  for (int i = 0; i < 40; ++i) {
    handles.push_back(small.run_after(seconds(i % 3), [&order, i] { order.push_back(i); }));
  }
  small.run();
  std::vector<int> expected;
  for (int r = 0; r < 3; ++r) {
    for (int i = r; i < 40; i += 3) expected.push_back(i);
  }
  EXPECT_EQ(order, expected);
}

// Callbacks that schedule, cancel (forcing bulk purges), read the queue, step
// the simulator re-entrantly and cross sequence renumberings: every event runs
// exactly once, in strictly increasing (time, scheduling order).
TEST_P(SimulatorTest, EventsRunInTimeThenSchedulingOrderWhateverCallbacksDo) {
  Simulator sim(SimulatorOptions{.queue = GetParam(), .sequence_limit = 4096});
  SimRandom random(17);
  auto rng = random.stream("callbacks");
  struct Ran {
    int64_t time;
    uint64_t order;
  };
  std::vector<Ran> ran;
  std::vector<TimerHandle> timers;
  uint64_t scheduled = 0;
  uint64_t cancelled = 0;
  std::function<void(uint64_t)> fire;
  auto add = [&](Duration d) {
    uint64_t order = scheduled++;
    if (rng->next_below(3) == 0) {
      timers.push_back(sim.run_after(d, [&fire, order] { fire(order); }));
    } else {
      sim.schedule_after(d, [&fire, order] { fire(order); });
    }
  };
  fire = [&](uint64_t order) {
    ran.push_back({to_nanos(sim.now()), order});
    if (scheduled >= 40000) return;
    uint64_t action = rng->next_below(10);
    if (action == 0) {
      EXPECT_GE(sim.next_event_time(), sim.now());
    } else if (action == 1) {
      EXPECT_GE(sim.queue().size(), sim.pending_events());
    } else if (action == 2 && ran.size() % 7 == 0) {
      sim.step();  // re-entrant: runs the next event from inside this one
    } else if (action == 3) {
      for (int k = 0; k < 300 && !timers.empty(); ++k) {
        if (timers.back()->pending()) ++cancelled;
        timers.pop_back();
      }
    }
    uint64_t children = 1 + rng->next_below(2);
    for (uint64_t k = 0; k < children; ++k) add(Duration(rng->next_below(4) * 1000));
  };
  for (int i = 0; i < 2000; ++i) add(Duration(rng->next_below(4) * 1000));
  sim.run();
  ASSERT_EQ(ran.size() + cancelled, scheduled);
  EXPECT_GE(scheduled, 40000u);
  EXPECT_GT(ran.size(), 20000u);
  for (size_t i = 1; i < ran.size(); ++i) {
    bool increasing = ran[i - 1].time < ran[i].time ||
                      (ran[i - 1].time == ran[i].time && ran[i - 1].order < ran[i].order);
    ASSERT_TRUE(increasing) << "event " << i;
  }
}

// A repeating timer runs each period, its next run queued after whatever
// its callback scheduled: the same order as a callback re-arming a one-shot
// timer last (the port's default, detail::run_every_by_rearming).
TEST_P(SimulatorTest, RunEveryRunsInTheOrderOfATimerReArmedLast) {
  auto script = [](Simulator& sim, bool repeating) {
    std::vector<std::string> log;
    auto note = [&log, &sim](const std::string& what) {
      log.push_back(what + "@" + std::to_string(to_nanos(sim.now()) / 1'000'000));
    };
    std::vector<TimerHandle> keep;
    int beats = 0;
    auto beat = [&] {
      note("beat");
      ++beats;
      // Due at the same instant as the next beat: runs before it.
      sim.schedule_after(milliseconds(250), [&note] { note("after"); });
      sim.post([&note] { note("posted"); });
    };
    TimerHandle t = repeating ? sim.run_every(milliseconds(250), beat)
                              : detail::run_every_by_rearming(sim, milliseconds(250), beat);
    // Another timer at the beats' instants, armed after the first beat.
    keep.push_back(sim.run_after(milliseconds(500), [&note] { note("other"); }));
    sim.run_until(time_from_nanos(1'000'000'000));
    EXPECT_EQ(beats, 4);
    EXPECT_TRUE(t->pending()) << "a repeating timer stays pending";
    return log;
  };
  Simulator a(SimulatorOptions{.queue = GetParam()});
  Simulator b(SimulatorOptions{.queue = GetParam()});
  std::vector<std::string> repeating = script(a, true);
  std::vector<std::string> rearmed = script(b, false);
  EXPECT_EQ(repeating, rearmed);
  ASSERT_GE(repeating.size(), 6u);
  EXPECT_EQ(repeating[0], "beat@250");
  EXPECT_EQ(repeating[1], "posted@250");
  EXPECT_EQ(repeating[2], "other@500");
  EXPECT_EQ(repeating[3], "after@500") << "scheduled by the first beat, before the second";
  EXPECT_EQ(repeating[4], "beat@500");
  EXPECT_EQ(a.events_processed(), b.events_processed());
  // The beats' handles are gone (cancelled): the last beat's event is left.
  EXPECT_EQ(a.pending_events(), 1u);
  EXPECT_EQ(b.pending_events(), 1u);
}

TEST_P(SimulatorTest, RunEveryStopsWhenCancelledOutsideOrFromItsOwnCallback) {
  auto token = std::make_shared<int>(7);
  std::weak_ptr<int> weak = token;
  int outside = 0;
  TimerHandle a = sim_.run_every(seconds(1), [&outside, token] { ++outside; });
  token.reset();
  int inside = 0;
  bool pending_inside = false;
  TimerHandle b;
  b = sim_.run_every(seconds(1), [&] {
    pending_inside = b->pending();
    if (++inside == 3) b.reset();  // the handle destroyed from its own callback
  });
  int cancels = 0;
  TimerHandle c;
  c = sim_.run_every(seconds(2), [&] {
    ++cancels;
    c->cancel();
    EXPECT_FALSE(c->pending());
  });
  sim_.run_until(time_from_nanos(2'500'000'000));
  EXPECT_EQ(outside, 2);
  ASSERT_TRUE(a->pending());
  a->cancel();
  EXPECT_FALSE(a->pending());
  EXPECT_TRUE(weak.expired()) << "cancelling releases the captured state at once";
  sim_.run_until(time_from_nanos(10'000'000'000));
  EXPECT_EQ(outside, 2);
  EXPECT_EQ(inside, 3);
  EXPECT_TRUE(pending_inside);
  EXPECT_EQ(cancels, 1);
  EXPECT_FALSE(c->pending());
  EXPECT_EQ(sim_.pending_events(), 0u);
  EXPECT_EQ(sim_.run(), 0u);
  // The freed slots serve new timers.
  int later = 0;
  auto d = sim_.run_after(seconds(1), [&] { ++later; });
  sim_.run();
  EXPECT_EQ(later, 1);
}

TEST_P(SimulatorTest, RunEveryKeepsItsPlaceAcrossSequenceRenumbering) {
  Simulator small(SimulatorOptions{.queue = GetParam(), .sequence_limit = 8});
  std::string order;
  TimerHandle t = small.run_every(seconds(1), [&] {
    order += 'r';
    small.schedule_after(seconds(1), [&] { order += 'o'; });
  });
  small.run_until(time_from_nanos(20'000'000'000));
  std::string expected = "r";
  for (int i = 1; i < 20; ++i) expected += "or";
  EXPECT_EQ(order, expected);
}

INSTANTIATE_TEST_SUITE_P(Queues, SimulatorTest,
                         ::testing::Values(QueueKind::kBinaryHeap, QueueKind::kQuaternaryHeap,
                                           QueueKind::kLadder),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case QueueKind::kBinaryHeap:
                               return std::string("Binary");
                             case QueueKind::kQuaternaryHeap:
                               return std::string("Quaternary");
                             case QueueKind::kLadder:
                               return std::string("Ladder");
                             default:
                               return std::string("Other");
                           }
                         });

}  // namespace
}  // namespace flotilla::sim
