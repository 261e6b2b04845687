#include "sim/world/world.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace flotilla::sim {

namespace {

constexpr uint8_t kWhatExit = 0;
constexpr uint8_t kWhatOom = 1;
constexpr uint8_t kWhatHang = 2;
constexpr uint8_t kWhatHazard = 3;  // + hazard index

// Parses a decimal uint32 at the front of `s`, advancing it.
bool take_u32(std::string_view& s, uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || p == s.data()) return false;
  s.remove_prefix(static_cast<size_t>(p - s.data()));
  return true;
}

// Parses "<prefix><slot>-<gen>".
bool parse_id(std::string_view id, std::string_view prefix, uint32_t& slot, uint32_t& gen) {
  if (id.substr(0, prefix.size()) != prefix) return false;
  id.remove_prefix(prefix.size());
  if (!take_u32(id, slot) || id.empty() || id[0] != '-') return false;
  id.remove_prefix(1);
  return take_u32(id, gen) && id.empty();
}

std::string_view reason_text(uint8_t r) {
  switch (r) {
    case 1: return "Completed";
    case 2: return "Error";
    case 3: return "OOMKilled";
    default: return "";
  }
}

}  // namespace

World::World(Simulator& sim, Random& random, TraceSink& trace, WorldOptions options)
    : sim_(sim),
      random_(random),
      trace_(trace),
      options_(std::move(options)),
      topology_(options_.latency),
      network_(std::make_unique<SimNetwork>(*this)) {
  intern("");  // index 0: the empty string
  intern_labels({});
}

World::~World() = default;

uint32_t World::intern(std::string_view s) {
  auto it = string_index_.find(std::string(s));
  if (it != string_index_.end()) return it->second;
  uint32_t i = static_cast<uint32_t>(strings_.size());
  strings_.emplace_back(s);
  string_index_.emplace(std::string(s), i);
  return i;
}

const api::Labels* World::intern_labels(const std::map<std::string, std::string>& labels) {
  auto it = label_sets_.find(labels);
  if (it != label_sets_.end()) return it->second.get();
  auto l = std::make_unique<api::Labels>();
  for (const auto& [k, v] : labels) (*l)[k] = v;
  const api::Labels* p = l.get();
  label_sets_.emplace(labels, std::move(l));
  return p;
}

// --- Nodes ---

StatusOr<NodeId> World::add_node(const NodeSpec& spec) {
  if (nodes_.size() >= 65536) {
    return invalid_error("node \"" + spec.name + "\": at most 65536 nodes (one /24 each in 10.0.0.0/8)");
  }
  auto id = topology_.add_node(spec.name, spec.zone, spec.rack);
  if (!id.is_ok()) return id.status();
  auto rec = std::make_unique<NodeRec>();
  SimNode& n = rec->info;
  n.id = *id;
  n.name = spec.name;
  n.zone = spec.zone;
  n.rack = spec.rack;
  n.capacity = spec.capacity;
  n.allocatable = spec.allocatable.value_or(spec.capacity);
  n.labels = spec.labels;
  n.labels[std::string(kZoneLabel)] = spec.zone;
  n.labels[std::string(kRackLabel)] = spec.rack;
  n.labels[std::string(kHostnameLabel)] = spec.name;
  n.pod_cidr = "10." + std::to_string(*id >> 8) + "." + std::to_string(*id & 255) + ".0/24";
  nodes_.push_back(std::move(rec));
  nodes_.back()->runtime = std::make_unique<SimContainerRuntime>(*this, *id);
  record_node(trace::NODE_ADDED, *id, "");
  return id;
}

Status World::add_node_group(const NodeGroupSpec& spec) {
  if (spec.count < 0) return invalid_error("node group \"" + spec.name + "\": negative count");
  if (spec.zones.empty()) return invalid_error("node group \"" + spec.name + "\": no zones");
  if (spec.nodes_per_rack <= 0) {
    return invalid_error("node group \"" + spec.name + "\": nodes_per_rack must be positive");
  }
  const int zones = static_cast<int>(spec.zones.size());
  for (int i = 0; i < spec.count; ++i) {
    NodeSpec n;
    n.name = spec.name + "-" + std::to_string(i);
    n.zone = spec.zones[static_cast<size_t>(i % zones)];
    n.rack = spec.name + "-" + n.zone + "-r" + std::to_string(i / zones / spec.nodes_per_rack);
    n.capacity = spec.capacity;
    n.allocatable = spec.allocatable;
    n.labels = spec.labels;
    auto id = add_node(n);
    if (!id.is_ok()) return id.status();
  }
  return Status::ok();
}

