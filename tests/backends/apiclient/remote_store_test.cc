// RemoteStore and ApiClient against an in-process ApiServer over an
// InMemoryStore, all on one AsioEventLoop driven by the test (no Docker):
// the informer cache follows the server, writes land (status through the
// status subresource), conflicts are caught at once or rebased, the cache
// recovers after the server restarts, and failed writes are redelivered.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backends/apiclient/api_client.h"
#include "backends/apiclient/remote_store.h"
#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "core/api/validation.h"
#include "core/store/in_memory_store.h"

namespace flotilla::apiclient {
namespace {

api::Pod make_pod(const std::string& name, const std::string& node) {
  api::Pod p;
  p.set_api_version("v1");
  p.set_kind("Pod");
  p.mutable_metadata()->set_name(name);
  p.mutable_metadata()->set_namespace_("default");
  (*p.mutable_metadata()->mutable_labels())["app"] = "web";
  p.mutable_spec()->set_node_name(node);
  api::Container* c = p.mutable_spec()->add_containers();
  c->set_name("web");
  c->set_image("flotilla/demo-server");
  return p;
}

class RemoteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StoreOptions so;
    so.enforce_namespaces = true;
    so.validator = [](const google::protobuf::Message& obj,
                      const google::protobuf::Message* old) {
      return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
    };
    server_store_ = std::make_unique<store::InMemoryStore>(loop_, random_, so);
    api::Namespace ns;
    ns.mutable_metadata()->set_name("default");
    ASSERT_TRUE(server_store_->create(api::share(ns)).is_ok());
    start_server(0);
    ApiClientOptions co;
    co.server = "http://127.0.0.1:" + std::to_string(port_);
    auto c = ApiClient::create(loop_.io_context(), co);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    client_ = std::move(*c);
  }

  void start_server(uint16_t port) {
    apiserver::ApiServerOptions o;
    o.address = "127.0.0.1";
    o.port = port;
    server_ = std::make_unique<apiserver::ApiServer>(loop_, *server_store_, o);
    Status s = server_->start();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    port_ = server_->port();
  }

  // The agent's view: its own pods and its own Node.
  std::unique_ptr<RemoteStore> make_remote(RemoteStoreOptions o = {}) {
    InformerSpec pods;
    pods.kind = api::Kind::kPod;
    pods.fields = *api::FieldSelector::parse("spec.nodeName=n1");
    InformerSpec nodes;
    nodes.kind = api::Kind::kNode;
    nodes.fields = *api::FieldSelector::parse("metadata.name=n1");
    o.informers = {pods, nodes};
    auto r = std::make_unique<RemoteStore>(loop_, *client_, o);
    r->start();
    return r;
  }

  bool run_until(const std::function<bool()>& done) {
    return loop_.run_until(done, seconds(10));
  }

  api::Object server_get(const std::string& name) {
    auto o = server_store_->get(api::Kind::kPod, "default", name);
    return o.is_ok() ? *o : nullptr;
  }

  live::AsioEventLoop loop_;
  apiserver::SplitMix64Stream random_{7};
  std::unique_ptr<store::InMemoryStore> server_store_;
  std::unique_ptr<apiserver::ApiServer> server_;
  uint16_t port_ = 0;
  std::unique_ptr<ApiClient> client_;
};

