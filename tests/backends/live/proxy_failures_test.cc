// The Service proxy under failures, live on Docker: an RC of 3 demo-server
// pods behind a Service, steady HTTP load from the host with wrk through the
// TcpServiceProxy (127.0.0.1:<host port>), and
//  (a) SIGKILL of one backend container every 5 s: under 0.1% failed requests;
//  (b) scaling the RC down (3 -> 2, then back, again and again): the deleted
//      pod leaves Endpoints first, its server drains (SHUTDOWN_DELAY_MS, then
//      Connection: close and exit) before it stops: 0 failed requests.
// wrk counts socket errors (connect/read/write/timeout) and non-2xx answers;
// both are failures here. Each test waits on conditions with the run's
// duration as its deadline and leaves no container, volume or network.
// scripts/bench-proxy-failures.sh runs the same tests longer, via the
// FLOTILLA_PF_* variables below. FLOTILLA_SKIP_DOCKER=1 skips them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/docker/docker_client.h"
#include "backends/docker/docker_container_runtime.h"
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

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

bool env_keep_alive(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::string(v) == "keepalive";
}

std::string source_dir() {
  const char* d = std::getenv("FLOTILLA_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

std::filesystem::path work_dir(const std::string& name) {
  auto dir = flotilla::testing::scratch_dir("proxyfail", name);
  std::filesystem::create_directories(dir);
  return dir;
}

// An RC of 3 demo-server pods and a Service (HTTP GETs: the proxy may replay a
// request a crashed backend left unanswered). The server keeps accepting for
// SHUTDOWN_DELAY_MS after SIGTERM (a preStop sleep of its own). Restarts are
// backed off by at most 1 s, so a killed pod is back before it is killed again
// (the proxy is under test here, not the crash-loop backoff).
std::string scenario_text(int shutdown_delay_ms, bool retry_unanswered) {
  return R"(
name: proxy-failures
duration: 600s
cluster:
  timing: fast
  timing_overrides: {container_backoff_max: 1s}
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
              terminationGracePeriodSeconds: 10
              containers:
                - name: web
                  image: flotilla/demo-server
                  env: [{name: SHUTDOWN_DELAY_MS, value: ")" +
         std::to_string(shutdown_delay_ms) + R"("}]
                  ports: [{name: http, containerPort: 8080}]
                  readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
      - apiVersion: v1
        kind: Service
        metadata:
          name: web
          annotations: {flotilla.io/proxy-retry-unanswered: ")" +
         std::string(retry_unanswered ? "true" : "false") + R"("}
        spec:
          selector: {app: web}
          ports: [{port: 80, targetPort: http}]
)";
}

// wrk's own accounting, printed by the Lua script's done().
struct WrkResult {
  bool ran = false;
  std::string output;
  int64_t requests = 0;  // complete responses (any status)
  int64_t connect = 0, read = 0, write = 0, timeout = 0, status = 0;
  double duration_s = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;

  int64_t failed() const { return connect + read + write + timeout + status; }
  int64_t attempted() const { return requests + connect + read + write + timeout; }
  double failed_rate() const {
    return attempted() == 0 ? 1.0 : static_cast<double>(failed()) / static_cast<double>(attempted());
  }
  double rate() const { return duration_s > 0 ? static_cast<double>(requests) / duration_s : 0; }
  std::string line() const {
    std::ostringstream o;
    o << "requests=" << attempted() << " failed=" << failed() << " (connect " << connect
      << ", read " << read << ", write " << write << ", timeout " << timeout << ", non-2xx "
      << status << ") failed_rate=" << failed_rate() * 100 << "% rate=" << rate()
      << "/s p50=" << p50_ms << "ms p99=" << p99_ms << "ms max=" << max_ms << "ms";
    return o.str();
  }
};

// A delay() per request paces each connection (wrk has no fixed-rate mode):
// rate ~= connections / (delay + latency).
constexpr const char* kWrkScript = R"(
local delay_ms = 0
function init(args) delay_ms = tonumber(args[1]) or 0 end
function delay() return delay_ms end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d connect=%d read=%d write=%d timeout=%d status=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, e.connect, e.read, e.write, e.timeout, e.status, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
)";

