// Randomized pod churn (create, ready, not ready, finished, terminating,
// deleted, relabelled, orphaned, adopted, scaled, template changed) through the
// real InMemoryStore and the ReplicationManager, EndpointsController and
// EndpointSliceController (two endpoints a slice, so that many slices come
// and go) on virtual time. Checks that what the controllers write equals a full recount
// from the store, and that the incremental fast paths decide exactly what the
// full passes decide (same trace, same objects) when the cache is forbidden.
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/controllers/endpoint_slice.h"
#include "core/controllers/endpoints.h"
#include "core/controllers/pod_deletion.h"
#include "core/controllers/replication.h"
#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

using google::protobuf::util::MessageDifferencer;
using testing::RecordingTrace;

using PodPtr = std::shared_ptr<const api::Pod>;

// One simulated control plane with both controllers, driven by a seeded churn.
class World {
 public:
  World(uint32_t seed, bool full_passes_only) : rng_(seed) {
    ControllerContext ctx{store_, sim_, trace_, TimingProfile::kubernetes()};
    ReplicationOptions options;
    options.incremental = !full_passes_only;  // false: every sync lists the store
    rm_ = std::make_unique<ReplicationManager>(ctx, options);
    ec_ = std::make_unique<EndpointsController>(ctx);
    sc_ = std::make_unique<EndpointSliceController>(ctx, /*max_endpoints_per_slice=*/2);
    EXPECT_TRUE(rm_->start().is_ok());
    EXPECT_TRUE(ec_->start().is_ok());
    EXPECT_TRUE(sc_->start().is_ok());

    api::ReplicationController rc;
    rc.mutable_metadata()->set_name("web");
    rc.mutable_metadata()->set_namespace_("default");
    rc.mutable_spec()->set_replicas(5);
    (*rc.mutable_spec()->mutable_selector())["app"] = "web";
    auto* t = rc.mutable_spec()->mutable_template_();
    (*t->mutable_metadata()->mutable_labels())["app"] = "web";
    auto* c = t->mutable_spec()->add_containers();
    c->set_name("main");
    c->set_image("nginx:1.25");
    auto* port = c->add_ports();
    port->set_name("http");
    port->set_container_port(8080);
    EXPECT_TRUE(store_.create(api::share(std::move(rc))).is_ok());

    api::Service svc;
    svc.mutable_metadata()->set_name("web");
    svc.mutable_metadata()->set_namespace_("default");
    (*svc.mutable_spec()->mutable_selector())["app"] = "web";
    auto* sp = svc.mutable_spec()->add_ports();
    sp->set_name("http");
    sp->set_port(80);
    sp->mutable_target_port()->set_str_val("http");
    auto* sp2 = svc.mutable_spec()->add_ports();
    sp2->set_name("admin");
    sp2->set_port(81);
    sp2->mutable_target_port()->set_int_val(9090);
    EXPECT_TRUE(store_.create(api::share(std::move(svc))).is_ok());
    sim_.run_for(seconds(2));
  }

