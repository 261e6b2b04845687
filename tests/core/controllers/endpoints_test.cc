// EndpointsController: ready / not-ready separation, named target ports,
// deterministic order, writes only on change, truncation at 1,000 addresses,
// deletion with the service. (Ready endpoints are traced by the
// EndpointSlice controller: endpoint_slice_test.cc.)
#include "core/controllers/endpoints.h"

#include <google/protobuf/util/message_differencer.h>

#include <set>

#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

using testing::ControllerTest;

class EndpointsTest : public ControllerTest {
 protected:
  void start() {
    ec_ = std::make_unique<EndpointsController>(context());
    ASSERT_TRUE(ec_->start().is_ok());
  }
  api::Service make_service(const std::string& name, api::IntOrString target) {
    api::Service s;
    s.mutable_metadata()->set_name(name);
    s.mutable_metadata()->set_namespace_("default");
    (*s.mutable_spec()->mutable_selector())["app"] = "web";
    auto* p = s.mutable_spec()->add_ports();
    p->set_name("http");
    p->set_port(80);
    *p->mutable_target_port() = target;
    return s;
  }
  static api::IntOrString named(const std::string& n) {
    api::IntOrString t;
    t.set_str_val(n);
    return t;
  }
  static api::IntOrString number(int n) {
    api::IntOrString t;
    t.set_int_val(n);
    return t;
  }
  void make_pod(const std::string& name, const std::string& app = "web", int port = 8080) {
    api::Pod p;
    p.mutable_metadata()->set_name(name);
    p.mutable_metadata()->set_namespace_("default");
    (*p.mutable_metadata()->mutable_labels())["app"] = app;
    auto* c = p.mutable_spec()->add_containers();
    c->set_name("main");
    auto* cp = c->add_ports();
    cp->set_name("http");
    cp->set_container_port(port);
    create(p);
  }
  std::shared_ptr<const api::Endpoints> endpoints(const std::string& name = "web") {
    return get<api::Endpoints>("default", name);
  }
  static std::vector<std::string> ips(const google::protobuf::RepeatedPtrField<api::EndpointAddress>& a) {
    std::vector<std::string> out;
    for (const auto& x : a) out.push_back(x.ip());
    return out;
  }
  std::unique_ptr<EndpointsController> ec_;
};

TEST_F(EndpointsTest, ReadyAndNotReadyAddressesWithNamedTargetPort) {
  start();
  make_pod("p-c");
  make_pod("p-a");
  make_pod("p-b");
  make_pod("p-noip");
  make_pod("p-gone");
  make_pod("other", "db");
  set_pod_state("p-c", "n1", "10.0.0.30", true);
  set_pod_state("p-a", "n2", "10.0.0.4", true);
  set_pod_state("p-b", "n1", "10.0.0.20", false);
  set_pod_state("p-gone", "n1", "10.0.0.50", true);
  set_pod_state("other", "n1", "10.0.0.60", true);
  {
    auto p = get<api::Pod>("default", "p-gone");
    api::Pod copy = *p;
    copy.mutable_metadata()->mutable_deletion_timestamp()->set_nanos(to_nanos(seconds(30)));
    ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  }
  create(make_service("web", named("http")));
  run_for(seconds(1));
  auto ep = endpoints();
  ASSERT_NE(ep, nullptr);
  ASSERT_EQ(ep->subsets_size(), 1);
  const auto& s = ep->subsets(0);
  // Sorted by IP (as strings), whatever the creation order.
  EXPECT_EQ(ips(s.addresses()), (std::vector<std::string>{"10.0.0.30", "10.0.0.4"}));
  EXPECT_EQ(ips(s.not_ready_addresses()), (std::vector<std::string>{"10.0.0.20"}));
  ASSERT_EQ(s.ports_size(), 1);
  EXPECT_EQ(s.ports(0).port(), 8080);
  EXPECT_EQ(s.ports(0).name(), "http");
  EXPECT_EQ(s.ports(0).protocol(), "TCP");
  EXPECT_EQ(s.addresses(0).target_ref().kind(), "Pod");
  EXPECT_EQ(s.addresses(0).target_ref().name(), "p-c");
  EXPECT_EQ(s.addresses(0).node_name(), "n1");
  EXPECT_TRUE(trace_.records.empty());  // the EndpointSlice controller traces endpoints
}

