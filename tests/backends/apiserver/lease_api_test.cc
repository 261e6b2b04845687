// A kind in an API group over HTTP: coordination.k8s.io/v1 Leases under
// /apis/coordination.k8s.io/v1 (CRUD, every PATCH type, server-side apply,
// list with selectors and paging, watch, deletecollection, Table output),
// 404 under /api/v1 (and core kinds 404 under /apis), group discovery and
// errors that name the group, as kube-apiserver's; on every store. Where each
// store keeps a Lease: etcd key /registry/leases/{ns}/{name}, the durable
// store's log (recovered on reopen).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backends/etcd/etcd_client.h"
#include "backends/etcd/etcd_store.h"
#include "backends/storage/durable_store.h"
#include "tests/backends/apiserver/test_server.h"
#include "tests/backends/etcd/local_etcd.h"

namespace flotilla::apiserver::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kLeases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";

std::string lease_json(const std::string& name, const std::string& holder,
                       const std::string& renew) {
  json l = {
      {"apiVersion", "coordination.k8s.io/v1"},
      {"kind", "Lease"},
      {"metadata", {{"name", name}, {"labels", {{"role", "node"}}}}},
      {"spec", {{"holderIdentity", holder}, {"leaseDurationSeconds", 40}, {"renewTime", renew}}}};
  return l.dump();
}

