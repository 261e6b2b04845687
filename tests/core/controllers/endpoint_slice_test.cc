// EndpointSliceController: the slices' shape (labels, owner, conditions,
// ports), at most N endpoints a slice, one pod's change rewriting one slice,
// emptied slices removed, traces of ready endpoints, slices others removed
// or edited put right, a restarted controller adopting what it finds, and
// the Service's deletion.
#include "core/controllers/endpoint_slice.h"

#include <map>
#include <set>

#include "core/api/validation.h"
#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

using testing::ControllerTest;
using SlicePtr = std::shared_ptr<const api::EndpointSlice>;

class EndpointSliceTest : public ControllerTest {
 protected:
  void start(int max_per_slice = EndpointSliceController::kDefaultMaxEndpointsPerSlice) {
    sc_ = std::make_unique<EndpointSliceController>(context(), max_per_slice);
    ASSERT_TRUE(sc_->start().is_ok());
  }
  api::Service make_service(const std::string& name, const std::string& target = "http") {
    api::Service s;
    s.mutable_metadata()->set_name(name);
    s.mutable_metadata()->set_namespace_("default");
    (*s.mutable_metadata()->mutable_labels())["team"] = "shop";
    (*s.mutable_spec()->mutable_selector())["app"] = "web";
    auto* p = s.mutable_spec()->add_ports();
    p->set_name("http");
    p->set_port(80);
    p->mutable_target_port()->set_str_val(target);
    return s;
  }
  void make_pod(const std::string& name, int port = 8080) {
    api::Pod p;
    p.mutable_metadata()->set_name(name);
    p.mutable_metadata()->set_namespace_("default");
    (*p.mutable_metadata()->mutable_labels())["app"] = "web";
    auto* c = p.mutable_spec()->add_containers();
    c->set_name("main");
    auto* cp = c->add_ports();
    cp->set_name("http");
    cp->set_container_port(port);
    create(p);
  }
  // `n` ready pods p0.., IPs 10.0.<i/200>.<i%200+1>.
  void ready_pods(int n, int from = 0) {
    for (int i = from; i < from + n; ++i) {
      make_pod("p" + std::to_string(i));
      set_pod_state("p" + std::to_string(i), "n1", ip(i), true);
    }
  }
  static std::string ip(int i) {
    return "10.0." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
  }
  std::vector<SlicePtr> slices(const std::string& service = "web") {
    ListOptions lo;
    lo.ns = "default";
    lo.labels = api::LabelSelector::from_map(labels({{"kubernetes.io/service-name", service}}));
    auto r = store_.list(api::Kind::kEndpointSlice, lo);
    std::vector<SlicePtr> out;
    if (!r.is_ok()) return out;
    for (const auto& o : r->items) out.push_back(api::as<api::EndpointSlice>(o));
    return out;
  }
  // Pod name -> ready, over every slice of the service; a pod listed twice fails.
  std::map<std::string, bool> listed(const std::string& service = "web") {
    std::map<std::string, bool> out;
    for (const auto& s : slices(service)) {
      for (const auto& e : s->endpoints()) {
        EXPECT_TRUE(out.emplace(e.target_ref().name(), e.conditions().ready()).second)
            << e.target_ref().name() << " listed twice";
      }
    }
    return out;
  }
  std::map<std::string, std::string> versions() {
    std::map<std::string, std::string> out;
    for (const auto& s : slices()) out[s->metadata().name()] = s->metadata().resource_version();
    return out;
  }
  std::unique_ptr<EndpointSliceController> sc_;
};

