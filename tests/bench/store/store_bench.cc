// InMemoryStore at cluster scale: 150,000 pods over 5,000 nodes, labelled
// app=app-<k> (5,000 values, ~30 pods each) and tier in {front,back,batch}.
// Measures create, update (read-modify-write), get, indexed lists and watch
// fan-out to one watcher per node plus a few cluster-wide ones.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "core/store/in_memory_store.h"
#include "scenarios/control_plane.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::store {
namespace {

constexpr int kPods = 150000;
constexpr int kNodes = 5000;
constexpr int kApps = 5000;

std::string pod_name(int i) { return "pod-" + std::to_string(i); }
std::string node_name(int i) { return "node-" + std::to_string(i % kNodes); }

api::Object make_pod(int i) {
  api::Pod p;
  p.mutable_metadata()->set_namespace_("ns-" + std::to_string(i % 10));
  p.mutable_metadata()->set_name(pod_name(i));
  auto& labels = *p.mutable_metadata()->mutable_labels();
  labels["app"] = "app-" + std::to_string((i / 7) % kApps);
  static const char* kTiers[] = {"front", "back", "batch"};
  labels["tier"] = kTiers[i % 3];
  p.mutable_spec()->set_node_name(node_name(i));
  api::Container* c = p.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("registry.local/app:1.0");
  (*c->mutable_resources()->mutable_requests())["cpu"] = "100m";
  (*c->mutable_resources()->mutable_requests())["memory"] = "128Mi";
  p.mutable_status()->set_phase("Running");
  return api::share(std::move(p));
}

const std::vector<api::Object>& pods() {
  static const std::vector<api::Object> all = [] {
    std::vector<api::Object> v;
    v.reserve(kPods);
    for (int i = 0; i < kPods; ++i) v.push_back(make_pod(i));
    return v;
  }();
  return all;
}

struct World {
  sim::Simulator loop;
  std::unique_ptr<RandomStream> random = sim::SimRandom(1).stream("store");
  InMemoryStore store{loop, *random};
  World() {
    for (const api::Object& p : pods()) {
      if (!store.create(p).is_ok()) std::abort();
    }
  }
};

// Distinct status text for every update across benchmark runs, so no update
// is an identical (skipped) write.
uint64_t next_tick() {
  static uint64_t tick = 0;
  return ++tick;
}

World& full_world() {
  static World* w = new World();
  return *w;
}

void BM_Create(benchmark::State& state) {
  const auto& all = pods();
  sim::Simulator loop;
  auto random = sim::SimRandom(1).stream("store");
  auto store = std::make_unique<InMemoryStore>(loop, *random);
  int i = 0;
  for (auto _ : state) {
    if (i == kPods) {
      state.PauseTiming();
      store = std::make_unique<InMemoryStore>(loop, *random);
      i = 0;
      state.ResumeTiming();
    }
    auto r = store->create(all[i++]);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Create)->Iterations(kPods)->Unit(benchmark::kMicrosecond);

// Controller-style read-modify-write: get, copy, change the status, update.
void BM_Update(benchmark::State& state) {
  World& w = full_world();
  uint64_t i = 0;
  for (auto _ : state) {
    int k = static_cast<int>((i * 7919) % kPods);
    api::Object cur = *w.store.get(api::Kind::kPod, "ns-" + std::to_string(k % 10), pod_name(k));
    api::Pod p = static_cast<const api::Pod&>(*cur);
    p.mutable_status()->set_message("tick " + std::to_string(next_tick()));
    auto r = w.store.update(api::share(std::move(p)));
    if (!r.is_ok()) state.SkipWithError(r.status().to_string().c_str());
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Update)->Unit(benchmark::kMicrosecond);

// A node heartbeat as the agent sends it, at 5,000 nodes: its last-written
// Lease copied with a new renewTime and written back, into a store set up as
// the control plane's (validation, 5-minute history) with the node lifecycle
// controller's watch on Leases. Every renewal of a large run goes this way.
void BM_LeaseRenewal(benchmark::State& state) {
  sim::Simulator loop;
  std::unique_ptr<RandomStream> random = sim::SimRandom(1).stream("store");
  InMemoryStore store{loop, *random, scenarios::ControlPlane::store_options()};
  int64_t seen = 0;
  StatusOr<WatchHandle> watch =
      store.watch(api::Kind::kLease, {}, [&](const WatchEvent&) { ++seen; });
  if (!watch.is_ok()) std::abort();
  std::vector<api::Object> leases;
  for (int n = 0; n < kNodes; ++n) {
    api::Lease l;
    l.mutable_metadata()->set_namespace_("kube-node-lease");
    l.mutable_metadata()->set_name(node_name(n));
    api::OwnerReference* ref = l.mutable_metadata()->add_owner_references();
    ref->set_api_version("v1");
    ref->set_kind("Node");
    ref->set_name(node_name(n));
    ref->set_uid("6f1c2a3e-0000-4000-8000-" + std::to_string(100000000000 + n));
    l.mutable_spec()->set_holder_identity(node_name(n));
    l.mutable_spec()->set_lease_duration_seconds(40);
    StatusOr<api::Object> created = store.create(api::share(std::move(l)));
    if (!created.is_ok()) std::abort();
    leases.push_back(*created);
  }
  size_t i = 0;
  for (auto _ : state) {
    api::Object& last = leases[i % leases.size()];
    api::Lease l = static_cast<const api::Lease&>(*last);
    l.mutable_spec()->mutable_renew_time()->set_nanos(static_cast<int64_t>(next_tick()));
    StatusOr<api::Object> written = store.update(api::share(std::move(l)));
    if (!written.is_ok()) state.SkipWithError(written.status().to_string().c_str());
    last = *written;
    if (++i % 1000 == 0) loop.run_for(std::chrono::milliseconds(1));  // deliver the watch
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LeaseRenewal)->Unit(benchmark::kMicrosecond);

void BM_Get(benchmark::State& state) {
  World& w = full_world();
  std::vector<std::pair<std::string, std::string>> keys;
  for (int k = 0; k < 4096; ++k) {
    int i = (k * 7919) % kPods;
    keys.emplace_back("ns-" + std::to_string(i % 10), pod_name(i));
  }
  size_t i = 0;
  for (auto _ : state) {
    const auto& [ns, name] = keys[i++ & 4095];
    auto r = w.store.get(api::Kind::kPod, ns, name);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Get);

void BM_ListByLabel(benchmark::State& state) {
  World& w = full_world();
  std::vector<ListOptions> opts;
  for (int a = 0; a < 64; ++a) {
    ListOptions o;
    o.labels = *api::LabelSelector::parse("app=app-" + std::to_string(a * 71 % kApps));
    opts.push_back(std::move(o));
  }
  size_t i = 0;
  int64_t items = 0;
  for (auto _ : state) {
    auto r = w.store.list(api::Kind::kPod, opts[i++ & 63]);
    items += static_cast<int64_t>(r->items.size());
  }
  state.counters["pods_per_list"] = static_cast<double>(items) / state.iterations();
  state.counters["scanned"] = static_cast<double>(w.store.last_list_candidates());
}
BENCHMARK(BM_ListByLabel)->Unit(benchmark::kMicrosecond);

void BM_ListByNodeName(benchmark::State& state) {
  World& w = full_world();
  std::vector<ListOptions> opts;
  for (int n = 0; n < 64; ++n) {
    ListOptions o;
    o.fields = *api::FieldSelector::parse("spec.nodeName=" + node_name(n * 73));
    opts.push_back(std::move(o));
  }
  size_t i = 0;
  int64_t items = 0;
  for (auto _ : state) {
    auto r = w.store.list(api::Kind::kPod, opts[i++ & 63]);
    items += static_cast<int64_t>(r->items.size());
  }
  state.counters["pods_per_list"] = static_cast<double>(items) / state.iterations();
  state.counters["scanned"] = static_cast<double>(w.store.last_list_candidates());
}
BENCHMARK(BM_ListByNodeName)->Unit(benchmark::kMicrosecond);

// For contrast: a label selector no index serves (tier!=batch) walks all pods.
void BM_ListUnindexedSelector(benchmark::State& state) {
  World& w = full_world();
  ListOptions o;
  o.labels = *api::LabelSelector::parse("tier!=batch");
  for (auto _ : state) {
    auto r = w.store.list(api::Kind::kPod, o);
    benchmark::DoNotOptimize(r);
  }
  state.counters["scanned"] = static_cast<double>(w.store.last_list_candidates());
}
BENCHMARK(BM_ListUnindexedSelector)->Unit(benchmark::kMillisecond);

// One update, then the loop delivers its events: one node-pinned watcher per
// node (the agents) plus `state.range(0)` cluster-wide watchers (scheduler,
// controllers, proxies). Time is per update, delivery included.
void BM_WatchDelivery(benchmark::State& state) {
  World& w = full_world();
  int64_t delivered = 0;
  std::vector<WatchHandle> handles;
  for (int n = 0; n < kNodes; ++n) {
    WatchOptions o;
    o.fields = *api::FieldSelector::parse("spec.nodeName=" + node_name(n));
    handles.push_back(
        w.store.watch(api::Kind::kPod, o, [&](const WatchEvent&) { ++delivered; }).value());
  }
  for (int i = 0; i < state.range(0); ++i) {
    handles.push_back(
        w.store.watch(api::Kind::kPod, {}, [&](const WatchEvent&) { ++delivered; }).value());
  }
  uint64_t i = 0;
  for (auto _ : state) {
    int k = static_cast<int>((i * 7919) % kPods);
    api::Object cur = *w.store.get(api::Kind::kPod, "ns-" + std::to_string(k % 10), pod_name(k));
    api::Pod p = static_cast<const api::Pod&>(*cur);
    p.mutable_status()->set_message("tick " + std::to_string(next_tick()));
    if (!w.store.update(api::share(std::move(p))).is_ok()) state.SkipWithError("update failed");
    w.loop.run();
    ++i;
  }
  state.counters["events_per_update"] = static_cast<double>(delivered) / state.iterations();
  state.SetItemsProcessed(delivered);
}
BENCHMARK(BM_WatchDelivery)->Arg(0)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace flotilla::store

BENCHMARK_MAIN();
