// A live run recorded by `flotilla live` replays in the simulator and reaches
// the same end state: scenarios/library/live-smoke.yaml (an RC of 3 behind a
// Service, node-0 stopped at 30 s, one web container killed at 60 s, fast
// timing) runs on the local Docker engine; its results directory is replayed
// with --format flotilla; the replay's end state (ready replicas, endpoints,
// the killed pod's restart count, node states) equals the recorded one and
// what the live store said at the end. The run uses its own Docker network
// and node-label prefix and must leave nothing behind.
// FLOTILLA_SKIP_DOCKER=1 skips it, and says so.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/api/object.h"
#include "core/api/types.pb.h"
#include "scenarios/live_runner.h"
#include "scenarios/loader.h"
#include "scenarios/replay/recorded.h"
#include "tests/scratch_dir.h"

namespace flotilla::replay {
namespace {

namespace fs = std::filesystem;

bool skip_docker() {
  const char* s = std::getenv("FLOTILLA_SKIP_DOCKER");
  return s != nullptr && std::string(s) == "1";
}

std::string source(const std::string& rel) {
  const char* src = std::getenv("FLOTILLA_SOURCE_DIR");
  return std::string(src ? src : ".") + "/" + rel;
}

std::string temp_dir(const std::string& name) {
  return flotilla::testing::scratch_dir("recorded-live", name).string();
}

// The live store just before teardown.
struct StoreEnd {
  bool seen = false;
  int ready_pods = 0;
  int endpoints = 0;
  std::vector<int64_t> restarts;  // per pod, sorted
  std::map<std::string, std::string> node_ready;  // node -> Ready condition status
};

StoreEnd read_store(Store& store) {
  StoreEnd st;
  st.seen = true;
  auto pods = store.list(api::Kind::kPod, ListOptions{});
  if (pods.is_ok()) {
    for (const auto& o : pods->items) {
      const auto& p = *api::as<api::Pod>(o);
      if (p.metadata().has_deletion_timestamp()) continue;
      int64_t rc = 0;
      for (const auto& cs : p.status().container_statuses()) rc += cs.restart_count();
      st.restarts.push_back(rc);
      for (const auto& c : p.status().conditions()) {
        if (c.type() == "Ready" && c.status() == "True") ++st.ready_pods;
      }
    }
  }
  std::sort(st.restarts.begin(), st.restarts.end());
  auto eps = store.get(api::Kind::kEndpoints, "default", "web");
  if (eps.is_ok()) {
    for (const auto& s : api::as<api::Endpoints>(*eps)->subsets()) st.endpoints += s.addresses_size();
  }
  auto nodes = store.list(api::Kind::kNode, ListOptions{});
  if (nodes.is_ok()) {
    for (const auto& o : nodes->items) {
      const auto& n = *api::as<api::Node>(o);
      for (const auto& c : n.status().conditions()) {
        if (c.type() == "Ready") st.node_ready[n.metadata().name()] = c.status();
      }
    }
  }
  return st;
}

TEST(RecordedLiveReplay, LiveRunReplaysInTheSimulatorToTheSameEndState) {
  if (skip_docker()) GTEST_SKIP() << "FLOTILLA_SKIP_DOCKER=1: live Docker tests skipped";
  auto sc = scenarios::load_scenario(source("scenarios/library/live-smoke.yaml"));
  ASSERT_TRUE(sc.is_ok()) << sc.status().message();

  ASSERT_EQ(sc->total_nodes(), 3);
  // Record: the scenario on Docker, isolated from other runs.
  scenarios::LiveRunOptions lo;
  lo.docker_network = "flotilla-rp-" + std::to_string(::getpid());
  lo.node_label_prefix = "rp" + std::to_string(::getpid()) + "-";
  lo.host_port_offset = 25000;
  lo.report = false;
  lo.handle_signals = false;
  lo.out_dir = temp_dir("live");
  StoreEnd end;
  lo.on_end = [&](scenarios::LiveRunView& v) { end = read_store(v.store()); };
  auto live = scenarios::run_live(*sc, lo);
  ASSERT_TRUE(live.is_ok()) << live.status().message();
  ASSERT_TRUE(fs::exists(live->out_dir + "/scenario.yaml"));

  // Replay the results directory in the simulator.
  auto run = read_recorded_run(live->out_dir);
  ASSERT_TRUE(run.is_ok()) << run.status().message();
  EXPECT_EQ(run->backend, "docker");
  ASSERT_EQ(run->faults.size(), 2u);  // node-0 down, one container killed
  EXPECT_EQ(run->faults[0].kind, sim::FaultSpec::Kind::kKillNode);
  EXPECT_EQ(run->faults[0].nodes, std::vector<std::string>{"node-0"});
  EXPECT_NEAR(to_seconds(run->faults[0].at), 30.0, 1.0);
  EXPECT_EQ(run->faults[1].kind, sim::FaultSpec::Kind::kKillContainers);
  EXPECT_NEAR(to_seconds(run->faults[1].at), 60.0, 2.0);
  auto rs = build_recorded_replay(*run, nullptr, {});
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  scenarios::SimRunOptions so;
  so.out_dir = temp_dir("replay");
  so.report = false;
  auto out = run_recorded_replay(*run, *rs, so);
  ASSERT_TRUE(out.is_ok()) << out.status().message();

  // The same end state, recorded (live) and replayed (sim).
  EXPECT_TRUE(out->differences.empty()) << out->differences.size() << " differences, first: "
                                        << out->differences.front();
  for (const RunEndState* e : {&out->recorded, &out->replayed}) {
    ASSERT_EQ(e->controllers.count("default/web"), 1u);
    EXPECT_EQ(e->controllers.at("default/web"), std::make_pair(int64_t{3}, int64_t{3}));
    EXPECT_EQ(e->endpoints.at("default/web"), 3);
    EXPECT_EQ(e->restart_profile(), (std::vector<int64_t>{0, 0, 1}));  // the killed pod: 1
    EXPECT_EQ(e->nodes.at("node-0"), "down/NotReady");
    EXPECT_EQ(e->nodes.at("node-1"), "up/Ready");
    EXPECT_EQ(e->nodes.at("node-2"), "up/Ready");
  }
  EXPECT_EQ(out->replay.run.summary["replay"]["end_state"]["matches"], true);
  EXPECT_EQ(out->replay.run.summary["replay"]["recorded"]["backend"], "docker");

  // What the live store said at the end agrees with the recorded trace.
  ASSERT_TRUE(end.seen);
  EXPECT_EQ(end.ready_pods, 3);
  EXPECT_EQ(end.endpoints, 3);
  EXPECT_EQ(end.restarts, (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(end.node_ready["node-0"], "Unknown");  // Kubernetes' NotReady for lost heartbeats
  EXPECT_EQ(end.node_ready["node-1"], "True");

  // Nothing of the live run is left on Docker.
  std::vector<std::string> docker_nodes;
  for (int i = 0; i < 3; ++i) docker_nodes.push_back(lo.node_label_prefix + "node-" + std::to_string(i));
  auto left = scenarios::live_leftovers(lo.docker_socket, docker_nodes, lo.docker_network);
  ASSERT_TRUE(left.is_ok()) << left.status().message();
  EXPECT_EQ(left->containers, 0);
  EXPECT_EQ(left->volumes, 0);
  EXPECT_EQ(left->networks, 0);
}

}  // namespace
}  // namespace flotilla::replay