TEST_F(EndpointsTest, FollowsReadinessChangesAndPodChurn) {
  start();
  create(make_service("web", number(9000)));
  make_pod("p1");
  make_pod("p2");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  set_pod_state("p2", "n1", "10.0.0.2", false);
  run_for(seconds(1));
  EXPECT_EQ(ips(endpoints()->subsets(0).addresses()), (std::vector<std::string>{"10.0.0.1"}));
  EXPECT_EQ(endpoints()->subsets(0).ports(0).port(), 9000);  // a number is taken as is

  set_pod_state("p2", "n1", "10.0.0.2", true);
  run_for(seconds(1));
  EXPECT_EQ(ips(endpoints()->subsets(0).addresses()),
            (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(endpoints()->subsets(0).not_ready_addresses_size(), 0);

  set_pod_state("p1", "n1", "10.0.0.1", false);
  run_for(seconds(1));
  EXPECT_EQ(ips(endpoints()->subsets(0).addresses()), (std::vector<std::string>{"10.0.0.2"}));
  EXPECT_EQ(ips(endpoints()->subsets(0).not_ready_addresses()),
            (std::vector<std::string>{"10.0.0.1"}));

  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "p2").is_ok());
  run_for(seconds(1));
  EXPECT_EQ(endpoints()->subsets(0).addresses_size(), 0);

  // A pod relabeled out of the selector leaves.
  auto p1 = get<api::Pod>("default", "p1");
  api::Pod copy = *p1;
  (*copy.mutable_metadata()->mutable_labels())["app"] = "other";
  ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  run_for(seconds(1));
  EXPECT_EQ(endpoints()->subsets_size(), 0);
}

// What an address shows is copied from the pod when it arrives: a new IP,
// node or hostname of a pod already listed replaces the old in place and
// keeps the addresses sorted.
TEST_F(EndpointsTest, APodsNewAddressNodeAndHostnameReplaceTheOld) {
  start();
  create(make_service("web", number(9000)));
  make_pod("p1");
  make_pod("p2");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  set_pod_state("p2", "n1", "10.0.0.5", true);
  run_for(seconds(1));
  set_pod_state("p1", "n1", "10.0.0.9", true);  // the address alone
  run_for(seconds(1));
  ASSERT_EQ(ips(endpoints()->subsets(0).addresses()),
            (std::vector<std::string>{"10.0.0.5", "10.0.0.9"}));
  set_pod_state("p1", "n2", "10.0.0.9", true);  // the node alone
  run_for(seconds(1));
  ASSERT_EQ(endpoints()->subsets_size(), 1);
  const auto& a = endpoints()->subsets(0).addresses();
  ASSERT_EQ(ips(a), (std::vector<std::string>{"10.0.0.5", "10.0.0.9"}));
  EXPECT_EQ(a[1].node_name(), "n2");
  EXPECT_EQ(a[1].target_ref().name(), "p1");
  EXPECT_EQ(a[1].target_ref().namespace_(), "default");
  EXPECT_EQ(a[1].target_ref().uid(), get<api::Pod>("default", "p1")->metadata().uid());
  EXPECT_TRUE(a[1].hostname().empty());
  api::Pod copy = *get<api::Pod>("default", "p1");
  copy.mutable_spec()->set_hostname("h1");
  copy.mutable_spec()->set_subdomain("web");
  ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  run_for(seconds(1));
  EXPECT_EQ(endpoints()->subsets(0).addresses(1).hostname(), "h1");
}

TEST_F(EndpointsTest, WritesOnlyWhenSomethingChanged) {
  start();
  create(make_service("web", named("http")));
  make_pod("p1");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  run_for(seconds(1));
  const uint64_t writes = ec_->writes();
  const std::string version = endpoints()->metadata().resource_version();
  // A change the endpoints do not reflect (an annotation) writes nothing.
  auto p = get<api::Pod>("default", "p1");
  api::Pod copy = *p;
  (*copy.mutable_metadata()->mutable_annotations())["note"] = "x";
  ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  run_for(seconds(1));
  EXPECT_EQ(ec_->writes(), writes);
  EXPECT_EQ(endpoints()->metadata().resource_version(), version);
}

