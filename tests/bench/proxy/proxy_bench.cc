// ServiceProxy::pick() throughput: lookup by VIP:port, balancer choice and
// connection accounting (pick + release), for round-robin and
// least-connections over 3 and 100 ready endpoints; plus lookup by DNS name.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/proxy/service_proxy.h"
#include "tests/core/proxy/proxy_world.h"

namespace flotilla::proxy {
namespace {

struct Fixture {
  explicit Fixture(int endpoints, const std::string& balancer) {
    std::vector<std::string> ips;
    for (int i = 0; i < endpoints; ++i) {
      ips.push_back("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
    }
    (void)w.store.create(api::share(testing::make_service(
        "web", {{"", 80}}, "10.96.0.20", {{std::string(kBalancerAnnotation), balancer}})));
    (void)w.store.create(api::share(testing::make_slice("web", ips)));
    // A few hundred other Services so the lookup tables are not trivially small.
    for (int s = 0; s < 500; ++s) {
      (void)w.store.create(api::share(testing::make_service(
          "svc-" + std::to_string(s), {{"", 80}}, "10.96." + std::to_string(1 + s / 250) + "." + std::to_string(s % 250 + 1),
          {}, "ns" + std::to_string(s / 250))));
    }
    auto o = ServiceProxyOptions::from_timing(TimingProfile::kubernetes(), "node-1");
    o.health.active_checks = false;
    proxy = std::make_unique<ServiceProxy>(w.sim, w.store, w.net, w.random, o);
    (void)proxy->start();
    w.run_for(seconds(2));
  }
  testing::World w;
  std::unique_ptr<ServiceProxy> proxy;
};

void pick_by_vip(benchmark::State& state, const std::string& balancer) {
  Fixture f(static_cast<int>(state.range(0)), balancer);
  const NetEndpoint vip{"10.96.0.20", 80};
  const std::string client = "192.168.0.1";
  for (auto _ : state) {
    auto p = f.proxy->pick(vip, client);
    benchmark::DoNotOptimize(p);
    f.proxy->release(*p);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PickRoundRobin(benchmark::State& state) { pick_by_vip(state, "round-robin"); }
void BM_PickLeastConnections(benchmark::State& state) { pick_by_vip(state, "least-connections"); }
void BM_PickRandom(benchmark::State& state) { pick_by_vip(state, "random"); }

// Least-connections with every endpoint busy (held connections), so the scan
// cannot stop at the first idle endpoint: the worst case.
void BM_PickLeastConnectionsBusy(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)), "least-connections");
  const NetEndpoint vip{"10.96.0.20", 80};
  std::vector<Pick> held;
  for (int64_t i = 0; i < state.range(0) * 4; ++i) held.push_back(*f.proxy->pick(vip, "c"));
  for (auto _ : state) {
    auto p = f.proxy->pick(vip, "c");
    benchmark::DoNotOptimize(p);
    f.proxy->release(*p);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PickByDnsName(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)), "round-robin");
  for (auto _ : state) {
    auto p = f.proxy->pick("web.default.svc.cluster.local", 80, "c");
    benchmark::DoNotOptimize(p);
    f.proxy->release(*p);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_PickRoundRobin)->Arg(3)->Arg(100);
BENCHMARK(BM_PickLeastConnections)->Arg(3)->Arg(100);
BENCHMARK(BM_PickLeastConnectionsBusy)->Arg(3)->Arg(100);
BENCHMARK(BM_PickRandom)->Arg(3)->Arg(100);
BENCHMARK(BM_PickByDnsName)->Arg(3)->Arg(100);

}  // namespace
}  // namespace flotilla::proxy

BENCHMARK_MAIN();
