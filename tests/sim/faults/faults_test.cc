#include "sim/faults/faults.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "tests/sim/world/world_test_util.h"

namespace flotilla::sim {
namespace {

using testing::await;
using testing::RecordingTraceSink;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

std::vector<FaultSpec> faults(const std::string& yaml) {
  auto f = parse_faults(YAML::Load(yaml));
  EXPECT_TRUE(f.is_ok()) << f.status().to_string();
  return f.is_ok() ? *f : std::vector<FaultSpec>{};
}

class FaultsTest : public ::testing::Test {
 protected:
  // 2 zones x 2 racks x 3 nodes: n-0..n-11; zone z1 racks n-z1-r0, n-z1-r1.
  void SetUp() override {
    world_ = std::make_unique<World>(sim_, random_, trace_);
    NodeGroupSpec g;
    g.name = "n";
    g.count = 12;
    g.zones = {"z1", "z2"};
    g.nodes_per_rack = 3;
    ASSERT_TRUE(world_->add_node_group(g).is_ok());
    injector_ = std::make_unique<FaultInjector>(*world_, random_);
    sub_ = world_->on_node_state([this](const std::string& n, bool up) {
      changes_.push_back({sim_.now(), n, up});
    });
  }
  std::set<std::string> down_nodes() const {
    std::set<std::string> out;
    for (NodeId n = 0; n < world_->node_count(); ++n) {
      if (!world_->node(n).up) out.insert(world_->node(n).name);
    }
    return out;
  }
  struct Change {
    TimePoint at;
    std::string node;
    bool up;
  };

