// NodeLifecycleController with the ReplicationManager: missing heartbeats turn
// a node Unknown, its pods not ready, then evicted (rate-limited) and replaced;
// a node that comes back is Ready again without extra replicas.
#include "core/controllers/node_lifecycle.h"

#include <algorithm>
#include <map>

#include "core/controllers/replication.h"
#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

using testing::ControllerTest;

class NodeLifecycleTest : public ControllerTest {
 protected:
  void start() {
    nlc_ = std::make_unique<NodeLifecycleController>(context());
    rm_ = std::make_unique<ReplicationManager>(context());
    ASSERT_TRUE(nlc_->start().is_ok());
    ASSERT_TRUE(rm_->start().is_ok());
  }
  // Heartbeats `node` now and every `period` until stop_heartbeats().
  void keep_heartbeating(const std::string& node, Duration period) {
    int gen = ++generation_[node];
    beat(node, period, gen);
  }
  void beat(const std::string& node, Duration period, int gen) {
    if (generation_[node] != gen) return;
    heartbeat(node);
    sim_.schedule_after(period, [this, node, period, gen] { beat(node, period, gen); });
  }
  void stop_heartbeats(const std::string& node) { ++generation_[node]; }

  // An RC of `n` pods, all bound to `node`, running and ready.
  std::vector<std::string> run_rc_on(const std::string& node, int n) {
    create(make_rc("web", n));
    run_for(seconds(1));
    std::vector<std::string> names;
    int ip = 1;
    for (const auto& p : pods("web")) {
      names.push_back(p->metadata().name());
      set_pod_state(p->metadata().name(), node, "10.0.0." + std::to_string(ip++), true);
    }
    run_for(seconds(1));
    return names;
  }
  std::shared_ptr<const api::ReplicationController> rc() {
    return get<api::ReplicationController>("default", "web");
  }
  std::string node_ready(const std::string& node) {
    auto n = get<api::Node>("", node);
    const api::NodeCondition* c = api::find_condition(n->status(), "Ready");
    return c == nullptr ? "" : c->status();
  }

  std::map<std::string, int> generation_;
  std::unique_ptr<NodeLifecycleController> nlc_;
  std::unique_ptr<ReplicationManager> rm_;
};

TEST_F(NodeLifecycleTest, KubernetesProfileUnknownAt40sEvictedAt300sAndReplaced) {
  keep_heartbeating("n1", timing_.node_status_update_period);
  keep_heartbeating("n2", timing_.node_status_update_period);
  start();
  std::vector<std::string> victims = run_rc_on("n1", 3);
  run_for(seconds(18));  // t = 20 s: n1's last heartbeat
  stop_heartbeats("n1");
  const TimePoint last = sim_.now();

  sim_.run_until(last + seconds(39));
  EXPECT_EQ(node_ready("n1"), "True");
  EXPECT_TRUE(trace_.of(trace::NODE_NOT_READY).empty());
  sim_.run_until(last + seconds(46));  // grace 40 s, noticed on the next 5 s tick
  EXPECT_EQ(node_ready("n1"), "Unknown");
  EXPECT_EQ(node_ready("n2"), "True");
  auto n1 = get<api::Node>("", "n1");
  const api::NodeCondition* c = api::find_condition(n1->status(), "Ready");
  EXPECT_EQ(c->reason(), "NodeStatusUnknown");
  EXPECT_EQ(c->message(), "Kubelet stopped posting node status.");
  ASSERT_EQ(n1->spec().taints_size(), 1);
  EXPECT_EQ(n1->spec().taints(0).key(), kTaintUnreachable);
  auto not_ready = trace_.of(trace::NODE_NOT_READY);
  ASSERT_EQ(not_ready.size(), 1u);
  EXPECT_EQ(not_ready[0].node(), "n1");
  EXPECT_GT(not_ready[0].time_ns(), to_nanos(last + seconds(40)));
  EXPECT_EQ(events("NodeNotReady").size(), 1u);
  // Its pods were marked not ready at once; nothing evicted yet.
  for (const auto& name : victims) {
    EXPECT_FALSE(api::is_pod_ready(*get<api::Pod>("default", name))) << name;
  }
  EXPECT_EQ(rc()->status().ready_replicas(), 0);

  // Evicted pod_eviction_timeout (300 s) after the node turned Unknown (~45 s).
  sim_.run_until(last + seconds(339));
  EXPECT_TRUE(trace_.of(trace::POD_EVICTED).empty());
  EXPECT_EQ(active_pods("web").size(), 3u);
  sim_.run_until(last + seconds(351));
  auto evicted = trace_.of(trace::POD_EVICTED);
  ASSERT_EQ(evicted.size(), 3u);
  EXPECT_GT(evicted[0].time_ns(), to_nanos(last + seconds(340)));
  for (const auto& name : victims) {
    auto p = get<api::Pod>("default", name);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(api::is_terminating(*p)) << name;  // graceful: 30 s
  }
  // Replacements exist (unscheduled: the scheduler is not part of this test).
  auto active = active_pods("web");
  ASSERT_EQ(active.size(), 3u);
  for (const auto& p : active) EXPECT_TRUE(p->spec().node_name().empty());

  // Nobody will ever stop them on n1: force-removed once their grace is over.
  sim_.run_until(last + seconds(351 + 30 + 5));
  for (const auto& name : victims) EXPECT_EQ(get<api::Pod>("default", name), nullptr) << name;
  EXPECT_EQ(nlc_->pods_force_removed(), 3u);
  EXPECT_EQ(pods("web").size(), 3u);
}