TEST_F(RemoteStoreTest, CacheHoldsTheSelectedObjectsAndFollowsTheWatch) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  ASSERT_TRUE(server_store_->create(api::share(make_pod("b", "n2"))).is_ok());
  auto remote = make_remote();
  ASSERT_TRUE(run_until([&] { return remote->synced() && remote->connected(); }))
      << remote->last_error().to_string();

  auto list = remote->list(api::Kind::kPod, {});
  ASSERT_TRUE(list.is_ok());
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(api::meta_of(*list->items[0]).name(), "a");
  EXPECT_TRUE(remote->get(api::Kind::kPod, "default", "a").is_ok());
  EXPECT_EQ(remote->get(api::Kind::kPod, "default", "b").status().code(), StatusCode::kNotFound);

  std::vector<std::string> seen;
  WatchOptions wo;
  wo.resource_version = list->resource_version;
  auto w = remote->watch(api::Kind::kPod, wo, [&](const WatchEvent& e) {
    seen.push_back(std::string(e.type == WatchEventType::kAdded      ? "ADDED "
                               : e.type == WatchEventType::kModified ? "MODIFIED "
                                                                     : "DELETED ") +
                   api::meta_of(*e.object).name());
  });
  ASSERT_TRUE(w.is_ok());
  // Changes made on the server reach the cache and the local watch, in order;
  // a pod moving onto the node arrives as ADDED.
  ASSERT_TRUE(server_store_->create(api::share(make_pod("c", "n1"))).is_ok());
  ASSERT_TRUE(server_store_->remove(api::Kind::kPod, "default", "a").is_ok());
  ASSERT_TRUE(server_store_->create(api::share(make_pod("d", "n2"))).is_ok());
  ASSERT_TRUE(run_until([&] { return seen.size() >= 2; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED c", "DELETED a"}));
  EXPECT_TRUE(remote->get(api::Kind::kPod, "default", "c").is_ok());
  EXPECT_EQ(remote->get(api::Kind::kPod, "default", "a").status().code(), StatusCode::kNotFound);
  // Its version moved with the changes it saw (not with pod d's, outside its selection).
  EXPECT_GT(remote->resource_version(), list->resource_version);
  EXPECT_LT(remote->resource_version(), server_store_->resource_version());
  // A kind with no informer cannot be listed or watched.
  EXPECT_EQ(remote->list(api::Kind::kService, {}).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(RemoteStoreTest, UpdateWritesLabelsAndStatusThroughTheStatusSubresource) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  auto remote = make_remote();
  ASSERT_TRUE(run_until([&] { return remote->synced(); }));
  api::Pod p = *api::as<api::Pod>(*remote->get(api::Kind::kPod, "default", "a"));
  (*p.mutable_metadata()->mutable_labels())["tier"] = "front";
  p.mutable_status()->set_phase("Running");
  p.mutable_status()->set_pod_ip("10.1.2.3");
  auto written = remote->update(api::share(p));
  ASSERT_TRUE(written.is_ok()) << written.status().to_string();
  EXPECT_EQ(api::as<api::Pod>(*written)->status().phase(), "Running");

  ASSERT_TRUE(run_until([&] {
    auto s = api::as<api::Pod>(server_get("a"));
    return s->status().pod_ip() == "10.1.2.3" && s->metadata().labels().count("tier") == 1;
  })) << remote->last_error().to_string();
  EXPECT_EQ(api::as<api::Pod>(server_get("a"))->status().phase(), "Running");
  // The echo reaches the cache.
  ASSERT_TRUE(run_until([&] {
    return api::as<api::Pod>(*remote->get(api::Kind::kPod, "default", "a"))->status().pod_ip() ==
           "10.1.2.3";
  }));
  EXPECT_EQ(remote->stats().writes_failed, 0u);
  EXPECT_EQ(remote->pending_writes(), 0u);
}

TEST_F(RemoteStoreTest, StaleVersionConflictsAtOnceAndAServerConflictIsRebased) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  auto remote = make_remote();
  ASSERT_TRUE(run_until([&] { return remote->synced(); }));
  api::Pod cached = *api::as<api::Pod>(*remote->get(api::Kind::kPod, "default", "a"));

  // Stale against the cache: kConflict at once, with Kubernetes' wording.
  api::Pod stale = cached;
  stale.mutable_metadata()->set_resource_version("1");
  auto r = remote->update(api::share(stale));
  ASSERT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_NE(r.status().message().find("the object has been modified"), std::string::npos);

  // Someone writes on the server; before the cache hears of it, the agent
  // writes status on the old version. The server says 409; the write is
  // rebased on the fresh object: both the foreign label and the status stay.
  api::Pod foreign = *api::as<api::Pod>(server_get("a"));
  (*foreign.mutable_metadata()->mutable_labels())["owner"] = "someone";
  ASSERT_TRUE(server_store_->update(api::share(foreign)).is_ok());
  api::Pod mine = cached;
  mine.mutable_status()->set_phase("Running");
  ASSERT_TRUE(remote->update(api::share(mine)).is_ok());
  ASSERT_TRUE(run_until([&] {
    return api::as<api::Pod>(server_get("a"))->status().phase() == "Running";
  })) << remote->last_error().to_string();
  EXPECT_EQ(api::as<api::Pod>(server_get("a"))->metadata().labels().at("owner"), "someone");
  EXPECT_GE(remote->stats().rebased, 1u);
  EXPECT_EQ(remote->stats().writes_failed, 0u);
}

TEST_F(RemoteStoreTest, WritesQueuedForOneObjectLandInOrder) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  auto remote = make_remote();
  ASSERT_TRUE(run_until([&] { return remote->synced(); }));
  api::Pod p = *api::as<api::Pod>(*remote->get(api::Kind::kPod, "default", "a"));
  // Three status writes built on the same cached version, as an agent makes
  // them before the first echo arrives: the last one wins, none fails.
  for (const char* phase : {"Pending", "Running", "Succeeded"}) {
    api::Pod q = p;
    q.mutable_status()->set_phase(phase);
    ASSERT_TRUE(remote->update(api::share(q)).is_ok());
  }
  ASSERT_TRUE(run_until([&] { return remote->pending_writes() == 0; }));
  EXPECT_EQ(api::as<api::Pod>(server_get("a"))->status().phase(), "Succeeded");
  EXPECT_EQ(remote->stats().writes_failed, 0u) << remote->last_error().to_string();
}

TEST_F(RemoteStoreTest, CreateAndRemoveWithPreconditions) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  auto remote = make_remote();
  ASSERT_TRUE(run_until([&] { return remote->synced(); }));

  api::Node n;
  n.mutable_metadata()->set_name("n1");
  (*n.mutable_status()->mutable_capacity())["cpu"] = "4";
  ASSERT_TRUE(remote->create(api::share(n)).is_ok());
  ASSERT_TRUE(run_until([&] { return remote->get(api::Kind::kNode, "", "n1").is_ok(); }))
      << remote->last_error().to_string();
  auto stored = server_store_->get(api::Kind::kNode, "", "n1");
  ASSERT_TRUE(stored.is_ok());
  EXPECT_EQ(api::as<api::Node>(*stored)->status().capacity().at("cpu"), "4");
  // Creating it again is refused at once from the cache.
  EXPECT_EQ(remote->create(api::share(n)).status().code(), StatusCode::kAlreadyExists);

  DeleteOptions wrong;
  wrong.uid = "not-its-uid";
  EXPECT_EQ(remote->remove(api::Kind::kPod, "default", "a", wrong).status().code(),
            StatusCode::kConflict);
  DeleteOptions right;
  right.uid = api::meta_of(*server_get("a")).uid();
  ASSERT_TRUE(remote->remove(api::Kind::kPod, "default", "a", right).is_ok());
  ASSERT_TRUE(run_until([&] { return server_get("a") == nullptr; }));
  ASSERT_TRUE(run_until([&] {
    return remote->get(api::Kind::kPod, "default", "a").status().code() == StatusCode::kNotFound;
  }));
}