TEST_F(EndpointSliceTest, ASliceCarriesTheServicesLabelsOwnerPortsAndEachPodsConditions) {
  start();
  make_pod("p-ready");
  make_pod("p-not-ready");
  make_pod("p-terminating");
  make_pod("p-noip");
  set_pod_state("p-ready", "n1", "10.0.0.9", true);
  set_pod_state("p-not-ready", "n2", "10.0.0.10", false);
  set_pod_state("p-terminating", "n1", "10.0.0.11", true);
  {
    api::Pod copy = *get<api::Pod>("default", "p-terminating");
    copy.mutable_metadata()->mutable_deletion_timestamp()->set_nanos(to_nanos(seconds(30)));
    ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  }
  create(make_service("web"));
  run_for(seconds(1));
  auto all = slices();
  ASSERT_EQ(all.size(), 1u);
  const api::EndpointSlice& s = *all[0];
  EXPECT_EQ(s.api_version(), "discovery.k8s.io/v1");
  EXPECT_EQ(s.kind(), "EndpointSlice");
  EXPECT_EQ(s.metadata().name().rfind("web-", 0), 0u) << s.metadata().name();  // generateName
  EXPECT_GT(s.metadata().name().size(), 4u);
  EXPECT_EQ(s.metadata().labels().at("kubernetes.io/service-name"), "web");
  EXPECT_EQ(s.metadata().labels().at("endpointslice.kubernetes.io/managed-by"),
            "endpointslice-controller.k8s.io");
  EXPECT_EQ(s.metadata().labels().at("team"), "shop");
  ASSERT_EQ(s.metadata().owner_references_size(), 1);
  EXPECT_EQ(s.metadata().owner_references(0).kind(), "Service");
  EXPECT_EQ(s.metadata().owner_references(0).name(), "web");
  EXPECT_EQ(s.metadata().owner_references(0).uid(), get<api::Service>("default", "web")->metadata().uid());
  EXPECT_TRUE(s.metadata().owner_references(0).controller());
  EXPECT_EQ(s.address_type(), "IPv4");
  ASSERT_EQ(s.ports_size(), 1);
  EXPECT_EQ(s.ports(0).name(), "http");
  EXPECT_EQ(s.ports(0).port(), 8080);  // the named target port, resolved
  EXPECT_EQ(s.ports(0).protocol(), "TCP");
  // Sorted by address as strings; the pod without an IP is not listed.
  ASSERT_EQ(s.endpoints_size(), 3);
  const api::Endpoint& not_ready = s.endpoints(0);
  const api::Endpoint& terminating = s.endpoints(1);
  const api::Endpoint& ready = s.endpoints(2);
  EXPECT_EQ(not_ready.addresses(0), "10.0.0.10");
  EXPECT_FALSE(not_ready.conditions().ready());
  EXPECT_FALSE(not_ready.conditions().serving());
  EXPECT_EQ(not_ready.node_name(), "n2");
  EXPECT_EQ(terminating.target_ref().name(), "p-terminating");
  EXPECT_FALSE(terminating.conditions().ready());
  EXPECT_TRUE(terminating.conditions().serving());
  EXPECT_TRUE(terminating.conditions().terminating());
  EXPECT_EQ(ready.addresses(0), "10.0.0.9");
  EXPECT_TRUE(ready.conditions().ready());
  EXPECT_FALSE(ready.conditions().terminating());
  EXPECT_EQ(ready.target_ref().kind(), "Pod");
  EXPECT_EQ(ready.target_ref().namespace_(), "default");
  EXPECT_EQ(ready.target_ref().uid(), get<api::Pod>("default", "p-ready")->metadata().uid());
  // The store validated it, so the API would serve it.
  EXPECT_TRUE(api::validate(s).empty());
  // Only the ready endpoint is traced.
  auto added = trace_.of(trace::ENDPOINT_ADDED);
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].service(), "default/web");
  EXPECT_EQ(added[0].endpoint(), "10.0.0.9:8080");
  EXPECT_EQ(added[0].name(), "p-ready");
  EXPECT_EQ(added[0].node(), "n1");
}

TEST_F(EndpointSliceTest, AtMostNAnEndpointSliceAndOnePodsChangeRewritesOneSlice) {
  start(/*max_per_slice=*/100);
  create(make_service("web"));
  ready_pods(250);
  run_for(seconds(1));
  auto all = slices();
  ASSERT_EQ(all.size(), 3u);
  size_t total = 0;
  for (const auto& s : all) {
    EXPECT_LE(s->endpoints_size(), 100);
    total += s->endpoints_size();
  }
  EXPECT_EQ(total, 250u);
  EXPECT_EQ(listed().size(), 250u);
  EXPECT_EQ(trace_.of(trace::ENDPOINT_ADDED).size(), 250u);

  // One pod goes not ready: one slice written, the others keep their version.
  const auto before = versions();
  const uint64_t writes = sc_->writes();
  set_pod_state("p17", "n1", ip(17), false);
  run_for(seconds(1));
  EXPECT_EQ(sc_->writes(), writes + 1);
  const auto after = versions();
  ASSERT_EQ(after.size(), before.size());
  int changed = 0;
  for (const auto& [name, rv] : after) changed += before.at(name) != rv ? 1 : 0;
  EXPECT_EQ(changed, 1);
  EXPECT_FALSE(listed().at("p17"));
  ASSERT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 1u);
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED)[0].endpoint(), ip(17) + ":8080");

  // A new snapshot that leaves the endpoint as it was writes nothing.
  {
    api::Pod copy = *get<api::Pod>("default", "p18");
    (*copy.mutable_metadata()->mutable_annotations())["note"] = "x";
    ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  }
  run_for(seconds(1));
  EXPECT_EQ(sc_->writes(), writes + 1);
}

