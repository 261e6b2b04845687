// WorkQueue: dedup, the dirty set, per-key backoff, delayed adds and bounded
// passes, on virtual time.
#include "core/controllers/work_queue.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "sim/engine/simulator.h"

namespace flotilla::ctrl {
namespace {

struct Call {
  std::string key;
  TimePoint at;
};

class WorkQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<WorkQueue> make(WorkQueue::ReconcileFn fn, int max_per_pass = 64) {
    WorkQueueOptions o;
    o.backoff_initial = milliseconds(5);
    o.backoff_max = milliseconds(40);
    o.max_per_pass = max_per_pass;
    return std::make_unique<WorkQueue>(sim_, "test", std::move(fn), o);
  }
  sim::Simulator sim_;
  std::vector<Call> calls_;
};

TEST_F(WorkQueueTest, DeduplicatesKeysWhileQueued) {
  auto q = make([&](const std::string& k) {
    calls_.push_back({k, sim_.now()});
    return ReconcileResult::ok();
  });
  q->add("a");
  q->add("b");
  q->add("a");
  EXPECT_EQ(q->queued(), 2u);
  sim_.run();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[0].key, "a");
  EXPECT_EQ(calls_[1].key, "b");
}

TEST_F(WorkQueueTest, BatchedAddsWithinAPeriodCostOneReconcile) {
  auto q = make([&](const std::string& k) {
    calls_.push_back({k, sim_.now()});
    return ReconcileResult::ok();
  });
  // Ten changes 100 ms apart, batched for 1 s: one reconcile 1 s after the
  // first change, one more for the changes after it, never ten.
  for (int i = 0; i < 10; ++i) {
    sim_.schedule_at(kTimeZero + milliseconds(100 * i),
                     [&] { q->add_batched("svc", seconds(1)); });
  }
  sim_.run();
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].at, kTimeZero + seconds(1));

  // A key already queued for now is not delayed by a batched add.
  calls_.clear();
  sim_.post([&] {
    q->add("now");
    q->add_batched("now", seconds(1));
  });
  sim_.run();
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].at, kTimeZero + seconds(1)) << "same instant as the post";

  // Period 0 is a plain add.
  calls_.clear();
  q->add_batched("zero", Duration(0));
  EXPECT_EQ(q->queued(), 1u);
  sim_.run();
  EXPECT_EQ(calls_.size(), 1u);
}

TEST_F(WorkQueueTest, KeyReaddedWhileProcessingRunsAgainAfterwards) {
  WorkQueue* qp = nullptr;
  int runs = 0;
  auto q = make([&](const std::string& k) {
    ++runs;
    if (runs == 1) {
      qp->add(k);  // re-added during its own reconcile: not processed concurrently
      qp->add(k);  // and only once more
      EXPECT_FALSE(qp->queued() > 0) << "a key being processed is not queued twice";
    }
    return ReconcileResult::ok();
  });
  qp = q.get();
  q->add("a");
  sim_.run();
  EXPECT_EQ(runs, 2);
}

TEST_F(WorkQueueTest, ErrorsBackOffExponentiallyPerKeyAndSuccessForgets) {
  int failures_left = 5;
  auto q = make([&](const std::string& k) {
    calls_.push_back({k, sim_.now()});
    if (k == "bad" && failures_left-- > 0) return ReconcileResult::error(internal_error("boom"));
    return ReconcileResult::ok();
  });
  q->add("bad");
  sim_.run();
  ASSERT_EQ(calls_.size(), 6u);
  std::vector<Duration> gaps;
  for (size_t i = 1; i < calls_.size(); ++i) gaps.push_back(calls_[i].at - calls_[i - 1].at);
  EXPECT_EQ(gaps, (std::vector<Duration>{milliseconds(5), milliseconds(10), milliseconds(20),
                                         milliseconds(40), milliseconds(40)}));
  EXPECT_EQ(q->failures("bad"), 0);  // forgotten after the success
}

TEST_F(WorkQueueTest, RequeueAfterWaitsExactlyThatLong) {
  bool first = true;
  auto q = make([&](const std::string& k) {
    calls_.push_back({k, sim_.now()});
    if (first) {
      first = false;
      return ReconcileResult::requeue_after(seconds(7));
    }
    return ReconcileResult::ok();
  });
  q->add("k");
  sim_.run();
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_EQ(calls_[1].at - calls_[0].at, seconds(7));
}

TEST_F(WorkQueueTest, AddAfterKeepsTheEarliestAndDedupsWithQueued) {
  auto q = make([&](const std::string& k) {
    calls_.push_back({k, sim_.now()});
    return ReconcileResult::ok();
  });
  q->add_after("k", seconds(10));
  q->add_after("k", seconds(3));
  q->add_after("k", seconds(20));
  EXPECT_EQ(q->waiting(), 1u);
  sim_.run();
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].at, kTimeZero + seconds(3));
}

TEST_F(WorkQueueTest, PassesAreBoundedAndOtherEventsInterleave) {
  std::vector<std::string> order;
  auto q = make(
      [&](const std::string& k) {
        order.push_back(k);
        return ReconcileResult::ok();
      },
      2);
  for (const char* k : {"a", "b", "c", "d", "e"}) q->add(k);
  sim_.post([&] { order.push_back("other"); });
  sim_.run();
  // The first pass takes two keys, then the other event gets its turn.
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "other", "c", "d", "e"}));
}

TEST_F(WorkQueueTest, DestroyedQueueRunsNothing) {
  auto q = make([&](const std::string& k) {
    calls_.push_back({k, sim_.now()});
    return ReconcileResult::ok();
  });
  q->add("a");
  q->add_after("b", seconds(1));
  q.reset();
  sim_.run();
  EXPECT_TRUE(calls_.empty());
}

}  // namespace
}  // namespace flotilla::ctrl
