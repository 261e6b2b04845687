// The control plane's store settings: the watch window it keeps per kind.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/store/in_memory_store.h"
#include "scenarios/control_plane.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::scenarios {
namespace {

api::Object lease(const std::string& name, int64_t renew_ns) {
  api::Lease l;
  l.mutable_metadata()->set_namespace_("kube-node-lease");
  l.mutable_metadata()->set_name(name);
  l.mutable_spec()->set_holder_identity(name);
  l.mutable_spec()->set_lease_duration_seconds(40);
  l.mutable_spec()->mutable_renew_time()->set_nanos(renew_ns);
  return api::share(std::move(l));
}

int64_t rv_of(const api::Object& o) { return std::stoll(api::meta_of(*o).resource_version()); }

// kube-apiserver keeps --default-watch-cache-size events per resource (100;
// tuning guides for large clusters say 1,000): the control plane keeps 1,000
// of each kind, and none older than 5 minutes. A watch from before that
// window is Gone and the client lists again.
TEST(ControlPlaneStore, KeepsTheLastThousandEventsOfEachKind) {
  sim::Simulator loop;
  std::unique_ptr<RandomStream> random = sim::SimRandom(1).stream("store");
  store::InMemoryStore store{loop, *random, ControlPlane::store_options()};
  StatusOr<api::Object> n0 = store.create(lease("n0", 0));
  ASSERT_TRUE(n0.is_ok()) << n0.status().to_string();
  StatusOr<api::Object> n1 = store.create(lease("n1", 0));
  ASSERT_TRUE(n1.is_ok()) << n1.status().to_string();
  api::Object renewed;
  for (int i = 1; i <= 999; ++i) {
    StatusOr<api::Object> r = store.update(lease("n1", i));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    renewed = *r;
  }
  auto watch_from = [&](const api::Object& o) {
    return store.watch(api::Kind::kLease, WatchOptions{.resource_version = rv_of(o)},
                       [](const WatchEvent&) {});
  };
  // 1,001 Lease events: n0's creation has left the window, but everything
  // after it is kept, so a watch from it still misses nothing.
  EXPECT_EQ(store.oldest_watchable_version(api::Kind::kLease), rv_of(*n0));
  EXPECT_TRUE(watch_from(*n0).is_ok());
  ASSERT_TRUE(store.update(lease("n1", 1000)).is_ok());
  // Now n1's creation has left too: from n0, that change would be missed.
  StatusOr<WatchHandle> gone = watch_from(*n0);
  EXPECT_EQ(gone.status().code(), StatusCode::kGone) << gone.status().to_string();
  EXPECT_TRUE(watch_from(*n1).is_ok());
  // Another kind's window is its own.
  EXPECT_EQ(store.oldest_watchable_version(api::Kind::kPod), 0);
  // 5 minutes on, the next Lease write drops all the Lease history before it.
  loop.run_for(std::chrono::minutes(6));
  StatusOr<api::Object> later = store.update(lease("n1", 2000));
  ASSERT_TRUE(later.is_ok()) << later.status().to_string();
  EXPECT_EQ(store.oldest_watchable_version(api::Kind::kLease), rv_of(*later) - 1);
  EXPECT_TRUE(watch_from(*later).is_ok());
  EXPECT_EQ(watch_from(renewed).status().code(), StatusCode::kGone);
}

// The cluster's requested CPU and memory: a pod's requests count while it is
// bound and not finished, from its first event to its deletion; status
// writes in between change only whether it holds them.
class SampleSink final : public TraceSink {
 public:
  void record(const trace::Record& r) override {
    if (r.type() == trace::CLUSTER_SAMPLE) samples.push_back(r);
  }
  std::vector<trace::Record> samples;
};

TEST(AllocationTrackerTest, CountsRequestsWhileAPodIsBoundUntilItFinishesOrGoes) {
  sim::Simulator loop;
  std::unique_ptr<RandomStream> random = sim::SimRandom(1).stream("store");
  store::InMemoryStore store{loop, *random};
  SampleSink sink;
  AllocationTracker tracker(loop, store, sink, seconds(1));
  ASSERT_TRUE(tracker.start().is_ok());
  auto sample = [&] {
    loop.run_for(milliseconds(1));
    tracker.sample(loop.now());  // one sample, none scheduled after
    const trace::Record& r = sink.samples.back();
    return std::make_tuple(r.value(), r.value2(), r.attrs().at("pods_bound"),
                           r.attrs().at("pods_pending"));
  };
  api::Pod pod;
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_name("web");
  api::Container* c = pod.mutable_spec()->add_containers();
  c->set_name("main");
  (*c->mutable_resources()->mutable_requests())["cpu"] = "250m";
  (*c->mutable_resources()->mutable_requests())["memory"] = "64Mi";
  api::Container* side = pod.mutable_spec()->add_containers();
  side->set_name("side");
  (*side->mutable_resources()->mutable_requests())["cpu"] = "1";
  StatusOr<api::Object> created = store.create(api::share(pod));
  ASSERT_TRUE(created.is_ok()) << created.status().to_string();
  EXPECT_EQ(sample(), std::make_tuple(int64_t{0}, int64_t{0}, std::string("0"), std::string("1")));

  auto write = [&](auto change) {
    api::Pod p = *api::as<api::Pod>(*store.get(api::Kind::kPod, "default", "web"));
    change(p);
    ASSERT_TRUE(store.update(api::share(std::move(p))).is_ok());
  };
  write([](api::Pod& p) { p.mutable_spec()->set_node_name("node-1"); });
  const auto bound = std::make_tuple(int64_t{1250}, int64_t{64} << 20, std::string("1"),
                                     std::string("0"));
  EXPECT_EQ(sample(), bound);
  write([](api::Pod& p) { p.mutable_status()->set_phase("Running"); });
  write([](api::Pod& p) { p.mutable_status()->set_pod_ip("10.0.0.1"); });
  EXPECT_EQ(sample(), bound) << "status writes hold the same requests";
  write([](api::Pod& p) { p.mutable_status()->set_phase("Succeeded"); });
  EXPECT_EQ(sample(), std::make_tuple(int64_t{0}, int64_t{0}, std::string("0"), std::string("1")));
  ASSERT_TRUE(store.remove(api::Kind::kPod, "default", "web").is_ok());
  EXPECT_EQ(sample(), std::make_tuple(int64_t{0}, int64_t{0}, std::string("0"), std::string("0")));
}

}  // namespace
}  // namespace flotilla::scenarios