TEST_F(EndpointSliceTest, EmptiedSlicesAreRemovedAndNewPodsFillTheRoomLeft) {
  start(/*max_per_slice=*/3);
  create(make_service("web"));
  ready_pods(7);  // 3 + 3 + 1
  run_for(seconds(1));
  ASSERT_EQ(slices().size(), 3u);
  // Three pods of one slice go: that slice goes with them.
  SlicePtr full;
  for (const auto& s : slices()) {
    if (s->endpoints_size() == 3) full = s;
  }
  ASSERT_NE(full, nullptr);
  std::vector<std::string> first;
  for (const auto& e : full->endpoints()) first.push_back(e.target_ref().name());
  const std::string gone_slice = full->metadata().name();
  for (const auto& name : first) ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", name).is_ok());
  run_for(seconds(1));
  auto left = slices();
  ASSERT_EQ(left.size(), 2u);
  for (const auto& s : left) EXPECT_NE(s->metadata().name(), gone_slice);
  EXPECT_EQ(listed().size(), 4u);
  // Two new pods: both into the slice with room (the fullest with room, then
  // the one being written), no new slice.
  ready_pods(2, 100);
  run_for(seconds(1));
  std::multiset<int> sizes;
  for (const auto& s : slices()) sizes.insert(s->endpoints_size());
  EXPECT_EQ(sizes, (std::multiset<int>{3, 3})) << slices().size();
  EXPECT_EQ(listed().size(), 6u);
}

TEST_F(EndpointSliceTest, ReadinessChangesAndPodChurnAreTraced) {
  start();
  create(make_service("web", ""));  // no target port: the service port, 80
  make_pod("p1");
  make_pod("p2");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  set_pod_state("p2", "n1", "10.0.0.2", false);
  run_for(seconds(1));
  trace_.records.clear();
  set_pod_state("p2", "n1", "10.0.0.2", true);
  run_for(seconds(1));
  ASSERT_EQ(trace_.of(trace::ENDPOINT_ADDED).size(), 1u);
  EXPECT_EQ(trace_.of(trace::ENDPOINT_ADDED)[0].endpoint(), "10.0.0.2:80");
  set_pod_state("p1", "n1", "10.0.0.1", false);
  run_for(seconds(1));
  ASSERT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 1u);
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED)[0].name(), "p1");
  // Gone not ready and back within one batch period: nothing traced.
  set_pod_state("p2", "n1", "10.0.0.2", false);
  set_pod_state("p2", "n1", "10.0.0.2", true);
  run_for(seconds(1));
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 1u);
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "p2").is_ok());
  run_for(seconds(1));
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 2u);
  EXPECT_TRUE(listed().count("p2") == 0);
}

