// NodeAgent against the real simulated world: SimContainerRuntime (latencies,
// crash loops, OOM, hangs, node death) and SimNetwork probes, with the
// InMemoryStore, all on virtual time.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "core/agent/node_agent.h"
#include "core/api/pod_util.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "sim/world/world.h"

namespace flotilla::agent {
namespace {

struct RecordingTrace final : TraceSink {
  std::vector<trace::Record> records;
  void record(const trace::Record& r) override { records.push_back(r); }
  std::vector<trace::Record> of(trace::EventType type, const std::string& pod = "") const {
    std::vector<trace::Record> out;
    for (const auto& r : records) {
      if (r.type() == type && (pod.empty() || r.name() == pod)) out.push_back(r);
    }
    return out;
  }
};

class NodeAgentSimTest : public ::testing::Test {
 protected:
  void make(const std::string& behaviours_yaml = "[]") {
    sim::WorldOptions options;
    auto b = sim::parse_behaviours(YAML::Load(behaviours_yaml));
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    options.runtime.behaviours = *b;
    options.runtime.missing_images = {"ghost:1"};
    world_ = std::make_unique<sim::World>(sim_, random_, trace_, options);
    for (const char* name : {"node-a", "node-b"}) {
      sim::NodeSpec spec;
      spec.name = name;
      spec.zone = "zone-a";
      spec.rack = "rack-1";
      spec.capacity.cpu_millis = 4000;
      spec.capacity.memory_bytes = int64_t{8} << 30;
      spec.capacity.pods = 110;
      ASSERT_TRUE(world_->add_node(spec).is_ok());
      start_agent(name);
    }
  }

  void start_agent(const std::string& name) {
    sim::NodeId id = *world_->find_node(name);
    NodeDescription d;
    d.capacity = {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}};
    d.addresses = {{"InternalIP", "192.168.1." + std::to_string(id + 1)}};
    auto agent = std::make_unique<NodeAgent>(name, sim_, store_, world_->runtime(id),
                                             world_->network(), trace_, timing_, d);
    ASSERT_TRUE(agent->start().is_ok());
    agents_[name] = std::move(agent);
  }

  api::Pod make_pod(const std::string& name, const std::string& node, const std::string& image,
                    const std::string& policy = "") {
    api::Pod p;
    p.mutable_metadata()->set_name(name);
    p.mutable_metadata()->set_namespace_("default");
    (*p.mutable_metadata()->mutable_labels())["app"] = name;
    p.mutable_spec()->set_node_name(node);
    p.mutable_spec()->set_restart_policy(policy);
    api::Container* c = p.mutable_spec()->add_containers();
    c->set_name("main");
    c->set_image(image);
    api::ContainerPort* port = c->add_ports();
    port->set_name("http");
    port->set_container_port(8080);
    return p;
  }

  void create(api::Pod p) {
    auto r = store_.create(api::share(std::move(p)));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }

  std::shared_ptr<const api::Pod> pod(const std::string& name) {
    auto r = store_.get(api::Kind::kPod, "default", name);
    return r.is_ok() ? api::as<api::Pod>(*r) : nullptr;
  }