TEST_F(RemoteStoreTest, CacheCatchesUpAfterTheServerRestarts) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  RemoteStoreOptions o;
  o.retry_initial = milliseconds(50);
  o.retry_max = milliseconds(200);
  auto remote = make_remote(o);
  ASSERT_TRUE(run_until([&] { return remote->synced() && remote->connected(); }));
  std::vector<std::string> seen;
  auto w = remote->watch(api::Kind::kPod, {}, [&](const WatchEvent& e) {
    seen.push_back(api::meta_of(*e.object).name() +
                   (e.type == WatchEventType::kDeleted ? "-" : "+"));
  });
  ASSERT_TRUE(w.is_ok());

  // The server goes away; the store changes meanwhile.
  server_->stop();
  server_.reset();
  ASSERT_TRUE(run_until([&] { return !remote->connected(); }));
  ASSERT_TRUE(server_store_->remove(api::Kind::kPod, "default", "a").is_ok());
  ASSERT_TRUE(server_store_->create(api::share(make_pod("b", "n1"))).is_ok());
  start_server(port_);

  // The informer reconnects, re-lists and tells the watcher the difference.
  ASSERT_TRUE(run_until([&] { return seen.size() >= 2 && remote->connected(); }))
      << remote->last_error().to_string();
  EXPECT_EQ(seen, (std::vector<std::string>{"a-", "b+"}));
  EXPECT_GE(remote->stats().relists, 1u);
  EXPECT_EQ(remote->get(api::Kind::kPod, "default", "a").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(remote->get(api::Kind::kPod, "default", "b").is_ok());
}