// What an Endpoint shows is copied from the pod when it arrives: a new IP,
// node or hostname of a pod already listed replaces the old in its slice,
// keeps the endpoints sorted, and the old address is traced gone.
TEST_F(EndpointSliceTest, APodsNewAddressNodeAndHostnameReplaceTheOld) {
  start();
  create(make_service("web"));
  make_pod("p1");
  make_pod("p2");
  set_pod_state("p1", "n1", "10.0.0.1", true);
  set_pod_state("p2", "n1", "10.0.0.5", true);
  run_for(seconds(1));
  trace_.records.clear();
  set_pod_state("p1", "n1", "10.0.0.9", true);  // the address alone
  run_for(seconds(1));
  ASSERT_EQ(trace_.of(trace::ENDPOINT_ADDED).size(), 1u);
  EXPECT_EQ(trace_.of(trace::ENDPOINT_ADDED)[0].endpoint(), "10.0.0.9:8080");
  trace_.records.clear();
  set_pod_state("p1", "n2", "10.0.0.9", true);  // the node alone
  run_for(seconds(1));
  auto all = slices();
  ASSERT_EQ(all.size(), 1u);
  ASSERT_EQ(all[0]->endpoints_size(), 2);
  const api::Endpoint& e = all[0]->endpoints(1);
  EXPECT_EQ(all[0]->endpoints(0).addresses(0), "10.0.0.5");
  EXPECT_EQ(e.addresses(0), "10.0.0.9");
  EXPECT_EQ(e.node_name(), "n2");
  EXPECT_EQ(e.target_ref().name(), "p1");
  EXPECT_EQ(e.target_ref().namespace_(), "default");
  EXPECT_EQ(e.target_ref().uid(), get<api::Pod>("default", "p1")->metadata().uid());
  EXPECT_FALSE(e.has_hostname());
  // The same ready endpoint on another node: nothing traced.
  EXPECT_TRUE(trace_.of(trace::ENDPOINT_REMOVED).empty());
  EXPECT_TRUE(trace_.of(trace::ENDPOINT_ADDED).empty());
  api::Pod copy = *get<api::Pod>("default", "p1");
  copy.mutable_spec()->set_hostname("h1");
  copy.mutable_spec()->set_subdomain("web");
  ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  run_for(seconds(1));
  EXPECT_EQ(slices()[0]->endpoints(1).hostname(), "h1");
}

TEST_F(EndpointSliceTest, SlicesOthersRemoveOrEditArePutRight) {
  start(/*max_per_slice=*/2);
  create(make_service("web"));
  ready_pods(4);
  run_for(seconds(1));
  ASSERT_EQ(slices().size(), 2u);
  const size_t traced = trace_.records.size();
  // Someone removes one slice and empties the other.
  ASSERT_TRUE(
      store_.remove(api::Kind::kEndpointSlice, "default", slices()[0]->metadata().name()).is_ok());
  api::EndpointSlice emptied = *slices()[0];
  emptied.clear_endpoints();
  ASSERT_TRUE(store_.update(api::share(std::move(emptied))).is_ok());
  run_for(seconds(1));
  auto now = listed();
  EXPECT_EQ(now.size(), 4u);
  for (const auto& [pod, ready] : now) EXPECT_TRUE(ready) << pod;
  for (const auto& s : slices()) EXPECT_LE(s->endpoints_size(), 2);
  // The endpoints never stopped being ready: nothing traced.
  EXPECT_EQ(trace_.records.size(), traced);
}

TEST_F(EndpointSliceTest, ARestartedControllerAdoptsTheSlicesItFinds) {
  start(/*max_per_slice=*/3);
  create(make_service("web"));
  ready_pods(7);
  run_for(seconds(1));
  const auto before = versions();
  ASSERT_EQ(before.size(), 3u);
  sc_.reset();
  trace_.records.clear();
  start(/*max_per_slice=*/3);
  run_for(seconds(1));
  EXPECT_EQ(versions(), before);  // nothing rewritten
  EXPECT_EQ(sc_->writes(), 0u);
  EXPECT_TRUE(trace_.records.empty());  // nothing appeared
  set_pod_state("p3", "n1", ip(3), false);
  run_for(seconds(1));
  EXPECT_EQ(sc_->writes(), 1u);
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 1u);
}

TEST_F(EndpointSliceTest, TheServicesDeletionOrLostSelectorRemovesItsSlices) {
  start(/*max_per_slice=*/2);
  create(make_service("web"));
  create(make_service("api"));
  ready_pods(3);
  run_for(seconds(1));
  ASSERT_EQ(slices("web").size(), 2u);
  ASSERT_EQ(slices("api").size(), 2u);
  trace_.records.clear();
  ASSERT_TRUE(store_.remove(api::Kind::kService, "default", "web").is_ok());
  run_for(seconds(1));
  EXPECT_TRUE(slices("web").empty());
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 3u);
  // A Service whose selector goes is the user's to fill: this controller's
  // slices of it go.
  api::Service api_svc = *get<api::Service>("default", "api");
  api_svc.mutable_spec()->clear_selector();
  ASSERT_TRUE(store_.update(api::share(std::move(api_svc))).is_ok());
  run_for(seconds(1));
  EXPECT_TRUE(slices("api").empty());
  EXPECT_EQ(trace_.of(trace::ENDPOINT_REMOVED).size(), 6u);
}

