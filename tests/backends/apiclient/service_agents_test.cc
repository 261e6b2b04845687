// Services across nodes with two `flotilla agent` processes: the test runs a
// control plane with its API in-process, starts agents for remote-1 and
// remote-2 on this Docker (each on its own pod network, so each serves its own
// DNS on its own gateway and holds the VIPs on its own bridge), creates an RC
// of 3 pods (2 pods per node at most, so both nodes run some) and a Service.
// From a pod on each node the Service answers by VIP and by DNS name, and 30
// requests reach all 3 pods, 10 each, wherever they run; a deleted pod drops
// out of both nodes' proxies. Label "live": needs dockerd and the flotilla/*
// images (FLOTILLA_SKIP_DOCKER=1 skips). Everything created is removed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends/apiserver/api_server.h"
#include "backends/docker/docker_client.h"
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

using nlohmann::json;

constexpr const char* kScenario = R"(
name: service-agents
seed: 4
duration: 10m
cluster:
  timing: fast
  node_groups:
    - {name: unused, count: 1, capacity: {cpu: "1", memory: 1Gi, pods: "10"}}
)";

constexpr const char* kWorkload = R"(
apiVersion: v1
kind: ReplicationController
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: flotilla/demo-server
          ports: [{name: http, containerPort: 8080}]
          resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {memory: 64Mi}}
          readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
)";

const std::vector<std::string> kNodes = {"remote-1", "remote-2"};

// Runs `script` with sh in a container; its stdout+stderr (blocking).
StatusOr<std::string> exec_output(const std::string& id, const std::string& script) {
  docker::DockerClient client;
  auto made = client.call("POST", "/containers/" + id + "/exec",
                          json{{"AttachStdout", true},
                               {"AttachStderr", true},
                               {"Cmd", json::array({"sh", "-c", script})}});
  if (!made.is_ok()) return made.status();
  auto out = client.request("POST", "/exec/" + (*made)["Id"].get<std::string>() + "/start",
                            json{{"Detach", false}, {"Tty", false}}.dump(), seconds(90));
  if (!out.is_ok()) return out.status();
  std::string carry;
  return docker::demux_stream(out->body, carry);
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// n requests to http://<target>/ from inside a container: one answer (the
// serving pod's name, or FAILED) per line.
std::string requests(const std::string& target, int n) {
  // busybox wget: no -T (its timeout option crashes the static build).
  return "for i in $(seq " + std::to_string(n) + "); do wget -q -O - http://" + target +
         "/ || echo FAILED; echo; done";
}

class ServiceAgentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
    flotilla_ = flotilla_binary();
    ASSERT_EQ(::access(flotilla_.c_str(), X_OK), 0) << flotilla_ << " is not built";
    id_ = std::to_string(::getpid());
    prefix_ = "svcagents-" + id_ + "-";

    Status s = cp_.start(loop_, random_, network_port_, trace_, kScenario, "service-agents.yaml");
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  void TearDown() override {
    if (skip_docker()) return;
    // SIGTERM: each agent removes its VIPs and stops its DNS server.
    for (auto& a : agents_) {
      a->kill(SIGTERM);
      loop_.run_until([&] { return !a->running(); }, seconds(20));
    }
    agents_.clear();
    cp_.stop();
    docker::DockerClient client;
    for (size_t i = 0; i < kNodes.size(); ++i) {
      Status s = docker::remove_all_flotilla_objects(client, prefix_ + kNodes[i]);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
      (void)client.call("DELETE", "/networks/" + docker::url_encode(network(i)));
      EXPECT_EQ(client.call("GET", "/networks/" + docker::url_encode(network(i))).status().code(),
                StatusCode::kNotFound);
      std::remove(log(i).c_str());
    }
  }

  std::string network(size_t i) const { return "flotilla-svcagents-" + id_ + "-" + std::to_string(i); }
  std::string log(size_t i) const {
    return ::testing::TempDir() + "flotilla-svcagents-" + id_ + "-" + std::to_string(i) + ".log";
  }

  void start_agents() {
    for (size_t i = 0; i < kNodes.size(); ++i) {
      agents_.push_back(std::make_unique<Child>(
          std::vector<std::string>{flotilla_, "agent", "--server", cp_.url(), "--node-name",
                                   kNodes[i], "--network", network(i), "--node-label-prefix",
                                   prefix_, "--timing", "fast", "--cpu", "2", "--memory", "2Gi",
                                   "--pods", "2", "--service-port-offset",
                                   std::to_string(41000 + 1000 * i)},
          log(i)));
      ASSERT_TRUE(agents_.back()->started());
    }
  }

  std::string outputs() const {
    std::string out;
    for (size_t i = 0; i < agents_.size(); ++i) {
      out += "--- agent " + kNodes[i] + ":\n" + agents_[i]->output();
    }
    return out;
  }

  bool node_ready(const std::string& name) {
    return apiclient::node_ready(cp_.store(), name) == "True";
  }

  // Ready endpoint IPs of the Service.
  std::set<std::string> endpoint_ips() {
    std::set<std::string> out;
    auto eps = cp_.store().get(api::Kind::kEndpoints, "default", "web");
    if (!eps.is_ok()) return out;
    for (const auto& s : api::as<api::Endpoints>(*eps)->subsets()) {
      for (const auto& a : s.addresses()) out.insert(a.ip());
    }
    return out;
  }

  std::vector<std::shared_ptr<const api::Pod>> pods() {
    std::vector<std::shared_ptr<const api::Pod>> out;
    auto l = cp_.store().list(api::Kind::kPod, ListOptions{});
    if (l.is_ok()) {
      for (const auto& o : l->items) out.push_back(api::as<api::Pod>(o));
    }
    return out;
  }

  // The app container of a pod.
  std::string container_of(const api::Pod& pod) {
    docker::DockerClient client;
    json filters = {{"label", json::array({std::string(docker::kPodUidLabel) + "=" +
                                               pod.metadata().uid(),
                                           std::string(docker::kNodeLabel) + "=" + prefix_ +
                                               pod.spec().node_name(),
                                           std::string(docker::kRoleLabel) + "=app"})}};
    auto cs = client.call("GET", "/containers/json?filters=" + docker::encode_filters(filters));
    if (!cs.is_ok() || cs->empty()) return "";
    return (*cs)[0]["Id"].get<std::string>();
  }

  // Runs a script in a container off the loop (the control plane and API
  // server keep running on it meanwhile).
  StatusOr<std::string> in_pod(const std::string& container, const std::string& script) {
    return off_loop(loop_, [&] { return exec_output(container, script); });
  }

  std::map<std::string, int> answers(const std::string& container, const std::string& target,
                                     int n) {
    std::map<std::string, int> out;
    auto o = in_pod(container, requests(target, n));
    if (!o.is_ok()) {
      out["exec: " + o.status().message()] = 1;
      return out;
    }
    for (const auto& l : lines_of(*o)) ++out[l];
    return out;
  }

  std::string flotilla_;
  std::string id_;
  std::string prefix_;
  live::AsioEventLoop loop_;
  sim::SimRandom random_{6};
  live::LiveNetwork network_port_{loop_};
  NullTraceSink trace_;
  AgentControlPlane cp_;
  std::vector<std::unique_ptr<Child>> agents_;
};

