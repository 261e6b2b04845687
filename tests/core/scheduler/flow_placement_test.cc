// Batch placement by min-cost flow: never violates a filter, places at least as
// many pods as greedy, spreads replicas.
#include "core/scheduler/flow_placement.h"

#include <gtest/gtest.h>

#include <map>

#include "core/scheduler/plugins.h"
#include "tests/core/scheduler/test_cluster.h"

namespace flotilla::sched {
namespace {

using testing::check_invariants;
using testing::make_node;
using testing::NodeSpec;
using testing::pod_info;
using testing::PodSpec;

// A small deterministic generator so the cluster is varied but fixed.
struct Lcg {
  uint64_t s;
  uint64_t next(uint64_t n) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (s >> 33) % n;
  }
};

void build_heterogeneous_cluster(Snapshot& snap, int nodes) {
  Lcg rng{42};
  const char* cpus[] = {"2", "4", "8", "16"};
  const char* mems[] = {"4Gi", "8Gi", "16Gi", "32Gi"};
  for (int i = 0; i < nodes; ++i) {
    NodeSpec s{.name = "node-" + std::to_string(i)};
    s.cpu = cpus[rng.next(4)];
    s.memory = mems[rng.next(4)];
    s.pods = rng.next(5) == 0 ? "8" : "110";
    s.zone = "zone-" + std::to_string(i % 4);
    s.ready = rng.next(20) != 0;
    if (rng.next(4) == 0) s.labels["disk"] = "ssd";
    if (rng.next(8) == 0) s.extended["alibaba.com/gpu"] = "2";
    ASSERT_TRUE(snap.upsert_node(make_node(s)).is_ok());
  }
}

std::vector<PodInfo> mixed_batch(Snapshot& snap, int count) {
  std::vector<PodInfo> pods;
  for (int i = 0; i < count; ++i) {
    PodSpec s{.name = "p-" + std::to_string(i)};
    switch (i % 7) {
      case 0: s.cpu = "100m"; s.memory = "128Mi"; s.owner_uid = "rc-web"; break;
      case 1: s.cpu = "500m"; s.memory = "1Gi"; s.owner_uid = "rc-api"; break;
      case 2: s.cpu = "2"; s.memory = "1Gi"; break;
      case 3: s.cpu = "250m"; s.memory = "4Gi"; break;
      case 4: s.cpu = "1"; s.memory = "512Mi"; s.extended["alibaba.com/gpu"] = "1"; break;
      case 5: s.cpu = "200m"; s.memory = "256Mi"; s.host_ports = {8080}; s.owner_uid = "rc-edge"; break;
      case 6: s.cpu = "1"; s.memory = "2Gi"; s.node_selector["disk"] = "ssd"; break;
    }
    pods.push_back(pod_info(snap, s));
  }
  return pods;
}

TEST(FlowPlacementTest, ThousandPodsOnHeterogeneousNodesRespectEveryFilter) {
  Snapshot base;
  build_heterogeneous_cluster(base, 200);
  std::vector<PodInfo> pods = mixed_batch(base, 1000);
  auto fw = make_default_framework();

  Snapshot greedy_snap = base;
  PlacementOptions all;
  all.percentage_of_nodes_to_score = 100;
  GreedyPlacer greedy(*fw, all);
  BatchResult g = place_greedy(pods, greedy_snap, greedy);

  Snapshot flow_snap = base;
  FlowPlacer flow(*fw);
  BatchResult f = flow.place(pods, flow_snap);

  EXPECT_EQ(check_invariants(flow_snap), "");
  EXPECT_EQ(check_invariants(greedy_snap), "");
  EXPECT_GE(f.placed(), g.placed());
  EXPECT_GT(f.stats.placed_by_flow, f.placed() / 2);  // the solver did the work, not the repair
  // The cluster is too small for everything: some pods must be left, each with a reason.
  EXPECT_LT(f.placed(), 1000);
  for (size_t i = 0; i < pods.size(); ++i) {
    if (f.node[i] < 0) {
      EXPECT_EQ(f.messages[i].rfind("0/200 nodes are available: ", 0), 0u) << f.messages[i];
      continue;
    }
    const NodeInfo& n = flow_snap.node(f.node[i]);
    EXPECT_TRUE(n.ready) << n.name;
    for (const auto& [k, v] : pods[i].node_selector) {
      ASSERT_NE(n.label(k), nullptr) << n.name;
      EXPECT_EQ(*n.label(k), v) << n.name;
    }
  }
  EXPECT_EQ(flow_snap.num_pods(), f.placed());
  std::cout << "greedy placed " << g.placed() << ", flow placed " << f.placed() << " ("
            << f.stats.placed_by_flow << " by flow, " << f.stats.placed_by_repair
            << " repaired, " << f.stats.dropped_in_verify << " dropped in verify; " << f.stats.rounds << " rounds, "
            << f.stats.classes << " classes, " << f.stats.vertices << " vertices, "
            << f.stats.edges << " arcs)\n";
}

TEST(FlowPlacementTest, PlacesMoreThanGreedyWhenOrderMisleadsGreedy) {
  // Two equal nodes, only "a" has an SSD. Greedy puts the first pod on "a" (a
  // tie, first in order) and then has no room for the pod that needs the SSD;
  // the flow sees both pods at once and places both.
  Snapshot base;
  ASSERT_TRUE(base.upsert_node(make_node({.name = "a", .cpu = "2", .labels = {{"disk", "ssd"}}})).is_ok());
  ASSERT_TRUE(base.upsert_node(make_node({.name = "b", .cpu = "2"})).is_ok());
  std::vector<PodInfo> pods = {pod_info(base, {.name = "any", .cpu = "1500m"}),
                               pod_info(base, {.name = "ssd", .cpu = "1500m",
                                               .node_selector = {{"disk", "ssd"}}})};
  auto fw = make_default_framework();
  Snapshot gs = base;
  GreedyPlacer greedy(*fw);
  EXPECT_EQ(place_greedy(pods, gs, greedy).placed(), 1);
  Snapshot fs = base;
  FlowPlacer flow(*fw);
  BatchResult f = flow.place(pods, fs);
  EXPECT_EQ(check_invariants(fs), "");
  ASSERT_EQ(f.placed(), 2);
  EXPECT_EQ(fs.node(f.node[0]).name, "b");
  EXPECT_EQ(fs.node(f.node[1]).name, "a");
}

TEST(FlowPlacementTest, HostPortsNeverShareANode) {
  Snapshot snap;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(snap.upsert_node(make_node({.name = "n" + std::to_string(i)})).is_ok());
  }
  std::vector<PodInfo> pods;
  for (int i = 0; i < 5; ++i) {
    pods.push_back(pod_info(snap, {.name = "edge-" + std::to_string(i), .host_ports = {443}}));
  }
  auto fw = make_default_framework();
  FlowPlacer flow(*fw);
  BatchResult r = flow.place(pods, snap);
  EXPECT_EQ(r.placed(), 3);
  EXPECT_EQ(check_invariants(snap), "");
  EXPECT_EQ(r.messages[4],
            "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports.");
}

TEST(FlowPlacementTest, NineReplicasSpreadOverZones) {
  Snapshot snap;
  for (const char* zone : {"a", "b", "c"}) {
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(
          snap.upsert_node(make_node({.name = std::string(zone) + std::to_string(i), .zone = zone}))
              .is_ok());
    }
  }
  std::vector<PodInfo> pods;
  for (int i = 0; i < 9; ++i) {
    pods.push_back(pod_info(snap, {.name = "web-" + std::to_string(i), .cpu = "100m",
                                   .owner_uid = "rc-web"}));
  }
  auto fw = make_default_framework();
  FlowPlacer flow(*fw);
  BatchResult r = flow.place(pods, snap);
  ASSERT_EQ(r.placed(), 9);
  std::map<std::string, int> per_zone;
  std::map<std::string, int> per_node;
  for (int n : r.node) {
    ++per_zone[snap.node(n).name.substr(0, 1)];
    ++per_node[snap.node(n).name];
  }
  EXPECT_EQ(per_zone, (std::map<std::string, int>{{"a", 3}, {"b", 3}, {"c", 3}}));
  EXPECT_EQ(per_node.size(), 9u);
}

}  // namespace
}  // namespace flotilla::sched
