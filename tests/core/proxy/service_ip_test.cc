// Service IP allocation: the pool's deterministic lowest-free order, user
// clusterIPs honoured or rejected with Kubernetes' wording, and the allocator
// controller writing clusterIP into the Store and DNS names into the Network.
#include "core/proxy/service_ip.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/core/proxy/proxy_world.h"
#include "tests/core/store/forwarding_store.h"

namespace flotilla::proxy {
namespace {

using testing::make_service;
using testing::World;

TEST(Ipv4, ParseAndFormat) {
  EXPECT_EQ(*parse_ipv4("10.96.0.1"), 0x0A600001u);
  EXPECT_EQ(format_ipv4(0x0A600001u), "10.96.0.1");
  for (const char* bad : {"", "10.96.0", "10.96.0.256", "10.96.0.1.2", "a.b.c.d", "10.96.00.1", "10.96.0.1 "}) {
    EXPECT_FALSE(parse_ipv4(bad).is_ok()) << bad;
  }
  auto c = Ipv4Cidr::parse("10.96.0.0/12");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->size(), 1u << 20);
  EXPECT_TRUE(c->contains(*parse_ipv4("10.111.255.254")));
  EXPECT_FALSE(c->contains(*parse_ipv4("10.112.0.0")));
  auto bad = Ipv4Cidr::parse("10.96.0.1/12");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("did you mean 10.96.0.0/12"), std::string::npos);
}

TEST(DnsName, ServiceNames) {
  EXPECT_EQ(service_dns_name("web", "shop"), "web.shop.svc.cluster.local");
  EXPECT_EQ(service_dns_name("web", ""), "web.default.svc.cluster.local");
  EXPECT_EQ(service_dns_name("db", "prod", "example.org"), "db.prod.svc.example.org");
}

TEST(ClusterIPPool, LowestFreeUniqueAndReused) {
  auto pool = ClusterIPPool::create();
  ASSERT_TRUE(pool.is_ok());
  EXPECT_EQ(*pool->allocate("default/a"), "10.96.0.2");
  EXPECT_EQ(*pool->allocate("default/b"), "10.96.0.3");
  EXPECT_EQ(*pool->allocate("default/c"), "10.96.0.4");
  EXPECT_EQ(*pool->allocate("default/b"), "10.96.0.3");  // stable: same owner, same IP
  EXPECT_EQ(*pool->allocate("default/kubernetes"), "10.96.0.1");
  pool->release("default/b");
  EXPECT_EQ(pool->owner_of("10.96.0.3"), nullptr);
  EXPECT_EQ(*pool->allocate("default/d"), "10.96.0.3");
  EXPECT_EQ(*pool->allocate("default/e"), "10.96.0.5");
  EXPECT_EQ(*pool->owner_of("10.96.0.5"), "default/e");
  EXPECT_EQ(pool->allocated(), 5u);
}

TEST(ClusterIPPool, UserChosenIPsHonouredOrRejected) {
  auto pool = ClusterIPPool::create();
  ASSERT_TRUE(pool->claim("default/dns", "10.96.0.10").is_ok());
  EXPECT_EQ(*pool->ip_of("default/dns"), "10.96.0.10");
  EXPECT_TRUE(pool->claim("default/dns", "10.96.0.10").is_ok());  // idempotent

  Status taken = pool->claim("default/other", "10.96.0.10");
  EXPECT_EQ(taken.code(), StatusCode::kInvalid);
  EXPECT_NE(taken.message().find("provided IP is already allocated (to service default/dns)"),
            std::string::npos);
  Status outside = pool->claim("default/x", "192.168.0.10");
  EXPECT_NE(outside.message().find("not in the valid range. The range of valid IPs is 10.96.0.0/12"),
            std::string::npos);
  EXPECT_NE(pool->claim("default/x", "10.96.0.1").message().find("reserved"), std::string::npos);
  EXPECT_FALSE(pool->claim("default/x", "10.96.0.0").is_ok());
  EXPECT_FALSE(pool->claim("default/x", "10.111.255.255").is_ok());
  EXPECT_FALSE(pool->claim("default/x", "ten.0.0.1").is_ok());
  EXPECT_TRUE(pool->claim("default/kubernetes", "10.96.0.1").is_ok());
  // Lowest-free allocation flows around user-chosen addresses.
  for (int i = 2; i <= 9; ++i) {
    EXPECT_EQ(*pool->allocate("default/s" + std::to_string(i)), "10.96.0." + std::to_string(i));
  }
  EXPECT_EQ(*pool->allocate("default/s11"), "10.96.0.11");
}

