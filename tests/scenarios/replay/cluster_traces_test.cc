// Google cluster-data 2011 and Alibaba cluster-trace-v2018 importers on small
// files in the published formats (no header rows; a gzip shard): time 0 and
// the INT64_MAX sentinel, missing fields, machines added and removed, events
// for unknown machines, task resubmission; and a replay of each.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "scenarios/replay/importers.h"
#include "scenarios/replay/replay.h"
#include "tests/scratch_dir.h"

namespace flotilla::replay {
namespace {

namespace fs = std::filesystem;

std::string testdata(const std::string& name) {
  const char* src = std::getenv("FLOTILLA_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/scenarios/replay/testdata/" + name;
}

const TracePod* find(const ImportedTrace& t, const std::string& name) {
  for (const auto& p : t.pods) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

TEST(Google2011ImportTest, MachinesTasksSentinelsAndUnknownMachines) {
  ImportOptions opt;  // 64 cores, 256 GiB for the largest machine
  auto t = import_google_2011(testdata("google/task_events"), testdata("google/machine_events.csv"), opt);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  // Machine 3 has no CPU capacity: skipped with a warning.
  ASSERT_EQ(t->nodes.size(), 3u);
  EXPECT_EQ(t->nodes[0].id, "1");
  EXPECT_EQ(t->nodes[0].capacity.cpu_millis, 32000);
  EXPECT_EQ(t->nodes[0].capacity.memory_bytes, int64_t{128} << 30);
  EXPECT_EQ(t->nodes[1].capacity.cpu_millis, 64000);
  // Machine 4 joins at 600 s; machine 1 leaves at 1200 s and is back at 1500 s.
  ASSERT_EQ(t->node_events.size(), 4u);
  EXPECT_EQ(t->node_events[0].id, "4");
  EXPECT_EQ(t->node_events[0].at, seconds(0));
  EXPECT_FALSE(t->node_events[0].up);
  EXPECT_EQ(t->node_events[1].at, seconds(600));
  EXPECT_TRUE(t->node_events[1].up);
  EXPECT_EQ(t->node_events[2].id, "1");
  EXPECT_EQ(t->node_events[2].at, seconds(1200));
  EXPECT_FALSE(t->node_events[2].up);
  EXPECT_EQ(t->node_events[3].at, seconds(1500));
  EXPECT_EQ(t->stats.unknown_machines, 2);  // REMOVE of 99, SCHEDULE on 42

  ASSERT_EQ(t->pods.size(), 4u);
  const TracePod* a = find(*t, "job-100-0");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->created, seconds(0));  // time 0: before the trace started
  EXPECT_EQ(a->scheduled, seconds(0));
  EXPECT_EQ(a->deleted, seconds(1300));  // FINISH, read from the gzip shard
  EXPECT_EQ(a->cpu_millis, 16000);
  EXPECT_EQ(a->memory_bytes, int64_t{32} << 30);
  const TracePod* b = find(*t, "job-100-1");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->scheduled, seconds(300));
  EXPECT_EQ(b->deleted, seconds(900));  // EVICT
  const TracePod* r = find(*t, "job-100-1-r1");
  ASSERT_NE(r, nullptr) << "a resubmitted task is a new pod";
  EXPECT_EQ(r->scheduled, seconds(950));
  EXPECT_FALSE(r->deleted.has_value()) << "FINISH at the INT64_MAX sentinel is after the end";
  const TracePod* c = find(*t, "job-200-0");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->cpu_millis, 0) << "missing requests read as 0";
  EXPECT_EQ(find(*t, "job-300-5"), nullptr) << "SCHEDULE without SUBMIT";
  EXPECT_EQ(t->end, seconds(1560));
  bool skipped_warning = false;
  for (const auto& w : t->warnings) {
    skipped_warning = skipped_warning ||
                      w.find("machine_events.csv:3: machine 3 has no CPU or memory") != std::string::npos;
  }
  EXPECT_TRUE(skipped_warning);

