// The real `flotilla` binary, end to end on Docker: `flotilla live SCENARIO
// --out DIR` on a small scenario (2 web pods, a Service, traffic, and a
// stochastic container fault run with the simulator's model on real time)
// exits 0 and writes summary.json ("backend": "docker"), trace.pb and
// report.html; then `flotilla live down` leaves no Flotilla container, volume
// or network on the host. `live down` removes every Flotilla object on the
// host, so CTest runs this test alone (RUN_SERIAL). FLOTILLA_SKIP_DOCKER=1
// skips it, and says so.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "analysis/trace_io.h"
#include "backends/docker/docker_container_runtime.h"
#include "core/api/trace.pb.h"

#ifndef FLOTILLA_BIN
#error "FLOTILLA_BIN (the flotilla binary's path) must be defined by the build"
#endif

namespace flotilla {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

bool skip_docker() {
  const char* s = std::getenv("FLOTILLA_SKIP_DOCKER");
  return s != nullptr && std::string(s) == "1";
}

// Runs a command line; returns its exit code (-1 if it did not exit) and output.
int run(const std::string& cmd, std::string* output) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

constexpr const char* kScenario = R"(name: live-cli
seed: 3
duration: 45s
cluster:
  timing: fast
  node_groups:
    - {name: node, count: 2, capacity: {cpu: "2", memory: 4Gi}}
workload:
  - apply:
      - apiVersion: v1
        kind: ReplicationController
        metadata: {name: web}
        spec:
          replicas: 2
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
traffic:
  - service: web
    start: 10s
    port: 80
    arrival: {poisson: {rate: 10}}
    timeout: 1s
    retries: 2
faults:
  # Every web container crashes 15 s after each start.
  - {stochastic: {containers: "app=web", ttf: {constant: 15s}}}
assertions:
  - availability: {service: web, min: 0.5}
)";

int count(const StatusOr<json>& j) { return j.is_ok() && j->is_array() ? static_cast<int>(j->size()) : -1; }

TEST(LiveCli, LiveRunWritesResultsAndLiveDownLeavesNothing) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  const fs::path dir = fs::temp_directory_path() / ("flotilla-live-cli-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path scenario = dir / "live-cli.yaml";
  std::ofstream(scenario) << kScenario;
  const fs::path out = dir / "out";

  std::string output;
  const int code = run(std::string(FLOTILLA_BIN) + " live " + scenario.string() + " --out " +
                           out.string(),
                       &output);
  std::string down_output;
  const int down = run(std::string(FLOTILLA_BIN) + " live down", &down_output);

  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(fs::exists(out / "trace.pb"));
  EXPECT_TRUE(fs::exists(out / "report.html")) << output;
  ASSERT_TRUE(fs::exists(out / "summary.json")) << output;
  std::ifstream in(out / "summary.json");
  const json summary = json::parse(in, nullptr, false);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["backend"], "docker");
  EXPECT_EQ(summary["scenario"], "live-cli");
  EXPECT_EQ(summary["live"]["cleanup"], "ok");
  EXPECT_GT(summary["traffic"]["served"].get<int64_t>(), 100);
  // The stochastic fault ran: containers crashed and were restarted.
  int crashes = 0;
  std::set<std::string> crashed_pods;
  Status read = analysis::read_trace((out / "trace.pb").string(), [&](const trace::Record& r) {
    if (r.type() == trace::FAULT_INJECTED && r.reason() == "container_crash") {
      ++crashes;
      crashed_pods.insert(r.name());
      EXPECT_EQ(r.exit_code(), 137);
    }
    return true;
  });
  ASSERT_TRUE(read.is_ok()) << read.message();
  EXPECT_GE(crashes, 2) << output;
  EXPECT_EQ(crashed_pods.size(), 2u);
  EXPECT_GE(summary["pods"]["restarts"].get<int64_t>(), 2);
  EXPECT_EQ(summary["faults_injected"].get<int64_t>(), crashes);
  for (const auto& w : summary["live"]["warnings"]) ADD_FAILURE() << "warning: " << w;

  // `flotilla live down`: nothing labelled as Flotilla's is left.
  EXPECT_EQ(down, 0) << down_output;
  docker::DockerClient client;
  const std::string f =
      docker::encode_filters(json{{"label", json::array({std::string(docker::kManagedLabel) + "=true"})}});
  EXPECT_EQ(count(client.call("GET", "/containers/json?all=1&filters=" + f)), 0);
  EXPECT_EQ(count(client.call("GET", "/networks?filters=" + f)), 0);
  auto vols = client.call("GET", "/volumes?filters=" + f);
  ASSERT_TRUE(vols.is_ok()) << vols.status().message();
  EXPECT_TRUE((*vols)["Volumes"].is_null() || (*vols)["Volumes"].empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace flotilla