// A pod gone not ready and ready again before the next sync: the builder
// moved, its subsets did not. The controller does not compare before it
// writes its own object; the store finds the write the stored object and
// keeps it (same resourceVersion), and the controller counts no write.
TEST_F(EndpointsTest, AChangeUndoneBeforeTheSyncWritesNothing) {
  start();
  create(make_service("web", named("http")));
  make_pod("p1");
  make_pod("p2");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  set_pod_state("p2", "n1", "10.0.0.2", true);
  run_for(seconds(1));
  const uint64_t writes = ec_->writes();
  const std::string version = endpoints()->metadata().resource_version();
  set_pod_state("p1", "n1", "10.0.0.1", false);
  set_pod_state("p1", "n1", "10.0.0.1", true);
  run_for(seconds(1));
  EXPECT_EQ(ec_->writes(), writes);
  EXPECT_EQ(endpoints()->metadata().resource_version(), version);
  // A change that stays is written.
  set_pod_state("p1", "n1", "10.0.0.1", false);
  run_for(seconds(1));
  EXPECT_EQ(ec_->writes(), writes + 1);
  EXPECT_EQ(ips(endpoints()->subsets(0).not_ready_addresses()),
            std::vector<std::string>{"10.0.0.1"});
}

// Endpoints someone else changed: as in Kubernetes (whose controller watches
// Endpoints only for deletions) the next sync, here a pod's change, puts the
// subsets back and keeps the fields they set.
TEST_F(EndpointsTest, TheNextSyncRestoresSubsetsOthersChangedKeepingTheirFields) {
  start();
  create(make_service("web", named("http")));
  make_pod("p1");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  make_pod("p2");
  set_pod_state("p2", "n2", "10.0.0.2", false);
  run_for(seconds(1));
  ASSERT_NE(endpoints(), nullptr);
  api::Endpoints theirs = *endpoints();
  (*theirs.mutable_metadata()->mutable_annotations())["owner"] = "someone else";
  theirs.clear_subsets();
  ASSERT_TRUE(store_.update(api::share(std::move(theirs))).is_ok());
  run_for(seconds(1));
  make_pod("p3");
  set_pod_state("p3", "n3", "10.0.0.3", true);
  run_for(seconds(1));
  auto ep = endpoints();
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->metadata().annotations().at("owner"), "someone else");
  ASSERT_EQ(ep->subsets_size(), 1);
  EXPECT_EQ(ips(ep->subsets(0).addresses()), (std::vector<std::string>{"10.0.0.1", "10.0.0.3"}));
  EXPECT_EQ(ips(ep->subsets(0).not_ready_addresses()), std::vector<std::string>{"10.0.0.2"});
}

TEST_F(EndpointsTest, PodsResolvingPortsDifferentlyGetSeparateSubsetsAndUnresolvedAreSkipped) {
  start();
  make_pod("a", "web", 8080);
  make_pod("b", "web", 9090);
  api::Pod nohttp;
  nohttp.mutable_metadata()->set_name("c");
  nohttp.mutable_metadata()->set_namespace_("default");
  (*nohttp.mutable_metadata()->mutable_labels())["app"] = "web";
  nohttp.mutable_spec()->add_containers()->set_name("main");
  create(nohttp);
  set_pod_state("a", "n1", "10.0.0.1", true);
  set_pod_state("b", "n1", "10.0.0.2", true);
  set_pod_state("c", "n1", "10.0.0.3", true);
  create(make_service("web", named("http")));
  run_for(seconds(1));
  auto ep = endpoints();
  ASSERT_EQ(ep->subsets_size(), 2);
  EXPECT_EQ(ep->subsets(0).ports(0).port(), 8080);
  EXPECT_EQ(ips(ep->subsets(0).addresses()), (std::vector<std::string>{"10.0.0.1"}));
  EXPECT_EQ(ep->subsets(1).ports(0).port(), 9090);
  EXPECT_EQ(ips(ep->subsets(1).addresses()), (std::vector<std::string>{"10.0.0.2"}));
}