TEST(ClusterIPPool, ExhaustionIsAClearError) {
  auto pool = ClusterIPPool::create("10.0.0.0/29");  // 8 addresses, 5 allocatable
  ASSERT_TRUE(pool.is_ok());
  EXPECT_EQ(pool->capacity(), 5u);
  std::set<std::string> ips;
  for (int i = 0; i < 5; ++i) ips.insert(*pool->allocate("ns/s" + std::to_string(i)));
  EXPECT_EQ(ips.size(), 5u);
  auto full = pool->allocate("ns/s5");
  ASSERT_FALSE(full.is_ok());
  EXPECT_EQ(full.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(full.status().message().find("no free service IPs left in 10.0.0.0/29"), std::string::npos);
  EXPECT_FALSE(ClusterIPPool::create("10.0.0.0/30").is_ok());
  EXPECT_FALSE(ClusterIPPool::create("banana").is_ok());
}

class AllocatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = ServiceIPAllocator::create(w.sim, w.store, w.net);
    ASSERT_TRUE(a.is_ok());
    alloc = std::move(*a);
  }
  std::shared_ptr<const api::Service> get(const std::string& name) {
    auto o = w.store.get(api::Kind::kService, "default", name);
    EXPECT_TRUE(o.is_ok()) << name;
    return o.is_ok() ? api::as<api::Service>(*o) : nullptr;
  }
  World w;
  std::unique_ptr<ServiceIPAllocator> alloc;
};

