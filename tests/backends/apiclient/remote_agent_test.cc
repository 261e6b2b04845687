// A node agent in a second process: the test runs a control plane with its
// API in-process (ControlPlane + ApiServer on an AsioEventLoop), starts
// `flotilla agent --server http://127.0.0.1:PORT --node-name remote-1` as a
// child process, and watches the node join, run an RC's two pods as real
// Docker containers (Running, Ready, pod IPs in the API), and go NotReady once
// the agent is killed. Label "live": needs dockerd and the flotilla/* images
// (FLOTILLA_SKIP_DOCKER=1 skips). Everything created is removed, also on failure.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "backends/apiclient/api_client.h"
#include "backends/apiclient/remote_store.h"
#include "backends/apiserver/api_server.h"
#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"
#include "backends/live/live_network.h"
#include "core/api/codec.h"
#include "core/ports/trace.h"
#include "scenarios/control_plane.h"
#include "scenarios/loader.h"
#include "sim/engine/random.h"
#include "tests/backends/apiclient/agent_control_plane.h"
#include "tests/backends/apiclient/child_process.h"

namespace flotilla::apiclient {
namespace {

// The control plane's settings; the scenario's nodes are not started (the
// remote agent brings the only node).
constexpr const char* kScenario = R"(
name: remote-agent
seed: 3
duration: 10m
cluster:
  timing: fast
  node_groups:
    - {name: unused, count: 1, capacity: {cpu: "1", memory: 1Gi, pods: "10"}}
)";

constexpr const char* kRc = R"(
apiVersion: v1
kind: ReplicationController
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: remote-1}
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: flotilla/demo-server
          ports: [{name: http, containerPort: 8080}]
          resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {memory: 64Mi}}
          readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
)";

class RemoteAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
    flotilla_ = flotilla_binary();
    ASSERT_EQ(::access(flotilla_.c_str(), X_OK), 0) << flotilla_ << " is not built";
    std::string id = std::to_string(::getpid());
    prefix_ = "agent-test-" + id + "-";
    network_ = "flotilla-agent-test-" + id;
    log_ = ::testing::TempDir() + "flotilla-agent-" + id + ".log";

    AgentControlPlane::Options o;
    o.tune = [this](TimingProfile& t) { tune(t); };
    Status s = cp_.start(loop_, random_, network_port_, trace_, kScenario, "remote-agent.yaml", o);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  void TearDown() override {
    if (skip_docker()) return;
    agent_.reset();
    cp_.stop();
    docker::DockerClient client;
    Status s = docker::remove_all_flotilla_objects(client, prefix_ + "remote-1");
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    (void)client.call("DELETE", "/networks/" + docker::url_encode(network_));
    std::remove(log_.c_str());
  }

  // The control plane's timing (the agent always runs `--timing fast`).
  virtual void tune(TimingProfile&) {}

  void start_agent() {
    agent_ = std::make_unique<Child>(
        std::vector<std::string>{flotilla_, "agent", "--server", cp_.url(), "--node-name",
                                 "remote-1", "--network", network_, "--node-label-prefix",
                                 prefix_, "--timing", "fast", "--cpu", "2", "--memory", "2Gi"},
        log_);
    ASSERT_TRUE(agent_->started());
  }

  std::string node_ready() { return apiclient::node_ready(cp_.store(), "remote-1"); }

  std::vector<std::shared_ptr<const api::Pod>> pods_on_node() {
    ListOptions lo;
    lo.fields = *api::FieldSelector::parse("spec.nodeName=remote-1");
    std::vector<std::shared_ptr<const api::Pod>> out;
    auto l = cp_.store().list(api::Kind::kPod, lo);
    if (l.is_ok()) {
      for (const auto& o : l->items) out.push_back(api::as<api::Pod>(o));
    }
    return out;
  }

  static bool running_ready(const api::Pod& p) {
    if (p.status().phase() != "Running" || p.status().pod_ip().empty()) return false;
    for (const auto& c : p.status().conditions()) {
      if (c.type() == "Ready") return c.status() == "True";
    }
    return false;
  }

  // Real containers of the node's pods that Docker reports running.
  int running_app_containers() {
    docker::DockerClient client;
    nlohmann::json filters = {
        {"label", {"flotilla.io/node=" + prefix_ + "remote-1", "flotilla.io/role=app"}},
        {"status", {"running"}}};
    auto r = client.call("GET", "/containers/json?filters=" + docker::encode_filters(filters));
    return r.is_ok() ? static_cast<int>(r->size()) : -1;
  }

  std::string flotilla_;
  std::string prefix_;
  std::string network_;
  std::string log_;
  live::AsioEventLoop loop_;
  sim::SimRandom random_{5};
  live::LiveNetwork network_port_{loop_};
  NullTraceSink trace_;
  AgentControlPlane cp_;
  std::unique_ptr<Child> agent_;
};

