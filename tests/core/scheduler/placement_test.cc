// Filters, scores, the FailedScheduling message and greedy placement on a
// Snapshot.
#include "core/scheduler/placement.h"

#include <gtest/gtest.h>

#include <map>

#include "core/scheduler/plugins.h"
#include "tests/core/scheduler/test_cluster.h"

namespace flotilla::sched {
namespace {

using testing::check_invariants;
using testing::make_node;
using testing::make_pod;
using testing::NodeSpec;
using testing::pod_info;
using testing::PodSpec;

PlacementOptions all_nodes() {
  PlacementOptions o;
  o.percentage_of_nodes_to_score = 100;
  return o;
}

// Places and assumes the pod; returns the node name or the failure message.
std::string schedule(GreedyPlacer& placer, Snapshot& snap, const PodInfo& pod) {
  PlacementResult r = placer.place(pod, snap);
  if (!r.ok()) return r.message;
  snap.add_pod(pod, snap.node(r.node).name);
  return snap.node(r.node).name;
}

TEST(SnapshotTest, TracksRequestsPortsAndOwnersIncrementally) {
  Snapshot snap;
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n1", .zone = "z1"})).is_ok());
  PodInfo p = pod_info(snap, {.name = "a", .cpu = "500m", .memory = "1Gi", .host_ports = {80},
                              .owner_uid = "rc1"});
  snap.add_pod(p, "n1");
  const NodeInfo* n = snap.find_node("n1");
  EXPECT_EQ(n->requested.milli_cpu, 500);
  EXPECT_EQ(n->requested.memory, int64_t{1} << 30);
  EXPECT_EQ(n->requested.pods, 1);
  EXPECT_EQ(n->used_ports.size(), 1u);
  EXPECT_EQ(n->owner_count(p.spread_id), 1);
  EXPECT_EQ(snap.zone_owner_count(p.spread_id, n->zone), 1);
  snap.add_pod(p, "n1");  // idempotent
  EXPECT_EQ(n->requested.milli_cpu, 500);
  EXPECT_TRUE(snap.remove_pod(p.key));
  EXPECT_EQ(n->requested.milli_cpu, 0);
  EXPECT_EQ(n->requested.pods, 0);
  EXPECT_TRUE(n->used_ports.empty());
  EXPECT_EQ(snap.zone_owner_count(p.spread_id, n->zone), 0);
  EXPECT_FALSE(snap.remove_pod(p.key));
}

// A node's new version: its conditions read each time, its resources and
// labels again only when they changed (and then, every one of them).
TEST(SnapshotTest, NodeUpdatesReadWhatChanged) {
  Snapshot snap;
  const int i = snap.upsert_node(make_node({.name = "n1", .zone = "z1"})).value();
  const int64_t gen = snap.node(i).generation;
  const int zone = snap.node(i).zone;

  ASSERT_EQ(snap.upsert_node(make_node({.name = "n1", .zone = "z1", .ready = false})).value(), i);
  EXPECT_FALSE(snap.node(i).ready);
  EXPECT_EQ(snap.node(i).allocatable.milli_cpu, 4000);
  EXPECT_EQ(snap.node(i).zone, zone);
  EXPECT_EQ(snap.node(i).generation, gen + 1);

  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n1", .cpu = "8", .zone = "z1"})).is_ok());
  EXPECT_TRUE(snap.node(i).ready);
  EXPECT_EQ(snap.node(i).allocatable.milli_cpu, 8000);
  EXPECT_EQ(snap.node(i).allocatable.memory, int64_t{8} << 30);

  ASSERT_TRUE(
      snap.upsert_node(make_node({.name = "n1", .cpu = "8", .zone = "z2", .labels = {{"a", "b"}}}))
          .is_ok());
  EXPECT_NE(snap.node(i).zone, zone);
  ASSERT_NE(snap.node(i).label("a"), nullptr);
  EXPECT_EQ(*snap.node(i).label("a"), "b");
  EXPECT_EQ(snap.node(i).allocatable.milli_cpu, 8000);

  // An unreadable quantity: refused, the node stays as it was.
  EXPECT_FALSE(snap.upsert_node(make_node({.name = "n1", .cpu = "eight", .zone = "z2"})).is_ok());
  EXPECT_EQ(snap.node(i).allocatable.milli_cpu, 8000);
}

TEST(SnapshotTest, PodOnUnknownNodeIsAccountedWhenNodeArrives) {
  Snapshot snap;
  PodInfo p = pod_info(snap, {.name = "a", .cpu = "1"});
  snap.add_pod(p, "later");
  EXPECT_EQ(snap.num_nodes(), 0);
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "later"})).is_ok());
  EXPECT_EQ(snap.num_nodes(), 1);
  EXPECT_EQ(snap.find_node("later")->requested.milli_cpu, 1000);
}

