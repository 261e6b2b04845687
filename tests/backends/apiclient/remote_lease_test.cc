// A RemoteStore reaches a kind in an API group (coordination.k8s.io/v1
// Lease) under /apis/coordination.k8s.io/v1: an agent's informer lists and
// watches its Lease, creates it, renews it (PUT) and deletes it; an agent
// with no Lease informer renews through the objects it wrote. One
// AsioEventLoop driven by the test, an in-process ApiServer over an
// InMemoryStore, no Docker.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "backends/apiclient/api_client.h"
#include "backends/apiclient/remote_store.h"
#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "core/api/validation.h"
#include "core/store/in_memory_store.h"

namespace flotilla::apiclient {
namespace {

constexpr const char* kNs = "kube-node-lease";

api::Lease make_lease(const std::string& node, int64_t renew_nanos) {
  api::Lease l;
  l.mutable_metadata()->set_name(node);
  l.mutable_metadata()->set_namespace_(kNs);
  l.mutable_spec()->set_holder_identity(node);
  l.mutable_spec()->set_lease_duration_seconds(40);
  l.mutable_spec()->mutable_renew_time()->set_nanos(renew_nanos);
  return l;
}

class RemoteLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StoreOptions so;
    so.enforce_namespaces = true;
    so.validator = [](const google::protobuf::Message& obj, const google::protobuf::Message* old) {
      return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
    };
    server_store_ = std::make_unique<store::InMemoryStore>(loop_, random_, so);
    for (const char* name : {"default", kNs}) {
      api::Namespace ns;
      ns.mutable_metadata()->set_name(name);
      ASSERT_TRUE(server_store_->create(api::share(ns)).is_ok());
    }
    apiserver::ApiServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    server_ = std::make_unique<apiserver::ApiServer>(loop_, *server_store_, o);
    Status s = server_->start();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    ApiClientOptions co;
    co.server = "http://127.0.0.1:" + std::to_string(server_->port());
    auto c = ApiClient::create(loop_.io_context(), co);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    client_ = std::move(*c);
  }

  bool run_until(const std::function<bool()>& done) { return loop_.run_until(done, seconds(10)); }

  // The server's renewTime of `node`'s lease (-1: none).
  int64_t server_renew(const std::string& node) {
    auto o = server_store_->get(api::Kind::kLease, kNs, node);
    return o.is_ok() ? api::as<api::Lease>(*o)->spec().renew_time().nanos() : -1;
  }

  live::AsioEventLoop loop_;
  apiserver::SplitMix64Stream random_{11};
  std::unique_ptr<store::InMemoryStore> server_store_;
  std::unique_ptr<apiserver::ApiServer> server_;
  std::unique_ptr<ApiClient> client_;
};

