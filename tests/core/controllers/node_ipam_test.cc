// The node IPAM controller on simulated time and the real store: nodes get
// distinct, aligned pod CIDRs from the cluster CIDR, keep them, free them on
// deletion, and exhaustion is reported as an event and healed when a node goes.
#include "core/controllers/node_ipam.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

class NodeIpamTest : public testing::ControllerTest {
 protected:
  std::unique_ptr<NodeIpamController> start(const std::string& cluster, int mask) {
    auto c = NodeIpamController::create(context(), {.cluster_cidr = cluster,
                                                    .node_mask_size = mask,
                                                    .retry_when_full = seconds(30)});
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    if (!c.is_ok()) return nullptr;
    EXPECT_TRUE((*c)->start().is_ok());
    return std::move(*c);
  }
  std::string cidr_of(const std::string& node) {
    auto n = get<api::Node>("", node);
    return n == nullptr ? "<missing>" : n->spec().pod_cidr();
  }
  void remove_node(const std::string& node) {
    ASSERT_TRUE(store_.remove(api::Kind::kNode, "", node).is_ok());
  }
};

TEST(Ipv4CidrTest, ParsesAndRejectsWithUsefulMessages) {
  auto c = Ipv4Cidr::parse("10.244.0.0/16");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->to_string(), "10.244.0.0/16");
  EXPECT_EQ(c->size(), 65536u);
  EXPECT_TRUE(c->contains(*parse_ipv4("10.244.255.1")));
  EXPECT_FALSE(c->contains(*parse_ipv4("10.245.0.1")));
  EXPECT_FALSE(Ipv4Cidr::parse("10.244.0.0").is_ok());
  EXPECT_FALSE(Ipv4Cidr::parse("10.244.0.0/33").is_ok());
  EXPECT_FALSE(Ipv4Cidr::parse("10.244.0.256/24").is_ok());
  auto host_bits = Ipv4Cidr::parse("10.244.1.7/16");
  ASSERT_FALSE(host_bits.is_ok());
  EXPECT_NE(host_bits.status().message().find("10.244.0.0/16"), std::string::npos);
  EXPECT_FALSE(parse_ipv4("1.2.3").has_value());
  EXPECT_FALSE(parse_ipv4("1.2.3.4.5").has_value());
  EXPECT_EQ(format_ipv4(*parse_ipv4("192.168.10.254")), "192.168.10.254");
}

TEST_F(NodeIpamTest, RejectsAMaskShorterThanTheClusterPrefix) {
  auto c = NodeIpamController::create(context(), {.cluster_cidr = "10.244.0.0/16",
                                                  .node_mask_size = 12});
  EXPECT_FALSE(c.is_ok());
  auto bad = NodeIpamController::create(context(), {.cluster_cidr = "10.244.0.1/16"});
  EXPECT_FALSE(bad.is_ok());
}

TEST_F(NodeIpamTest, EveryNodeGetsADistinctBlockInOrder) {
  auto ipam = start("10.244.0.0/16", 24);
  heartbeat("a");
  heartbeat("b");
  settle();
  heartbeat("c");  // joins later
  settle();
  EXPECT_EQ(cidr_of("a"), "10.244.0.0/24");
  EXPECT_EQ(cidr_of("b"), "10.244.1.0/24");
  EXPECT_EQ(cidr_of("c"), "10.244.2.0/24");
  auto n = get<api::Node>("", "b");
  ASSERT_EQ(n->spec().pod_cidrs_size(), 1);
  EXPECT_EQ(n->spec().pod_cidrs(0), "10.244.1.0/24");
  EXPECT_EQ(ipam->allocated(), 3u);
  EXPECT_EQ(ipam->capacity(), 256u);
}