TEST(PodInfoTest, InitContainersAndLimitsCountAsKubernetesDefaults) {
  api::Pod pod;
  pod.mutable_metadata()->set_name("p");
  api::Container* c = pod.mutable_spec()->add_containers();
  (*c->mutable_resources()->mutable_limits())["cpu"] = "250m";  // no request: limit stands in
  api::Container* c2 = pod.mutable_spec()->add_containers();
  (*c2->mutable_resources()->mutable_requests())["cpu"] = "250m";
  api::Container* init = pod.mutable_spec()->add_init_containers();
  (*init->mutable_resources()->mutable_requests())["cpu"] = "2";
  ResourceNames names;
  StatusOr<PodInfo> info = PodInfo::from_pod(std::make_shared<const api::Pod>(pod), names);
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->requests.milli_cpu, 2000);
  EXPECT_EQ(info->key, "default/p");

  (*c2->mutable_resources()->mutable_requests())["memory"] = "lots";
  StatusOr<PodInfo> bad = PodInfo::from_pod(std::make_shared<const api::Pod>(pod), names);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("memory"), std::string::npos);
}

TEST(FilterTest, NodeReady) {
  Snapshot snap;
  NodeReadyFilter f;
  PodInfo p = pod_info(snap, {.name = "p"});
  int ready = snap.upsert_node(make_node({.name = "r"})).value();
  int not_ready = snap.upsert_node(make_node({.name = "nr", .ready = false})).value();
  int cordoned = snap.upsert_node(make_node({.name = "c", .unschedulable = true})).value();
  EXPECT_TRUE(f.filter(p, snap.node(ready), snap).is_success());
  EXPECT_EQ(f.filter(p, snap.node(not_ready), snap).reason_list().at(0), kReasonNotReady);
  EXPECT_EQ(f.filter(p, snap.node(cordoned), snap).reason_list().at(0), kReasonUnschedulable);
}

TEST(FilterTest, NodeResourcesFitNamesEveryShortfall) {
  Snapshot snap;
  NodeResourcesFitFilter f;
  int n = snap.upsert_node(make_node({.name = "n", .cpu = "2", .memory = "1Gi", .pods = "2",
                                      .extended = {{"alibaba.com/gpu", "1"}}}))
              .value();
  PodInfo fits = pod_info(snap, {.name = "a", .cpu = "2", .memory = "1Gi",
                                 .extended = {{"alibaba.com/gpu", "1"}}});
  EXPECT_TRUE(f.filter(fits, snap.node(n), snap).is_success());
  snap.add_pod(pod_info(snap, {.name = "b", .cpu = "1500m", .memory = "512Mi"}), "n");
  FilterStatus s = f.filter(fits, snap.node(n), snap);
  ASSERT_FALSE(s.is_success());
  EXPECT_EQ(s.reason_list(), (std::vector<std::string_view>{kReasonCpu, kReasonMemory}));
  PodInfo small = pod_info(snap, {.name = "c", .cpu = "100m"});
  EXPECT_TRUE(f.filter(small, snap.node(n), snap).is_success());
  snap.add_pod(small, "n");
  PodInfo tiny = pod_info(snap, {.name = "d", .cpu = "1m", .extended = {{"alibaba.com/gpu", "2"}}});
  FilterStatus t = f.filter(tiny, snap.node(n), snap);
  EXPECT_EQ(t.reason_list(),
            (std::vector<std::string_view>{kReasonTooManyPods, "Insufficient alibaba.com/gpu"}));
}