  // One random change made the way a user, an agent or another controller
  // would, then a random stretch of virtual time (often none, so that the
  // controllers run with watch events still queued).
  void step() {
    std::vector<PodPtr> all = pods();
    PodPtr pod = all.empty() ? nullptr : all[pick(all.size())];
    switch (pick(14)) {
      case 0:
      case 1:
        if (pod) set_state(*pod, "Running", true);
        break;
      case 2:
        if (pod) set_state(*pod, "Running", false);
        break;
      case 3:
        if (pod) set_state(*pod, pick(2) == 0 ? "Succeeded" : "Failed", false);
        break;
      case 4:
        if (pod) (void)delete_pod(store_, "default", pod->metadata().name(), sim_.now());
        break;
      case 5:
        if (pod) (void)store_.remove(api::Kind::kPod, "default", pod->metadata().name());
        break;
      case 6:
        if (pod) {
          edit(*pod, [&](api::Pod& p) {
            auto& l = *p.mutable_metadata()->mutable_labels();
            l["app"] = l["app"] == "web" ? "other" : "web";
          });
        }
        break;
      case 7: {
        api::Pod p;
        p.mutable_metadata()->set_name("orphan-" + std::to_string(next_name_++));
        p.mutable_metadata()->set_namespace_("default");
        (*p.mutable_metadata()->mutable_labels())["app"] = pick(3) == 0 ? "other" : "web";
        if (pick(2) == 0) (*p.mutable_metadata()->mutable_labels())["tier"] = "fe";
        auto* c = p.mutable_spec()->add_containers();
        c->set_name("main");
        c->set_image("nginx:1.25");
        auto* port = c->add_ports();
        port->set_name("http");
        port->set_container_port(8080 + static_cast<int>(pick(2)));
        EXPECT_TRUE(store_.create(api::share(std::move(p))).is_ok());
        break;
      }
      case 8:
        scale(static_cast<int>(pick(9)));
        break;
      case 9:
        edit_rc([&](api::ReplicationController& rc) {
          auto& l = *rc.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels();
          if (l.count("tier") > 0) {
            l.erase("tier");
          } else {
            l["tier"] = "fe";
          }
        });
        break;
      case 10:
        if (pod) edit(*pod, [](api::Pod& p) { p.mutable_metadata()->clear_owner_references(); });
        break;
      case 11:
        if (pod && pod->metadata().owner_references().empty()) {
          edit(*pod, [](api::Pod& p) {
            auto* ref = p.mutable_metadata()->add_owner_references();
            ref->set_api_version("apps/v1");
            ref->set_kind("ReplicaSet");
            ref->set_name("someone-else");
            ref->set_uid("0000-other");
            ref->set_controller(true);
          });
        }
        break;
      case 12:
        // Someone else removes or rewrites the Endpoints (and the Service is
        // touched, so that the controller looks again), or removes or
        // empties one of the slices.
        switch (pick(4)) {
          case 0:
            (void)store_.remove(api::Kind::kEndpoints, "default", "web");
            break;
          case 1:
            if (auto got = store_.get(api::Kind::kEndpoints, "default", "web"); got.is_ok()) {
              api::Endpoints ep = *api::as<api::Endpoints>(*got);
              if (ep.subsets_size() > 0) ep.mutable_subsets(0)->clear_not_ready_addresses();
              (*ep.mutable_metadata()->mutable_labels())["touched"] = "yes";
              (void)store_.update(api::share(std::move(ep)));
              api::Service svc = *service();
              (*svc.mutable_metadata()->mutable_annotations())["touched"] =
                  std::to_string(pick(1000));
              (void)store_.update(api::share(std::move(svc)));
            }
            break;
          default:
            if (auto found = slices(); !found.empty()) {
              const auto& one = found[pick(found.size())];
              if (pick(4) == 2) {
                (void)store_.remove(api::Kind::kEndpointSlice, "default", one->metadata().name());
              } else {
                api::EndpointSlice copy = *one;
                copy.clear_endpoints();
                (void)store_.update(api::share(std::move(copy)));
              }
            }
            break;
        }
        break;
      case 13:
        if (pod) {
          edit(*pod, [&](api::Pod& p) {
            p.mutable_spec()->set_hostname("h" + std::to_string(pick(3)));
            p.mutable_spec()->set_subdomain("web");
          });
        }
        break;
    }
    static constexpr int64_t kStepsMs[] = {0, 0, 0, 1, 10, 300, 999, 1000, 1500};
    sim_.run_for(milliseconds(kStepsMs[pick(std::size(kStepsMs))]));
  }

  // Enough virtual time for every batched sync and status write to land.
  void settle() { sim_.run_for(seconds(10)); }

  std::vector<PodPtr> pods() {
    ListOptions lo;
    lo.ns = "default";
    StatusOr<ListResult> r = store_.list(api::Kind::kPod, lo);
    std::vector<PodPtr> out;
    if (!r.is_ok()) return out;
    for (const auto& o : r->items) out.push_back(api::as<api::Pod>(o));
    return out;
  }
  std::shared_ptr<const api::ReplicationController> rc() {
    StatusOr<api::Object> r = store_.get(api::Kind::kReplicationController, "default", "web");
    return r.is_ok() ? api::as<api::ReplicationController>(*r) : nullptr;
  }
  std::shared_ptr<const api::Endpoints> endpoints() {
    StatusOr<api::Object> r = store_.get(api::Kind::kEndpoints, "default", "web");
    return r.is_ok() ? api::as<api::Endpoints>(*r) : nullptr;
  }
  // Service web's EndpointSlices.
  std::vector<std::shared_ptr<const api::EndpointSlice>> slices() {
    ListOptions lo;
    lo.ns = "default";
    api::Labels web;
    web[std::string(kServiceNameLabel)] = "web";
    lo.labels = api::LabelSelector::from_map(web);
    StatusOr<ListResult> r = store_.list(api::Kind::kEndpointSlice, lo);
    std::vector<std::shared_ptr<const api::EndpointSlice>> out;
    if (!r.is_ok()) return out;
    for (const auto& o : r->items) out.push_back(api::as<api::EndpointSlice>(o));
    return out;
  }
  std::shared_ptr<const api::Service> service() {
    StatusOr<api::Object> r = store_.get(api::Kind::kService, "default", "web");
    return r.is_ok() ? api::as<api::Service>(*r) : nullptr;
  }

