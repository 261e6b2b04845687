// The per-node ServiceProxy on virtual time with the in-memory Store and a
// scripted Network: lookups by VIP and DNS name, balancer shares, ready-only
// endpoints, passive retry past a killed backend, active fall/rise, ClientIP
// affinity, sync coalescing, and the unknown-balancer fallback.
#include "core/proxy/service_proxy.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tests/core/proxy/proxy_world.h"

namespace flotilla::proxy {
namespace {

using testing::make_slice;
using testing::make_service;
using testing::World;

const NetEndpoint kE1{"10.1.0.1", 8080};
const NetEndpoint kE2{"10.1.0.2", 8080};
const NetEndpoint kE3{"10.1.0.3", 8080};
const NetEndpoint kWebVip{"10.96.0.20", 80};

class ProxyTest : public ::testing::Test {
 protected:
  void start(ServiceProxyOptions o) {
    proxy = std::make_unique<ServiceProxy>(w.sim, w.store, w.net, w.random, std::move(o));
    ASSERT_TRUE(proxy->start().is_ok());
  }
  void start() { start(options()); }
  static ServiceProxyOptions options() {
    auto o = ServiceProxyOptions::from_timing(TimingProfile::kubernetes(), "node-1");
    o.health.active_checks = false;
    return o;
  }
  void create(const api::Service& s) { ASSERT_TRUE(w.store.create(api::share(s)).is_ok()); }
  void create(const api::EndpointSlice& e) { ASSERT_TRUE(w.store.create(api::share(e)).is_ok()); }
  void update(api::EndpointSlice e) {
    auto cur =
        w.store.get(api::Kind::kEndpointSlice, e.metadata().namespace_(), e.metadata().name());
    ASSERT_TRUE(cur.is_ok());
    e.mutable_metadata()->set_resource_version(api::meta_of(**cur).resource_version());
    ASSERT_TRUE(w.store.update(api::share(e)).is_ok());
  }
  void web_with_three(std::map<std::string, std::string> annotations = {}) {
    create(make_service("web", {{"", 80}}, kWebVip.ip, std::move(annotations)));
    create(make_slice("web", {kE1.ip, kE2.ip, kE3.ip}));
  }
  // Routes `n` requests one after another; returns hits per endpoint and failures.
  std::map<NetEndpoint, int> route_many(int n, const std::string& host = "10.96.0.20",
                                        int* failed = nullptr, std::string* last_error = nullptr) {
    std::map<NetEndpoint, int> hits;
    for (int i = 0; i < n; ++i) {
      bool done = false;
      proxy->route({host, 80, "192.168.0.1"}, [&](RouteResult r) {
        done = true;
        if (r.status.is_ok()) {
          ++hits[r.endpoint];
        } else {
          if (failed) ++*failed;
          if (last_error) *last_error = r.status.message();
        }
      });
      w.run_for(milliseconds(10));
      EXPECT_TRUE(done);
    }
    return hits;
  }

