#include "sim/faults/faults.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

namespace flotilla::sim {

namespace {

std::string where(const YAML::Node& n, const std::string& path) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return path;
  return path + " (line " + std::to_string(m.line + 1) + ", column " +
         std::to_string(m.column + 1) + ")";
}

Status error_at(const YAML::Node& n, const std::string& path, const std::string& what) {
  return invalid_error(where(n, path) + ": " + what);
}

Status check_keys(const YAML::Node& n, const std::string& path,
                  const std::set<std::string>& allowed) {
  for (const auto& kv : n) {
    std::string key = kv.first.Scalar();
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return error_at(kv.first, path + "." + key, "unknown field; expected one of: " + list);
    }
  }
  return Status::ok();
}

StatusOr<std::string> scalar(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar() || n.Scalar().empty()) return error_at(n, path, "expected a non-empty string");
  return n.Scalar();
}

StatusOr<Duration> duration(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return error_at(n, path, "expected a duration such as 5m");
  auto d = parse_duration(n.Scalar());
  if (!d.is_ok()) return error_at(n, path, d.status().message());
  if (*d < Duration::zero()) return error_at(n, path, "must not be negative");
  return *d;
}

StatusOr<int> integer(const YAML::Node& n, const std::string& path, int lo, int hi) {
  int v = 0;
  try {
    if (!n.IsScalar()) throw YAML::Exception(n.Mark(), "");
    v = n.as<int>();
  } catch (const YAML::Exception&) {
    return error_at(n, path, "expected an integer");
  }
  if (v < lo || v > hi) {
    return error_at(n, path, "must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v;
}

StatusOr<api::LabelSelector> selector(const YAML::Node& n, const std::string& path) {
  auto s = scalar(n, path);
  if (!s.is_ok()) return s.status();
  auto sel = api::LabelSelector::parse(*s);
  if (!sel.is_ok()) return error_at(n, path, sel.status().message());
  return *sel;
}

// rack: / zone: / nodes: targets, exactly one.
Status parse_target(const YAML::Node& n, const std::string& path, FaultSpec& f, bool allow_nodes) {
  int given = 0;
  if (auto r = n["rack"]) {
    auto s = scalar(r, path + ".rack");
    if (!s.is_ok()) return s.status();
    f.rack = *s;
    ++given;
  }
  if (auto z = n["zone"]) {
    auto s = scalar(z, path + ".zone");
    if (!s.is_ok()) return s.status();
    f.zone = *s;
    ++given;
  }
  if (allow_nodes) {
    if (auto ns = n["nodes"]) {
      if (!ns.IsSequence() || ns.size() == 0) {
        return error_at(ns, path + ".nodes", "expected a non-empty list of node names");
      }
      for (size_t i = 0; i < ns.size(); ++i) {
        auto s = scalar(ns[i], path + ".nodes[" + std::to_string(i) + "]");
        if (!s.is_ok()) return s.status();
        f.nodes.push_back(*s);
      }
      ++given;
    }
  }
  if (given != 1) {
    return error_at(n, path,
                    allow_nodes ? "give exactly one of nodes, rack, zone"
                                : "give exactly one of rack, zone");
  }
  return Status::ok();
}

StatusOr<FaultSpec> parse_fault(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) return error_at(node, path, "expected a mapping");
  FaultSpec f;
  f.name = path;
  static const std::set<std::string> kScheduled = {"kill_node",       "restart_node",
                                                   "kill_containers", "hang_containers",
                                                   "partition",       "power_off"};
  if (auto s = node["stochastic"]) {
    FLOTILLA_RETURN_IF_ERROR(check_keys(node, path, {"stochastic"}));
    const std::string sp = path + ".stochastic";
    if (!s.IsMap()) return error_at(s, sp, "expected a mapping");
    auto ttf = s["ttf"];
    if (!ttf) return error_at(s, sp, "missing field ttf");
    auto d = parse_duration_distribution(ttf, sp + ".ttf");
    if (!d.is_ok()) return d.status();
    f.ttf = *d;
    if (s["containers"]) {
      FLOTILLA_RETURN_IF_ERROR(check_keys(s, sp, {"containers", "ttf", "exit_code"}));
      f.kind = FaultSpec::Kind::kStochasticContainers;
      auto sel = selector(s["containers"], sp + ".containers");
      if (!sel.is_ok()) return sel.status();
      f.selector = *sel;
      f.selector_text = s["containers"].Scalar();
      if (auto e = s["exit_code"]) {
        auto v = integer(e, sp + ".exit_code", 0, 255);
        if (!v.is_ok()) return v.status();
        f.exit_code = *v;
      }
      return f;
    }
    FLOTILLA_RETURN_IF_ERROR(check_keys(s, sp, {"nodes", "ttf", "ttr", "domain"}));
    f.kind = FaultSpec::Kind::kStochasticNodes;
    auto ns = s["nodes"];
    if (!ns) return error_at(s, sp, "missing field nodes (all, or a node label selector)");
    auto text = scalar(ns, sp + ".nodes");
    if (!text.is_ok()) return text.status();
    if (*text != "all") {
      auto sel = selector(ns, sp + ".nodes");
      if (!sel.is_ok()) return sel.status();
      f.node_selector = *sel;
      f.selector_text = *text;
    }
    auto ttr = s["ttr"];
    if (!ttr) return error_at(s, sp, "missing field ttr");
    auto r = parse_duration_distribution(ttr, sp + ".ttr");
    if (!r.is_ok()) return r.status();
    f.ttr = *r;
    if (auto dom = s["domain"]) {
      auto v = scalar(dom, sp + ".domain");
      if (!v.is_ok()) return v.status();
      if (*v == "node") {
        f.domain = FaultSpec::Domain::kNode;
      } else if (*v == "rack") {
        f.domain = FaultSpec::Domain::kRack;
      } else if (*v == "zone") {
        f.domain = FaultSpec::Domain::kZone;
      } else {
        return error_at(dom, sp + ".domain", "expected node, rack or zone, got \"" + *v + "\"");
      }
    }
    return f;
  }

  auto at = node["at"];
  if (!at) return error_at(node, path, "missing field at (or stochastic)");
  auto t = duration(at, path + ".at");
  if (!t.is_ok()) return t.status();
  f.at = *t;
  std::string kind;
  for (const auto& kv : node) {
    std::string key = kv.first.Scalar();
    if (key == "at") continue;
    if (!kScheduled.count(key)) {
      return error_at(kv.first, path + "." + key,
                      "unknown field; expected at plus one of: hang_containers, kill_containers, "
                      "kill_node, partition, power_off, restart_node");
    }
    if (!kind.empty()) {
      return error_at(kv.first, path + "." + key, "one fault per entry (already has " + kind + ")");
    }
    kind = key;
  }
  if (kind.empty()) return error_at(node, path, "missing the fault (kill_node, partition, ...)");
  const YAML::Node v = node[kind];
  const std::string vp = path + "." + kind;
  if (kind == "kill_node" || kind == "restart_node") {
    f.kind = kind == "kill_node" ? FaultSpec::Kind::kKillNode : FaultSpec::Kind::kRestartNode;
    auto s = scalar(v, vp);
    if (!s.is_ok()) return s.status();
    f.nodes = {*s};
  } else if (kind == "kill_containers" || kind == "hang_containers") {
    f.kind = kind == "kill_containers" ? FaultSpec::Kind::kKillContainers
                                       : FaultSpec::Kind::kHangContainers;
    if (!v.IsMap()) return error_at(v, vp, "expected {selector: ..., count: ...}");
    FLOTILLA_RETURN_IF_ERROR(check_keys(
        v, vp,
        f.kind == FaultSpec::Kind::kKillContainers ? std::set<std::string>{"selector", "count", "exit_code"}
                                                   : std::set<std::string>{"selector", "count"}));
    if (!v["selector"]) return error_at(v, vp, "missing field selector");
    auto sel = selector(v["selector"], vp + ".selector");
    if (!sel.is_ok()) return sel.status();
    f.selector = *sel;
    f.selector_text = v["selector"].Scalar();
    if (auto c = v["count"]) {
      auto n = integer(c, vp + ".count", 0, 1 << 30);
      if (!n.is_ok()) return n.status();
      f.count = *n;
    }
    if (auto e = v["exit_code"]) {
      auto n = integer(e, vp + ".exit_code", 0, 255);
      if (!n.is_ok()) return n.status();
      f.exit_code = *n;
    }
  } else if (kind == "partition" || kind == "power_off") {
    const bool partition = kind == "partition";
    f.kind = partition ? FaultSpec::Kind::kPartition : FaultSpec::Kind::kPowerOff;
    if (!v.IsMap()) return error_at(v, vp, "expected a mapping");
    FLOTILLA_RETURN_IF_ERROR(check_keys(
        v, vp,
        partition ? std::set<std::string>{"nodes", "rack", "zone", "for", "from"}
                  : std::set<std::string>{"rack", "zone", "for"}));
    FLOTILLA_RETURN_IF_ERROR(parse_target(v, vp, f, partition));
    if (auto d = v["for"]) {
      auto dd = duration(d, vp + ".for");
      if (!dd.is_ok()) return dd.status();
      f.duration = *dd;
    }
    if (auto from = v["from"]) {
      auto s = scalar(from, vp + ".from");
      if (!s.is_ok()) return s.status();
      if (*s == "rest") {
        f.partition_from = PartitionKind::kFromRest;
      } else if (*s == "control-plane") {
        f.partition_from = PartitionKind::kFromControlPlane;
      } else {
        return error_at(from, vp + ".from", "expected rest or control-plane, got \"" + *s + "\"");
      }
    }
  }
  return f;
}

const char* kind_reason(FaultSpec::Kind k) {
  switch (k) {
    case FaultSpec::Kind::kKillNode: return "kill_node";
    case FaultSpec::Kind::kRestartNode: return "restart_node";
    case FaultSpec::Kind::kKillContainers: return "kill_containers";
    case FaultSpec::Kind::kHangContainers: return "hang_containers";
    case FaultSpec::Kind::kPartition: return "partition";
    case FaultSpec::Kind::kPowerOff: return "power_off";
    case FaultSpec::Kind::kStochasticNodes: return "node_failure";
    case FaultSpec::Kind::kStochasticContainers: return "container_crash";
  }
  return "fault";
}

}  // namespace

