// ReplicationManager and GarbageCollector on virtual time against the real
// InMemoryStore: creation in slow-start batches, expectations, scale up/down
// with Kubernetes' victim order, adoption and release, status, GC.
#include "core/controllers/replication.h"

#include <algorithm>
#include <set>

#include "core/controllers/garbage_collector.h"
#include "core/controllers/pod_deletion.h"
#include "tests/core/controllers/harness.h"
#include "tests/core/store/forwarding_store.h"

namespace flotilla::ctrl {
namespace {

using testing::ControllerTest;

// Forwards to a real store, failing chosen pod creations (by attempt number).
class FailingCreates final : public flotilla::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::set<int> fail;  // 1-based numbers of pod create attempts to refuse
  bool fail_all = false;
  int attempts = 0;

  StatusOr<api::Object> create(api::Object o) override {
    if (api::kind_of(*o)->kind == api::Kind::kPod) {
      ++attempts;
      if (fail_all || fail.count(attempts) > 0) {
        return Status(StatusCode::kForbidden, "exceeded quota: pods");
      }
    }
    return ForwardingStore::create(std::move(o));
  }
};

class ReplicationTest : public ControllerTest {
 protected:
  void start(Store* store = nullptr) {
    ControllerContext ctx = context();
    ControllerContext c{store != nullptr ? *store : store_, ctx.loop, ctx.trace, ctx.timing};
    rm_ = std::make_unique<ReplicationManager>(c);
    ASSERT_TRUE(rm_->start().is_ok());
  }
  void scale(const std::string& name, int replicas) {
    auto rc = get<api::ReplicationController>("default", name);
    api::ReplicationController copy = *rc;
    copy.mutable_spec()->set_replicas(replicas);
    ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  }
  std::shared_ptr<const api::ReplicationController> rc(const std::string& name = "web") {
    return get<api::ReplicationController>("default", name);
  }
  std::unique_ptr<ReplicationManager> rm_;
};

TEST(SlowStart, BatchesDoubleAndTheLastIsCut) {
  EXPECT_EQ(slow_start_batches(1), (std::vector<int>{1}));
  EXPECT_EQ(slow_start_batches(10), (std::vector<int>{1, 2, 4, 3}));
  EXPECT_EQ(slow_start_batches(0), (std::vector<int>{}));
}

TEST_F(ReplicationTest, CreatesReplicasFromTheTemplateWithOwnerReference) {
  start();
  api::Object created = create(make_rc("web", 3));
  run_for(seconds(1));
  auto ps = pods("web");
  ASSERT_EQ(ps.size(), 3u);
  for (const auto& p : ps) {
    EXPECT_EQ(p->metadata().name().rfind("web-", 0), 0u) << p->metadata().name();
    EXPECT_EQ(p->metadata().labels().at("app"), "web");
    const api::OwnerReference* ref = api::controller_of(p->metadata());
    ASSERT_NE(ref, nullptr);
    EXPECT_EQ(ref->kind(), "ReplicationController");
    EXPECT_EQ(ref->name(), "web");
    EXPECT_EQ(ref->uid(), api::meta_of(*created).uid());
    EXPECT_TRUE(ref->block_owner_deletion());
    EXPECT_EQ(p->spec().containers(0).image(), "nginx:1.25");
  }
  EXPECT_EQ(rc()->status().replicas(), 3);
  EXPECT_EQ(rc()->status().observed_generation(), rc()->metadata().generation());
  EXPECT_EQ(events("SuccessfulCreate").size(), 3u);
  EXPECT_EQ(rm_->creations_attempted(), 3u);
}

TEST_F(ReplicationTest, SlowStartStopsAtTheFirstFailingBatch) {
  FailingCreates failing(store_);
  failing.fail = {4};  // the first pod of the third batch (sizes 1, 2, 4)
  ReplicationManager rm(ControllerContext{failing, sim_, trace_, timing_});
  create(make_rc("web", 10));
  // One sync, before any watch runs.
  EXPECT_EQ(rm.reconcile("default/web").kind, ReconcileResult::Kind::kError);
  // Batches 1 and 2 succeeded; batch 3 (4 pods) was attempted in full, one
  // failed, and batch 4 never started.
  EXPECT_EQ(failing.attempts, 7);
  EXPECT_EQ(pods("web").size(), 6u);
  auto failed = events("FailedCreate");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].type(), "Warning");
  EXPECT_NE(failed[0].message().find("exceeded quota"), std::string::npos);
  // Its 6 creations are unobserved: another sync does nothing.
  EXPECT_EQ(rm.expectations().pending_creations("default/web"), 6);
  rm.reconcile("default/web");
  EXPECT_EQ(failing.attempts, 7);
  // Once the watch has seen them, the rest is created.
  ASSERT_TRUE(rm.start().is_ok());
  run_for(seconds(1));
  EXPECT_EQ(pods("web").size(), 10u);
  EXPECT_EQ(failing.attempts, 11);
}