  // Windows and speed-up.
  ImportOptions win;
  ASSERT_TRUE(parse_window("500:", &win).is_ok());
  win.speedup = 2;
  auto w = import_google_2011(testdata("google/task_events"), testdata("google/machine_events.csv"), win);
  ASSERT_TRUE(w.is_ok()) << w.status().message();
  EXPECT_EQ(w->pods.size(), 2u);  // job-100-1-r1 (900 s) and job-200-0 (1000 s)
  EXPECT_EQ(find(*w, "job-200-0")->created, seconds(250));
  // Machine 4 was up before the window? No: it joins at 600 s -> 50 s in.
  EXPECT_EQ(w->node_events[1].at, seconds(50));
}

TEST(Google2011ImportTest, BadRowsAreErrorsWithPosition) {
  std::string dir = flotilla::testing::scratch_dir("traces", "google-bad").string();
  fs::create_directories(dir);
  std::ofstream(dir + "/tasks.csv") << "0,,100,0,,0,u,0,0,0.1,0.1,0,0\n10,,100,x,,1,u,0,0,,,,\n";
  auto t = import_google_2011(dir + "/tasks.csv", testdata("google/machine_events.csv"), {});
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("tasks.csv:2:9: column task_index: expected an integer, got \"x\""),
            std::string::npos)
      << t.status().message();
  std::ofstream(dir + "/tasks.csv") << "0,,100,0,,9,u,0,0,0.1,0.1,0,0\n";
  t = import_google_2011(dir + "/tasks.csv", testdata("google/machine_events.csv"), {});
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("column event_type: expected 0..8, got 9"), std::string::npos);
  std::ofstream(dir + "/m.csv") << "0,1,0,p,1.5,0.5\n";
  t = import_google_2011(testdata("google/task_events"), dir + "/m.csv", {});
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("m.csv:1:9: column cpus: must be in (0, 1]"), std::string::npos)
      << t.status().message();
}

TEST(Google2011ImportTest, ReplaysWithMachineArrivalsAndRemovals) {
  ImportOptions opt;
  auto t = import_google_2011(testdata("google/task_events"), testdata("google/machine_events.csv"), opt);
  ASSERT_TRUE(t.is_ok());
  auto rs = build_replay_scenario(*t, nullptr, opt);
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  EXPECT_EQ(rs->scenario.total_nodes(), 3);
  EXPECT_EQ(rs->scenario.faults.size(), 4u);
  scenarios::SimRunOptions so;
  so.out_dir = flotilla::testing::scratch_dir("traces", "google-run").string();
  so.report = false;
  auto out = run_replay(*rs, so);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out->metrics.pods_submitted, 4);
  EXPECT_EQ(out->metrics.pods_placed, 4);
  EXPECT_EQ(out->run.summary["nodes"]["failures"].get<int64_t>(), 2) << "machine 4 until 600 s, machine 1 at 1200 s";
}

