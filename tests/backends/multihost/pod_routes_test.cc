// PodRoutes and the rtnetlink helpers in a private network namespace (the test
// process unshares one, so nothing touches the host's routes and everything
// vanishes with the process): host-gw routes via a peer's InternalIP, the
// VXLAN device with its FDB, neighbour and onlink route per peer, and routes
// following Node objects appearing, changing and being deleted; and the VIP
// addresses (InterfaceAddresses) on the same rtnetlink helper. Needs root.
#include "backends/live/pod_routes.h"
#include "backends/live/vip_addresses.h"

#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/api/object.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::live {
namespace {

// Output of a shell command (the `ip` tool as the independent witness).
std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ::pclose(p);
  return out;
}

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class PodRoutesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    netns_ok_ = ::unshare(CLONE_NEWNET) == 0;
    if (!netns_ok_) return;
    // The "segment": one end of a veth pair with this host's address.
    sh("ip link set lo up; ip link add seg0 type veth peer name seg1; "
       "ip addr add 10.99.0.1/24 dev seg0; ip link set seg1 up; ip link set seg0 up");
  }
  void SetUp() override {
    if (::geteuid() != 0 || !netns_ok_) GTEST_SKIP() << "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)";
  }

  void put_node(const std::string& name, const std::string& cidr, const std::string& ip) {
    api::Node n;
    n.mutable_metadata()->set_name(name);
    n.mutable_spec()->set_pod_cidr(cidr);
    auto* a = n.mutable_status()->add_addresses();
    a->set_type("InternalIP");
    a->set_address(ip);
    auto existing = store_.get(api::Kind::kNode, "", name);
    if (existing.is_ok()) {
      n.mutable_metadata()->set_resource_version(api::meta_of(**existing).resource_version());
      ASSERT_TRUE(store_.update(api::share(std::move(n))).is_ok());
    } else {
      ASSERT_TRUE(store_.create(api::share(std::move(n))).is_ok());
    }
  }
  void settle() { sim_.run_for(Duration(0)); }

  static inline bool netns_ok_ = false;
  sim::Simulator sim_;
  sim::SimRandom random_{1};
  std::unique_ptr<RandomStream> rng_ = random_.stream("store");
  store::InMemoryStore store_{sim_, *rng_};
};

TEST_F(PodRoutesTest, ParsesModesAndDerivesVtepMacs) {
  EXPECT_EQ(*parse_pod_network_mode("host-gw"), PodNetworkMode::kHostGw);
  EXPECT_EQ(*parse_pod_network_mode("vxlan"), PodNetworkMode::kVxlan);
  EXPECT_FALSE(parse_pod_network_mode("flannel").is_ok());
  EXPECT_EQ(vtep_mac_for("10.99.0.12"), "0a:58:0a:63:00:0c");
  EXPECT_EQ(mtu_of_address("10.99.0.1"), 1500);
  EXPECT_EQ(mtu_of_address("10.99.0.77"), 0);
}

TEST_F(PodRoutesTest, HostGwRoutesFollowNodes) {
  put_node("me", "10.244.0.0/24", "10.99.0.1");
  put_node("b", "10.244.1.0/24", "10.99.0.2");
  PodRoutes routes(store_, {.mode = PodNetworkMode::kHostGw, .node_name = "me",
                            .node_ip = "10.99.0.1"});
  ASSERT_TRUE(routes.start("10.244.0.0/24").is_ok());
  settle();
  EXPECT_TRUE(has(sh("ip route show 10.244.1.0/24"), "via 10.99.0.2 dev seg0"))
      << sh("ip route");
  EXPECT_EQ(sh("ip route show 10.244.0.0/24"), "");  // never a route to itself
  put_node("c", "10.244.2.0/24", "10.99.0.3");       // joins
  put_node("b", "10.244.1.0/24", "10.99.0.4");       // moves
  settle();
  EXPECT_TRUE(has(sh("ip route show 10.244.2.0/24"), "via 10.99.0.3")) << sh("ip route");
  EXPECT_TRUE(has(sh("ip route show 10.244.1.0/24"), "via 10.99.0.4")) << sh("ip route");
  ASSERT_TRUE(store_.remove(api::Kind::kNode, "", "c").is_ok());  // leaves
  settle();
  EXPECT_EQ(sh("ip route show 10.244.2.0/24"), "");
  EXPECT_TRUE(routes.warnings().empty()) << routes.warnings()[0];
  EXPECT_EQ(routes.peers().size(), 1u);
}

TEST_F(PodRoutesTest, TheDestructorRemovesItsRoutes) {
  put_node("b", "10.244.5.0/24", "10.99.0.5");
  {
    PodRoutes routes(store_, {.mode = PodNetworkMode::kHostGw, .node_name = "me",
                              .node_ip = "10.99.0.1"});
    ASSERT_TRUE(routes.start("10.244.0.0/24").is_ok());
    settle();
    ASSERT_NE(sh("ip route show 10.244.5.0/24"), "");
  }
  EXPECT_EQ(sh("ip route show 10.244.5.0/24"), "");
}