TEST_F(NodeIpamTest, AllocationsSurviveHeartbeatsAndAControllerRestart) {
  auto ipam = start("10.200.0.0/20", 26);
  for (std::string n : {"a", "b", "c"}) heartbeat(n);
  settle();
  const std::string b = cidr_of("b");
  EXPECT_EQ(b, "10.200.0.64/26");
  for (int i = 0; i < 5; ++i) {
    run_for(seconds(10));
    heartbeat("b");
    heartbeat("a", "False");
  }
  settle();
  EXPECT_EQ(cidr_of("b"), b);
  ipam.reset();
  remove_node("a");  // while no controller runs
  auto again = start("10.200.0.0/20", 26);
  settle();
  EXPECT_EQ(again->owner_of(b), "b");
  EXPECT_EQ(again->owner_of("10.200.0.0/26"), "");  // a's block was learned free
  heartbeat("d");
  settle();
  EXPECT_EQ(cidr_of("d"), "10.200.0.0/26");  // the lowest free block, not b's or c's
  EXPECT_EQ(cidr_of("b"), b);
  EXPECT_EQ(cidr_of("c"), "10.200.0.128/26");
}

TEST_F(NodeIpamTest, DeletingANodeFreesItsBlockForTheNextNode) {
  auto ipam = start("10.244.0.0/16", 24);
  heartbeat("a");
  heartbeat("b");
  settle();
  remove_node("a");
  settle();
  EXPECT_EQ(ipam->allocated(), 1u);
  heartbeat("c");
  settle();
  EXPECT_EQ(cidr_of("c"), "10.244.0.0/24");
}

TEST_F(NodeIpamTest, ANodeThatClearsItsCidrGetsTheSameBlockBack) {
  auto ipam = start("10.244.0.0/16", 24);
  heartbeat("a");
  heartbeat("b");
  settle();
  auto n = get<api::Node>("", "b");
  api::Node copy = *n;
  copy.mutable_spec()->clear_pod_cidr();
  copy.mutable_spec()->clear_pod_cidrs();
  ASSERT_TRUE(store_.update(api::share(std::move(copy))).is_ok());
  heartbeat("c");
  settle();
  EXPECT_EQ(cidr_of("b"), "10.244.1.0/24");
  EXPECT_EQ(cidr_of("c"), "10.244.2.0/24");
}

TEST_F(NodeIpamTest, ExhaustionIsAWarningEventAndHealsWhenANodeLeaves) {
  auto ipam = start("10.9.0.0/23", 24);  // room for two nodes
  heartbeat("a");
  heartbeat("b");
  settle();
  heartbeat("c");
  settle();
  EXPECT_EQ(cidr_of("c"), "");
  std::vector<api::Event> full = events(std::string(NodeIpamController::kReasonNotAvailable));
  ASSERT_EQ(full.size(), 1u);
  EXPECT_EQ(full[0].type(), "Warning");
  EXPECT_EQ(full[0].involved_object().name(), "c");
  EXPECT_NE(full[0].message().find("10.9.0.0/23"), std::string::npos) << full[0].message();
  run_for(seconds(95));  // retried, still full: reported once, not per retry
  EXPECT_EQ(events(std::string(NodeIpamController::kReasonNotAvailable)).size(), 1u);
  remove_node("a");
  settle();
  EXPECT_EQ(cidr_of("c"), "10.9.0.0/24");
}

TEST_F(NodeIpamTest, AUserSetCidrInRangeIsHonouredAndNotHandedOutTwice) {
  api::Node pinned;
  pinned.mutable_metadata()->set_name("pinned");
  pinned.mutable_spec()->set_pod_cidr("10.244.0.0/24");
  create(pinned);
  auto ipam = start("10.244.0.0/16", 24);
  heartbeat("a");
  settle();
  EXPECT_EQ(cidr_of("pinned"), "10.244.0.0/24");
  EXPECT_EQ(cidr_of("a"), "10.244.1.0/24");
}

TEST_F(NodeIpamTest, ManyNodesGetPairwiseDistinctBlocks) {
  auto ipam = start("10.0.0.0/8", 24);
  for (int i = 0; i < 300; ++i) heartbeat("n" + std::to_string(i));
  settle();
  std::set<std::string> seen;
  for (int i = 0; i < 300; ++i) {
    std::string c = cidr_of("n" + std::to_string(i));
    EXPECT_FALSE(c.empty());
    EXPECT_TRUE(seen.insert(c).second) << c << " twice";
  }
}

}  // namespace
}  // namespace flotilla::ctrl
