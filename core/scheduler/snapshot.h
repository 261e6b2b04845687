// The scheduler's view of the cluster: one NodeInfo per node with its
// allocatable resources, the sums requested by the pods assigned to it, its used
// host ports and per-owner pod counts for spreading. Updated incrementally as
// nodes and pods come and go (kube-scheduler's cache + snapshot), never rebuilt
// per pod. PodInfo holds a pod's requests parsed once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/api/types.pb.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::sched {

inline constexpr std::string_view kZoneLabel = "topology.kubernetes.io/zone";
inline constexpr std::string_view kRackLabel = "flotilla.io/rack";
// A pod label that groups pods for spreading when they have no controller
// owner (e.g. the pods behind one Service created by hand).
inline constexpr std::string_view kSpreadKeyLabel = "flotilla.io/spread-key";

// Resource amounts in the units the scheduler compares: cpu in millicores,
// memory and ephemeral storage in bytes, pods as a count, extended resources
// ("alibaba.com/gpu") as integers keyed by an id interned in the Snapshot's
// ResourceNames.
struct Resources {
  int64_t milli_cpu = 0;
  int64_t memory = 0;
  int64_t ephemeral_storage = 0;
  int64_t pods = 0;
  std::vector<std::pair<int, int64_t>> extended;  // sorted by id, no zeros

  int64_t extended_value(int id) const;
  void add(const Resources& r);
  void subtract(const Resources& r);
  friend bool operator==(const Resources&, const Resources&) = default;
};

// Interns extended-resource names to small ids. Ids are never reused, so
// names stay stable for the process; "Insufficient <name>" strings live here
// so filter reasons can be string_views.
class ResourceNames {
 public:
  int intern(std::string_view name);
  const std::string& name(int id) const { return names_[id]->name; }
  const std::string& insufficient_reason(int id) const { return names_[id]->reason; }
  int size() const { return static_cast<int>(names_.size()); }

 private:
  struct Entry {
    std::string name;
    std::string reason;
  };
  std::vector<std::unique_ptr<Entry>> names_;
  std::unordered_map<std::string, int> ids_;
};

struct HostPort {
  std::string protocol;  // "TCP", "UDP", "SCTP"
  std::string ip;        // "" or "0.0.0.0" means every address
  int32_t port = 0;
  // Kubernetes' rule: same protocol and port, and either address is a
  // wildcard or both are equal.
  bool conflicts(const HostPort& o) const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// A pod as the scheduler sees it: parsed once when it enters the queue.
struct PodInfo {
  std::string ns;
  std::string name;
  std::string uid;
  std::string key;        // "ns/name"
  std::string node_name;  // spec.nodeName when pre-set
  Resources requests;     // pods = 1
  std::vector<HostPort> host_ports;
  std::vector<std::pair<std::string, std::string>> node_selector;  // sorted
  std::string spread_key;  // controller owner uid, or the spread-key label; may be empty
  int spread_id = -1;      // interned by the Snapshot; -1 when no spread key
  int32_t priority = 0;
  TimePoint created = kTimeZero;
  // Pods with equal class_signature are interchangeable for placement.
  std::string class_signature;
  std::shared_ptr<const api::Pod> pod;  // the stored object it was parsed from

  // Parses requests (containers summed, max'ed with each init container, limits
  // standing in for missing requests, as Kubernetes defaults them), host
  // ports, selector and spread key. Errors (kInvalid) name the bad quantity.
  static StatusOr<PodInfo> from_pod(std::shared_ptr<const api::Pod> pod, ResourceNames& names);
};

struct NodeInfo {
  std::string name;
  std::shared_ptr<const api::Node> node;  // null for a placeholder (pods seen before the node)
  int zone = 0;  // interned zone label; 0: none
  int rack = 0;  // interned rack label; 0: none
  Resources allocatable;
  Resources requested;
  std::vector<HostPort> used_ports;
  bool ready = false;
  bool schedulable = false;  // !spec.unschedulable
  // Same-owner pod counts for spreading: (spread id, count), sorted by id.
  std::vector<std::pair<int, int32_t>> owner_counts;
  int64_t generation = 0;  // bumps on every change to this node's info

