#include "sim/world/world.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "tests/sim/world/world_test_util.h"

namespace flotilla::sim {
namespace {

using testing::await;
using testing::RecordingTraceSink;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

std::vector<BehaviourSpec> behaviours(const std::string& yaml) {
  auto b = parse_behaviours(YAML::Load(yaml));
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  return b.is_ok() ? *b : std::vector<BehaviourSpec>{};
}

class WorldTest : public ::testing::Test {
 protected:
  void make(WorldOptions options = {}) {
    world_ = std::make_unique<World>(sim_, random_, trace_, std::move(options));
    NodeGroupSpec g;
    g.name = "n";
    g.count = 4;
    g.zones = {"z1", "z2"};
    g.nodes_per_rack = 1;
    g.capacity.cpu_millis = 4000;
    g.capacity.memory_bytes = int64_t{8} << 30;
    g.capacity.pods = 110;
    ASSERT_TRUE(world_->add_node_group(g).is_ok());
  }
  ContainerRuntime& rt(NodeId n) { return world_->runtime(n); }

  PodSandboxStatus sandbox(NodeId n, const std::string& name,
                           std::map<std::string, std::string> labels = {},
                           std::vector<PortConfig> ports = {{8080, 0, "TCP"}}) {
    PodSandboxConfig c;
    c.pod_uid = "uid-" + name;
    c.ns = "default";
    c.name = name;
    c.labels = std::move(labels);
    c.ports = std::move(ports);
    auto s = await<StatusOr<PodSandboxStatus>>(
        sim_, [&](auto cb) { rt(n).run_pod_sandbox(c, cb); });
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? *s : PodSandboxStatus{};
  }
  StatusOr<std::string> start(NodeId n, const std::string& sandbox_id, const std::string& image,
                              int64_t memory_limit = 0) {
    ContainerConfig c;
    c.name = "main";
    c.image = image;
    c.memory_limit_bytes = memory_limit;
    return await<StatusOr<std::string>>(
        sim_, [&](auto cb) { rt(n).start_container(sandbox_id, c, cb); });
  }
  Status probe(NodeId from, const std::string& ip, int port, Duration timeout = seconds(1)) {
    ProbeRequest r;
    r.from_node = world_->node(from).name;
    r.target = {ip, port};
    r.timeout = timeout;
    return await<Status>(sim_, [&](auto cb) { world_->network().probe(r, cb); });
  }

  Simulator sim_;
  SimRandom random_{42};
  RecordingTraceSink trace_;
  std::unique_ptr<World> world_;
};

TEST_F(WorldTest, NodesGetLabelsCidrsAndRacks) {
  make();
  EXPECT_EQ(world_->node_count(), 4u);
  const SimNode& n3 = world_->node(3);
  EXPECT_EQ(n3.name, "n-3");
  EXPECT_EQ(n3.zone, "z2");
  EXPECT_EQ(n3.labels.at("topology.kubernetes.io/zone"), "z2");
  EXPECT_EQ(n3.labels.at("flotilla.io/rack"), n3.rack);
  EXPECT_EQ(n3.pod_cidr, "10.0.3.0/24");
  EXPECT_EQ(n3.allocatable.cpu_millis, 4000);
  EXPECT_EQ(trace_.of_type(trace::NODE_ADDED).size(), 4u);
}

TEST_F(WorldTest, PodIpsComeFromTheNodeCidrAndAreRegistered) {
  make();
  auto a = sandbox(2, "a");
  auto b = sandbox(2, "b");
  EXPECT_EQ(a.ip.rfind("10.0.2.", 0), 0u) << a.ip;
  EXPECT_NE(a.ip, b.ip);
  EXPECT_EQ(world_->node_of_ip(a.ip), NodeId{2});
  EXPECT_TRUE(a.ready);
  ASSERT_TRUE(await<Status>(sim_, [&](auto cb) { rt(2).remove_pod_sandbox(a.id, seconds(1), cb); })
                  .is_ok());
  EXPECT_FALSE(world_->node_of_ip(a.ip).has_value());
}

TEST_F(WorldTest, NodeFailureKillsEverythingOnIt) {
  make();
  auto s = sandbox(1, "web");
  ASSERT_TRUE(start(1, s.id, "nginx").is_ok());
  auto other = sandbox(2, "other");
  ASSERT_TRUE(start(2, other.id, "nginx").is_ok());
  std::vector<ContainerEvent> seen;
  auto sub = rt(1).subscribe([&](const ContainerEvent& e) { seen.push_back(e); });
  std::vector<std::pair<std::string, bool>> states;
  auto node_sub = world_->on_node_state([&](const std::string& n, bool up) {
    states.emplace_back(n, up);
  });
  EXPECT_EQ(world_->endpoint_state({s.ip, 8080}), EndpointState::kOk);

  ASSERT_TRUE(world_->kill_node("n-1").is_ok());
  sim_.run_for(seconds(1));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].type, ContainerEvent::Type::kSandboxLost);
  EXPECT_EQ(seen[0].sandbox_id, s.id);
  EXPECT_EQ(seen[0].pod_uid, "uid-web");
  EXPECT_EQ(states, (std::vector<std::pair<std::string, bool>>{{"n-1", false}}));
  EXPECT_EQ(world_->endpoint_state({s.ip, 8080}), EndpointState::kNodeDown);
  EXPECT_EQ(world_->running_container_count(), 1u);  // only n-2's