StatusOr<std::vector<FaultSpec>> parse_faults(const YAML::Node& node, const std::string& path) {
  std::vector<FaultSpec> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsSequence()) return error_at(node, path, "expected a list of faults");
  for (size_t i = 0; i < node.size(); ++i) {
    auto f = parse_fault(node[i], path + "[" + std::to_string(i) + "]");
    if (!f.is_ok()) return f.status();
    out.push_back(std::move(*f));
  }
  return out;
}

FaultInjector::FaultInjector(World& world, Random& random)
    : world_(world), random_(random), holds_(world.node_count(), 0) {}

FaultInjector::~FaultInjector() = default;

StatusOr<std::vector<NodeId>> FaultInjector::resolve_nodes(const FaultSpec& spec) const {
  const Topology& t = world_.topology();
  std::vector<NodeId> out;
  if (!spec.rack.empty()) {
    if (!t.has_rack(spec.rack)) return not_found_error(spec.name + ": rack \"" + spec.rack + "\" not found");
    return t.nodes_in_rack(spec.rack);
  }
  if (!spec.zone.empty()) {
    if (!t.has_zone(spec.zone)) return not_found_error(spec.name + ": zone \"" + spec.zone + "\" not found");
    return t.nodes_in_zone(spec.zone);
  }
  for (const auto& n : spec.nodes) {
    auto id = t.find_node(n);
    if (!id) return not_found_error(spec.name + ": node \"" + n + "\" not found");
    out.push_back(*id);
  }
  return out;
}

