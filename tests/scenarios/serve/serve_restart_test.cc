// Restart without disruption, end to end with the real binaries: `flotilla
// serve --backend docker --data-dir D` with two local nodes, one remote
// `flotilla agent` joined over the API, an RC of three pods behind a Service
// and a pod pinned to the remote node (outside the RC's selector). The serve gets SIGKILL while the pods
// run and starts again on D: every object is still there (same uids), no pod
// is added, every container keeps its id and StartedAt (adopted, not
// restarted), the remote agent reconnects, endpoints and the host's service
// proxy answer again, and the control plane still acts (a scale-up runs).
// Every wait has a deadline; every container and the network are removed at
// the end. Label live; FLOTILLA_SKIP_DOCKER=1 skips it.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "backends/docker/docker_client.h"
#include "backends/docker/docker_container_runtime.h"

#ifndef FLOTILLA_BIN
#error "FLOTILLA_BIN (the flotilla binary's path) must be defined by the build"
#endif

namespace flotilla::serve_restart_test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool eventually(const std::function<bool()>& check, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (check()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}


// A child process whose standard error goes to a file (read back by err()).
class Process {
 public:
  Process(const std::vector<std::string>& argv, const fs::path& err_file) : err_file_(err_file) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no server behind
      int fd = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      ::dup2(fd, 2);
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(null, 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Process() { kill(); }
  std::string err() const {
    std::ifstream in(err_file_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool read_err_until(const std::function<bool(const std::string&)>& done,
                      std::chrono::milliseconds timeout) {
    return eventually([&] { return done(err()); }, timeout);
  }
  void signal(int sig) {
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
  }
  // Waits for exit; SIGKILL at the deadline. Returns the exit status (-1: killed).
  int wait(std::chrono::milliseconds timeout) {
    int status = 0;
    bool done = eventually([&] {
      return exited_ || ::waitpid(pid_, &status, WNOHANG) == pid_;
    }, timeout);
    if (!done) {
      kill();
      return -1;
    }
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void kill() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      exited_ = true;
    }
  }

 private:
  fs::path err_file_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

struct HttpResult {
  int status = 0;  // 0: no connection
  std::string body;
};

// One HTTP/1.1 request on a fresh loopback connection (Connection: close).
HttpResult http_request(int port, const std::string& method, const std::string& target,
                        const std::string& body = "") {
  HttpResult out;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return out;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Connection: close\r\nContent-Type: application/json\r\n"
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return out;
  }
  std::string resp;
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (resp.rfind("HTTP/1.", 0) != 0 || resp.size() < 12) return out;
  out.status = std::atoi(resp.c_str() + 9);
  size_t head_end = resp.find("\r\n\r\n");
  if (head_end == std::string::npos) return out;
  std::string head = resp.substr(0, head_end);
  out.body = resp.substr(head_end + 4);
  if (head.find("chunked") != std::string::npos) {  // de-chunk
    std::string plain;
    size_t pos = 0;
    while (pos < out.body.size()) {
      size_t eol = out.body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t len = std::stoul(out.body.substr(pos, eol - pos), nullptr, 16);
      if (len == 0) break;
      plain += out.body.substr(eol + 2, len);
      pos = eol + 2 + len + 2;
    }
    out.body = plain;
  }
  return out;
}

const json kRc = json::parse(R"({
  "apiVersion": "v1", "kind": "ReplicationController",
  "metadata": {"name": "web"},
  "spec": {"replicas": 3, "selector": {"app": "web"},
    "template": {"metadata": {"labels": {"app": "web"}},
      "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
        "name": "web", "image": "flotilla/demo-server",
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}]}}}})");
const json kService = json::parse(R"({
  "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
  "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}})");
const json kPinned = json::parse(R"({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "pinned", "labels": {"app": "pinned"}},
  "spec": {"nodeName": "remote-0", "terminationGracePeriodSeconds": 2, "containers": [{
    "name": "web", "image": "flotilla/demo-server",
    "ports": [{"name": "http", "containerPort": 8080}],
    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}]}})");

class ServeRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* skip = std::getenv("FLOTILLA_SKIP_DOCKER");
    if (skip != nullptr && std::string(skip) == "1") GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1";
    Status ping = docker::DockerClient().ping();
    if (!ping.is_ok()) GTEST_SKIP() << "Docker is not reachable: " << ping.message();
    tag_ = "rs" + std::to_string(::getpid());
    dir_ = fs::temp_directory_path() / ("flotilla-serve-restart-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    api_port_ = static_cast<uint16_t>(free_port());
    proxy_port_ = free_port();
    ASSERT_GT(proxy_port_, 80);
  }

  void TearDown() override {
    if (agent_) {
      agent_->signal(SIGTERM);
      agent_->wait(60s);
    }
    if (server_) {
      server_->signal(SIGTERM);
      server_->wait(120s);
    }
    docker::DockerClient client;
    for (const std::string& node : {tag_ + "-node-0", tag_ + "-node-1", tag_ + "r-remote-0"}) {
      EXPECT_TRUE(docker::remove_all_flotilla_objects(client, node).is_ok());
    }
    (void)client.call("DELETE", "/networks/" + network());
    EXPECT_EQ(containers().size(), 0u);
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::string network() const { return "flotilla-" + tag_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(api_port_); }

  // Starts `flotilla serve` and waits until it listens.
  void start_server() {
    std::vector<std::string> args = {
        FLOTILLA_BIN, "serve", "--backend", "docker", "--listen",
        "127.0.0.1:" + std::to_string(api_port_), "--nodes", "2", "--data-dir",
        (dir_ / "data").string(), "--docker-network", network(), "--node-label-prefix",
        tag_ + "-", "--host-port-offset", std::to_string(proxy_port_ - 80)};
    server_ = std::make_unique<Process>(args, dir_ / ("serve-" + std::to_string(++serves_) + ".err"));
    ASSERT_TRUE(server_->read_err_until(
        [](const std::string& e) { return e.find("Kubernetes API on") != std::string::npos; },
        120s))
        << server_->err();
  }

  json get_json(const std::string& target) {
    HttpResult r = http_request(api_port_, "GET", target);
    if (r.status != 200) return json();
    return json::parse(r.body, nullptr, false);
  }
  int post(const std::string& path, const json& body) {
    return http_request(api_port_, "POST", path, body.dump()).status;
  }

  // name -> uid of the objects of a list.
  std::map<std::string, std::string> uids(const std::string& target) {
    std::map<std::string, std::string> out;
    json list = get_json(target);
    if (!list.is_object()) return out;
    for (const auto& o : list.value("items", json::array())) {
      json meta = o.value("metadata", json::object());
      out[meta.value("name", "")] = meta.value("uid", "");
    }
    return out;
  }
  // Pods Running and Ready.
  int ready_pods() {
    json list = get_json("/api/v1/namespaces/default/pods");
    int n = 0;
    if (!list.is_object()) return -1;
    for (const auto& p : list.value("items", json::array())) {
      json status = p.value("status", json::object());
      if (status.value("phase", "") != "Running") continue;
      for (const auto& c : status.value("conditions", json::array())) {
        if (c.value("type", "") == "Ready" && c.value("status", "") == "True") ++n;
      }
    }
    return n;
  }
  int ready_endpoints() {
    json ep = get_json("/api/v1/namespaces/default/endpoints/web");
    if (!ep.is_object()) return -1;
    int n = 0;
    for (const auto& s : ep.value("subsets", json::array())) {
      n += static_cast<int>(s.value("addresses", json::array()).size());
    }
    return n;
  }
  // Container id -> StartedAt, of every container of this test's nodes.
  std::map<std::string, std::string> containers() {
    docker::DockerClient client;
    std::map<std::string, std::string> out;
    auto cs = client.call("GET", "/containers/json?all=1&filters=" +
                                     docker::encode_filters(
                                         {{"label", json::array({"flotilla.io/managed=true"})}}));
    if (!cs.is_ok()) return out;
    for (const auto& c : *cs) {
      std::string node =
          c.value("Labels", json::object()).value(std::string(docker::kNodeLabel), "");
      if (node.rfind(tag_, 0) != 0) continue;
      std::string id = c["Id"];
      auto inspect = client.call("GET", "/containers/" + id + "/json");
      out[id] = inspect.is_ok() ? (*inspect)["State"].value("StartedAt", "?") : "?";
    }
    return out;
  }
  // The service through the host's proxy answers 200.
  bool service_answers() { return http_request(proxy_port_, "GET", "/").status == 200; }

  std::string tag_;
  fs::path dir_;
  uint16_t api_port_ = 0;
  int proxy_port_ = 0;
  int serves_ = 0;
  std::unique_ptr<Process> server_;
  std::unique_ptr<Process> agent_;
};