TEST(FilterTest, NodePortsSelectorAndName) {
  Snapshot snap;
  int n = snap.upsert_node(make_node({.name = "n", .labels = {{"disk", "ssd"}}})).value();
  snap.add_pod(pod_info(snap, {.name = "web", .host_ports = {8080}}), "n");
  NodePortsFilter ports;
  EXPECT_EQ(ports.filter(pod_info(snap, {.name = "x", .host_ports = {8080}}), snap.node(n), snap)
                .reason_list()
                .at(0),
            kReasonPorts);
  EXPECT_TRUE(ports.filter(pod_info(snap, {.name = "y", .host_ports = {8081}}), snap.node(n), snap)
                  .is_success());

  NodeSelectorFilter sel;
  EXPECT_TRUE(sel.filter(pod_info(snap, {.name = "s", .node_selector = {{"disk", "ssd"}}}),
                         snap.node(n), snap)
                  .is_success());
  EXPECT_EQ(sel.filter(pod_info(snap, {.name = "h", .node_selector = {{"disk", "hdd"}}}),
                       snap.node(n), snap)
                .reason_list()
                .at(0),
            kReasonNodeSelector);

  NodeNameFilter name;
  EXPECT_TRUE(name.filter(pod_info(snap, {.name = "m", .node_name = "n"}), snap.node(n), snap)
                  .is_success());
  EXPECT_EQ(name.filter(pod_info(snap, {.name = "o", .node_name = "other"}), snap.node(n), snap)
                .reason_list()
                .at(0),
            kReasonNodeName);
}

TEST(ScoreTest, LeastAllocatedPrefersEmptierNodes) {
  Snapshot snap;
  int empty = snap.upsert_node(make_node({.name = "empty", .cpu = "4", .memory = "4Gi"})).value();
  int busy = snap.upsert_node(make_node({.name = "busy", .cpu = "4", .memory = "4Gi"})).value();
  snap.add_pod(pod_info(snap, {.name = "b", .cpu = "3", .memory = "3Gi"}), "busy");
  PodInfo p = pod_info(snap, {.name = "p", .cpu = "1", .memory = "1Gi"});
  LeastAllocatedScore s;
  EXPECT_EQ(s.score(p, snap.node(empty), snap), 75);
  EXPECT_EQ(s.score(p, snap.node(busy), snap), 0);
}

TEST(ScoreTest, BalancedAllocationPrefersEvenUse) {
  Snapshot snap;
  int cpu_heavy = snap.upsert_node(make_node({.name = "a", .cpu = "4", .memory = "4Gi"})).value();
  int even = snap.upsert_node(make_node({.name = "b", .cpu = "4", .memory = "4Gi"})).value();
  snap.add_pod(pod_info(snap, {.name = "x", .cpu = "2"}), "a");
  snap.add_pod(pod_info(snap, {.name = "y", .cpu = "1", .memory = "1Gi"}), "b");
  PodInfo p = pod_info(snap, {.name = "p", .cpu = "1", .memory = "1Gi"});
  BalancedAllocationScore s;
  EXPECT_EQ(s.score(p, snap.node(even), snap), 100);
  EXPECT_EQ(s.score(p, snap.node(cpu_heavy), snap), 75);  // |0.75-0.25|/2 = 0.25
}

TEST(ScoreTest, SelectorSpreadWeighsZoneTwoThirds) {
  Snapshot snap;
  std::vector<int> nodes = {snap.upsert_node(make_node({.name = "a1", .zone = "a"})).value(),
                            snap.upsert_node(make_node({.name = "a2", .zone = "a"})).value(),
                            snap.upsert_node(make_node({.name = "b1", .zone = "b"})).value()};
  snap.add_pod(pod_info(snap, {.name = "r1", .owner_uid = "rc"}), "a1");
  PodInfo p = pod_info(snap, {.name = "r2", .owner_uid = "rc"});
  SelectorSpreadScore s;
  std::vector<int64_t> scores;
  for (int n : nodes) scores.push_back(s.score(p, snap.node(n), snap));
  s.normalize(p, snap, nodes, scores);
  EXPECT_EQ(scores, (std::vector<int64_t>{0, 33, 100}));
}

TEST(FailedSchedulingTest, MessageCountsReasonsPerNodeAsKubernetes) {
  Snapshot snap;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(snap.upsert_node(make_node({.name = "small-" + std::to_string(i), .cpu = "1"})).is_ok());
  }
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(
        snap.upsert_node(make_node({.name = "down-" + std::to_string(i), .ready = false})).is_ok());
  }
  auto fw = make_default_framework();
  GreedyPlacer placer(*fw, all_nodes());
  PlacementResult r = placer.place(pod_info(snap, {.name = "big", .cpu = "2"}), snap);
  ASSERT_FALSE(r.ok());
  // kube formats "<count> <reason>" and sorts those strings.
  EXPECT_EQ(r.message, "0/5 nodes are available: 2 node(s) were not ready, 3 Insufficient cpu.");
  EXPECT_EQ(failed_scheduling_message(3, {{kReasonNodeSelector, 3}}),
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.");
  EXPECT_EQ(failed_scheduling_message(0, {}), "0/0 nodes are available.");
}

