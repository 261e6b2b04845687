#include "scenarios/replay/replay.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <tuple>

#include "core/api/object.h"
#include "core/api/quantity.h"
#include "core/api/types.pb.h"
#include "scenarios/replay/importers.h"

namespace flotilla::replay {

namespace {

struct Shape {
  sim::NodeResources capacity;
  std::map<std::string, std::string> labels;
  auto key() const {
    return std::tie(capacity.cpu_millis, capacity.memory_bytes, capacity.pods,
                    capacity.ephemeral_storage_bytes, capacity.extended, labels);
  }
  bool operator<(const Shape& o) const { return key() < o.key(); }
};

std::string group_name(const Shape& s, std::set<std::string>& used) {
  std::string base;
  auto model = s.labels.find(kGpuModelLabel);
  base = model != s.labels.end() ? dns_label(model->second) : "node";
  base += "-" + std::to_string((s.capacity.cpu_millis + 999) / 1000) + "c";
  auto gpu = s.capacity.extended.find(kGpuResource);
  if (gpu != s.capacity.extended.end()) base += std::to_string(gpu->second) + "g";
  std::string name = base;
  for (int v = 2; used.count(name); ++v) name = base + "-v" + std::to_string(v);
  used.insert(name);
  return name;
}

api::DecodedObject pod_object(const TracePod& p, const std::string& format) {
  api::Pod pod;
  pod.set_api_version("v1");
  pod.set_kind("Pod");
  auto* meta = pod.mutable_metadata();
  meta->set_name(p.name);
  meta->set_namespace_("default");
  (*meta->mutable_labels())["flotilla.io/replay"] = format;
  for (const auto& [k, v] : p.labels) (*meta->mutable_labels())[k] = v;
  if (!p.gpu_model_allow.empty()) {
    (*meta->mutable_annotations())[kGpuModelAllowAnnotation] = p.gpu_model_allow;
  }
  auto* spec = pod.mutable_spec();
  spec->set_restart_policy("Never");
  auto* c = spec->add_containers();
  c->set_name("task");
  c->set_image("replay/" + format + ":task");
  auto& req = *c->mutable_resources()->mutable_requests();
  req["cpu"] = api::Quantity::from_milli(p.cpu_millis).to_string();
  req["memory"] = api::Quantity::from_value(p.memory_bytes).to_string();
  for (const auto& [k, v] : p.extended) req[k] = std::to_string(v);
  api::DecodedObject d;
  d.kind = api::Kind::kPod;
  d.object = std::make_shared<api::Pod>(std::move(pod));
  d.source = "trace";
  return d;
}

}  // namespace

TimingProfile replay_timing() {
  TimingProfile t = TimingProfile::kubernetes();
  t.name = "replay";
  t.node_lease_duration = hours(48);
  t.node_status_update_period = hours(12);
  t.node_status_report_period = hours(12);
  t.agent_sync_period = hours(12);
  t.node_monitor_period = minutes(10);
  t.node_monitor_grace_period = hours(36);
  return t;
}

bool fits_empty_node(const TracePod& pod, const sim::NodeResources& a,
                     const std::map<std::string, std::string>& labels) {
  if (a.pods < 1 || pod.cpu_millis > a.cpu_millis || pod.memory_bytes > a.memory_bytes) {
    return false;
  }
  for (const auto& [k, v] : pod.extended) {
    auto it = a.extended.find(k);
    if (v > 0 && (it == a.extended.end() || it->second < v)) return false;
  }
  if (!pod.gpu_model_allow.empty()) {
    auto m = labels.find(kGpuModelLabel);
    if (m == labels.end() || m->second.empty()) return false;
    std::string_view allow = pod.gpu_model_allow;
    while (true) {
      size_t bar = allow.find('|');
      if (allow.substr(0, bar) == m->second) return true;
      if (bar == std::string_view::npos) return false;
      allow.remove_prefix(bar + 1);
    }
  }
  return true;
}

StatusOr<ReplayScenario> build_replay_scenario(const ImportedTrace& trace,
                                               const scenarios::LoadedScenario* base,
                                               const ImportOptions& options) {
  ReplayScenario out;
  scenarios::LoadedScenario& sc = out.scenario;
  if (base != nullptr) {
    sc = *base;
    sc.name = base->name + "-replay";
    sc.duration = std::max(base->duration, trace.end);
    if (base->proto.output().sample_period().empty()) {
      sc.sample_period = std::max<Duration>(sc.duration / 720, seconds(1));
    }
    if (!trace.node_events.empty()) {
      out.warnings.push_back(std::to_string(trace.node_events.size()) +
                             " machine additions/removals of the trace are ignored: the cluster "
                             "comes from the scenario");
    }
    if (sc.scheduler_mode == "flow") {
      out.warnings.push_back(
          "scheduler mode flow groups pods by class and does not check GPU model constraints "
          "per pod; use greedy for traces with gpu_spec");
    }
  } else {
    if (trace.nodes.empty()) {
      return Status(StatusCode::kInvalid, "the trace has no machines; give a node list or --scenario");
    }
    sc.name = "replay-" + trace.format;
    sc.path = trace.format;
    sc.seed = 1;
    sc.duration = std::max<Duration>(trace.end, seconds(1));
    sc.timing = replay_timing();
    sc.sample_period = std::max<Duration>(sc.duration / 720, seconds(1));
    sc.proto.set_name(sc.name);
    sc.proto.set_duration(format_duration(sc.duration));

    // Identical machines -> one group, in order of first appearance.
    std::map<Shape, size_t> group_of;
    std::vector<std::vector<const TraceNode*>> members;
    std::set<std::string> used;
    for (const TraceNode& n : trace.nodes) {
      Shape s{n.capacity, n.labels};
      auto [it, inserted] = group_of.emplace(s, sc.node_groups.size());
      if (inserted) {
        sim::NodeGroupSpec g;
        g.name = group_name(s, used);
        g.capacity = n.capacity;
        g.labels = n.labels;
        sc.node_groups.push_back(std::move(g));
        members.emplace_back();
      }
      members[it->second].push_back(&n);
    }
    for (size_t g = 0; g < sc.node_groups.size(); ++g) {
      auto& group = sc.node_groups[g];
      const int original = static_cast<int>(members[g].size());
      group.count = static_cast<int>(std::llround(original * options.node_scale));
      for (int i = 0; i < std::min(group.count, original); ++i) {
        out.node_of_machine[members[g][static_cast<size_t>(i)]->id] =
            group.name + "-" + std::to_string(i);
      }
    }
    sc.node_groups.erase(std::remove_if(sc.node_groups.begin(), sc.node_groups.end(),
                                        [](const sim::NodeGroupSpec& g) { return g.count <= 0; }),
                         sc.node_groups.end());
    // Machine additions and removals.
    for (size_t i = 0; i < trace.node_events.size(); ++i) {
      const NodeEvent& e = trace.node_events[i];
      auto it = out.node_of_machine.find(e.id);
      if (it == out.node_of_machine.end()) continue;  // scaled away
      sim::FaultSpec f;
      f.kind = e.up ? sim::FaultSpec::Kind::kRestartNode : sim::FaultSpec::Kind::kKillNode;
      f.name = "trace-machine-" + std::string(e.up ? "add" : "remove") + "[" + std::to_string(i) + "]";
      f.at = e.at;
      f.nodes = {it->second};
      sc.faults.push_back(std::move(f));
      ++out.trace_events;
    }
  }
  if (sc.total_nodes() == 0) return Status(StatusCode::kInvalid, "the replay cluster has no nodes");

  for (const auto& g : sc.node_groups) {
    const sim::NodeResources& a = g.allocatable.value_or(g.capacity);
    auto model = g.labels.find(kGpuModelLabel);
    for (int i = 0; i < g.count; ++i) {
      std::string node = g.name + "-" + std::to_string(i);
      if (model != g.labels.end()) out.gpu_model_of_node[node] = model->second;
    }
    out.capacity.cpu_millis += a.cpu_millis * g.count;
    out.capacity.memory_bytes += a.memory_bytes * g.count;
    if (auto it = a.extended.find(kGpuMilliResource); it != a.extended.end()) {
      out.capacity.gpu_milli += it->second * g.count;
    } else if (auto gi = a.extended.find(kGpuResource); gi != a.extended.end()) {
      out.capacity.gpu_milli += gi->second * 1000 * g.count;
    }
  }

  // Pods: arrivals and departures, in time order (departures first at equal
  // times, so a machine freed at t can take a pod arriving at t; a pod that
  // lives 0 s is created before it is deleted).
  std::set<std::string_view> names;
  struct Ev {
    Duration at;
    int phase;
    size_t pod;
  };
  std::vector<Ev> evs;
  evs.reserve(trace.pods.size() * 2);
  for (size_t i = 0; i < trace.pods.size(); ++i) {
    const TracePod& p = trace.pods[i];
    if (!names.insert(p.name).second) {
      return Status(StatusCode::kInvalid, "two trace pods are named \"" + p.name + "\"");
    }
    evs.push_back({p.created, 1, i});
    if (p.deleted && *p.deleted <= sc.duration) {
      evs.push_back({*p.deleted, *p.deleted == p.created ? 2 : 0, i});
    }
    bool fits = false;
    for (const auto& g : sc.node_groups) {
      if (g.count > 0 && fits_empty_node(p, g.allocatable.value_or(g.capacity), g.labels)) {
        fits = true;
        break;
      }
    }
    if (!fits) {
      ++out.pods_never_placeable;
      if (out.never_placeable_examples.size() < 10) out.never_placeable_examples.push_back(p.name);
    }
    analysis::ReplayPod rp;
    rp.name = p.name;
    rp.created_s = to_seconds(p.created);
    if (p.scheduled) rp.trace_scheduled_s = to_seconds(*p.scheduled);
    if (p.deleted) rp.deleted_s = to_seconds(*p.deleted);
    rp.cpu_millis = p.cpu_millis;
    rp.memory_bytes = p.memory_bytes;
    rp.gpu_milli = p.gpu_milli();
    out.pods.push_back(std::move(rp));
  }
  std::stable_sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
    return std::tie(a.at, a.phase, a.pod) < std::tie(b.at, b.phase, b.pod);
  });
  sc.workload.reserve(sc.workload.size() + evs.size());
  for (const Ev& e : evs) {
    const TracePod& p = trace.pods[e.pod];
    scenarios::WorkloadAction a;
    a.at = e.at;
    a.path = "trace pod " + p.name;
    if (e.phase == 1) {
      a.apply.push_back(pod_object(p, trace.format));
    } else {
      scenarios::ObjectRef ref;
      ref.set_kind("Pod");
      ref.set_namespace_("default");
      ref.set_name(p.name);
      a.remove = ref;
    }
    sc.workload.push_back(std::move(a));
  }
  out.trace_events += static_cast<int64_t>(evs.size());
  for (const auto& w : trace.warnings) out.warnings.push_back(w);
  return out;
}

}  // namespace flotilla::replay

