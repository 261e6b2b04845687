#include "scenarios/replay/export.h"

#include <yaml-cpp/yaml.h>

#include <fstream>

#include "core/api/quantity.h"
#include "core/api/types.pb.h"

namespace flotilla::replay {

namespace {

// "90s", "1500ms": forms the scenario loader reads back exactly.
std::string duration_text(Duration d) {
  const int64_t ns = d.count();
  if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + "s";
  if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + "ms";
  return std::to_string(ns / 1000) + "us";
}

void emit_resources(YAML::Emitter& y, const sim::NodeResources& r) {
  y << YAML::BeginMap;
  y << YAML::Key << "cpu" << YAML::Value << api::Quantity::from_milli(r.cpu_millis).to_string();
  y << YAML::Key << "memory" << YAML::Value << api::Quantity::from_value(r.memory_bytes).to_string();
  y << YAML::Key << "pods" << YAML::Value << std::to_string(r.pods);
  for (const auto& [k, v] : r.extended) y << YAML::Key << k << YAML::Value << std::to_string(v);
  y << YAML::EndMap;
}

}  // namespace

Status write_scenario_yaml(const ReplayScenario& replay, const std::string& path) {
  const scenarios::LoadedScenario& sc = replay.scenario;
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << sc.name;
  y << YAML::Key << "description" << YAML::Value
    << "Imported by flotilla replay --to: " + std::to_string(replay.pods.size()) + " pods, " +
           std::to_string(sc.total_nodes()) + " nodes.";
  y << YAML::Key << "seed" << YAML::Value << sc.seed;
  y << YAML::Key << "duration" << YAML::Value << duration_text(sc.duration);
  y << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "timing" << YAML::Value << "kubernetes";
  const TimingProfile t = replay_timing();
  y << YAML::Key << "timing_overrides" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "node_status_update_period" << YAML::Value << duration_text(t.node_status_update_period);
  y << YAML::Key << "agent_sync_period" << YAML::Value << duration_text(t.agent_sync_period);
  y << YAML::Key << "node_monitor_period" << YAML::Value << duration_text(t.node_monitor_period);
  y << YAML::Key << "node_monitor_grace_period" << YAML::Value << duration_text(t.node_monitor_grace_period);
  y << YAML::EndMap;
  y << YAML::Key << "node_groups" << YAML::Value << YAML::BeginSeq;
  for (const auto& g : sc.node_groups) {
    y << YAML::BeginMap;
    y << YAML::Key << "name" << YAML::Value << g.name;
    y << YAML::Key << "count" << YAML::Value << g.count;
    y << YAML::Key << "capacity" << YAML::Value;
    emit_resources(y, g.capacity);
    if (!g.labels.empty()) {
      y << YAML::Key << "labels" << YAML::Value << YAML::BeginMap;
      for (const auto& [k, v] : g.labels) y << YAML::Key << k << YAML::Value << v;
      y << YAML::EndMap;
    }
    y << YAML::EndMap;
  }
  y << YAML::EndSeq << YAML::EndMap;  // cluster

  y << YAML::Key << "workload" << YAML::Value << YAML::BeginSeq;
  for (const auto& a : sc.workload) {
    y << YAML::BeginMap << YAML::Key << "at" << YAML::Value << duration_text(a.at);
    if (!a.apply.empty()) {
      y << YAML::Key << "apply" << YAML::Value << YAML::BeginSeq;
      for (const auto& obj : a.apply) {
        const auto& pod = static_cast<const api::Pod&>(*obj.object);
        y << YAML::BeginMap;
        y << YAML::Key << "apiVersion" << YAML::Value << "v1";
        y << YAML::Key << "kind" << YAML::Value << "Pod";
        y << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
        y << YAML::Key << "name" << YAML::Value << pod.metadata().name();
        std::map<std::string, std::string> labels(pod.metadata().labels().begin(),
                                                  pod.metadata().labels().end());
        y << YAML::Key << "labels" << YAML::Value << YAML::Flow << labels;
        if (!pod.metadata().annotations().empty()) {
          std::map<std::string, std::string> ann(pod.metadata().annotations().begin(),
                                                 pod.metadata().annotations().end());
          y << YAML::Key << "annotations" << YAML::Value << YAML::Flow << ann;
        }
        y << YAML::EndMap;
        y << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
        y << YAML::Key << "restartPolicy" << YAML::Value << pod.spec().restart_policy();
        y << YAML::Key << "containers" << YAML::Value << YAML::BeginSeq;
        for (const auto& c : pod.spec().containers()) {
          std::map<std::string, std::string> req(c.resources().requests().begin(),
                                                 c.resources().requests().end());
          y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << c.name() << YAML::Key
            << "image" << YAML::Value << c.image() << YAML::Key << "resources" << YAML::Value
            << YAML::BeginMap << YAML::Key << "requests" << YAML::Value << YAML::Flow << req
            << YAML::EndMap << YAML::EndMap;
        }
        y << YAML::EndSeq << YAML::EndMap << YAML::EndMap;
      }
      y << YAML::EndSeq;
    }
    if (a.remove) {
      y << YAML::Key << "delete" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key
        << "kind" << YAML::Value << a.remove->kind() << YAML::Key << "name" << YAML::Value
        << a.remove->name() << YAML::EndMap;
    }
    y << YAML::EndMap;
  }
  y << YAML::EndSeq;
  if (!sc.faults.empty()) {
    y << YAML::Key << "faults" << YAML::Value << YAML::BeginSeq;
    for (const auto& f : sc.faults) {
      y << YAML::Flow << YAML::BeginMap << YAML::Key << "at" << YAML::Value << duration_text(f.at)
        << YAML::Key
        << (f.kind == sim::FaultSpec::Kind::kKillNode ? "kill_node" : "restart_node")
        << YAML::Value << f.nodes.at(0) << YAML::EndMap;
    }
    y << YAML::EndSeq;
  }
  y << YAML::EndMap;
  std::ofstream out(path, std::ios::trunc);
  out << "# Generated by `flotilla replay --to` from a " << sc.path
      << " trace; edit freely, run with `flotilla sim`.\n"
      << y.c_str() << "\n";
  if (!out) return Status(StatusCode::kUnavailable, "cannot write " + path);
  return Status::ok();
}

}  // namespace flotilla::replay
