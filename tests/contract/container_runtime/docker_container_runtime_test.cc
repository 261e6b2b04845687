// The ContainerRuntime contract on DockerContainerRuntime, in real time, against
// the local Docker engine (label "live"). Each test gets its own logical node and
// its own network, and removes every container, volume and network it made, also
// when it fails. FLOTILLA_SKIP_DOCKER=1 skips (and says so); otherwise a daemon
// that cannot be reached fails the test with the daemon error.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>

#include "backends/docker/docker_container_runtime.h"
#include "backends/live/asio_event_loop.h"
#include "tests/contract/container_runtime/container_runtime_contract.h"

namespace flotilla::contract {
namespace {

std::string unique_node() {
  static std::atomic<int> n{0};
  return "contract-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

class DockerHarness final : public ContainerRuntimeHarness {
 public:
  static std::unique_ptr<DockerHarness> make(std::string* error) {
    auto h = std::unique_ptr<DockerHarness>(new DockerHarness());
    docker::DockerRuntimeOptions o;
    o.node = h->node_;
    o.network = "flotilla-test-" + h->node_;
    // Test networks get small subnets of their own, so test processes running
    // in parallel never clash with each other or with a live cluster.
    o.subnets.clear();
    const int start = static_cast<int>(::getpid() % 200);
    for (int i = 0; i < 56; ++i) {
      o.subnets.push_back("10.221." + std::to_string((start + i) % 256) + ".0/24");
    }
    h->network_ = o.network;
    auto rt = docker::DockerContainerRuntime::create(h->loop_, o);
    if (!rt.is_ok()) {
      *error = rt.status().to_string();
      return nullptr;
    }
    h->runtime_ = std::move(rt).value();
    return h;
  }
  ~DockerHarness() override {
    runtime_.reset();
    Status s = docker::remove_all_flotilla_objects(client_, node_);
    EXPECT_TRUE(s.is_ok()) << "cleanup: " << s.to_string();
    auto n = client_.call("DELETE", "/networks/" + docker::url_encode(network_));
    EXPECT_TRUE(n.is_ok() || n.status().code() == StatusCode::kNotFound)
        << "cleanup: " << n.status().to_string();
  }

  EventLoop& loop() override { return loop_; }
  ContainerRuntime& runtime() override { return *runtime_; }
  bool run_until(const std::function<bool()>& done, Duration timeout) override {
    return loop_.run_until(done, timeout);
  }
  ContainerConfig server(const std::string& name) override {
    ContainerConfig c;
    c.name = name;
    c.image = "flotilla/demo-server:latest";
    c.env = {{"PORT", "8080"}};
    return c;
  }
  ContainerConfig exits_with(const std::string& name, int code) override {
    return shell(name, "sleep 0.3; exit " + std::to_string(code));
  }
  ContainerConfig ignores_term(const std::string& name) override {
    return shell(name, "trap '' TERM; while :; do sleep 1; done");
  }
  std::string missing_image() override { return "flotilla/missing-contract:1.0"; }
  std::vector<std::string> exec_exiting(int code) override {
    return {"sh", "-c", "exit " + std::to_string(code)};
  }
  bool exec_models_exit_codes() const override { return true; }
  Duration op_timeout() const override { return std::chrono::seconds(30); }

 private:
  DockerHarness() : node_(unique_node()) {}
  static ContainerConfig shell(const std::string& name, const std::string& script) {
    ContainerConfig c;
    c.name = name;
    c.image = "flotilla/base:latest";
    c.command = {"sh", "-c", script};
    return c;
  }
  std::string node_;
  std::string network_;
  live::AsioEventLoop loop_;
  docker::DockerClient client_;
  std::unique_ptr<docker::DockerContainerRuntime> runtime_;
};

struct DockerFactory {
  static std::unique_ptr<ContainerRuntimeHarness> make(std::string* skip) {
    if (const char* s = std::getenv("FLOTILLA_SKIP_DOCKER"); s != nullptr && std::string(s) == "1") {
      *skip = "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
      return nullptr;
    }
    std::string error;
    auto h = DockerHarness::make(&error);
    if (!h) {
      ADD_FAILURE() << "Docker is needed for live tests (run scripts/ensure-docker.sh, or set "
                       "FLOTILLA_SKIP_DOCKER=1 to skip them): "
                    << error;
      *skip = "no Docker: " + error;
    }
    return h;
  }
};

INSTANTIATE_TYPED_TEST_SUITE_P(Docker, ContainerRuntimeContractTest,
                               ::testing::Types<DockerFactory>);

}  // namespace
}  // namespace flotilla::contract