void World::record_node(trace::EventType type, NodeId id, std::string_view reason) {
  trace::Record r;
  r.set_time_ns(to_nanos(sim_.now()));
  r.set_type(type);
  r.set_node(nodes_[id]->info.name);
  if (!reason.empty()) r.set_reason(std::string(reason));
  trace_.record(r);
}

Status World::kill_node(std::string_view name, std::string_view reason) {
  auto id = topology_.find_node(name);
  if (!id) return not_found_error("node \"" + std::string(name) + "\" not found");
  kill_node(*id, reason);
  return Status::ok();
}

Status World::restart_node(std::string_view name, std::string_view reason) {
  auto id = topology_.find_node(name);
  if (!id) return not_found_error("node \"" + std::string(name) + "\" not found");
  restart_node(*id, reason);
  return Status::ok();
}

void World::kill_node(NodeId id, std::string_view reason) {
  NodeRec& n = *nodes_[id];
  if (!n.info.up) return;
  n.info.up = false;
  ++n.incarnation;
  std::vector<uint32_t> sandboxes = n.sandboxes;
  for (uint32_t s : sandboxes) {
    ContainerEvent ev;
    ev.type = ContainerEvent::Type::kSandboxLost;
    ev.sandbox_id = sandbox_id(s, sandboxes_[s].generation);
    ev.pod_uid = sandboxes_[s].pod_uid;
    remove_sandbox_now(s);
    emit(id, std::move(ev));
  }
  record_node(trace::NODE_DOWN, id, reason);
  const std::string name = n.info.name;
  for (size_t i = 0; i < node_subs_.size(); ++i) {
    auto fn = node_subs_[i].second;
    fn(name, false);
  }
}

void World::restart_node(NodeId id, std::string_view reason) {
  NodeRec& n = *nodes_[id];
  if (n.info.up) return;
  n.info.up = true;
  ++n.incarnation;
  record_node(trace::NODE_UP, id, reason);
  const std::string name = n.info.name;
  for (size_t i = 0; i < node_subs_.size(); ++i) {
    auto fn = node_subs_[i].second;
    fn(name, true);
  }
}

class World::NodeStateSub final : public World::NodeStateSubscription {
 public:
  NodeStateSub(World& w, uint64_t id) : world_(w), id_(id) {}
  ~NodeStateSub() override {
    auto& subs = world_.node_subs_;
    for (auto it = subs.begin(); it != subs.end(); ++it) {
      if (it->first == id_) {
        subs.erase(it);
        break;
      }
    }
  }

 private:
  World& world_;
  uint64_t id_;
};

std::unique_ptr<World::NodeStateSubscription> World::on_node_state(
    std::function<void(const std::string& node, bool up)> fn) {
  uint64_t id = next_node_sub_++;
  node_subs_.emplace_back(id, std::move(fn));
  return std::make_unique<NodeStateSub>(*this, id);
}

ContainerRuntime& World::runtime(NodeId id) { return *nodes_[id]->runtime; }
SimContainerRuntime& World::sim_runtime(NodeId id) { return *nodes_[id]->runtime; }
Network& World::network() { return *network_; }

// --- Slabs and ids ---

uint32_t World::alloc_container() {
  uint32_t slot;
  if (!free_containers_.empty()) {
    slot = free_containers_.back();
    free_containers_.pop_back();
  } else {
    slot = static_cast<uint32_t>(containers_.size());
    containers_.emplace_back();
  }
  ContainerRec& c = containers_[slot];
  uint32_t gen = c.generation;
  uint32_t epoch = c.epoch;
  c = ContainerRec{};
  c.generation = gen;
  c.epoch = epoch + 1;
  c.flags = kInUse;
  return slot;
}

void World::free_container(uint32_t slot) {
  ContainerRec& c = containers_[slot];
  c.flags = 0;
  ++c.generation;
  ++c.epoch;
  free_containers_.push_back(slot);
}

uint32_t World::alloc_sandbox() {
  uint32_t slot;
  if (!free_sandboxes_.empty()) {
    slot = free_sandboxes_.back();
    free_sandboxes_.pop_back();
  } else {
    slot = static_cast<uint32_t>(sandboxes_.size());
    sandboxes_.emplace_back();
  }
  sandboxes_[slot].in_use = true;
  ++live_sandboxes_;
  return slot;
}

