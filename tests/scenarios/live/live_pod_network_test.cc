// Services seen from inside a pod, live on Docker: a pod's resolver is the
// run's DnsServer, so `web.default.svc.cluster.local` and the short name `web`
// (search domains) resolve to the Service's ClusterIP, and 30 requests to
// http://<VIP>:80 and to http://web.default.svc.cluster.local from inside a
// pod reach all 3 backends round-robin (the VIP is an address on the run's
// bridge, where the proxy listens). The VIPs are gone with the run, and no
// container, volume or network is left. Waits on conditions with the run's
// duration as the deadline; FLOTILLA_SKIP_DOCKER=1 skips it, and says so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "backends/docker/docker_container_runtime.h"
#include "backends/live/vip_addresses.h"
#include "core/api/object.h"
#include "core/api/types.pb.h"
#include "scenarios/live_runner.h"
#include "scenarios/loader.h"
#include "tests/scratch_dir.h"

namespace flotilla::scenarios {
namespace {

using nlohmann::json;

bool skip_docker() {
  const char* s = std::getenv("FLOTILLA_SKIP_DOCKER");
  return s != nullptr && std::string(s) == "1";
}

constexpr const char* kScenario = R"(
name: live-pod-network
seed: 29
duration: 120s
cluster:
  timing: fast
  node_groups:
    - {name: node, count: 3, capacity: {cpu: "2", memory: 4Gi}}
workload:
  - apply:
      - apiVersion: v1
        kind: ReplicationController
        metadata: {name: web}
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
                  readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
      - apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec:
          selector: {app: web}
          ports: [{port: 80, targetPort: http}]
)";

// Runs `script` with sh in a container and returns its stdout+stderr (blocking).
StatusOr<std::string> exec_output(const docker::DockerClient& client, const std::string& id,
                                  const std::string& script) {
  auto made = client.call("POST", "/containers/" + id + "/exec",
                          json{{"AttachStdout", true},
                               {"AttachStderr", true},
                               {"Cmd", json::array({"sh", "-c", script})}});
  if (!made.is_ok()) return made.status();
  auto out = client.request("POST", "/exec/" + (*made)["Id"].get<std::string>() + "/start",
                            json{{"Detach", false}, {"Tty", false}}.dump(), seconds(60));
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

// What the test saw from inside a pod.
struct InPod {
  std::string vip;
  std::string bridge;
  std::vector<std::string> bridge_addresses;  // while running
  std::string lookup_fqdn, lookup_short;      // nslookup output
  std::vector<std::string> by_vip, by_name;   // answers (pod names)
  std::string short_name_answer;
  Status status = internal_error("not run");
};

InPod probe_from_pod(const std::string& container, const std::string& vip) {
  InPod r;
  docker::DockerClient client;
  auto run = [&](const std::string& script, std::string* out) -> bool {
    auto o = exec_output(client, container, script);
    if (!o.is_ok()) {
      r.status = o.status();
      return false;
    }
    *out = *o;
    return true;
  };
  std::string a, b;
  // busybox wget: no -T (its timeout option crashes the static build).
  const std::string loop30 = "for i in $(seq 30); do wget -q -O - http://%s/ || echo FAILED; echo; done";
  auto fmt = [&](const std::string& target) {
    std::string s = loop30;
    s.replace(s.find("%s"), 2, target);
    return s;
  };
  if (!run("nslookup web.default.svc.cluster.local", &r.lookup_fqdn)) return r;
  if (!run("nslookup web", &r.lookup_short)) return r;
  if (!run(fmt(vip), &a)) return r;
  if (!run(fmt("web.default.svc.cluster.local"), &b)) return r;
  if (!run("wget -q -O - http://web/ || echo FAILED", &r.short_name_answer)) return r;
  r.by_vip = lines_of(a);
  r.by_name = lines_of(b);
  r.status = Status::ok();
  return r;
}

TEST(LivePodNetwork, PodsReachServicesByDnsNameAndClusterIp) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  auto loaded = load_scenario_text(kScenario, "live-pod-network.yaml", ".");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  LiveRunOptions lo;
  lo.docker_network = "flotilla-pn-" + std::to_string(::getpid());
  lo.node_label_prefix = "pn" + std::to_string(::getpid()) + "-";
  lo.host_port_offset = 26000;
  lo.report = false;
  lo.handle_signals = false;
  lo.out_dir = flotilla::testing::scratch_dir("live-pn", "run").string();
  lo.watch_period = milliseconds(250);

  InPod seen;
  std::set<std::string> pod_names;
  std::future<InPod> probe;
  int stable = 0;
  lo.on_tick = [&](LiveRunView& v) {
    if (probe.valid()) {
      if (probe.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
      InPod r = probe.get();
      r.vip = seen.vip;
      r.bridge = seen.bridge;
      r.bridge_addresses = seen.bridge_addresses;
      seen = std::move(r);
      v.stop();
      return;
    }
    // 3 ready endpoints for two ticks in a row, so the proxy has them.
    auto eps = v.store().get(api::Kind::kEndpoints, "default", "web");
    int n = 0;
    if (eps.is_ok()) {
      for (const auto& s : api::as<api::Endpoints>(*eps)->subsets()) n += s.addresses_size();
    }
    auto svc = v.store().get(api::Kind::kService, "default", "web");
    if (n != 3 || !svc.is_ok() || ++stable < 2) {
      if (n != 3) stable = 0;
      return;
    }
    const std::string vip = api::as<api::Service>(*svc)->spec().cluster_ip();
    auto pods = v.store().list(api::Kind::kPod, ListOptions{});
    if (!pods.is_ok() || pods->items.empty()) return;
    for (const auto& o : pods->items) pod_names.insert(api::as<api::Pod>(o)->metadata().name());
    const auto& pod = *api::as<api::Pod>(pods->items.front());
    docker::DockerClient client;
    // By this run's node label too: pod UIDs follow the scenario's seed.
    json filters = {{"label", json::array({std::string(docker::kPodUidLabel) + "=" + pod.metadata().uid(),
                                           std::string(docker::kNodeLabel) + "=" + lo.node_label_prefix +
                                               pod.spec().node_name(),
                                           std::string(docker::kRoleLabel) + "=app"})}};
    auto cs = client.call("GET", "/containers/json?filters=" + docker::encode_filters(filters));
    if (!cs.is_ok() || cs->empty()) return;
    seen.vip = vip;
    seen.bridge = v.pod_network().bridge;
    auto addrs = live::ipv4_addresses_of(seen.bridge);
    if (addrs.is_ok()) seen.bridge_addresses = *addrs;
    // The Docker calls block: off the loop, which must keep proxying.
    probe = std::async(std::launch::async, probe_from_pod, (*cs)[0]["Id"].get<std::string>(), vip);
  };
  auto live = run_live(*loaded, lo);
  if (probe.valid()) seen.status = probe.get().status;  // the run ended first: join the thread
  ASSERT_TRUE(live.is_ok()) << live.status().message();
  ASSERT_TRUE(seen.status.is_ok()) << seen.status.message();

  // The VIP was a local address of the run's bridge while it ran.
  ASSERT_FALSE(seen.vip.empty());
  std::string addrs;
  for (const auto& a : seen.bridge_addresses) addrs += a + " ";
  std::cout << "VIP " << seen.vip << " on " << seen.bridge << ": " << addrs << "\n"
            << "warnings " << live->summary["live"]["warnings"].dump() << "\n";
  EXPECT_NE(std::find(seen.bridge_addresses.begin(), seen.bridge_addresses.end(), seen.vip),
            seen.bridge_addresses.end())
      << seen.bridge;
  // DNS: the full name and the short one (search domains) give the VIP.
  EXPECT_NE(seen.lookup_fqdn.find("Address: " + seen.vip), std::string::npos) << seen.lookup_fqdn;
  EXPECT_NE(seen.lookup_short.find("web.default.svc.cluster.local"), std::string::npos)
      << seen.lookup_short;
  EXPECT_NE(seen.lookup_short.find("Address: " + seen.vip), std::string::npos) << seen.lookup_short;
  // 30 requests each way reach the 3 pods, 10 each (round-robin).
  for (const auto* answers : {&seen.by_vip, &seen.by_name}) {
    ASSERT_EQ(answers->size(), 30u);
    std::map<std::string, int> per_pod;
    for (const auto& a : *answers) ++per_pod[a];
    EXPECT_EQ(per_pod.size(), 3u);
    for (const auto& [pod, k] : per_pod) {
      EXPECT_EQ(pod_names.count(pod), 1u) << "not a pod: " << pod;
      EXPECT_EQ(k, 10) << pod;
    }
  }
  EXPECT_EQ(pod_names.count(lines_of(seen.short_name_answer).empty()
                                ? ""
                                : lines_of(seen.short_name_answer).front()),
            1u)
      << seen.short_name_answer;
  EXPECT_EQ(live->summary["live"]["pod_network"]["dns"].get<std::string>().find(":53"),
            live->summary["live"]["pod_network"]["dns"].get<std::string>().size() - 3);

  // Nothing left: the run's containers, volumes, network (and so its bridge
  // and the VIP on it).
  std::vector<std::string> nodes;
  for (int i = 0; i < 3; ++i) nodes.push_back(lo.node_label_prefix + "node-" + std::to_string(i));
  auto left = live_leftovers(lo.docker_socket, nodes, lo.docker_network);
  ASSERT_TRUE(left.is_ok()) << left.status().message();
  EXPECT_EQ(left->containers, 0);
  EXPECT_EQ(left->volumes, 0);
  EXPECT_EQ(left->networks, 0);
  auto after = live::ipv4_addresses_of(seen.bridge);
  EXPECT_TRUE(!after.is_ok() ||
              std::find(after->begin(), after->end(), seen.vip) == after->end());
  std::filesystem::remove_all(lo.out_dir);
}

}  // namespace
}  // namespace flotilla::scenarios
