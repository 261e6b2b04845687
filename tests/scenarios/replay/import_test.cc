// Importers and the replay builder on small files in the published formats,
// plus an end-to-end replay of a 4-node GPU cluster: GPU sharing, GPU model
// constraints, a pod no node can ever fit, and a pod that waits for GPUs.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/api/object.h"
#include "core/scheduler/plugins.h"
#include "core/scheduler/snapshot.h"
#include "scenarios/replay/csv.h"
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

// In the process's scratch root (tests/scratch_dir.h): removed at exit.
std::string temp_dir(const std::string& name) {
  fs::path d = flotilla::testing::scratch_dir("replay", name);
  fs::create_directories(d);
  return d.string();
}

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  std::string p = dir + "/" + name;
  std::ofstream(p) << text;
  return p;
}

const char* kPodHeader =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
    "deletion_time,scheduled_time\n";

const TracePod& pod(const ImportedTrace& t, const std::string& name) {
  for (const auto& p : t.pods) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no pod " << name;
  static TracePod none;
  return none;
}

int64_t ext(const TracePod& p, const std::string& name) {
  for (const auto& [k, v] : p.extended) {
    if (k == name) return v;
  }
  return 0;
}

TEST(CsvTest, SplitsQuotedFieldsAndReadsGzipLikePlain) {
  std::string dir = temp_dir("csv");
  std::string plain = write(dir, "a.csv", "x,\"b,c\",\"say \"\"hi\"\"\"\r\n1,2,3");
  std::string gz = dir + "/a.csv.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  std::string text = "x,\"b,c\",\"say \"\"hi\"\"\"\r\n1,2,3";
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
  for (const std::string& path : {plain, gz}) {
    auto r = LineReader::open(path);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    auto l1 = (*r)->next();
    ASSERT_TRUE(l1.is_ok() && l1->has_value());
    CsvRow row(**r, **l1);
    ASSERT_EQ(row.size(), 3u);
    EXPECT_EQ(row.text(1), "b,c");
    EXPECT_EQ(row.text(2), "say \"hi\"");
    auto l2 = (*r)->next();
    ASSERT_TRUE(l2.is_ok() && l2->has_value());
    CsvRow row2(**r, **l2);
    EXPECT_EQ(*row2.integer(2, "c"), 3);
    EXPECT_EQ((*r)->line_number(), 2);
    auto l3 = (*r)->next();
    ASSERT_TRUE(l3.is_ok());
    EXPECT_FALSE(l3->has_value());
  }
}

TEST(CsvTest, TruncatedGzipIsAnErrorNotACrash) {
  std::string dir = temp_dir("gzbad");
  std::string gz = dir + "/t.csv.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  std::string text;
  for (int i = 0; i < 20000; ++i) text += std::to_string(i) + ",1,2,3\n";
  gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
  gzclose(f);
  fs::resize_file(gz, fs::file_size(gz) / 2);
  auto r = LineReader::open(gz);
  ASSERT_TRUE(r.is_ok());
  Status last;
  int lines = 0;
  while (true) {
    auto l = (*r)->next();
    if (!l.is_ok()) {
      last = l.status();
      break;
    }
    if (!l->has_value()) break;
    ++lines;
  }
  EXPECT_FALSE(last.is_ok()) << "read " << lines << " lines of a truncated file without an error";
  EXPECT_NE(last.message().find("t.csv.gz:"), std::string::npos) << last.message();
}

TEST(CsvTest, SamplingIsDeterministicAndProportional) {
  int kept = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string name = "pod-" + std::to_string(i);
    bool a = sampled(name, 0.3);
    EXPECT_EQ(a, sampled(name, 0.3));
    if (a) {
      EXPECT_TRUE(sampled(name, 0.6)) << "a larger sample must contain a smaller one";
    }
    kept += a;
  }
  EXPECT_NEAR(kept, 3000, 200);
}