  World w;
  std::unique_ptr<ServiceProxy> proxy;
};

TEST(ProxyOptionsTest, ZeroCheckIntervalMeansPassiveOnly) {
  TimingProfile t = TimingProfile::kubernetes();
  auto active = ServiceProxyOptions::from_timing(t, "n");
  EXPECT_TRUE(active.health.active_checks);
  EXPECT_EQ(active.health.passive_cooldown, seconds(10));
  ASSERT_TRUE(t.set("proxy_health_check_interval", "0s").is_ok());
  auto passive = ServiceProxyOptions::from_timing(t, "n");
  EXPECT_FALSE(passive.health.active_checks);
  EXPECT_EQ(passive.health.passive_cooldown, seconds(10)) << "suspects still come back";
}

TEST_F(ProxyTest, RoundRobinSplitsThreeHundredRequestsExactly) {
  start();
  web_with_three();
  w.run_for(seconds(2));
  int failed = 0;
  auto hits = route_many(300, "10.96.0.20", &failed);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(hits[kE1], 100);
  EXPECT_EQ(hits[kE2], 100);
  EXPECT_EQ(hits[kE3], 100);
  EXPECT_EQ(w.net.connects(kE1), 100);
  EXPECT_EQ(w.net.last_from(), "node-1");
}

TEST_F(ProxyTest, LooksUpByVipAndDnsName) {
  start();
  web_with_three();
  create(make_service("db", {{"sql", 5432}, {"metrics", 9187}}, "10.96.0.30", {}, "prod"));
  create(make_slice("db", {"10.2.0.1"}, {}, 5432, "sql", "prod"));
  w.run_for(seconds(2));
  EXPECT_EQ(proxy->vip("default/web"), "10.96.0.20");
  for (const char* host : {"web.default.svc.cluster.local", "web.default.svc.cluster.local.",
                           "web.default.svc", "web.default", "10.96.0.20"}) {
    auto p = proxy->pick(host, 80, "c");
    ASSERT_TRUE(p.is_ok()) << host << ": " << p.status().to_string();
    EXPECT_EQ(p->service, "default/web");
    proxy->release(*p);
  }
  auto by_vip = proxy->pick(NetEndpoint{"10.96.0.30", 5432}, "c");
  ASSERT_TRUE(by_vip.is_ok());
  EXPECT_EQ(by_vip->endpoint, (NetEndpoint{"10.2.0.1", 5432}));
  EXPECT_EQ(by_vip->port_name, "sql");

  auto nosvc = proxy->pick(NetEndpoint{"10.96.0.99", 80}, "c");
  EXPECT_EQ(nosvc.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(nosvc.status().message(), "no service has virtual IP 10.96.0.99:80");
  EXPECT_EQ(proxy->pick("nope.default", 80, "c").status().code(), StatusCode::kNotFound);
  auto noport = proxy->pick("web.default", 81, "c");
  EXPECT_EQ(noport.status().message(), "service default/web has no port 81 (ports: 80)");
  EXPECT_EQ(proxy->pick("db.prod", 0, "c").status().code(), StatusCode::kInvalid);
  auto metrics = proxy->pick("db.prod", 9187, "c");
  EXPECT_EQ(metrics.status().message(), "no ready endpoints for service prod/db port metrics");
}

TEST_F(ProxyTest, HeadlessServiceIsNotProxied) {
  start();
  create(make_service("sts", {{"", 80}}, "None"));
  create(make_slice("sts", {kE1.ip}));
  w.run_for(seconds(2));
  auto p = proxy->pick("sts.default", 80, "c");
  EXPECT_EQ(p.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(p.status().message().find("headless"), std::string::npos);
}

TEST_F(ProxyTest, NoEndpointsIsAClearFailure) {
  start();
  create(make_service("web", {{"", 80}}, kWebVip.ip));
  create(make_slice("web", {}, {kE1.ip}));
  w.run_for(seconds(2));
  std::string err;
  int failed = 0;
  route_many(1, "web.default.svc.cluster.local", &failed, &err);
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(err, "no ready endpoints for service default/web");
  EXPECT_EQ(w.net.connects(kE1), 0);
}

TEST_F(ProxyTest, TrafficReachesOnlyReadyEndpoints) {
  start();
  create(make_service("web", {{"", 80}}, kWebVip.ip));
  create(make_slice("web", {kE1.ip, kE3.ip}, {kE2.ip}));
  w.run_for(seconds(2));
  EXPECT_EQ(proxy->endpoints("default/web", 80), (std::vector<NetEndpoint>{kE1, kE3}));
  auto hits = route_many(100);
  EXPECT_EQ(hits[kE1], 50);
  EXPECT_EQ(hits[kE3], 50);
  EXPECT_EQ(w.net.connects(kE2), 0);
  // E2 becomes ready: it joins the rotation after the next sync.
  update(make_slice("web", {kE1.ip, kE2.ip, kE3.ip}));
  w.run_for(seconds(2));
  hits = route_many(30);
  EXPECT_EQ(hits[kE2], 10);
}

// A Service's endpoints over several slices (as the EndpointSlice controller
// writes them, 100 a slice): the proxy serves their union; an endpoint
// whose ready condition is unset counts as ready; a slice that loses its
// service-name label, or is deleted, takes its endpoints away.
TEST_F(ProxyTest, EndpointsOfEverySliceOfTheServiceAreServed) {
  start();
  create(make_service("web", {{"", 80}}, kWebVip.ip));
  api::EndpointSlice a = make_slice("web", {kE1.ip}, {kE2.ip});
  a.mutable_metadata()->set_name("web-a");
  api::EndpointSlice b = make_slice("web", {});
  b.mutable_metadata()->set_name("web-b");
  b.add_endpoints()->add_addresses(kE3.ip);  // no conditions: ready
  create(a);
  create(b);
  // Another Service's slice changes nothing here.
  create(make_slice("db", {"10.9.0.1"}));
  w.run_for(seconds(2));
  EXPECT_EQ(proxy->endpoints("default/web", 80), (std::vector<NetEndpoint>{kE1, kE3}));
  // web-b relabelled to another service: its endpoint leaves web.
  auto cur = w.store.get(api::Kind::kEndpointSlice, "default", "web-b");
  ASSERT_TRUE(cur.is_ok());
  api::EndpointSlice moved = *api::as<api::EndpointSlice>(*cur);
  (*moved.mutable_metadata()->mutable_labels())["kubernetes.io/service-name"] = "db";
  ASSERT_TRUE(w.store.update(api::share(std::move(moved))).is_ok());
  w.run_for(seconds(2));
  EXPECT_EQ(proxy->endpoints("default/web", 80), (std::vector<NetEndpoint>{kE1}));
  ASSERT_TRUE(w.store.remove(api::Kind::kEndpointSlice, "default", "web-a").is_ok());
  w.run_for(seconds(2));
  EXPECT_TRUE(proxy->endpoints("default/web", 80).empty());
}

// Slices created, rewritten and removed at random, an address often in two
// slices at once: the long-running proxy, which applies only the slices
// that changed since its last sync, serves what a proxy started afresh on
// the same store builds from all of them, and tracks the health of exactly
// the endpoints it serves.
TEST_F(ProxyTest, SlicesAppliedOneByOneServeWhatAFreshProxyBuilds) {
  start();
  create(make_service("web", {{"", 80}}, kWebVip.ip));
  std::mt19937 rng(7);
  const int kSlices = 4, kIps = 12;
  int compared_nonempty = 0;
  for (int round = 0; round < 80; ++round) {
    const int writes = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < writes; ++k) {
      const std::string name = "web-" + std::to_string(rng() % kSlices);
      const bool exists = w.store.get(api::Kind::kEndpointSlice, "default", name).is_ok();
      if (rng() % 5 == 0) {
        if (exists) {
          ASSERT_TRUE(w.store.remove(api::Kind::kEndpointSlice, "default", name).is_ok());
        }
        continue;
      }
      std::vector<std::string> ready, not_ready;
      for (int i = 0; i < kIps; ++i) {
        const auto r = rng() % 4;
        const std::string ip = "10.1.0." + std::to_string(i + 1);
        if (r == 0) ready.push_back(ip);
        if (r == 1) not_ready.push_back(ip);
      }
      api::EndpointSlice e = make_slice("web", ready, not_ready);
      e.mutable_metadata()->set_name(name);
      if (exists) {
        update(e);
      } else {
        create(e);
      }
    }
    w.run_for(seconds(2));
    ServiceProxy fresh(w.sim, w.store, w.net, w.random, options());
    ASSERT_TRUE(fresh.start().is_ok());
    w.run_for(milliseconds(1));
    const std::vector<NetEndpoint> served = proxy->endpoints("default/web", 80);
    ASSERT_EQ(served, fresh.endpoints("default/web", 80)) << "round " << round;
    EXPECT_EQ(proxy->health().tracked(), served.size()) << "round " << round;
    for (const NetEndpoint& e : served) EXPECT_NE(proxy->health().health(e), nullptr);
    if (!served.empty()) ++compared_nonempty;
  }
  EXPECT_GT(compared_nonempty, 40);
}

TEST_F(ProxyTest, KilledBackendIsRetriedElsewhereAndStopsGettingTraffic) {
  start();
  web_with_three();
  w.run_for(seconds(2));
  w.net.kill(kE2);
  int failed = 0;
  auto hits = route_many(300, "10.96.0.20", &failed);
  EXPECT_EQ(failed, 0);  // every request found a healthy endpoint
  EXPECT_EQ(hits[kE2], 0);
  EXPECT_EQ(hits[kE1] + hits[kE3], 300);
  // The dead backend was tried once per passive cool-down (10 s), no more:
  // 300 requests take 3 s of virtual time.
  EXPECT_EQ(w.net.connects(kE2), 1);
  EXPECT_EQ(proxy->health().health(kE2)->state, EndpointHealth::State::kSuspect);
}

TEST_F(ProxyTest, PassiveCooldownLetsAnEndpointBackIn) {
  start();
  web_with_three();
  w.run_for(seconds(2));
  w.net.kill(kE2);
  route_many(3);
  EXPECT_EQ(w.net.connects(kE2), 1);
  w.net.revive(kE2);
  w.run_for(seconds(11));
  auto hits = route_many(30);
  EXPECT_EQ(hits[kE2], 10);
}

TEST_F(ProxyTest, AllBackendsDeadFailsAfterBoundedRetries) {
  start();
  web_with_three();
  w.run_for(seconds(2));
  w.net.kill(kE1);
  w.net.kill(kE2);
  w.net.kill(kE3);
  RouteResult result;
  proxy->route({"10.96.0.20", 80, "c"}, [&](RouteResult r) { result = std::move(r); });
  w.run_for(seconds(1));
  EXPECT_EQ(result.status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.attempts, 3);  // 1 + proxy_max_retries
  EXPECT_EQ(result.failures.size(), 3u);
  EXPECT_NE(result.status.message().find("request to service default/web failed after 3 attempts"),
            std::string::npos);
  EXPECT_NE(result.status.message().find("connection refused by 10.1.0.2:8080"), std::string::npos);
  // With every endpoint marked bad the next request fails without connecting.
  proxy->route({"10.96.0.20", 80, "c"}, [&](RouteResult r) { result = std::move(r); });
  w.run_for(seconds(1));
  EXPECT_EQ(result.attempts, 0);
  EXPECT_NE(result.status.message().find("no healthy endpoints for service default/web"),
            std::string::npos);
}

TEST_F(ProxyTest, ActiveChecksFallAndRise) {
  auto o = options();
  o.health.active_checks = true;  // interval 2 s, fall 3, rise 2
  o.health.passive_cooldown = seconds(1000);
  web_with_three();
  start(o);  // objects already exist: the first sync (t = 0) tracks them
  std::vector<std::string> changes;
  proxy->set_on_health_change([&](const NetEndpoint& e, bool usable, const std::string& why) {
    changes.push_back(endpoint_string(e) + (usable ? " in: " : " out: ") + why);
  });
  w.run_for(milliseconds(100));
  w.net.kill(kE3);
  // Checks at 2, 4, 6 s fail: down after the third.
  w.run_for(seconds(5));  // t = 5.1 s: two failures
  EXPECT_EQ(proxy->health().health(kE3)->state, EndpointHealth::State::kUp);
  EXPECT_EQ(proxy->health().health(kE3)->consecutive_failed, 2);
  w.run_for(seconds(1));  // t = 6.1 s
  EXPECT_EQ(proxy->health().health(kE3)->state, EndpointHealth::State::kDown);
  auto hits = route_many(20);
  EXPECT_EQ(hits[kE3], 0);
  EXPECT_EQ(w.net.connects(kE3), 0);  // never a failed request: checks found it first
  w.net.revive(kE3);                  // t = 6.3 s
  w.run_for(seconds(2));              // one success at 8 s: still down (rise 2)
  EXPECT_EQ(proxy->health().health(kE3)->state, EndpointHealth::State::kDown);
  w.run_for(seconds(2));  // second success at 10 s: up
  EXPECT_EQ(proxy->health().health(kE3)->state, EndpointHealth::State::kUp);
  hits = route_many(30);
  EXPECT_EQ(hits[kE3], 10);
  EXPECT_GE(w.net.probes(kE1), 5);
  // Told once each way, with why.
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].rfind(endpoint_string(kE3) + " out: failed 3 active checks: ", 0), 0u)
      << changes[0];
  EXPECT_EQ(changes[1], endpoint_string(kE3) + " in: passed 2 active checks");
}

TEST_F(ProxyTest, LeastConnectionsPrefersTheIdleEndpoint) {
  start();
  web_with_three({{"flotilla.io/balancer", "least-connections"}});
  w.run_for(seconds(2));
  EXPECT_EQ(proxy->balancer("default/web"), BalancerKind::kLeastConnections);
  auto a = proxy->pick(kWebVip, "c1");
  auto b = proxy->pick(kWebVip, "c2");
  auto c = proxy->pick(kWebVip, "c3");
  ASSERT_TRUE(a.is_ok() && b.is_ok() && c.is_ok());
  auto d = proxy->pick(kWebVip, "c4");  // all busy with one: rotation
  ASSERT_TRUE(d.is_ok());
  // Release everything held on E2: it is now the only idle one.
  for (auto* p : {&a, &b, &c, &d}) {
    if ((*p)->endpoint == kE2) proxy->release(**p);
  }
  // Now E1 holds 2, E2 0, E3 1: the idle one wins, then the least loaded.
  auto e = proxy->pick(kWebVip, "c5");
  EXPECT_EQ(e->endpoint, kE2);
  auto f = proxy->pick(kWebVip, "c6");  // E1 2, E2 1, E3 1: tie, rotation goes on to E3
  EXPECT_EQ(f->endpoint, kE3);
  auto g = proxy->pick(kWebVip, "c7");  // E1 2, E2 1, E3 2
  EXPECT_EQ(g->endpoint, kE2);
}

TEST_F(ProxyTest, RandomBalancerIsRoughlyEven) {
  start();
  web_with_three({{"flotilla.io/balancer", "random"}});
  w.run_for(seconds(2));
  std::map<NetEndpoint, int> hits;
  for (int i = 0; i < 3000; ++i) {
    auto p = proxy->pick(kWebVip, "c");
    ASSERT_TRUE(p.is_ok());
    ++hits[p->endpoint];
    proxy->release(*p);
  }
  for (const auto& e : {kE1, kE2, kE3}) {
    EXPECT_GT(hits[e], 880);
    EXPECT_LT(hits[e], 1120);
  }
}

TEST_F(ProxyTest, ClientIPAffinitySticksAndExpires) {
  start();
  api::Service s = make_service("web", {{"", 80}}, kWebVip.ip);
  s.mutable_spec()->set_session_affinity("ClientIP");
  s.mutable_spec()->mutable_session_affinity_config()->mutable_client_ip()->set_timeout_seconds(60);
  create(s);
  create(make_slice("web", {kE1.ip, kE2.ip, kE3.ip}));
  w.run_for(seconds(2));
  auto first = proxy->pick(kWebVip, "192.168.7.7");
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(first->endpoint, kE1);
  for (int i = 0; i < 10; ++i) {
    auto again = proxy->pick(kWebVip, "192.168.7.7");
    EXPECT_EQ(again->endpoint, kE1);
    w.run_for(seconds(50));  // idle < 60 s each time: still sticky
  }
  EXPECT_EQ(proxy->pick(kWebVip, "192.168.9.9")->endpoint, kE2);  // another client rotates on
  w.run_for(seconds(61));
  EXPECT_EQ(proxy->pick(kWebVip, "192.168.7.7")->endpoint, kE3);  // expired: balancer's turn
}

TEST_F(ProxyTest, BurstOfEndpointUpdatesIsCoalescedIntoOneSync) {
  web_with_three();
  start();  // first sync at t = 0 with the initial state
  w.run_for(milliseconds(50));
  const int64_t base = proxy->syncs();
  const TimePoint last = proxy->last_sync();
  EXPECT_EQ(proxy->endpoints("default/web", 80).size(), 3u);
  // Ten updates within 500 ms, starting 100 ms after the last sync.
  w.run_for(milliseconds(50));
  for (int i = 0; i < 10; ++i) {
    std::vector<std::string> ips{kE1.ip};
    for (int k = 0; k <= i; ++k) ips.push_back("10.1.1." + std::to_string(k + 1));
    update(make_slice("web", ips));
    w.run_for(milliseconds(50));
  }
  // t = last + 600 ms: nothing applied yet (min sync period 1 s).
  EXPECT_EQ(proxy->syncs(), base);
  EXPECT_EQ(proxy->endpoints("default/web", 80).size(), 3u);
  w.sim.run_until(last + seconds(1));
  EXPECT_EQ(proxy->syncs(), base + 1);
  EXPECT_EQ(proxy->last_sync(), last + seconds(1));
  EXPECT_EQ(proxy->endpoints("default/web", 80).size(), 11u);  // the final state
  w.run_for(seconds(5));
  EXPECT_EQ(proxy->syncs(), base + 1);  // no stray syncs without changes
}

TEST_F(ProxyTest, UnknownBalancerFallsBackToRoundRobinWithAWarning) {
  start();
  web_with_three({{"flotilla.io/balancer", "fastest"}});
  w.run_for(seconds(2));
  EXPECT_EQ(proxy->balancer("default/web"), BalancerKind::kRoundRobin);
  ASSERT_EQ(proxy->warnings().size(), 1u);
  EXPECT_NE(proxy->warnings()[0].find("unknown balancer \"fastest\""), std::string::npos);
  auto hits = route_many(30);
  EXPECT_EQ(hits[kE1], 10);
  EXPECT_EQ(hits[kE2], 10);
  auto events = w.store.list(api::Kind::kEvent, ListOptions{});
  ASSERT_TRUE(events.is_ok());
  ASSERT_EQ(events->items.size(), 1u);
  auto ev = api::as<api::Event>(events->items[0]);
  EXPECT_EQ(ev->reason(), "UnknownBalancer");
  EXPECT_EQ(ev->type(), "Warning");
  EXPECT_EQ(ev->involved_object().name(), "web");
}

TEST_F(ProxyTest, EndToEndWithTheAllocator) {
  auto alloc = ServiceIPAllocator::create(w.sim, w.store, w.net);
  ASSERT_TRUE(alloc.is_ok());
  ASSERT_TRUE((*alloc)->start().is_ok());
  start();
  create(make_service("web"));
  create(make_slice("web", {kE1.ip, kE2.ip}));
  w.run_for(seconds(3));
  EXPECT_EQ(proxy->vip("default/web"), "10.96.0.2");
  auto p = proxy->pick(NetEndpoint{"10.96.0.2", 80}, "c");
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->endpoint, kE1);
  EXPECT_EQ(w.net.dns().at("web.default.svc.cluster.local"), "10.96.0.2");
  // Service deleted: the proxy forgets it.
  ASSERT_TRUE(w.store.remove(api::Kind::kService, "default", "web").is_ok());
  w.run_for(seconds(3));
  EXPECT_EQ(proxy->pick(NetEndpoint{"10.96.0.2", 80}, "c").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(proxy->health().tracked(), 0u);
}

}  // namespace
}  // namespace flotilla::proxy
