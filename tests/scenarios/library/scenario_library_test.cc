// End-to-end tests of the scenario library: each scenario runs in the
// simulator exactly as `flotilla sim` runs it, and the test checks the outcome
// a user would look for (not only that it ran).
#include <gtest/gtest.h>

#include <filesystem>

#include "analysis/trace_io.h"
#include "scenarios/loader.h"
#include "scenarios/sim_runner.h"
#include "tests/scratch_dir.h"

namespace flotilla::scenarios {
namespace {

using nlohmann::ordered_json;

std::string source_dir() {
  const char* d = std::getenv("FLOTILLA_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

std::string out_dir(const std::string& name) {
  return flotilla::testing::scratch_dir("scenario-test", name).string();
}

struct RunResult {
  RunOutcome outcome;
  std::vector<trace::Record> records;
  const ordered_json& s() const { return outcome.summary; }
  std::vector<trace::Record> of(trace::EventType t) const {
    std::vector<trace::Record> out;
    for (const auto& r : records) {
      if (r.type() == t) out.push_back(r);
    }
    return out;
  }
};

RunResult run(const std::string& scenario, const std::vector<std::string>& sets = {},
        std::optional<uint64_t> seed = std::nullopt, const std::string& tag = "",
        bool free_at_end = true) {
  auto loaded = load_scenario(source_dir() + "/scenarios/library/" + scenario + ".yaml", sets);
  EXPECT_TRUE(loaded.is_ok()) << loaded.status().message();
  if (!loaded.is_ok()) return {};
  EXPECT_TRUE(loaded->warnings.empty()) << loaded->warnings.front();
  SimRunOptions opt;
  opt.seed = seed;
  opt.out_dir = out_dir(scenario + tag);
  opt.report = false;
  opt.free_at_end = free_at_end;
  auto outcome = run_simulation(*loaded, opt);
  EXPECT_TRUE(outcome.is_ok()) << outcome.status().message();
  if (!outcome.is_ok()) return {};
  RunResult r;
  r.outcome = std::move(outcome).value();
  Status s = analysis::read_trace(r.outcome.out_dir + "/trace.pb", [&](const trace::Record& rec) {
    r.records.push_back(rec);
    return true;
  });
  EXPECT_TRUE(s.is_ok()) << s.message();
  return r;
}

void expect_all_assertions_pass(const RunResult& r) {
  for (const auto& a : r.outcome.assertions) EXPECT_TRUE(a.passed) << a.name << " = " << a.value;
  EXPECT_TRUE(r.outcome.passed);
}

TEST(ScenarioLibrary, ApacheAlwaysUp) {
  RunResult r = run("apache-always-up");
  expect_all_assertions_pass(r);
  // The container crashes every few hours: restarts happen, yet 3 stay up.
  EXPECT_GE(r.s()["pods"]["restarts"].get<int>(), 10);
  EXPECT_EQ(r.s()["controllers"]["default/apache"]["ready"], 3);
  EXPECT_EQ(r.s()["nodes"]["failures"], 1);
  EXPECT_GT(r.s()["services"]["default/apache"]["requests"]["total"].get<int64_t>(), 1'000'000);
  EXPECT_GE(r.s()["services"]["default/apache"]["availability"].get<double>(), 0.999);
}

TEST(ScenarioLibrary, NodeFailureIsRepairedAfterGracePlusEvictionTimeout) {
  RunResult r = run("node-failure");
  expect_all_assertions_pass(r);
  auto faults = r.of(trace::FAULT_INJECTED);
  ASSERT_EQ(faults.size(), 1u);
  const int64_t failed_at = faults[0].time_ns();
  // The replacement becomes ready on another node 340-350 s later
  // (40 s grace + 300 s eviction timeout + a few seconds to start).
  int64_t replaced_at = -1;
  for (const auto& rec : r.of(trace::POD_READY)) {
    if (rec.time_ns() > failed_at && rec.node() != "node-0") {
      replaced_at = rec.time_ns();
      break;
    }
  }
  ASSERT_GT(replaced_at, 0);
  const double delay_s = static_cast<double>(replaced_at - failed_at) / 1e9;
  EXPECT_GE(delay_s, 340);
  EXPECT_LE(delay_s, 350);
  EXPECT_EQ(r.s()["pods"]["evicted"], 1);
  EXPECT_EQ(r.s()["pods"]["created"], 4);  // 3 + exactly one replacement
}

TEST(ScenarioLibrary, NodeFailureWithFastProfileIsRepairedWithinTenSeconds) {
  RunResult r = run("node-failure", {"cluster.timing=fast"}, std::nullopt, "-fast");
  auto faults = r.of(trace::FAULT_INJECTED);
  ASSERT_EQ(faults.size(), 1u);
  int64_t replaced_at = -1;
  for (const auto& rec : r.of(trace::POD_READY)) {
    if (rec.time_ns() > faults[0].time_ns() && rec.node() != "node-0") {
      replaced_at = rec.time_ns();
      break;
    }
  }
  ASSERT_GT(replaced_at, 0);
  EXPECT_LE(static_cast<double>(replaced_at - faults[0].time_ns()) / 1e9, 10.0);
  EXPECT_EQ(r.s()["controllers"]["default/web"]["ready"], 3);
}

TEST(ScenarioLibrary, CrashLoopBacksOffAndNeverServes) {
  RunResult r = run("crash-loop");
  expect_all_assertions_pass(r);
  // Exits 1 s after each start; back-off 0, 10, 20, 40, 80, 160, 300, 300, ...
  // gives 16-17 restarts in an hour.
  const int restarts = r.s()["pods"]["restarts"].get<int>();
  EXPECT_GE(restarts, 15);
  EXPECT_LE(restarts, 18);
  std::vector<double> starts;
  for (const auto& rec : r.of(trace::CONTAINER_STARTED)) {
    if (rec.name().rfind("broken-", 0) == 0) starts.push_back(static_cast<double>(rec.time_ns()) / 1e9);
  }
  ASSERT_GE(starts.size(), 8u);
  const double expected_gaps[] = {1, 11, 21, 41, 81, 161, 301};  // run 1 s + back-off
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_NEAR(starts[i + 1] - starts[i], expected_gaps[i], 0.5) << "restart " << i + 1;
  }
  EXPECT_LT(r.s()["services"]["default/broken"]["availability"].get<double>(), 0.01);
  EXPECT_DOUBLE_EQ(r.s()["controllers"]["default/healthy"]["ready_time_fraction"].get<double>(), 1.0);
}

TEST(ScenarioLibrary, NetworkPartitionIsSeenAsNodeFailureAndHealsWithoutExtraReplicas) {
  RunResult r = run("network-partition");
  expect_all_assertions_pass(r);
  ASSERT_EQ(r.of(trace::NODE_NOT_READY).size(), 1u);
  EXPECT_EQ(r.of(trace::NODE_NOT_READY)[0].node(), "node-0");
  EXPECT_EQ(r.of(trace::NODE_READY).size(), 1u);  // back after the partition heals
  EXPECT_EQ(r.s()["pods"]["evicted"], 1);
  EXPECT_EQ(r.s()["pods"]["created"], 4);  // one replacement, nothing extra after healing
  EXPECT_EQ(r.s()["controllers"]["default/web"]["ready"], 3);
}

TEST(ScenarioLibrary, RackPowerLossSpreadingKeepsTheServiceUp) {
  RunResult spread = run("rack-power-loss-spread");
  RunResult packed = run("rack-power-loss-packed");
  expect_all_assertions_pass(spread);
  expect_all_assertions_pass(packed);
  // Exactly the rack's two machines went down in both.
  for (const RunResult* r : {&spread, &packed}) {
    auto down = r->of(trace::NODE_DOWN);
    ASSERT_EQ(down.size(), 2u);
    for (const auto& d : down) EXPECT_TRUE(d.node() == "node-0" || d.node() == "node-3") << d.node();
  }
  const double a_spread = spread.s()["services"]["default/web"]["availability"].get<double>();
  const double a_packed = packed.s()["services"]["default/web"]["availability"].get<double>();
  EXPECT_GE(a_spread, 0.999);
  EXPECT_LT(a_packed, 0.8);  // all six replicas sat in the dark rack
}

TEST(ScenarioLibrary, ThreeTierCallsFlowThroughEveryTier) {
  RunResult r = run("three-tier");
  expect_all_assertions_pass(r);
  const auto& svc = r.s()["services"];
  const double fe = svc["default/frontend"]["requests"]["total"].get<double>();
  const double be = svc["default/backend"]["requests"]["total"].get<double>();
  const double db = svc["default/db"]["requests"]["total"].get<double>();
  // Every frontend request calls the backend once, which calls the db once.
  EXPECT_GT(fe, 50'000);
  EXPECT_NEAR(be / fe, 1.0, 0.01);
  EXPECT_NEAR(db / fe, 1.0, 0.01);
  // A tier's latency includes the tiers below it.
  const double p50_fe = svc["default/frontend"]["requests"]["latency_ms"]["p50"].get<double>();
  const double p50_be = svc["default/backend"]["requests"]["latency_ms"]["p50"].get<double>();
  const double p50_db = svc["default/db"]["requests"]["latency_ms"]["p50"].get<double>();
  EXPECT_GT(p50_fe, p50_be);
  EXPECT_GT(p50_be, p50_db);
  EXPECT_EQ(r.s()["nodes"]["failures"], 1);
  EXPECT_GE(r.s()["pods"]["restarts"].get<int>(), 1);  // the killed db container
}

// The full large-cluster scenario is a scale measurement (docs/scenarios.md);
// here its file runs scaled down to 50 nodes and 1,500 pods for 20 minutes.
TEST(ScenarioLibrary, LargeClusterScaledDownReachesItsReplicas) {
  std::vector<std::string> sets = {"duration=20m", "cluster.node_groups[0].count=50",
                                   "traffic[0].start=5m", "traffic[1].start=5m",
                                   "assertions[1].final_replicas.equals=150"};
  for (int i = 0; i < 10; ++i) sets.push_back("workload[0].apply[" + std::to_string(i) + "].spec.replicas=150");
  RunResult r = run("large-cluster", sets);
  EXPECT_EQ(r.s()["nodes"]["count"], 50);
  EXPECT_EQ(r.s()["pods"]["created"].get<int>(), 1500 + r.s()["pods"]["evicted"].get<int>());
  EXPECT_EQ(r.s()["controllers"]["default/app-0"]["desired"], 150);
  EXPECT_GT(r.s()["services"]["default/app-0"]["requests"]["total"].get<int>(), 50'000);
}

// Run b leaves its world for the process's exit, as `flotilla sim` does
// (SimRunOptions::free_at_end): the same run, the same results.
TEST(ScenarioDeterminism, SameSeedSameTraceOtherSeedOtherTrace) {
  RunResult a = run("node-failure", {}, 42, "-a");
  RunResult b = run("node-failure", {}, 42, "-b", /*free_at_end=*/false);
  RunResult c = run("node-failure", {}, 43, "-c");
  const std::string da = a.s()["trace_sha256"], db = b.s()["trace_sha256"], dc = c.s()["trace_sha256"];
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
  EXPECT_EQ(*analysis::sha256_file(a.outcome.out_dir + "/trace.pb"), da);
  ordered_json sa = a.s(), sb = b.s();
  for (ordered_json* s : {&sa, &sb}) s->erase("wall_seconds");
  EXPECT_EQ(sa, sb);
}

}  // namespace
}  // namespace flotilla::scenarios