TEST(FailedSchedulingTest, OneNodeCanContributeSeveralReasons) {
  Snapshot snap;
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n", .cpu = "1", .memory = "1Gi"})).is_ok());
  auto fw = make_default_framework();
  GreedyPlacer placer(*fw, all_nodes());
  PlacementResult r = placer.place(pod_info(snap, {.name = "p", .cpu = "2", .memory = "2Gi"}), snap);
  EXPECT_EQ(r.message, "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
}

TEST(GreedyTest, HostPortConflictKeepsTwoPodsApart) {
  Snapshot snap;
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n1"})).is_ok());
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n2"})).is_ok());
  auto fw = make_default_framework();
  GreedyPlacer placer(*fw, all_nodes());
  std::string a = schedule(placer, snap, pod_info(snap, {.name = "a", .host_ports = {80}}));
  std::string b = schedule(placer, snap, pod_info(snap, {.name = "b", .host_ports = {80}}));
  EXPECT_NE(a, b);
  EXPECT_TRUE(a == "n1" || a == "n2");
  EXPECT_TRUE(b == "n1" || b == "n2");
  std::string c = schedule(placer, snap, pod_info(snap, {.name = "c", .host_ports = {80}}));
  EXPECT_EQ(c, "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.");
  EXPECT_EQ(check_invariants(snap), "");
}

TEST(GreedyTest, NineReplicasSpreadThreePerZone) {
  Snapshot snap;
  for (const char* zone : {"a", "b", "c"}) {
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(
          snap.upsert_node(make_node({.name = std::string(zone) + std::to_string(i), .zone = zone}))
              .is_ok());
    }
  }
  auto fw = make_default_framework();
  GreedyPlacer placer(*fw, all_nodes());
  std::map<std::string, int> per_zone;
  std::map<std::string, int> per_node;
  for (int i = 0; i < 9; ++i) {
    std::string node = schedule(
        placer, snap,
        pod_info(snap, {.name = "web-" + std::to_string(i), .cpu = "100m", .memory = "64Mi",
                        .owner_uid = "rc-web"}));
    ASSERT_EQ(node.size(), 2u) << node;
    ++per_zone[node.substr(0, 1)];
    ++per_node[node];
  }
  EXPECT_EQ(per_zone, (std::map<std::string, int>{{"a", 3}, {"b", 3}, {"c", 3}}));
  EXPECT_EQ(per_node.size(), 9u);  // one per node
}

TEST(GreedyTest, PresetNodeNameAndSelectorAreHonoured) {
  Snapshot snap;
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n1"})).is_ok());
  ASSERT_TRUE(snap.upsert_node(make_node({.name = "n2", .labels = {{"gpu", "yes"}}})).is_ok());
  auto fw = make_default_framework();
  GreedyPlacer placer(*fw, all_nodes());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(schedule(placer, snap,
                       pod_info(snap, {.name = "g" + std::to_string(i), .node_selector = {{"gpu", "yes"}}})),
              "n2");
    EXPECT_EQ(schedule(placer, snap, pod_info(snap, {.name = "m" + std::to_string(i), .node_name = "n1"})),
              "n1");
  }
}

TEST(GreedyTest, AdaptivePercentageStopsEarlyAndRotates) {
  EXPECT_EQ(num_feasible_nodes_to_find(50, {}), 50);
  EXPECT_EQ(num_feasible_nodes_to_find(5000, {}), 500);   // 50 - 40 = 10%
  EXPECT_EQ(num_feasible_nodes_to_find(10000, {}), 500);  // floor of 5%
  EXPECT_EQ(num_feasible_nodes_to_find(1000, {}), 420);   // 42%
  PlacementOptions all = all_nodes();
  EXPECT_EQ(num_feasible_nodes_to_find(5000, all), 5000);

  Snapshot snap;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(snap.upsert_node(make_node({.name = "n" + std::to_string(i)})).is_ok());
  }
  auto fw = make_default_framework();
  GreedyPlacer placer(*fw);
  PlacementResult first = placer.place(pod_info(snap, {.name = "p"}), snap);
  EXPECT_EQ(first.evaluated, 420);
  EXPECT_EQ(first.feasible, 420);
  // The next search starts where the last stopped: its first candidates are new nodes.
  PlacementResult second = placer.place(pod_info(snap, {.name = "q"}), snap);
  EXPECT_GE(second.node, 420);
}

}  // namespace
}  // namespace flotilla::sched