// A Service without a selector: the user's Endpoints are mirrored into
// slices the proxy reads, and follow them; skip-mirror and the Service's
// deletion take them away.
TEST_F(EndpointSliceTest, AServiceWithoutSelectorHasTheUsersEndpointsMirrored) {
  start(/*max_per_slice=*/2);
  api::Service svc = make_service("db");
  svc.mutable_spec()->clear_selector();
  create(svc);
  api::Endpoints ep;
  ep.mutable_metadata()->set_name("db");
  ep.mutable_metadata()->set_namespace_("default");
  (*ep.mutable_metadata()->mutable_labels())["team"] = "data";
  auto* subset = ep.add_subsets();
  for (const char* ip : {"192.168.0.1", "192.168.0.2", "192.168.0.3"}) {
    subset->add_addresses()->set_ip(ip);
  }
  subset->add_not_ready_addresses()->set_ip("192.168.0.4");
  auto* port = subset->add_ports();
  port->set_name("sql");
  port->set_port(5432);
  port->set_protocol("TCP");
  create(ep);
  run_for(seconds(1));
  auto all = slices("db");
  ASSERT_EQ(all.size(), 2u);
  std::map<std::string, bool> seen;
  for (const auto& s : all) {
    EXPECT_EQ(s->metadata().labels().at("endpointslice.kubernetes.io/managed-by"),
              "endpointslicemirroring-controller.k8s.io");
    EXPECT_EQ(s->metadata().labels().at("team"), "data");
    EXPECT_EQ(s->address_type(), "IPv4");
    ASSERT_EQ(s->ports_size(), 1);
    EXPECT_EQ(s->ports(0).port(), 5432);
    for (const auto& e : s->endpoints()) seen[e.addresses(0)] = e.conditions().ready();
  }
  EXPECT_EQ(seen, (std::map<std::string, bool>{{"192.168.0.1", true},
                                               {"192.168.0.2", true},
                                               {"192.168.0.3", true},
                                               {"192.168.0.4", false}}));
  EXPECT_TRUE(trace_.records.empty());  // mirrored endpoints are not traced

  // The user drops two addresses: one slice left.
  api::Endpoints smaller = *get<api::Endpoints>("default", "db");
  smaller.mutable_subsets(0)->mutable_addresses()->RemoveLast();
  smaller.mutable_subsets(0)->clear_not_ready_addresses();
  ASSERT_TRUE(store_.update(api::share(smaller)).is_ok());
  run_for(seconds(1));
  ASSERT_EQ(slices("db").size(), 1u);
  EXPECT_EQ(slices("db")[0]->endpoints_size(), 2);

  // skip-mirror: none.
  (*smaller.mutable_metadata()->mutable_labels())["endpointslice.kubernetes.io/skip-mirror"] = "true";
  smaller.mutable_metadata()->clear_resource_version();
  ASSERT_TRUE(store_.update(api::share(smaller)).is_ok());
  run_for(seconds(1));
  EXPECT_TRUE(slices("db").empty());

  // Given a selector, the service's slices are this controller's own.
  (*smaller.mutable_metadata()->mutable_labels()).erase("endpointslice.kubernetes.io/skip-mirror");
  ASSERT_TRUE(store_.update(api::share(smaller)).is_ok());
  run_for(seconds(1));
  ASSERT_EQ(slices("db").size(), 1u);
  ready_pods(1);
  api::Service selected = *get<api::Service>("default", "db");
  (*selected.mutable_spec()->mutable_selector())["app"] = "web";
  ASSERT_TRUE(store_.update(api::share(std::move(selected))).is_ok());
  run_for(seconds(1));
  ASSERT_EQ(slices("db").size(), 1u);
  EXPECT_EQ(slices("db")[0]->metadata().labels().at("endpointslice.kubernetes.io/managed-by"),
            "endpointslice-controller.k8s.io");
  EXPECT_EQ(listed("db"), (std::map<std::string, bool>{{"p0", true}}));

  ASSERT_TRUE(store_.remove(api::Kind::kService, "default", "db").is_ok());
  run_for(seconds(1));
  EXPECT_TRUE(slices("db").empty());
}

}  // namespace
}  // namespace flotilla::ctrl