TEST_F(RemoteAgentTest, ASecondProcessJoinsRunsPodsOnDockerAndGoesNotReadyWhenKilled) {
  start_agent();
  ASSERT_TRUE(loop_.run_until([&] { return node_ready() == "True" || !agent_->running(); },
                              seconds(60)))
      << agent_->output();
  ASSERT_EQ(node_ready(), "True") << agent_->output();
  auto node = api::as<api::Node>(*cp_.store().get(api::Kind::kNode, "", "remote-1"));
  EXPECT_EQ(node->status().capacity().at("cpu"), "2");
  EXPECT_EQ(node->status().allocatable().at("memory"), "2Gi");

  auto rc = api::decode_manifests(kRc, "rc.yaml");
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  ASSERT_TRUE(cp_.store().create((*rc)[0].object).is_ok());
  TimePoint created = loop_.now();

  // Two pods bound to the remote node, Running and Ready with pod IPs...
  bool up = loop_.run_until(
      [&] {
        auto pods = pods_on_node();
        return pods.size() == 2 && running_ready(*pods[0]) && running_ready(*pods[1]);
      },
      seconds(120));
  ASSERT_TRUE(up) << agent_->output();
  std::printf("RC created -> 2 pods Ready on the remote agent: %.2f s\n",
              to_seconds(loop_.now() - created));
  // ...as two real containers on Docker...
  EXPECT_EQ(running_app_containers(), 2);
  // ...and so through the API too.
  auto client = ApiClient::create(loop_.io_context(), {.server = cp_.url()});
  ASSERT_TRUE(client.is_ok());
  std::optional<StatusOr<std::string>> listed;
  (*client)->call("GET", "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dremote-1",
                  "", [&](StatusOr<std::string> r) { listed = r; });
  ASSERT_TRUE(loop_.run_until([&] { return listed.has_value(); }, seconds(10)));
  ASSERT_TRUE(listed->is_ok()) << listed->status().to_string();
  auto decoded = api::decode_manifests(**listed, "pods");
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  ASSERT_EQ(decoded->size(), 2u);
  for (const auto& d : *decoded) {
    const auto& p = static_cast<const api::Pod&>(*d.object);
    EXPECT_TRUE(running_ready(p)) << api::encode_json(p);
    EXPECT_EQ(p.status().host_ip(), "127.0.0.1");
  }

  // Kill the agent: heartbeats stop and the node lifecycle controller marks
  // the node NotReady (fast profile: 4 s grace).
  agent_->kill(SIGKILL);
  TimePoint killed = loop_.now();
  ASSERT_TRUE(loop_.run_until([&] { return node_ready() != "True"; }, seconds(30)));
  std::printf("agent killed -> node NotReady: %.2f s (grace %.0f s)\n",
              to_seconds(loop_.now() - killed),
              to_seconds(cp_.scenario->timing.node_monitor_grace_period));
  EXPECT_LT(loop_.now() - killed, seconds(15));
  EXPECT_FALSE(node_ready().empty());
}

// A control plane that waits 30 s for a silent node, so the restart below
// comes long before the node is declared NotReady and its pods evicted.
class RemoteAgentRestartTest : public RemoteAgentTest {
 protected:
  void tune(TimingProfile& t) override { t.node_monitor_grace_period = seconds(30); }
};

TEST_F(RemoteAgentRestartTest, SigtermStopsCleanlyAndARestartedAgentAdoptsTheContainers) {
  start_agent();
  ASSERT_TRUE(loop_.run_until([&] { return node_ready() == "True"; }, seconds(60)))
      << agent_->output();
  auto rc = api::decode_manifests(kRc, "rc.yaml");
  ASSERT_TRUE(rc.is_ok());
  ASSERT_TRUE(cp_.store().create((*rc)[0].object).is_ok());
  ASSERT_TRUE(loop_.run_until(
      [&] {
        auto pods = pods_on_node();
        return pods.size() == 2 && running_ready(*pods[0]) && running_ready(*pods[1]);
      },
      seconds(120)))
      << agent_->output();
  std::vector<std::string> uids;
  for (const auto& p : pods_on_node()) uids.push_back(p->metadata().uid());

  agent_->kill(SIGTERM);
  ASSERT_TRUE(loop_.run_until([&] { return !agent_->running(); }, seconds(20)))
      << agent_->output();
  EXPECT_TRUE(WIFEXITED(agent_->exit_status()) && WEXITSTATUS(agent_->exit_status()) == 0)
      << agent_->output();
  EXPECT_NE(agent_->output().find("adopts them"), std::string::npos) << agent_->output();
  EXPECT_EQ(running_app_containers(), 2);

  // Restarted before the node is evicted: the same pods, the same containers.
  start_agent();
  ASSERT_TRUE(loop_.run_until([&] { return node_ready() == "True"; }, seconds(60)))
      << agent_->output();
  ASSERT_TRUE(loop_.run_until(
      [&] {
        auto pods = pods_on_node();
        return pods.size() == 2 && running_ready(*pods[0]) && running_ready(*pods[1]);
      },
      seconds(60)))
      << agent_->output();
  std::vector<std::string> after;
  for (const auto& p : pods_on_node()) after.push_back(p->metadata().uid());
  EXPECT_EQ(after, uids);
  EXPECT_EQ(running_app_containers(), 2);
}

}  // namespace
}  // namespace flotilla::apiclient