namespace flotilla::replay {

StatusOr<ReplayOutcome> run_replay(const ReplayScenario& replay,
                                   const scenarios::SimRunOptions& options) {
  ReplayOutcome out;
  auto run = scenarios::run_simulation(replay.scenario, options);
  if (!run.is_ok()) return run.status();
  out.run = std::move(run).value();
  const double end_s = to_seconds(replay.scenario.duration);
  auto m = analysis::compute_replay_metrics(out.run.out_dir + "/trace.pb", replay.pods,
                                            replay.capacity, end_s);
  if (!m.is_ok()) return m.status();
  out.metrics = std::move(m).value();
  nlohmann::ordered_json j = analysis::replay_metrics_to_json(out.metrics);
  j["pods_never_placeable"] = replay.pods_never_placeable;
  j["trace_events"] = replay.trace_events;
  const double wall = out.run.summary.value("wall_seconds", 0.0);
  out.trace_events_per_second = wall > 0 ? static_cast<double>(replay.trace_events) / wall : 0;
  j["trace_events_per_second"] = out.trace_events_per_second;
  out.run.summary["replay"] = j;
  {
    const std::string path = out.run.out_dir + "/summary.json";
    std::ofstream f(path, std::ios::trunc);
    f << out.run.summary.dump(2) << "\n";
    if (!f) return Status(StatusCode::kUnavailable, "cannot write " + path);
  }
  auto rep = analysis::write_replay_report(out.metrics, j, out.run.out_dir);
  if (!rep.is_ok()) return rep.status();
  out.comparison_html = rep->html_path;
  if (out.run.report_warning.empty()) out.run.report_warning = rep->warning;
  return out;
}

}  // namespace flotilla::replay