  sim::Simulator sim_;
  sim::SimRandom random_{11};
  std::unique_ptr<RandomStream> store_random_ = random_.stream("store");
  store::InMemoryStore store_{sim_, *store_random_};
  RecordingTrace trace_;
  TimingProfile timing_ = TimingProfile::kubernetes();
  std::unique_ptr<sim::World> world_;
  std::map<std::string, std::unique_ptr<NodeAgent>> agents_;
};

const api::ContainerStatus& main_status(const api::Pod& p) {
  return p.status().container_statuses(0);
}

TEST_F(NodeAgentSimTest, PodsRunOnTheirOwnNodesWithDistinctIps) {
  make();
  create(make_pod("a", "node-a", "nginx"));
  create(make_pod("b", "node-b", "nginx"));
  sim_.run_for(seconds(30));
  auto a = pod("a");
  auto b = pod("b");
  ASSERT_TRUE(api::is_pod_ready(*a));
  ASSERT_TRUE(api::is_pod_ready(*b));
  EXPECT_NE(a->status().pod_ip(), b->status().pod_ip());
  EXPECT_EQ(world_->sandbox_count(), 2u);
  EXPECT_EQ(world_->running_container_count(), 2u);
  // Image pull (5 s) + sandbox (0.5 s) + start (0.3 s) in the default model.
  auto running = trace_.of(trace::POD_RUNNING, "a");
  ASSERT_EQ(running.size(), 1u);
  EXPECT_GE(running[0].time_ns(), to_nanos(seconds(5)));
  EXPECT_LE(running[0].time_ns(), to_nanos(seconds(7)));
}

TEST_F(NodeAgentSimTest, CrashLoopOnSimRuntimeFollowsTheBackoffCurve) {
  make("- {image: flappy, crash_loop: {after: 3m, exit_code: 1}}\n");
  create(make_pod("flappy", "node-a", "flappy"));
  sim_.run_for(hours(1));
  auto exits = trace_.of(trace::CONTAINER_EXITED, "flappy");
  auto starts = trace_.of(trace::CONTAINER_STARTED, "flappy");
  ASSERT_GE(starts.size(), 9u);
  // The agent calls start_container at exit + backoff; the runtime takes its
  // container_start latency (0.3 s) to report the container running.
  std::vector<int64_t> gaps_ms;
  for (size_t i = 0; i + 1 < starts.size() && i < 8; ++i) {
    gaps_ms.push_back((starts[i + 1].time_ns() - exits[i].time_ns()) / 1000000);
  }
  EXPECT_EQ(gaps_ms, (std::vector<int64_t>{300, 10300, 20300, 40300, 80300, 160300, 300300,
                                           300300}));
  EXPECT_EQ(exits[0].exit_code(), 1);
  auto p = pod("flappy");
  EXPECT_GE(main_status(*p).restart_count(), 8);
}

TEST_F(NodeAgentSimTest, OomKilledContainerRestartsWithOomLastState) {
  make("- {image: leaky, memory: {initial: 64Mi, growth_per_minute: 32Mi}}\n");
  api::Pod p = make_pod("leaky", "node-a", "leaky");
  (*p.mutable_spec()->mutable_containers(0)->mutable_resources()->mutable_limits())["memory"] =
      "128Mi";
  create(p);
  sim_.run_for(minutes(3));
  auto now = pod("leaky");
  EXPECT_GE(main_status(*now).restart_count(), 1);
  EXPECT_EQ(main_status(*now).last_state().terminated().reason(), "OOMKilled");
  EXPECT_FALSE(trace_.of(trace::CONTAINER_OOM_KILLED, "leaky").empty());
}

TEST_F(NodeAgentSimTest, ReadinessProbeWaitsForTheAppToWarmUp) {
  make("- {image: slow, ready_after: 30s}\n");
  api::Pod p = make_pod("slow", "node-a", "slow");
  api::Probe* probe = p.mutable_spec()->mutable_containers(0)->mutable_readiness_probe();
  probe->mutable_http_get()->mutable_port()->set_str_val("http");
  probe->set_period_seconds(5);
  create(p);
  sim_.run_for(seconds(20));
  EXPECT_EQ(pod("slow")->status().phase(), "Running");
  EXPECT_FALSE(api::is_pod_ready(*pod("slow")));
  sim_.run_for(seconds(30));
  EXPECT_TRUE(api::is_pod_ready(*pod("slow")));
  EXPECT_FALSE(trace_.of(trace::PROBE_FAILED, "slow").empty());
}

TEST_F(NodeAgentSimTest, HungContainerFailsLivenessAndIsRestarted) {
  make("- {image: stuck, hang_after: 1m}\n");
  api::Pod p = make_pod("stuck", "node-a", "stuck");
  api::Probe* probe = p.mutable_spec()->mutable_containers(0)->mutable_liveness_probe();
  probe->mutable_tcp_socket()->mutable_port()->set_int_val(8080);
  create(p);
  sim_.run_for(minutes(3));
  auto now = pod("stuck");
  EXPECT_GE(main_status(*now).restart_count(), 1);
  EXPECT_FALSE(trace_.of(trace::CONTAINER_RESTARTED, "stuck").empty());
}

TEST_F(NodeAgentSimTest, MissingImageOnSimRuntime) {
  make();
  create(make_pod("ghost", "node-a", "ghost:1"));
  sim_.run_for(seconds(3));
  const auto& st = main_status(*pod("ghost")).state();
  ASSERT_TRUE(st.has_waiting());
  EXPECT_EQ(st.waiting().reason(), "ErrImagePull");
  EXPECT_EQ(pod("ghost")->status().phase(), "Pending");
}

TEST_F(NodeAgentSimTest, NodeDeathAndReturnRecreatesThePod) {
  make();
  create(make_pod("web", "node-a", "nginx"));
  sim_.run_for(seconds(30));
  std::string ip = pod("web")->status().pod_ip();
  ASSERT_TRUE(api::is_pod_ready(*pod("web")));
  // The machine dies: its agent dies with it and posts nothing.
  agents_["node-a"]->stop();
  ASSERT_TRUE(world_->kill_node("node-a").is_ok());
  sim_.run_for(minutes(1));
  EXPECT_TRUE(api::is_pod_ready(*pod("web")));  // nobody told the store otherwise
  ASSERT_TRUE(world_->restart_node("node-a").is_ok());
  agents_.erase("node-a");
  start_agent("node-a");
  sim_.run_for(seconds(30));
  auto p = pod("web");
  EXPECT_TRUE(api::is_pod_ready(*p));
  EXPECT_EQ(main_status(*p).restart_count(), 1);
  EXPECT_EQ(world_->sandbox_count(), 1u);
  EXPECT_EQ(world_->running_container_count(), 1u);
}

TEST_F(NodeAgentSimTest, GracefulDeletionOnSimRuntime) {
  make();
  create(make_pod("web", "node-b", "nginx"));
  sim_.run_for(seconds(30));
  api::Pod p = *pod("web");
  p.mutable_metadata()->mutable_deletion_timestamp()->set_nanos(to_nanos(sim_.now() + seconds(30)));
  p.mutable_metadata()->set_deletion_grace_period_seconds(30);
  ASSERT_TRUE(store_.update(api::share(p)).is_ok());
  sim_.run_for(seconds(5));
  EXPECT_EQ(pod("web"), nullptr);  // nginx honours TERM: gone well within the grace
  EXPECT_EQ(world_->sandbox_count(), 0u);
  EXPECT_EQ(agents_["node-b"]->tracked_pods(), 0u);
}

}  // namespace
}  // namespace flotilla::agent
