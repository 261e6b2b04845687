// The scheduling loop on sim::Simulator + InMemoryStore: pods get bound,
// Events and trace records are written, unschedulable pods back off and come
// back when the cluster changes.
#include "core/scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <map>

#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "tests/core/scheduler/test_cluster.h"

namespace flotilla::sched {
namespace {

using testing::make_node;
using testing::make_pod;
using testing::NodeSpec;
using testing::PodSpec;

class RecordingSink final : public TraceSink {
 public:
  void record(const trace::Record& r) override { records.push_back(r); }
  std::vector<trace::Record> records;
};

class SchedulerLoopTest : public ::testing::Test {
 protected:
  explicit SchedulerLoopTest() : random_(7), stream_(random_.stream("store")), store_(sim_, *stream_) {}

  void start(SchedulerOptions options = {}) {
    scheduler_ = std::make_unique<Scheduler>(store_, sim_, sink_, options);
    ASSERT_TRUE(scheduler_->start().is_ok());
  }
  void add_node(const NodeSpec& s) {
    api::Node n = *make_node(s);
    ASSERT_TRUE(store_.create(api::share(std::move(n))).is_ok());
  }
  void add_pod(const PodSpec& s) {
    api::Pod p = *make_pod(s);
    p.mutable_metadata()->clear_uid();
    ASSERT_TRUE(store_.create(api::share(std::move(p))).is_ok());
  }
  std::string node_of(const std::string& name) {
    StatusOr<api::Object> o = store_.get(api::Kind::kPod, "default", name);
    return o.is_ok() ? api::as<api::Pod>(*o)->spec().node_name() : "<missing>";
  }
  std::vector<std::pair<std::string, std::string>> events() {  // (reason, message)
    std::vector<std::pair<std::string, std::string>> out;
    StatusOr<ListResult> l = store_.list(api::Kind::kEvent, {});
    for (const api::Object& o : l->items) {
      auto e = api::as<api::Event>(o);
      out.push_back({e->reason(), e->message()});
    }
    return out;
  }
  const trace::Record* trace_of(trace::EventType type, const std::string& name) {
    for (const trace::Record& r : sink_.records) {
      if (r.type() == type && r.name() == name) return &r;
    }
    return nullptr;
  }

  sim::Simulator sim_;
  sim::SimRandom random_;
  std::unique_ptr<RandomStream> stream_;
  store::InMemoryStore store_;
  RecordingSink sink_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerLoopTest, BindsPodAndReportsEventAndTrace) {
  add_node({.name = "node-1"});
  add_node({.name = "node-2", .ready = false});
  start();
  sim_.run_for(milliseconds(10));
  add_pod({.name = "web-1", .cpu = "100m"});
  sim_.run_for(milliseconds(10));
  EXPECT_EQ(node_of("web-1"), "node-1");
  auto pod = api::as<api::Pod>(*store_.get(api::Kind::kPod, "default", "web-1"));
  ASSERT_EQ(pod->status().conditions_size(), 1);
  EXPECT_EQ(pod->status().conditions(0).type(), "PodScheduled");
  EXPECT_EQ(pod->status().conditions(0).status(), "True");
  EXPECT_EQ(events(), (std::vector<std::pair<std::string, std::string>>{
                          {"Scheduled", "Successfully assigned default/web-1 to node-1"}}));
  const trace::Record* r = trace_of(trace::POD_SCHEDULED, "web-1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->node(), "node-1");
  EXPECT_EQ(r->latency_ns(), 0);  // bound in the same instant it was created
  EXPECT_EQ(scheduler_->snapshot().find_node("node-1")->requested.milli_cpu, 100);
}

TEST_F(SchedulerLoopTest, PendingPodIsScheduledAfterANodeIsAdded) {
  start();
  add_pod({.name = "web-1", .cpu = "500m"});
  sim_.run_for(milliseconds(100));
  EXPECT_EQ(node_of("web-1"), "");
  auto ev = events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], (std::pair<std::string, std::string>{"FailedScheduling", "0/0 nodes are available."}));
  auto pod = api::as<api::Pod>(*store_.get(api::Kind::kPod, "default", "web-1"));
  EXPECT_EQ(pod->status().conditions(0).reason(), "Unschedulable");
  ASSERT_NE(trace_of(trace::POD_FAILED_SCHEDULING, "web-1"), nullptr);