TEST(Alibaba2018ImportTest, MachinesBatchTasksAndContainers) {
  ImportOptions opt;
  auto t = import_alibaba_2018(testdata("alibaba2018/batch_task.csv"),
                               testdata("alibaba2018/machine_meta.csv"),
                               testdata("alibaba2018/container_meta.csv"), opt);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  ASSERT_EQ(t->nodes.size(), 3u);
  EXPECT_EQ(t->nodes[0].id, "m_1");
  EXPECT_EQ(t->nodes[0].capacity.cpu_millis, 96000);
  EXPECT_EQ(t->nodes[0].capacity.memory_bytes, int64_t{256} << 30);
  EXPECT_EQ(t->nodes[1].capacity.memory_bytes, int64_t{128} << 30);
  ASSERT_EQ(t->node_events.size(), 4u);  // m_3 joins at 3000; m_2 offline 5000..7000
  EXPECT_EQ(t->node_events[0].id, "m_3");
  EXPECT_FALSE(t->node_events[0].up);
  EXPECT_EQ(t->node_events[2].id, "m_2");
  EXPECT_EQ(t->node_events[2].at, seconds(5000));
  EXPECT_FALSE(t->node_events[2].up);

  EXPECT_EQ(t->pods.size(), 9u);
  const TracePod* m1 = find(*t, "j-1-m1-1");
  ASSERT_NE(m1, nullptr) << "instance_num 2 -> two pods";
  EXPECT_EQ(m1->cpu_millis, 500);  // plan_cpu 50 = half a core
  EXPECT_EQ(m1->created, seconds(100));
  EXPECT_EQ(m1->deleted, seconds(400));
  const TracePod* open = find(*t, "j-2-m1-0");
  ASSERT_NE(open, nullptr);
  EXPECT_FALSE(open->deleted.has_value()) << "missing end_time: still running";
  EXPECT_EQ(open->memory_bytes, 0) << "missing plan_mem";
  EXPECT_NE(find(*t, "j-3-task-x-2"), nullptr);
  EXPECT_EQ(find(*t, "j-3-task-x-2")->created, seconds(0));
  const TracePod* c1 = find(*t, "c-1");
  ASSERT_NE(c1, nullptr);
  EXPECT_EQ(c1->cpu_millis, 4000);
  EXPECT_FALSE(c1->deleted.has_value());
  EXPECT_EQ(t->stats.unknown_machines, 1);  // c_2 on m_9
  EXPECT_EQ(t->end, seconds(7060));

  auto rs = build_replay_scenario(*t, nullptr, opt);
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  scenarios::SimRunOptions so;
  so.out_dir = flotilla::testing::scratch_dir("traces", "ali2018-run").string();
  so.report = false;
  auto out = run_replay(*rs, so);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  EXPECT_EQ(out->metrics.pods_submitted, 9);
  EXPECT_EQ(out->metrics.pods_placed, 9);
}

TEST(Alibaba2018ImportTest, BadRows) {
  std::string dir = flotilla::testing::scratch_dir("traces", "ali-bad").string();
  fs::create_directories(dir);
  std::ofstream(dir + "/bt.csv") << "M1,1,j_1,1,Terminated,100,50,50,0.39\n";
  auto t = import_alibaba_2018(dir + "/bt.csv", testdata("alibaba2018/machine_meta.csv"), "", {});
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("bt.csv:1:27: column end_time: is before start_time"),
            std::string::npos)
      << t.status().message();
  std::ofstream(dir + "/mm.csv") << "m_1,0,1,1,,100,USING\n";
  t = import_alibaba_2018(testdata("alibaba2018/batch_task.csv"), dir + "/mm.csv", "", {});
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("mm.csv:1:11: column cpu_num: empty"), std::string::npos)
      << t.status().message();
}

}  // namespace
}  // namespace flotilla::replay

#include "scenarios/replay/export.h"

namespace flotilla::replay {
namespace {

TEST(ScenarioExportTest, WritesAScenarioTheLoaderReadsBack) {
  ImportOptions opt;
  auto t = import_google_2011(testdata("google/task_events"), testdata("google/machine_events.csv"), opt);
  ASSERT_TRUE(t.is_ok());
  auto rs = build_replay_scenario(*t, nullptr, opt);
  ASSERT_TRUE(rs.is_ok());
  std::string path = (flotilla::testing::scratch_root("traces") / "export.yaml").string();
  ASSERT_TRUE(write_scenario_yaml(*rs, path).is_ok());
  auto loaded = scenarios::load_scenario(path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(loaded->total_nodes(), rs->scenario.total_nodes());
  EXPECT_EQ(loaded->node_groups.size(), rs->scenario.node_groups.size());
  EXPECT_EQ(loaded->workload.size(), rs->scenario.workload.size());
  EXPECT_EQ(loaded->faults.size(), rs->scenario.faults.size());
  EXPECT_EQ(loaded->duration, rs->scenario.duration);
  EXPECT_EQ(loaded->timing.node_status_update_period, hours(12));
  for (size_t i = 0; i < loaded->workload.size(); ++i) {
    EXPECT_EQ(loaded->workload[i].at, rs->scenario.workload[i].at) << i;
  }
}

}  // namespace
}  // namespace flotilla::replay
