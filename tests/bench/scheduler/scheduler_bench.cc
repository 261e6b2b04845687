// Scheduler throughput at 5,000 nodes: greedy placement on the snapshot (the
// algorithmic part), greedy through the whole loop (store writes, watches,
// events), and one min-cost-flow batch of 1,000 pods.
#include <benchmark/benchmark.h>

#include "core/scheduler/flow_placement.h"
#include "core/scheduler/plugins.h"
#include "core/scheduler/scheduler.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "tests/core/scheduler/test_cluster.h"

namespace flotilla::sched {
namespace {

using testing::make_node;
using testing::make_pod;
using testing::NodeSpec;
using testing::PodSpec;

constexpr int kNodes = 5000;

NodeSpec node_spec(int i) {
  static const char* cpus[] = {"8", "16", "32", "64"};
  static const char* mems[] = {"32Gi", "64Gi", "128Gi", "256Gi"};
  NodeSpec s{.name = "node-" + std::to_string(i)};
  s.cpu = cpus[i % 4];
  s.memory = mems[(i / 4) % 4];
  s.zone = "zone-" + std::to_string(i % 10);
  if (i % 5 == 0) s.labels["disk"] = "ssd";
  if (i % 8 == 0) s.extended["alibaba.com/gpu"] = "4";  // 2,500 gpus: every pod below fits
  return s;
}

PodSpec pod_spec(int i) {
  PodSpec s{.name = "p-" + std::to_string(i)};
  switch (i % 5) {
    case 0: s.cpu = "100m"; s.memory = "128Mi"; s.owner_uid = "rc-web"; break;
    case 1: s.cpu = "500m"; s.memory = "1Gi"; s.owner_uid = "rc-api"; break;
    case 2: s.cpu = "2"; s.memory = "4Gi"; break;
    case 3: s.cpu = "250m"; s.memory = "512Mi"; s.node_selector["disk"] = "ssd"; break;
    case 4: s.cpu = "1"; s.memory = "2Gi"; s.extended["alibaba.com/gpu"] = "1"; break;
  }
  return s;
}

Snapshot make_cluster() {
  Snapshot snap;
  for (int i = 0; i < kNodes; ++i) (void)snap.upsert_node(make_node(node_spec(i)));
  return snap;
}

std::vector<PodInfo> make_pods(Snapshot& snap, int n) {
  std::vector<PodInfo> pods;
  pods.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    PodInfo p = PodInfo::from_pod(make_pod(pod_spec(i)), snap.resource_names()).value();
    snap.intern_spread_key(p);
    pods.push_back(std::move(p));
  }
  return pods;
}

// Greedy placement + assume, on the snapshot: pods/s as items_per_second.
void BM_GreedySnapshot5000Nodes(benchmark::State& state) {
  Snapshot base = make_cluster();
  std::vector<PodInfo> pods = make_pods(base, 10000);
  auto fw = make_default_framework();
  for (auto _ : state) {
    state.PauseTiming();
    Snapshot snap = base;
    GreedyPlacer placer(*fw);
    state.ResumeTiming();
    int placed = 0;
    for (const PodInfo& p : pods) {
      PlacementResult r = placer.place(p, snap);
      if (r.ok()) {
        snap.add_pod(p, snap.node(r.node).name);
        ++placed;
      }
    }
    benchmark::DoNotOptimize(placed);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(pods.size()));
}
BENCHMARK(BM_GreedySnapshot5000Nodes)->Unit(benchmark::kMillisecond)->Iterations(3);

// The whole loop: pods created in the store, scheduled, bound (store update),
// Scheduled Events created, watch events delivered. Timed: the simulator run.
void BM_GreedyLoop5000Nodes(benchmark::State& state) {
  const int kPods = 10000;
  for (auto _ : state) {
    state.PauseTiming();
    sim::Simulator sim;
    sim::SimRandom random(1);
    auto stream = random.stream("store");
    store::InMemoryStore store(sim, *stream);
    NullTraceSink trace;
    SchedulerOptions o;
    o.emit_events = state.range(0) != 0;
    Scheduler scheduler(store, sim, trace, o);
    for (int i = 0; i < kNodes; ++i) {
      (void)store.create(api::share(api::Node(*make_node(node_spec(i)))));
    }
    (void)scheduler.start();
    sim.run();
    for (int i = 0; i < kPods; ++i) {
      api::Pod p = *make_pod(pod_spec(i));
      p.mutable_metadata()->clear_uid();
      (void)store.create(api::share(std::move(p)));
    }
    state.ResumeTiming();
    // Not run(): unschedulable pods would be retried forever in virtual time.
    sim.run_for(seconds(1));
    state.PauseTiming();
    if (scheduler.stats().scheduled != kPods) state.SkipWithError("not every pod was scheduled");
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kPods);
}
BENCHMARK(BM_GreedyLoop5000Nodes)->Arg(1)->Arg(0)->ArgName("events")->Unit(benchmark::kMillisecond)->Iterations(2);

// One batch of 1,000 mixed pods into 5,000 nodes by min-cost flow.
void BM_FlowBatch1000Into5000Nodes(benchmark::State& state) {
  Snapshot base = make_cluster();
  std::vector<PodInfo> pods = make_pods(base, 1000);
  auto fw = make_default_framework();
  FlowPlacer flow(*fw);
  int placed = 0;
  FlowStats stats;
  for (auto _ : state) {
    state.PauseTiming();
    Snapshot snap = base;
    state.ResumeTiming();
    BatchResult r = flow.place(pods, snap);
    placed = r.placed();
    stats = r.stats;
  }
  state.counters["placed"] = placed;
  state.counters["rounds"] = stats.rounds;
  state.counters["arcs"] = stats.edges;
  state.counters["repaired"] = stats.placed_by_repair;
}
BENCHMARK(BM_FlowBatch1000Into5000Nodes)->Unit(benchmark::kMillisecond)->Iterations(5);

// Greedy on the same batch, for comparison.
void BM_GreedyBatch1000Into5000Nodes(benchmark::State& state) {
  Snapshot base = make_cluster();
  std::vector<PodInfo> pods = make_pods(base, 1000);
  auto fw = make_default_framework();
  for (auto _ : state) {
    state.PauseTiming();
    Snapshot snap = base;
    GreedyPlacer placer(*fw);
    state.ResumeTiming();
    BatchResult r = place_greedy(pods, snap, placer);
    state.counters["placed"] = r.placed();
  }
}
BENCHMARK(BM_GreedyBatch1000Into5000Nodes)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace flotilla::sched

BENCHMARK_MAIN();
