#include "core/scheduler/snapshot.h"

#include <algorithm>

#include "core/api/labels.h"
#include "core/api/quantity.h"

namespace flotilla::sched {
namespace {

void add_extended(std::vector<std::pair<int, int64_t>>& v, int id, int64_t amount) {
  auto it = std::lower_bound(v.begin(), v.end(), id,
                             [](const std::pair<int, int64_t>& e, int k) { return e.first < k; });
  if (it != v.end() && it->first == id) {
    it->second += amount;
    if (it->second == 0) v.erase(it);
  } else if (amount != 0) {
    v.insert(it, {id, amount});
  }
}

bool is_extended(std::string_view name) {
  // Domain-prefixed names outside kubernetes.io are extended resources
  // ("alibaba.com/gpu", "nvidia.com/gpu").
  return name.find('/') != std::string_view::npos && name.rfind("kubernetes.io/", 0) != 0;
}

StatusOr<int64_t> parse_amount(std::string_view resource, const std::string& text,
                               bool milli) {
  StatusOr<api::Quantity> q = api::Quantity::parse(text);
  if (!q.is_ok()) {
    return invalid_error("resource " + std::string(resource) + ": " + q.status().message());
  }
  return milli ? q->milli_value() : q->value();
}

// Reads a resource list ("cpu": "500m", ...) into Resources. Unknown names
// without a domain (hugepages-*, ...) are ignored.
Status read_resources(const google::protobuf::Map<std::string, std::string>& list,
                      ResourceNames& names, Resources& out) {
  // Sorted iteration so the first error reported is deterministic.
  std::vector<std::pair<std::string, std::string>> items(list.begin(), list.end());
  std::sort(items.begin(), items.end());
  for (const auto& [name, text] : items) {
    if (name == "cpu") {
      StatusOr<int64_t> v = parse_amount(name, text, true);
      if (!v.is_ok()) return v.status();
      out.milli_cpu = *v;
    } else if (name == "memory") {
      StatusOr<int64_t> v = parse_amount(name, text, false);
      if (!v.is_ok()) return v.status();
      out.memory = *v;
    } else if (name == "ephemeral-storage") {
      StatusOr<int64_t> v = parse_amount(name, text, false);
      if (!v.is_ok()) return v.status();
      out.ephemeral_storage = *v;
    } else if (name == "pods") {
      StatusOr<int64_t> v = parse_amount(name, text, false);
      if (!v.is_ok()) return v.status();
      out.pods = *v;
    } else if (is_extended(name)) {
      StatusOr<int64_t> v = parse_amount(name, text, false);
      if (!v.is_ok()) return v.status();
      int id = names.intern(name);
      auto it = std::find_if(out.extended.begin(), out.extended.end(),
                             [id](const auto& e) { return e.first == id; });
      if (it != out.extended.end()) out.extended.erase(it);
      add_extended(out.extended, id, *v);
    }
  }
  return Status::ok();
}

// A container's effective requests: requests, with limits standing in for
// resources that have a limit but no request (Kubernetes API defaulting).
Status container_requests(const api::Container& c, ResourceNames& names, Resources& out) {
  google::protobuf::Map<std::string, std::string> merged = c.resources().requests();
  for (const auto& [k, v] : c.resources().limits()) merged.insert({k, v});
  return read_resources(merged, names, out);
}

void max_into(Resources& a, const Resources& b) {
  a.milli_cpu = std::max(a.milli_cpu, b.milli_cpu);
  a.memory = std::max(a.memory, b.memory);
  a.ephemeral_storage = std::max(a.ephemeral_storage, b.ephemeral_storage);
  for (const auto& [id, v] : b.extended) {
    int64_t cur = a.extended_value(id);
    if (v > cur) add_extended(a.extended, id, v - cur);
  }
}

std::string_view label_or_empty(const google::protobuf::Map<std::string, std::string>& labels,
                                std::string_view key) {
  auto it = labels.find(std::string(key));
  return it == labels.end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace

int64_t Resources::extended_value(int id) const {
  for (const auto& [k, v] : extended) {
    if (k == id) return v;
    if (k > id) break;
  }
  return 0;
}

void Resources::add(const Resources& r) {
  milli_cpu += r.milli_cpu;
  memory += r.memory;
  ephemeral_storage += r.ephemeral_storage;
  pods += r.pods;
  for (const auto& [id, v] : r.extended) add_extended(extended, id, v);
}

void Resources::subtract(const Resources& r) {
  milli_cpu -= r.milli_cpu;
  memory -= r.memory;
  ephemeral_storage -= r.ephemeral_storage;
  pods -= r.pods;
  for (const auto& [id, v] : r.extended) add_extended(extended, id, -v);
}

int ResourceNames::intern(std::string_view name) {
  auto it = ids_.find(std::string(name));
  if (it != ids_.end()) return it->second;
  int id = static_cast<int>(names_.size());
  names_.push_back(std::make_unique<Entry>(Entry{std::string(name), "Insufficient " + std::string(name)}));
  ids_.emplace(std::string(name), id);
  return id;
}

bool HostPort::conflicts(const HostPort& o) const {
  if (port != o.port || protocol != o.protocol) return false;
  auto wildcard = [](const std::string& ip) { return ip.empty() || ip == "0.0.0.0"; };
  return wildcard(ip) || wildcard(o.ip) || ip == o.ip;
}

StatusOr<PodInfo> PodInfo::from_pod(std::shared_ptr<const api::Pod> pod, ResourceNames& names) {
  PodInfo info;
  const api::Pod& p = *pod;
  info.ns = p.metadata().namespace_().empty() ? "default" : p.metadata().namespace_();
  info.name = p.metadata().name();
  info.uid = p.metadata().uid();
  info.key = info.ns + "/" + info.name;
  info.node_name = p.spec().node_name();
  info.priority = p.spec().priority();
  info.created = time_from_nanos(p.metadata().creation_timestamp().nanos());

  for (const api::Container& c : p.spec().containers()) {
    Resources r;
    Status s = container_requests(c, names, r);
    if (!s.is_ok()) return s.with_prefix("container " + c.name() + ": ");
    info.requests.add(r);
    for (const api::ContainerPort& port : c.ports()) {
      int32_t host_port = port.host_port();
      if (host_port == 0 && p.spec().host_network()) host_port = port.container_port();
      if (host_port <= 0) continue;
      info.host_ports.push_back(HostPort{port.protocol().empty() ? "TCP" : port.protocol(),
                                         port.host_ip(), host_port});
    }
  }
  for (const api::Container& c : p.spec().init_containers()) {
    Resources r;
    Status s = container_requests(c, names, r);
    if (!s.is_ok()) return s.with_prefix("init container " + c.name() + ": ");
    max_into(info.requests, r);
  }
  info.requests.pods = 1;

  info.node_selector.assign(p.spec().node_selector().begin(), p.spec().node_selector().end());
  std::sort(info.node_selector.begin(), info.node_selector.end());

  for (const api::OwnerReference& o : p.metadata().owner_references()) {
    if (o.has_controller() && o.controller()) {
      info.spread_key = o.uid().empty() ? o.kind() + "/" + o.name() : o.uid();
      break;
    }
  }
  if (info.spread_key.empty()) {
    info.spread_key = std::string(label_or_empty(p.metadata().labels(), kSpreadKeyLabel));
  }

  // Signature of everything placement looks at.
  std::string& sig = info.class_signature;
  sig.reserve(96);
  auto num = [&sig](int64_t v) {
    sig += std::to_string(v);
    sig += ',';
  };
  num(info.requests.milli_cpu);
  num(info.requests.memory);
  num(info.requests.ephemeral_storage);
  for (const auto& [id, v] : info.requests.extended) {
    num(id);
    num(v);
  }
  sig += '|';
  for (const HostPort& hp : info.host_ports) {
    sig += hp.protocol + ":" + hp.ip + ":" + std::to_string(hp.port) + ",";
  }
  sig += '|';
  for (const auto& [k, v] : info.node_selector) sig += k + "=" + v + ",";
  sig += '|' + info.node_name + '|' + info.spread_key;
  info.pod = std::move(pod);
  return info;
}

const std::string* NodeInfo::label(std::string_view key) const {
  auto it = std::lower_bound(labels.begin(), labels.end(), key,
                             [](const std::pair<std::string, std::string>& e, std::string_view k) {
                               return std::string_view(e.first) < k;
                             });
  return it != labels.end() && it->first == key ? &it->second : nullptr;
}

int32_t NodeInfo::owner_count(int spread_id) const {
  if (spread_id < 0) return 0;
  for (const auto& [id, n] : owner_counts) {
    if (id == spread_id) return n;
    if (id > spread_id) break;
  }
  return 0;
}

int Snapshot::slot_for(std::string_view name) {
  auto it = node_index_.find(std::string(name));
  if (it != node_index_.end()) return it->second;
  int index = static_cast<int>(nodes_.size());
  nodes_.emplace_back();
  nodes_.back().name = std::string(name);
  node_index_.emplace(std::string(name), index);
  return index;
}

int Snapshot::intern_zone(std::string_view zone) {
  if (zone.empty()) return 0;
  auto [it, inserted] = zone_ids_.emplace(std::string(zone), static_cast<int>(zone_names_.size()));
  if (inserted) zone_names_.emplace_back(zone);
  return it->second;
}

int Snapshot::intern_rack(std::string_view rack) {
  if (rack.empty()) return 0;
  auto [it, inserted] = rack_ids_.emplace(std::string(rack), static_cast<int>(rack_names_.size()));
  if (inserted) rack_names_.emplace_back(rack);
  return it->second;
}

StatusOr<int> Snapshot::upsert_node(std::shared_ptr<const api::Node> node) {
  // A status report changes the conditions: what was read from the node's
  // previous version (its resources, parsed; its labels, sorted) is kept
  // when the new one has the same.
  const int known = node_index(node->metadata().name());
  const api::Node* prev = known >= 0 ? nodes_[known].node.get() : nullptr;
  const bool same_resources =
      prev != nullptr &&
      api::same_labels(prev->status().allocatable(), node->status().allocatable()) &&
      api::same_labels(prev->status().capacity(), node->status().capacity());
  const bool same_labels =
      prev != nullptr && api::same_labels(prev->metadata().labels(), node->metadata().labels());
  Resources alloc;
  if (!same_resources) {
    // Kubernetes falls back to capacity when allocatable is not reported.
    const auto& list = node->status().allocatable().empty() ? node->status().capacity()
                                                            : node->status().allocatable();
    Status s = read_resources(list, *resource_names_, alloc);
    if (!s.is_ok()) return s.with_prefix("node " + node->metadata().name() + ": ");
  }

  int index = slot_for(node->metadata().name());
  NodeInfo& n = nodes_[index];
  bool was_live = n.exists();
  int old_zone = n.zone;
  if (!same_resources) n.allocatable = std::move(alloc);
  if (!same_labels) {
    const auto& labels = node->metadata().labels();
    n.labels.assign(labels.begin(), labels.end());
    std::sort(n.labels.begin(), n.labels.end());
    std::string_view zone = label_or_empty(labels, kZoneLabel);
    if (zone.empty()) zone = label_or_empty(labels, "failure-domain.beta.kubernetes.io/zone");
    n.zone = intern_zone(zone);
    n.rack = intern_rack(label_or_empty(labels, kRackLabel));
  }
  n.schedulable = !node->spec().unschedulable();
  n.ready = false;
  for (const api::NodeCondition& c : node->status().conditions()) {
    if (c.type() == "Ready") n.ready = c.status() == "True";
  }
  n.node = std::move(node);
  if (old_zone != n.zone) {
    // Move the node's owner counts to the new zone.
    for (const auto& [id, count] : n.owner_counts) {
      zone_owner_counts_[(static_cast<uint64_t>(id) << 32) | static_cast<uint32_t>(old_zone)] -= count;
      zone_owner_counts_[(static_cast<uint64_t>(id) << 32) | static_cast<uint32_t>(n.zone)] += count;
    }
  }
  if (!was_live) live_.push_back(index);
  ++n.generation;
  ++generation_;
  return index;
}

void Snapshot::remove_node(std::string_view name) {
  int index = node_index(name);
  if (index < 0 || !nodes_[index].exists()) return;
  nodes_[index].node = nullptr;
  nodes_[index].labels.clear();
  nodes_[index].ready = false;
  nodes_[index].schedulable = false;
  ++nodes_[index].generation;
  live_.erase(std::find(live_.begin(), live_.end(), index));
  ++generation_;
}

void Snapshot::account(int node, const Assigned& a, int sign) {
  NodeInfo& n = nodes_[node];
  if (sign > 0) {
    n.requested.add(a.requests);
    n.used_ports.insert(n.used_ports.end(), a.host_ports.begin(), a.host_ports.end());
  } else {
    n.requested.subtract(a.requests);
    for (const HostPort& hp : a.host_ports) {
      auto it = std::find(n.used_ports.begin(), n.used_ports.end(), hp);
      if (it != n.used_ports.end()) n.used_ports.erase(it);
    }
  }
  if (a.spread_id >= 0) {
    auto it = std::lower_bound(
        n.owner_counts.begin(), n.owner_counts.end(), a.spread_id,
        [](const std::pair<int, int32_t>& e, int k) { return e.first < k; });
    if (it == n.owner_counts.end() || it->first != a.spread_id) {
      it = n.owner_counts.insert(it, {a.spread_id, 0});
    }
    it->second += sign;
    if (it->second == 0) n.owner_counts.erase(it);
    uint64_t zk = (static_cast<uint64_t>(a.spread_id) << 32) | static_cast<uint32_t>(n.zone);
    int32_t& zc = zone_owner_counts_[zk];
    zc += sign;
    if (zc == 0) zone_owner_counts_.erase(zk);
  }
  ++n.generation;
  ++generation_;
}

void Snapshot::add_pod(const PodInfo& pod, std::string_view node_name) {
  int node = slot_for(node_name);
  auto it = pods_.find(pod.key);
  if (it != pods_.end()) {
    if (it->second.node == node) return;
    account(it->second.node, it->second, -1);
    pods_.erase(it);
  }
  Assigned a;
  a.node = node;
  a.requests = pod.requests;
  a.host_ports = pod.host_ports;
  if (!pod.spread_key.empty()) {
    a.spread_id = pod.spread_id;
    if (a.spread_id < 0) {
      auto [sit, inserted] = spread_ids_.emplace(pod.spread_key, static_cast<int>(spread_ids_.size()));
      a.spread_id = sit->second;
    }
  }
  account(node, a, +1);
  pods_.emplace(pod.key, std::move(a));
}

bool Snapshot::remove_pod(std::string_view pod_key) {
  auto it = pods_.find(std::string(pod_key));
  if (it == pods_.end()) return false;
  account(it->second.node, it->second, -1);
  pods_.erase(it);
  return true;
}

const NodeInfo* Snapshot::node_of_pod(std::string_view pod_key) const {
  auto it = pods_.find(std::string(pod_key));
  return it == pods_.end() ? nullptr : &nodes_[it->second.node];
}

const NodeInfo* Snapshot::find_node(std::string_view name) const {
  int i = node_index(name);
  return i < 0 ? nullptr : &nodes_[i];
}

int Snapshot::node_index(std::string_view name) const {
  auto it = node_index_.find(std::string(name));
  return it == node_index_.end() ? -1 : it->second;
}

int32_t Snapshot::zone_owner_count(int spread_id, int zone) const {
  if (spread_id < 0) return 0;
  auto it = zone_owner_counts_.find((static_cast<uint64_t>(spread_id) << 32) | static_cast<uint32_t>(zone));
  return it == zone_owner_counts_.end() ? 0 : it->second;
}

void Snapshot::intern_spread_key(PodInfo& pod) {
  if (pod.spread_key.empty()) {
    pod.spread_id = -1;
    return;
  }
  auto [it, inserted] = spread_ids_.emplace(pod.spread_key, static_cast<int>(spread_ids_.size()));
  pod.spread_id = it->second;
}

}  // namespace flotilla::sched