void FaultInjector::record(trace::EventType type, const FaultSpec& spec, const std::string& reason,
                           const std::string& node, const std::string& message) {
  trace::Record r;
  r.set_time_ns(to_nanos(world_.simulator().now()));
  r.set_type(type);
  r.set_node(node);
  r.set_reason(reason);
  r.set_message(message);
  (*r.mutable_attrs())["fault"] = spec.name;
  if (!spec.rack.empty()) (*r.mutable_attrs())["rack"] = spec.rack;
  if (!spec.zone.empty()) (*r.mutable_attrs())["zone"] = spec.zone;
  world_.trace().record(r);
  if (type == trace::FAULT_INJECTED) {
    ++injected_;
  } else {
    ++healed_;
  }
}

void FaultInjector::hold(NodeId n, const std::string& reason) {
  if (holds_.size() < world_.node_count()) holds_.resize(world_.node_count(), 0);
  if (holds_[n]++ == 0) world_.kill_node(n, reason);
}

void FaultInjector::release(NodeId n, const std::string& reason) {
  if (holds_[n] == 0) return;  // a restart_node fault already cleared it
  if (--holds_[n] == 0) world_.restart_node(n, reason);
}

namespace {
std::string join_names(const World& w, const std::vector<NodeId>& nodes) {
  std::string s;
  for (NodeId n : nodes) s += (s.empty() ? "" : ",") + w.node(n).name;
  return s;
}
}  // namespace