  auto list = await<StatusOr<std::vector<PodSandboxStatus>>>(
      sim_, [&](auto cb) { rt(1).list_pod_sandboxes(cb); });
  EXPECT_EQ(list.status().code(), StatusCode::kUnavailable);
  PodSandboxConfig c;
  c.name = "x";
  auto r = await<StatusOr<PodSandboxStatus>>(sim_, [&](auto cb) { rt(1).run_pod_sandbox(c, cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(probe(0, s.ip, 8080).code(), StatusCode::kDeadlineExceeded);

  ASSERT_TRUE(world_->restart_node("n-1").is_ok());
  list = await<StatusOr<std::vector<PodSandboxStatus>>>(
      sim_, [&](auto cb) { rt(1).list_pod_sandboxes(cb); });
  ASSERT_TRUE(list.is_ok());
  EXPECT_TRUE(list->empty());
  EXPECT_EQ(states.back(), (std::pair<std::string, bool>{"n-1", true}));
  EXPECT_EQ(trace_.of_type(trace::NODE_DOWN).size(), 1u);
  EXPECT_EQ(trace_.of_type(trace::NODE_UP).size(), 1u);
  // The other node never noticed.
  auto list2 = await<StatusOr<std::vector<PodSandboxStatus>>>(
      sim_, [&](auto cb) { rt(2).list_pod_sandboxes(cb); });
  ASSERT_TRUE(list2.is_ok());
  ASSERT_EQ(list2->size(), 1u);
  EXPECT_EQ((*list2)[0].containers[0].state, ContainerState::kRunning);
}

TEST_F(WorldTest, CallInFlightWhenTheNodeDiesFailsUnavailable) {
  make();
  auto s = sandbox(0, "web");
  std::optional<StatusOr<std::string>> result;
  ContainerConfig c;
  c.name = "main";
  c.image = "nginx";
  rt(0).start_container(s.id, c, [&](StatusOr<std::string> r) { result.emplace(std::move(r)); });
  sim_.run_for(seconds(1));  // pulling (5s)
  world_->kill_node(0);
  sim_.run_for(seconds(10));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status().code(), StatusCode::kUnavailable);
}

TEST_F(WorldTest, ImagePullIsCachedPerNode) {
  make();
  auto s = sandbox(0, "a");
  TimePoint t0 = sim_.now();
  ASSERT_TRUE(start(0, s.id, "nginx").is_ok());
  Duration first = sim_.now() - t0;  // pull 5s + start 300ms
  t0 = sim_.now();
  ASSERT_TRUE(start(0, s.id, "nginx").is_ok());
  Duration second = sim_.now() - t0;
  EXPECT_EQ(first, seconds(5) + milliseconds(300));
  EXPECT_EQ(second, milliseconds(300));
  EXPECT_TRUE(world_->sim_runtime(0).has_image("nginx"));
  EXPECT_FALSE(world_->sim_runtime(1).has_image("nginx"));
}

TEST_F(WorldTest, MissingImageFailsLikeLiveMode) {
  WorldOptions o;
  o.runtime.missing_images = {"ghost:1"};
  make(o);
  auto st = await<Status>(sim_, [&](auto cb) { rt(0).pull_image("ghost:1", cb); });
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message().rfind("image \"ghost:1\" not present; ", 0), 0u) << st.message();
  auto s = sandbox(0, "a");
  EXPECT_EQ(start(0, s.id, "ghost:1").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(await<Status>(sim_, [&](auto cb) { rt(0).pull_image("nginx", cb); }).is_ok());
}

TEST_F(WorldTest, HostPortConflictOnOneNode) {
  make();
  sandbox(0, "a", {}, {{80, 8080, "TCP"}});
  PodSandboxConfig c;
  c.name = "b";
  c.ports = {{80, 8080, "TCP"}};
  auto r = await<StatusOr<PodSandboxStatus>>(sim_, [&](auto cb) { rt(0).run_pod_sandbox(c, cb); });
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_NE(r.status().message().find("host port 8080/TCP"), std::string::npos);
  // Another node has the port free.
  r = await<StatusOr<PodSandboxStatus>>(sim_, [&](auto cb) { rt(1).run_pod_sandbox(c, cb); });
  EXPECT_TRUE(r.is_ok());
}

TEST_F(WorldTest, OomKillWhenMemoryGrowsPastTheLimit) {
  WorldOptions o;
  o.runtime.behaviours = behaviours(
      "- {image: leaky, memory: {initial: 50Mi, growth_per_minute: 10Mi}}\n");
  make(o);
  auto s = sandbox(0, "a");
  std::vector<std::pair<TimePoint, ContainerEvent>> seen;
  auto sub = rt(0).subscribe([&](const ContainerEvent& e) { seen.emplace_back(sim_.now(), e); });
  auto id = start(0, s.id, "leaky", int64_t{100} << 20);
  ASSERT_TRUE(id.is_ok());
  TimePoint started = sim_.now();
  sim_.run_for(minutes(10));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].second.type, ContainerEvent::Type::kStarted);
  EXPECT_EQ(seen[1].second.type, ContainerEvent::Type::kOomKilled);
  EXPECT_EQ(seen[1].second.container.exit_code, 137);
  EXPECT_EQ(seen[1].second.container.reason, "OOMKilled");
  EXPECT_EQ(seen[1].first - started, minutes(5));
  // Without a limit it never dies.
  auto id2 = start(0, s.id, "leaky", 0);
  sim_.run_for(hours(10));
  EXPECT_EQ(seen.size(), 3u);
}