  const RecordingTrace& trace() const { return trace_; }
  const ReplicationManager& manager() const { return *rm_; }

 private:
  uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }

  template <typename F>
  void edit(const api::Pod& pod, F f) {
    api::Pod copy = pod;
    f(copy);
    (void)store_.update(api::share(std::move(copy)));  // a conflict is a lost race: fine
  }
  template <typename F>
  void edit_rc(F f) {
    api::ReplicationController copy = *rc();
    f(copy);
    EXPECT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  }
  void scale(int replicas) {
    edit_rc([&](api::ReplicationController& r) { r.mutable_spec()->set_replicas(replicas); });
  }
  void set_state(const api::Pod& pod, const std::string& phase, bool ready) {
    edit(pod, [&](api::Pod& p) {
      if (p.spec().node_name().empty()) p.mutable_spec()->set_node_name("n" + std::to_string(pick(3)));
      p.mutable_status()->set_phase(phase);
      if (p.status().pod_ip().empty()) {
        p.mutable_status()->set_pod_ip("10.0." + std::to_string(next_ip_ / 200) + "." +
                                       std::to_string(next_ip_ % 200 + 1));
        ++next_ip_;
      }
      api::set_condition(p.mutable_status(), "Ready", ready ? "True" : "False",
                         to_nanos(sim_.now()));
    });
  }

  std::mt19937 rng_;
  sim::Simulator sim_;
  sim::SimRandom random_{42};
  std::unique_ptr<RandomStream> store_random_ = random_.stream("store");
  store::InMemoryStore store_{sim_, *store_random_};
  RecordingTrace trace_;
  std::unique_ptr<ReplicationManager> rm_;
  std::unique_ptr<EndpointsController> ec_;
  std::unique_ptr<EndpointSliceController> sc_;
  int next_name_ = 0;
  int next_ip_ = 0;
};

// The RC status a full recount of the store gives (minReadySeconds is 0).
api::ReplicationControllerStatus recount(World& w) {
  auto rc = w.rc();
  api::ReplicationControllerStatus s;
  int active = 0, fully = 0, ready = 0;
  for (const PodPtr& p : w.pods()) {
    const api::OwnerReference* ref = api::controller_of(p->metadata());
    if (ref == nullptr || ref->uid() != rc->metadata().uid()) continue;
    if (p->metadata().labels().count("app") == 0 || p->metadata().labels().at("app") != "web") {
      continue;
    }
    if (!api::is_pod_active(*p)) continue;
    ++active;
    bool all = true;
    for (const auto& [k, v] : rc->spec().template_().metadata().labels()) {
      auto it = p->metadata().labels().find(k);
      all = all && it != p->metadata().labels().end() && it->second == v;
    }
    if (all) ++fully;
    if (api::is_pod_ready(*p)) ++ready;
  }
  s.set_replicas(active);
  s.set_fully_labeled_replicas(fully);
  s.set_ready_replicas(ready);
  s.set_available_replicas(ready);
  s.set_observed_generation(rc->metadata().generation());
  return s;
}

TEST(ReplicationChurnTest, StatusEqualsAFullRecountAfterEveryQuietSpell) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    World w(seed, /*full_passes_only=*/false);
    for (int round = 0; round < 40; ++round) {
      for (int i = 0; i < 8; ++i) w.step();
      w.settle();
      auto rc = w.rc();
      api::ReplicationControllerStatus want = recount(w);
      EXPECT_TRUE(MessageDifferencer::Equals(rc->status(), want))
          << "seed " << seed << " round " << round << "\nwritten: " << rc->status().DebugString()
          << "recount: " << want.DebugString();
      // With nothing left to claim, the RC holds exactly spec.replicas active pods.
      EXPECT_EQ(rc->status().replicas(), rc->spec().replicas()) << "seed " << seed;
    }
  }
}