void FaultInjector::fire(const FaultSpec& spec, const std::vector<NodeId>& nodes) {
  const std::string reason = kind_reason(spec.kind);
  switch (spec.kind) {
    case FaultSpec::Kind::kKillNode:
      record(trace::FAULT_INJECTED, spec, reason, world_.node(nodes[0]).name, "node killed");
      hold(nodes[0], reason);
      break;
    case FaultSpec::Kind::kRestartNode:
      record(trace::FAULT_HEALED, spec, reason, world_.node(nodes[0]).name, "node restarted");
      if (holds_.size() > nodes[0]) holds_[nodes[0]] = 0;
      world_.restart_node(nodes[0], reason);
      break;
    case FaultSpec::Kind::kPowerOff: {
      std::string what = spec.rack.empty() ? "zone " + spec.zone : "rack " + spec.rack;
      record(trace::FAULT_INJECTED, spec, reason, "", what + " powered off");
      for (NodeId n : nodes) hold(n, reason);
      if (spec.duration) {
        world_.simulator().schedule_after(*spec.duration, [this, spec, nodes, what, reason] {
          record(trace::FAULT_HEALED, spec, reason, "", what + " powered on");
          for (NodeId n : nodes) release(n, reason);
        });
      }
      break;
    }
    case FaultSpec::Kind::kPartition: {
      const bool cp = spec.partition_from == PartitionKind::kFromControlPlane;
      std::string what = join_names(world_, nodes) + (cp ? " cut off from the control plane"
                                                         : " cut off from the rest");
      record(trace::FAULT_INJECTED, spec, reason, "", what);
      PartitionId p = world_.topology().add_partition(nodes, spec.partition_from);
      if (spec.duration) {
        world_.simulator().schedule_after(*spec.duration, [this, spec, p, reason, what] {
          (void)world_.topology().remove_partition(p);
          record(trace::FAULT_HEALED, spec, reason, "", what + ": healed");
        });
      }
      break;
    }
    case FaultSpec::Kind::kKillContainers:
    case FaultSpec::Kind::kHangContainers: {
      std::vector<std::string> ids = world_.running_containers(spec.selector);
      if (spec.count > 0 && static_cast<size_t>(spec.count) < ids.size()) {
        auto stream = random_.stream("faults/" + spec.name);
        for (size_t i = 0; i < static_cast<size_t>(spec.count); ++i) {
          size_t j = i + stream->next_below(ids.size() - i);
          std::swap(ids[i], ids[j]);
        }
        ids.resize(static_cast<size_t>(spec.count));
        std::sort(ids.begin(), ids.end());
      }
      const bool kill = spec.kind == FaultSpec::Kind::kKillContainers;
      record(trace::FAULT_INJECTED, spec, reason, "",
             std::to_string(ids.size()) + " containers matching \"" + spec.selector_text + "\"" +
                 (kill ? " killed" : " hung"));
      for (const auto& id : ids) {
        (void)(kill ? world_.kill_container(id, spec.exit_code) : world_.hang_container(id));
      }
      break;
    }
    case FaultSpec::Kind::kStochasticNodes:
    case FaultSpec::Kind::kStochasticContainers:
      break;
  }
}