WrkResult run_wrk(const std::filesystem::path& dir, const NetEndpoint& at, int seconds,
                  int connections, int delay_ms, bool keep_alive) {
  const auto script = dir / "pace.lua";
  std::ofstream(script) << kWrkScript;
  std::string cmd = "wrk -t2 -c" + std::to_string(connections) + " -d" + std::to_string(seconds) +
                    "s --timeout 2s -s " + script.string() +
                    (keep_alive ? "" : " -H 'Connection: close'") + " http://" + at.ip + ":" +
                    std::to_string(at.port) + "/ -- " + std::to_string(delay_ms) + " 2>&1";
  WrkResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int rc = ::pclose(p);
  auto pos = r.output.find("WRK requests=");
  if (rc != 0 || pos == std::string::npos) return r;
  long long req, con, rd, wr, to, st, dur, p50, p99, mx;
  if (std::sscanf(r.output.c_str() + pos,
                  "WRK requests=%lld connect=%lld read=%lld write=%lld timeout=%lld status=%lld "
                  "duration_us=%lld p50_us=%lld p99_us=%lld max_us=%lld",
                  &req, &con, &rd, &wr, &to, &st, &dur, &p50, &p99, &mx) != 10) {
    return r;
  }
  r.ran = true;
  r.requests = req;
  r.connect = con;
  r.read = rd;
  r.write = wr;
  r.timeout = to;
  r.status = st;
  r.duration_s = static_cast<double>(dur) / 1e6;
  r.p50_ms = static_cast<double>(p50) / 1e3;
  r.p99_ms = static_cast<double>(p99) / 1e3;
  r.max_ms = static_cast<double>(mx) / 1e3;
  return r;
}

// What the store says about the web pods, read on the loop thread.
struct WebState {
  int ready = 0;                    // Ready, not terminating
  int live = 0;                     // not terminating
  int terminating = 0;
  std::set<std::string> endpoints;  // ip of every ready address
  std::vector<std::string> terminating_in_endpoints;  // terminating pods still in Endpoints
};

WebState read_web(Store& store) {
  WebState st;
  auto eps = store.get(api::Kind::kEndpoints, "default", "web");
  if (eps.is_ok()) {
    for (const auto& s : api::as<api::Endpoints>(*eps)->subsets()) {
      for (const auto& a : s.addresses()) st.endpoints.insert(a.ip());
    }
  }
  auto pods = store.list(api::Kind::kPod, ListOptions{});
  if (!pods.is_ok()) return st;
  for (const auto& o : pods->items) {
    const auto& p = *api::as<api::Pod>(o);
    if (p.metadata().has_deletion_timestamp()) {
      ++st.terminating;
      if (!p.status().pod_ip().empty() && st.endpoints.count(p.status().pod_ip()) != 0) {
        st.terminating_in_endpoints.push_back(p.metadata().name());
      }
      continue;
    }
    ++st.live;
    for (const auto& c : p.status().conditions()) {
      if (c.type() == "Ready" && c.status() == "True") ++st.ready;
    }
  }
  return st;
}

Status scale_rc(Store& store, int replicas) {
  auto got = store.get(api::Kind::kReplicationController, "default", "web");
  if (!got.is_ok()) return got.status();
  auto rc = std::make_shared<api::ReplicationController>(*api::as<api::ReplicationController>(*got));
  rc->mutable_spec()->set_replicas(replicas);
  return store.update(rc).status();
}

LiveRunOptions isolated_options(const std::string& tag, int port_offset) {
  LiveRunOptions o;
  o.docker_network = "flotilla-" + tag + "-" + std::to_string(::getpid());
  o.node_label_prefix = tag + std::to_string(::getpid()) + "-";
  o.host_port_offset = port_offset;
  o.report = false;
  o.handle_signals = false;
  o.watch_period = milliseconds(200);
  return o;
}

void expect_nothing_left(const LiveRunOptions& o, int nodes) {
  std::vector<std::string> docker_nodes;
  for (int i = 0; i < nodes; ++i) docker_nodes.push_back(o.node_label_prefix + "node-" + std::to_string(i));
  auto left = live_leftovers(o.docker_socket, docker_nodes, o.docker_network);
  ASSERT_TRUE(left.is_ok()) << left.status().message();
  EXPECT_EQ(left->containers, 0);
  EXPECT_EQ(left->volumes, 0);
  EXPECT_EQ(left->networks, 0);
}

// SIGKILLs one running app container of the run (by its node-label prefix)
// every `period`, round-robin over pod names, until `stop` is set.
class Killer {
 public:
  Killer(std::string node_prefix, std::chrono::milliseconds period)
      : prefix_(std::move(node_prefix)), period_(period) {}

