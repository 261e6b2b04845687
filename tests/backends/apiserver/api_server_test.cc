// Plain HTTP behaviour of the API server: Status bodies, optimistic
// concurrency, watches, limits, auth, patches and Table output, on every
// store (the same suite passes on the embedded stores and on etcd).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/api/codec.h"
#include "tests/backends/apiserver/test_server.h"

namespace flotilla::apiserver::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Every test runs on each store (InMemory, Durable, Etcd): the API must not
// be able to tell them apart.
class ApiServerHttp : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { ASSERT_TRUE(store_kind_available(GetParam())); }
};

INSTANTIATE_TEST_SUITE_P(Stores, ApiServerHttp, ::testing::ValuesIn(all_store_kinds()),
                         [](const auto& p) { return store_kind_name(p.param); });

constexpr const char* kPod = R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1",
  "labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx:1",
  "ports":[{"containerPort":80}]}]}})";

TEST_P(ApiServerHttp, NotFoundIsAKubernetesStatus) {
  TestServer ts(GetParam());
  HttpResult r = http_request(ts.port(), "GET", "/api/v1/namespaces/default/pods/nope");
  ASSERT_EQ(r.status, 404);
  json st = json::parse(r.body);
  EXPECT_EQ(st["kind"], "Status");
  EXPECT_EQ(st["status"], "Failure");
  EXPECT_EQ(st["reason"], "NotFound");
  EXPECT_EQ(st["code"], 404);
  EXPECT_EQ(st["message"], "pods \"nope\" not found");
  EXPECT_EQ(st["details"]["name"], "nope");
  EXPECT_EQ(st["details"]["kind"], "pods");
}

TEST_P(ApiServerHttp, CreateGetListAndConflictOnStaleVersion) {
  TestServer ts(GetParam());
  HttpResult c = http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods", kPod);
  ASSERT_EQ(c.status, 201) << c.body;
  json created = json::parse(c.body);
  EXPECT_EQ(created["metadata"]["namespace"], "default");
  EXPECT_FALSE(created["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ(created["status"]["phase"], "Pending") << "a new pod starts Pending, as in Kubernetes";

  HttpResult dup = http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods", kPod);
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(json::parse(dup.body)["reason"], "AlreadyExists");

  // A PUT with the current version succeeds; the same PUT again is stale.
  json updated = created;
  updated["metadata"]["labels"]["tier"] = "front";
  HttpResult u1 = http_request(ts.port(), "PUT", "/api/v1/namespaces/default/pods/web-1",
                               updated.dump());
  ASSERT_EQ(u1.status, 200) << u1.body;
  updated["metadata"]["labels"]["tier"] = "back";
  HttpResult u2 = http_request(ts.port(), "PUT", "/api/v1/namespaces/default/pods/web-1",
                               updated.dump());
  ASSERT_EQ(u2.status, 409);
  json st = json::parse(u2.body);
  EXPECT_EQ(st["reason"], "Conflict");
  EXPECT_NE(st["message"].get<std::string>().find("the object has been modified"),
            std::string::npos);

  HttpResult list = http_request(ts.port(), "GET", "/api/v1/pods?labelSelector=tier%3Dfront");
  ASSERT_EQ(list.status, 200);
  json l = json::parse(list.body);
  EXPECT_EQ(l["kind"], "PodList");
  ASSERT_EQ(l["items"].size(), 1u);
  EXPECT_EQ(l["items"][0]["metadata"]["name"], "web-1");
  HttpResult none = http_request(ts.port(), "GET", "/api/v1/pods?labelSelector=tier%3Dback");
  EXPECT_EQ(json::parse(none.body)["items"].size(), 0u);
}

TEST_P(ApiServerHttp, InvalidObjectGets422WithCauses) {
  TestServer ts(GetParam());
  std::string rc = R"({"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"bad"},
    "spec":{"replicas":-1,"selector":{"app":"x"},"template":{"metadata":{"labels":{"app":"x"}},
    "spec":{"containers":[{"name":"c","image":"i"}]}}}})";
  HttpResult r = http_request(ts.port(), "POST",
                              "/api/v1/namespaces/default/replicationcontrollers", rc);
  ASSERT_EQ(r.status, 422) << r.body;
  json st = json::parse(r.body);
  EXPECT_EQ(st["reason"], "Invalid");
  EXPECT_EQ(st["details"]["kind"], "ReplicationController");
  EXPECT_EQ(st["details"]["name"], "bad");
  ASSERT_EQ(st["details"]["causes"].size(), 1u);
  EXPECT_EQ(st["details"]["causes"][0]["field"], "spec.replicas");
  EXPECT_EQ(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
  EXPECT_EQ(st["details"]["causes"][0]["message"],
            "Invalid value: -1: must be greater than or equal to 0");
}