  // The node's labels, sorted by key: cheaper to search than the proto map.
  std::vector<std::pair<std::string, std::string>> labels;

  bool exists() const { return node != nullptr; }
  // The value of label `key`, or nullptr.
  const std::string* label(std::string_view key) const;
  int32_t owner_count(int spread_id) const;
};

// The incremental cluster view. Node indexes are stable for the life of the
// Snapshot (a deleted node's slot stays as a placeholder, reused if it comes
// back). Not thread-safe; lives on the scheduler's event loop.
class Snapshot {
 public:
  Snapshot() = default;
  Snapshot(const Snapshot&) = default;  // cheap enough for a what-if copy
  Snapshot& operator=(const Snapshot&) = default;

  // Adds or updates a node from its stored object. Returns the node index.
  // Errors (kInvalid) for an unparsable allocatable quantity.
  StatusOr<int> upsert_node(std::shared_ptr<const api::Node> node);
  // Drops the node; its assigned pods keep being accounted to the name until
  // they are removed (the node may come back).
  void remove_node(std::string_view name);

  // Accounts `pod` on `node_name` (creating a placeholder slot if unknown).
  // Re-adding a pod already on that node is a no-op; on another node, it moves.
  void add_pod(const PodInfo& pod, std::string_view node_name);
  // Removes a pod's accounting; false when it was not assigned.
  bool remove_pod(std::string_view pod_key);
  // The node a pod is accounted on, or nullptr.
  const NodeInfo* node_of_pod(std::string_view pod_key) const;
  bool has_pod(std::string_view pod_key) const { return pods_.count(std::string(pod_key)) > 0; }

  // Nodes that exist, in the order they were first added: the order the
  // greedy search rotates over. Stable between changes of the node set.
  const std::vector<int>& live_nodes() const { return live_; }
  int num_nodes() const { return static_cast<int>(live_.size()); }
  const NodeInfo& node(int index) const { return nodes_[index]; }
  const NodeInfo* find_node(std::string_view name) const;
  int node_index(std::string_view name) const;  // -1 when unknown

  // Same-owner pods in a zone (zone id from NodeInfo::zone).
  int32_t zone_owner_count(int spread_id, int zone) const;
  int num_zones() const { return static_cast<int>(zone_names_.size()); }  // including "no zone"
  const std::string& zone_name(int zone) const { return zone_names_[zone]; }
  int num_pods() const { return static_cast<int>(pods_.size()); }
  int64_t generation() const { return generation_; }

  // Interns a spread key (the pod's owner) and sets pod.spread_id.
  void intern_spread_key(PodInfo& pod);
  ResourceNames& resource_names() { return *resource_names_; }
  const ResourceNames& resource_names() const { return *resource_names_; }
  std::shared_ptr<ResourceNames> shared_resource_names() const { return resource_names_; }

 private:
  struct Assigned {
    int node = -1;
    Resources requests;
    std::vector<HostPort> host_ports;
    int spread_id = -1;
  };
  int slot_for(std::string_view name);
  int intern_zone(std::string_view zone);
  int intern_rack(std::string_view rack);
  void account(int node, const Assigned& a, int sign);

  std::shared_ptr<ResourceNames> resource_names_ = std::make_shared<ResourceNames>();
  std::vector<NodeInfo> nodes_;
  std::vector<int> live_;
  std::unordered_map<std::string, int> node_index_;
  std::unordered_map<std::string, Assigned> pods_;
  std::vector<std::string> zone_names_{""};
  std::unordered_map<std::string, int> zone_ids_;
  std::vector<std::string> rack_names_{""};
  std::unordered_map<std::string, int> rack_ids_;
  std::unordered_map<std::string, int> spread_ids_;
  std::unordered_map<uint64_t, int32_t> zone_owner_counts_;  // (spread id << 32 | zone)
  int64_t generation_ = 0;
};

}  // namespace flotilla::sched
