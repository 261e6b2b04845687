// DockerContainerRuntime beyond the port contract: labels and hardening of what
// it creates, pod IPs that really serve, volumes, node isolation, adoption after
// a restart, logs, and the error when the daemon cannot be reached. Live tests
// (label "live") clean up everything they create, also when they fail.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>

#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"

namespace flotilla::docker {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

bool skip_docker() {
  const char* s = std::getenv("FLOTILLA_SKIP_DOCKER");
  return s != nullptr && std::string(s) == "1";
}

// One HTTP GET to ip:port; the body, or nullopt when nothing answered.
std::optional<std::string> http_get(const std::string& ip, int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return std::nullopt;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t body = out.find("\r\n\r\n");
  if (out.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos) return std::nullopt;
  return out.substr(body + 4);
}

TEST(DockerClientTest, AnUnreachableDaemonIsUnavailableWithHowToStartIt) {
  live::AsioEventLoop loop;
  DockerRuntimeOptions o;
  o.node = "n";
  o.socket_path = "/tmp/flotilla-no-such-docker.sock";
  auto rt = DockerContainerRuntime::create(loop, o);
  ASSERT_FALSE(rt.is_ok());
  EXPECT_EQ(rt.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(rt.status().message().find("cannot reach the Docker daemon at "
                                       "/tmp/flotilla-no-such-docker.sock"),
            std::string::npos)
      << rt.status().message();
  EXPECT_NE(rt.status().message().find("dockerd"), std::string::npos);
}

TEST(DockerClientTest, DemuxSplitsMultiplexedFramesAcrossReads) {
  std::string carry;
  const std::string frame1 = std::string("\x01\0\0\0\0\0\0\x06", 8) + "hello\n";
  const std::string frame2 = std::string("\x02\0\0\0\0\0\0\x04", 8) + "err\n";
  const std::string all = frame1 + frame2;
  std::string out = demux_stream(all.substr(0, 10), carry);
  out += demux_stream(all.substr(10), carry);
  EXPECT_EQ(out, "hello\nerr\n");
  EXPECT_TRUE(carry.empty());
}

class DockerRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
    static std::atomic<int> n{0};
    node_ = "rt-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    network_ = "flotilla-test-" + node_;
    rt_ = make(node_);
    ASSERT_NE(rt_, nullptr);
    sub_ = rt_->subscribe([this](const ContainerEvent& e) { events_.push_back(e); });
  }
  void TearDown() override {
    if (skip_docker()) return;
    sub_.reset();
    rt_.reset();
    other_.reset();
    for (const std::string& node : {node_, node_ + "-other"}) {
      Status s = remove_all_flotilla_objects(client_, node);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    for (const std::string& v : shared_volumes_) {
      (void)client_.call("DELETE", "/volumes/" + url_encode(v) + "?force=1");
    }
    (void)client_.call("DELETE", "/networks/" + url_encode(network_));
  }

  std::unique_ptr<DockerContainerRuntime> make(const std::string& node) {
    DockerRuntimeOptions o;
    o.node = node;
    o.network = network_;
    o.subnets.clear();
    for (int i = 0; i < 56; ++i) {
      o.subnets.push_back("10.222." + std::to_string((::getpid() + i) % 256) + ".0/24");
    }
    auto rt = DockerContainerRuntime::create(loop_, o);
    EXPECT_TRUE(rt.is_ok()) << rt.status().to_string();
    return rt.is_ok() ? std::move(rt).value() : nullptr;
  }

  template <typename T>
  T await(const std::function<void(Callback<T>)>& start) {
    std::optional<T> r;
    start([&](T v) { r.emplace(std::move(v)); });
    EXPECT_TRUE(loop_.run_until([&] { return r.has_value(); }, seconds(30)));
    if (!r) return T(Status(StatusCode::kDeadlineExceeded, "no result"));
    return std::move(*r);
  }

  PodSandboxStatus sandbox(DockerContainerRuntime& rt, PodSandboxConfig c) {
    auto s = await<StatusOr<PodSandboxStatus>>([&](auto cb) { rt.run_pod_sandbox(c, cb); });
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? *s : PodSandboxStatus{};
  }
  std::string start(const std::string& sandbox_id, const ContainerConfig& c) {
    auto id = await<StatusOr<std::string>>(
        [&](auto cb) { rt_->start_container(sandbox_id, c, cb); });
    EXPECT_TRUE(id.is_ok()) << id.status().to_string();
    return id.is_ok() ? *id : std::string();
  }
  static PodSandboxConfig pod(const std::string& name) {
    PodSandboxConfig c;
    c.pod_uid = "uid-" + name;
    c.ns = "default";
    c.name = name;
    c.hostname = name;
    c.labels = {{"app", "web"}};
    return c;
  }
  json inspect(const std::string& id) {
    auto j = client_.call("GET", "/containers/" + id + "/json");
    EXPECT_TRUE(j.is_ok()) << j.status().to_string();
    return j.is_ok() ? *j : json::object();
  }

  live::AsioEventLoop loop_;
  DockerClient client_;
  std::string node_, network_;
  std::unique_ptr<DockerContainerRuntime> rt_, other_;
  std::unique_ptr<RuntimeSubscription> sub_;
  std::vector<ContainerEvent> events_;
  std::vector<std::string> shared_volumes_;
};

TEST_F(DockerRuntimeTest, ContainersAreLabelledAndHardened) {
  PodSandboxStatus sb = sandbox(*rt_, pod("hard"));
  ContainerConfig c;
  c.name = "web";
  c.image = "flotilla/demo-server:latest";
  c.cpu_limit_millis = 500;
  c.cpu_request_millis = 250;
  c.memory_limit_bytes = 64 << 20;
  const std::string id = start(sb.id, c);
  ASSERT_FALSE(id.empty());
  for (const std::string& cid : {sb.id, id}) {
    json j = inspect(cid);
    const json& labels = j["Config"]["Labels"];
    EXPECT_EQ(labels.value("flotilla.io/managed", ""), "true");
    EXPECT_EQ(labels.value("flotilla.io/node", ""), node_);
    EXPECT_EQ(labels.value("flotilla.io/pod-uid", ""), "uid-hard");
    EXPECT_EQ(labels.value("flotilla.io/pod-name", ""), "hard");
    EXPECT_EQ(labels.value("flotilla.io/namespace", ""), "default");
    const json& host = j["HostConfig"];
    EXPECT_FALSE(host.value("Privileged", true));
    EXPECT_EQ(host["CapDrop"], json::array({"ALL"}));
    EXPECT_EQ(host["SecurityOpt"], json::array({"no-new-privileges:true"}));
    EXPECT_EQ(host["RestartPolicy"].value("Name", ""), "no");
    for (const json& b : host.value("Binds", json::array())) {
      EXPECT_EQ(b.get<std::string>().find("docker.sock"), std::string::npos);
    }
  }
  json app = inspect(id);
  EXPECT_EQ(app["Config"]["Labels"].value("flotilla.io/container", ""), "web");
  EXPECT_EQ(app["HostConfig"].value("NetworkMode", ""), "container:" + sb.id);
  EXPECT_EQ(app["HostConfig"].value("NanoCpus", int64_t{0}), 500'000'000);
  EXPECT_EQ(app["HostConfig"].value("Memory", int64_t{0}), int64_t{64} << 20);
  EXPECT_GT(app["HostConfig"].value("PidsLimit", int64_t{0}), 0);
  EXPECT_FALSE(app["HostConfig"]["CapAdd"].dump().find("SYS_ADMIN") != std::string::npos);
}

TEST_F(DockerRuntimeTest, ThePodIpServesAndAnswersWithThePodName) {
  PodSandboxStatus sb = sandbox(*rt_, pod("web-1"));
  ContainerConfig c;
  c.name = "web";
  c.image = "flotilla/demo-server:latest";
  ASSERT_FALSE(start(sb.id, c).empty());
  std::optional<std::string> body;
  // Waits (with a deadline) for the server to listen.
  loop_.run_until(
      [&] {
        body = http_get(sb.ip, 8080, "/");
        return body.has_value();
      },
      seconds(20));
  ASSERT_TRUE(body.has_value()) << "nothing answered on " << sb.ip << ":8080";
  EXPECT_EQ(*body, "web-1\n");
  EXPECT_EQ(http_get(sb.ip, 8080, "/healthz").value_or(""), "ok\n");
}

TEST_F(DockerRuntimeTest, EmptyDirGoesWithThePodSharedVolumeStays) {
  PodSandboxConfig p = pod("vols");
  const std::string shared = "contract-" + node_;
  shared_volumes_.push_back("flotilla-shared-" + shared);
  p.volumes = {{"scratch", VolumeConfig::Type::kEmptyDir, ""},
               {"data", VolumeConfig::Type::kShared, shared}};
  PodSandboxStatus sb = sandbox(*rt_, p);
  ContainerConfig c;
  c.name = "writer";
  c.image = "flotilla/base:latest";
  c.command = {"sh", "-c", "echo hi > /scratch/f && echo shared > /data/f && sleep 600"};
  c.mounts = {{"scratch", "/scratch", false}, {"data", "/data", false}};
  const std::string id = start(sb.id, c);
  ASSERT_FALSE(id.empty());
  auto rc = await<StatusOr<int>>([&](auto cb) {
    rt_->exec(id, {"sh", "-c", "test -f /scratch/f && test -f /data/f"}, seconds(10), cb);
  });
  ASSERT_TRUE(rc.is_ok()) << rc.status().to_string();
  EXPECT_EQ(*rc, 0);
  auto volumes = [&](const std::string& label) {
    json f = {{"label", json::array({label})}};
    auto v = client_.call("GET", "/volumes?filters=" + encode_filters(f));
    return v.is_ok() && (*v)["Volumes"].is_array() ? (*v)["Volumes"].size() : size_t{0};
  };
  EXPECT_EQ(volumes("flotilla.io/pod-uid=uid-vols"), 1u);
  Status s = await<Status>([&](auto cb) { rt_->remove_pod_sandbox(sb.id, seconds(1), cb); });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(volumes("flotilla.io/pod-uid=uid-vols"), 0u);
  EXPECT_EQ(volumes("flotilla.io/shared-volume=" + shared), 1u);
}

TEST_F(DockerRuntimeTest, ANodeSeesOnlyItsOwnPodsAndARestartAdoptsThem) {
  PodSandboxStatus mine = sandbox(*rt_, pod("mine"));
  ContainerConfig c;
  c.name = "web";
  c.image = "flotilla/demo-server:latest";
  const std::string cid = start(mine.id, c);
  other_ = make(node_ + "-other");
  ASSERT_NE(other_, nullptr);
  PodSandboxStatus theirs = sandbox(*other_, pod("theirs"));
  auto listed = await<StatusOr<std::vector<PodSandboxStatus>>>(
      [&](auto cb) { rt_->list_pod_sandboxes(cb); });
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, mine.id);
  // Flotilla restarts: a new runtime for the node finds the pod and its container.
  sub_.reset();
  rt_.reset();
  rt_ = make(node_);
  ASSERT_NE(rt_, nullptr);
  listed = await<StatusOr<std::vector<PodSandboxStatus>>>(
      [&](auto cb) { rt_->list_pod_sandboxes(cb); });
  ASSERT_TRUE(listed.is_ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].ip, mine.ip);
  ASSERT_EQ((*listed)[0].containers.size(), 1u);
  EXPECT_EQ((*listed)[0].containers[0].id, cid);
  EXPECT_EQ((*listed)[0].containers[0].state, ContainerState::kRunning);
  EXPECT_GT((*listed)[0].containers[0].started_at, kTimeZero);
}