TEST_F(ServeRestartTest, SigkillAndRestartAdoptsRunningContainersAndLosesNothing) {
  start_server();
  agent_ = std::make_unique<Process>(
      std::vector<std::string>{FLOTILLA_BIN, "agent", "--server", url(), "--node-name",
                               "remote-0", "--network", network(), "--node-label-prefix",
                               tag_ + "r-", "--timing", "fast", "--no-service-proxy"},
      dir_ / "agent.err");
  ASSERT_TRUE(eventually([&] { return uids("/api/v1/nodes").size() == 3; }, 60s))
      << agent_->err();
  ASSERT_EQ(post("/api/v1/namespaces/default/replicationcontrollers", kRc), 201);
  ASSERT_EQ(post("/api/v1/namespaces/default/services", kService), 201);
  ASSERT_EQ(post("/api/v1/namespaces/default/pods", kPinned), 201);
  ASSERT_TRUE(eventually([&] { return ready_pods() == 4 && ready_endpoints() == 3; }, 120s))
      << server_->err() << agent_->err() << ready_pods() << " ready, " << ready_endpoints()
      << " endpoints; " << get_json("/api/v1/namespaces/default/pods/pinned").dump();
  ASSERT_TRUE(eventually([&] { return service_answers(); }, 30s));

  const auto pods_before = uids("/api/v1/namespaces/default/pods");
  const auto rcs_before = uids("/api/v1/namespaces/default/replicationcontrollers");
  const auto svcs_before = uids("/api/v1/namespaces/default/services");
  const auto nodes_before = uids("/api/v1/nodes");
  const auto containers_before = containers();
  ASSERT_EQ(pods_before.size(), 4u);
  ASSERT_EQ(containers_before.size(), 8u);  // a sandbox and an app container per pod

  server_->kill();  // SIGKILL: no teardown, containers keep running
  ASSERT_EQ(http_request(api_port_, "GET", "/api/v1/nodes").status, 0);
  start_server();
  ASSERT_NE(server_->err().find("recovered up to resourceVersion"), std::string::npos)
      << server_->err();

  // The remote agent reconnects: its heartbeats reach the new server.
  const std::string remote_rv =
      get_json("/api/v1/nodes/remote-0")["metadata"].value("resourceVersion", "");
  EXPECT_TRUE(eventually([&] {
    json n = get_json("/api/v1/nodes/remote-0");
    return n.is_object() && n["metadata"].value("resourceVersion", "") != remote_rv;
  }, 60s)) << agent_->err();
  ASSERT_TRUE(eventually([&] { return ready_pods() == 4 && ready_endpoints() == 3; }, 60s))
      << server_->err();
  EXPECT_TRUE(eventually([&] { return service_answers(); }, 30s));

  // Nothing lost, nothing duplicated, nothing restarted.
  EXPECT_EQ(uids("/api/v1/namespaces/default/pods"), pods_before);
  EXPECT_EQ(uids("/api/v1/namespaces/default/replicationcontrollers"), rcs_before);
  EXPECT_EQ(uids("/api/v1/namespaces/default/services"), svcs_before);
  EXPECT_EQ(uids("/api/v1/nodes"), nodes_before);
  EXPECT_EQ(containers(), containers_before);
  json pods = get_json("/api/v1/namespaces/default/pods");
  for (const auto& p : pods.value("items", json::array())) {
    json status = p.value("status", json::object());
    for (const auto& cs : status.value("containerStatuses", json::array())) {
      EXPECT_EQ(cs.value("restartCount", -1), 0) << p.dump();
    }
  }

  // The restarted control plane still acts: a scale-up gets a fourth replica.
  json scale = get_json("/api/v1/namespaces/default/replicationcontrollers/web/scale");
  ASSERT_TRUE(scale.is_object());
  scale["spec"]["replicas"] = 4;
  ASSERT_EQ(http_request(api_port_, "PUT",
                         "/api/v1/namespaces/default/replicationcontrollers/web/scale",
                         scale.dump())
                .status,
            200);
  EXPECT_TRUE(eventually([&] { return ready_pods() == 5 && ready_endpoints() == 4; }, 90s));
  auto after = containers();
  for (const auto& [id, started] : containers_before) {
    ASSERT_TRUE(after.count(id)) << id;
    EXPECT_EQ(after.at(id), started) << id;
  }
}

}  // namespace
}  // namespace flotilla::serve_restart_test