void World::free_sandbox(uint32_t slot) {
  SandboxRec& s = sandboxes_[slot];
  uint32_t gen = s.generation + 1;
  s = SandboxRec{};
  s.generation = gen;
  free_sandboxes_.push_back(slot);
  --live_sandboxes_;
}

std::string World::container_id(uint32_t slot, uint32_t gen) {
  return "ctr-" + std::to_string(slot) + "-" + std::to_string(gen);
}

std::string World::sandbox_id(uint32_t slot, uint32_t gen) {
  return "pod-" + std::to_string(slot) + "-" + std::to_string(gen);
}

std::optional<uint32_t> World::find_container(std::string_view id) const {
  uint32_t slot, gen;
  if (!parse_id(id, "ctr-", slot, gen) || slot >= containers_.size()) return std::nullopt;
  const ContainerRec& c = containers_[slot];
  if (!(c.flags & kInUse) || c.generation != gen) return std::nullopt;
  return slot;
}

std::optional<uint32_t> World::find_sandbox(std::string_view id) const {
  uint32_t slot, gen;
  if (!parse_id(id, "pod-", slot, gen) || slot >= sandboxes_.size()) return std::nullopt;
  const SandboxRec& s = sandboxes_[slot];
  if (!s.in_use || s.generation != gen) return std::nullopt;
  return slot;
}

std::string World::ip_string(NodeId node, uint8_t host) const {
  return "10." + std::to_string(node >> 8) + "." + std::to_string(node & 255) + "." +
         std::to_string(host);
}

std::optional<std::pair<NodeId, uint8_t>> World::parse_pod_ip(std::string_view ip) {
  uint32_t o[4];
  for (int i = 0; i < 4; ++i) {
    if (!take_u32(ip, o[i]) || o[i] > 255) return std::nullopt;
    if (i < 3) {
      if (ip.empty() || ip[0] != '.') return std::nullopt;
      ip.remove_prefix(1);
    }
  }
  if (!ip.empty() || o[0] != 10) return std::nullopt;
  return std::make_pair(static_cast<NodeId>(o[1] * 256 + o[2]), static_cast<uint8_t>(o[3]));
}

std::optional<NodeId> World::node_of_ip(std::string_view ip) const {
  auto p = parse_pod_ip(ip);
  if (!p || p->first >= nodes_.size()) return std::nullopt;
  if (nodes_[p->first]->ip_slots[p->second] == 0) return std::nullopt;
  return p->first;
}

// --- Containers ---

uint16_t World::match_behaviour(uint32_t image, const api::Labels* labels) const {
  auto key = std::make_pair(image, labels);
  auto it = behaviour_cache_.find(key);
  if (it != behaviour_cache_.end()) return it->second;
  uint16_t found = 0;
  const auto& bs = options_.runtime.behaviours;
  for (size_t i = 0; i < bs.size(); ++i) {
    if (!bs[i].image.empty() && !bs[i].matches_image(interned(image))) continue;
    if (bs[i].has_selector && !bs[i].selector.matches(*labels)) continue;
    found = static_cast<uint16_t>(i + 1);
    break;
  }
  behaviour_cache_.emplace(key, found);
  return found;
}