TEST_F(WorldTest, CrashLoopExitsShortlyAfterEveryStart) {
  WorldOptions o;
  o.runtime.behaviours = behaviours(
      "- {image: flappy, crash_loop: {after: 2s, exit_code: 3}}\n"
      "- {image: batch, exit_after: 1m}\n");
  make(o);
  auto s = sandbox(0, "a");
  std::vector<std::pair<TimePoint, ContainerEvent>> seen;
  auto sub = rt(0).subscribe([&](const ContainerEvent& e) { seen.emplace_back(sim_.now(), e); });
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(start(0, s.id, "flappy").is_ok());
    TimePoint started = sim_.now();
    sim_.run_for(seconds(10));
    ASSERT_EQ(seen.size(), 2u * (i + 1));
    const auto& exit = seen.back();
    EXPECT_EQ(exit.second.type, ContainerEvent::Type::kExited);
    EXPECT_EQ(exit.second.container.exit_code, 3);
    EXPECT_EQ(exit.second.container.reason, "Error");
    EXPECT_EQ(exit.first - started, seconds(2));
  }
  ASSERT_TRUE(start(0, s.id, "batch").is_ok());
  sim_.run_for(minutes(2));
  EXPECT_EQ(seen.back().second.container.reason, "Completed");
  EXPECT_EQ(seen.back().second.container.exit_code, 0);
}

