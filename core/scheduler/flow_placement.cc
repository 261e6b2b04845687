#include "core/scheduler/flow_placement.h"

#include <algorithm>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/successive_shortest_path_nonnegative_weights.hpp>
#include <limits>
#include <map>
#include <unordered_map>

namespace flotilla::sched {
namespace {

using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
using Graph = boost::adjacency_list<
    boost::vecS, boost::vecS, boost::directedS, boost::no_property,
    boost::property<boost::edge_capacity_t, long,
                    boost::property<boost::edge_residual_capacity_t, long,
                                    boost::property<boost::edge_reverse_t, Traits::edge_descriptor,
                                                    boost::property<boost::edge_weight_t, long>>>>>;
using Edge = Traits::edge_descriptor;

class FlowNetwork {
 public:
  explicit FlowNetwork(int vertices) : g_(static_cast<size_t>(vertices)) {}

  Edge arc(int from, int to, long capacity, long cost) {
    Edge e = boost::add_edge(static_cast<size_t>(from), static_cast<size_t>(to), g_).first;
    Edge r = boost::add_edge(static_cast<size_t>(to), static_cast<size_t>(from), g_).first;
    boost::put(boost::edge_capacity, g_, e, capacity);
    boost::put(boost::edge_capacity, g_, r, 0);
    boost::put(boost::edge_weight, g_, e, cost);
    boost::put(boost::edge_weight, g_, r, -cost);
    boost::put(boost::edge_reverse, g_, e, r);
    boost::put(boost::edge_reverse, g_, r, e);
    ++arcs_;
    return e;
  }

  void solve(int source, int sink) {
    boost::successive_shortest_path_nonnegative_weights(g_, static_cast<size_t>(source),
                                                        static_cast<size_t>(sink));
  }

  long flow(Edge e) const {
    return boost::get(boost::edge_capacity, g_, e) -
           boost::get(boost::edge_residual_capacity, g_, e);
  }
  long cost(Edge e) const { return boost::get(boost::edge_weight, g_, e); }
  int arcs() const { return arcs_; }