TEST_F(ReplicationTest, AllCreatesFailingTriesOnePodPerSyncAndBacksOff) {
  FailingCreates failing(store_);
  failing.fail_all = true;
  start(&failing);
  create(make_rc("web", 50));
  run_for(milliseconds(100));
  // Each sync tried one pod (a first batch of one failed), and syncs backed
  // off 5, 10, 20, 40 ms: a handful of attempts, not 50 per sync.
  EXPECT_EQ(static_cast<uint64_t>(failing.attempts), rm_->queue().reconciles());
  EXPECT_GE(failing.attempts, 4);
  EXPECT_LE(failing.attempts, 7);
  EXPECT_EQ(events("FailedCreate").size(), 1u);
  EXPECT_EQ(events("FailedCreate")[0].count(), failing.attempts);
  EXPECT_TRUE(pods("web").empty());
}

TEST_F(ReplicationTest, ExpectationsPreventActingTwiceBeforeOwnChangesAreObserved) {
  start();
  create(make_rc("web", 3));
  // Step until the first sync has created 3 pods; their watch events are queued.
  while (rm_->creations_attempted() < 3 && sim_.step()) {
  }
  ASSERT_EQ(rm_->creations_attempted(), 3u);
  EXPECT_EQ(rm_->expectations().pending_creations("default/web"), 3);
  // Someone removes a pod before our watch has even seen the creations: a
  // sync now must not create (it cannot tell its own creations apart yet).
  auto victim = pods("web")[0];
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", victim->metadata().name()).is_ok());
  EXPECT_TRUE(rm_->reconcile("default/web").kind == ReconcileResult::Kind::kOk);
  EXPECT_EQ(rm_->creations_attempted(), 3u);
  // Once observed, the replacement is made, exactly once.
  run_for(seconds(1));
  EXPECT_EQ(rm_->creations_attempted(), 4u);
  EXPECT_EQ(active_pods("web").size(), 3u);
  run_for(minutes(1));
  EXPECT_EQ(rm_->creations_attempted(), 4u);
}

TEST(ExpectationsTest, SatisfiedWhenObservedOrTimedOut) {
  Expectations e;
  TimePoint t0 = kTimeZero;
  EXPECT_TRUE(e.satisfied("a", t0));
  e.expect_creations("a", 2, t0);
  EXPECT_FALSE(e.satisfied("a", t0));
  e.creation_observed("a");
  EXPECT_FALSE(e.satisfied("a", t0));
  e.creation_observed("a");
  EXPECT_TRUE(e.satisfied("a", t0));
  e.expect_deletions("a", {"ns/p1", "ns/p2"}, t0);
  e.deletion_observed("a", "ns/p1");
  e.deletion_observed("a", "ns/other");  // not ours: ignored
  EXPECT_FALSE(e.satisfied("a", t0 + minutes(4)));
  EXPECT_TRUE(e.satisfied("a", t0 + minutes(5) + seconds(1)));  // timed out
}

TEST_F(ReplicationTest, RecreatesAPodDeletedFromTheStore) {
  start();
  create(make_rc("web", 2));
  run_for(seconds(1));
  auto before = pods("web");
  ASSERT_EQ(before.size(), 2u);
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", before[0]->metadata().name()).is_ok());
  run_for(seconds(1));
  auto after = pods("web");
  ASSERT_EQ(after.size(), 2u);
  std::set<std::string> names;
  for (const auto& p : after) names.insert(p->metadata().name());
  EXPECT_EQ(names.count(before[0]->metadata().name()), 0u);
  EXPECT_EQ(names.count(before[1]->metadata().name()), 1u);
}