// fast: 4 s grace, up to a 0.5 s tick to notice, 2 s after the transition,
// and the next tick to act on it.
// Creates or renews kube-node-lease/<node> as an agent does.
void renew_lease(Store& store, const std::string& node, TimePoint now) {
  StatusOr<api::Object> got = store.get(api::Kind::kLease, std::string(kNodeLeaseNamespace), node);
  api::Lease l;
  if (got.is_ok()) {
    l = *api::as<api::Lease>(*got);
  } else {
    l.mutable_metadata()->set_name(node);
    l.mutable_metadata()->set_namespace_(std::string(kNodeLeaseNamespace));
    l.mutable_spec()->set_holder_identity(node);
  }
  l.mutable_spec()->mutable_renew_time()->set_nanos(to_nanos(now));
  StatusOr<api::Object> r =
      got.is_ok() ? store.update(api::share(std::move(l))) : store.create(api::share(std::move(l)));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
}

TEST_F(NodeLifecycleTest, LeaseRenewalsAloneKeepANodeReadyAndTheirEndMakesItUnknown) {
  // One status heartbeat at t = 0, then only Lease renewals every 10 s, as an
  // agent with a 5-minute status report period does.
  heartbeat("n1");
  int lease_gen = 1;
  std::function<void()> renew = [&] {
    if (lease_gen == 0) return;
    renew_lease(store_, "n1", sim_.now());
    sim_.schedule_after(seconds(10), renew);
  };
  start();
  renew();
  run_for(minutes(3));
  EXPECT_EQ(node_ready("n1"), "True");
  EXPECT_TRUE(trace_.of(trace::NODE_NOT_READY).empty());
  lease_gen = 0;  // the agent dies: renewals stop
  auto lease = get<api::Lease>(std::string(kNodeLeaseNamespace), "n1");
  ASSERT_NE(lease, nullptr);
  const TimePoint last = time_from_nanos(lease->spec().renew_time().nanos());
  EXPECT_GE(last, sim_.now() - seconds(10));
  sim_.run_until(last + seconds(39));
  EXPECT_EQ(node_ready("n1"), "True");
  sim_.run_until(last + seconds(46));  // grace 40 s, noticed on the next 5 s tick
  EXPECT_EQ(node_ready("n1"), "Unknown");
  EXPECT_EQ(trace_.of(trace::NODE_NOT_READY).size(), 1u);
  EXPECT_EQ(nlc_->observed_ready("n1"), "Unknown");
}

TEST_F(NodeLifecycleTest, FastProfileEvictsWithinEightSeconds) {
  timing_ = TimingProfile::fast();
  keep_heartbeating("n1", timing_.node_status_update_period);
  start();
  std::vector<std::string> victims = run_rc_on("n1", 2);
  stop_heartbeats("n1");
  const TimePoint last = sim_.now() - seconds(1);  // the last beat was at most 1 s ago
  sim_.run_until(last + seconds(8));
  EXPECT_EQ(node_ready("n1"), "Unknown");
  EXPECT_EQ(trace_.of(trace::POD_EVICTED).size(), 2u);
  auto active = active_pods("web");
  EXPECT_EQ(active.size(), 2u);
  for (const auto& p : active) {
    EXPECT_TRUE(std::find(victims.begin(), victims.end(), p->metadata().name()) == victims.end());
  }
}

