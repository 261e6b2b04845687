// The real `flotilla serve` binary driven by the real kubectl, on one backend
// (SERVE_BACKEND: "sim", simulated nodes paced to the wall clock, or
// "docker", containers on the local engine): apply an RC and a Service, get
// in every output form, get -w, describe, scale to 5 (5 running containers,
// 5 endpoints behind the Service; the time it takes is printed), logs (whole,
// --tail, -f until the pod goes), delete, and Kubernetes' error wording for a
// missing object and an invalid manifest. On sim also Debian's official
// Python client (python3-kubernetes): list, create, watch. Every wait has a
// deadline; the server gets SIGTERM at the end and (docker) must leave no
// container or network behind. FLOTILLA_SKIP_DOCKER=1 skips the docker run.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "backends/docker/docker_client.h"
#include "backends/docker/docker_container_runtime.h"
#include "tests/backends/apiserver/test_server.h"

#ifndef FLOTILLA_BIN
#error "FLOTILLA_BIN (the flotilla binary's path) must be defined by the build"
#endif
#ifndef SERVE_BACKEND
#error "SERVE_BACKEND (sim or docker) must be defined by the build"
#endif

namespace flotilla::apiserver::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kBackend = SERVE_BACKEND;

// The binary under test: FLOTILLA_SERVE_BIN when set (another build of it),
// else this build's.
std::string flotilla_bin() {
  const char* b = std::getenv("FLOTILLA_SERVE_BIN");
  return b != nullptr && *b != '\0' ? b : FLOTILLA_BIN;
}
bool docker() { return kBackend == "docker"; }

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path != nullptr ? path : "";
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find(':', i);
    if (j == std::string::npos) j = p.size();
    fs::path candidate = fs::path(p.substr(i, j - i)) / name;
    std::error_code ec;
    if (!p.empty() && fs::exists(candidate, ec) && access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    i = j + 1;
  }
  return "";
}

// A TCP port nobody listens on now.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// Polls `check` until it holds or `timeout` passes (a short pause between
// polls); returns whether it held.
bool eventually(const std::function<bool()>& check, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (check()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

constexpr const char* kWeb = R"(apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: flotilla/demo-server
        ports:
        - {name: http, containerPort: 8080}
        resources:
          requests: {cpu: 100m, memory: 32Mi}
          limits: {memory: 64Mi}
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: http}
)";

struct KubectlRun {
  int code;
  std::string out;
  std::string err;
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kubectl_ = find_in_path("kubectl");
    if (kubectl_.empty()) GTEST_SKIP() << "kubectl is not installed (command -v kubectl)";
    tag_ = "st" + std::to_string(::getpid());
    if (docker()) {
      const char* skip = std::getenv("FLOTILLA_SKIP_DOCKER");
      if (skip != nullptr && std::string(skip) == "1") {
        GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: the docker backend is not tested";
      }
      Status ping = docker::DockerClient().ping();
      if (!ping.is_ok()) GTEST_SKIP() << "Docker is not reachable: " << ping.message();
    }
    dir_ = fs::temp_directory_path() /
           ("flotilla-serve-" + kBackend + "-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    proxy_port_ = free_port();
    ASSERT_GT(proxy_port_, 80);
    std::vector<std::string> args = {flotilla_bin(), "serve", "--backend", kBackend,
                                     "--listen", "127.0.0.1:0", "--nodes", "3"};
    if (docker()) {
      args.insert(args.end(), {"--docker-network", "flotilla-" + tag_, "--node-label-prefix",
                               tag_ + "-", "--host-port-offset",
                               std::to_string(proxy_port_ - 80), "--data-dir",
                               (dir_ / "data").string()});
    }
    server_ = std::make_unique<Subprocess>(args, std::vector<std::string>{});
    const std::string marker = "Kubernetes API on http://127.0.0.1:";
    ASSERT_TRUE(server_->read_err_until(
        [&](const std::string& e) {
          size_t at = e.find(marker);
          return at != std::string::npos && e.find(' ', at + marker.size()) != std::string::npos;
        },
        120s))
        << server_->err();
    const std::string& e = server_->err();
    api_port_ = static_cast<uint16_t>(std::stoi(e.substr(e.find(marker) + marker.size())));
    std::ofstream(dir_ / "kubeconfig")
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: f\n  cluster:\n    server: "
        << "http://127.0.0.1:" << api_port_
        << "\nusers:\n- name: f\n  user: {}\ncontexts:\n- name: f\n  context:\n"
           "    cluster: f\n    user: f\n    namespace: default\ncurrent-context: f\n";
    std::ofstream(dir_ / "web.yaml") << kWeb;
  }