// Each sync runs in a pass of its own, after the watch events of the writes
// the sync before it made: two controllers replacing a pod each in one instant
// both work from their counts, without listing the store.
TEST_F(ReplicationTest, EachSyncSeesThePodChangesOfTheSyncBeforeIt) {
  start();
  create(make_rc("web", 2, "web"));
  create(make_rc("api", 2, "api"));
  run_for(seconds(1));
  ASSERT_EQ(pods("web").size(), 2u);
  ASSERT_EQ(pods("api").size(), 2u);
  const uint64_t from_counts = rm_->syncs_from_counts();
  const uint64_t syncs = rm_->queue().reconciles();
  for (const char* app : {"web", "api"}) {
    ASSERT_TRUE(
        store_.remove(api::Kind::kPod, "default", pods(app)[0]->metadata().name()).is_ok());
  }
  run_for(seconds(1));
  EXPECT_EQ(pods("web").size(), 2u);
  EXPECT_EQ(pods("api").size(), 2u);
  EXPECT_GE(rm_->queue().reconciles() - syncs, 2u);
  EXPECT_EQ(rm_->syncs_from_counts() - from_counts, rm_->queue().reconciles() - syncs)
      << "every sync worked from the counts";
}

// A sync while the pod watch still has events to deliver is put off until
// they arrive, and is then done from the counts.
TEST_F(ReplicationTest, ASyncWhileThePodWatchLagsWaitsForItsEvents) {
  start();
  create(make_rc("web", 2));
  run_for(seconds(1));
  const uint64_t attempted = rm_->creations_attempted();
  const uint64_t from_counts = rm_->syncs_from_counts();
  const uint64_t syncs = rm_->queue().reconciles();
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", pods("web")[0]->metadata().name()).is_ok());
  EXPECT_EQ(rm_->reconcile("default/web").kind, ReconcileResult::Kind::kOk);
  EXPECT_EQ(rm_->creations_attempted(), attempted) << "acted before the deletion's event arrived";
  settle();
  EXPECT_EQ(pods("web").size(), 2u);
  EXPECT_EQ(rm_->creations_attempted(), attempted + 1);
  EXPECT_GE(rm_->queue().reconciles() - syncs, 1u);
  EXPECT_EQ(rm_->syncs_from_counts() - from_counts, rm_->queue().reconciles() - syncs);
}

TEST_F(ReplicationTest, ScaleUpAndDownDeletesTheCheapestVictimsFirst) {
  start();
  create(make_rc("web", 5));
  run_for(seconds(1));
  auto ps = pods("web");
  ASSERT_EQ(ps.size(), 5u);
  std::vector<std::string> n;
  for (const auto& p : ps) n.push_back(p->metadata().name());
  // n[0] stays unscheduled; n[1] is bound but Pending; n[2] runs not ready;
  // n[3] is ready with 4 restarts; n[4] is ready with none.
  set_pod_state(n[1], "node-1", "", false, 0, "Pending");
  set_pod_state(n[2], "node-1", "10.0.0.2", false);
  set_pod_state(n[3], "node-1", "10.0.0.3", true, 4);
  set_pod_state(n[4], "node-1", "10.0.0.4", true, 0);
  run_for(seconds(1));

  auto gone = [&](const std::string& name) {
    auto p = get<api::Pod>("default", name);
    return p == nullptr || api::is_terminating(*p);
  };
  scale("web", 4);
  run_for(seconds(1));
  EXPECT_TRUE(gone(n[0]));  // unscheduled: removed at once
  EXPECT_EQ(get<api::Pod>("default", n[0]), nullptr);
  EXPECT_FALSE(gone(n[1]));
  scale("web", 2);
  run_for(seconds(1));
  EXPECT_TRUE(gone(n[1]));
  EXPECT_TRUE(gone(n[2]));
  // Bound pods are deleted gracefully: Terminating, left for the agent.
  ASSERT_NE(get<api::Pod>("default", n[2]), nullptr);
  EXPECT_EQ(get<api::Pod>("default", n[2])->metadata().deletion_grace_period_seconds(), 30);
  scale("web", 1);
  run_for(seconds(1));
  EXPECT_TRUE(gone(n[3]));  // more restarts goes first
  EXPECT_FALSE(gone(n[4]));
  EXPECT_EQ(active_pods("web").size(), 1u);
  EXPECT_EQ(events("SuccessfulDelete").size(), 4u);
  // Scale up again: new pods, the survivor kept.
  scale("web", 3);
  run_for(seconds(1));
  EXPECT_EQ(active_pods("web").size(), 3u);
  EXPECT_FALSE(gone(n[4]));
}