TEST(AlibabaGpuImportTest, MapsNodesAndPods) {
  ImportOptions opt;
  auto t = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), testdata("gpu_nodes.csv"), opt);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  ASSERT_EQ(t->nodes.size(), 4u);
  const TraceNode& t4 = t->nodes[1];
  EXPECT_EQ(t4.capacity.cpu_millis, 32000);
  EXPECT_EQ(t4.capacity.memory_bytes, int64_t{131072} << 20);
  EXPECT_EQ(t4.capacity.extended.at(kGpuResource), 2);
  EXPECT_EQ(t4.capacity.extended.at(kGpuMilliResource), 2000);
  EXPECT_EQ(t4.labels.at(kGpuModelLabel), "T4");
  EXPECT_TRUE(t->nodes[0].capacity.extended.empty());
  EXPECT_EQ(t->nodes[0].labels.count(kGpuModelLabel), 0u);

  ASSERT_EQ(t->pods.size(), 8u);
  const TracePod& share = pod(*t, "pod-share");
  EXPECT_EQ(ext(share, kGpuMilliResource), 300);
  EXPECT_EQ(ext(share, kGpuResource), 0) << "a shared GPU is gpu-milli only";
  EXPECT_EQ(share.created, seconds(10));
  EXPECT_EQ(share.deleted, seconds(500));
  EXPECT_EQ(share.scheduled, seconds(12));
  EXPECT_EQ(share.labels.at("alibaba.com/qos"), "be");
  const TracePod& v100 = pod(*t, "pod-v100");
  EXPECT_EQ(ext(v100, kGpuResource), 2);
  EXPECT_EQ(ext(v100, kGpuMilliResource), 2000);
  EXPECT_EQ(v100.gpu_model_allow, "V100M16|A10");
  EXPECT_FALSE(pod(*t, "pod-huge").scheduled.has_value());
  EXPECT_EQ(t->end, seconds(6060));
}

TEST(AlibabaGpuImportTest, WindowSpeedupAndSample) {
  ImportOptions opt;
  ASSERT_TRUE(parse_window("10:1000", &opt).is_ok());
  opt.speedup = 10;
  auto t = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), testdata("gpu_nodes.csv"), opt);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->pods.size(), 6u);  // pod-a (0) and pod-late (5000) are outside
  EXPECT_EQ(t->stats.pods_outside_window, 2);
  const TracePod& share = pod(*t, "pod-share");
  EXPECT_EQ(share.created, seconds(0));
  EXPECT_EQ(share.deleted, seconds(49));  // (500 - 10) / 10
  EXPECT_EQ(t->end, seconds(99));
  const TracePod& wait = pod(*t, "pod-wait");
  EXPECT_EQ(wait.deleted, seconds(94));

  ImportOptions half;
  half.sample = 0.5;
  auto a = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), testdata("gpu_nodes.csv"), half);
  auto b = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), testdata("gpu_nodes.csv"), half);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->pods.size() + static_cast<size_t>(a->stats.pods_sampled_out), 8u);
  ASSERT_EQ(a->pods.size(), b->pods.size());
  for (size_t i = 0; i < a->pods.size(); ++i) EXPECT_EQ(a->pods[i].name, b->pods[i].name);

  EXPECT_FALSE(parse_window("100:50", &opt).is_ok());
  EXPECT_FALSE(parse_window("abc", &opt).is_ok());
}