TEST_F(AllocatorTest, AssignsStableUniqueIPsAndPublishesDns) {
  ASSERT_TRUE(alloc->start().is_ok());
  for (const char* n : {"web", "api", "db"}) ASSERT_TRUE(w.store.create(api::share(make_service(n))).is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(get("web")->spec().cluster_ip(), "10.96.0.2");
  EXPECT_EQ(get("api")->spec().cluster_ip(), "10.96.0.3");
  EXPECT_EQ(get("db")->spec().cluster_ip(), "10.96.0.4");
  ASSERT_EQ(get("db")->spec().cluster_ips_size(), 1);
  EXPECT_EQ(get("db")->spec().cluster_ips(0), "10.96.0.4");
  EXPECT_EQ(w.net.dns().at("web.default.svc.cluster.local"), "10.96.0.2");
  EXPECT_EQ(w.net.dns().at("db.default.svc.cluster.local"), "10.96.0.4");

  // Unrelated changes keep the address.
  api::Service web = *get("web");
  (*web.mutable_metadata()->mutable_labels())["tier"] = "front";
  ASSERT_TRUE(w.store.update(api::share(web)).is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(get("web")->spec().cluster_ip(), "10.96.0.2");

  // Delete frees the address and the name; the next Service reuses the lowest.
  ASSERT_TRUE(w.store.remove(api::Kind::kService, "default", "api").is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(w.net.dns().count("api.default.svc.cluster.local"), 0u);
  EXPECT_EQ(alloc->pool().owner_of("10.96.0.3"), nullptr);
  ASSERT_TRUE(w.store.create(api::share(make_service("cache"))).is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(get("cache")->spec().cluster_ip(), "10.96.0.3");
  EXPECT_EQ(w.net.dns().size(), 3u);
}

TEST_F(AllocatorTest, UserClusterIPHonouredAndConflictReported) {
  ASSERT_TRUE(alloc->start().is_ok());
  ASSERT_TRUE(w.store.create(api::share(make_service("dns", {{"", 53}}, "10.96.0.10"))).is_ok());
  w.run_for(seconds(1));
  ASSERT_TRUE(w.store.create(api::share(make_service("imposter", {{"", 53}}, "10.96.0.10"))).is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(get("dns")->spec().cluster_ip(), "10.96.0.10");
  EXPECT_EQ(w.net.dns().at("dns.default.svc.cluster.local"), "10.96.0.10");
  EXPECT_EQ(w.net.dns().count("imposter.default.svc.cluster.local"), 0u);
  EXPECT_EQ(*alloc->pool().owner_of("10.96.0.10"), "default/dns");
  EXPECT_GT(alloc->failures(), 0);

  auto events = w.store.list(api::Kind::kEvent, ListOptions{});
  ASSERT_TRUE(events.is_ok());
  bool found = false;
  for (const auto& o : events->items) {
    auto ev = api::as<api::Event>(o);
    if (ev->involved_object().name() == "imposter" && ev->reason() == "ClusterIPNotAllocated") {
      found = true;
      EXPECT_EQ(ev->type(), "Warning");
      EXPECT_NE(ev->message().find("provided IP is already allocated (to service default/dns)"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(found);

  // Once the holder is gone, the retry (with backoff) gives the address over.
  ASSERT_TRUE(w.store.remove(api::Kind::kService, "default", "dns").is_ok());
  w.run_for(seconds(60));
  EXPECT_EQ(*alloc->pool().owner_of("10.96.0.10"), "default/imposter");
  EXPECT_EQ(w.net.dns().at("imposter.default.svc.cluster.local"), "10.96.0.10");
  EXPECT_EQ(w.net.dns().count("dns.default.svc.cluster.local"), 0u);
}

TEST_F(AllocatorTest, HeadlessServicesGetNoAddress) {
  ASSERT_TRUE(alloc->start().is_ok());
  ASSERT_TRUE(w.store.create(api::share(make_service("stateful", {{"", 80}}, "None"))).is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(get("stateful")->spec().cluster_ip(), "None");
  EXPECT_EQ(alloc->pool().allocated(), 0u);
  EXPECT_TRUE(w.net.dns().empty());
}

TEST_F(AllocatorTest, RestartReDerivesOwnershipFromTheStore) {
  ASSERT_TRUE(alloc->start().is_ok());
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(w.store.create(api::share(make_service(n))).is_ok());
  w.run_for(seconds(1));
  ASSERT_TRUE(w.store.remove(api::Kind::kService, "default", "a").is_ok());
  w.run_for(seconds(1));
  alloc.reset();
  auto fresh = ServiceIPAllocator::create(w.sim, w.store, w.net);
  ASSERT_TRUE(fresh.is_ok());
  ASSERT_TRUE((*fresh)->start().is_ok());
  ASSERT_TRUE(w.store.create(api::share(make_service("d"))).is_ok());
  ASSERT_TRUE(w.store.create(api::share(make_service("e"))).is_ok());
  w.run_for(seconds(1));
  EXPECT_EQ(get("b")->spec().cluster_ip(), "10.96.0.3");
  EXPECT_EQ(get("c")->spec().cluster_ip(), "10.96.0.4");
  EXPECT_EQ(get("d")->spec().cluster_ip(), "10.96.0.2");  // a's freed address
  EXPECT_EQ(get("e")->spec().cluster_ip(), "10.96.0.5");
}

// A Store whose next update fails with a stale-version conflict, as when
// another writer got there first.
class ConflictOnceStore final : public flotilla::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  StatusOr<api::Object> update(api::Object o) override {
    ++updates;
    if (conflicts_left > 0) {
      --conflicts_left;
      return conflict_error("Operation cannot be fulfilled: the object has been modified");
    }
    return ForwardingStore::update(std::move(o));
  }
  int conflicts_left = 2;
  int updates = 0;
};

TEST(AllocatorConcurrency, StaleWriteRetriesWithoutLeakingAddresses) {
  World w;
  ConflictOnceStore store(w.store);
  auto alloc = ServiceIPAllocator::create(w.sim, store, w.net);
  ASSERT_TRUE(alloc.is_ok());
  ASSERT_TRUE((*alloc)->start().is_ok());
  ASSERT_TRUE(w.store.create(api::share(make_service("web"))).is_ok());
  w.run_for(seconds(1));
  auto web = w.store.get(api::Kind::kService, "default", "web");
  EXPECT_EQ(api::as<api::Service>(*web)->spec().cluster_ip(), "10.96.0.2");
  EXPECT_EQ(store.updates, 3);
  EXPECT_EQ((*alloc)->pool().allocated(), 1u);
  EXPECT_EQ(w.net.dns().at("web.default.svc.cluster.local"), "10.96.0.2");
}

}  // namespace
}  // namespace flotilla::proxy