  void TearDown() override {
    if (server_) {
      server_->signal(SIGTERM);
      int code = server_->wait(120s);
      EXPECT_EQ(code, 0) << server_->err();
      EXPECT_NE(server_->err().find("flotilla serve: stopped"), std::string::npos)
          << server_->err();
      if (docker()) {
        // Nothing of this serve is left: containers of its nodes, its network.
        docker::DockerClient client;
        auto cs = client.call("GET", "/containers/json?all=1&filters=" +
                                         docker::encode_filters(
                                             {{"label", json::array({"flotilla.io/managed=true"})}}));
        ASSERT_TRUE(cs.is_ok());
        int mine = 0;
        for (const auto& c : *cs) {
          std::string node = c["Labels"].value(std::string(docker::kNodeLabel), "");
          if (node.rfind(tag_ + "-", 0) == 0) ++mine;
        }
        EXPECT_EQ(mine, 0);
        EXPECT_EQ(client.call("GET", "/networks/flotilla-" + tag_).status().code(),
                  StatusCode::kNotFound);
      }
    }
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::vector<std::string> argv(const std::vector<std::string>& args) {
    std::vector<std::string> a = {kubectl_, "--kubeconfig", (dir_ / "kubeconfig").string(),
                                  "--cache-dir", (dir_ / "cache").string()};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }
  std::vector<std::string> env() { return {"HOME=" + dir_.string()}; }
  KubectlRun kubectl(const std::vector<std::string>& args) {
    Subprocess p(argv(args), env());
    int code = p.wait(60s);
    return {code, p.out(), p.err()};
  }
  std::string write(const std::string& name, const std::string& text) {
    fs::path f = dir_ / name;
    std::ofstream(f) << text;
    return f.string();
  }

  json get_json(const std::string& target) {
    HttpResult r = http_request(api_port_, "GET", target);
    if (r.status != 200) return json();
    return json::parse(r.body, nullptr, false);
  }
  int ready_endpoints(const std::string& service) {
    json ep = get_json("/api/v1/namespaces/default/endpoints/" + service);
    int n = 0;
    if (!ep.is_object()) return -1;
    for (const auto& s : ep.value("subsets", json::array())) {
      n += static_cast<int>(s.value("addresses", json::array()).size());
    }
    return n;
  }
  // Pods of app=web that are Running and Ready (and not being deleted).
  std::vector<std::string> ready_pods() {
    json list = get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
    std::vector<std::string> out;
    if (!list.is_object()) return out;
    for (const auto& p : list["items"]) {
      if (p["metadata"].contains("deletionTimestamp")) continue;
      if (p["status"].value("phase", "") != "Running") continue;
      for (const auto& c : p["status"].value("conditions", json::array())) {
        if (c.value("type", "") == "Ready" && c.value("status", "") == "True") {
          out.push_back(p["metadata"]["name"]);
        }
      }
    }
    return out;
  }
  int pod_count() {
    json list = get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
    return list.is_object() ? static_cast<int>(list["items"].size()) : -1;
  }
  // Running app containers of this serve's nodes on Docker.
  int running_containers() {
    docker::DockerClient client;
    auto cs = client.call(
        "GET", "/containers/json?filters=" +
                   docker::encode_filters({{"label", json::array({"flotilla.io/managed=true",
                                                                  "flotilla.io/role=app"})}}));
    if (!cs.is_ok()) return -1;
    int n = 0;
    for (const auto& c : *cs) {
      std::string node = c["Labels"].value(std::string(docker::kNodeLabel), "");
      if (node.rfind(tag_ + "-", 0) == 0 && c.value("State", "") == "running") ++n;
    }
    return n;
  }

  std::string kubectl_;
  std::string tag_;
  fs::path dir_;
  int proxy_port_ = 0;
  uint16_t api_port_ = 0;
  std::unique_ptr<Subprocess> server_;
};

TEST_F(ServeTest, ApplyScaleLogsDeleteWithKubectl) {
  // Three nodes registered themselves.
  ASSERT_TRUE(eventually([&] {
    json nodes = get_json("/api/v1/nodes");
    return nodes.is_object() && nodes["items"].size() == 3;
  }, 30s));
  KubectlRun nodes = kubectl({"get", "nodes"});
  ASSERT_EQ(nodes.code, 0) << nodes.err;
  EXPECT_NE(nodes.out.find("node-0"), std::string::npos) << nodes.out;
  EXPECT_NE(nodes.out.find("Ready"), std::string::npos) << nodes.out;

  KubectlRun apply = kubectl({"apply", "-f", (dir_ / "web.yaml").string()});
  ASSERT_EQ(apply.code, 0) << apply.err;
  EXPECT_NE(apply.out.find("replicationcontroller/web created"), std::string::npos);
  EXPECT_NE(apply.out.find("service/web created"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return ready_endpoints("web") == 2; }, 90s))
      << kubectl({"get", "pods", "-o", "wide"}).out;