TEST(DeleteOrder, NewerFirstWhenAllElseIsEqualAndReadyForLessTimeFirst) {
  api::Pod older, newer;
  older.mutable_metadata()->set_name("a");
  older.mutable_metadata()->mutable_creation_timestamp()->set_nanos(100);
  newer.mutable_metadata()->set_name("b");
  newer.mutable_metadata()->mutable_creation_timestamp()->set_nanos(200);
  EXPECT_TRUE(delete_before(newer, older));
  EXPECT_FALSE(delete_before(older, newer));
  api::Pod ready_long = older, ready_short = newer;
  api::set_condition(ready_long.mutable_status(), "Ready", "True", 10);
  api::set_condition(ready_short.mutable_status(), "Ready", "True", 50);
  ready_short.mutable_metadata()->mutable_creation_timestamp()->set_nanos(1);  // older pod
  EXPECT_TRUE(delete_before(ready_short, ready_long));
}

// Names the ReplicationController `name` (uid `uid`) among the pod's owners.
void add_rc_owner(api::Pod& pod, const std::string& name, const std::string& uid) {
  api::OwnerReference* ref = pod.mutable_metadata()->add_owner_references();
  ref->set_kind("ReplicationController");
  ref->set_name(name);
  ref->set_uid(uid);
}

// A pod made by hand (no owner) labeled app=web in the default namespace.
api::Pod orphan_pod(const std::string& name) {
  api::Pod orphan;
  orphan.mutable_metadata()->set_name(name);
  orphan.mutable_metadata()->set_namespace_("default");
  (*orphan.mutable_metadata()->mutable_labels())["app"] = "web";
  orphan.mutable_spec()->add_containers()->set_name("main");
  return orphan;
}

TEST_F(ReplicationTest, AdoptsMatchingOrphansInsteadOfCreating) {
  api::Pod orphan = orphan_pod("handmade");
  create(orphan);
  api::Pod other = orphan;  // does not match the selector: left alone
  other.mutable_metadata()->set_name("unrelated");
  (*other.mutable_metadata()->mutable_labels())["app"] = "db";
  create(other);
  start();
  api::Object rcobj = create(make_rc("web", 2));
  run_for(seconds(1));
  auto adopted = get<api::Pod>("default", "handmade");
  const api::OwnerReference* ref = api::controller_of(adopted->metadata());
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(ref->uid(), api::meta_of(*rcobj).uid());
  EXPECT_EQ(pods("web").size(), 2u);  // one adopted, one created
  EXPECT_EQ(rm_->creations_attempted(), 1u);
  EXPECT_EQ(api::controller_of(get<api::Pod>("default", "unrelated")->metadata()), nullptr);
}

TEST_F(ReplicationTest, ReleasesAPodThatStopsMatchingAndReplacesIt) {
  start();
  create(make_rc("web", 2));
  run_for(seconds(1));
  auto p = pods("web")[0];
  api::Pod relabeled = *p;
  (*relabeled.mutable_metadata()->mutable_labels())["app"] = "debug";
  ASSERT_TRUE(store_.update(api::share(std::move(relabeled))).is_ok());
  run_for(seconds(1));
  auto released = get<api::Pod>("default", p->metadata().name());
  ASSERT_NE(released, nullptr);
  EXPECT_EQ(api::controller_of(released->metadata()), nullptr);
  EXPECT_EQ(active_pods("web").size(), 2u);
}