void World::container_started(uint32_t slot) {
  ContainerRec& c = containers_[slot];
  SandboxRec& sb = sandboxes_[c.sandbox];
  SimContainerRuntime& rt = *nodes_[sb.node]->runtime;
  const int64_t now = to_nanos(sim_.now());
  c.state = ContainerState::kRunning;
  c.flags = static_cast<uint8_t>(c.flags & ~(kHung | kStopping));
  c.started_ns = now;
  c.ready_ns = now;
  ++c.epoch;
  ++running_containers_;

  // The earliest way this run ends on its own, if any.
  int64_t end_after = -1;
  uint8_t end_what = kWhatExit;
  auto consider = [&](int64_t after, uint8_t what) {
    if (after >= 0 && (end_after < 0 || after < end_after)) {
      end_after = after;
      end_what = what;
    }
  };
  if (const BehaviourSpec* b = behaviour_of(c)) {
    if (b->ready_after) c.ready_ns = now + to_nanos(rt.draw(*b->ready_after));
    if (b->exit_after) consider(to_nanos(rt.draw(*b->exit_after)), kWhatExit);
    if (c.memory_limit > 0) {
      if (b->memory_initial_bytes > c.memory_limit) {
        consider(0, kWhatOom);
      } else if (b->memory_growth_bytes_per_minute > 0) {
        double minutes = static_cast<double>(c.memory_limit - b->memory_initial_bytes) /
                         static_cast<double>(b->memory_growth_bytes_per_minute);
        consider(static_cast<int64_t>(std::ceil(minutes * 60e9)), kWhatOom);
      }
    }
    if (b->hang_after) {
      uint32_t key = (c.epoch << 8) | kWhatHang;
      sim_.schedule_after(rt.draw(*b->hang_after),
                          [this, slot, key] { on_container_timer(slot, key); });
    }
  }
  for (size_t h = 0; h < hazards_.size() && h < 250; ++h) {
    if (hazards_[h].selector.matches(*sb.labels)) {
      consider(to_nanos(rt.draw(hazards_[h].time_to_crash)), static_cast<uint8_t>(kWhatHazard + h));
    }
  }
  if (end_after >= 0) {
    uint32_t key = (c.epoch << 8) | end_what;
    sim_.schedule_after(Duration(end_after), [this, slot, key] { on_container_timer(slot, key); });
  }

  ContainerEvent ev;
  ev.type = ContainerEvent::Type::kStarted;
  ev.sandbox_id = sandbox_id(c.sandbox, sb.generation);
  ev.pod_uid = sb.pod_uid;
  ev.container = container_status(slot);
  emit(sb.node, std::move(ev));
}

void World::on_container_timer(uint32_t slot, uint32_t key) {
  ContainerRec& c = containers_[slot];
  if (!(c.flags & kInUse) || ((c.epoch << 8) >> 8) != (key >> 8) ||
      c.state != ContainerState::kRunning) {
    return;
  }
  const uint8_t what = static_cast<uint8_t>(key & 0xff);
  if (what == kWhatHang) {
    c.flags |= kHung;
  } else if (what == kWhatOom) {
    container_exited(slot, 137, Reason::kOomKilled);
  } else if (what == kWhatExit) {
    int code = behaviour_of(c)->exit_code;
    container_exited(slot, code, code == 0 ? Reason::kCompleted : Reason::kError);
  } else {
    const ContainerHazard& h = hazards_[what - kWhatHazard];
    const SandboxRec& sb = sandboxes_[c.sandbox];
    trace::Record r;
    r.set_time_ns(to_nanos(sim_.now()));
    r.set_type(trace::FAULT_INJECTED);
    r.set_node(nodes_[sb.node]->info.name);
    r.set_namespace_(sb.ns);
    r.set_name(sb.name);
    r.set_uid(sb.pod_uid);
    r.set_container(interned(c.name));
    r.set_reason("container_crash");
    r.set_message(h.name);
    r.set_exit_code(h.exit_code);
    trace_.record(r);
    container_exited(slot, h.exit_code, h.exit_code == 0 ? Reason::kCompleted : Reason::kError);
  }
}

void World::container_exited(uint32_t slot, int exit_code, Reason reason) {
  ContainerRec& c = containers_[slot];
  if (c.state != ContainerState::kRunning) return;
  c.state = ContainerState::kExited;
  c.exit_code = exit_code;
  c.reason = reason;
  c.finished_ns = to_nanos(sim_.now());
  c.flags = static_cast<uint8_t>(c.flags & ~(kHung | kStopping));
  ++c.epoch;
  --running_containers_;
  const SandboxRec& sb = sandboxes_[c.sandbox];
  ContainerEvent ev;
  ev.type = reason == Reason::kOomKilled ? ContainerEvent::Type::kOomKilled
                                          : ContainerEvent::Type::kExited;
  ev.sandbox_id = sandbox_id(c.sandbox, sb.generation);
  ev.pod_uid = sb.pod_uid;
  ev.container = container_status(slot);
  emit(sb.node, std::move(ev));
}

ContainerStatus World::container_status(uint32_t slot) const {
  const ContainerRec& c = containers_[slot];
  ContainerStatus s;
  s.id = container_id(slot, c.generation);
  s.name = interned(c.name);
  s.image = interned(c.image);
  s.state = c.state;
  s.exit_code = c.exit_code;
  s.reason = std::string(reason_text(static_cast<uint8_t>(c.reason)));
  s.started_at = time_from_nanos(c.started_ns);
  s.finished_at = time_from_nanos(c.finished_ns);
  return s;
}