  // get in every form.
  KubectlRun pods = kubectl({"get", "pods"});
  ASSERT_EQ(pods.code, 0) << pods.err;
  std::string header = pods.out.substr(0, pods.out.find('\n'));
  EXPECT_EQ(header.find("NAME"), 0u) << pods.out;
  for (const char* col : {"READY", "STATUS", "RESTARTS", "AGE"}) {
    EXPECT_NE(header.find(col), std::string::npos) << col;
  }
  EXPECT_NE(pods.out.find("1/1     Running"), std::string::npos) << pods.out;
  KubectlRun wide = kubectl({"get", "pods", "-o", "wide"});
  ASSERT_EQ(wide.code, 0) << wide.err;
  EXPECT_NE(wide.out.find("IP"), std::string::npos);
  EXPECT_NE(wide.out.find("NODE"), std::string::npos);
  EXPECT_NE(wide.out.find(" node-"), std::string::npos) << wide.out;
  KubectlRun js = kubectl({"get", "pods", "-l", "app=web", "-o", "json"});
  ASSERT_EQ(js.code, 0) << js.err;
  json list = json::parse(js.out);
  ASSERT_EQ(list["items"].size(), 2u);
  const std::string pod = list["items"][0]["metadata"]["name"];
  EXPECT_EQ(list["items"][0]["status"]["phase"], "Running");
  EXPECT_FALSE(list["items"][0]["status"]["podIP"].get<std::string>().empty());
  KubectlRun yaml = kubectl({"get", "svc", "web", "-o", "yaml"});
  ASSERT_EQ(yaml.code, 0) << yaml.err;
  EXPECT_NE(yaml.out.find("kind: Service"), std::string::npos);
  EXPECT_NE(yaml.out.find("clusterIP: "), std::string::npos) << yaml.out;

  // describe.
  KubectlRun describe = kubectl({"describe", "pod", pod});
  ASSERT_EQ(describe.code, 0) << describe.err;
  EXPECT_NE(describe.out.find("Node:         node-"), std::string::npos) << describe.out;
  EXPECT_NE(describe.out.find("Status:       Running"), std::string::npos) << describe.out;
  EXPECT_NE(describe.out.find("Events:"), std::string::npos) << describe.out;

