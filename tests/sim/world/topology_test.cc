#include "sim/world/topology.h"

#include <gtest/gtest.h>

namespace flotilla::sim {
namespace {

class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // z1: r1 {n0,n1}, r2 {n2}; z2: r3 {n3,n4}
    add("n0", "z1", "r1");
    add("n1", "z1", "r1");
    add("n2", "z1", "r2");
    add("n3", "z2", "r3");
    add("n4", "z2", "r3");
  }
  NodeId add(const std::string& n, const std::string& z, const std::string& r) {
    auto id = topo_.add_node(n, z, r);
    EXPECT_TRUE(id.is_ok()) << id.status().to_string();
    return *id;
  }
  NodeId id(const std::string& n) { return *topo_.find_node(n); }
  Topology topo_;
};

TEST_F(TopologyTest, FailureDomains) {
  EXPECT_EQ(topo_.nodes_in_rack("r1"), (std::vector<NodeId>{id("n0"), id("n1")}));
  EXPECT_EQ(topo_.nodes_in_zone("z1"), (std::vector<NodeId>{id("n0"), id("n1"), id("n2")}));
  EXPECT_TRUE(topo_.nodes_in_rack("nope").empty());
  EXPECT_TRUE(topo_.same_rack(id("n0"), id("n1")));
  EXPECT_FALSE(topo_.same_rack(id("n0"), id("n2")));
  EXPECT_TRUE(topo_.same_zone(id("n0"), id("n2")));
  EXPECT_EQ(topo_.rack_peers(id("n3")), std::vector<NodeId>{id("n4")});
  EXPECT_EQ(topo_.zone_of(id("n4")), "z2");
  EXPECT_EQ(topo_.rack_of(id("n2")), "r2");
}

TEST_F(TopologyTest, RejectsDuplicatesAndRackInTwoZones) {
  EXPECT_EQ(topo_.add_node("n0", "z1", "r1").status().code(), StatusCode::kAlreadyExists);
  auto bad = topo_.add_node("n9", "z2", "r1");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalid);
  EXPECT_NE(bad.status().message().find("rack \"r1\" is in zone \"z1\""), std::string::npos);
}

TEST_F(TopologyTest, LatencyByDistance) {
  LatencyModel m;
  EXPECT_EQ(topo_.latency(id("n0"), id("n0")), m.same_node);
  EXPECT_EQ(topo_.latency(id("n0"), id("n1")), m.same_rack);
  EXPECT_EQ(topo_.latency(id("n0"), id("n2")), m.same_zone);
  EXPECT_EQ(topo_.latency(id("n0"), id("n3")), m.cross_zone);
}

TEST_F(TopologyTest, PartitionFromRestCutsBothWaysAndHeals) {
  for (NodeId a = 0; a < 5; ++a) {
    for (NodeId b = 0; b < 5; ++b) EXPECT_TRUE(topo_.reachable(a, b));
  }
  PartitionId p = topo_.add_partition({id("n0"), id("n3")}, PartitionKind::kFromRest);
  EXPECT_TRUE(topo_.reachable(id("n0"), id("n3")));  // members still talk
  EXPECT_FALSE(topo_.reachable(id("n0"), id("n1")));
  EXPECT_FALSE(topo_.reachable(id("n4"), id("n3")));
  EXPECT_TRUE(topo_.reachable(id("n1"), id("n4")));
  EXPECT_FALSE(topo_.reaches_control_plane(id("n0")));
  EXPECT_TRUE(topo_.reaches_control_plane(id("n1")));
  ASSERT_TRUE(topo_.remove_partition(p).is_ok());
  EXPECT_TRUE(topo_.reachable(id("n0"), id("n1")));
  EXPECT_TRUE(topo_.reaches_control_plane(id("n0")));
  EXPECT_EQ(topo_.remove_partition(p).code(), StatusCode::kNotFound);
}

TEST_F(TopologyTest, PartitionFromControlPlaneOnly) {
  PartitionId p = topo_.add_partition({id("n2")}, PartitionKind::kFromControlPlane);
  EXPECT_FALSE(topo_.reaches_control_plane(id("n2")));
  EXPECT_TRUE(topo_.reaches_control_plane(id("n1")));
  EXPECT_TRUE(topo_.reachable(id("n2"), id("n4")));
  ASSERT_TRUE(topo_.remove_partition(p).is_ok());
  EXPECT_TRUE(topo_.reaches_control_plane(id("n2")));
}

TEST_F(TopologyTest, OverlappingPartitionsCompose) {
  PartitionId a = topo_.add_partition({id("n0"), id("n1")}, PartitionKind::kFromRest);
  PartitionId b = topo_.add_partition({id("n1"), id("n2")}, PartitionKind::kFromRest);
  EXPECT_TRUE(topo_.reachable(id("n0"), id("n2")));  // through n1, in both
  EXPECT_FALSE(topo_.reachable(id("n0"), id("n3")));
  ASSERT_TRUE(topo_.remove_partition(a).is_ok());
  // n1 is still cut off by b; n0 is back with the rest.
  EXPECT_TRUE(topo_.reachable(id("n0"), id("n3")));
  EXPECT_FALSE(topo_.reachable(id("n0"), id("n1")));
  EXPECT_TRUE(topo_.reachable(id("n1"), id("n2")));
  ASSERT_TRUE(topo_.remove_partition(b).is_ok());
  EXPECT_TRUE(topo_.reachable(id("n0"), id("n1")));
}

TEST(TopologyScaleTest, ComponentsRecomputedOnlyWhenPartitionsChange) {
  Topology topo;
  for (int i = 0; i < 5000; ++i) {
    ASSERT_TRUE(topo.add_node("n" + std::to_string(i), "z" + std::to_string((i / 40) % 3),
                              "r" + std::to_string(i / 40))
                    .is_ok());
  }
  std::vector<NodeId> cut;
  for (NodeId n = 0; n < 100; ++n) cut.push_back(n);
  topo.add_partition(cut, PartitionKind::kFromRest);
  uint64_t before = topo.recomputations();
  int reachable = 0;
  for (NodeId a = 0; a < 5000; a += 7) {
    for (NodeId b = 0; b < 5000; b += 11) reachable += topo.reachable(a, b) ? 1 : 0;
  }
  EXPECT_EQ(topo.recomputations(), before + 1);
  EXPECT_GT(reachable, 0);
  EXPECT_FALSE(topo.reachable(0, 4999));
  EXPECT_TRUE(topo.reachable(0, 99));
}

}  // namespace
}  // namespace flotilla::sim