class LeaseApi : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_kind_available(GetParam()));
    ts_ = std::make_unique<TestServer>(GetParam());
    HttpResult ns = http_request(ts_->port(), "POST", "/api/v1/namespaces",
                                 R"({"metadata":{"name":"kube-node-lease"}})");
    ASSERT_EQ(ns.status, 201) << ns.body;
  }
  HttpResult req(const std::string& method, const std::string& target, const std::string& body = "",
                 const std::string& content_type = "application/json") {
    return http_request(ts_->port(), method, target, body, content_type);
  }
  json get_json(const std::string& target) {
    HttpResult r = req("GET", target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  std::unique_ptr<TestServer> ts_;
};

INSTANTIATE_TEST_SUITE_P(Stores, LeaseApi, ::testing::ValuesIn(all_store_kinds()),
                         [](const auto& p) { return store_kind_name(p.param); });

TEST_P(LeaseApi, CreateGetRenewAndDeleteUnderTheGroupPath) {
  HttpResult c = req("POST", kLeases, lease_json("n1", "n1", "2026-11-30T01:00:00.123456Z"));
  ASSERT_EQ(c.status, 201) << c.body;
  json created = json::parse(c.body);
  EXPECT_EQ(created["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ(created["kind"], "Lease");
  EXPECT_EQ(created["metadata"]["namespace"], "kube-node-lease");
  EXPECT_EQ(created["spec"]["holderIdentity"], "n1");
  EXPECT_EQ(created["spec"]["leaseDurationSeconds"], 40);
  EXPECT_EQ(created["spec"]["renewTime"], "2026-11-30T01:00:00.123456Z");

  json got = get_json(std::string(kLeases) + "/n1");
  EXPECT_EQ(got["metadata"]["uid"], created["metadata"]["uid"]);

  // A renewal is a PUT of the read object with a new renewTime. MicroTime is
  // written with six digits whatever the client sent (Go clients need them).
  got["spec"]["renewTime"] = "2026-11-30T01:00:10.5Z";
  HttpResult u = req("PUT", std::string(kLeases) + "/n1", got.dump());
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_EQ(json::parse(u.body)["spec"]["renewTime"], "2026-11-30T01:00:10.500000Z");
  EXPECT_NE(json::parse(u.body)["metadata"]["resourceVersion"], got["metadata"]["resourceVersion"]);
  // The same PUT again is stale; the message names the group, as kube-apiserver's.
  HttpResult stale = req("PUT", std::string(kLeases) + "/n1", got.dump());
  ASSERT_EQ(stale.status, 409) << stale.body;
  json st = json::parse(stale.body);
  EXPECT_EQ(st["reason"], "Conflict");
  EXPECT_EQ(st["message"].get<std::string>().rfind(
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"n1\"", 0),
            0u)
      << st["message"];

  HttpResult dup = req("POST", kLeases, lease_json("n1", "n1", "2026-11-30T01:00:00Z"));
  ASSERT_EQ(dup.status, 409);
  EXPECT_EQ(json::parse(dup.body)["message"], "leases.coordination.k8s.io \"n1\" already exists");

  HttpResult del = req("DELETE", std::string(kLeases) + "/n1");
  ASSERT_EQ(del.status, 200) << del.body;
  HttpResult gone = req("GET", std::string(kLeases) + "/n1");
  ASSERT_EQ(gone.status, 404);
  json nf = json::parse(gone.body);
  EXPECT_EQ(nf["message"], "leases.coordination.k8s.io \"n1\" not found");
  EXPECT_EQ(nf["details"]["group"], "coordination.k8s.io");
  EXPECT_EQ(nf["details"]["kind"], "leases");
  EXPECT_EQ(nf["details"]["name"], "n1");
  EXPECT_FALSE(ts_->on_loop(
      [&] { return ts_->store().get(api::Kind::kLease, "kube-node-lease", "n1").is_ok(); }));
}

TEST_P(LeaseApi, InvalidLeaseGets422NamingTheGroup) {
  json bad = json::parse(lease_json("n1", "n1", "2026-11-30T01:00:00Z"));
  bad["spec"]["leaseDurationSeconds"] = 0;
  HttpResult r = req("POST", kLeases, bad.dump());
  ASSERT_EQ(r.status, 422) << r.body;
  json st = json::parse(r.body);
  EXPECT_EQ(st["details"]["kind"], "Lease");
  EXPECT_EQ(st["details"]["group"], "coordination.k8s.io");
  ASSERT_EQ(st["details"]["causes"].size(), 1u);
  EXPECT_EQ(st["details"]["causes"][0]["field"], "spec.leaseDurationSeconds");
  EXPECT_NE(st["message"].get<std::string>().find("Lease.coordination.k8s.io \"n1\" is invalid"),
            std::string::npos)
      << st["message"];
  // A body of another kind, or of the right kind in the core group, is refused.
  json wrong_version = json::parse(lease_json("n2", "n2", "2026-11-30T01:00:00Z"));
  wrong_version["apiVersion"] = "v1";
  EXPECT_EQ(req("POST", kLeases, wrong_version.dump()).status, 400);
  // A JSON body without kind and apiVersion takes them from the path.
  HttpResult bare =
      req("POST", kLeases, R"({"metadata":{"name":"n3"},"spec":{"holderIdentity":"x"}})");
  ASSERT_EQ(bare.status, 201) << bare.body;
  EXPECT_EQ(json::parse(bare.body)["apiVersion"], "coordination.k8s.io/v1");
}

TEST_P(LeaseApi, EveryPatchTypeAndServerSideApply) {
  ASSERT_EQ(req("POST", kLeases, lease_json("n1", "n1", "2026-11-30T01:00:00Z")).status, 201);
  std::string one = std::string(kLeases) + "/n1";
  HttpResult merge = req("PATCH", one, R"({"spec":{"renewTime":"2026-11-30T01:00:10.000001Z"}})",
                         "application/merge-patch+json");
  ASSERT_EQ(merge.status, 200) << merge.body;
  EXPECT_EQ(json::parse(merge.body)["spec"]["renewTime"], "2026-11-30T01:00:10.000001Z");
  EXPECT_EQ(json::parse(merge.body)["spec"]["holderIdentity"], "n1");

  HttpResult strategic = req("PATCH", one, R"({"spec":{"leaseTransitions":1}})",
                             "application/strategic-merge-patch+json");
  ASSERT_EQ(strategic.status, 200) << strategic.body;
  EXPECT_EQ(json::parse(strategic.body)["spec"]["leaseTransitions"], 1);
  EXPECT_EQ(json::parse(strategic.body)["spec"]["leaseDurationSeconds"], 40);

  HttpResult jp = req("PATCH", one,
                      R"([{"op":"test","path":"/spec/holderIdentity","value":"n1"},
                          {"op":"replace","path":"/spec/holderIdentity","value":"n9"}])",
                      "application/json-patch+json");
  ASSERT_EQ(jp.status, 200) << jp.body;
  EXPECT_EQ(json::parse(jp.body)["spec"]["holderIdentity"], "n9");

  // Server-side apply creates a missing lease and updates an existing one.
  std::string manifest =
      "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: n2\n"
      "spec:\n  holderIdentity: n2\n  leaseDurationSeconds: 40\n";
  HttpResult a1 = req("PATCH", std::string(kLeases) + "/n2?fieldManager=test", manifest,
                      "application/apply-patch+yaml");
  ASSERT_EQ(a1.status, 201) << a1.body;
  manifest.replace(manifest.find("40"), 2, "15");
  HttpResult a2 = req("PATCH", std::string(kLeases) + "/n2?fieldManager=test", manifest,
                      "application/apply-patch+yaml");
  ASSERT_EQ(a2.status, 200) << a2.body;
  EXPECT_EQ(json::parse(a2.body)["spec"]["leaseDurationSeconds"], 15);

  // Leases have no status subresource.
  EXPECT_EQ(req("PATCH", one + "/status", R"({"spec":{}})", "application/merge-patch+json").status,
            404);
}

TEST_P(LeaseApi, ListAcrossNamespacesWithSelectorsAndPaging) {
  HttpResult ns = req("POST", "/api/v1/namespaces", R"({"metadata":{"name":"other"}})");
  ASSERT_EQ(ns.status, 201);
  for (int i = 0; i < 5; ++i) {
    std::string n = "n" + std::to_string(i);
    ASSERT_EQ(req("POST", kLeases, lease_json(n, n, "2026-11-30T01:00:00Z")).status, 201);
  }
  json elsewhere = json::parse(lease_json("leader", "ctrl-1", "2026-11-30T01:00:00Z"));
  elsewhere["metadata"]["labels"]["role"] = "leader";
  ASSERT_EQ(
      req("POST", "/apis/coordination.k8s.io/v1/namespaces/other/leases", elsewhere.dump()).status,
      201);

  json all = get_json("/apis/coordination.k8s.io/v1/leases");
  EXPECT_EQ(all["kind"], "LeaseList");
  EXPECT_EQ(all["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ(all["items"].size(), 6u);
  json leaders = get_json("/apis/coordination.k8s.io/v1/leases?labelSelector=role%3Dleader");
  ASSERT_EQ(leaders["items"].size(), 1u);
  EXPECT_EQ(leaders["items"][0]["metadata"]["namespace"], "other");
  json by_name = get_json(std::string(kLeases) + "?fieldSelector=metadata.name%3Dn3");
  ASSERT_EQ(by_name["items"].size(), 1u);
  EXPECT_EQ(by_name["items"][0]["spec"]["holderIdentity"], "n3");

  std::vector<std::string> names;
  std::string cont;
  int pages = 0;
  do {
    std::string target = std::string(kLeases) + "?limit=2";
    if (!cont.empty()) target += "&continue=" + cont;
    json page = get_json(target);
    for (const json& item : page["items"]) names.push_back(item["metadata"]["name"]);
    cont = page["metadata"].value("continue", "");
    ++pages;
  } while (!cont.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names, (std::vector<std::string>{"n0", "n1", "n2", "n3", "n4"}));

  HttpResult dc = req("DELETE", std::string(kLeases) + "?labelSelector=role%3Dnode");
  ASSERT_EQ(dc.status, 200) << dc.body;
  EXPECT_EQ(get_json(std::string(kLeases))["items"].size(), 0u);
  EXPECT_EQ(get_json("/apis/coordination.k8s.io/v1/leases")["items"].size(), 1u);
}

TEST_P(LeaseApi, WatchUnderTheGroupPathSeesRenewals) {
  ASSERT_EQ(req("POST", kLeases, lease_json("n1", "n1", "2026-11-30T01:00:00Z")).status, 201);
  StreamClient watch(ts_->port(), std::string(kLeases) + "?watch=true");
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) { return s.find("\"type\":\"ADDED\"") != std::string::npos; }, 5s))
      << watch.received();
  ASSERT_EQ(req("PATCH", std::string(kLeases) + "/n1",
                R"({"spec":{"renewTime":"2026-11-30T01:00:10Z"}})", "application/merge-patch+json")
                .status,
            200);
  ASSERT_EQ(req("DELETE", std::string(kLeases) + "/n1").status, 200);
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) { return s.find("\"type\":\"DELETED\"") != std::string::npos; }, 5s))
      << watch.received();
  const std::string& got = watch.received();
  size_t modified = got.find("\"type\":\"MODIFIED\"");
  ASSERT_NE(modified, std::string::npos) << got;
  EXPECT_NE(got.find("\"renewTime\":\"2026-11-30T01:00:10.000000Z\"", modified), std::string::npos)
      << got;
  EXPECT_NE(got.find("\"apiVersion\":\"coordination.k8s.io/v1\""), std::string::npos);

  // A watch across namespaces, under the group path too.
  StreamClient all(ts_->port(), "/apis/coordination.k8s.io/v1/leases?watch=1");
  ASSERT_EQ(req("POST", kLeases, lease_json("n2", "n2", "2026-11-30T01:00:00Z")).status, 201);
  EXPECT_TRUE(all.read_until(
      [](const std::string& s) { return s.find("\"name\":\"n2\"") != std::string::npos; }, 5s))
      << all.received();
}