TEST_P(ApiServerHttp, ListPagesWithLimitAndContinue) {
  TestServer ts(GetParam());
  ts.on_loop([&] {
    for (int i = 0; i < 5; ++i) {
      api::Pod p;
      p.mutable_metadata()->set_name("p" + std::to_string(i));
      p.mutable_spec()->add_containers()->set_name("c");
      p.mutable_spec()->mutable_containers(0)->set_image("i");
      ASSERT_TRUE(ts.store().create(api::share(p)).is_ok());
    }
  });
  std::vector<std::string> names;
  std::string cont;
  int pages = 0;
  do {
    std::string target = "/api/v1/namespaces/default/pods?limit=2";
    if (!cont.empty()) target += "&continue=" + cont;
    HttpResult r = http_request(ts.port(), "GET", target);
    ASSERT_EQ(r.status, 200) << r.body;
    json l = json::parse(r.body);
    for (const json& item : l["items"]) names.push_back(item["metadata"]["name"]);
    cont = l["metadata"].value("continue", "");
    ++pages;
  } while (!cont.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(names, (std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"}));
}

TEST_P(ApiServerHttp, WatchStreamsInitialThenLiveEvents) {
  TestServer ts(GetParam());
  ASSERT_EQ(http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods", kPod).status, 201);
  // "True" as Go's ParseBool (and the Python client) spell it.
  StreamClient watch(ts.port(), "/api/v1/namespaces/default/pods?watch=True");
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) { return s.find("\"type\":\"ADDED\"") != std::string::npos; },
      5s))
      << watch.received();
  EXPECT_NE(watch.received().find("Transfer-Encoding: chunked"), std::string::npos);
  HttpResult patch = http_request(ts.port(), "PATCH", "/api/v1/namespaces/default/pods/web-1",
                                  R"({"metadata":{"labels":{"v":"2"}}})",
                                  "application/merge-patch+json");
  ASSERT_EQ(patch.status, 200) << patch.body;
  ASSERT_EQ(http_request(ts.port(), "DELETE", "/api/v1/namespaces/default/pods/web-1").status, 200);
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) { return s.find("\"type\":\"DELETED\"") != std::string::npos; },
      5s))
      << watch.received();
  const std::string& s = watch.received();
  size_t added = s.find("\"type\":\"ADDED\"");
  size_t modified = s.find("\"type\":\"MODIFIED\"");
  size_t deleted = s.find("\"type\":\"DELETED\"");
  ASSERT_NE(modified, std::string::npos);
  EXPECT_LT(added, modified);
  EXPECT_LT(modified, deleted);
  EXPECT_NE(s.find("\"v\":\"2\""), std::string::npos);
  EXPECT_EQ(ts.on_loop([&] { return ts.server().watch_count(); }), 1u);
}