  void run() {
    docker::DockerClient client;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      // The experiment's cadence, not a wait for a condition.
      if (cv_.wait_for(lock, period_, [this] { return stop_; })) return;
      lock.unlock();
      kill_one(client);
      lock.lock();
    }
  }
  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }

  std::atomic<int> kills{0};
  std::vector<std::string> errors;  // only touched by run()'s thread until joined

 private:
  void kill_one(docker::DockerClient& client) {
    json filters = {{"label", json::array({std::string(docker::kRoleLabel) + "=app"})},
                    {"status", json::array({"running"})}};
    auto cs = client.call("GET", "/containers/json?filters=" + docker::encode_filters(filters));
    if (!cs.is_ok()) {
      errors.push_back(cs.status().message());
      return;
    }
    std::map<std::string, std::string> by_pod;  // pod name -> container id
    for (const json& c : *cs) {
      const json& labels = c["Labels"];
      const std::string node = labels.value(std::string(docker::kNodeLabel), "");
      if (node.rfind(prefix_, 0) != 0) continue;
      by_pod[labels.value(std::string(docker::kPodNameLabel), "")] = c["Id"].get<std::string>();
    }
    if (by_pod.empty()) {
      errors.push_back("no running backend to kill");
      return;
    }
    auto next = by_pod.upper_bound(last_);
    if (next == by_pod.end()) next = by_pod.begin();
    last_ = next->first;
    auto k = client.call("POST", "/containers/" + next->second + "/kill");
    if (!k.is_ok()) {
      errors.push_back(k.status().message());
      return;
    }
    ++kills;
  }

  std::string prefix_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string last_;
};

struct LoadSpec {
  int seconds;
  int connections;
  int delay_ms;
  bool keep_alive;
};

// Waits for 3 ready endpoints, then runs wrk on its own thread; `on_load` is
// called on every tick while wrk runs; the run stops when wrk is done.
class Harness {
 public:
  Harness(LoadSpec load, std::filesystem::path dir) : load_(load), dir_(std::move(dir)) {}
  ~Harness() { join(); }

  std::function<void(LiveRunView&, const WebState&)> on_load;
  std::function<void()> on_load_start;

  void tick(LiveRunView& v) {
    const WebState st = read_web(v.store());
    switch (phase_) {
      case Phase::kWaitReady: {
        if (st.ready != 3 || st.endpoints.size() != 3 || st.terminating != 0) {
          stable_ = 0;
          return;
        }
        auto addr = v.service_address("default/web", 80);
        if (!addr.is_ok() || ++stable_ < 3) return;
        addr_ = *addr;
        phase_ = Phase::kLoad;
        wrk_thread_ = std::thread([this] {
          result_ = run_wrk(dir_, addr_, load_.seconds, load_.connections, load_.delay_ms,
                            load_.keep_alive);
          wrk_done_ = true;
        });
        if (on_load_start) on_load_start();
        return;
      }
      case Phase::kLoad:
        if (wrk_done_) {
          phase_ = Phase::kDone;
          v.stop();
          return;
        }
        if (on_load) on_load(v, st);
        return;
      case Phase::kDone:
        return;
    }
  }

  void join() {
    if (wrk_thread_.joinable()) wrk_thread_.join();
  }
  bool done() const { return phase_ == Phase::kDone; }
  const WrkResult& result() const { return result_; }
  const NetEndpoint& address() const { return addr_; }

 private:
  enum class Phase { kWaitReady, kLoad, kDone };
  LoadSpec load_;
  std::filesystem::path dir_;
  Phase phase_ = Phase::kWaitReady;
  int stable_ = 0;
  NetEndpoint addr_;
  std::thread wrk_thread_;
  std::atomic<bool> wrk_done_{false};
  WrkResult result_;
};

void report(const std::string& name, const WrkResult& r, const std::string& extra) {
  std::cout << "PROXYFAIL " << name << ": " << r.line() << " " << extra << "\n";
  ::testing::Test::RecordProperty("requests", std::to_string(r.attempted()));
  ::testing::Test::RecordProperty("failed", std::to_string(r.failed()));
  ::testing::Test::RecordProperty("rate_per_s", std::to_string(r.rate()));
}

TEST(ProxyFailures, KillingABackendEvery5sFailsUnderOnePerMille) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  const LoadSpec load{env_int("FLOTILLA_PF_KILL_SECONDS", 32), env_int("FLOTILLA_PF_CONNECTIONS", 8),
                      env_int("FLOTILLA_PF_DELAY_MS", 40),
                      env_keep_alive("FLOTILLA_PF_KILL_MODE", false)};
  auto loaded = load_scenario_text(scenario_text(env_int("FLOTILLA_PF_SHUTDOWN_DELAY_MS", 1000),
                                                 env_int("FLOTILLA_PF_RETRY_UNANSWERED", 1) != 0),
                                   "proxy-failures.yaml", source_dir());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  LiveRunOptions lo = isolated_options("pfk", 24000);
  const auto dir = work_dir("kill");
  lo.out_dir = (dir / "out").string();
  Harness h(load, dir);
  // FLOTILLA_PF_KILL_PERIOD_MS=0: no kills (the baseline of the same load).
  const int kill_period_ms = env_int("FLOTILLA_PF_KILL_PERIOD_MS", 5000);
  Killer killer(lo.node_label_prefix, std::chrono::milliseconds(kill_period_ms));
  std::thread killer_thread;
  h.on_load_start = [&] {
    if (kill_period_ms > 0) killer_thread = std::thread([&] { killer.run(); });
  };
  lo.on_tick = [&](LiveRunView& v) { h.tick(v); };
  auto live = run_live(*loaded, lo);
  killer.stop();
  if (killer_thread.joinable()) killer_thread.join();
  h.join();
  ASSERT_TRUE(live.is_ok()) << live.status().message();

  ASSERT_TRUE(h.done()) << "the Service never had 3 ready endpoints, or wrk never finished";
  const WrkResult& r = h.result();
  ASSERT_TRUE(r.ran) << r.output;
  report("kill", r, "kills=" + std::to_string(killer.kills.load()) +
                        " mode=" + (load.keep_alive ? "keepalive" : "close"));
  EXPECT_TRUE(killer.errors.empty()) << killer.errors.front();
  // One kill every 5 s for the whole load.
  if (kill_period_ms > 0) {
    EXPECT_GE(killer.kills.load(), load.seconds * 1000 / kill_period_ms - 1);
  }
  EXPECT_GE(r.attempted(), static_cast<int64_t>(load.seconds) * 50) << r.output;
  EXPECT_LT(r.failed_rate(), 0.001) << r.line() << "\n" << r.output;
  expect_nothing_left(lo, 3);
}