  // logs: whole, the last line, and what each backend's container wrote.
  KubectlRun logs = kubectl({"logs", pod});
  ASSERT_EQ(logs.code, 0) << logs.err;
  if (docker()) {
    EXPECT_NE(logs.out.find("demo-server " + pod + " listening on 8080"), std::string::npos)
        << logs.out;
  } else {
    EXPECT_NE(logs.out.find("flotilla-sim: started container web (image flotilla/demo-server) "
                            "in pod default/" + pod + " on node node-"),
              std::string::npos)
        << logs.out;
    EXPECT_NE(logs.out.find("flotilla-sim: ready"), std::string::npos) << logs.out;
  }
  KubectlRun tail = kubectl({"logs", pod, "--tail=1"});
  ASSERT_EQ(tail.code, 0) << tail.err;
  EXPECT_EQ(std::count(tail.out.begin(), tail.out.end(), '\n'), 1) << tail.out;
  KubectlRun nolog = kubectl({"logs", "nope"});
  EXPECT_NE(nolog.code, 0);
  EXPECT_NE(nolog.err.find("(NotFound): pods \"nope\" not found"), std::string::npos) << nolog.err;

  // scale to 5: five running containers, five endpoints behind the Service.
  const auto t0 = Clock::now();
  KubectlRun scale = kubectl({"scale", "rc", "web", "--replicas=5"});
  ASSERT_EQ(scale.code, 0) << scale.err;
  EXPECT_NE(scale.out.find("replicationcontroller/web scaled"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return ready_endpoints("web") == 5; }, 120s))
      << kubectl({"get", "pods", "-o", "wide"}).out;
  const double scale_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("[ figure ] %s: kubectl scale rc web --replicas=5 -> 5 ready endpoints: %.2f s\n",
              kBackend.c_str(), scale_s);
  RecordProperty("scale_to_5_endpoints_s", std::to_string(scale_s));
  EXPECT_EQ(ready_pods().size(), 5u);
  if (docker()) {
    EXPECT_EQ(running_containers(), 5);
    // The Service answers on the host, from the pods behind it.
    std::set<std::string> answered;
    for (int i = 0; i < 20; ++i) {
      HttpResult r = http_request(static_cast<uint16_t>(proxy_port_), "GET", "/");
      if (r.status == 200) answered.insert(r.body);
    }
    EXPECT_GE(answered.size(), 2u);
    for (const auto& a : answered) EXPECT_EQ(a.rfind("web-", 0), 0u) << a;
  }
  KubectlRun rc = kubectl({"get", "rc", "web"});
  ASSERT_EQ(rc.code, 0) << rc.err;
  EXPECT_NE(rc.out.find("web    5         5         5"), std::string::npos) << rc.out;
  KubectlRun ep = kubectl({"get", "endpoints", "web", "-o", "json"});
  ASSERT_EQ(ep.code, 0) << ep.err;
  EXPECT_EQ(json::parse(ep.out)["subsets"][0]["addresses"].size(), 5u) << ep.out;

  // logs -f follows until the pod goes; get -w shows the change.
  Subprocess follow(argv({"logs", "-f", pod}), env());
  ASSERT_TRUE(follow.read_until(
      [&](const std::string& o) {
        return o.find(docker() ? "listening on 8080" : "started container") != std::string::npos;
      },
      30s))
      << follow.out() << follow.err();
  Subprocess watch(argv({"get", "pods", "-w"}), env());
  ASSERT_TRUE(watch.read_until(
      [&](const std::string& o) { return o.find(pod) != std::string::npos; }, 30s))
      << watch.out() << watch.err();
  KubectlRun del = kubectl({"delete", "pod", pod});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_EQ(del.out, "pod \"" + pod + "\" deleted\n");
  EXPECT_EQ(follow.wait(60s), 0) << follow.err();
  ASSERT_TRUE(watch.read_until(
      [&](const std::string& o) {
        return o.find(pod + "   1/1     Terminating") != std::string::npos ||
               o.find(pod + "   0/1     Terminating") != std::string::npos;
      },
      30s))
      << watch.out();
  watch.kill();
  // The RC replaces it.
  ASSERT_TRUE(eventually([&] { return ready_endpoints("web") == 5; }, 120s));

  // Errors in Kubernetes' wording.
  KubectlRun missing = kubectl({"get", "pods", "nope"});
  EXPECT_NE(missing.code, 0);
  EXPECT_EQ(missing.err, "Error from server (NotFound): pods \"nope\" not found\n");
  std::string bad = write("bad.yaml", R"(apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: c
    image: ""
)");
  KubectlRun invalid = kubectl({"apply", "-f", bad});
  EXPECT_NE(invalid.code, 0);
  EXPECT_EQ(invalid.err,
            "The Pod \"bad\" is invalid: spec.containers[0].image: Required value\n");

  // delete: the RC's pods go, and with them (docker) the containers.
  KubectlRun gone = kubectl({"delete", "-f", (dir_ / "web.yaml").string()});
  ASSERT_EQ(gone.code, 0) << gone.err;
  EXPECT_NE(gone.out.find("replicationcontroller \"web\" deleted"), std::string::npos);
  EXPECT_NE(gone.out.find("service \"web\" deleted"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return pod_count() == 0; }, 120s))
      << kubectl({"get", "pods"}).out;
  if (docker()) {
    EXPECT_TRUE(eventually([&] { return running_containers() == 0; }, 60s));
  }
}