TEST(ReplicationChurnTest, IncrementalPassesDecideExactlyAsFullPasses) {
  for (uint32_t seed : {7u, 8u, 9u, 10u}) {
    World fast(seed, /*full_passes_only=*/false);
    World full(seed, /*full_passes_only=*/true);
    for (int i = 0; i < 400; ++i) {
      fast.step();
      full.step();
    }
    fast.settle();
    full.settle();
    const auto& a = fast.trace().records;
    const auto& b = full.trace().records;
    ASSERT_EQ(a.size(), b.size()) << "seed " << seed;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].SerializeAsString(), b[i].SerializeAsString())
          << "seed " << seed << " record " << i << "\n"
          << a[i].DebugString() << "vs\n"
          << b[i].DebugString();
    }
    auto pa = fast.pods(), pb = full.pods();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_TRUE(MessageDifferencer::Equals(*pa[i], *pb[i])) << pa[i]->metadata().name();
    }
    EXPECT_TRUE(MessageDifferencer::Equals(*fast.rc(), *full.rc()));
    EXPECT_EQ(fast.manager().creations_attempted(), full.manager().creations_attempted());
    EXPECT_GT(fast.manager().creations_attempted(), 20u);  // the churn made it work
    EXPECT_GT(fast.manager().syncs_from_counts(), 50u) << "seed " << seed;
    EXPECT_EQ(full.manager().syncs_from_counts(), 0u);
  }
}

// The ready endpoints ("ip:port") of Endpoints subsets.
std::set<std::string> ready_endpoints(const std::vector<api::EndpointSubset>& subsets) {
  std::set<std::string> out;
  for (const auto& s : subsets) {
    for (const auto& a : s.addresses()) {
      if (s.ports().empty()) out.insert(a.ip());
      for (const auto& p : s.ports()) out.insert(a.ip() + ":" + std::to_string(p.port()));
    }
  }
  return out;
}

TEST(EndpointsChurnTest, ContentEqualsARecomputeAndTheTraceReplaysToIt) {
  for (uint32_t seed : {21u, 22u, 23u}) {
    World w(seed, /*full_passes_only=*/false);
    for (int round = 0; round < 40; ++round) {
      for (int i = 0; i < 8; ++i) w.step();
      w.settle();
      auto ep = w.endpoints();
      ASSERT_NE(ep, nullptr) << "seed " << seed << " round " << round;
      std::vector<api::Object> items;
      std::set<std::string> terminating;
      for (const PodPtr& p : w.pods()) {
        if (p->metadata().labels().count("app") > 0 && p->metadata().labels().at("app") == "web") {
          items.push_back(p);
          if (api::is_terminating(*p) && !p->status().pod_ip().empty() &&
              !api::is_pod_finished(*p)) {
            terminating.insert(p->metadata().name());
          }
        }
      }
      std::vector<api::EndpointSubset> want = compute_subsets(*w.service(), items);
      ASSERT_EQ(static_cast<size_t>(ep->subsets_size()), want.size()) << "seed " << seed;
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_TRUE(MessageDifferencer::Equals(ep->subsets(static_cast<int>(i)), want[i]))
            << "seed " << seed << " round " << round;
      }
      EXPECT_EQ(ep->metadata().labels().size(), 0u);  // someone's label is taken off again
      // The slices list every pod the subsets list, and the terminating ones,
      // once each, at most two a slice; their ready endpoints are the
      // subsets' ready addresses.
      std::set<std::string> listed, slice_ready;
      size_t listed_count = 0;
      for (const auto& slice : w.slices()) {
        EXPECT_LE(slice->endpoints_size(), 2) << slice->metadata().name();
        EXPECT_GT(slice->endpoints_size(), 0) << slice->metadata().name();
        for (const auto& e : slice->endpoints()) {
          listed.insert(e.target_ref().name());
          ++listed_count;
          if (!e.conditions().ready()) continue;
          for (const auto& p : slice->ports()) {
            slice_ready.insert(e.addresses(0) + ":" + std::to_string(p.port()));
          }
        }
      }
      std::set<std::string> want_listed = terminating;
      for (const auto& s : want) {
        for (const auto& a : s.addresses()) want_listed.insert(a.target_ref().name());
        for (const auto& a : s.not_ready_addresses()) want_listed.insert(a.target_ref().name());
      }
      EXPECT_EQ(listed, want_listed) << "seed " << seed << " round " << round;
      EXPECT_EQ(listed_count, listed.size()) << "seed " << seed << " round " << round;
      const std::set<std::string> want_ready = ready_endpoints(want);
      EXPECT_EQ(slice_ready, want_ready) << "seed " << seed << " round " << round;
      // Replaying every traced addition and removal gives the ready endpoints.
      std::set<std::string> replayed;
      for (const trace::Record& r : w.trace().records) {
        if (r.type() == trace::ENDPOINT_ADDED) {
          EXPECT_TRUE(replayed.insert(r.endpoint()).second) << r.endpoint();
        } else if (r.type() == trace::ENDPOINT_REMOVED) {
          EXPECT_EQ(replayed.erase(r.endpoint()), 1u) << r.endpoint();
        }
      }
      EXPECT_EQ(replayed, want_ready) << "seed " << seed << " round " << round;
    }
  }
}

}  // namespace
}  // namespace flotilla::ctrl
