// The simulated data centre's shape: a control plane, zones, racks and nodes,
// held as a Boost.Graph of network links. Answers which nodes share a failure
// domain, whether two nodes can reach each other under the current partitions
// (connected components over the links that are up, recomputed only when a
// partition changes), and the network latency between two nodes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::sim {

using NodeId = uint32_t;
inline constexpr NodeId kNoNode = UINT32_MAX;

// One-way network latency by how far apart two endpoints are.
struct LatencyModel {
  Duration same_node = std::chrono::microseconds(20);
  Duration same_rack = std::chrono::microseconds(100);
  Duration same_zone = std::chrono::microseconds(300);
  Duration cross_zone = std::chrono::milliseconds(2);
  Duration control_plane = std::chrono::microseconds(500);  // node <-> control plane
};

// Who a partition cuts its nodes off from.
enum class PartitionKind {
  kFromRest,          // the nodes reach each other, nothing else (nor the control plane)
  kFromControlPlane,  // the nodes reach every other node but not the control plane
};

using PartitionId = uint32_t;

class Topology {
 public:
  explicit Topology(LatencyModel latency = {});
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // Adds a node in `rack` of `zone`, creating both as needed. Rack names are
  // global: a rack belongs to one zone. Errors: kAlreadyExists for a known node
  // name, kInvalid for an empty name or a rack already placed in another zone.
  StatusOr<NodeId> add_node(const std::string& name, const std::string& zone,
                            const std::string& rack);

  size_t node_count() const { return nodes_.size(); }
  std::optional<NodeId> find_node(std::string_view name) const;
  const std::string& node_name(NodeId n) const { return nodes_[n].name; }
  const std::string& zone_of(NodeId n) const { return zones_[nodes_[n].zone].name; }
  const std::string& rack_of(NodeId n) const { return racks_[nodes_[n].rack].name; }

  // Failure domains. Node lists are in the order nodes were added; an unknown
  // rack or zone gives an empty list.
  bool same_rack(NodeId a, NodeId b) const { return nodes_[a].rack == nodes_[b].rack; }
  bool same_zone(NodeId a, NodeId b) const { return nodes_[a].zone == nodes_[b].zone; }
  const std::vector<NodeId>& nodes_in_rack(std::string_view rack) const;
  const std::vector<NodeId>& nodes_in_zone(std::string_view zone) const;
  // Every other node in `n`'s rack (or zone), in insertion order.
  std::vector<NodeId> rack_peers(NodeId n) const;
  std::vector<NodeId> zone_peers(NodeId n) const;
  // Names in insertion order.
  std::vector<std::string> rack_names() const;
  std::vector<std::string> zone_names() const;
  bool has_rack(std::string_view rack) const { return rack_index_.count(std::string(rack)) > 0; }
  bool has_zone(std::string_view zone) const { return zone_index_.count(std::string(zone)) > 0; }

  // Partitions. Overlapping partitions compose: a node cut off by two
  // kFromRest partitions reaches the members of both. The returned id removes it.
  PartitionId add_partition(const std::vector<NodeId>& nodes, PartitionKind kind);
  // Errors: kNotFound for an unknown or already removed id.
  Status remove_partition(PartitionId id);
  size_t active_partitions() const { return active_partitions_; }

  // Whether packets flow between the two nodes over links that are up.
  // O(1) after the first query following a partition change.
  bool reachable(NodeId a, NodeId b) const;
  // Whether the node reaches the control plane.
  bool reaches_control_plane(NodeId n) const;

  // One-way latency between two nodes, from where they sit.
  Duration latency(NodeId a, NodeId b) const;
  Duration control_plane_latency() const { return latency_.control_plane; }
  const LatencyModel& latency_model() const { return latency_; }

  // Times components were recomputed (for tests and benchmarks).
  uint64_t recomputations() const { return recomputations_; }

 private:
  struct Graph;  // the Boost.Graph adjacency_list, kept out of this header
  struct NodeInfo {
    std::string name;
    uint32_t zone;
    uint32_t rack;
    uint32_t vertex;
    uint32_t uplink_cuts = 0;  // active kFromRest partitions covering it
    uint32_t cp_cuts = 0;      // active kFromControlPlane partitions covering it
  };
  struct Domain {
    std::string name;
    uint32_t vertex;
    uint32_t zone;  // racks: their zone
    std::vector<NodeId> nodes;
  };
  struct Partition {
    bool active = false;
    PartitionKind kind = PartitionKind::kFromRest;
    std::vector<NodeId> nodes;
    uint32_t island = UINT32_MAX;  // kFromRest: the vertex joining the members
  };

  void recompute() const;

  LatencyModel latency_;
  std::unique_ptr<Graph> graph_;
  uint32_t control_plane_vertex_;
  uint32_t core_vertex_;
  std::vector<NodeInfo> nodes_;
  std::vector<Domain> zones_;
  std::vector<Domain> racks_;
  std::unordered_map<std::string, NodeId> node_index_;
  std::unordered_map<std::string, uint32_t> zone_index_;
  std::unordered_map<std::string, uint32_t> rack_index_;
  std::vector<Partition> partitions_;
  std::vector<uint32_t> free_islands_;
  size_t active_partitions_ = 0;
  mutable std::vector<uint32_t> component_;  // by vertex
  mutable bool dirty_ = true;
  mutable uint64_t recomputations_ = 0;
};

}  // namespace flotilla::sim