TEST_F(DockerRuntimeTest, LogsAreKeptPerContainer) {
  PodSandboxStatus sb = sandbox(*rt_, pod("logs"));
  ContainerConfig c;
  c.name = "talker";
  c.image = "flotilla/base:latest";
  c.command = {"sh", "-c", "echo hello; echo oops >&2"};
  const std::string id = start(sb.id, c);
  ASSERT_TRUE(loop_.run_until(
      [&] {
        for (const auto& e : events_) {
          if (e.type == ContainerEvent::Type::kExited && e.container.id == id) return true;
        }
        return false;
      },
      seconds(20)));
  std::string text;
  std::optional<Status> done;
  auto stream = rt_->logs(id, false, [&](std::string s) { text += s; },
                          [&](Status s) { done = s; });
  ASSERT_TRUE(loop_.run_until([&] { return done.has_value(); }, seconds(20)));
  EXPECT_TRUE(done->is_ok()) << done->to_string();
  EXPECT_NE(text.find("hello\n"), std::string::npos) << text;
  EXPECT_NE(text.find("oops\n"), std::string::npos) << text;
}

TEST_F(DockerRuntimeTest, AContainerOverItsMemoryLimitIsOomKilled) {
  PodSandboxStatus sb = sandbox(*rt_, pod("oom"));
  ContainerConfig c;
  c.name = "hog";
  c.image = "flotilla/base:latest";
  c.memory_limit_bytes = 16 << 20;
  // Holds ever more memory in a shell variable until the kernel kills it.
  c.command = {"sh", "-c", "x=a; while :; do x=$x$x; done"};
  const std::string id = start(sb.id, c);
  ASSERT_FALSE(id.empty());
  const ContainerEvent* oom = nullptr;
  loop_.run_until(
      [&] {
        for (const auto& e : events_) {
          if (e.container.id == id && e.type != ContainerEvent::Type::kStarted) oom = &e;
        }
        return oom != nullptr;
      },
      seconds(30));
  ASSERT_NE(oom, nullptr) << "the container did not end";
  EXPECT_EQ(oom->type, ContainerEvent::Type::kOomKilled);
  EXPECT_EQ(oom->container.reason, "OOMKilled");
  EXPECT_EQ(oom->container.exit_code, 137);
}

}  // namespace
}  // namespace flotilla::docker