TEST_F(ServiceAgentsTest, FromAPodOnEachNodeTheServiceAnswersByVipAndNameOverPodsOnBothNodes) {
  start_agents();
  ASSERT_TRUE(loop_.run_until([&] { return node_ready("remote-1") && node_ready("remote-2"); },
                              seconds(60)))
      << outputs();
  auto objects = api::decode_manifests(kWorkload, "workload.yaml");
  ASSERT_TRUE(objects.is_ok()) << objects.status().to_string();
  for (const auto& o : *objects) ASSERT_TRUE(cp_.store().create(o.object).is_ok());
  const TimePoint created = loop_.now();

  // 3 ready endpoints, on both nodes (2 pods per node at most).
  ASSERT_TRUE(loop_.run_until([&] { return endpoint_ips().size() == 3; }, seconds(180)))
      << outputs();
  std::printf("RC + Service created -> 3 ready endpoints: %.2f s\n",
              to_seconds(loop_.now() - created));
  std::map<std::string, std::vector<std::shared_ptr<const api::Pod>>> by_node;
  std::set<std::string> names;
  for (const auto& p : pods()) {
    by_node[p->spec().node_name()].push_back(p);
    names.insert(p->metadata().name());
  }
  ASSERT_EQ(by_node["remote-1"].size() + by_node["remote-2"].size(), 3u);
  ASSERT_FALSE(by_node["remote-1"].empty());
  ASSERT_FALSE(by_node["remote-2"].empty());
  auto svc = cp_.store().get(api::Kind::kService, "default", "web");
  ASSERT_TRUE(svc.is_ok());
  const std::string vip = api::as<api::Service>(*svc)->spec().cluster_ip();
  ASSERT_FALSE(vip.empty());

  // Each agent serves DNS on its own network's gateway and holds the VIPs on
  // its own bridge.
  for (size_t i = 0; i < kNodes.size(); ++i) {
    docker::DockerClient dc;
    auto net = docker::ensure_network(dc, network(i), docker::DockerRuntimeOptions{}.subnets);
    ASSERT_TRUE(net.is_ok()) << net.status().to_string();
    const std::string gateway = net->gateway;
    ASSERT_FALSE(gateway.empty());
    const std::string out = agents_[i]->output();
    EXPECT_NE(out.find("DNS at " + gateway + ":53"), std::string::npos) << out;
    EXPECT_EQ(out.find("VIP not reachable"), std::string::npos) << out;
    EXPECT_EQ(out.find("cannot resolve"), std::string::npos) << out;
  }

  // A client pod on each node: the first pod there.
  std::map<std::string, std::string> client;  // node -> container
  for (const auto& node : kNodes) {
    client[node] = container_of(*by_node[node].front());
    ASSERT_FALSE(client[node].empty()) << node;
  }
  for (const auto& node : kNodes) {
    SCOPED_TRACE("client on " + node);
    // DNS: each node's resolver gives the full and the short name the VIP.
    auto fqdn = in_pod(client[node], "nslookup web.default.svc.cluster.local");
    ASSERT_TRUE(fqdn.is_ok()) << fqdn.status().to_string();
    EXPECT_NE(fqdn->find("Address: " + vip), std::string::npos) << *fqdn << outputs();
    auto short_name = in_pod(client[node], "nslookup web");
    ASSERT_TRUE(short_name.is_ok());
    EXPECT_NE(short_name->find("Address: " + vip), std::string::npos) << *short_name;
    // The agent's cache follows the API a moment later: wait (by asking)
    // until its proxy has all 3 endpoints.
    const TimePoint deadline = loop_.now() + seconds(20);
    while (answers(client[node], vip, 3).size() < 3 && loop_.now() < deadline) {
    }
    // 30 requests by VIP and by name: all 3 pods, 10 each (round-robin).
    std::map<std::string, int> even;
    for (const auto& n : names) even[n] = 10;
    EXPECT_EQ(answers(client[node], vip, 30), even) << outputs();
    EXPECT_EQ(answers(client[node], "web.default.svc.cluster.local", 30), even);
  }

  // Delete a pod that is not a client: both proxies stop sending to it.
  std::shared_ptr<const api::Pod> victim;
  for (const auto& node : kNodes) {
    if (by_node[node].size() == 2) victim = by_node[node].back();
  }
  ASSERT_NE(victim, nullptr);
  const std::string victim_name = victim->metadata().name();
  const std::string victim_ip = victim->status().pod_ip();
  ASSERT_TRUE(cp_.store().remove(api::Kind::kPod, "default", victim_name).is_ok());
  const TimePoint deleted = loop_.now();
  // The Endpoints drop it, and its replacement becomes ready.
  ASSERT_TRUE(loop_.run_until(
      [&] {
        auto ips = endpoint_ips();
        return ips.size() == 3 && ips.count(victim_ip) == 0;
      },
      seconds(120)))
      << outputs();
  std::set<std::string> now_names;
  for (const auto& p : pods()) now_names.insert(p->metadata().name());
  ASSERT_EQ(now_names.count(victim_name), 0u);
  for (const auto& node : kNodes) {
    SCOPED_TRACE("client on " + node);
    // The agent's cache and proxy follow within moments: ask until the
    // deleted pod no longer answers (the deadline is the failure).
    std::map<std::string, int> got;
    const TimePoint deadline = loop_.now() + seconds(20);
    do {
      got = answers(client[node], vip, 30);
    } while (got.count(victim_name) != 0 && loop_.now() < deadline);
    std::printf("%s: pod deleted -> gone from the proxy within %.2f s\n", node.c_str(),
                to_seconds(loop_.now() - deleted));
    EXPECT_EQ(got.count(victim_name), 0u);
    EXPECT_EQ(got.count("FAILED"), 0u);
    int total = 0;
    for (const auto& [name, k] : got) {
      EXPECT_EQ(now_names.count(name), 1u) << "not a current pod: " << name;
      total += k;
    }
    EXPECT_EQ(total, 30);
  }
}

}  // namespace
}  // namespace flotilla::apiclient