// A builder kept up to date pod by pod gives, through churn, what a fresh
// computation over the same pods gives; a snapshot it already has changes
// nothing, and its version moves only when the subsets do.
TEST_F(EndpointsTest, SubsetsKeptPodByPodAreThoseComputedAfresh) {
  api::Service svc = make_service("web", named("http"));
  for (const char* n : {"a", "b", "c"}) make_pod(n);
  auto pods = [&] {
    ListOptions lo;
    lo.labels = api::LabelSelector::from_map(svc.spec().selector());
    StatusOr<ListResult> r = store_.list(api::Kind::kPod, lo);
    EXPECT_TRUE(r.is_ok());
    return r.is_ok() ? r->items : std::vector<api::Object>{};
  };
  auto same = [](const std::vector<api::EndpointSubset>& x,
                 const std::vector<api::EndpointSubset>& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!google::protobuf::util::MessageDifferencer::Equals(x[i], y[i])) return false;
    }
    return true;
  };
  SubsetBuilder b(api::share(svc));
  std::set<std::string> in;
  auto step = [&](const std::string& what) {
    std::vector<api::Object> now = pods();
    std::set<std::string> names;
    for (const api::Object& o : now) {
      names.insert(api::meta_of(*o).name());
      b.set(api::meta_of(*o).name(), o);
    }
    for (const std::string& n : in) {
      if (names.count(n) == 0) b.set(n, nullptr);
    }
    in = names;
    EXPECT_TRUE(same(b.subsets(), compute_subsets(svc, now))) << what;
    EXPECT_EQ(b.size(), now.size()) << what;
    // Filled into a message, the same subsets.
    api::Endpoints filled;
    b.fill(filled.mutable_subsets());
    EXPECT_TRUE(same({filled.subsets().begin(), filled.subsets().end()}, b.subsets())) << what;
    // The same snapshots again: nothing to do.
    const uint64_t v = b.version();
    for (const api::Object& o : now) b.set(api::meta_of(*o).name(), o);
    EXPECT_EQ(b.version(), v) << what;
  };
  step("no addresses yet");
  const uint64_t empty = b.version();
  set_pod_state("a", "n1", "10.0.0.1", true);
  set_pod_state("b", "n1", "10.0.0.2", false);
  step("a ready, b not");
  EXPECT_GT(b.version(), empty);
  set_pod_state("b", "n2", "10.0.0.2", true);
  set_pod_state("c", "n2", "10.0.0.3", true, 0, "Succeeded");
  step("b ready, c finished");
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "a").is_ok());
  make_pod("d", "web", 9090);
  set_pod_state("d", "n3", "10.0.0.4", true);
  step("a gone, d on another port");
  set_pod_state("b", "n2", "10.0.0.9", true);
  step("b has a new address");
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "d").is_ok());
  step("the other port's only pod gone");
}

// A pod's new snapshot that leaves its address, readiness and ports as they
// were (an annotation, a status write) does not move the builder's version,
// so the controller's next sync has nothing to compute; one that does, does.
TEST_F(EndpointsTest, ASnapshotThatLeavesTheAddressAsItWasKeepsTheVersion) {
  api::Service svc = make_service("web", named("http"));
  make_pod("a");
  set_pod_state("a", "n1", "10.0.0.1", true);
  SubsetBuilder b(api::share(svc));
  b.set("a", get<api::Pod>("default", "a"));
  const uint64_t v = b.version();
  api::Pod copy = *get<api::Pod>("default", "a");
  (*copy.mutable_metadata()->mutable_annotations())["note"] = "x";
  ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  auto annotated = get<api::Pod>("default", "a");
  ASSERT_NE(annotated->metadata().resource_version(), "");
  b.set("a", annotated);
  EXPECT_EQ(b.version(), v);
  set_pod_state("a", "n1", "10.0.0.1", false);
  b.set("a", get<api::Pod>("default", "a"));
  EXPECT_GT(b.version(), v);
  std::vector<api::EndpointSubset> now = b.subsets();
  ASSERT_EQ(now.size(), 1U);
  EXPECT_EQ(now[0].addresses_size(), 0);
  EXPECT_EQ(ips(now[0].not_ready_addresses()), std::vector<std::string>{"10.0.0.1"});
}

TEST_F(EndpointsTest, AServiceChangeIsSeenThoughItsPodsAreUnchanged) {
  start();
  make_pod("a", "web", 8080);
  set_pod_state("a", "n1", "10.0.0.1", true);
  create(make_service("web", named("http")));
  run_for(seconds(1));
  ASSERT_EQ(endpoints()->subsets(0).ports(0).port(), 8080);
  auto svc = get<api::Service>("default", "web");
  api::Service changed = *svc;
  // A port the pod does not name: it no longer serves the service.
  *changed.mutable_spec()->mutable_ports(0)->mutable_target_port() = named("metrics");
  ASSERT_TRUE(store_.update(api::share(std::move(changed))).is_ok());
  run_for(seconds(1));
  EXPECT_EQ(endpoints()->subsets_size(), 0);
}

TEST_F(EndpointsTest, DeletedWithTheServiceAndRecreatedIfRemovedByOthers) {
  start();
  create(make_service("web", named("http")));
  make_pod("p1");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  run_for(seconds(1));
  ASSERT_TRUE(store_.remove(api::Kind::kEndpoints, "default", "web").is_ok());
  run_for(seconds(1));
  ASSERT_NE(endpoints(), nullptr);
  EXPECT_EQ(endpoints()->subsets(0).addresses_size(), 1);
  ASSERT_TRUE(store_.remove(api::Kind::kService, "default", "web").is_ok());
  run_for(seconds(1));
  EXPECT_EQ(endpoints(), nullptr);
}

