// A day in a large simulated world: 5,000 nodes, 150,000 containers, a tenth
// of them crashing (and restarted by a minimal stand-in agent), stochastic node
// failures. Measures wall time per simulated day and events processed.
#include <benchmark/benchmark.h>
#include <yaml-cpp/yaml.h>

#include "sim/engine/random.h"
#include "sim/faults/faults.h"
#include "sim/world/world.h"

namespace flotilla::sim {
namespace {

void BM_WorldDay(benchmark::State& state) {
  const int nodes = static_cast<int>(state.range(0));
  const int per_node = 30;
  for (auto _ : state) {
    Simulator sim;
    SimRandom random(1);
    NullTraceSink trace;
    WorldOptions o;
    o.runtime.image_pull = *Distribution::exponential(5e9);
    o.runtime.behaviours = *parse_behaviours(YAML::Load(
        "- {selector: 'tier=batch', exit_after: {exponential: {mean: 1h}}, exit_code: 1}\n"));
    World world(sim, random, trace, o);
    NodeGroupSpec g;
    g.name = "n";
    g.count = nodes;
    g.zones = {"z1", "z2", "z3"};
    (void)world.add_node_group(g);
    FaultInjector faults(world, random);
    (void)faults.add_all(*parse_faults(YAML::Load(
        "- {stochastic: {nodes: all, ttf: {exponential: {mean: 5d}}, ttr: {exponential: {mean: 1h}}}}\n")));
    ContainerConfig cc;
    cc.name = "main";
    cc.image = "app:1";
    std::vector<std::unique_ptr<RuntimeSubscription>> subs;
    auto start_pod = [&](NodeId n, int i) {
      PodSandboxConfig sc;
      sc.name = "p" + std::to_string(n) + "-" + std::to_string(i);
      sc.labels = {{"tier", i % 10 == 0 ? "batch" : "web"}};
      world.runtime(n).run_pod_sandbox(sc, [&world, &cc, n](StatusOr<PodSandboxStatus> s) {
        if (s.is_ok()) world.runtime(n).start_container(s->id, cc, [](StatusOr<std::string>) {});
      });
    };
    for (NodeId n = 0; n < world.node_count(); ++n) {
      subs.push_back(world.runtime(n).subscribe([&world, &cc, n](const ContainerEvent& e) {
        if (e.type == ContainerEvent::Type::kExited) {
          world.runtime(n).start_container(e.sandbox_id, cc, [](StatusOr<std::string>) {});
        }
      }));
      for (int i = 0; i < per_node; ++i) start_pod(n, i);
    }
    auto node_sub = world.on_node_state([&](const std::string& name, bool up) {
      if (up) {
        NodeId n = *world.find_node(name);
        for (int i = 0; i < per_node; ++i) start_pod(n, i);
      }
    });
    sim.run_until(TimePoint(std::chrono::hours(24)));
    state.counters["events"] = static_cast<double>(sim.events_processed());
    state.counters["running"] = static_cast<double>(world.running_container_count());
    state.counters["node_faults"] = static_cast<double>(faults.injected());
  }
}
BENCHMARK(BM_WorldDay)->Arg(500)->Arg(5000)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace
}  // namespace flotilla::sim
BENCHMARK_MAIN();