Status FaultInjector::add(const FaultSpec& spec) {
  switch (spec.kind) {
    case FaultSpec::Kind::kStochasticContainers: {
      if (!spec.ttf) return invalid_error(spec.name + ": missing ttf");
      ContainerHazard h;
      h.selector = spec.selector;
      h.time_to_crash = *spec.ttf;
      h.exit_code = spec.exit_code;
      h.name = spec.name;
      world_.add_hazard(std::move(h));
      return Status::ok();
    }
    case FaultSpec::Kind::kStochasticNodes: {
      if (!spec.ttf || !spec.ttr) return invalid_error(spec.name + ": missing ttf or ttr");
      const Topology& t = world_.topology();
      // Units in node order; a rack or zone unit holds its matching nodes.
      std::vector<std::pair<std::string, std::vector<NodeId>>> units;
      std::map<std::string, size_t> by_domain;
      for (NodeId n = 0; n < world_.node_count(); ++n) {
        const SimNode& node = world_.node(n);
        if (!spec.node_selector.empty()) {
          api::Labels l;
          for (const auto& [k, v] : node.labels) l[k] = v;
          if (!spec.node_selector.matches(l)) continue;
        }
        std::string key = spec.domain == FaultSpec::Domain::kNode   ? node.name
                          : spec.domain == FaultSpec::Domain::kRack ? t.rack_of(n)
                                                                    : t.zone_of(n);
        auto [it, inserted] = by_domain.emplace(key, units.size());
        if (inserted) units.emplace_back(key, std::vector<NodeId>{});
        units[it->second].second.push_back(n);
      }
      for (auto& [name, nodes] : units) {
        Unit u{name, std::move(nodes), spec.name, *spec.ttf, *spec.ttr,
               random_.stream("faults/" + spec.name + "/" + name)};
        units_.push_back(std::move(u));
        uint32_t idx = static_cast<uint32_t>(units_.size() - 1);
        Duration d = units_[idx].ttf.sample_duration(*units_[idx].stream);
        world_.simulator().schedule_after(d, [this, idx] { unit_fail(idx); });
      }
      return Status::ok();
    }
    default:
      break;
  }
  if ((spec.kind == FaultSpec::Kind::kKillNode || spec.kind == FaultSpec::Kind::kRestartNode) &&
      spec.nodes.size() != 1) {
    return invalid_error(spec.name + ": needs exactly one node");
  }
  std::vector<NodeId> nodes;
  if (spec.kind != FaultSpec::Kind::kKillContainers &&
      spec.kind != FaultSpec::Kind::kHangContainers) {
    auto r = resolve_nodes(spec);
    if (!r.is_ok()) return r.status();
    nodes = std::move(*r);
  }
  world_.simulator().schedule_at(TimePoint(spec.at), [this, spec, nodes] { fire(spec, nodes); });
  return Status::ok();
}

Status FaultInjector::add_all(const std::vector<FaultSpec>& specs) {
  for (const auto& s : specs) FLOTILLA_RETURN_IF_ERROR(add(s));
  return Status::ok();
}

void FaultInjector::unit_fail(uint32_t idx) {
  Unit& u = units_[idx];
  FaultSpec spec;
  spec.name = u.fault;
  const std::string node = u.nodes.size() == 1 ? world_.node(u.nodes[0]).name : "";
  record(trace::FAULT_INJECTED, spec, "node_failure", node, u.name + " failed");
  for (NodeId n : u.nodes) hold(n, "node_failure");
  Duration d = u.ttr.sample_duration(*u.stream);
  world_.simulator().schedule_after(d, [this, idx] { unit_repair(idx); });
}

void FaultInjector::unit_repair(uint32_t idx) {
  Unit& u = units_[idx];
  FaultSpec spec;
  spec.name = u.fault;
  const std::string node = u.nodes.size() == 1 ? world_.node(u.nodes[0]).name : "";
  record(trace::FAULT_HEALED, spec, "node_failure", node, u.name + " repaired");
  for (NodeId n : u.nodes) release(n, "node_repair");
  Duration d = u.ttf.sample_duration(*u.stream);
  world_.simulator().schedule_after(d, [this, idx] { unit_fail(idx); });
}

}  // namespace flotilla::sim