// Over 1,000 addresses, as upstream: the first 1,000 (ready ones first when
// they do not all fit), annotated over-capacity; a change past the cut
// writes nothing; back under, the whole list and no annotation.
TEST_F(EndpointsTest, OverAThousandAddressesAreTruncatedAndAnnotated) {
  start();
  create(make_service("web", named("http")));
  auto ip = [](int i) { return "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250); };
  for (int i = 0; i < 1010; ++i) {
    make_pod("p" + std::to_string(i));
    set_pod_state("p" + std::to_string(i), "n1", ip(i), i >= 5);  // p0..p4 not ready
  }
  run_for(seconds(1));
  auto ep = endpoints();
  ASSERT_NE(ep, nullptr);
  ASSERT_EQ(ep->subsets_size(), 1);
  EXPECT_EQ(ep->subsets(0).addresses_size(), 1000);  // 1,005 ready: only ready ones
  EXPECT_EQ(ep->subsets(0).not_ready_addresses_size(), 0);
  EXPECT_EQ(ep->metadata().annotations().at("endpoints.kubernetes.io/over-capacity"), "truncated");
  // Sorted by IP as strings: the last ready ones in that order are cut.
  EXPECT_EQ(ep->subsets(0).addresses(0).ip(), "10.1.0.10");
  const uint64_t writes = ec_->writes();
  const std::string version = ep->metadata().resource_version();
  // 10.1.4.9 sorts last: its pod's change is past the cut.
  set_pod_state("p1009", "n1", ip(1009), false);
  run_for(seconds(1));
  EXPECT_EQ(ec_->writes(), writes);
  EXPECT_EQ(endpoints()->metadata().resource_version(), version);
  // Down to 998 ready and 5 not ready: every ready one, and 2 not-ready.
  for (int i = 1000; i < 1006; ++i) set_pod_state("p" + std::to_string(i), "n1", ip(i), false);
  run_for(seconds(1));
  EXPECT_EQ(endpoints()->subsets(0).addresses_size(), 998);
  EXPECT_EQ(endpoints()->subsets(0).not_ready_addresses_size(), 2);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "p" + std::to_string(i)).is_ok());
  }
  run_for(seconds(1));
  EXPECT_EQ(endpoints()->subsets(0).addresses_size() +
                endpoints()->subsets(0).not_ready_addresses_size(),
            910);
  EXPECT_EQ(endpoints()->metadata().annotations().count("endpoints.kubernetes.io/over-capacity"),
            0u);
}

TEST_F(EndpointsTest, ServiceWithoutSelectorIsLeftAlone) {
  start();
  api::Service s = make_service("manual", number(80));
  s.mutable_spec()->clear_selector();
  create(s);
  make_pod("p1");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  run_for(seconds(1));
  EXPECT_EQ(endpoints("manual"), nullptr);
}

}  // namespace
}  // namespace flotilla::ctrl

#include "core/controllers/controller_manager.h"

namespace flotilla::ctrl {
namespace {

class ControllerManagerTest : public testing::ControllerTest {};

TEST_F(ControllerManagerTest, AllControllersTogetherServeAReplicatedService) {
  ControllerManager cm(context());
  ASSERT_TRUE(cm.start().is_ok());
  create(make_rc("web", 2));
  api::Service s;
  s.mutable_metadata()->set_name("web");
  s.mutable_metadata()->set_namespace_("default");
  (*s.mutable_spec()->mutable_selector())["app"] = "web";
  auto* port = s.mutable_spec()->add_ports();
  port->set_port(80);
  port->mutable_target_port()->set_str_val("http");
  create(s);
  run_for(seconds(1));
  int ip = 1;
  for (const auto& p : pods("web")) {
    set_pod_state(p->metadata().name(), "n1", "10.1.0." + std::to_string(ip++), true);
  }
  run_for(seconds(1));
  auto ep = get<api::Endpoints>("default", "web");
  ASSERT_NE(ep, nullptr);
  EXPECT_EQ(ep->subsets(0).addresses_size(), 2);
  EXPECT_EQ(ep->subsets(0).ports(0).port(), 8080);
  ASSERT_TRUE(store_.remove(api::Kind::kReplicationController, "default", "web").is_ok());
  run_for(seconds(1));
  for (const auto& p : pods("web")) EXPECT_TRUE(api::is_terminating(*p));
  EXPECT_EQ(get<api::Endpoints>("default", "web")->subsets_size(), 0);
}

}  // namespace
}  // namespace flotilla::ctrl
