#include "scenarios/loader.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/api/quantity.h"
#include "core/api/validation.h"
#include "sim/engine/distribution.h"
#include "sim/world/behaviour.h"

namespace flotilla::scenarios {

namespace {

std::string mark_of(const YAML::Node& n) {
  if (!n.IsDefined()) return "";
  YAML::Mark m = n.Mark();
  if (m.line < 0) return "";
  return std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
}

Status err(const std::string& source, const YAML::Node& n, const std::string& path,
           const std::string& what) {
  return Status(StatusCode::kInvalid, source + ":" + mark_of(n) + path + ": " + what);
}

// Sub-parsers report "path (line L, column C): what"; prefix the file.
Status in_file(const std::string& source, const Status& s) {
  return Status(s.code(), source + ": " + s.message());
}

StatusOr<Duration> duration_of(const std::string& source, const YAML::Node& n,
                               const std::string& path, const std::string& text) {
  auto d = parse_duration(text);
  if (!d.is_ok()) return err(source, n, path, d.status().message());
  if (*d < Duration(0)) return err(source, n, path, "must not be negative");
  return *d;
}

std::string qualify(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  return "default/" + name;
}

YAML::Node child(const YAML::Node& n, const char* key) {
  if (!n.IsDefined() || !n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return n[key];
}

}  // namespace

int LoadedScenario::total_nodes() const {
  int n = 0;
  for (const auto& g : node_groups) n += g.count;
  return n;
}

Status apply_override(YAML::Node root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status(StatusCode::kBadRequest,
                  "--set " + assignment + ": expected path=value (e.g. seed=7)");
  }
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return Status(StatusCode::kBadRequest, "--set " + path + ": " + e.msg);
  }
  // Tokens: names and [index]es.
  struct Step {
    std::string key;
    int index = -1;
  };
  std::vector<Step> steps;
  std::string cur;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '.') {
      if (!cur.empty()) steps.push_back({cur, -1});
      cur.clear();
    } else if (c == '[') {
      if (!cur.empty()) steps.push_back({cur, -1});
      cur.clear();
      auto close = path.find(']', i);
      if (close == std::string::npos) {
        return Status(StatusCode::kBadRequest, "--set " + path + ": unbalanced [");
      }
      std::string idx = path.substr(i + 1, close - i - 1);
      if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) {
        return Status(StatusCode::kBadRequest, "--set " + path + ": bad index [" + idx + "]");
      }
      steps.push_back({"", std::stoi(idx)});
      i = close;
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) steps.push_back({cur, -1});
  if (steps.empty()) return Status(StatusCode::kBadRequest, "--set: empty path");
  // yaml-cpp nodes are references: walk with reset() so assignment writes in place.
  YAML::Node node;
  node.reset(root);
  std::string walked;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const bool last = i + 1 == steps.size();
    YAML::Node next;
    if (s.index >= 0) {
      walked += "[" + std::to_string(s.index) + "]";
      if (!node.IsSequence() || s.index >= static_cast<int>(node.size())) {
        return Status(StatusCode::kBadRequest,
                      "--set " + path + ": " + walked + " does not exist");
      }
      next.reset(node[s.index]);
    } else {
      walked += (walked.empty() ? "" : ".") + s.key;
      if (node.IsDefined() && !node.IsNull() && !node.IsMap()) {
        return Status(StatusCode::kBadRequest, "--set " + path + ": " + walked +
                                                   ": parent is not a mapping");
      }
      next.reset(node[s.key]);
    }
    if (last) {
      next = value;
    } else {
      node.reset(next);
    }
  }
  return Status::ok();
}

StatusOr<sim::NodeResources> parse_node_resources(
    const google::protobuf::Map<std::string, std::string>& list, const std::string& path) {
  sim::NodeResources r;
  std::map<std::string, std::string> sorted(list.begin(), list.end());
  for (const auto& [key, text] : sorted) {
    auto q = api::Quantity::parse(text);
    if (!q.is_ok()) {
      return Status(StatusCode::kInvalid, path + "." + key + ": " + q.status().message());
    }
    if (key == "cpu") r.cpu_millis = q->milli_value();
    else if (key == "memory") r.memory_bytes = q->value();
    else if (key == "pods") r.pods = q->value();
    else if (key == "ephemeral-storage") r.ephemeral_storage_bytes = q->value();
    else r.extended[key] = q->value();
  }
  return r;
}

