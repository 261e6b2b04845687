// Balancers and the affinity table on their own: exact round-robin shares,
// random evenness and determinism, least-connections' preference for idle
// endpoints, the annotation fallback, and affinity expiry on virtual time.
#include "core/proxy/balancer.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "sim/engine/random.h"

namespace flotilla::proxy {
namespace {

struct Pool {
  explicit Pool(int n) : states(static_cast<size_t>(n)) {
    for (int i = 0; i < n; ++i) {
      backends.push_back(Backend{NetEndpoint{"10.0.0." + std::to_string(i + 1), 8080},
                                 &states[static_cast<size_t>(i)]});
    }
  }
  std::vector<BackendState> states;
  std::vector<Backend> backends;
};

TEST(RoundRobin, SplitsThreeHundredExactlyEvenly) {
  Pool p(3);
  auto b = make_balancer(BalancerKind::kRoundRobin);
  std::vector<int> hits(3);
  std::vector<size_t> order;
  for (int i = 0; i < 300; ++i) {
    auto idx = b->pick(p.backends);
    ASSERT_TRUE(idx.has_value());
    ++hits[*idx];
    if (i < 6) order.push_back(*idx);
  }
  EXPECT_EQ(hits, (std::vector<int>{100, 100, 100}));
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobin, SkipsUnusableAndExcluded) {
  Pool p(3);
  p.states[1].usable = false;
  auto b = make_balancer(BalancerKind::kRoundRobin);
  std::vector<int> hits(3);
  for (int i = 0; i < 100; ++i) ++hits[*b->pick(p.backends)];
  EXPECT_EQ(hits, (std::vector<int>{50, 0, 50}));
  std::vector<NetEndpoint> tried{p.backends[0].endpoint, p.backends[2].endpoint};
  EXPECT_FALSE(b->pick(p.backends, tried).has_value());
  EXPECT_FALSE(b->pick({}).has_value());
}

TEST(RandomBalancer, RoughlyEvenAndDeterministicForASeed) {
  Pool p(3);
  sim::SimRandom random(7);
  auto b1 = make_balancer(BalancerKind::kRandom, random.stream("proxy"));
  auto b2 = make_balancer(BalancerKind::kRandom, random.stream("proxy"));
  std::vector<int> hits(3);
  for (int i = 0; i < 3000; ++i) {
    auto a = b1->pick(p.backends);
    auto c = b2->pick(p.backends);
    ASSERT_EQ(a, c);
    ++hits[*a];
  }
  for (int h : hits) {
    EXPECT_GT(h, 880);
    EXPECT_LT(h, 1120);
  }
  p.states[0].usable = false;
  for (int i = 0; i < 200; ++i) EXPECT_NE(*b1->pick(p.backends), 0u);
}

TEST(LeastConnections, PrefersTheIdleEndpoint) {
  Pool p(3);
  auto b = make_balancer(BalancerKind::kLeastConnections);
  p.states[0].active_connections = 5;
  p.states[1].active_connections = 0;
  p.states[2].active_connections = 2;
  EXPECT_EQ(*b->pick(p.backends), 1u);
  p.states[1].active_connections = 3;
  EXPECT_EQ(*b->pick(p.backends), 2u);
  // All idle: ties rotate, so short requests still spread evenly.
  for (auto& s : p.states) s.active_connections = 0;
  std::vector<int> hits(3);
  for (int i = 0; i < 30; ++i) ++hits[*b->pick(p.backends)];
  EXPECT_EQ(hits, (std::vector<int>{10, 10, 10}));
  // Held connections are counted by whoever holds them: simulate holding.
  for (auto& s : p.states) s.active_connections = 0;
  for (int i = 0; i < 9; ++i) ++p.states[*b->pick(p.backends)].active_connections;
  for (const auto& s : p.states) EXPECT_EQ(s.active_connections, 3);
}

TEST(BalancerAnnotation, KnownValuesAndFallback) {
  api::Labels a;
  EXPECT_EQ(balancer_from_annotations(a).kind, BalancerKind::kRoundRobin);
  a[std::string(kBalancerAnnotation)] = "least-connections";
  EXPECT_EQ(balancer_from_annotations(a).kind, BalancerKind::kLeastConnections);
  a[std::string(kBalancerAnnotation)] = "random";
  EXPECT_EQ(balancer_from_annotations(a).kind, BalancerKind::kRandom);
  a[std::string(kBalancerAnnotation)] = "weighted-magic";
  auto c = balancer_from_annotations(a);
  EXPECT_EQ(c.kind, BalancerKind::kRoundRobin);
  EXPECT_NE(c.warning.find("unknown balancer \"weighted-magic\""), std::string::npos);
  EXPECT_NE(c.warning.find("using round-robin"), std::string::npos);
}

TEST(AffinityTable, StickyUntilIdleForTheTimeout) {
  AffinityTable t(seconds(60));
  const NetEndpoint e{"10.0.0.1", 80};
  t.record("192.168.1.5", e, kTimeZero);
  EXPECT_EQ(t.lookup("192.168.1.5", kTimeZero + seconds(59)), e);  // refreshes
  EXPECT_EQ(t.lookup("192.168.1.5", kTimeZero + seconds(118)), e);
  EXPECT_FALSE(t.lookup("192.168.1.5", kTimeZero + seconds(178)).has_value());
  EXPECT_EQ(t.size(), 0u);
  t.record("a", e, kTimeZero);
  t.record("b", e, kTimeZero + seconds(30));
  t.expire(kTimeZero + seconds(61));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(AffinityTable::kDefaultTimeout, seconds(10800));
}

}  // namespace
}  // namespace flotilla::proxy
