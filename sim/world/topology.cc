#include "sim/world/topology.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/connected_components.hpp>
#include <boost/graph/filtered_graph.hpp>

namespace flotilla::sim {

namespace {
// An edge's node is the node whose rack uplink it is (kNoNode for every other
// link, which partitions never cut).
struct EdgeProps {
  NodeId uplink_of = kNoNode;
};
using BoostGraph =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, boost::no_property,
                          EdgeProps>;
}  // namespace

struct Topology::Graph {
  BoostGraph g;
};

namespace {
const std::vector<NodeId>& empty_nodes() {
  static const std::vector<NodeId> kEmpty;
  return kEmpty;
}
}  // namespace

Topology::Topology(LatencyModel latency)
    : latency_(latency), graph_(std::make_unique<Graph>()) {
  control_plane_vertex_ = static_cast<uint32_t>(boost::add_vertex(graph_->g));
  core_vertex_ = static_cast<uint32_t>(boost::add_vertex(graph_->g));
  boost::add_edge(control_plane_vertex_, core_vertex_, graph_->g);
}

Topology::~Topology() = default;

StatusOr<NodeId> Topology::add_node(const std::string& name, const std::string& zone,
                                    const std::string& rack) {
  if (name.empty()) return invalid_error("node name must not be empty");
  if (zone.empty()) return invalid_error("node \"" + name + "\": zone must not be empty");
  if (rack.empty()) return invalid_error("node \"" + name + "\": rack must not be empty");
  if (node_index_.count(name)) return already_exists_error("node \"" + name + "\" already exists");
  auto& g = graph_->g;
  uint32_t z;
  if (auto it = zone_index_.find(zone); it != zone_index_.end()) {
    z = it->second;
  } else {
    z = static_cast<uint32_t>(zones_.size());
    uint32_t v = static_cast<uint32_t>(boost::add_vertex(g));
    boost::add_edge(core_vertex_, v, g);
    zones_.push_back(Domain{zone, v, z, {}});
    zone_index_.emplace(zone, z);
  }
  uint32_t r;
  if (auto it = rack_index_.find(rack); it != rack_index_.end()) {
    r = it->second;
    if (racks_[r].zone != z) {
      return invalid_error("node \"" + name + "\": rack \"" + rack + "\" is in zone \"" +
                           zones_[racks_[r].zone].name + "\", not \"" + zone + "\"");
    }
  } else {
    r = static_cast<uint32_t>(racks_.size());
    uint32_t v = static_cast<uint32_t>(boost::add_vertex(g));
    boost::add_edge(zones_[z].vertex, v, g);
    racks_.push_back(Domain{rack, v, z, {}});
    rack_index_.emplace(rack, r);
  }
  NodeId id = static_cast<NodeId>(nodes_.size());
  uint32_t v = static_cast<uint32_t>(boost::add_vertex(g));
  boost::add_edge(racks_[r].vertex, v, EdgeProps{id}, g);
  nodes_.push_back(NodeInfo{name, z, r, v});
  zones_[z].nodes.push_back(id);
  racks_[r].nodes.push_back(id);
  node_index_.emplace(name, id);
  dirty_ = true;
  return id;
}

std::optional<NodeId> Topology::find_node(std::string_view name) const {
  auto it = node_index_.find(std::string(name));
  if (it == node_index_.end()) return std::nullopt;
  return it->second;
}

const std::vector<NodeId>& Topology::nodes_in_rack(std::string_view rack) const {
  auto it = rack_index_.find(std::string(rack));
  return it == rack_index_.end() ? empty_nodes() : racks_[it->second].nodes;
}

const std::vector<NodeId>& Topology::nodes_in_zone(std::string_view zone) const {
  auto it = zone_index_.find(std::string(zone));
  return it == zone_index_.end() ? empty_nodes() : zones_[it->second].nodes;
}

std::vector<NodeId> Topology::rack_peers(NodeId n) const {
  std::vector<NodeId> out;
  for (NodeId m : racks_[nodes_[n].rack].nodes) {
    if (m != n) out.push_back(m);
  }
  return out;
}

std::vector<NodeId> Topology::zone_peers(NodeId n) const {
  std::vector<NodeId> out;
  for (NodeId m : zones_[nodes_[n].zone].nodes) {
    if (m != n) out.push_back(m);
  }
  return out;
}

std::vector<std::string> Topology::rack_names() const {
  std::vector<std::string> out;
  for (const auto& r : racks_) out.push_back(r.name);
  return out;
}

std::vector<std::string> Topology::zone_names() const {
  std::vector<std::string> out;
  for (const auto& z : zones_) out.push_back(z.name);
  return out;
}

PartitionId Topology::add_partition(const std::vector<NodeId>& nodes, PartitionKind kind) {
  PartitionId id = static_cast<PartitionId>(partitions_.size());
  Partition p;
  p.active = true;
  p.kind = kind;
  p.nodes = nodes;
  auto& g = graph_->g;
  if (kind == PartitionKind::kFromRest) {
    if (!free_islands_.empty()) {
      p.island = free_islands_.back();
      free_islands_.pop_back();
    } else {
      p.island = static_cast<uint32_t>(boost::add_vertex(g));
    }
    for (NodeId n : nodes) {
      ++nodes_[n].uplink_cuts;
      boost::add_edge(nodes_[n].vertex, p.island, g);
    }
  } else {
    for (NodeId n : nodes) ++nodes_[n].cp_cuts;
  }
  partitions_.push_back(std::move(p));
  ++active_partitions_;
  dirty_ = true;
  return id;
}

Status Topology::remove_partition(PartitionId id) {
  if (id >= partitions_.size() || !partitions_[id].active) {
    return not_found_error("partition " + std::to_string(id) + " is not active");
  }
  Partition& p = partitions_[id];
  auto& g = graph_->g;
  if (p.kind == PartitionKind::kFromRest) {
    for (NodeId n : p.nodes) {
      --nodes_[n].uplink_cuts;
      boost::remove_edge(nodes_[n].vertex, p.island, g);
    }
    free_islands_.push_back(p.island);
  } else {
    for (NodeId n : p.nodes) --nodes_[n].cp_cuts;
  }
  p.active = false;
  p.nodes.clear();
  p.nodes.shrink_to_fit();
  --active_partitions_;
  dirty_ = true;
  return Status::ok();
}

void Topology::recompute() const {
  struct UpLinks {
    const Topology* t = nullptr;
    const BoostGraph* g = nullptr;
    bool operator()(const BoostGraph::edge_descriptor& e) const {
      NodeId n = (*g)[e].uplink_of;
      return n == kNoNode || t->nodes_[n].uplink_cuts == 0;
    }
  };
  const BoostGraph& g = graph_->g;
  boost::filtered_graph<BoostGraph, UpLinks> up(g, UpLinks{this, &g});
  component_.assign(boost::num_vertices(g), 0);
  boost::connected_components(up, component_.data());
  dirty_ = false;
  ++recomputations_;
}

bool Topology::reachable(NodeId a, NodeId b) const {
  if (a == b) return true;
  if (active_partitions_ == 0) return true;
  if (dirty_) recompute();
  return component_[nodes_[a].vertex] == component_[nodes_[b].vertex];
}

bool Topology::reaches_control_plane(NodeId n) const {
  if (active_partitions_ == 0) return true;
  if (nodes_[n].cp_cuts > 0) return false;
  if (dirty_) recompute();
  return component_[nodes_[n].vertex] == component_[control_plane_vertex_];
}

Duration Topology::latency(NodeId a, NodeId b) const {
  if (a == b) return latency_.same_node;
  if (nodes_[a].rack == nodes_[b].rack) return latency_.same_rack;
  if (nodes_[a].zone == nodes_[b].zone) return latency_.same_zone;
  return latency_.cross_zone;
}

}  // namespace flotilla::sim
