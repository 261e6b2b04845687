// Stochastic node faults in live mode use the simulator's model on real time:
// each unit (here a zone of two nodes) fails after a ttf draw, its nodes go
// down through the runner's LiveNodeControl, and come back after a ttr draw,
// again and again; every failure and repair is traced as in the simulator
// (reason node_failure). No Docker needed: the node's container kill goes to a
// socket where no daemon answers and is simply not done. Waits on conditions
// with deadlines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/docker/docker_client.h"
#include "backends/live/asio_event_loop.h"
#include "backends/live/live_faults.h"
#include "core/api/trace.pb.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"

namespace flotilla::live {
namespace {

class RecordingControl final : public LiveNodeControl {
 public:
  void node_down(const std::string& node, const std::string& reason) override {
    log.push_back("down " + node + " " + reason);
  }
  void node_up(const std::string& node, const std::string& reason) override {
    log.push_back("up " + node + " " + reason);
  }
  void set_cut_off(const std::string&, bool) override {}
  std::vector<std::string> log;
};

class RecordingTrace final : public TraceSink {
 public:
  void record(const trace::Record& r) override { records.push_back(r); }
  std::vector<trace::Record> records;
};

TEST(LiveStochasticFaults, ZoneUnitsFailAndRepairRepeatedly) {
  AsioEventLoop loop;
  sim::SimRandom random(7);
  auto store_random = random.stream("store");
  store::InMemoryStore store(loop, *store_random);
  RecordingTrace trace;
  RecordingControl control;
  docker::DockerClient nobody("/nonexistent/flotilla-test.sock");
  std::vector<LiveNodeInfo> nodes = {{"node-0", "zone-a", "r0", "t-node-0", {{"pool", "x"}}},
                                     {"node-1", "zone-a", "r0", "t-node-1", {{"pool", "x"}}},
                                     {"node-2", "zone-b", "r1", "t-node-2", {{"pool", "y"}}}};
  LiveFaultInjector faults(loop, random, trace, store, nobody, control, nodes, "none");

  sim::FaultSpec spec;
  spec.kind = sim::FaultSpec::Kind::kStochasticNodes;
  spec.name = "faults[0]";
  spec.domain = sim::FaultSpec::Domain::kZone;
  auto sel = api::LabelSelector::parse("pool=x");
  ASSERT_TRUE(sel.is_ok());
  spec.node_selector = *sel;
  spec.ttf = sim::Distribution::constant(50e6);  // 50 ms
  spec.ttr = sim::Distribution::constant(30e6);  // 30 ms
  ASSERT_TRUE(faults.add(spec).is_ok());
  EXPECT_TRUE(faults.warnings().empty());

  // Two full fail/repair cycles of zone-a.
  ASSERT_TRUE(loop.run_until([&] { return faults.healed() >= 2; }, seconds(10)));
  ASSERT_GE(control.log.size(), 8u);
  const std::vector<std::string> want = {"down node-0 node_failure", "down node-1 node_failure",
                                         "up node-0 node_repair",    "up node-1 node_repair",
                                         "down node-0 node_failure", "down node-1 node_failure",
                                         "up node-0 node_repair",    "up node-1 node_repair"};
  EXPECT_EQ(std::vector<std::string>(control.log.begin(), control.log.begin() + 8), want);
  for (const auto& l : control.log) EXPECT_EQ(l.find("node-2"), std::string::npos) << l;

  ASSERT_GE(trace.records.size(), 4u);
  EXPECT_EQ(trace.records[0].type(), trace::FAULT_INJECTED);
  EXPECT_EQ(trace.records[0].reason(), "node_failure");
  EXPECT_EQ(trace.records[0].message(), "zone-a failed");
  EXPECT_EQ(trace.records[1].type(), trace::FAULT_HEALED);
  EXPECT_EQ(trace.records[1].message(), "zone-a repaired");
  // Real time: the first failure came after the 50 ms draw, the repair 30 ms later.
  const int64_t gap = trace.records[1].time_ns() - trace.records[0].time_ns();
  EXPECT_GE(gap, 30'000'000);
  EXPECT_LT(gap, 2'000'000'000);
}

TEST(LiveStochasticFaults, MissingTtrIsAnError) {
  AsioEventLoop loop;
  sim::SimRandom random(1);
  auto store_random = random.stream("store");
  store::InMemoryStore store(loop, *store_random);
  RecordingTrace trace;
  RecordingControl control;
  docker::DockerClient nobody("/nonexistent/flotilla-test.sock");
  LiveFaultInjector faults(loop, random, trace, store, nobody, control,
                           {{"node-0", "z", "r", "t-node-0", {}}}, "none");
  sim::FaultSpec spec;
  spec.kind = sim::FaultSpec::Kind::kStochasticNodes;
  spec.name = "faults[0]";
  spec.ttf = sim::Distribution::constant(1e9);
  Status s = faults.add(spec);
  EXPECT_EQ(s.code(), StatusCode::kInvalid);
  EXPECT_NE(s.message().find("ttr"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace flotilla::live