TEST_F(WorldTest, GracefulStopHonoursTheGracePeriod) {
  WorldOptions o;
  o.runtime.behaviours = behaviours("- {image: stubborn, ignore_sigterm: true}\n");
  make(o);
  auto s = sandbox(0, "a");
  std::vector<ContainerEvent> seen;
  auto sub = rt(0).subscribe([&](const ContainerEvent& e) { seen.push_back(e); });
  auto polite = start(0, s.id, "nginx");
  auto stubborn = start(0, s.id, "stubborn");
  ASSERT_TRUE(polite.is_ok() && stubborn.is_ok());
  TimePoint t0 = sim_.now();
  ASSERT_TRUE(await<Status>(sim_, [&](auto cb) { rt(0).stop_container(*polite, seconds(30), cb); })
                  .is_ok());
  EXPECT_EQ(sim_.now() - t0, milliseconds(200));
  EXPECT_EQ(seen.back().container.exit_code, 0);
  t0 = sim_.now();
  ASSERT_TRUE(await<Status>(sim_, [&](auto cb) { rt(0).stop_container(*stubborn, seconds(30), cb); })
                  .is_ok());
  EXPECT_EQ(sim_.now() - t0, seconds(30));
  sim_.run_for(milliseconds(1));
  EXPECT_EQ(seen.back().container.exit_code, 137);
  auto list = await<StatusOr<std::vector<PodSandboxStatus>>>(
      sim_, [&](auto cb) { rt(0).list_pod_sandboxes(cb); });
  ASSERT_TRUE(list.is_ok());
  EXPECT_TRUE((*list)[0].containers.empty());  // stopped containers are removed
  // Stopping again is fine.
  EXPECT_TRUE(await<Status>(sim_, [&](auto cb) { rt(0).stop_container(*stubborn, seconds(1), cb); })
                  .is_ok());
}