  Simulator sim_;
  SimRandom random_{1};
  RecordingTraceSink trace_;
  std::unique_ptr<World> world_;
  std::unique_ptr<FaultInjector> injector_;
  std::unique_ptr<World::NodeStateSubscription> sub_;
  std::vector<Change> changes_;
};

TEST(FaultParseTest, ScenarioSyntax) {
  auto f = faults(R"(
- {at: 2h, kill_node: node-3}
- {at: 3h, restart_node: node-3}
- {at: 1h, power_off: {rack: r1, for: 10m}}
- {at: 30m, partition: {nodes: [n1, n2], for: 5m, from: control-plane}}
- {at: 10m, kill_containers: {selector: "app=web", count: 2}}
- {at: 10m, hang_containers: {selector: "app=db"}}
- {stochastic: {nodes: all, ttf: {exponential: {mean: 30d}}, ttr: {exponential: {mean: 1h}}, domain: zone}}
- {stochastic: {containers: "app=web", ttf: {exponential: {mean: 6h}}, exit_code: 1}}
)");
  ASSERT_EQ(f.size(), 8u);
  EXPECT_EQ(f[0].kind, FaultSpec::Kind::kKillNode);
  EXPECT_EQ(f[0].at, hours(2));
  EXPECT_EQ(f[0].nodes, std::vector<std::string>{"node-3"});
  EXPECT_EQ(f[2].kind, FaultSpec::Kind::kPowerOff);
  EXPECT_EQ(f[2].rack, "r1");
  EXPECT_EQ(f[2].duration, minutes(10));
  EXPECT_EQ(f[3].partition_from, PartitionKind::kFromControlPlane);
  EXPECT_EQ(f[3].nodes, (std::vector<std::string>{"n1", "n2"}));
  EXPECT_EQ(f[4].count, 2);
  EXPECT_EQ(f[6].domain, FaultSpec::Domain::kZone);
  EXPECT_TRUE(f[6].node_selector.empty());
  EXPECT_NEAR(f[6].ttf->mean(), 30 * 86400e9, 1e6);
  EXPECT_EQ(f[7].kind, FaultSpec::Kind::kStochasticContainers);
  EXPECT_EQ(f[7].exit_code, 1);
  EXPECT_EQ(f[3].name, "faults[3]");
}

TEST(FaultParseTest, ErrorsNameFieldAndLine) {
  auto expect_error = [](const std::string& yaml, const std::string& needle) {
    auto f = parse_faults(YAML::Load(yaml));
    ASSERT_FALSE(f.is_ok()) << yaml;
    EXPECT_NE(f.status().message().find(needle), std::string::npos) << f.status().message();
  };
  expect_error("- {at: 1h, kill_node: a}\n- {at: 1h, partition: {nodes: [a], for: soon}}\n",
               "faults[1].partition.for (line 2");
  expect_error("- {at: 1h, power_off: {rack: r1, zone: z1}}\n", "give exactly one of rack, zone");
  expect_error("- {at: 1h, explode: a}\n", "faults[0].explode (line 1");
  expect_error("- {kill_node: a}\n", "missing field at");
  expect_error("- {at: 1h, partition: {nodes: [a], from: moon}}\n", "expected rest or control-plane");
  expect_error("- {stochastic: {nodes: all, ttf: 1h}}\n", "missing field ttr");
  expect_error("- {stochastic: {nodes: all, ttf: 1h, ttr: 1m, domain: planet}}\n",
               "faults[0].stochastic.domain");
}

TEST_F(FaultsTest, UnknownTargetsAreRejected) {
  auto f = faults("- {at: 1h, power_off: {rack: nope}}\n- {at: 1h, kill_node: ghost}\n");
  EXPECT_EQ(injector_->add(f[0]).code(), StatusCode::kNotFound);
  Status st = injector_->add(f[1]);
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("node \"ghost\""), std::string::npos);
}

TEST_F(FaultsTest, RackPowerOffTakesExactlyTheRackDownAndBack) {
  const std::string rack = world_->node(0).rack;
  std::set<std::string> expected;
  for (NodeId n : world_->topology().nodes_in_rack(rack)) expected.insert(world_->node(n).name);
  ASSERT_EQ(expected.size(), 3u);
  ASSERT_TRUE(injector_->add_all(faults("- {at: 1h, power_off: {rack: " + rack + ", for: 10m}}\n"))
                  .is_ok());
  sim_.run_until(TimePoint(hours(1)) - seconds(1));
  EXPECT_TRUE(down_nodes().empty());
  sim_.run_until(TimePoint(hours(1)));
  EXPECT_EQ(down_nodes(), expected);
  sim_.run_until(TimePoint(hours(1) + minutes(10)) - seconds(1));
  EXPECT_EQ(down_nodes(), expected);
  sim_.run_until(TimePoint(hours(1) + minutes(10)));
  EXPECT_TRUE(down_nodes().empty());
  EXPECT_EQ(trace_.of_type(trace::NODE_DOWN).size(), 3u);
  EXPECT_EQ(trace_.of_type(trace::NODE_UP).size(), 3u);
  ASSERT_EQ(trace_.of_type(trace::FAULT_INJECTED).size(), 1u);
  EXPECT_EQ(trace_.of_type(trace::FAULT_INJECTED)[0].reason(), "power_off");
  EXPECT_EQ(trace_.of_type(trace::FAULT_HEALED).size(), 1u);
}

TEST_F(FaultsTest, ZonePowerOffOverlapsWithANodeKill) {
  ASSERT_TRUE(injector_->add_all(faults("- {at: 1m, kill_node: n-0}\n"
                                        "- {at: 2m, power_off: {zone: z1, for: 5m}}\n"))
                  .is_ok());
  sim_.run_until(TimePoint(minutes(3)));
  EXPECT_EQ(down_nodes().size(), 6u);  // every z1 node
  sim_.run_until(TimePoint(minutes(8)));
  // The zone is back, but n-0 was killed on its own and stays down.
  EXPECT_EQ(down_nodes(), std::set<std::string>{"n-0"});
}

TEST_F(FaultsTest, PartitionMakesProbesFailAndHealsOnTime) {
  PodSandboxConfig c;
  c.name = "web";
  c.ports = {{80, 0, "TCP"}};
  auto s = await<StatusOr<PodSandboxStatus>>(
      sim_, [&](auto cb) { world_->runtime(0).run_pod_sandbox(c, cb); });
  ASSERT_TRUE(s.is_ok());
  ContainerConfig cc;
  cc.name = "main";
  cc.image = "nginx";
  ASSERT_TRUE(await<StatusOr<std::string>>(
                  sim_, [&](auto cb) { world_->runtime(0).start_container(s->id, cc, cb); })
                  .is_ok());
  ASSERT_TRUE(injector_->add_all(faults("- {at: 30m, partition: {nodes: [n-0, n-2], for: 5m}}\n"
                                        "- {at: 1h, partition: {nodes: [n-0], for: 1m, from: control-plane}}\n"))
                  .is_ok());
  auto probe_from = [&](const std::string& node) {
    ProbeRequest r;
    r.from_node = node;
    r.target = {s->ip, 80};
    return await<Status>(sim_, [&](auto cb) { world_->network().probe(r, cb); });
  };
  EXPECT_TRUE(probe_from("n-1").is_ok());
  sim_.run_until(TimePoint(minutes(30)));
  EXPECT_EQ(probe_from("n-1").code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(probe_from("n-2").is_ok());  // on the same side
  EXPECT_FALSE(world_->topology().reaches_control_plane(0));
  sim_.run_until(TimePoint(minutes(35)));
  EXPECT_TRUE(probe_from("n-1").is_ok());
  EXPECT_TRUE(world_->topology().reaches_control_plane(0));
  sim_.run_until(TimePoint(hours(1)));
  EXPECT_FALSE(world_->topology().reaches_control_plane(0));
  EXPECT_TRUE(probe_from("n-1").is_ok());  // nodes still reach it
  sim_.run_until(TimePoint(hours(1) + minutes(1)));
  EXPECT_TRUE(world_->topology().reaches_control_plane(0));
  EXPECT_EQ(trace_.of_type(trace::FAULT_INJECTED).size(), 2u);
  EXPECT_EQ(trace_.of_type(trace::FAULT_HEALED).size(), 2u);
  EXPECT_EQ(trace_.of_type(trace::FAULT_HEALED)[0].time_ns(), to_nanos(TimePoint(minutes(35))));
}

TEST_F(FaultsTest, KillAndHangContainersBySelector) {
  std::vector<std::string> ips;
  for (int i = 0; i < 4; ++i) {
    PodSandboxConfig c;
    c.name = "p" + std::to_string(i);
    c.labels = {{"app", i < 3 ? "web" : "db"}};
    NodeId node = static_cast<NodeId>(i);
    auto s = await<StatusOr<PodSandboxStatus>>(
        sim_, [&](auto cb) { world_->runtime(node).run_pod_sandbox(c, cb); });
    ASSERT_TRUE(s.is_ok());
    ips.push_back(s->ip);
    ContainerConfig cc;
    cc.name = "main";
    cc.image = "img";
    ASSERT_TRUE(await<StatusOr<std::string>>(sim_, [&](auto cb) {
                  world_->runtime(node).start_container(s->id, cc, cb);
                }).is_ok());
  }
  ASSERT_TRUE(injector_->add_all(faults("- {at: 1h, kill_containers: {selector: app=web, count: 2}}\n"
                                        "- {at: 2h, hang_containers: {selector: app=db}}\n"))
                  .is_ok());
  sim_.run_until(TimePoint(hours(1)));
  EXPECT_EQ(world_->running_container_count(), 2u);
  auto web = api::LabelSelector::parse("app=web");
  EXPECT_EQ(world_->running_containers(*web).size(), 1u);
  sim_.run_until(TimePoint(hours(2)));
  EXPECT_EQ(world_->endpoint_state({ips[3], 80}), EndpointState::kHung);
}

TEST_F(FaultsTest, RackDomainFailsAsAUnit) {
  ASSERT_TRUE(injector_->add_all(faults("- {stochastic: {nodes: all, ttf: {exponential: {mean: 10h}}, "
                                        "ttr: {exponential: {mean: 1h}}, domain: rack}}\n"))
                  .is_ok());
  sim_.run_until(TimePoint(hours(500)));
  ASSERT_GT(changes_.size(), 50u);
  // Changes come in groups of a whole rack at one instant.
  for (size_t i = 0; i < changes_.size(); i += 3) {
    ASSERT_LT(i + 2, changes_.size());
    NodeId a = *world_->find_node(changes_[i].node);
    for (size_t j = i + 1; j < i + 3; ++j) {
      EXPECT_EQ(changes_[j].at, changes_[i].at);
      EXPECT_EQ(changes_[j].up, changes_[i].up);
      EXPECT_TRUE(world_->topology().same_rack(a, *world_->find_node(changes_[j].node)));
    }
  }
}

TEST_F(FaultsTest, StochasticAvailabilityMatchesMttfOverMttfPlusMttr) {
  ASSERT_TRUE(injector_->add_all(faults("- {stochastic: {nodes: all, ttf: {exponential: {mean: 10h}}, "
                                        "ttr: {exponential: {mean: 1h}}}}\n"))
                  .is_ok());
  const TimePoint horizon(hours(24 * 365));
  sim_.run_until(horizon);
  std::map<std::string, TimePoint> down_since;
  Duration down_total{0};
  for (const auto& c : changes_) {
    if (!c.up) {
      down_since[c.node] = c.at;
    } else {
      down_total += c.at - down_since[c.node];
      down_since.erase(c.node);
    }
  }
  for (const auto& [n, t] : down_since) down_total += horizon - t;
  double availability =
      1.0 - to_seconds(down_total) / (12.0 * to_seconds(horizon.time_since_epoch()));
  EXPECT_NEAR(availability, 10.0 / 11.0, 0.01);
  EXPECT_GT(injector_->injected(), 5000u);
}

TEST_F(FaultsTest, StochasticContainerCrashes) {
  ASSERT_TRUE(injector_->add_all(faults("- {stochastic: {containers: app=web, ttf: {constant: 10m}, exit_code: 1}}\n"))
                  .is_ok());
  PodSandboxConfig c;
  c.name = "web";
  c.labels = {{"app", "web"}};
  auto s = await<StatusOr<PodSandboxStatus>>(
      sim_, [&](auto cb) { world_->runtime(0).run_pod_sandbox(c, cb); });
  std::vector<ContainerEvent> seen;
  auto sub = world_->runtime(0).subscribe([&](const ContainerEvent& e) { seen.push_back(e); });
  ContainerConfig cc;
  cc.name = "main";
  cc.image = "img";
  ASSERT_TRUE(await<StatusOr<std::string>>(
                  sim_, [&](auto cb) { world_->runtime(0).start_container(s->id, cc, cb); })
                  .is_ok());
  sim_.run_for(minutes(9));
  EXPECT_EQ(seen.size(), 1u);
  sim_.run_for(minutes(2));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].type, ContainerEvent::Type::kExited);
  EXPECT_EQ(seen[1].container.exit_code, 1);
  EXPECT_EQ(trace_.of_type(trace::FAULT_INJECTED).size(), 1u);
}

}  // namespace
}  // namespace flotilla::sim
