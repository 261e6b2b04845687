#include "scenarios/replay/recorded.h"

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "analysis/trace_io.h"
#include "core/api/object.h"
#include "core/api/quantity.h"
#include "core/api/types.pb.h"
#include "scenarios/replay/export.h"

namespace flotilla::replay {

namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

using ObjectKey = std::tuple<std::string, std::string, std::string>;  // kind, ns, name

ObjectKey key_of(const api::DecodedObject& o) {
  const api::KindInfo& k = api::kind_info(o.kind);
  const api::ObjectMeta& m = k.meta(*o.object);
  std::string ns = k.namespaced ? (m.namespace_().empty() ? "default" : m.namespace_()) : "";
  return {std::string(k.name), ns, m.name()};
}

StatusOr<std::string> read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found_error(path + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string nsname(const trace::Record& r) { return r.namespace_() + "/" + r.name(); }

// Requests of a Pod manifest (sum over containers).
void pod_requests(const api::Pod& pod, analysis::ReplayPod* out) {
  for (const auto& c : pod.spec().containers()) {
    const auto& req = c.resources().requests();
    if (auto it = req.find("cpu"); it != req.end()) {
      if (auto q = api::Quantity::parse(it->second); q.is_ok()) out->cpu_millis += q->milli_value();
    }
    if (auto it = req.find("memory"); it != req.end()) {
      if (auto q = api::Quantity::parse(it->second); q.is_ok()) out->memory_bytes += q->value();
    }
  }
}

const sim::FaultSpec* find_fault(const scenarios::LoadedScenario& sc, const std::string& name) {
  for (const auto& f : sc.faults) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

StatusOr<RecordedRun> read_recorded_run(const std::string& path) {
  RecordedRun run;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    run.dir = path;
    run.trace_path = (fs::path(path) / "trace.pb").string();
  } else {
    run.trace_path = path;
    run.dir = fs::path(path).parent_path().string();
    if (run.dir.empty()) run.dir = ".";
  }
  if (!fs::exists(run.trace_path, ec)) {
    return not_found_error(run.trace_path + ": no trace.pb (give a results directory of flotilla "
                                            "sim or flotilla live, or its trace.pb)");
  }
  // The scenario as it ran, with the directory its relative files live in.
  const std::string scenario_path = run.dir + "/scenario.yaml";
  auto text = read_text(scenario_path);
  if (!text.is_ok()) {
    return not_found_error(scenario_path +
                           ": missing; runs record their scenario since scenario.yaml was added "
                           "to results directories; re-run the scenario to replay it");
  }
  std::string base_dir = run.dir;
  if (auto p = text->find("# base_dir: "); p != std::string::npos) {
    auto e = text->find('\n', p);
    base_dir = text->substr(p + 12, e == std::string::npos ? std::string::npos : e - p - 12);
  }
  auto sc = scenarios::load_scenario_text(*text, scenario_path, base_dir);
  if (!sc.is_ok()) return sc.status();
  run.scenario = std::move(sc).value();
  run.seed = run.scenario.seed;
  run.length = run.scenario.duration;

  // Every manifest the scenario applies, in order, by object.
  std::map<ObjectKey, std::deque<const api::DecodedObject*>> manifests;
  for (const auto& a : run.scenario.workload) {
    for (const auto& o : a.apply) manifests[key_of(o)].push_back(&o);
  }
  std::map<std::string, size_t> workload_pod;  // name -> index in run.pods
  std::map<std::string, size_t> open_partition;  // fault name -> index in run.faults
  int64_t index = -1;
  Status bad;
  Status s = analysis::read_trace(run.trace_path, [&](const trace::Record& r) {
    ++index;
    const Duration at(r.time_ns());
    const std::string where = run.trace_path + ": record " + std::to_string(index);
    switch (r.type()) {
      case trace::RUN_STARTED:
        if (auto it = r.attrs().find("backend"); it != r.attrs().end()) run.backend = it->second;
        run.seed = static_cast<uint64_t>(r.value());
        break;
      case trace::RUN_ENDED:
        run.length = at;
        run.interrupted = r.reason() == "Interrupted";
        break;
      case trace::WORKLOAD_APPLIED: {
        scenarios::WorkloadAction a;
        a.at = at;
        a.path = "recorded workload (" + where + ")";
        const std::string& reason = r.reason();
        if (reason == "Scale") {
          scenarios::Scale scale;
          scale.set_kind("ReplicationController");
          scale.set_namespace_(r.namespace_());
          scale.set_name(r.name());
          scale.set_replicas(static_cast<int32_t>(r.value()));
          a.scale = scale;
        } else if (reason.rfind("Delete", 0) == 0 && api::kind_by_name(reason.substr(6)) != nullptr) {
          scenarios::ObjectRef ref;
          ref.set_kind(reason.substr(6));
          ref.set_namespace_(r.namespace_());
          ref.set_name(r.name());
          a.remove = ref;
          // A workload Pod's recorded lifetime ends with its delete request.
          if (auto it = workload_pod.find(r.name()); it != workload_pod.end() &&
                                                     ref.kind() == "Pod" && r.namespace_() == "default" &&
                                                     !run.pods[it->second].deleted_s) {
            run.pods[it->second].deleted_s = to_seconds(at);
          }
        } else {
          auto it = manifests.find({reason, r.namespace_(), r.name()});
          if (it == manifests.end() || it->second.empty()) {
            bad = bad_request_error(where + ": " + reason + " " + nsname(r) +
                                    " was applied but is not in " + scenario_path);
            return false;
          }
          const api::DecodedObject* obj = it->second.front();
          if (it->second.size() > 1) it->second.pop_front();  // later applies of the same object
          a.apply.push_back(*obj);
          if (obj->kind == api::Kind::kPod && r.namespace_() == "default" &&
              !workload_pod.count(r.name())) {
            analysis::ReplayPod p;
            p.name = r.name();
            p.created_s = to_seconds(at);
            pod_requests(static_cast<const api::Pod&>(*obj->object), &p);
            workload_pod[p.name] = run.pods.size();
            run.pods.push_back(std::move(p));
          }
        }
        run.workload.push_back(std::move(a));
        break;
      }
      case trace::NODE_DOWN:
      case trace::NODE_UP: {
        sim::FaultSpec f;
        const bool down = r.type() == trace::NODE_DOWN;
        f.kind = down ? sim::FaultSpec::Kind::kKillNode : sim::FaultSpec::Kind::kRestartNode;
        f.name = "recorded-" + std::string(down ? "node-down" : "node-up") + "[" +
                 std::to_string(index) + "]";
        f.at = at;
        f.nodes = {r.node()};
        run.faults.push_back(std::move(f));
        break;
      }
      case trace::FAULT_INJECTED: {
        const std::string& reason = r.reason();
        auto attr = r.attrs().find("fault");
        const std::string name = attr != r.attrs().end() ? attr->second : "";
        if (reason == "kill_containers" || reason == "hang_containers" || reason == "partition") {
          const sim::FaultSpec* spec = find_fault(run.scenario, name);
          if (spec == nullptr) {
            run.warnings.push_back(where + ": " + reason + " fault \"" + name +
                                   "\" is not in the scenario; not replayed");
            break;
          }
          sim::FaultSpec f = *spec;
          f.name = "recorded-" + name;
          f.at = at;
          if (reason == "partition") {
            f.duration.reset();  // from its FAULT_HEALED, if the run saw one
            open_partition[name] = run.faults.size();
          }
          run.faults.push_back(std::move(f));
        } else if (reason == "container_crash") {
          // A stochastic container crash (the simulator's hazards): one
          // container of the hazard's pods, at the recorded time.
          const sim::FaultSpec* spec = find_fault(run.scenario, r.message());
          if (spec == nullptr) {
            run.warnings.push_back(where + ": container crash of \"" + r.message() +
                                   "\" is not in the scenario; not replayed");
            break;
          }
          sim::FaultSpec f;
          f.kind = sim::FaultSpec::Kind::kKillContainers;
          f.name = "recorded-crash[" + std::to_string(index) + "]";
          f.at = at;
          f.selector = spec->selector;
          f.selector_text = spec->selector_text;
          f.count = 1;
          f.exit_code = r.exit_code();
          run.faults.push_back(std::move(f));
        }
        // kill_node, restart_node, power_off, node_failure: replayed as the
        // NODE_DOWN / NODE_UP records they cause.
        break;
      }
      case trace::FAULT_HEALED: {
        auto attr = r.attrs().find("fault");
        if (r.reason() == "partition" && attr != r.attrs().end()) {
          auto it = open_partition.find(attr->second);
          if (it != open_partition.end()) {
            run.faults[it->second].duration = at - run.faults[it->second].at;
            open_partition.erase(it);
          }
        }
        break;
      }
      case trace::POD_SCHEDULED:
        if (auto it = workload_pod.find(r.name()); it != workload_pod.end() &&
                                                   r.namespace_() == "default" &&
                                                   !run.pods[it->second].trace_scheduled_s) {
          run.pods[it->second].trace_scheduled_s = to_seconds(at);
        }
        break;
      case trace::POD_DELETED:
        if (auto it = workload_pod.find(r.name()); it != workload_pod.end() &&
                                                   r.namespace_() == "default" &&
                                                   !run.pods[it->second].deleted_s) {
          run.pods[it->second].deleted_s = to_seconds(at);
        }
        break;
      default:
        break;
    }
    return true;
  });
  if (!s.is_ok()) return s;
  if (!bad.is_ok()) return bad;
  run.records = index + 1;
  if (run.backend.empty()) run.warnings.push_back(run.trace_path + ": no RUN_STARTED record");
  // summary.json states the seed the run used (sim --seed overrides the scenario's).
  if (auto sj = read_text(run.dir + "/summary.json"); sj.is_ok()) {
    auto j = ordered_json::parse(*sj, nullptr, false);
    if (j.is_object() && j.contains("seed") && j["seed"].is_number_unsigned()) {
      run.seed = j["seed"].get<uint64_t>();
    }
  }
  return run;
}

StatusOr<ReplayScenario> build_recorded_replay(const RecordedRun& run,
                                               const scenarios::LoadedScenario* base,
                                               const ImportOptions& options) {
  ReplayScenario out;
  scenarios::LoadedScenario& sc = out.scenario;
  const double start_s = options.window_start_s.value_or(0.0);
  // Recorded time -> replay time; nullopt: after the window.
  auto map_time = [&](Duration at) -> std::optional<Duration> {
    const double t = to_seconds(at);
    if (options.window_end_s && t >= *options.window_end_s) return std::nullopt;
    if (t <= start_s) return Duration(0);
    if (options.speedup == 1.0 && start_s == 0.0) return at;
    return Duration(static_cast<int64_t>(std::llround((t - start_s) / options.speedup * 1e9)));
  };
  double end_s = to_seconds(run.length);
  if (options.window_end_s) end_s = std::min(end_s, *options.window_end_s);
  const Duration length(
      std::max<int64_t>(static_cast<int64_t>(std::llround((end_s - start_s) / options.speedup * 1e9)),
                        1000000000));

  const scenarios::LoadedScenario& from = base != nullptr ? *base : run.scenario;
  sc = from;
  sc.name = from.name + "-replay";
  if (base == nullptr) {
    sc.seed = run.seed;
    sc.workload.clear();
    sc.faults.clear();
    sc.duration = length;
  } else {
    sc.duration = std::max(base->duration, length);
  }
  if (sc.duration != from.duration && from.proto.output().sample_period().empty()) {
    sc.sample_period = std::max<Duration>(sc.duration / 720, seconds(1));
  }
  if (sc.total_nodes() == 0) return invalid_error("the replay cluster has no nodes");

  std::set<std::string> nodes;
  for (const auto& g : sc.node_groups) {
    for (int i = 0; i < g.count; ++i) nodes.insert(g.name + "-" + std::to_string(i));
    const sim::NodeResources& a = g.allocatable.value_or(g.capacity);
    out.capacity.cpu_millis += a.cpu_millis * g.count;
    out.capacity.memory_bytes += a.memory_bytes * g.count;
  }

  for (const auto& a : run.workload) {
    auto at = map_time(a.at);
    if (!at) continue;
    scenarios::WorkloadAction copy = a;
    copy.at = *at;
    sc.workload.push_back(std::move(copy));
    ++out.trace_events;
  }
  std::stable_sort(sc.workload.begin(), sc.workload.end(),
                   [](const scenarios::WorkloadAction& x, const scenarios::WorkloadAction& y) {
                     return x.at < y.at;
                   });
  int64_t dropped = 0;
  for (const auto& f : run.faults) {
    auto at = map_time(f.at);
    if (!at) continue;
    bool known = true;
    for (const auto& n : f.nodes) known = known && nodes.count(n) > 0;
    if (!known) {
      ++dropped;
      continue;
    }
    sim::FaultSpec copy = f;
    // Named as the loader names them, so the replay's own scenario.yaml and
    // trace agree (a replay can be replayed again).
    copy.name = "faults[" + std::to_string(sc.faults.size()) + "]";
    copy.at = *at;
    if (copy.duration) copy.duration = Duration(static_cast<int64_t>(
                           std::llround(static_cast<double>(copy.duration->count()) / options.speedup)));
    sc.faults.push_back(std::move(copy));
    ++out.trace_events;
  }
  // The scenario proto in step with the replay (results' scenario.yaml, --to).
  if (base == nullptr) sc.proto.clear_faults();
  for (size_t i = base != nullptr ? base->faults.size() : 0; i < sc.faults.size(); ++i) {
    auto v = fault_value(sc.faults[i]);
    if (!v.is_ok()) return v.status();
    *sc.proto.add_faults() = std::move(v).value();
  }
  sc.proto.set_name(sc.name);
  if (dropped > 0) {
    out.warnings.push_back(std::to_string(dropped) +
                           " recorded faults name nodes the replay cluster does not have; dropped");
  }
  for (const auto& p : run.pods) {
    auto created = map_time(Duration(static_cast<int64_t>(std::llround(p.created_s * 1e9))));
    if (!created) continue;
    analysis::ReplayPod rp = p;
    auto remap = [&](double s) -> std::optional<double> {
      auto t = map_time(Duration(static_cast<int64_t>(std::llround(s * 1e9))));
      return t ? std::optional<double>(to_seconds(*t)) : std::nullopt;
    };
    rp.created_s = to_seconds(*created);
    if (p.trace_scheduled_s) rp.trace_scheduled_s = remap(*p.trace_scheduled_s);
    if (p.deleted_s) rp.deleted_s = remap(*p.deleted_s);
    out.pods.push_back(std::move(rp));
  }
  out.warnings.insert(out.warnings.end(), run.warnings.begin(), run.warnings.end());
  return out;
}

std::vector<int64_t> RunEndState::restart_profile() const {
  std::vector<int64_t> v;
  for (const auto& [pod, n] : pod_restarts) v.push_back(n);
  std::sort(v.begin(), v.end());
  return v;
}

StatusOr<RunEndState> read_end_state(const std::string& trace_path) {
  RunEndState st;
  std::map<std::string, std::set<std::string>> eps;
  std::map<std::string, bool> up;
  std::map<std::string, std::string> cond;
  std::map<std::string, std::map<std::string, int64_t>> restarts;  // pod -> container -> count
  Status s = analysis::read_trace(trace_path, [&](const trace::Record& r) {
    switch (r.type()) {
      case trace::REPLICAS_CHANGED:
        st.controllers[nsname(r)] = {r.value(), r.value2()};
        break;
      case trace::WORKLOAD_APPLIED:
        if (r.reason() == "DeleteReplicationController" && r.message().empty()) {
          st.controllers.erase(nsname(r));
        }
        break;
      case trace::ENDPOINT_ADDED:
        eps[r.service()].insert(r.endpoint());
        break;
      case trace::ENDPOINT_REMOVED:
        eps[r.service()].erase(r.endpoint());
        break;
      case trace::NODE_ADDED:
        // Nodes register Ready (the trace has NODE_READY only after NotReady).
        up[r.node()] = true;
        if (!cond.count(r.node())) cond[r.node()] = "Ready";
        break;
      case trace::NODE_UP:
        up[r.node()] = true;
        break;
      case trace::NODE_DOWN:
        up[r.node()] = false;
        break;
      case trace::NODE_REMOVED:
        up.erase(r.node());
        cond.erase(r.node());
        break;
      case trace::NODE_READY:
        cond[r.node()] = "Ready";
        break;
      case trace::NODE_NOT_READY:
        cond[r.node()] = "NotReady";
        break;
      case trace::POD_CREATED:
        restarts[nsname(r)].clear();
        break;
      case trace::CONTAINER_RESTARTED:
        if (auto it = restarts.find(nsname(r)); it != restarts.end()) {
          it->second[r.container()] = r.value();
        }
        break;
      case trace::POD_DELETED:
        restarts.erase(nsname(r));
        break;
      default:
        break;
    }
    return true;
  });
  if (!s.is_ok()) return s;
  for (const auto& [svc, set] : eps) st.endpoints[svc] = static_cast<int64_t>(set.size());
  for (const auto& [node, u] : up) {
    st.nodes[node] = std::string(u ? "up/" : "down/") + (cond.count(node) ? cond[node] : "Unknown");
  }
  for (const auto& [pod, cs] : restarts) {
    int64_t n = 0;
    for (const auto& [c, k] : cs) n += k;
    st.pod_restarts[pod] = n;
  }
  st.pods_alive = static_cast<int64_t>(st.pod_restarts.size());
  return st;
}

ordered_json end_state_to_json(const RunEndState& s) {
  ordered_json j;
  ordered_json c = ordered_json::object();
  for (const auto& [k, v] : s.controllers) c[k] = {{"desired", v.first}, {"ready", v.second}};
  j["controllers"] = c;
  ordered_json e = ordered_json::object();
  for (const auto& [k, v] : s.endpoints) e[k] = v;
  j["endpoints"] = e;
  ordered_json n = ordered_json::object();
  for (const auto& [k, v] : s.nodes) n[k] = v;
  j["nodes"] = n;
  j["pods_alive"] = s.pods_alive;
  j["restart_profile"] = s.restart_profile();
  return j;
}

std::vector<std::string> compare_end_states(const RunEndState& a, const RunEndState& b,
                                            const std::vector<std::string>& named_pods) {
  std::vector<std::string> out;
  auto num = [](int64_t v) { return std::to_string(v); };
  std::set<std::string> keys;
  for (const auto& [k, v] : a.controllers) keys.insert(k);
  for (const auto& [k, v] : b.controllers) keys.insert(k);
  for (const auto& k : keys) {
    auto x = a.controllers.find(k), y = b.controllers.find(k);
    if (x == a.controllers.end() || y == b.controllers.end()) {
      out.push_back("controller " + k + (x == a.controllers.end() ? ": only in the replay"
                                                                   : ": only in the recorded run"));
      continue;
    }
    if (x->second.first != y->second.first) {
      out.push_back("controller " + k + " desired: " + num(x->second.first) + " vs " + num(y->second.first));
    }
    if (x->second.second != y->second.second) {
      out.push_back("controller " + k + " ready: " + num(x->second.second) + " vs " + num(y->second.second));
    }
  }
  keys.clear();
  for (const auto& [k, v] : a.endpoints) keys.insert(k);
  for (const auto& [k, v] : b.endpoints) keys.insert(k);
  for (const auto& k : keys) {
    auto x = a.endpoints.count(k) ? a.endpoints.at(k) : 0;
    auto y = b.endpoints.count(k) ? b.endpoints.at(k) : 0;
    if (x != y) out.push_back("service " + k + " endpoints: " + num(x) + " vs " + num(y));
  }
  keys.clear();
  for (const auto& [k, v] : a.nodes) keys.insert(k);
  for (const auto& [k, v] : b.nodes) keys.insert(k);
  for (const auto& k : keys) {
    std::string x = a.nodes.count(k) ? a.nodes.at(k) : "absent";
    std::string y = b.nodes.count(k) ? b.nodes.at(k) : "absent";
    if (x != y) out.push_back("node " + k + ": " + x + " vs " + y);
  }
  if (a.pods_alive != b.pods_alive) {
    out.push_back("pods alive: " + num(a.pods_alive) + " vs " + num(b.pods_alive));
  }
  if (a.restart_profile() != b.restart_profile()) {
    auto text = [](const std::vector<int64_t>& v) {
      std::string s;
      for (int64_t n : v) s += (s.empty() ? "" : ",") + std::to_string(n);
      return "[" + s + "]";
    };
    out.push_back("restart counts of the pods alive: " + text(a.restart_profile()) + " vs " +
                  text(b.restart_profile()));
  }
  for (const auto& name : named_pods) {
    auto x = a.pod_restarts.find(name), y = b.pod_restarts.find(name);
    if ((x == a.pod_restarts.end()) != (y == b.pod_restarts.end())) {
      out.push_back("pod " + name + (x == a.pod_restarts.end() ? ": alive only in the replay"
                                                               : ": alive only in the recorded run"));
    } else if (x != a.pod_restarts.end() && x->second != y->second) {
      out.push_back("pod " + name + " restarts: " + num(x->second) + " vs " + num(y->second));
    }
  }
  return out;
}

StatusOr<RecordedReplayOutcome> run_recorded_replay(const RecordedRun& run,
                                                    const ReplayScenario& replay,
                                                    const scenarios::SimRunOptions& options) {
  RecordedReplayOutcome out;
  auto r = run_replay(replay, options);
  if (!r.is_ok()) return r.status();
  out.replay = std::move(r).value();
  auto recorded = read_end_state(run.trace_path);
  if (!recorded.is_ok()) return recorded.status();
  out.recorded = std::move(recorded).value();
  auto replayed = read_end_state(out.replay.run.out_dir + "/trace.pb");
  if (!replayed.is_ok()) return replayed.status();
  out.replayed = std::move(replayed).value();
  std::vector<std::string> named;
  for (const auto& a : run.workload) {
    for (const auto& o : a.apply) {
      if (o.kind == api::Kind::kPod) {
        auto [kind, ns, name] = key_of(o);
        named.push_back(ns + "/" + name);
      }
    }
  }
  std::sort(named.begin(), named.end());
  named.erase(std::unique(named.begin(), named.end()), named.end());
  out.differences = compare_end_states(out.recorded, out.replayed, named);

  auto& summary = out.replay.run.summary;
  const double wall = summary.value("wall_seconds", 0.0);
  out.recorded_records_per_second = wall > 0 ? static_cast<double>(run.records) / wall : 0;
  ordered_json& j = summary["replay"];
  j["recorded"] = {{"dir", run.dir},
                   {"backend", run.backend},
                   {"seed", run.seed},
                   {"length_s", to_seconds(run.length)},
                   {"interrupted", run.interrupted},
                   {"records", run.records},
                   {"workload_steps", run.workload.size()},
                   {"faults", run.faults.size()}};
  j["recorded_records_per_second"] = out.recorded_records_per_second;
  j["end_state"] = {{"matches", out.differences.empty()},
                    {"differences", out.differences},
                    {"recorded", end_state_to_json(out.recorded)},
                    {"replay", end_state_to_json(out.replayed)}};
  const std::string path = out.replay.run.out_dir + "/summary.json";
  std::ofstream f(path, std::ios::trunc);
  f << summary.dump(2) << "\n";
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + path);
  return out;
}

}  // namespace flotilla::replay
