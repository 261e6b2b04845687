#include "sim/engine/event_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::sim {
namespace {

struct Before {
  bool operator()(const QueueEntry& a, const QueueEntry& b) const { return entry_before(a, b); }
};

class EventQueueTest : public ::testing::TestWithParam<QueueKind> {
 protected:
  std::unique_ptr<EventQueue> q_ = make_event_queue(GetParam());
};

TEST_P(EventQueueTest, PopsByTimeThenKey) {
  q_->push({5, 1});
  q_->push({3, 9});
  q_->push({5, 0});
  q_->push({3, 2});
  q_->push({-1, 7});
  std::vector<QueueEntry> out;
  while (!q_->empty()) {
    out.push_back(q_->top());
    q_->pop();
  }
  EXPECT_EQ(out, (std::vector<QueueEntry>{{-1, 7}, {3, 2}, {3, 9}, {5, 0}, {5, 1}}));
}

// Random interleavings of push/pop/replace_top/remove_if against a std::set.
TEST_P(EventQueueTest, MatchesAReferenceUnderRandomOperations) {
  Xoshiro256StarStar rng = SimRandom(11).make_stream("queue-test");
  std::set<QueueEntry, Before> ref;
  uint64_t key = 0;
  int64_t clock = 0;
  for (int round = 0; round < 200000; ++round) {
    uint64_t op = rng.next_below(100);
    if (op < 55 || ref.empty()) {
      // Few distinct times so ties are frequent.
      QueueEntry e{clock + static_cast<int64_t>(rng.next_below(20)), key++};
      q_->push(e);
      ref.insert(e);
    } else if (op < 90) {
      ASSERT_EQ(q_->top(), *ref.begin()) << "round " << round;
      clock = q_->top().time;
      q_->pop();
      ref.erase(ref.begin());
    } else if (op < 99) {
      ASSERT_EQ(q_->top(), *ref.begin());
      QueueEntry e{clock + static_cast<int64_t>(rng.next_below(20)), key++};
      q_->replace_top(e);
      ref.erase(ref.begin());
      ref.insert(e);
    } else {
      uint64_t mod = 2 + rng.next_below(5);
      q_->remove_if([mod](const QueueEntry& e) { return e.key % mod == 0; });
      std::erase_if(ref, [mod](const QueueEntry& e) { return e.key % mod == 0; });
    }
    ASSERT_EQ(q_->size(), ref.size());
  }
  while (!ref.empty()) {
    ASSERT_EQ(q_->top(), *ref.begin());
    q_->pop();
    ref.erase(ref.begin());
  }
  EXPECT_TRUE(q_->empty());
}

// The hold model with many pending entries, spread-out times, one entry at the
// far end of time and negative times: every pop is the least entry.
TEST_P(EventQueueTest, HoldsManyEntriesWithWideAndSkewedTimes) {
  Xoshiro256StarStar rng = SimRandom(3).make_stream("hold-test");
  std::set<QueueEntry, Before> ref;
  uint64_t key = 0;
  auto add = [&](int64_t t) {
    QueueEntry e{t, key++};
    q_->push(e);
    ref.insert(e);
  };
  add(INT64_MAX);
  add(-5000);
  for (int i = 0; i < 20000; ++i) add(static_cast<int64_t>(rng.next_below(1000000)) - 1000);
  for (int round = 0; round < 200000; ++round) {
    ASSERT_EQ(q_->top(), *ref.begin()) << "round " << round;
    QueueEntry top = q_->top();
    ref.erase(ref.begin());
    if (top.time == INT64_MAX) {
      q_->pop();
      continue;
    }
    // Mostly short increments, some long ones, some ties.
    uint64_t kind = rng.next_below(10);
    int64_t inc = kind == 0   ? 0
                  : kind == 1 ? static_cast<int64_t>(rng.next_below(50000000))
                              : static_cast<int64_t>(rng.next_below(100000));
    QueueEntry e{top.time + inc, key++};
    q_->replace_top(e);
    ref.insert(e);
    ASSERT_EQ(q_->size(), ref.size());
  }
  while (!ref.empty()) {
    ASSERT_EQ(q_->top(), *ref.begin());
    q_->pop();
    ref.erase(ref.begin());
  }
  EXPECT_TRUE(q_->empty());
}

TEST_P(EventQueueTest, UsesAtMostAboutSixteenBytesPerEntryOnceFull) {
  for (uint64_t i = 0; i < 100000; ++i) q_->push({static_cast<int64_t>(i * 7919 % 1000), i});
  EXPECT_LE(q_->memory_bytes(), 100000u * 16u * 2u);  // doubling growth at worst
  q_->clear();
  EXPECT_TRUE(q_->empty());
}

INSTANTIATE_TEST_SUITE_P(Queues, EventQueueTest,
                         ::testing::Values(QueueKind::kBinaryHeap, QueueKind::kQuaternaryHeap,
                                           QueueKind::kOctonaryHeap, QueueKind::kLadder),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case QueueKind::kBinaryHeap:
                               return std::string("Binary");
                             case QueueKind::kQuaternaryHeap:
                               return std::string("Quaternary");
                             case QueueKind::kOctonaryHeap:
                               return std::string("Octonary");
                             case QueueKind::kLadder:
                               return std::string("Ladder");
                           }
                           return std::string("Unknown");
                         });

// A small randomized world: events at random delays schedule more events and
// cancel random timers. Returns the order in which event ids ran.
std::vector<int> run_world(uint64_t seed, QueueKind kind) {
  Simulator sim(SimulatorOptions{.queue = kind});
  SimRandom random(seed);
  auto rng = random.stream("world");
  std::vector<int> order;
  std::vector<TimerHandle> timers;
  int next_id = 0;
  std::function<void(int)> fire = [&](int id) {
    order.push_back(id);
    if (next_id >= 3000) return;
    for (int k = 0; k < 2; ++k) {
      int child = next_id++;
      // Coarse delays so many events tie on time.
      Duration d = std::chrono::milliseconds(rng->next_below(5));
      if (rng->next_below(2) == 0) {
        sim.schedule_after(d, [&fire, child] { fire(child); });
      } else {
        timers.push_back(sim.run_after(d, [&fire, child] { fire(child); }));
      }
    }
    if (!timers.empty() && rng->next_below(4) == 0) {
      timers[rng->next_below(timers.size())].reset();
    }
  };
  sim.post([&] { fire(next_id++); });
  sim.run();
  return order;
}

TEST(DeterminismTest, SameSeedGivesTheSameEventOrder) {
  std::vector<int> a = run_world(5, QueueKind::kQuaternaryHeap);
  EXPECT_GT(a.size(), 1000u);
  EXPECT_EQ(a, run_world(5, QueueKind::kQuaternaryHeap));
  // The queue's mechanism does not change the order either.
  EXPECT_EQ(a, run_world(5, QueueKind::kBinaryHeap));
  EXPECT_NE(a, run_world(6, QueueKind::kQuaternaryHeap));
}

}  // namespace
}  // namespace flotilla::sim