// The owner index follows owner changes, not other writes: a pod adopted
// (an update that sets its owner) and then written many times (status) is
// still found among the controller's pods, so relabeling it releases it.
TEST_F(ReplicationTest, AnAdoptedPodWrittenSinceIsReleasedWhenItStopsMatching) {
  create(orphan_pod("handmade"));
  start();
  create(make_rc("web", 1));
  run_for(seconds(1));
  ASSERT_NE(api::controller_of(get<api::Pod>("default", "handmade")->metadata()), nullptr);
  EXPECT_EQ(rm_->creations_attempted(), 0u) << "adopted, not replaced";
  for (int i = 0; i < 3; ++i) {
    set_pod_state("handmade", "node-1", "10.0.0.9", i % 2 == 0);
    run_for(seconds(1));
  }
  api::Pod relabeled = *get<api::Pod>("default", "handmade");
  (*relabeled.mutable_metadata()->mutable_labels())["app"] = "debug";
  ASSERT_TRUE(store_.update(api::share(std::move(relabeled))).is_ok());
  run_for(seconds(1));
  EXPECT_EQ(api::controller_of(get<api::Pod>("default", "handmade")->metadata()), nullptr);
  EXPECT_EQ(active_pods("web").size(), 1u);
  EXPECT_EQ(rm_->creations_attempted(), 1u);
}

TEST_F(ReplicationTest, StatusCountsReadyAndAvailableAfterMinReadySeconds) {
  start();
  api::ReplicationController spec = make_rc("web", 3);
  spec.mutable_spec()->set_min_ready_seconds(10);
  (*spec.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["tier"] =
      "front";
  create(spec);
  run_for(seconds(1));
  auto ps = pods("web");
  ASSERT_EQ(ps.size(), 3u);
  // One pod loses its extra template label: still ours, not fully labeled.
  api::Pod partial = *ps[2];
  partial.mutable_metadata()->mutable_labels()->erase("tier");
  ASSERT_TRUE(store_.update(api::share(std::move(partial))).is_ok());
  set_pod_state(ps[0]->metadata().name(), "node-1", "10.0.0.1", true);
  set_pod_state(ps[1]->metadata().name(), "node-1", "10.0.0.2", true);
  run_for(seconds(1));
  auto s = rc()->status();
  EXPECT_EQ(s.replicas(), 3);
  EXPECT_EQ(s.fully_labeled_replicas(), 2);
  EXPECT_EQ(s.ready_replicas(), 2);
  EXPECT_EQ(s.available_replicas(), 0);  // ready for 1 s of the 10 needed
  run_for(seconds(10));
  EXPECT_EQ(rc()->status().available_replicas(), 2);
  // The trace follows desired/ready.
  auto changes = trace_.of(trace::REPLICAS_CHANGED);
  ASSERT_FALSE(changes.empty());
  EXPECT_EQ(changes.back().value(), 3);
  EXPECT_EQ(changes.back().value2(), 2);
  EXPECT_EQ(changes.front().value2(), 0);
}

TEST_F(ReplicationTest, GarbageCollectorDeletesPodsWithTheirController) {
  start();
  GarbageCollector gc(context());
  ASSERT_TRUE(gc.start().is_ok());
  create(make_rc("web", 3));
  create(make_rc("db", 1, "db"));
  run_for(seconds(1));
  auto ps = pods("web");
  ASSERT_EQ(ps.size(), 3u);
  set_pod_state(ps[0]->metadata().name(), "node-1", "10.0.0.1", true);
  ASSERT_TRUE(store_.remove(api::Kind::kReplicationController, "default", "web").is_ok());
  run_for(seconds(1));
  // Unbound pods are gone; the bound one is Terminating for its agent.
  auto left = pods("web");
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0]->metadata().name(), ps[0]->metadata().name());
  EXPECT_TRUE(api::is_terminating(*left[0]));
  EXPECT_EQ(pods("db").size(), 1u);  // other owners' pods untouched
  EXPECT_EQ(gc.deleted(), 3u);
}