// Debian's official Python client (python3-kubernetes): list nodes, create a
// pod, watch it until Running and Ready, list it, and a 404 as ApiException.
TEST_F(ServeTest, PythonKubernetesClientListsCreatesAndWatches) {
  if (docker()) GTEST_SKIP() << "the Python client runs against the sim backend";
  const std::string python = "/usr/bin/python3";
  Subprocess probe({python, "-c", "import kubernetes"}, {});
  if (probe.wait(30s) != 0) {
    GTEST_SKIP() << "python3-kubernetes is not installed (scripts/install-deps.sh installs it)";
  }
  std::string script = write("client.py", R"(import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
print("nodes", sorted(n.metadata.name for n in v1.list_node().items), flush=True)
pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="py-1", labels={"app": "py"}),
    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="demo:1")]))
created = v1.create_namespaced_pod("default", pod)
print("created", created.metadata.name, bool(created.metadata.uid), flush=True)
w = watch.Watch()
seen = []
for ev in w.stream(v1.list_namespaced_pod, "default", label_selector="app=py",
                   timeout_seconds=60):
    o = ev["object"]
    ready = any(c.type == "Ready" and c.status == "True" for c in (o.status.conditions or []))
    seen.append(ev["type"])
    if o.status.phase == "Running" and ready:
        print("running", o.metadata.name, o.spec.node_name, flush=True)
        w.stop()
print("events", seen[0], len(seen) > 1, flush=True)
print("listed", [p.metadata.name for p in v1.list_namespaced_pod("default").items], flush=True)
try:
    v1.read_namespaced_pod("nope", "default")
except client.exceptions.ApiException as e:
    print("error", e.status, e.reason, flush=True)
)");
  Subprocess py({python, script, (dir_ / "kubeconfig").string()}, {"HOME=" + dir_.string()});
  ASSERT_EQ(py.wait(120s), 0) << py.out() << py.err();
  const std::string& o = py.out();
  EXPECT_NE(o.find("nodes ['node-0', 'node-1', 'node-2']"), std::string::npos) << o;
  EXPECT_NE(o.find("created py-1 True"), std::string::npos) << o;
  EXPECT_NE(o.find("running py-1 node-"), std::string::npos) << o << py.err();
  EXPECT_NE(o.find("events ADDED True"), std::string::npos) << o;
  EXPECT_NE(o.find("listed ['py-1']"), std::string::npos) << o;
  EXPECT_NE(o.find("error 404 Not Found"), std::string::npos) << o;
}

}  // namespace
}  // namespace flotilla::apiserver::testing