TEST_P(LeaseApi, EachKindAnswersOnlyUnderItsOwnGroupVersion) {
  ASSERT_EQ(req("POST", kLeases, lease_json("n1", "n1", "2026-11-30T01:00:00Z")).status, 201);
  // A group kind is not reachable under /api/v1 ...
  for (const char* target :
       {"/api/v1/namespaces/kube-node-lease/leases", "/api/v1/namespaces/kube-node-lease/leases/n1",
        "/api/v1/leases", "/apis/coordination.k8s.io/v2/namespaces/kube-node-lease/leases",
        "/apis/apps/v1/namespaces/kube-node-lease/leases"}) {
    HttpResult r = req("GET", target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(json::parse(r.body)["reason"], "NotFound") << target;
  }
  EXPECT_EQ(req("POST", "/api/v1/namespaces/kube-node-lease/leases",
                lease_json("n2", "n2", "2026-11-30T01:00:00Z"))
                .status,
            404);
  EXPECT_EQ(req("DELETE", "/api/v1/namespaces/kube-node-lease/leases/n1").status, 404);
  EXPECT_TRUE(ts_->on_loop(
      [&] { return ts_->store().get(api::Kind::kLease, "kube-node-lease", "n1").is_ok(); }));
  // ... and a core kind is not reachable under a group.
  for (const char* target :
       {"/apis/coordination.k8s.io/v1/namespaces/default/pods",
        "/apis/coordination.k8s.io/v1/namespaces", "/apis/coordination.k8s.io/v1/nodes",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease"}) {
    EXPECT_EQ(req("GET", target).status, 404) << target;
  }
}

TEST_P(LeaseApi, DiscoveryListsTheGroupAndItsResource) {
  json groups = get_json("/apis");
  EXPECT_EQ(groups["kind"], "APIGroupList");
  // The named groups in kind-table order: coordination.k8s.io (Lease), then
  // discovery.k8s.io (EndpointSlice).
  ASSERT_EQ(groups["groups"].size(), 2u) << groups;
  EXPECT_EQ(groups["groups"][1]["name"], "discovery.k8s.io");
  EXPECT_EQ(groups["groups"][1]["preferredVersion"]["groupVersion"], "discovery.k8s.io/v1");
  json slices = get_json("/apis/discovery.k8s.io/v1");
  ASSERT_EQ(slices["resources"].size(), 1u) << slices;
  EXPECT_EQ(slices["resources"][0]["name"], "endpointslices");
  EXPECT_EQ(slices["resources"][0]["kind"], "EndpointSlice");
  const json& g = groups["groups"][0];
  EXPECT_EQ(g["name"], "coordination.k8s.io");
  ASSERT_EQ(g["versions"].size(), 1u);
  EXPECT_EQ(g["versions"][0]["groupVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ(g["versions"][0]["version"], "v1");
  EXPECT_EQ(g["preferredVersion"]["groupVersion"], "coordination.k8s.io/v1");

  json group = get_json("/apis/coordination.k8s.io");
  EXPECT_EQ(group["kind"], "APIGroup");
  EXPECT_EQ(group["name"], "coordination.k8s.io");
  EXPECT_EQ(group["preferredVersion"]["version"], "v1");

  json resources = get_json("/apis/coordination.k8s.io/v1");
  EXPECT_EQ(resources["kind"], "APIResourceList");
  EXPECT_EQ(resources["groupVersion"], "coordination.k8s.io/v1");
  ASSERT_EQ(resources["resources"].size(), 1u) << resources;
  const json& leases = resources["resources"][0];
  EXPECT_EQ(leases["name"], "leases");
  EXPECT_EQ(leases["singularName"], "lease");
  EXPECT_EQ(leases["kind"], "Lease");
  EXPECT_EQ(leases["namespaced"], true);
  EXPECT_FALSE(leases.contains("shortNames"));
  EXPECT_EQ(leases["verbs"], json::parse(R"(["create","delete","deletecollection","get","list",
                                              "patch","update","watch"])"));

  json core = get_json("/api/v1");
  for (const json& r : core["resources"]) {
    EXPECT_NE(r["name"], "leases");
    if (r.contains("shortNames")) {
      EXPECT_FALSE(r["shortNames"].empty()) << r;
    }
  }

  json index = get_json("/openapi/v3");
  ASSERT_TRUE(index["paths"].contains("apis/coordination.k8s.io/v1")) << index;
  std::string url = index["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"];
  json doc = get_json(url);
  const json& op =
      doc["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["patch"];
  EXPECT_EQ(op["x-kubernetes-group-version-kind"],
            json({{"group", "coordination.k8s.io"}, {"version", "v1"}, {"kind", "Lease"}}));

  for (const char* target : {"/apis/nope.example.com", "/apis/coordination.k8s.io/v2", "/apis/v1",
                             "/openapi/v3/apis/coordination.k8s.io/v2"}) {
    EXPECT_EQ(req("GET", target).status, 404) << target;
  }
}

TEST_P(LeaseApi, TableOutputHasNameHolderAge) {
  ASSERT_EQ(req("POST", kLeases, lease_json("n1", "node-one", "2026-11-30T01:00:00Z")).status, 201);
  HttpResult r = http_request(ts_->port(), "GET", kLeases, "", "application/json",
                              {{"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json t = json::parse(r.body);
  EXPECT_EQ(t["kind"], "Table");
  std::vector<std::string> columns;
  for (const json& c : t["columnDefinitions"]) columns.push_back(c["name"]);
  EXPECT_EQ(columns, (std::vector<std::string>{"Name", "Holder", "Age"}));
  ASSERT_EQ(t["rows"].size(), 1u);
  EXPECT_EQ(t["rows"][0]["cells"][0], "n1");
  EXPECT_EQ(t["rows"][0]["cells"][1], "node-one");
  EXPECT_EQ(t["rows"][0]["object"]["metadata"]["name"], "n1");
  // With includeObject=Object, rows carry the object as a GET returns it.
  HttpResult full = http_request(ts_->port(), "GET", std::string(kLeases) + "?includeObject=Object",
                                 "", "application/json",
                                 {{"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"}});
  ASSERT_EQ(full.status, 200) << full.body;
  json row = json::parse(full.body)["rows"][0]["object"];
  EXPECT_EQ(row["kind"], "Lease");
  EXPECT_EQ(row["spec"]["renewTime"], "2026-11-30T01:00:00.000000Z");
}

TEST_P(LeaseApi, DeletingTheNamespaceDeletesItsLeases) {
  ASSERT_EQ(req("POST", kLeases, lease_json("n1", "n1", "2026-11-30T01:00:00Z")).status, 201);
  ASSERT_EQ(req("DELETE", "/api/v1/namespaces/kube-node-lease").status, 200);
  EXPECT_EQ(get_json("/apis/coordination.k8s.io/v1/leases")["items"].size(), 0u);
}

api::Object lease_object(const std::string& name, int64_t renew_nanos) {
  api::Lease l;
  l.mutable_metadata()->set_name(name);
  l.mutable_metadata()->set_namespace_("kube-node-lease");
  l.mutable_spec()->set_holder_identity(name);
  l.mutable_spec()->set_lease_duration_seconds(40);
  l.mutable_spec()->mutable_renew_time()->set_nanos(renew_nanos);
  return api::share(l);
}

TEST(LeaseStorage, EtcdKeyIsRegistryLeasesNamespaceName) {
  etcd::testing::LocalEtcd* server = etcd::testing::shared_etcd();
  ASSERT_NE(server, nullptr);
  live::AsioEventLoop loop;
  SplitMix64Stream random(3);
  etcd::EtcdOptions eo;
  eo.endpoints = server->endpoints();  // the default prefix, "/registry/"
  auto store = etcd::EtcdStore::open(loop, random, {}, eo);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  ASSERT_TRUE((*store)->create(lease_object("n1", 5)).is_ok());
  etcd::EtcdClient client(server->endpoints(), seconds(5));
  auto kvs = client.range("/registry/leases/", etcd::prefix_end("/registry/leases/"));
  ASSERT_TRUE(kvs.is_ok()) << kvs.status().to_string();
  ASSERT_EQ(kvs->kvs.size(), 1u);
  EXPECT_EQ(kvs->kvs[0].key, "/registry/leases/kube-node-lease/n1");
  api::Lease stored;
  ASSERT_TRUE(stored.ParseFromString(kvs->kvs[0].value));
  EXPECT_EQ(stored.spec().holder_identity(), "n1");
  ASSERT_TRUE((*store)->remove(api::Kind::kLease, "kube-node-lease", "n1").is_ok());
}

TEST(LeaseStorage, DurableLogRecoversLeases) {
  char tmpl[] = "/tmp/flotilla-lease-wal-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  live::AsioEventLoop loop;
  SplitMix64Stream random(3);
  std::string renewed_rv;
  {
    auto s = storage::DurableStore::open(loop, random, {},
                                         {.dir = dir, .sync = storage::SyncMode::kPerWrite});
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    ASSERT_TRUE((*s)->create(lease_object("n1", 5)).is_ok());
    ASSERT_TRUE((*s)->create(lease_object("n2", 5)).is_ok());
    auto cur = (*s)->get(api::Kind::kLease, "kube-node-lease", "n1");
    ASSERT_TRUE(cur.is_ok());
    api::Lease next = *api::as<api::Lease>(*cur);
    next.mutable_spec()->mutable_renew_time()->set_nanos(10'000'000'005);
    auto renewed = (*s)->update(api::share(next));
    ASSERT_TRUE(renewed.is_ok()) << renewed.status().to_string();
    renewed_rv = api::meta_of(**renewed).resource_version();
    ASSERT_TRUE((*s)->remove(api::Kind::kLease, "kube-node-lease", "n2").is_ok());
  }
  auto s = storage::DurableStore::open(loop, random, {}, {.dir = dir});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto all = (*s)->list(api::Kind::kLease, {});
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->items.size(), 1u);
  const auto& lease = *api::as<api::Lease>(all->items[0]);
  EXPECT_EQ(lease.metadata().name(), "n1");
  EXPECT_EQ(lease.metadata().resource_version(), renewed_rv);
  EXPECT_EQ(lease.spec().renew_time().nanos(), 10'000'000'005);
  EXPECT_EQ(lease.api_version(), "coordination.k8s.io/v1");
  s->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace flotilla::apiserver::testing