TEST_F(NodeLifecycleTest, ReturningNodeIsReadyAgainWithoutExtraReplicas) {
  keep_heartbeating("n1", timing_.node_status_update_period);
  start();
  run_rc_on("n1", 3);
  const uint64_t created = rm_->creations_attempted();
  stop_heartbeats("n1");
  run_for(seconds(60));
  ASSERT_EQ(node_ready("n1"), "Unknown");
  keep_heartbeating("n1", timing_.node_status_update_period);  // the agent is back
  run_for(seconds(1));
  EXPECT_EQ(node_ready("n1"), "True");
  EXPECT_EQ(nlc_->observed_ready("n1"), "True");
  auto ready = trace_.of(trace::NODE_READY);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].node(), "n1");
  EXPECT_EQ(get<api::Node>("", "n1")->spec().taints_size(), 0);
  run_for(minutes(10));  // long past the eviction timeout
  EXPECT_TRUE(trace_.of(trace::POD_EVICTED).empty());
  EXPECT_EQ(rm_->creations_attempted(), created);
  EXPECT_EQ(pods("web").size(), 3u);
  EXPECT_EQ(trace_.of(trace::NODE_NOT_READY).size(), 1u);
}

TEST_F(NodeLifecycleTest, EvictionsAreRateLimitedPerNode) {
  // kubernetes profile: 0.1 nodes per second, so one node every 10 s.
  for (const char* n : {"n1", "n2", "n3"}) keep_heartbeating(n, seconds(10));
  start();
  create(make_rc("web", 3));
  run_for(seconds(1));
  auto ps = pods("web");
  ASSERT_EQ(ps.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    set_pod_state(ps[i]->metadata().name(), "n" + std::to_string(i + 1),
                  "10.0.0." + std::to_string(i + 1), true);
  }
  for (const char* n : {"n1", "n2", "n3"}) stop_heartbeats(n);
  run_for(seconds(400));
  auto evicted = trace_.of(trace::POD_EVICTED);
  ASSERT_EQ(evicted.size(), 3u);
  std::vector<int64_t> t;
  for (const auto& r : evicted) t.push_back(r.time_ns());
  std::sort(t.begin(), t.end());
  EXPECT_GE(t[1] - t[0], to_nanos(seconds(10)));
  EXPECT_GE(t[2] - t[1], to_nanos(seconds(10)));
  EXPECT_LE(t[2] - t[0], to_nanos(seconds(21)));
}

TEST_F(NodeLifecycleTest, NodeReportingNotReadyIsEvictedAfterTheTimeoutToo) {
  keep_heartbeating("n1", seconds(10));
  start();
  std::vector<std::string> victims = run_rc_on("n1", 1);
  stop_heartbeats("n1");
  heartbeat("n1", "False");  // the agent is alive but the node is not ready
  const TimePoint since = sim_.now();
  run_for(seconds(1));
  EXPECT_EQ(trace_.of(trace::NODE_NOT_READY).size(), 1u);
  EXPECT_FALSE(api::is_pod_ready(*get<api::Pod>("default", victims[0])));
  // Keep posting NotReady so the node never goes Unknown.
  for (int i = 0; i < 32; ++i) {
    sim_.run_until(since + seconds(10 * (i + 1)));
    heartbeat("n1", "False");
  }
  EXPECT_EQ(trace_.of(trace::POD_EVICTED).size(), 1u);
  EXPECT_EQ(node_ready("n1"), "False");
  EXPECT_EQ(get<api::Node>("", "n1")->spec().taints(0).key(), kTaintNotReady);
}

TEST_F(NodeLifecycleTest, PodsOfADeletedNodeAreRemoved) {
  keep_heartbeating("n1", seconds(10));
  start();
  run_rc_on("n1", 2);
  stop_heartbeats("n1");
  ASSERT_TRUE(store_.remove(api::Kind::kNode, "", "n1").is_ok());
  run_for(seconds(1));
  auto active = active_pods("web");
  EXPECT_EQ(active.size(), 2u);
  for (const auto& p : active) EXPECT_TRUE(p->spec().node_name().empty());
  EXPECT_EQ(pods("web").size(), 2u);
}

TEST(TokenBucketTest, RefillsOnTheWorldClock) {
  TokenBucket b(0.5, 1.0, kTimeZero);
  EXPECT_TRUE(b.try_take(kTimeZero));
  EXPECT_FALSE(b.try_take(kTimeZero + seconds(1)));
  EXPECT_EQ(b.wait(kTimeZero + seconds(1)), seconds(1));
  EXPECT_TRUE(b.try_take(kTimeZero + seconds(2)));
}

}  // namespace
}  // namespace flotilla::ctrl