  // The node comes at 100ms; the pod is still in its 1s backoff, so it is
  // retried when the backoff ends, not before.
  add_node({.name = "node-1"});
  sim_.run_for(milliseconds(800));
  EXPECT_EQ(node_of("web-1"), "");
  sim_.run_for(milliseconds(200));
  EXPECT_EQ(node_of("web-1"), "node-1");
  const trace::Record* r = trace_of(trace::POD_SCHEDULED, "web-1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->latency_ns(), to_nanos(seconds(1)));
}

TEST_F(SchedulerLoopTest, BackoffDoublesToTenSecondsWithoutClusterChanges) {
  add_node({.name = "small", .cpu = "1"});
  SchedulerOptions o;
  o.unschedulable_flush = seconds(1);  // retry without a cluster change
  start(o);
  add_pod({.name = "big", .cpu = "2"});
  sim_.run_for(seconds(60));
  std::vector<int64_t> attempts;
  for (const trace::Record& r : sink_.records) {
    if (r.type() == trace::POD_FAILED_SCHEDULING) attempts.push_back(r.time_ns() / 1'000'000'000);
  }
  // Retries at flush (1s) or end of backoff, whichever is later: 1, 2, 4, 8, 10, 10, ...
  ASSERT_GE(attempts.size(), 6u);
  EXPECT_EQ(std::vector<int64_t>(attempts.begin(), attempts.begin() + 6),
            (std::vector<int64_t>{0, 1, 3, 7, 15, 25}));
  EXPECT_EQ(sink_.records.front().message(), "0/1 nodes are available: 1 Insufficient cpu.");
}

TEST_F(SchedulerLoopTest, DeletedPodFreesCapacityForAPendingOne) {
  add_node({.name = "n", .cpu = "1"});
  start();
  add_pod({.name = "first", .cpu = "1"});
  sim_.run_for(milliseconds(1));
  add_pod({.name = "second", .cpu = "1"});
  sim_.run_for(seconds(2));
  EXPECT_EQ(node_of("first"), "n");
  EXPECT_EQ(node_of("second"), "");
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "first").is_ok());
  sim_.run_for(milliseconds(1));  // backoff (1s) has passed: retried at once
  EXPECT_EQ(node_of("second"), "n");
}

TEST_F(SchedulerLoopTest, IgnoresPodsForOtherSchedulers) {
  add_node({.name = "n"});
  start();
  api::Pod p = *make_pod({.name = "theirs"});
  p.mutable_spec()->set_scheduler_name("other-scheduler");
  p.mutable_metadata()->clear_uid();
  ASSERT_TRUE(store_.create(api::share(std::move(p))).is_ok());
  add_pod({.name = "mine"});
  sim_.run_for(seconds(1));
  EXPECT_EQ(node_of("theirs"), "");
  EXPECT_EQ(node_of("mine"), "n");
}

TEST_F(SchedulerLoopTest, FlowModeSchedulesABatchWithinFilters) {
  for (int i = 0; i < 9; ++i) {
    add_node({.name = "n" + std::to_string(i), .cpu = "2", .zone = "z" + std::to_string(i % 3)});
  }
  SchedulerOptions o;
  o.mode = PlacementMode::kFlow;
  start(o);
  sim_.run_for(milliseconds(1));
  for (int i = 0; i < 40; ++i) {
    add_pod({.name = "web-" + std::to_string(i), .cpu = "500m", .owner_uid = "rc"});
  }
  sim_.run_for(seconds(1));
  std::map<std::string, int> per_node;
  int bound = 0;
  for (int i = 0; i < 40; ++i) {
    std::string n = node_of("web-" + std::to_string(i));
    if (!n.empty()) {
      ++bound;
      ++per_node[n];
    }
  }
  EXPECT_EQ(bound, 36);  // 9 nodes x 4 pods of 500m
  for (const auto& [n, c] : per_node) EXPECT_EQ(c, 4) << n;
  EXPECT_EQ(scheduler_->pending(), 4u);
  EXPECT_EQ(testing::check_invariants(scheduler_->snapshot()), "");
}

}  // namespace
}  // namespace flotilla::sched