TEST(AlibabaGpuImportTest, BadRowsNameFileLineAndColumn) {
  std::string dir = temp_dir("bad");
  std::string nodes = testdata("gpu_nodes.csv");
  struct Case {
    std::string row;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"p1,abc,1024,0,0,,LS,Running,0,10,0", "pods.csv:3:4: column cpu_milli: expected an integer, got \"abc\""},
      {"p1,1000,1024,0,0,,LS,Running", "pods.csv:3:29: column creation_time: missing"},
      {"p1,1000,1024,1,1500,,LS,Running,0,10,0", "column gpu_milli: must be in 0..1000"},
      {"p1,1000,1024,0,0,,LS,Running,50,10,0", "column deletion_time: is before creation_time"},
      {",1000,1024,0,0,,LS,Running,0,10,0", "pods.csv:3:1: column name: empty pod name"},
  };
  for (const auto& c : cases) {
    std::string pods = write(dir, "pods.csv",
                             std::string(kPodHeader) + "ok,1000,1024,0,0,,LS,Running,0,10,0\n" + c.row + "\n");
    auto t = import_alibaba_gpu_2023(pods, nodes, ImportOptions{});
    ASSERT_FALSE(t.is_ok()) << c.row;
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos)
        << t.status().message() << "\nexpected: " << c.expect;
  }
  std::string pods = write(dir, "pods.csv", "name,cpu_milli\np,1\n");
  auto t = import_alibaba_gpu_2023(pods, nodes, ImportOptions{});
  ASSERT_FALSE(t.is_ok());
  EXPECT_NE(t.status().message().find("pods.csv:1: header has no column \"memory_mib\""), std::string::npos)
      << t.status().message();
  auto missing = import_alibaba_gpu_2023(dir + "/nope.csv", nodes, ImportOptions{});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  std::string bad_nodes = write(dir, "nodes.csv", "sn,cpu_milli,memory_mib,gpu,model\nn1,-5,1024,0,\n");
  auto n = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), bad_nodes, ImportOptions{});
  ASSERT_FALSE(n.is_ok());
  EXPECT_NE(n.status().message().find("nodes.csv:2:4: column cpu_milli: must be > 0"), std::string::npos)
      << n.status().message();
}

TEST(GpuModelFilterTest, OnlyAllowedModelsAndTheKubernetesStyleReason) {
  sched::ResourceNames names;
  auto make_pod = [&](const std::string& allow) {
    api::Pod p;
    p.mutable_metadata()->set_name("p");
    p.mutable_metadata()->set_namespace_("default");
    if (!allow.empty()) (*p.mutable_metadata()->mutable_annotations())[kGpuModelAllowAnnotation] = allow;
    p.mutable_spec()->add_containers()->set_name("c");
    auto info = sched::PodInfo::from_pod(std::make_shared<const api::Pod>(p), names);
    EXPECT_TRUE(info.is_ok());
    return *info;
  };
  auto node = [](const std::string& model) {
    sched::NodeInfo n;
    n.name = "n";
    if (!model.empty()) n.labels = {{kGpuModelLabel, model}};
    return n;
  };
  sched::GpuModelFilter f;
  sched::Snapshot snap;
  EXPECT_TRUE(f.filter(make_pod(""), node(""), snap).is_success());
  EXPECT_TRUE(f.filter(make_pod("T4|V100M16"), node("V100M16"), snap).is_success());
  EXPECT_TRUE(f.filter(make_pod("T4|V100M16"), node("T4"), snap).is_success());
  auto s = f.filter(make_pod("T4|V100M16"), node("V100M32"), snap);
  ASSERT_FALSE(s.is_success());
  EXPECT_EQ(s.reason(0), "node(s) didn't match Pod's GPU model");
  EXPECT_FALSE(f.filter(make_pod("T4"), node("T4X"), snap).is_success()) << "whole names only";
  EXPECT_FALSE(f.filter(make_pod("T4"), node(""), snap).is_success()) << "CPU-only node";
  // It is part of the default framework.
  auto fw = sched::make_default_framework();
  bool found = false;
  for (auto n : fw->plugin_names()) found = found || n == "GpuModel";
  EXPECT_TRUE(found);
}

