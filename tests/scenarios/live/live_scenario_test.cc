// Both worlds, one scenario: scenarios/library/live-smoke.yaml runs in the
// simulator and live on the local Docker engine, and the outcomes a user looks
// at must agree: the same end state (3 ready replicas, 3 endpoints, the killed
// pod's restartCount 1) and failover times (node stop -> replacement Ready)
// within a stated tolerance. A second test drives the live Service from the
// host: 30 requests reach all 3 pods round-robin, and after `docker kill` of
// one pod's container requests keep succeeding and the pod comes back. Every
// run must leave no container, volume or network behind. Live tests wait on
// conditions with deadlines (the run's own duration), never fixed sleeps.
// FLOTILLA_SKIP_DOCKER=1 skips them, and says so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "analysis/trace_io.h"
#include "backends/docker/docker_container_runtime.h"
#include "backends/live/live_traffic.h"
#include "core/api/object.h"
#include "core/api/types.pb.h"
#include "scenarios/live_runner.h"
#include "scenarios/loader.h"
#include "scenarios/sim_runner.h"
#include "tests/scratch_dir.h"

namespace flotilla::scenarios {
namespace {

using nlohmann::json;

// How far apart the worlds' failover times may be: Docker's container start
// (~0.3-1 s on a loaded machine), real probe and heartbeat phases and the
// loop's jitter add up to a few seconds at most.
constexpr double kFailoverToleranceS = 5.0;

bool skip_docker() {
  const char* s = std::getenv("FLOTILLA_SKIP_DOCKER");
  return s != nullptr && std::string(s) == "1";
}

std::string source_dir() {
  const char* d = std::getenv("FLOTILLA_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

std::string out_dir(const std::string& name) {
  return flotilla::testing::scratch_dir("live-test", name).string();
}

// What a user reads off a run's trace.
struct TraceFacts {
  int endpoints_at_end = 0;                   // of default/web
  std::map<std::string, int64_t> restarts;    // pod name -> last restartCount
  std::set<std::string> deleted;              // pods deleted during the run
  double failover_s = -1;                     // kill_node -> first Ready elsewhere
  std::string stopped_node;
};

TraceFacts read_facts(const std::string& dir) {
  std::vector<trace::Record> recs;
  Status s = analysis::read_trace(dir + "/trace.pb", [&](const trace::Record& r) {
    recs.push_back(r);
    return true;
  });
  EXPECT_TRUE(s.is_ok()) << s.message();
  TraceFacts f;
  std::set<std::string> eps;
  int64_t stop_at = -1;
  for (const auto& r : recs) {
    switch (r.type()) {
      case trace::ENDPOINT_ADDED:
        if (r.service() == "default/web") eps.insert(r.endpoint());
        break;
      case trace::ENDPOINT_REMOVED:
        if (r.service() == "default/web") eps.erase(r.endpoint());
        break;
      case trace::CONTAINER_RESTARTED:
        f.restarts[r.name()] = r.value();
        break;
      case trace::POD_DELETED:
        f.deleted.insert(r.name());
        break;
      case trace::FAULT_INJECTED:
        if (r.reason() == "kill_node" && stop_at < 0) {
          stop_at = r.time_ns();
          f.stopped_node = r.node();
        }
        break;
      case trace::POD_READY:
        if (stop_at >= 0 && f.failover_s < 0 && r.node() != f.stopped_node) {
          f.failover_s = static_cast<double>(r.time_ns() - stop_at) / 1e9;
        }
        break;
      default:
        break;
    }
  }
  f.endpoints_at_end = static_cast<int>(eps.size());
  return f;
}

// The final state read from the live store just before teardown.
struct LiveEndState {
  bool seen = false;
  int ready_pods = 0;
  int endpoints = 0;
  std::map<std::string, int> restarts;  // pod -> restartCount
};

LiveEndState read_store(Store& store) {
  LiveEndState st;
  st.seen = true;
  auto pods = store.list(api::Kind::kPod, ListOptions{});
  if (pods.is_ok()) {
    for (const auto& o : pods->items) {
      const auto& p = *api::as<api::Pod>(o);
      if (p.metadata().has_deletion_timestamp()) continue;
      bool ready = false;
      for (const auto& c : p.status().conditions()) {
        if (c.type() == "Ready" && c.status() == "True") ready = true;
      }
      if (ready) ++st.ready_pods;
      int rc = 0;
      for (const auto& cs : p.status().container_statuses()) rc += cs.restart_count();
      st.restarts[p.metadata().name()] = rc;
    }
  }
  auto eps = store.get(api::Kind::kEndpoints, "default", "web");
  if (eps.is_ok()) {
    for (const auto& s : api::as<api::Endpoints>(*eps)->subsets()) st.endpoints += s.addresses_size();
  }
  return st;
}

LiveRunOptions isolated_options(const std::string& tag, int port_offset) {
  LiveRunOptions o;
  o.docker_network = "flotilla-" + tag + "-" + std::to_string(::getpid());
  o.node_label_prefix = tag + std::to_string(::getpid()) + "-";
  o.host_port_offset = port_offset;
  o.report = false;
  o.handle_signals = false;
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

TEST(LiveScenario, SmokeScenarioEndsTheSameInBothWorlds) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  auto loaded = load_scenario(source_dir() + "/scenarios/library/live-smoke.yaml");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_TRUE(loaded->warnings.empty()) << loaded->warnings.front();

  // The simulator.
  SimRunOptions so;
  so.out_dir = out_dir("sim");
  so.report = false;
  auto sim = run_simulation(*loaded, so);
  ASSERT_TRUE(sim.is_ok()) << sim.status().message();
  const TraceFacts sf = read_facts(sim->out_dir);

  // Docker, in real time.
  LiveRunOptions lo = isolated_options("ls", 31000);
  lo.out_dir = out_dir("live");
  LiveEndState end;
  lo.on_end = [&](LiveRunView& v) { end = read_store(v.store()); };
  auto live = run_live(*loaded, lo);
  ASSERT_TRUE(live.is_ok()) << live.status().message();
  const TraceFacts lf = read_facts(live->out_dir);
  EXPECT_EQ(live->summary["backend"], "docker");
  EXPECT_EQ(sim->summary["backend"], "sim");

  std::cout << "failover (node stop -> replacement Ready): sim " << sf.failover_s << " s, live "
            << lf.failover_s << " s\n";
  std::cout << "live: " << live->summary["traffic"].dump() << ", availability "
            << live->summary["services"]["default/web"]["availability"] << "\n";
  ::testing::Test::RecordProperty("failover_sim_s", std::to_string(sf.failover_s));
  ::testing::Test::RecordProperty("failover_live_s", std::to_string(lf.failover_s));

  for (const auto* r : {&*sim, &*live}) {
    const auto& s = r->summary;
    SCOPED_TRACE(s["backend"].get<std::string>());
    EXPECT_EQ(s["controllers"]["default/web"]["ready"], 3);
    EXPECT_EQ(s["controllers"]["default/web"]["desired"], 3);
    EXPECT_EQ(s["pods"]["restarts"], 1);
    EXPECT_EQ(s["pods"]["evicted"], 1);
    EXPECT_GE(s["services"]["default/web"]["requests"]["total"].get<int64_t>(), 1000);
    // Every request sent was answered or failed (a few may be in flight at the end).
    EXPECT_LE(s["traffic"]["sent"].get<int64_t>() -
                  s["traffic"]["served"].get<int64_t>() - s["traffic"]["failed"].get<int64_t>(),
              5);
    EXPECT_GE(s["traffic"]["served"].get<int64_t>(), 1000);
    EXPECT_EQ(s["faults_injected"], 2);
    for (const auto& a : r->assertions) EXPECT_TRUE(a.passed) << a.name << " = " << a.value;
  }
  for (const TraceFacts* f : {&sf, &lf}) {
    EXPECT_EQ(f->endpoints_at_end, 3);
    EXPECT_EQ(f->stopped_node, "node-0");
    // One container was killed, on a pod that lives to the end: restartCount 1.
    ASSERT_EQ(f->restarts.size(), 1u);
    EXPECT_EQ(f->restarts.begin()->second, 1);
    EXPECT_EQ(f->deleted.count(f->restarts.begin()->first), 0u);
    EXPECT_GT(f->failover_s, 0);
  }
  EXPECT_LE(std::abs(lf.failover_s - sf.failover_s), kFailoverToleranceS)
      << "sim " << sf.failover_s << " s, live " << lf.failover_s << " s";

  // The live store at the end says the same.
  ASSERT_TRUE(end.seen);
  EXPECT_EQ(end.ready_pods, 3);
  EXPECT_EQ(end.endpoints, 3);
  ASSERT_FALSE(lf.restarts.empty());
  EXPECT_EQ(end.restarts[lf.restarts.begin()->first], 1);

  expect_nothing_left(lo, 3);
}

// An RC of 3 web pods and a Service, nothing else, for the host-side test.
constexpr const char* kWebScenario = R"(
name: live-web
duration: 100s
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

// Drives the host-side checks from the live run's loop, one step at a time.
class HostClient {
 public:
  enum class Phase { kWaitReady, kRoundRobin, kKill, kDuringRecovery, kDone };

  void tick(LiveRunView& v) {
    if (busy_) return;
    switch (phase_) {
      case Phase::kWaitReady: {
        // 3 endpoints for two ticks in a row, so the proxy has synced them.
        if (read_store(v.store()).endpoints != 3) {
          stable_ = 0;
          return;
        }
        auto addr = v.service_address("default/web", 80);
        if (!addr.is_ok() || ++stable_ < 2) return;
        addr_ = *addr;
        phase_ = Phase::kRoundRobin;
        send(v, 30, &round_robin_);
        return;
      }
      case Phase::kRoundRobin:
        phase_ = Phase::kKill;
        return;
      case Phase::kKill: {
        // docker kill of one pod's app container (by its pod-uid label).
        auto pods = v.store().list(api::Kind::kPod, ListOptions{});
        if (!pods.is_ok() || pods->items.empty()) return;
        const auto& pod = *api::as<api::Pod>(pods->items.front());
        victim_ = pod.metadata().name();
        docker::DockerClient client;
        // By this run's node label too: another run of the same scenario
        // (same seed) has pods with the same UIDs.
        json filters = {{"label", json::array({std::string(docker::kPodUidLabel) + "=" + pod.metadata().uid(),
                                               std::string(docker::kNodeLabel) + "=" + node_prefix_ +
                                                   pod.spec().node_name(),
                                               std::string(docker::kRoleLabel) + "=app"})}};
        auto cs = client.call("GET", "/containers/json?filters=" + docker::encode_filters(filters));
        if (!cs.is_ok() || cs->empty()) return;
        kill_status_ = client.call("POST", "/containers/" + (*cs)[0]["Id"].get<std::string>() + "/kill").status();
        phase_ = Phase::kDuringRecovery;
        return;
      }
      case Phase::kDuringRecovery: {
        // Requests keep succeeding from the kill on; done once the pod is
        // back (restarted, Ready) and answering again.
        LiveEndState st = read_store(v.store());
        int sent_after_kill = 0;
        for (const auto& [pod, n] : during_) sent_after_kill += n;
        for (const auto& [pod, n] : after_) sent_after_kill += n;
        if (st.restarts[victim_] >= 1 && st.ready_pods == 3 && st.endpoints == 3 &&
            after_.count(victim_) > 0 && sent_after_kill >= 12) {
          restart_count_ = st.restarts[victim_];
          phase_ = Phase::kDone;
          v.stop();
          return;
        }
        const bool victim_back = st.restarts[victim_] >= 1 && st.endpoints == 3;
        send(v, 6, victim_back ? &after_ : &during_);
        return;
      }
      case Phase::kDone:
        return;
    }
  }

  Phase phase_ = Phase::kWaitReady;
  std::string node_prefix_;  // the run's node-label prefix
  NetEndpoint addr_;
  std::vector<std::string> round_robin_;
  std::map<std::string, int> during_, after_;
  std::vector<std::string> errors_;
  std::string victim_;
  Status kill_status_ = internal_error("not killed");
  int restart_count_ = 0;

 private:
  // `n` requests one after another; answers appended to `out`.
  template <typename Out>
  void send(LiveRunView& v, int n, Out* out) {
    if (n == 0) {
      busy_ = false;
      return;
    }
    busy_ = true;
    live::http_get(v.loop(), addr_, "/", seconds(2), [this, &v, n, out](StatusOr<live::HttpAnswer> a) {
      if (!a.is_ok()) {
        errors_.push_back(a.status().message());
      } else if (a->status != 200) {
        errors_.push_back("HTTP " + std::to_string(a->status));
      } else {
        add(out, a->body);
      }
      send(v, n - 1, out);
    });
  }
  static void add(std::vector<std::string>* out, const std::string& s) { out->push_back(s); }
  static void add(std::map<std::string, int>* out, const std::string& s) { ++(*out)[s]; }
  bool busy_ = false;
  int stable_ = 0;
};

TEST(LiveScenario, ServiceFromTheHostIsRoundRobinAndSurvivesAContainerKill) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  auto loaded = load_scenario_text(kWebScenario, "live-web.yaml", source_dir());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  LiveRunOptions lo = isolated_options("lw", 32000);
  lo.out_dir = out_dir("web");
  lo.watch_period = milliseconds(200);
  HostClient client;
  client.node_prefix_ = lo.node_label_prefix;
  lo.on_tick = [&](LiveRunView& v) { client.tick(v); };
  auto live = run_live(*loaded, lo);
  ASSERT_TRUE(live.is_ok()) << live.status().message();

  // The run's 100 s were the deadline for every step.
  ASSERT_EQ(client.phase_, HostClient::Phase::kDone)
      << "stuck in phase " << static_cast<int>(client.phase_);
  EXPECT_EQ(client.addr_.port, 32080);
  ASSERT_EQ(client.round_robin_.size(), 30u);
  std::map<std::string, int> per_pod;
  for (const auto& p : client.round_robin_) ++per_pod[p];
  EXPECT_EQ(per_pod.size(), 3u);
  for (const auto& [pod, n] : per_pod) EXPECT_EQ(n, 10) << pod;
  // Round-robin: every 3 consecutive answers name 3 different pods.
  for (size_t i = 0; i + 3 <= client.round_robin_.size(); ++i) {
    std::set<std::string> window(client.round_robin_.begin() + static_cast<long>(i),
                                 client.round_robin_.begin() + static_cast<long>(i) + 3);
    EXPECT_EQ(window.size(), 3u) << "at request " << i;
  }
  EXPECT_TRUE(client.kill_status_.is_ok()) << client.kill_status_.message();
  EXPECT_TRUE(client.errors_.empty()) << client.errors_.size() << " failed, first: " << client.errors_.front();
  int after_kill = 0;
  for (const auto* m : {&client.during_, &client.after_}) {
    for (const auto& [pod, n] : *m) after_kill += n;
  }
  EXPECT_GE(after_kill, 12);  // requests were made from the kill on, and none failed
  EXPECT_GT(client.after_[client.victim_], 0);    // the pod is back in rotation
  EXPECT_EQ(client.restart_count_, 1);
  expect_nothing_left(lo, 3);
}

}  // namespace
}  // namespace flotilla::scenarios