std::map<std::string, std::string> format_node_resources(const sim::NodeResources& r) {
  std::map<std::string, std::string> out;
  out["cpu"] = api::Quantity::from_milli(r.cpu_millis).to_string();
  out["memory"] = api::Quantity::from_value(r.memory_bytes).to_string();
  out["pods"] = std::to_string(r.pods);
  if (r.ephemeral_storage_bytes > 0) {
    out["ephemeral-storage"] = api::Quantity::from_value(r.ephemeral_storage_bytes).to_string();
  }
  for (const auto& [k, v] : r.extended) out[k] = std::to_string(v);
  return out;
}

StatusOr<LoadedScenario> load_scenario(const std::string& path,
                                       const std::vector<std::string>& overrides) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(StatusCode::kNotFound, path + ": cannot read scenario file");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string dir = std::filesystem::path(path).parent_path().string();
  auto loaded = load_scenario_text(ss.str(), path, dir.empty() ? "." : dir, overrides);
  if (loaded.is_ok() && loaded->proto.name().empty()) {
    loaded->name = std::filesystem::path(path).stem().string();
  }
  return loaded;
}

StatusOr<LoadedScenario> load_scenario_text(const std::string& text, const std::string& source,
                                            const std::string& base_dir,
                                            const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status(StatusCode::kBadRequest, source + ":" + std::to_string(e.mark.line + 1) + ":" +
                                               std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) {
    return Status(StatusCode::kBadRequest, source + ": a scenario is a YAML mapping");
  }
  for (const auto& o : overrides) FLOTILLA_RETURN_IF_ERROR(apply_override(root, o));

  LoadedScenario out;
  out.path = source;
  out.base_dir = base_dir;
  std::vector<api::DecodeWarning> warnings;
  Status s = api::decode_into(root, &out.proto, "", &warnings);
  if (!s.is_ok()) return Status(s.code(), source + ":" + s.message());
  for (const auto& w : warnings) {
    out.warnings.push_back(source + ":" + (w.line > 0 ? std::to_string(w.line) + ":" : "") +
                           " warning: " + w.to_string());
  }
  const Scenario& p = out.proto;
  out.name = p.name();
  out.seed = p.has_seed() ? p.seed() : 1;

  // Duration.
  if (p.duration().empty()) return err(source, root, "duration", "Required value (e.g. 24h)");
  {
    auto d = duration_of(source, root["duration"], "duration", p.duration());
    if (!d.is_ok()) return d.status();
    if (*d <= Duration(0)) return err(source, root["duration"], "duration", "must be positive");
    out.duration = *d;
  }

  // Cluster.
  const YAML::Node cluster = child(root, "cluster");
  {
    auto t = TimingProfile::named(p.cluster().timing().empty() ? "kubernetes" : p.cluster().timing());
    if (!t.is_ok()) return err(source, child(cluster, "timing"), "cluster.timing", t.status().message());
    out.timing = *t;
    std::map<std::string, std::string> sorted(p.cluster().timing_overrides().begin(),
                                              p.cluster().timing_overrides().end());
    for (const auto& [k, v] : sorted) {
      Status ts = out.timing.set(k, v);
      if (!ts.is_ok()) {
        return err(source, child(child(cluster, "timing_overrides"), k.c_str()),
                   "cluster.timing_overrides." + k, ts.message());
      }
    }
  }
  {
    const auto& sc = p.cluster().scheduler();
    out.scheduler_mode = sc.mode().empty() ? "greedy" : sc.mode();
    if (out.scheduler_mode != "greedy" && out.scheduler_mode != "flow") {
      return err(source, child(child(cluster, "scheduler"), "mode"), "cluster.scheduler.mode",
                 "Unsupported value: \"" + sc.mode() + "\": supported values: \"greedy\", \"flow\"");
    }
    if (sc.percentage_of_nodes_to_score() < 0 || sc.percentage_of_nodes_to_score() > 100) {
      return err(source, child(child(cluster, "scheduler"), "percentage_of_nodes_to_score"),
                 "cluster.scheduler.percentage_of_nodes_to_score", "must be between 0 and 100");
    }
    out.percentage_of_nodes_to_score = sc.percentage_of_nodes_to_score();
  }
  if (p.cluster().node_groups().empty()) {
    return err(source, cluster, "cluster.node_groups", "Required value: at least one node group");
  }
  std::set<std::string> group_names;
  for (int i = 0; i < p.cluster().node_groups_size(); ++i) {
    const NodeGroup& g = p.cluster().node_groups(i);
    const std::string gp = "cluster.node_groups[" + std::to_string(i) + "]";
    const YAML::Node gn = child(cluster, "node_groups")[i];
    if (g.name().empty()) return err(source, gn, gp + ".name", "Required value");
    if (!group_names.insert(g.name()).second) {
      return err(source, gn, gp + ".name", "Duplicate value: \"" + g.name() + "\"");
    }
    if (g.count() <= 0) return err(source, gn, gp + ".count", "must be at least 1");
    sim::NodeGroupSpec spec;
    spec.name = g.name();
    spec.count = g.count();
    if (!g.zones().empty()) spec.zones.assign(g.zones().begin(), g.zones().end());
    if (g.nodes_per_rack() < 0) return err(source, gn, gp + ".nodes_per_rack", "must not be negative");
    if (g.nodes_per_rack() > 0) spec.nodes_per_rack = g.nodes_per_rack();
    auto cap = parse_node_resources(g.capacity(), gp + ".capacity");
    if (!cap.is_ok()) return err(source, gn, "", cap.status().message()).with_prefix("");
    spec.capacity = *cap;
    if (spec.capacity.cpu_millis <= 0 || spec.capacity.memory_bytes <= 0) {
      return err(source, gn, gp + ".capacity", "cpu and memory are required");
    }
    if (spec.capacity.pods == 0) spec.capacity.pods = 110;
    if (!g.allocatable().empty()) {
      auto alloc = parse_node_resources(g.allocatable(), gp + ".allocatable");
      if (!alloc.is_ok()) return err(source, gn, "", alloc.status().message());
      spec.allocatable = *alloc;
      if (spec.allocatable->pods == 0) spec.allocatable->pods = spec.capacity.pods;
    }
    spec.labels.insert(g.labels().begin(), g.labels().end());
    out.node_groups.push_back(std::move(spec));
  }

  // Runtime model.
  sim::DistributionParseOptions dopts;
  dopts.base_dir = base_dir;
  const YAML::Node runtime = child(cluster, "runtime");
  sim::RuntimeModel& rm = out.world.runtime;
  for (const auto& [key, target] :
       {std::pair<const char*, sim::Distribution*>{"image_pull", &rm.image_pull},
        {"sandbox_start", &rm.sandbox_start},
        {"container_start", &rm.container_start},
        {"stop", &rm.stop}}) {
    YAML::Node n = child(runtime, key);
    if (!n.IsDefined() || n.IsNull()) continue;
    auto d = sim::parse_duration_distribution(n, std::string("cluster.runtime.") + key, dopts);
    if (!d.is_ok()) return in_file(source, d.status());
    *target = *d;
  }
  rm.missing_images.insert(p.cluster().runtime().missing_images().begin(),
                           p.cluster().runtime().missing_images().end());
  if (YAML::Node b = child(runtime, "behaviours"); b.IsDefined() && !b.IsNull()) {
    auto bs = sim::parse_behaviours(b, "cluster.runtime.behaviours");
    if (!bs.is_ok()) return in_file(source, bs.status());
    rm.behaviours = *bs;
  }
  {
    const Latency& l = p.cluster().latency();
    const YAML::Node ln = child(cluster, "latency");
    for (const auto& [value, yaml, target] :
         {std::tuple<const std::string&, const char*, Duration*>{l.same_node(), "same_node", &out.world.latency.same_node},
          {l.same_rack(), "same_rack", &out.world.latency.same_rack},
          {l.same_zone(), "same_zone", &out.world.latency.same_zone},
          {l.cross_zone(), "cross_zone", &out.world.latency.cross_zone},
          {l.control_plane(), "control_plane", &out.world.latency.control_plane}}) {
      if (value.empty()) continue;
      auto d = duration_of(source, child(ln, yaml), std::string("cluster.latency.") + yaml, value);
      if (!d.is_ok()) return d.status();
      *target = *d;
    }
  }

  // Workload.
  const YAML::Node workload = child(root, "workload");
  for (int i = 0; i < p.workload_size(); ++i) {
    const WorkloadStep& step = p.workload(i);
    const std::string wp = "workload[" + std::to_string(i) + "]";
    const YAML::Node wn = workload[i];
    WorkloadAction a;
    a.path = wp;
    if (!step.at().empty()) {
      auto d = duration_of(source, child(wn, "at"), wp + ".at", step.at());
      if (!d.is_ok()) return d.status();
      a.at = *d;
    }
    int parts = (step.apply_size() + step.files_size() > 0) + step.has_scale() + step.has_delete_();
    if (parts != 1) {
      return err(source, wn, wp, "exactly one of apply/files, scale or delete is required");
    }
    auto add_objects = [&](StatusOr<std::vector<api::DecodedObject>> objs,
                           const std::string& where) -> Status {
      if (!objs.is_ok()) return objs.status();
      for (auto& o : *objs) {
        for (const auto& w : o.warnings) {
          out.warnings.push_back(where + ":" + std::to_string(o.line) + ": warning: " +
                                 api::object_label(*o.object) + ": " + w.to_string());
        }
        auto errors = api::validate(*o.object);
        if (!errors.empty()) {
          std::string msg = where + ":" + std::to_string(o.line) + ": " + api::object_label(*o.object) + ": ";
          for (size_t e = 0; e < errors.size(); ++e) msg += (e ? "; " : "") + errors[e].to_string();
          return Status(StatusCode::kInvalid, msg);
        }
        a.apply.push_back(std::move(o));
      }
      return Status::ok();
    };
    for (int j = 0; j < step.apply_size(); ++j) {
      FLOTILLA_RETURN_IF_ERROR(add_objects(api::decode_manifest_node(child(wn, "apply")[j], source), source));
    }
    for (int j = 0; j < step.files_size(); ++j) {
      std::string file = step.files(j);
      std::string full = std::filesystem::path(file).is_absolute() ? file : base_dir + "/" + file;
      std::ifstream mf(full, std::ios::binary);
      if (!mf) {
        return err(source, child(wn, "files")[j], wp + ".files[" + std::to_string(j) + "]",
                   "cannot read " + full);
      }
      std::stringstream ms;
      ms << mf.rdbuf();
      FLOTILLA_RETURN_IF_ERROR(add_objects(api::decode_manifests(ms.str(), full), full));
    }
    if (step.has_scale()) {
      Scale sc = step.scale();
      if (sc.kind().empty()) sc.set_kind("ReplicationController");
      if (sc.kind() != "ReplicationController") {
        return err(source, child(child(wn, "scale"), "kind"), wp + ".scale.kind",
                   "Unsupported value: \"" + sc.kind() + "\": supported values: \"ReplicationController\"");
      }
      if (sc.name().empty()) return err(source, child(wn, "scale"), wp + ".scale.name", "Required value");
      if (sc.replicas() < 0) return err(source, child(wn, "scale"), wp + ".scale.replicas", "must be >= 0");
      if (sc.namespace_().empty()) sc.set_namespace_("default");
      a.scale = sc;
    }
    if (step.has_delete_()) {
      ObjectRef ref = step.delete_();
      if (api::kind_by_name(ref.kind()) == nullptr) {
        return err(source, child(wn, "delete"), wp + ".delete.kind",
                   "unknown kind \"" + ref.kind() + "\"");
      }
      if (ref.name().empty()) return err(source, child(wn, "delete"), wp + ".delete.name", "Required value");
      if (ref.namespace_().empty()) ref.set_namespace_("default");
      a.remove = ref;
    }
    out.workload.push_back(std::move(a));
  }
  std::stable_sort(out.workload.begin(), out.workload.end(),
                   [](const WorkloadAction& x, const WorkloadAction& y) { return x.at < y.at; });

  // Traffic and faults, read by their own parsers from the YAML.
  const YAML::Node traffic = child(root, "traffic");
  for (int i = 0; i < p.traffic_size(); ++i) {
    auto t = sim::parse_traffic_spec(traffic[i], "traffic[" + std::to_string(i) + "]", dopts);
    if (!t.is_ok()) return in_file(source, t.status());
    out.traffic.push_back(std::move(t).value());
  }
  if (YAML::Node faults = child(root, "faults"); faults.IsDefined() && !faults.IsNull()) {
    auto fs = sim::parse_faults(faults, "faults");
    if (!fs.is_ok()) return in_file(source, fs.status());
    out.faults = std::move(fs).value();
  }

  // Assertions.
  const YAML::Node assertions = child(root, "assertions");
  for (int i = 0; i < p.assertions_size(); ++i) {
    const Assertion& as = p.assertions(i);
    const std::string ap = "assertions[" + std::to_string(i) + "]";
    const YAML::Node an = assertions[i];
    AssertionSpec spec;
    int kinds = as.has_availability() + as.has_error_rate() + as.has_latency() +
                !as.max_pending().empty() + as.has_ready_replicas() + (as.max_restarts() != 0) +
                as.has_final_replicas();
    if (kinds != 1) {
      return err(source, an, ap, "exactly one check is required (availability, error_rate, latency, "
                                 "max_pending, ready_replicas, max_restarts, final_replicas)");
    }
    char buf[256];
    if (as.has_availability()) {
      if (as.availability().service().empty() || !as.availability().has_min()) {
        return err(source, an, ap + ".availability", "service and min are required");
      }
      spec.kind = AssertionSpec::Kind::kAvailability;
      spec.target = qualify(as.availability().service());
      spec.bound = as.availability().min();
      std::snprintf(buf, sizeof buf, "availability of %s >= %g", spec.target.c_str(), spec.bound);
    } else if (as.has_error_rate()) {
      if (as.error_rate().service().empty() || !as.error_rate().has_max()) {
        return err(source, an, ap + ".error_rate", "service and max are required");
      }
      spec.kind = AssertionSpec::Kind::kErrorRate;
      spec.target = qualify(as.error_rate().service());
      spec.bound = as.error_rate().max();
      std::snprintf(buf, sizeof buf, "error rate of %s <= %g", spec.target.c_str(), spec.bound);
    } else if (as.has_latency()) {
      const LatencyBound& l = as.latency();
      if (l.service().empty() || l.max().empty()) {
        return err(source, an, ap + ".latency", "service and max are required");
      }
      spec.kind = AssertionSpec::Kind::kLatency;
      spec.target = qualify(l.service());
      spec.percentile = l.percentile() == 0 ? 99 : l.percentile();
      if (spec.percentile != 50 && spec.percentile != 90 && spec.percentile != 99) {
        return err(source, child(an["latency"], "percentile"), ap + ".latency.percentile",
                   "Unsupported value: supported values: 50, 90, 99");
      }
      auto d = duration_of(source, child(an["latency"], "max"), ap + ".latency.max", l.max());
      if (!d.is_ok()) return d.status();
      spec.bound = to_seconds(*d) * 1000.0;
      std::snprintf(buf, sizeof buf, "p%g latency of %s <= %s", spec.percentile, spec.target.c_str(),
                    l.max().c_str());
    } else if (!as.max_pending().empty()) {
      auto d = duration_of(source, child(an, "max_pending"), ap + ".max_pending", as.max_pending());
      if (!d.is_ok()) return d.status();
      spec.kind = AssertionSpec::Kind::kMaxPending;
      spec.bound = to_seconds(*d);
      std::snprintf(buf, sizeof buf, "no pod pending longer than %s", as.max_pending().c_str());
    } else if (as.has_ready_replicas()) {
      const ControllerBound& c = as.ready_replicas();
      if (c.controller().empty() || !c.has_min()) {
        return err(source, an, ap + ".ready_replicas", "controller and min are required");
      }
      spec.kind = AssertionSpec::Kind::kReadyReplicas;
      spec.target = qualify(c.controller());
      spec.bound = c.min();
      std::snprintf(buf, sizeof buf, "%s fully ready >= %g of the time", spec.target.c_str(), spec.bound);
    } else if (as.max_restarts() != 0) {
      if (as.max_restarts() < 0) return err(source, an, ap + ".max_restarts", "must be >= 0");
      spec.kind = AssertionSpec::Kind::kMaxRestarts;
      spec.bound = static_cast<double>(as.max_restarts());
      std::snprintf(buf, sizeof buf, "container restarts <= %lld", static_cast<long long>(as.max_restarts()));
    } else {
      const ControllerBound& c = as.final_replicas();
      if (c.controller().empty() || !c.has_equals()) {
        return err(source, an, ap + ".final_replicas", "controller and equals are required");
      }
      spec.kind = AssertionSpec::Kind::kFinalReplicas;
      spec.target = qualify(c.controller());
      spec.bound = static_cast<double>(c.equals());
      std::snprintf(buf, sizeof buf, "%s ready replicas at the end == %lld", spec.target.c_str(),
                    static_cast<long long>(c.equals()));
    }
    spec.name = as.name().empty() ? buf : as.name();
    out.assertions.push_back(std::move(spec));
  }

  // Output.
  out.sample_period = out.duration / 720;
  if (!p.output().sample_period().empty()) {
    auto d = duration_of(source, child(child(root, "output"), "sample_period"), "output.sample_period",
                         p.output().sample_period());
    if (!d.is_ok()) return d.status();
    if (*d <= Duration(0)) return err(source, root, "output.sample_period", "must be positive");
    out.sample_period = *d;
  }
  if (out.sample_period < seconds(1)) out.sample_period = seconds(1);
  return out;
}

}  // namespace flotilla::scenarios