TEST_F(RemoteStoreTest, AWriteThatFailsIsRedeliveredSoTheAgentWritesAgain) {
  ASSERT_TRUE(server_store_->create(api::share(make_pod("a", "n1"))).is_ok());
  RemoteStoreOptions o;
  o.redeliver_after = milliseconds(100);
  o.retry_initial = seconds(30);  // keep the informer away while the server is down
  auto remote = make_remote(o);
  ASSERT_TRUE(run_until([&] { return remote->synced(); }));
  int modified = 0;
  auto w = remote->watch(api::Kind::kPod, {}, [&](const WatchEvent& e) {
    if (e.type == WatchEventType::kModified) ++modified;
  });
  ASSERT_TRUE(w.is_ok());
  server_->stop();
  api::Pod p = *api::as<api::Pod>(*remote->get(api::Kind::kPod, "default", "a"));
  p.mutable_status()->set_phase("Running");
  ASSERT_TRUE(remote->update(api::share(p)).is_ok());
  ASSERT_TRUE(run_until([&] { return modified >= 1; }));
  EXPECT_EQ(remote->stats().writes_failed, 1u);
  EXPECT_EQ(remote->last_error().code(), StatusCode::kUnavailable);
  EXPECT_NE(remote->last_error().message().find("update pods/a"), std::string::npos)
      << remote->last_error().to_string();
}

TEST(ApiClientTest, UrlsAndErrors) {
  live::AsioEventLoop loop;
  auto https = ApiClient::create(loop.io_context(), {.server = "https://10.0.0.1:6443"});
  ASSERT_EQ(https.status().code(), StatusCode::kInvalid);
  EXPECT_NE(https.status().message().find("https is not supported yet"), std::string::npos);
  EXPECT_EQ(ApiClient::create(loop.io_context(), {.server = "10.0.0.1:6443"}).status().code(),
            StatusCode::kInvalid);
  auto v6 = ApiClient::create(loop.io_context(), {.server = "http://[::1]:6443/"});
  ASSERT_TRUE(v6.is_ok());
  EXPECT_EQ((*v6)->host(), "::1");
  EXPECT_EQ((*v6)->port(), "6443");

  Status nf = status_from_reply(
      404, R"({"kind":"Status","status":"Failure","message":"pods \"x\" not found",)"
           R"("reason":"NotFound","code":404})");
  EXPECT_EQ(nf.code(), StatusCode::kNotFound);
  EXPECT_EQ(nf.message(), "pods \"x\" not found");
  EXPECT_EQ(status_from_reply(409, R"({"reason":"AlreadyExists","message":"m"})").code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(status_from_reply(409, R"({"reason":"Conflict","message":"m"})").code(),
            StatusCode::kConflict);
  EXPECT_EQ(status_from_reply(502, "bad gateway").code(), StatusCode::kInternal);
}

TEST(ApiClientTest, ATokenIsSentAndAMissingOneIsUnauthorized) {
  live::AsioEventLoop loop;
  apiserver::SplitMix64Stream random{1};
  store::InMemoryStore store(loop, random);
  apiserver::ApiServerOptions so;
  so.port = 0;
  so.token = "s3cret";
  apiserver::ApiServer server(loop, store, so);
  ASSERT_TRUE(server.start().is_ok());
  std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  auto without = ApiClient::create(loop.io_context(), {.server = url});
  auto with = ApiClient::create(loop.io_context(), {.server = url, .token = "s3cret"});
  ASSERT_TRUE(without.is_ok() && with.is_ok());
  std::optional<StatusOr<std::string>> a, b;
  (*without)->call("GET", "/api/v1/nodes", "", [&](StatusOr<std::string> r) { a = r; });
  (*with)->call("GET", "/api/v1/nodes", "", [&](StatusOr<std::string> r) { b = r; });
  ASSERT_TRUE(loop.run_until([&] { return a && b; }, seconds(10)));
  EXPECT_EQ(a->status().code(), StatusCode::kUnauthorized);
  ASSERT_TRUE(b->is_ok()) << b->status().to_string();
  EXPECT_NE(b->value().find("NodeList"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::apiclient