TEST_F(ReplicationTest, GarbageCollectorKeepsPodsWithALiveOwnerAndDropsDeadRefs) {
  GarbageCollector gc(context());
  ASSERT_TRUE(gc.start().is_ok());
  api::Object live = create(make_rc("live", 0, "x"));
  api::Pod pod;
  pod.mutable_metadata()->set_name("shared");
  pod.mutable_metadata()->set_namespace_("default");
  add_rc_owner(pod, "live", api::meta_of(*live).uid());
  add_rc_owner(pod, "dead", "no-such-uid");
  create(pod);
  run_for(seconds(1));
  auto p = get<api::Pod>("default", "shared");
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->metadata().owner_references_size(), 1);
  EXPECT_EQ(p->metadata().owner_references(0).name(), "live");
}

// Kubernetes' graph builder acts on owner-reference changes: a pod's status
// writes check nothing; a change of its owners checks it again.
TEST_F(ReplicationTest, GarbageCollectorChecksAPodWhenItsOwnersChangeNotOnStatusWrites) {
  GarbageCollector gc(context());
  ASSERT_TRUE(gc.start().is_ok());
  api::Object live = create(make_rc("live", 0, "x"));
  api::Pod pod;
  pod.mutable_metadata()->set_name("p");
  pod.mutable_metadata()->set_namespace_("default");
  add_rc_owner(pod, "live", api::meta_of(*live).uid());
  create(pod);
  run_for(seconds(1));
  const uint64_t checked = gc.queue().reconciles();
  EXPECT_GE(checked, 1u);
  for (const char* phase : {"Pending", "Running", "Running", "Failed"}) {
    api::Pod p = *get<api::Pod>("default", "p");
    p.mutable_status()->set_phase(phase);
    p.mutable_status()->set_message(std::string("now ") + phase);
    ASSERT_TRUE(store_.update(api::share(std::move(p))).is_ok());
    run_for(seconds(1));
  }
  EXPECT_EQ(gc.queue().reconciles(), checked);
  api::Pod p = *get<api::Pod>("default", "p");
  add_rc_owner(p, "dead", "no-such-uid");
  ASSERT_TRUE(store_.update(api::share(std::move(p))).is_ok());
  run_for(seconds(1));
  EXPECT_GT(gc.queue().reconciles(), checked);
  ASSERT_EQ(get<api::Pod>("default", "p")->metadata().owner_references_size(), 1);
}

TEST(PodDeletionTest, UnboundRemovedBoundMarkedIdempotentAndForcedWithZeroGrace) {
  sim::Simulator sim;
  sim::SimRandom random(1);
  auto rs = random.stream("store");
  store::InMemoryStore store(sim, *rs);
  api::Pod p;
  p.mutable_metadata()->set_name("a");
  p.mutable_metadata()->set_namespace_("default");
  ASSERT_TRUE(store.create(api::share(p)).is_ok());
  auto d = delete_pod(store, "default", "a", sim.now());
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->outcome, PodDeletion::Outcome::kRemoved);
  EXPECT_FALSE(store.get(api::Kind::kPod, "default", "a").is_ok());

  p.mutable_spec()->set_node_name("n1");
  p.mutable_spec()->set_termination_grace_period_seconds(12);
  ASSERT_TRUE(store.create(api::share(p)).is_ok());
  d = delete_pod(store, "default", "a", kTimeZero + seconds(100));
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->outcome, PodDeletion::Outcome::kMarked);
  auto marked = api::as<api::Pod>(*store.get(api::Kind::kPod, "default", "a"));
  EXPECT_EQ(marked->metadata().deletion_timestamp().nanos(), to_nanos(seconds(112)));
  EXPECT_EQ(marked->metadata().deletion_grace_period_seconds(), 12);
  d = delete_pod(store, "default", "a", kTimeZero + seconds(101));
  EXPECT_EQ(d->outcome, PodDeletion::Outcome::kAlreadyMarked);
  d = delete_pod(store, "default", "a", kTimeZero + seconds(101), Duration(0));
  EXPECT_EQ(d->outcome, PodDeletion::Outcome::kRemoved);
  EXPECT_EQ(delete_pod(store, "default", "a", kTimeZero).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace flotilla::ctrl