TEST(CollectionUri, UsesTheKindsGroupPath) {
  EXPECT_EQ(collection_uri(api::Kind::kLease, "kube-node-lease"),
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases");
  EXPECT_EQ(collection_uri(api::Kind::kLease, ""), "/apis/coordination.k8s.io/v1/leases");
  EXPECT_EQ(collection_uri(api::Kind::kPod, "default"), "/api/v1/namespaces/default/pods");
  EXPECT_EQ(collection_uri(api::Kind::kNode, "default"), "/api/v1/nodes");
}

TEST_F(RemoteLeaseTest, InformerListsWatchesCreatesAndRenewsTheNodesLease) {
  // Another node's lease exists already; the informer selects only n1's.
  ASSERT_TRUE(server_store_->create(api::share(make_lease("n2", 1000))).is_ok());
  RemoteStoreOptions ro;
  InformerSpec leases;
  leases.kind = api::Kind::kLease;
  leases.ns = kNs;
  leases.fields = *api::FieldSelector::parse("metadata.name=n1");
  ro.informers = {leases};
  RemoteStore remote(loop_, *client_, ro);
  remote.start();
  ASSERT_TRUE(run_until([&] { return remote.synced() && remote.connected(); }))
      << remote.last_error().to_string();
  auto empty = remote.list(api::Kind::kLease, {});
  ASSERT_TRUE(empty.is_ok()) << empty.status().to_string();
  EXPECT_EQ(empty->items.size(), 0u);

  constexpr int64_t kSecond = 1'000'000'000;
  const int64_t t0 = 1'796'000'000 * kSecond + 123'456'000;
  ASSERT_TRUE(remote.create(api::share(make_lease("n1", t0))).is_ok());
  ASSERT_TRUE(run_until([&] { return server_renew("n1") == t0; }))
      << remote.last_error().to_string();
  // The watch brings the server's object (with its resourceVersion) into the cache.
  ASSERT_TRUE(run_until([&] {
    auto l = remote.get(api::Kind::kLease, kNs, "n1");
    return l.is_ok() && !api::meta_of(**l).resource_version().empty();
  }));

  // Three renewals, ten seconds apart, each on the version the last one wrote.
  for (int i = 1; i <= 3; ++i) {
    auto cur = remote.get(api::Kind::kLease, kNs, "n1");
    ASSERT_TRUE(cur.is_ok());
    api::Lease next = *api::as<api::Lease>(*cur);
    next.mutable_spec()->mutable_renew_time()->set_nanos(t0 + i * 10 * kSecond);
    std::string rv = next.metadata().resource_version();
    ASSERT_TRUE(remote.update(api::share(next)).is_ok());
    ASSERT_TRUE(run_until([&] {
      auto l = remote.get(api::Kind::kLease, kNs, "n1");
      return server_renew("n1") == t0 + i * 10 * kSecond && l.is_ok() &&
             api::meta_of(**l).resource_version() != rv;
    })) << remote.last_error().to_string();
  }
  EXPECT_EQ(remote.stats().writes_failed, 0u) << remote.last_error().to_string();
  auto server_lease = server_store_->get(api::Kind::kLease, kNs, "n1");
  ASSERT_TRUE(server_lease.is_ok());
  EXPECT_EQ(api::as<api::Lease>(*server_lease)->spec().holder_identity(), "n1");
  EXPECT_EQ(api::as<api::Lease>(*server_lease)->spec().lease_duration_seconds(), 40);

  // A change made on the server reaches the cache (the lease taken over).
  api::Lease taken = *api::as<api::Lease>(*server_lease);
  taken.mutable_spec()->set_holder_identity("n1-restarted");
  ASSERT_TRUE(server_store_->update(api::share(taken)).is_ok());
  ASSERT_TRUE(run_until([&] {
    auto l = remote.get(api::Kind::kLease, kNs, "n1");
    return l.is_ok() && api::as<api::Lease>(*l)->spec().holder_identity() == "n1-restarted";
  }));
  EXPECT_EQ(remote.get(api::Kind::kLease, kNs, "n2").status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(remote.remove(api::Kind::kLease, kNs, "n1").is_ok());
  ASSERT_TRUE(run_until([&] { return server_renew("n1") == -1; }));
  ASSERT_TRUE(run_until([&] { return !remote.get(api::Kind::kLease, kNs, "n1").is_ok(); }));
  EXPECT_EQ(server_renew("n2"), 1000) << "the other node's lease is untouched";
}

TEST_F(RemoteLeaseTest, WithoutAnInformerRenewsTheLeaseItWrote) {
  RemoteStore remote(loop_, *client_, {});
  remote.start();
  constexpr int64_t kSecond = 1'000'000'000;
  const int64_t t0 = 1'796'000'000 * kSecond;
  ASSERT_TRUE(remote.create(api::share(make_lease("n1", t0))).is_ok());
  ASSERT_TRUE(run_until([&] { return remote.pending_writes() == 0; }));
  ASSERT_EQ(server_renew("n1"), t0) << remote.last_error().to_string();
  auto written = remote.get(api::Kind::kLease, kNs, "n1");
  ASSERT_TRUE(written.is_ok());
  EXPECT_FALSE(api::meta_of(**written).resource_version().empty())
      << "the remembered lease is the server's reply";

  api::Lease next = *api::as<api::Lease>(*written);
  next.mutable_spec()->mutable_renew_time()->set_nanos(t0 + 10 * kSecond);
  ASSERT_TRUE(remote.update(api::share(next)).is_ok());
  ASSERT_TRUE(run_until([&] { return remote.pending_writes() == 0; }));
  EXPECT_EQ(server_renew("n1"), t0 + 10 * kSecond) << remote.last_error().to_string();
  EXPECT_EQ(remote.stats().writes_failed, 0u);
}

// An agent that restarts finds its lease on the server: the create is
// refused (AlreadyExists, not a failure) and the renewal, built on the lease
// as it sent it (no resourceVersion), is an unconditional PUT that lands.
TEST_F(RemoteLeaseTest, WithoutAnInformerARestartedAgentRenewsItsExistingLease) {
  constexpr int64_t kSecond = 1'000'000'000;
  const int64_t t0 = 1'796'000'000 * kSecond;
  ASSERT_TRUE(server_store_->create(api::share(make_lease("n1", t0))).is_ok());
  RemoteStore remote(loop_, *client_, {});
  remote.start();
  ASSERT_TRUE(remote.create(api::share(make_lease("n1", t0 + kSecond))).is_ok());
  ASSERT_TRUE(run_until([&] { return remote.pending_writes() == 0; }));
  EXPECT_EQ(server_renew("n1"), t0) << "the create did not overwrite";
  auto mine = remote.get(api::Kind::kLease, kNs, "n1");
  ASSERT_TRUE(mine.is_ok());
  api::Lease next = *api::as<api::Lease>(*mine);
  next.mutable_spec()->mutable_renew_time()->set_nanos(t0 + 10 * kSecond);
  ASSERT_TRUE(remote.update(api::share(next)).is_ok());
  ASSERT_TRUE(run_until([&] { return remote.pending_writes() == 0; }));
  EXPECT_EQ(server_renew("n1"), t0 + 10 * kSecond) << remote.last_error().to_string();
  EXPECT_EQ(remote.stats().writes_failed, 0u) << remote.last_error().to_string();
}

}  // namespace
}  // namespace flotilla::apiclient