PodSandboxStatus World::sandbox_status(uint32_t slot) const {
  const SandboxRec& sb = sandboxes_[slot];
  PodSandboxStatus s;
  s.id = sandbox_id(slot, sb.generation);
  s.pod_uid = sb.pod_uid;
  s.ns = sb.ns;
  s.name = sb.name;
  s.ip = ip_string(sb.node, sb.host);
  s.ready = sb.ready && !sb.removing && nodes_[sb.node]->info.up;
  for (uint32_t c : sb.containers) s.containers.push_back(container_status(c));
  return s;
}

void World::remove_container_now(uint32_t slot) {
  ContainerRec& c = containers_[slot];
  if (c.state == ContainerState::kRunning) --running_containers_;
  auto& list = sandboxes_[c.sandbox].containers;
  list.erase(std::find(list.begin(), list.end(), slot));
  free_container(slot);
}

void World::remove_sandbox_now(uint32_t slot) {
  SandboxRec& sb = sandboxes_[slot];
  NodeRec& n = *nodes_[sb.node];
  while (!sb.containers.empty()) remove_container_now(sb.containers.back());
  for (const PortRec& p : sb.ports) {
    if (p.host_port != 0) n.runtime->host_ports_.erase({p.udp, p.host_port});
  }
  n.ip_slots[sb.host] = 0;
  n.sandboxes.erase(std::find(n.sandboxes.begin(), n.sandboxes.end(), slot));
  free_sandbox(slot);
}

void World::emit(NodeId node, ContainerEvent event) {
  nodes_[node]->runtime->deliver(std::move(event));
}

// --- Faults and queries ---

EndpointState World::endpoint_state(const NetEndpoint& target) const {
  auto p = parse_pod_ip(target.ip);
  if (!p || p->first >= nodes_.size()) return EndpointState::kNoHost;
  const NodeRec& n = *nodes_[p->first];
  if (!n.info.up) return EndpointState::kNodeDown;
  uint32_t s = n.ip_slots[p->second];
  if (s == 0) return EndpointState::kNoHost;
  const SandboxRec& sb = sandboxes_[s - 1];
  if (!sb.ports.empty()) {
    bool declared = false;
    for (const PortRec& pr : sb.ports) declared |= pr.container_port == target.port;
    if (!declared) return EndpointState::kRefused;
  }
  const int64_t now = to_nanos(sim_.now());
  bool hung = false;
  for (uint32_t ci : sb.containers) {
    const ContainerRec& c = containers_[ci];
    if (c.state != ContainerState::kRunning || c.ready_ns > now) continue;
    if (c.flags & kHung) {
      hung = true;
    } else {
      return EndpointState::kOk;
    }
  }
  return hung ? EndpointState::kHung : EndpointState::kRefused;
}

std::vector<std::string> World::running_containers(const api::LabelSelector& selector) const {
  std::vector<std::string> out;
  for (uint32_t s = 0; s < sandboxes_.size(); ++s) {
    const SandboxRec& sb = sandboxes_[s];
    if (!sb.in_use || !selector.matches(*sb.labels)) continue;
    for (uint32_t ci : sb.containers) {
      if (containers_[ci].state == ContainerState::kRunning) {
        out.push_back(container_id(ci, containers_[ci].generation));
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status World::hang_container(const std::string& container_id) {
  auto slot = find_container(container_id);
  if (!slot) return not_found_error("container \"" + container_id + "\" not found");
  ContainerRec& c = containers_[*slot];
  if (c.state != ContainerState::kRunning) {
    return failed_precondition_error("container \"" + container_id + "\" is not running");
  }
  c.flags |= kHung;
  return Status::ok();
}

Status World::kill_container(const std::string& container_id, int exit_code) {
  auto slot = find_container(container_id);
  if (!slot) return not_found_error("container \"" + container_id + "\" not found");
  if (containers_[*slot].state != ContainerState::kRunning) {
    return failed_precondition_error("container \"" + container_id + "\" is not running");
  }
  container_exited(*slot, exit_code, exit_code == 0 ? Reason::kCompleted : Reason::kError);
  return Status::ok();
}

void World::add_hazard(ContainerHazard hazard) { hazards_.push_back(std::move(hazard)); }

}  // namespace flotilla::sim