TEST(ReplayTest, SmallGpuClusterEndToEnd) {
  ImportOptions opt;
  auto t = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), testdata("gpu_nodes.csv"), opt);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  auto rs = build_replay_scenario(*t, nullptr, opt);
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  EXPECT_EQ(rs->scenario.total_nodes(), 4);
  EXPECT_EQ(rs->scenario.node_groups.size(), 3u) << "the two T4 machines form one group";
  // pod-huge (200 cores) and pod-wrong-model (A100) fit no node.
  EXPECT_EQ(rs->pods_never_placeable, 2);
  EXPECT_EQ(rs->capacity.gpu_milli, 8000);

  scenarios::SimRunOptions so;
  so.out_dir = temp_dir("small-run");
  so.report = false;
  auto out = run_replay(*rs, so);
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  const auto& m = out->metrics;
  EXPECT_EQ(m.pods_submitted, 8);
  EXPECT_EQ(m.pods_placed, 6);
  EXPECT_EQ(m.pods_never_placed, 2);
  std::map<std::string, std::string> node_of(m.placements.begin(), m.placements.end());
  auto model_of = [&](const std::string& pod_name) {
    auto it = rs->gpu_model_of_node.find(node_of.at(pod_name));
    return it == rs->gpu_model_of_node.end() ? std::string() : it->second;
  };
  EXPECT_EQ(model_of("pod-v100"), "V100M16");
  EXPECT_EQ(model_of("pod-t4-whole"), "T4");
  // pod-wait needs all 4 GPUs of the V100 machine: it waits until pod-v100
  // leaves at 900 s, as it did in the trace.
  EXPECT_EQ(model_of("pod-wait"), "V100M16");
  EXPECT_GE(m.queueing.max_s, 840.0);
  EXPECT_LT(m.queueing.max_s, 845.0);
  EXPECT_EQ(m.peak_pending, 3);  // huge, wrong-model and wait at 60 s
  EXPECT_EQ(m.trace_pods_placed, 6);
  EXPECT_DOUBLE_EQ(m.trace_queueing.max_s, 845.0);

  const auto& j = out->run.summary["replay"];
  EXPECT_EQ(j["pods_submitted"], 8);
  EXPECT_EQ(j["pods_never_placeable"], 2);
  EXPECT_TRUE(j["queueing_delay_s"].contains("p99"));
  EXPECT_TRUE(fs::exists(so.out_dir + "/replay_comparison.csv"));
  EXPECT_TRUE(fs::exists(so.out_dir + "/replay.html"));
  // The trace's allocation at 100 s: pod-a, pod-share, pod-v100, pod-t4-whole run.
  bool checked = false;
  for (const auto& p : m.series) {
    if (p.t_s >= 100 && !checked) {
      EXPECT_EQ(p.trace_running, 4);
      EXPECT_EQ(p.replay_running, 4);
      EXPECT_NEAR(p.trace_gpu, (300.0 + 2000 + 2000) / 8000, 1e-9);
      checked = true;
    }
  }
  EXPECT_TRUE(checked);
}

TEST(ReplayTest, BaseScenarioProvidesTheCluster) {
  auto base = scenarios::load_scenario_text(R"(
name: base
duration: 1h
cluster:
  node_groups:
    - name: big
      count: 2
      capacity: {cpu: "64", memory: 512Gi, pods: "110", alibaba.com/gpu: "8", alibaba.com/gpu-milli: "8000"}
      labels: {alibaba.com/gpu-model: T4}
)", "base.yaml", ".");
  ASSERT_TRUE(base.is_ok()) << base.status().message();
  ImportOptions opt;
  auto t = import_alibaba_gpu_2023(testdata("gpu_pods.csv"), testdata("gpu_nodes.csv"), opt);
  ASSERT_TRUE(t.is_ok());
  auto rs = build_replay_scenario(*t, &*base, opt);
  ASSERT_TRUE(rs.is_ok()) << rs.status().message();
  EXPECT_EQ(rs->scenario.total_nodes(), 2);
  EXPECT_EQ(rs->scenario.duration, seconds(6060)) << "long enough for the trace";
  // Only T4 machines: pod-v100 (V100M16|A10), pod-wrong-model (A100) and pod-huge never fit.
  EXPECT_EQ(rs->pods_never_placeable, 3);
}

}  // namespace
}  // namespace flotilla::replay