TEST(ProxyFailures, ScaleDownDrainsConnectionsWithoutAFailedRequest) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  const LoadSpec load{env_int("FLOTILLA_PF_DRAIN_SECONDS", 25),
                      env_int("FLOTILLA_PF_CONNECTIONS", 8), env_int("FLOTILLA_PF_DELAY_MS", 40),
                      env_keep_alive("FLOTILLA_PF_DRAIN_MODE", true)};
  auto loaded = load_scenario_text(scenario_text(env_int("FLOTILLA_PF_SHUTDOWN_DELAY_MS", 1000),
                                                 env_int("FLOTILLA_PF_RETRY_UNANSWERED", 1) != 0),
                                   "proxy-failures.yaml", source_dir());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  LiveRunOptions lo = isolated_options("pfd", 24100);
  const auto dir = work_dir("drain");
  lo.out_dir = (dir / "out").string();
  Harness h(load, dir);

  // Scale 3 -> 2, wait until the deleted pod is gone, back to 3, wait for 3
  // ready endpoints, 2 s of steady load, again; while wrk runs.
  enum class Step { kSteady, kDown, kUp } step = Step::kSteady;
  Duration step_since{};
  int scale_downs = 0;
  std::vector<std::string> problems;
  std::set<std::string> terminating_in_endpoints;
  h.on_load_start = [&] { step_since = Duration(-1); };
  h.on_load = [&](LiveRunView& v, const WebState& st) {
    if (step_since < Duration(0)) step_since = v.elapsed();
    for (const auto& p : st.terminating_in_endpoints) terminating_in_endpoints.insert(p);
    switch (step) {
      case Step::kSteady:
        if (v.elapsed() - step_since < seconds(3)) return;
        if (Status s = scale_rc(v.store(), 2); !s.is_ok()) {
          problems.push_back("scale down: " + s.message());
          return;
        }
        step = Step::kDown;
        step_since = v.elapsed();
        return;
      case Step::kDown:
        if (st.terminating != 0 || st.live != 2 || st.endpoints.size() != 2) return;
        ++scale_downs;
        if (Status s = scale_rc(v.store(), 3); !s.is_ok()) {
          problems.push_back("scale up: " + s.message());
          return;
        }
        step = Step::kUp;
        step_since = v.elapsed();
        return;
      case Step::kUp:
        if (st.ready != 3 || st.endpoints.size() != 3) return;
        step = Step::kSteady;
        step_since = v.elapsed();
        return;
    }
  };
  lo.on_tick = [&](LiveRunView& v) { h.tick(v); };
  auto live = run_live(*loaded, lo);
  h.join();
  ASSERT_TRUE(live.is_ok()) << live.status().message();

  ASSERT_TRUE(h.done()) << "the Service never had 3 ready endpoints, or wrk never finished";
  const WrkResult& r = h.result();
  ASSERT_TRUE(r.ran) << r.output;
  report("drain", r, "scale_downs=" + std::to_string(scale_downs) +
                         " mode=" + (load.keep_alive ? "keepalive" : "close"));
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_GE(scale_downs, 1);
  // Endpoints drop a pod as soon as it is terminating, before it stops.
  EXPECT_TRUE(terminating_in_endpoints.empty()) << *terminating_in_endpoints.begin();
  EXPECT_GE(r.attempted(), static_cast<int64_t>(load.seconds) * 50) << r.output;
  EXPECT_EQ(r.failed(), 0) << r.line() << "\n" << r.output;
  expect_nothing_left(lo, 3);
}

}  // namespace
}  // namespace flotilla::scenarios