 private:
  Graph g_;
  int arcs_ = 0;
};

constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();

int64_t fit_count(int64_t free, int64_t request) {
  if (request <= 0) return kUnbounded;
  return free <= 0 ? 0 : free / request;
}

// How many pods like `pod` fit on `node` on their own, as the filters would
// see them added one after another.
int64_t capacity_for(const PodInfo& pod, const NodeInfo& node) {
  const Resources& a = node.allocatable;
  const Resources& u = node.requested;
  const Resources& r = pod.requests;
  int64_t k = fit_count(a.pods - u.pods, 1);
  k = std::min(k, fit_count(a.milli_cpu - u.milli_cpu, r.milli_cpu));
  k = std::min(k, fit_count(a.memory - u.memory, r.memory));
  k = std::min(k, fit_count(a.ephemeral_storage - u.ephemeral_storage, r.ephemeral_storage));
  for (const auto& [id, v] : r.extended) {
    k = std::min(k, fit_count(a.extended_value(id) - u.extended_value(id), v));
  }
  if (!pod.host_ports.empty()) k = std::min<int64_t>(k, 1);  // a pod's ports conflict with its twin's
  return k;
}

struct Candidate {
  int node;       // snapshot index
  int64_t score;  // 0..100, normalized over the framework's weights
  int64_t cap;    // capacity_for this class
};

struct PodClass {
  std::vector<int> members;  // batch indexes, in batch order
  std::vector<Candidate> candidates;
  int vertex = -1;
  std::vector<std::pair<Edge, int>> node_arcs;  // arc into a node vertex, node index
};

}  // namespace

int BatchResult::placed() const {
  return static_cast<int>(std::count_if(node.begin(), node.end(), [](int n) { return n >= 0; }));
}

BatchResult place_greedy(std::span<const PodInfo> pods, Snapshot& snapshot,
                         GreedyPlacer& placer) {
  BatchResult result;
  result.node.assign(pods.size(), -1);
  result.messages.resize(pods.size());
  for (size_t i = 0; i < pods.size(); ++i) {
    PlacementResult r = placer.place(pods[i], snapshot);
    if (r.ok()) {
      result.node[i] = r.node;
      snapshot.add_pod(pods[i], snapshot.node(r.node).name);
    } else {
      result.messages[i] = std::move(r.message);
    }
  }
  return result;
}

std::vector<int> FlowPlacer::solve_round(std::span<const PodInfo> pods,
                                         const std::vector<size_t>& remaining,
                                         const Snapshot& snapshot, FlowStats& stats) {
  // 1. Pod classes, in order of first appearance.
  std::vector<PodClass> classes;
  {
    std::unordered_map<std::string_view, int> by_signature;
    for (size_t i : remaining) {
      auto [it, inserted] =
          by_signature.emplace(pods[i].class_signature, static_cast<int>(classes.size()));
      if (inserted) classes.emplace_back();
      classes[it->second].members.push_back(static_cast<int>(i));
    }
  }
  stats.classes = std::max(stats.classes, static_cast<int>(classes.size()));

  // 2. Feasible nodes per class, scored, and a bounded candidate set that
  //    interleaves zones so spreading has somewhere to go.
  const std::vector<int>& live = snapshot.live_nodes();
  const int64_t max_total = std::max<int64_t>(1, framework_.max_total_score());
  std::vector<int> feasible;
  std::vector<int64_t> totals;
  for (PodClass& c : classes) {
    const PodInfo& rep = pods[c.members.front()];
    if (!framework_.run_pre_filter(rep, snapshot).is_success()) continue;
    feasible.clear();
    for (int n : live) {
      if (framework_.run_filters(rep, snapshot.node(n), snapshot).is_success()) {
        feasible.push_back(n);
      }
    }
    if (feasible.empty()) continue;
    totals.resize(feasible.size());
    framework_.run_scores(rep, snapshot, feasible, totals);
    std::vector<Candidate> all;
    all.reserve(feasible.size());
    for (size_t i = 0; i < feasible.size(); ++i) {
      int64_t cap = std::min<int64_t>(capacity_for(rep, snapshot.node(feasible[i])),
                                      static_cast<int64_t>(c.members.size()));
      if (cap > 0) all.push_back({feasible[i], totals[i] * kMaxNodeScore / max_total, cap});
    }
    // Best first; equal scores keep node order (stable).
    std::stable_sort(all.begin(), all.end(),
                     [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    // Round-robin over zones in order of each zone's best node.
    std::map<int, std::vector<const Candidate*>> by_zone;
    std::vector<int> zone_order;
    for (const Candidate& cand : all) {
      int z = snapshot.node(cand.node).zone;
      auto& list = by_zone[z];
      if (list.empty()) zone_order.push_back(z);
      list.push_back(&cand);
    }
    const int64_t want_cap = static_cast<int64_t>(c.members.size()) * options_.capacity_slack;
    int64_t have_cap = 0;
    for (size_t round = 0;; ++round) {
      bool any = false;
      for (int z : zone_order) {
        auto& list = by_zone[z];
        if (round >= list.size()) continue;
        any = true;
        c.candidates.push_back(*list[round]);
        have_cap += list[round]->cap;
      }
      int n = static_cast<int>(c.candidates.size());
      if (!any || n >= options_.max_candidates_per_class ||
          (have_cap >= want_cap && n >= options_.min_candidates_per_class)) {
        break;
      }
    }
  }

  // 3. The network. Vertices: source, sink, classes, per-class zone
  //    aggregators (spreading classes), candidate nodes.
  int next_vertex = 2;
  const int source = 0;
  const int sink = 1;
  std::unordered_map<int, int> node_vertex;  // snapshot index -> vertex
  std::vector<int> node_of_vertex;
  std::unordered_map<int, int64_t> node_cap;  // min over classes of their capacity
  for (PodClass& c : classes) {
    if (c.candidates.empty()) continue;
    c.vertex = next_vertex++;
    for (const Candidate& cand : c.candidates) {
      auto [it, inserted] = node_cap.emplace(cand.node, cand.cap);
      if (inserted) {
        node_vertex.emplace(cand.node, -1);
      } else {
        it->second = std::min(it->second, cand.cap);
      }
    }
  }
  // Node vertices in node order, for determinism.
  std::vector<int> cand_nodes;
  cand_nodes.reserve(node_vertex.size());
  for (const auto& [n, v] : node_vertex) cand_nodes.push_back(n);
  std::sort(cand_nodes.begin(), cand_nodes.end());
  for (int n : cand_nodes) node_vertex[n] = next_vertex++;
  // Zone aggregators: (class, zone) -> vertex.
  std::map<std::pair<int, int>, int> zone_vertex;
  for (size_t ci = 0; ci < classes.size(); ++ci) {
    const PodClass& c = classes[ci];
    if (c.candidates.empty() || pods[c.members.front()].spread_id < 0) continue;
    for (const Candidate& cand : c.candidates) {
      auto key = std::make_pair(static_cast<int>(ci), snapshot.node(cand.node).zone);
      if (!zone_vertex.count(key)) zone_vertex.emplace(key, next_vertex++);
    }
  }

  FlowNetwork net(next_vertex);
  std::vector<Edge> unscheduled_arcs(classes.size());
  for (size_t ci = 0; ci < classes.size(); ++ci) {
    PodClass& c = classes[ci];
    if (c.candidates.empty()) continue;
    const PodInfo& rep = pods[c.members.front()];
    const long count = static_cast<long>(c.members.size());
    net.arc(source, c.vertex, count, 0);
    net.arc(c.vertex, sink, count, static_cast<long>(options_.unscheduled_cost));
    const bool spreading = rep.spread_id >= 0;
    if (spreading) {
      // Zone tiers: the j-th pod into zone z costs step * (pods there + j),
      // in chunks so the graph stays small.
      int zones = 0;
      for (const auto& [key, v] : zone_vertex) zones += key.first == static_cast<int>(ci);
      const long chunk = std::max<long>(1, count / (std::max(zones, 1) * 8L));
      for (const auto& [key, v] : zone_vertex) {
        if (key.first != static_cast<int>(ci)) continue;
        const long existing = snapshot.zone_owner_count(rep.spread_id, key.second);
        for (long placed = 0; placed < count; placed += chunk) {
          long cap = std::min(chunk, count - placed);
          net.arc(c.vertex, v, cap, static_cast<long>(options_.zone_spread_step) * (existing + placed));
        }
      }
    }
    for (const Candidate& cand : c.candidates) {
      const int from = spreading
                           ? zone_vertex.at({static_cast<int>(ci), snapshot.node(cand.node).zone})
                           : c.vertex;
      const int to = node_vertex.at(cand.node);
      const long base = static_cast<long>(kMaxNodeScore - cand.score);
      if (!spreading) {
        c.node_arcs.push_back({net.arc(from, to, static_cast<long>(cand.cap), base), cand.node});
        continue;
      }
      // Node tiers: one unit per tier for the first few pods, the rest at the last tier.
      const long existing = snapshot.node(cand.node).owner_count(rep.spread_id);
      constexpr long kTiers = 4;
      long left = static_cast<long>(cand.cap);
      for (long j = 0; left > 0; ++j) {
        long cap = j + 1 < kTiers ? 1 : left;
        long cost = base + static_cast<long>(options_.node_spread_step) * (existing + j);
        c.node_arcs.push_back({net.arc(from, to, cap, cost), cand.node});
        left -= cap;
      }
    }
  }
  for (int n : cand_nodes) net.arc(node_vertex.at(n), sink, static_cast<long>(node_cap.at(n)), 0);
  stats.vertices = std::max(stats.vertices, next_vertex);
  stats.edges = std::max(stats.edges, net.arcs());

  // 4. Solve, then read each class's assignments off its node arcs.
  net.solve(source, sink);
  std::vector<int> assigned(pods.size(), -1);
  for (PodClass& c : classes) {
    size_t next_member = 0;
    for (const auto& [e, node] : c.node_arcs) {
      long f = net.flow(e);
      stats.total_cost += f * net.cost(e);
      for (long k = 0; k < f && next_member < c.members.size(); ++k) {
        assigned[static_cast<size_t>(c.members[next_member++])] = node;
      }
    }
  }

  return assigned;
}

BatchResult FlowPlacer::place(std::span<const PodInfo> pods, Snapshot& snapshot) {
  BatchResult result;
  result.node.assign(pods.size(), -1);
  result.messages.resize(pods.size());
  std::vector<size_t> remaining(pods.size());
  for (size_t i = 0; i < pods.size(); ++i) remaining[i] = i;
  // Rounds: node capacities are conservative (the least any connected class
  // fits), so each round re-derives them from what is still free.
  for (int round = 0; round < options_.max_rounds && !remaining.empty(); ++round) {
    std::vector<int> assigned = solve_round(pods, remaining, snapshot, result.stats);
    ++result.stats.rounds;
    // Apply in batch order, re-checking every filter against the snapshot as it fills.
    std::vector<size_t> next;
    int placed = 0;
    for (size_t i : remaining) {
      int n = assigned[i];
      if (n >= 0 && framework_.run_filters(pods[i], snapshot.node(n), snapshot).is_success()) {
        snapshot.add_pod(pods[i], snapshot.node(n).name);
        result.node[i] = n;
        ++result.stats.placed_by_flow;
        ++placed;
        continue;
      }
      if (n >= 0) ++result.stats.dropped_in_verify;
      next.push_back(i);
    }
    remaining = std::move(next);
    if (placed == 0) break;
  }
  // Whatever the flow left is placed greedily (and gets its FailedScheduling message).
  for (size_t i : remaining) {
    PlacementResult r = repair_.place(pods[i], snapshot);
    if (r.ok()) {
      snapshot.add_pod(pods[i], snapshot.node(r.node).name);
      result.node[i] = r.node;
      ++result.stats.placed_by_repair;
    } else {
      result.messages[i] = std::move(r.message);
    }
  }
  return result;
}

}  // namespace flotilla::sched
