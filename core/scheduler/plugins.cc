#include "core/scheduler/plugins.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

namespace flotilla::sched {

FilterStatus NodeReadyFilter::filter(const PodInfo&, const NodeInfo& node,
                                     const Snapshot&) const {
  if (!node.ready) return FilterStatus::unschedulable(kReasonNotReady);
  if (!node.schedulable) return FilterStatus::unschedulable(kReasonUnschedulable);
  return FilterStatus::success();
}

FilterStatus NodeNameFilter::filter(const PodInfo& pod, const NodeInfo& node,
                                    const Snapshot&) const {
  if (pod.node_name.empty() || pod.node_name == node.name) return FilterStatus::success();
  return FilterStatus::unschedulable(kReasonNodeName);
}

FilterStatus NodeSelectorFilter::filter(const PodInfo& pod, const NodeInfo& node,
                                        const Snapshot&) const {
  if (pod.node_selector.empty()) return FilterStatus::success();
  for (const auto& [k, v] : pod.node_selector) {
    const std::string* value = node.label(k);
    if (value == nullptr || *value != v) return FilterStatus::unschedulable(kReasonNodeSelector);
  }
  return FilterStatus::success();
}

FilterStatus NodePortsFilter::filter(const PodInfo& pod, const NodeInfo& node,
                                     const Snapshot&) const {
  for (const HostPort& want : pod.host_ports) {
    for (const HostPort& used : node.used_ports) {
      if (want.conflicts(used)) return FilterStatus::unschedulable(kReasonPorts);
    }
  }
  return FilterStatus::success();
}

FilterStatus NodeResourcesFitFilter::filter(const PodInfo& pod, const NodeInfo& node,
                                            const Snapshot& snapshot) const {
  const Resources& req = pod.requests;
  const Resources& alloc = node.allocatable;
  const Resources& used = node.requested;
  FilterStatus s;
  if (used.pods + 1 > alloc.pods) s.add_reason(kReasonTooManyPods);
  if (req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu) {
    s.add_reason(kReasonCpu);
  }
  if (req.memory > 0 && req.memory > alloc.memory - used.memory) s.add_reason(kReasonMemory);
  if (req.ephemeral_storage > 0 &&
      req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage) {
    s.add_reason(kReasonEphemeral);
  }
  for (const auto& [id, amount] : req.extended) {
    if (amount > alloc.extended_value(id) - used.extended_value(id)) {
      s.add_reason(snapshot.resource_names().insufficient_reason(id));
    }
  }
  return s;
}

FilterStatus GpuModelFilter::filter(const PodInfo& pod, const NodeInfo& node,
                                    const Snapshot&) const {
  if (!pod.pod) return FilterStatus::success();
  static const std::string kKey(kGpuModelAllowAnnotation);
  const auto& annotations = pod.pod->metadata().annotations();
  if (annotations.empty()) return FilterStatus::success();  // most pods: no key to hash per node
  auto it = annotations.find(kKey);
  if (it == annotations.end() || it->second.empty()) return FilterStatus::success();
  const std::string* model = node.label(kGpuModelLabel);
  if (model == nullptr || model->empty()) return FilterStatus::unschedulable(kReasonGpuModel);
  std::string_view allow = it->second;
  while (!allow.empty()) {
    size_t bar = allow.find('|');
    std::string_view one = allow.substr(0, bar);
    if (one == *model) return FilterStatus::success();
    if (bar == std::string_view::npos) break;
    allow.remove_prefix(bar + 1);
  }
  return FilterStatus::unschedulable(kReasonGpuModel);
}

namespace {

// Free fraction * 100 of one resource after adding `request`; 0 when full or
// when the node has none of it.
int64_t least_allocated(int64_t allocatable, int64_t requested) {
  if (allocatable <= 0 || requested > allocatable) return 0;
  return (allocatable - requested) * kMaxNodeScore / allocatable;
}

double fraction(int64_t requested, int64_t allocatable) {
  if (allocatable <= 0) return 1.0;
  double f = static_cast<double>(requested) / static_cast<double>(allocatable);
  return f > 1.0 ? 1.0 : f;
}

}  // namespace

int64_t LeastAllocatedScore::score(const PodInfo& pod, const NodeInfo& node,
                                   const Snapshot&) const {
  int64_t cpu = least_allocated(node.allocatable.milli_cpu,
                                node.requested.milli_cpu + pod.requests.milli_cpu);
  int64_t mem = least_allocated(node.allocatable.memory, node.requested.memory + pod.requests.memory);
  return (cpu + mem) / 2;
}

int64_t BalancedAllocationScore::score(const PodInfo& pod, const NodeInfo& node,
                                       const Snapshot&) const {
  double cpu = fraction(node.requested.milli_cpu + pod.requests.milli_cpu,
                        node.allocatable.milli_cpu);
  double mem = fraction(node.requested.memory + pod.requests.memory, node.allocatable.memory);
  double std_dev = std::abs(cpu - mem) / 2.0;
  return static_cast<int64_t>((1.0 - std_dev) * static_cast<double>(kMaxNodeScore));
}

int64_t SelectorSpreadScore::score(const PodInfo& pod, const NodeInfo& node,
                                   const Snapshot&) const {
  // The raw count; normalize() turns counts into scores.
  return node.owner_count(pod.spread_id);
}

void SelectorSpreadScore::normalize(const PodInfo& pod, const Snapshot& snapshot,
                                    std::span<const int> nodes,
                                    std::span<int64_t> scores) const {
  if (pod.spread_id < 0) {
    std::fill(scores.begin(), scores.end(), kMaxNodeScore);
    return;
  }
  // As kube: counts relative to the maximum among the nodes being scored;
  // zone counts over the whole zone, relative to the max among their zones.
  int64_t max_node = 0;
  int64_t max_zone = 0;
  bool have_zones = false;
  // Zone counts looked up once per zone, not per node.
  std::vector<int64_t> zone_count(static_cast<size_t>(snapshot.num_zones()), -1);
  auto count_in = [&](int zone) {
    int64_t& c = zone_count[static_cast<size_t>(zone)];
    if (c < 0) c = snapshot.zone_owner_count(pod.spread_id, zone);
    return c;
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    max_node = std::max(max_node, scores[i]);
    int zone = snapshot.node(nodes[i]).zone;
    if (zone != 0) {
      have_zones = true;
      max_zone = std::max<int64_t>(max_zone, count_in(zone));
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    double f = kMaxNodeScore;
    if (max_node > 0) {
      f = static_cast<double>(kMaxNodeScore) * static_cast<double>(max_node - scores[i]) /
          static_cast<double>(max_node);
    }
    int zone = snapshot.node(nodes[i]).zone;
    if (have_zones && zone != 0) {
      double zf = kMaxNodeScore;
      if (max_zone > 0) {
        zf = static_cast<double>(kMaxNodeScore) *
             static_cast<double>(max_zone - count_in(zone)) /
             static_cast<double>(max_zone);
      }
      f = f * (1.0 / 3.0) + zf * (2.0 / 3.0);
    }
    scores[i] = std::llround(f);  // exact thirds, not 99.999 -> 99
  }
}

std::unique_ptr<Framework> make_default_framework() {
  auto fw = std::make_unique<Framework>();
  fw->add(std::make_unique<NodeReadyFilter>());
  fw->add(std::make_unique<NodeNameFilter>());
  fw->add(std::make_unique<NodeSelectorFilter>());
  fw->add(std::make_unique<NodePortsFilter>());
  fw->add(std::make_unique<NodeResourcesFitFilter>());
  fw->add(std::make_unique<GpuModelFilter>());
  fw->add(std::make_unique<LeastAllocatedScore>(), 1);
  fw->add(std::make_unique<BalancedAllocationScore>(), 1);
  fw->add(std::make_unique<SelectorSpreadScore>(), 2);
  return fw;
}

}  // namespace flotilla::sched