TEST_P(ApiServerHttp, WatchFromAnExpiredVersionGetsExpired410) {
  TestServer ts(GetParam(), {}, /*history_size=*/5);
  for (int i = 0; i < 12; ++i) {
    std::string body = R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns)" +
                       std::to_string(i) + R"("}})";
    ASSERT_EQ(http_request(ts.port(), "POST", "/api/v1/namespaces", body).status, 201);
  }
  HttpResult r = http_request(ts.port(), "GET", "/api/v1/namespaces?watch=1&resourceVersion=1");
  ASSERT_EQ(r.status, 200);
  json ev = json::parse(r.body);
  EXPECT_EQ(ev["type"], "ERROR");
  EXPECT_EQ(ev["object"]["code"], 410);
  EXPECT_EQ(ev["object"]["reason"], "Expired");
}

TEST_P(ApiServerHttp, BodiesOverThreeMiBAreRefusedWith413) {
  TestServer ts(GetParam());
  std::string big(3 * 1024 * 1024 + 10, ' ');
  HttpResult r = http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods", big);
  ASSERT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body)["kind"], "Status");
  EXPECT_EQ(json::parse(r.body)["code"], 413);
}

TEST_P(ApiServerHttp, TokenIsRequiredWhenConfigured) {
  ApiServerOptions o;
  o.token = "s3cret";
  TestServer ts(GetParam(), o);
  HttpResult anon = http_request(ts.port(), "GET", "/api/v1/namespaces");
  ASSERT_EQ(anon.status, 401);
  EXPECT_EQ(json::parse(anon.body)["reason"], "Unauthorized");
  HttpResult wrong = http_request(ts.port(), "GET", "/api/v1/namespaces", "", "application/json",
                                  {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401);
  HttpResult ok = http_request(ts.port(), "GET", "/api/v1/namespaces", "", "application/json",
                               {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(ok.status, 200);
}

TEST_P(ApiServerHttp, StrategicMergePatchMergesContainersByName) {
  TestServer ts(GetParam());
  ASSERT_EQ(http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods", kPod).status, 201);
  HttpResult r = http_request(
      ts.port(), "PATCH", "/api/v1/namespaces/default/pods/web-1",
      R"({"spec":{"containers":[{"name":"web","image":"nginx:2"}]}})",
      "application/strategic-merge-patch+json");
  ASSERT_EQ(r.status, 200) << r.body;
  json pod = json::parse(r.body);
  ASSERT_EQ(pod["spec"]["containers"].size(), 1u);
  EXPECT_EQ(pod["spec"]["containers"][0]["image"], "nginx:2");
  // The port survived: the container was merged, not replaced.
  EXPECT_EQ(pod["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
  // A merge patch replaces the list instead: the port goes, which Kubernetes
  // forbids on a pod update (422 naming the rule).
  HttpResult m = http_request(ts.port(), "PATCH", "/api/v1/namespaces/default/pods/web-1",
                              R"({"spec":{"containers":[{"name":"web","image":"nginx:3"}]}})",
                              "application/merge-patch+json");
  ASSERT_EQ(m.status, 422) << m.body;
  EXPECT_EQ(json::parse(m.body)["details"]["causes"][0]["reason"], "FieldValueForbidden");
}

TEST_P(ApiServerHttp, ScaleSubresourceAndStatusKeptOnMainUpdates) {
  TestServer ts(GetParam());
  std::string rc = R"({"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"web"},
    "spec":{"replicas":2,"selector":{"app":"web"},"template":{"metadata":{"labels":{"app":"web"}},
    "spec":{"containers":[{"name":"c","image":"i"}]}}},"status":{"replicas":7}})";
  HttpResult c = http_request(ts.port(), "POST",
                              "/api/v1/namespaces/default/replicationcontrollers", rc);
  ASSERT_EQ(c.status, 201) << c.body;
  HttpResult s = http_request(ts.port(), "GET",
                              "/api/v1/namespaces/default/replicationcontrollers/web/scale");
  ASSERT_EQ(s.status, 200);
  json scale = json::parse(s.body);
  EXPECT_EQ(scale["kind"], "Scale");
  EXPECT_EQ(scale["apiVersion"], "autoscaling/v1");
  EXPECT_EQ(scale["spec"]["replicas"], 2);
  EXPECT_EQ(scale["status"]["selector"], "app=web");
  HttpResult p = http_request(ts.port(), "PATCH",
                              "/api/v1/namespaces/default/replicationcontrollers/web/scale",
                              R"({"spec":{"replicas":5}})", "application/merge-patch+json");
  ASSERT_EQ(p.status, 200) << p.body;
  HttpResult st = http_request(
      ts.port(), "PATCH", "/api/v1/namespaces/default/replicationcontrollers/web/status",
      R"({"status":{"replicas":3,"readyReplicas":2}})", "application/merge-patch+json");
  ASSERT_EQ(st.status, 200) << st.body;
  // A main-resource patch cannot change status.
  HttpResult main = http_request(ts.port(), "PATCH",
                                 "/api/v1/namespaces/default/replicationcontrollers/web",
                                 R"({"status":{"replicas":99}})", "application/merge-patch+json");
  ASSERT_EQ(main.status, 200);
  json got = json::parse(
      http_request(ts.port(), "GET", "/api/v1/namespaces/default/replicationcontrollers/web").body);
  EXPECT_EQ(got["spec"]["replicas"], 5);
  EXPECT_EQ(got["status"]["replicas"], 3);
  EXPECT_EQ(got["status"]["readyReplicas"], 2);
}

TEST_P(ApiServerHttp, TableOutputHasKubectlColumns) {
  TestServer ts(GetParam());
  ASSERT_EQ(http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods", kPod).status, 201);
  HttpResult r = http_request(ts.port(), "GET", "/api/v1/namespaces/default/pods", "",
                              "application/json",
                              {{"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"}});
  ASSERT_EQ(r.status, 200);
  json t = json::parse(r.body);
  EXPECT_EQ(t["kind"], "Table");
  std::vector<std::string> cols;
  for (const json& c : t["columnDefinitions"]) {
    if (c["priority"] == 0) cols.push_back(c["name"]);
  }
  EXPECT_EQ(cols, (std::vector<std::string>{"Name", "Ready", "Status", "Restarts", "Age"}));
  ASSERT_EQ(t["rows"].size(), 1u);
  EXPECT_EQ(t["rows"][0]["cells"][0], "web-1");
  EXPECT_EQ(t["rows"][0]["cells"][1], "0/1");
  EXPECT_EQ(t["rows"][0]["cells"][2], "Pending");
  EXPECT_EQ(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

TEST_P(ApiServerHttp, EventsFilterByInvolvedObject) {
  TestServer ts(GetParam());
  ts.on_loop([&] {
    for (const char* target : {"a", "b"}) {
      api::Event e;
      e.mutable_metadata()->set_name(std::string("ev-") + target);
      e.mutable_involved_object()->set_kind("Pod");
      e.mutable_involved_object()->set_name(target);
      e.mutable_involved_object()->set_namespace_("default");
      e.set_reason("Scheduled");
      e.set_message(std::string("placed ") + target);
      ASSERT_TRUE(ts.store().create(api::share(e)).is_ok());
    }
  });
  HttpResult r = http_request(
      ts.port(), "GET",
      "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Db,"
      "involvedObject.kind%3DPod");
  ASSERT_EQ(r.status, 200) << r.body;
  json l = json::parse(r.body);
  ASSERT_EQ(l["items"].size(), 1u);
  EXPECT_EQ(l["items"][0]["message"], "placed b");
  HttpResult bad = http_request(ts.port(), "GET",
                                "/api/v1/pods?fieldSelector=involvedObject.name%3Db");
  EXPECT_EQ(bad.status, 400);
}

}  // namespace
}  // namespace flotilla::apiserver::testing