TEST_F(WorldTest, ProbesFollowContainerStateAndPartitions) {
  WorldOptions o;
  o.runtime.behaviours = behaviours(
      "- {image: slow, ready_after: 20s}\n"
      "- {image: stuck, hang_after: 1m}\n");
  make(o);
  auto s = sandbox(0, "a");
  EXPECT_EQ(probe(1, s.ip, 8080).code(), StatusCode::kUnavailable);  // nothing runs yet
  auto c = start(0, s.id, "slow");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(probe(1, s.ip, 8080).code(), StatusCode::kUnavailable);  // warming up
  sim_.run_for(seconds(21));
  TimePoint t0 = sim_.now();
  EXPECT_TRUE(probe(1, s.ip, 8080).is_ok());
  // Same zone (n-0, n-2 are z1): 2 x 300us + 100us.
  Duration rtt = sim_.now() - t0;
  EXPECT_EQ(probe(2, s.ip, 8080).is_ok(), true);
  EXPECT_GT(rtt, Duration::zero());
  EXPECT_EQ(probe(1, s.ip, 9999).code(), StatusCode::kUnavailable);  // undeclared port

  PartitionId p = world_->topology().add_partition({0}, PartitionKind::kFromRest);
  t0 = sim_.now();
  EXPECT_EQ(probe(1, s.ip, 8080, seconds(3)).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(sim_.now() - t0, seconds(3));
  EXPECT_TRUE(probe(0, s.ip, 8080).is_ok());  // from its own node
  ASSERT_TRUE(world_->topology().remove_partition(p).is_ok());
  EXPECT_TRUE(probe(1, s.ip, 8080).is_ok());

  auto s2 = sandbox(1, "b", {}, {});
  auto stuck = start(1, s2.id, "stuck");
  ASSERT_TRUE(stuck.is_ok());
  EXPECT_TRUE(probe(0, s2.ip, 1234).is_ok());  // no ports declared: any port
  sim_.run_for(minutes(2));
  EXPECT_EQ(probe(0, s2.ip, 1234).code(), StatusCode::kDeadlineExceeded);
  auto ex = await<StatusOr<int>>(
      sim_, [&](auto cb) { rt(1).exec(*stuck, {"true"}, seconds(1), cb); });
  EXPECT_EQ(ex.status().code(), StatusCode::kDeadlineExceeded);
  ex = await<StatusOr<int>>(sim_, [&](auto cb) { rt(0).exec(*c, {"true"}, seconds(1), cb); });
  ASSERT_TRUE(ex.is_ok());
  EXPECT_EQ(*ex, 0);
}

TEST_F(WorldTest, DnsRecords) {
  make();
  world_->network().set_dns_record("web.default.svc.cluster.local", "10.96.0.10");
  EXPECT_EQ(world_->sim_network().lookup("web.default.svc.cluster.local"), "10.96.0.10");
  world_->network().set_dns_record("web.default.svc.cluster.local", "");
  EXPECT_FALSE(world_->sim_network().lookup("web.default.svc.cluster.local").has_value());
}

// Runs a small randomised workload and returns the event log.
std::vector<std::string> run_workload(uint64_t seed) {
  Simulator sim;
  SimRandom random(seed);
  RecordingTraceSink trace;
  WorldOptions o;
  o.runtime.image_pull = *Distribution::exponential(5e9);
  o.runtime.container_start = *Distribution::exponential(1e9);
  o.runtime.behaviours = behaviours("- {image: crashy, exit_after: {exponential: {mean: 30s}}, exit_code: 2}\n");
  World world(sim, random, trace, o);
  NodeGroupSpec g;
  g.name = "n";
  g.count = 3;
  EXPECT_TRUE(world.add_node_group(g).is_ok());
  std::vector<std::string> log;
  std::vector<std::unique_ptr<RuntimeSubscription>> subs;
  for (NodeId n = 0; n < 3; ++n) {
    subs.push_back(world.runtime(n).subscribe([&, n](const ContainerEvent& e) {
      log.push_back(std::to_string(to_nanos(sim.now())) + " n" + std::to_string(n) + " " +
                    std::to_string(static_cast<int>(e.type)) + " " + e.container.id);
      if (e.type == ContainerEvent::Type::kExited) {
        ContainerConfig c;
        c.name = "main";
        c.image = "crashy";
        world.runtime(n).start_container(e.sandbox_id, c, [](StatusOr<std::string>) {});
      }
    }));
    for (int p = 0; p < 3; ++p) {
      PodSandboxConfig sc;
      sc.name = "p" + std::to_string(p);
      world.runtime(n).run_pod_sandbox(sc, [&world, n](StatusOr<PodSandboxStatus> s) {
        ContainerConfig c;
        c.name = "main";
        c.image = "crashy";
        world.runtime(n).start_container(s->id, c, [](StatusOr<std::string>) {});
      });
    }
  }
  sim.run_until(TimePoint(minutes(30)));
  return log;
}

TEST(WorldDeterminismTest, SameSeedSameEvents) {
  auto a = run_workload(7);
  auto b = run_workload(7);
  auto c = run_workload(8);
  EXPECT_GT(a.size(), 50u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(BehaviourParseTest, ErrorsNameTheFieldAndLine) {
  auto r = parse_behaviours(YAML::Load("- {image: a}\n- {image: b, exit_afterr: 5s}\n"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("behaviours[1].exit_afterr (line 2"), std::string::npos)
      << r.status().message();
  r = parse_behaviours(YAML::Load("- image: a\n  exit_after: {exponential: {mean: soon}}\n"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("behaviours[0].exit_after"), std::string::npos)
      << r.status().message();
  r = parse_behaviours(YAML::Load("- {selector: 'app in (a'}\n"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("behaviours[0].selector"), std::string::npos);
  r = parse_behaviours(YAML::Load("- {image: a, exit_code: 4}\n"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("needs exit_after"), std::string::npos);
}

TEST(BehaviourParseTest, SelectorAndImagePrefixMatch) {
  auto r = parse_behaviours(YAML::Load("- {image: 'web*', selector: 'tier=front'}\n"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].matches_image("web:1.2"));
  EXPECT_FALSE((*r)[0].matches_image("db"));
  api::Labels l;
  l["tier"] = "front";
  EXPECT_TRUE((*r)[0].selector.matches(l));
}

}  // namespace
}  // namespace flotilla::sim
