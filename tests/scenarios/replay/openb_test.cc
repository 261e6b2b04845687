// The full Alibaba GPU 2023 "openb" trace (8,152 pods) replayed onto its own
// 1,523 machines, with GPU model constraints added to the GPU pods, checked
// against a direct computation over the CSVs: every row becomes a pod, the
// pods that no machine could ever fit are exactly those the CSV says, and
// every placed pod with a constraint landed on an allowed model.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "scenarios/replay/importers.h"
#include "scenarios/replay/replay.h"
#include "tests/scratch_dir.h"

namespace flotilla::replay {
namespace {

namespace fs = std::filesystem;

std::string data_dir() {
  const char* src = std::getenv("FLOTILLA_SOURCE_DIR");
  return std::string(src ? src : ".") + "/../shared/data/alibaba-gpu-v2023";
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  std::getline(f, line);  // header
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    std::vector<std::string> row;
    std::stringstream ss(line);
    std::string field;
    while (std::getline(ss, field, ',')) row.push_back(field);
    if (!line.empty() && line.back() == ',') row.push_back("");
    rows.push_back(row);
  }
  return rows;
}

// The constraint given to the i-th GPU pod.
std::string spec_for(size_t i) {
  static const char* kSpecs[] = {"T4|P100", "G2|G3", "V100M16|V100M32", ""};
  return kSpecs[i % 4];
}

TEST(OpenbReplayTest, FullTraceOnItsOwnMachines) {
  const std::string dir = data_dir();
  if (!fs::exists(dir + "/openb_pod_list_default.csv")) GTEST_SKIP() << "no data in " << dir;
  auto nodes = read_csv(dir + "/openb_node_list_all_node.csv");
  auto pods = read_csv(dir + "/openb_pod_list_default.csv");
  ASSERT_EQ(nodes.size(), 1523u);
  ASSERT_EQ(pods.size(), 8152u);

  // A copy of the pod list with GPU model constraints on three GPU pods in four.
  // In the process's scratch root (tests/scratch_dir.h): removed at exit.
  const std::string tmp = flotilla::testing::scratch_dir("openb", "constrained").string();
  fs::create_directories(tmp);
  const std::string pod_list = tmp + "/openb_pod_list_constrained.csv";
  std::map<std::string, std::string> spec_of;
  {
    std::ofstream out(pod_list);
    out << "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
           "deletion_time,scheduled_time\n";
    size_t gpu_pods = 0;
    for (auto& r : pods) {
      if (std::stoll(r[3]) > 0) r[5] = spec_for(gpu_pods++);
      spec_of[r[0]] = r[5];
      for (size_t i = 0; i < r.size(); ++i) out << (i ? "," : "") << r[i];
      out << "\n";
    }
  }
  // Directly from the CSVs: pods no machine fits even when empty.
  int64_t never_fit = 0;
  for (const auto& p : pods) {
    const int64_t cpu = std::stoll(p[1]), mem = std::stoll(p[2]), ngpu = std::stoll(p[3]),
                  milli = std::stoll(p[4]);
    std::set<std::string> allowed;
    std::stringstream ss(p[5]);
    for (std::string m; std::getline(ss, m, '|');) allowed.insert(m);
    bool fits = false;
    for (const auto& n : nodes) {
      const int64_t gpus = std::stoll(n[3]);
      const std::string model = n.size() > 4 ? n[4] : "";
      if (cpu > std::stoll(n[1]) || mem > std::stoll(n[2])) continue;
      if (ngpu > gpus || (ngpu == 1 && milli > gpus * 1000)) continue;
      if (!allowed.empty() && !allowed.count(model)) continue;
      fits = true;
      break;
    }
    never_fit += !fits;
  }
  ASSERT_GT(never_fit, 0) << "8-GPU pods constrained to T4|P100 fit nowhere";

  ImportOptions opt;
  auto trace = import_alibaba_gpu_2023(pod_list, dir + "/openb_node_list_all_node.csv", opt);
  ASSERT_TRUE(trace.is_ok()) << trace.status().message();
  EXPECT_EQ(trace->nodes.size(), 1523u);
  EXPECT_EQ(trace->pods.size(), pods.size());
  auto rs = build_replay_scenario(*trace, nullptr, opt);
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  EXPECT_EQ(rs->scenario.total_nodes(), 1523);
  EXPECT_EQ(rs->pods_never_placeable, never_fit);

  scenarios::SimRunOptions so;
  so.out_dir = tmp + "/run";
  auto out = run_replay(*rs, so);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  const auto& m = out->metrics;
  EXPECT_EQ(m.pods_submitted, static_cast<int64_t>(pods.size()));
  EXPECT_EQ(out->run.summary["pods"]["created"], static_cast<int64_t>(pods.size()));
  // Never placeable pods are never placed; the rest are, except pods the
  // trace deletes the instant they arrive.
  EXPECT_GE(m.pods_never_placed, never_fit);
  EXPECT_LE(m.pods_never_placed, never_fit + 5);
  int64_t checked = 0;
  for (const auto& [name, node] : m.placements) {
    const std::string& spec = spec_of.at(name);
    if (spec.empty()) continue;
    auto it = rs->gpu_model_of_node.find(node);
    ASSERT_NE(it, rs->gpu_model_of_node.end()) << name << " with spec " << spec << " on " << node;
    EXPECT_NE(("|" + spec + "|").find("|" + it->second + "|"), std::string::npos)
        << name << " wants " << spec << " but runs on " << node << " (" << it->second << ")";
    ++checked;
  }
  EXPECT_GT(checked, 3000);
  // The report shows allocation over time, trace vs replay.
  EXPECT_TRUE(fs::exists(so.out_dir + "/replay_comparison.csv"));
  EXPECT_TRUE(fs::exists(so.out_dir + "/replay.html"));
  std::ifstream report(so.out_dir + "/report.html");
  std::string html((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("replay.html"), std::string::npos);
  std::printf("openb replay: %lld trace events, %.1f s wall, %.0f trace events/s, %llu sim events\n",
              static_cast<long long>(rs->trace_events),
              out->run.summary["wall_seconds"].get<double>(), out->trace_events_per_second,
              static_cast<unsigned long long>(out->run.summary["events"].get<uint64_t>()));
}

}  // namespace
}  // namespace flotilla::replay