TEST_F(PodRoutesTest, VxlanDeviceFdbNeighbourAndRoutePerPeer) {
  put_node("b", "10.244.7.0/24", "10.99.0.7");
  PodRoutes routes(store_, {.mode = PodNetworkMode::kVxlan, .node_name = "me",
                            .node_ip = "10.99.0.1", .vxlan_device = "flmhtest.1"});
  Status s = routes.start("10.244.0.0/24");
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  settle();
  std::string link = sh("ip -d link show flmhtest.1");
  EXPECT_TRUE(has(link, "vxlan id 1 local 10.99.0.1")) << link;
  EXPECT_TRUE(has(link, "dstport 8472")) << link;
  EXPECT_TRUE(has(link, "nolearning")) << link;
  EXPECT_TRUE(has(link, "mtu 1450")) << link;
  EXPECT_TRUE(has(link, "0a:58:0a:63:00:01")) << link;
  EXPECT_TRUE(has(sh("ip -4 addr show flmhtest.1"), "10.244.0.0/32"));
  EXPECT_TRUE(has(sh("bridge fdb show dev flmhtest.1"), "0a:58:0a:63:00:07 dst 10.99.0.7"))
      << sh("bridge fdb show dev flmhtest.1");
  EXPECT_TRUE(has(sh("ip neigh show dev flmhtest.1"), "10.244.7.0 lladdr 0a:58:0a:63:00:07 PERMANENT"))
      << sh("ip neigh show dev flmhtest.1");
  EXPECT_TRUE(has(sh("ip route show 10.244.7.0/24"), "via 10.244.7.0 dev flmhtest.1 proto static onlink"))
      << sh("ip route");
  ASSERT_TRUE(store_.remove(api::Kind::kNode, "", "b").is_ok());
  settle();
  EXPECT_EQ(sh("ip route show 10.244.7.0/24"), "");
  EXPECT_FALSE(has(sh("bridge fdb show dev flmhtest.1"), "10.99.0.7"));
  EXPECT_FALSE(has(sh("ip neigh show dev flmhtest.1"), "10.244.7.0"));
  EXPECT_TRUE(link_delete("flmhtest.1").is_ok());
  EXPECT_EQ(sh("ip link show flmhtest.1 2>/dev/null"), "");
}

TEST_F(PodRoutesTest, ErrorsNameWhatIsWrong) {
  Status bad = route_replace("10.244.9.0/33", "10.99.0.9");
  EXPECT_EQ(bad.code(), StatusCode::kBadRequest);
  Status unreachable = route_replace("10.244.9.0/24", "192.0.2.1");  // no such on-link gateway
  EXPECT_FALSE(unreachable.is_ok());
  EXPECT_TRUE(has(unreachable.message(), "10.244.9.0/24 via 192.0.2.1")) << unreachable.message();
  EXPECT_EQ(route_replace("10.244.9.0/24", "10.99.0.9", "nosuchdev0").code(),
            StatusCode::kNotFound);
  EXPECT_TRUE(route_delete("10.244.9.0/24").is_ok());  // absent: fine
}

TEST_F(PodRoutesTest, InterfaceAddressesAddsAndRemovesOnlyItsOwnVips) {
  sh("ip addr add 10.96.0.11/32 dev seg0");  // someone else's
  {
    InterfaceAddresses vips("seg0");
    ASSERT_TRUE(vips.add("10.96.0.10").is_ok());
    EXPECT_TRUE(vips.add("10.96.0.10").is_ok());  // idempotent
    EXPECT_TRUE(vips.add("10.96.0.11").is_ok());  // already there: fine, not taken over
    EXPECT_EQ(vips.added(), (std::set<std::string>{"10.96.0.10"}));
    EXPECT_TRUE(has(sh("ip -4 addr show dev seg0"), "10.96.0.10/32"));
    auto listed = ipv4_addresses_of("seg0");
    ASSERT_TRUE(listed.is_ok());
    EXPECT_EQ(*listed, (std::vector<std::string>{"10.96.0.10", "10.96.0.11", "10.99.0.1"}));
    EXPECT_TRUE(vips.remove("10.96.0.11").is_ok());  // not ours: left alone
    EXPECT_TRUE(has(sh("ip -4 addr show dev seg0"), "10.96.0.11/32"));
    sh("ip addr del 10.96.0.10/32 dev seg0");  // removed behind its back
    EXPECT_TRUE(vips.remove("10.96.0.10").is_ok());
    ASSERT_TRUE(vips.add("10.96.0.12").is_ok());
    EXPECT_EQ(InterfaceAddresses("nosuchdev0").add("10.96.0.13").code(), StatusCode::kNotFound);
    EXPECT_EQ(vips.add("10.96.0.300").code(), StatusCode::kInvalid);
  }  // the destructor removes 10.96.0.12, and only it
  const std::string left = sh("ip -4 addr show dev seg0");
  EXPECT_FALSE(has(left, "10.96.0.12/32")) << left;
  EXPECT_TRUE(has(left, "10.96.0.11/32")) << left;
  sh("ip addr del 10.96.0.11/32 dev seg0");
}

}  // namespace
}  // namespace flotilla::live
