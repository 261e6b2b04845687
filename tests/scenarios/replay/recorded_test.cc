// Replaying runs Flotilla recorded itself (--format flotilla), in the
// simulator: a recorded sim run of the live smoke scenario (an RC of 3 behind
// a Service, a node stop, a container kill) replays to the same end state; a
// run with scale and delete steps, a bare pod and a partition replays its
// steps at their recorded times; a cut-short window and a different cluster
// show up as end-state differences; --to writes a scenario that runs the same.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "scenarios/loader.h"
#include "scenarios/replay/export.h"
#include "scenarios/replay/recorded.h"
#include "scenarios/sim_runner.h"
#include "tests/scratch_dir.h"

namespace flotilla::replay {
namespace {

namespace fs = std::filesystem;

std::string source(const std::string& rel) {
  const char* src = std::getenv("FLOTILLA_SOURCE_DIR");
  return std::string(src ? src : ".") + "/" + rel;
}

std::string temp_dir(const std::string& name) {
  return flotilla::testing::scratch_dir("recorded-test", name).string();
}

// Runs a scenario in the simulator into `dir` (the recorded run).
scenarios::RunOutcome record_sim(const scenarios::LoadedScenario& sc, const std::string& dir) {
  scenarios::SimRunOptions so;
  so.out_dir = dir;
  so.report = false;
  auto run = scenarios::run_simulation(sc, so);
  EXPECT_TRUE(run.is_ok()) << run.status().message();
  return run.is_ok() ? *run : scenarios::RunOutcome{};
}

StatusOr<RecordedReplayOutcome> replay_dir(const std::string& recorded, const std::string& out,
                                           const scenarios::LoadedScenario* base = nullptr,
                                           ImportOptions opt = {}) {
  auto run = read_recorded_run(recorded);
  if (!run.is_ok()) return run.status();
  auto rs = build_recorded_replay(*run, base, opt);
  if (!rs.is_ok()) return rs.status();
  scenarios::SimRunOptions so;
  so.out_dir = out;
  so.report = false;
  return run_recorded_replay(*run, *rs, so);
}

TEST(RecordedReplay, SimRunOfTheSmokeScenarioReplaysToTheSameEndState) {
  auto sc = scenarios::load_scenario(source("scenarios/library/live-smoke.yaml"));
  ASSERT_TRUE(sc.is_ok()) << sc.status().message();
  const std::string rec = temp_dir("smoke-sim");
  record_sim(*sc, rec);
  ASSERT_TRUE(fs::exists(rec + "/scenario.yaml"));

  auto run = read_recorded_run(rec);
  ASSERT_TRUE(run.is_ok()) << run.status().message();
  EXPECT_EQ(run->backend, "sim");
  EXPECT_EQ(run->seed, 11u);
  // The RC and the Service, applied at 0.
  ASSERT_EQ(run->workload.size(), 2u);
  EXPECT_EQ(run->workload[0].at, Duration(0));
  EXPECT_EQ(run->workload[0].apply.at(0).kind, api::Kind::kReplicationController);
  EXPECT_EQ(run->workload[1].apply.at(0).kind, api::Kind::kService);
  // node-0 down at 30 s, one app=web container killed at 60 s.
  ASSERT_EQ(run->faults.size(), 2u);
  EXPECT_EQ(run->faults[0].kind, sim::FaultSpec::Kind::kKillNode);
  EXPECT_EQ(run->faults[0].nodes, std::vector<std::string>{"node-0"});
  EXPECT_EQ(run->faults[0].at, seconds(30));
  EXPECT_EQ(run->faults[1].kind, sim::FaultSpec::Kind::kKillContainers);
  EXPECT_EQ(run->faults[1].selector_text, "app=web");
  EXPECT_EQ(run->faults[1].count, 1);
  EXPECT_EQ(run->faults[1].at, seconds(60));

  auto out = replay_dir(rec, temp_dir("smoke-replay"));
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_TRUE(out->differences.empty()) << out->differences.front();
  const RunEndState& e = out->replayed;
  ASSERT_EQ(e.controllers.count("default/web"), 1u);
  EXPECT_EQ(e.controllers.at("default/web"), std::make_pair(int64_t{3}, int64_t{3}));
  EXPECT_EQ(e.endpoints.at("default/web"), 3);
  EXPECT_EQ(e.nodes.at("node-0"), "down/NotReady");
  EXPECT_EQ(e.nodes.at("node-1"), "up/Ready");
  EXPECT_EQ(e.restart_profile(), (std::vector<int64_t>{0, 0, 1}));
  const auto& s = out->replay.run.summary;
  EXPECT_EQ(s["faults_injected"], 2);
  EXPECT_EQ(s["replay"]["end_state"]["matches"], true);
  EXPECT_EQ(s["replay"]["recorded"]["backend"], "sim");
  EXPECT_EQ(s["replay"]["trace_events"], 4);  // 2 workload steps + 2 faults
  for (const auto& a : out->replay.run.assertions) EXPECT_TRUE(a.passed) << a.name;
  // The replay's own directory is a recorded run too.
  auto again = replay_dir(out->replay.run.out_dir, temp_dir("smoke-replay-2"));
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_TRUE(again->differences.empty()) << again->differences.front();
}

// Scale and delete steps, a bare pod with a lifetime, a partition that heals.
constexpr const char* kSteps = R"(
name: steps
seed: 5
duration: 90s
cluster:
  timing: fast
  node_groups:
    - {name: node, count: 3, capacity: {cpu: "4", memory: 8Gi}}
workload:
  - apply:
      - apiVersion: v1
        kind: ReplicationController
        metadata: {name: api}
        spec:
          replicas: 2
          selector: {app: api}
          template:
            metadata: {labels: {app: api}}
            spec:
              containers:
                - {name: api, image: demo, resources: {requests: {cpu: 500m, memory: 128Mi}}}
  - at: 5s
    apply:
      - apiVersion: v1
        kind: Pod
        metadata: {name: batch, labels: {app: batch}}
        spec:
          containers:
            - {name: job, image: demo, resources: {requests: {cpu: "1", memory: 1Gi}}}
  - {at: 20s, scale: {name: api, replicas: 4}}
  - {at: 40s, delete: {kind: Pod, name: batch}}
  - {at: 50s, scale: {name: api, replicas: 3}}
faults:
  - {at: 10s, partition: {nodes: [node-2], for: 5s, from: control-plane}}
  - {at: 25s, kill_containers: {selector: "app=api", count: 2}}
)";

TEST(RecordedReplay, ScaleDeleteBarePodAndPartitionReplayAtTheirRecordedTimes) {
  auto sc = scenarios::load_scenario_text(kSteps, "steps.yaml", ".");
  ASSERT_TRUE(sc.is_ok()) << sc.status().message();
  const std::string rec = temp_dir("steps-sim");
  record_sim(*sc, rec);
  auto run = read_recorded_run(rec + "/trace.pb");  // the trace file works as well as the dir
  ASSERT_TRUE(run.is_ok()) << run.status().message();
  ASSERT_EQ(run->workload.size(), 5u);
  EXPECT_EQ(run->workload[1].at, seconds(5));
  ASSERT_TRUE(run->workload[2].scale.has_value());
  EXPECT_EQ(run->workload[2].scale->replicas(), 4);
  EXPECT_EQ(run->workload[2].at, seconds(20));
  ASSERT_TRUE(run->workload[3].remove.has_value());
  EXPECT_EQ(run->workload[3].remove->kind(), "Pod");
  EXPECT_EQ(run->workload[4].scale->replicas(), 3);
  ASSERT_EQ(run->faults.size(), 2u);
  EXPECT_EQ(run->faults[0].kind, sim::FaultSpec::Kind::kPartition);
  ASSERT_TRUE(run->faults[0].duration.has_value());
  EXPECT_EQ(*run->faults[0].duration, seconds(5));  // from its FAULT_HEALED
  // The bare pod's recorded life, for the queueing comparison.
  ASSERT_EQ(run->pods.size(), 1u);
  EXPECT_EQ(run->pods[0].name, "batch");
  EXPECT_DOUBLE_EQ(run->pods[0].created_s, 5.0);
  ASSERT_TRUE(run->pods[0].trace_scheduled_s.has_value());
  ASSERT_TRUE(run->pods[0].deleted_s.has_value());
  EXPECT_DOUBLE_EQ(*run->pods[0].deleted_s, 40.0);

  auto out = replay_dir(rec, temp_dir("steps-replay"));
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_TRUE(out->differences.empty()) << out->differences.front();
  EXPECT_EQ(out->replayed.controllers.at("default/api"), std::make_pair(int64_t{3}, int64_t{3}));
  EXPECT_EQ(out->replayed.pod_restarts.count("default/batch"), 0u);  // deleted at 40 s
  EXPECT_EQ(out->replay.run.summary["replay"]["pods_submitted"], 1);
  EXPECT_EQ(out->replay.run.summary["replay"]["pods_placed"], 1);
  EXPECT_EQ(out->replay.run.summary["faults_injected"], 2);

  // Twice as fast: the same story in 45 s, steps and faults at half the time.
  ImportOptions fast;
  fast.speedup = 2;
  auto rs = build_recorded_replay(*run, nullptr, fast);
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  EXPECT_EQ(rs->scenario.duration, seconds(45));
  EXPECT_EQ(rs->scenario.faults[0].at, seconds(5));
  EXPECT_EQ(*rs->scenario.faults[0].duration, milliseconds(2500));
  EXPECT_EQ(rs->scenario.workload[2].at, seconds(10));
}

TEST(RecordedReplay, EndStateDifferencesAreReported) {
  auto sc = scenarios::load_scenario(source("scenarios/library/live-smoke.yaml"));
  ASSERT_TRUE(sc.is_ok()) << sc.status().message();
  const std::string rec = temp_dir("diff-sim");
  record_sim(*sc, rec);
  // Cut before the container kill: nobody restarted.
  ImportOptions early;
  early.window_end_s = 45;
  auto cut = replay_dir(rec, temp_dir("diff-window"), nullptr, early);
  ASSERT_TRUE(cut.is_ok()) << cut.status().message();
  ASSERT_FALSE(cut->differences.empty());
  bool restarts = false;
  for (const auto& d : cut->differences) restarts |= d.find("restart counts") != std::string::npos;
  EXPECT_TRUE(restarts) << cut->differences.front();
  EXPECT_EQ(cut->replay.run.summary["replay"]["end_state"]["matches"], false);

  // A base scenario with one node per group named differently: the node
  // stop is dropped (no such node) and the node set differs.
  auto base = scenarios::load_scenario_text(R"(
name: other
duration: 2m
cluster:
  timing: fast
  node_groups:
    - {name: big, count: 2, capacity: {cpu: "8", memory: 16Gi}}
)", "other.yaml", ".");
  ASSERT_TRUE(base.is_ok()) << base.status().message();
  auto run = read_recorded_run(rec);
  ASSERT_TRUE(run.is_ok());
  auto rs = build_recorded_replay(*run, &*base, {});
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  EXPECT_EQ(rs->scenario.faults.size(), 1u);  // the container kill; node-0 is not in this cluster
  ASSERT_FALSE(rs->warnings.empty());
  scenarios::SimRunOptions so;
  so.out_dir = temp_dir("diff-base");
  so.report = false;
  auto other = run_recorded_replay(*run, *rs, so);
  ASSERT_TRUE(other.is_ok()) << other.status().message();
  EXPECT_EQ(other->replayed.controllers.at("default/web").second, 3);
  bool nodes = false;
  for (const auto& d : other->differences) nodes |= d.rfind("node node-0", 0) == 0;
  EXPECT_TRUE(nodes);
}

TEST(RecordedReplay, ToWritesAScenarioThatRunsTheSame) {
  auto sc = scenarios::load_scenario_text(kSteps, "steps.yaml", ".");
  ASSERT_TRUE(sc.is_ok()) << sc.status().message();
  const std::string rec = temp_dir("to-sim");
  record_sim(*sc, rec);
  auto run = read_recorded_run(rec);
  ASSERT_TRUE(run.is_ok()) << run.status().message();
  auto rs = build_recorded_replay(*run, nullptr, {});
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  const std::string path = temp_dir("to") + ".yaml";
  ASSERT_TRUE(write_resolved_scenario_yaml(*rs, path).is_ok());
  auto loaded = scenarios::load_scenario(path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_TRUE(loaded->warnings.empty()) << loaded->warnings.front();
  EXPECT_EQ(loaded->seed, 5u);
  EXPECT_EQ(loaded->duration, seconds(90));
  ASSERT_EQ(loaded->workload.size(), rs->scenario.workload.size());
  for (size_t i = 0; i < loaded->workload.size(); ++i) {
    EXPECT_EQ(loaded->workload[i].at, rs->scenario.workload[i].at) << i;
  }
  ASSERT_EQ(loaded->faults.size(), 2u);
  EXPECT_EQ(loaded->faults[0].kind, sim::FaultSpec::Kind::kPartition);
  EXPECT_EQ(loaded->faults[0].partition_from, sim::PartitionKind::kFromControlPlane);
  EXPECT_EQ(loaded->faults[1].selector_text, "app=api");
  EXPECT_EQ(loaded->faults[1].count, 2);
  // Run as an ordinary scenario: the same end state as the recorded run.
  const std::string dir = temp_dir("to-run");
  record_sim(*loaded, dir);
  auto a = read_end_state(rec + "/trace.pb");
  auto b = read_end_state(dir + "/trace.pb");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  auto diff = compare_end_states(*a, *b, {"default/batch"});
  EXPECT_TRUE(diff.empty()) << diff.front();
}

TEST(RecordedReplay, MissingPiecesAreErrors) {
  const std::string dir = temp_dir("empty");
  fs::create_directories(dir);
  auto none = read_recorded_run(dir);
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("trace.pb"), std::string::npos);
  std::ofstream(dir + "/trace.pb").put('\0');
  auto noscenario = read_recorded_run(dir);
  ASSERT_FALSE(noscenario.is_ok());
  EXPECT_NE(noscenario.status().message().find("scenario.yaml"), std::string::npos);
}

}  // namespace
}  // namespace flotilla::replay
