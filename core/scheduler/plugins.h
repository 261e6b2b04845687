// The built-in scheduler plugins, after kube-scheduler's in-tree ones: filters
// NodeReady (Ready condition + spec.unschedulable), NodeName, NodeSelector,
// NodePorts, NodeResourcesFit; scores LeastAllocated, BalancedAllocation and
// SelectorSpread (same-owner pods spread over nodes and zones).
#pragma once

#include <memory>
#include <string_view>

#include "core/scheduler/framework.h"

namespace flotilla::sched {

// Filter reasons, worded as Kubernetes words them.
inline constexpr std::string_view kReasonNotReady = "node(s) were not ready";
inline constexpr std::string_view kReasonUnschedulable = "node(s) were unschedulable";
inline constexpr std::string_view kReasonNodeName = "node(s) didn't match the requested node name";
inline constexpr std::string_view kReasonNodeSelector =
    "node(s) didn't match Pod's node affinity/selector";
inline constexpr std::string_view kReasonPorts =
    "node(s) didn't have free ports for the requested pod ports";
inline constexpr std::string_view kReasonTooManyPods = "Too many pods";
inline constexpr std::string_view kReasonCpu = "Insufficient cpu";
inline constexpr std::string_view kReasonMemory = "Insufficient memory";
inline constexpr std::string_view kReasonEphemeral = "Insufficient ephemeral-storage";
inline constexpr std::string_view kReasonGpuModel = "node(s) didn't match Pod's GPU model";

// GPU model constraints of replayed traces (scenarios/replay/): a pod annotated
// `alibaba.com/gpu-model-allow: "A|B"` fits only nodes labelled
// `alibaba.com/gpu-model` A or B. No annotation (or an empty one): any node.
inline constexpr std::string_view kGpuModelAllowAnnotation = "alibaba.com/gpu-model-allow";
inline constexpr std::string_view kGpuModelLabel = "alibaba.com/gpu-model";

class NodeReadyFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "NodeReady"; }
  FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                      const Snapshot& snapshot) const override;
};

class NodeNameFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "NodeName"; }
  FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                      const Snapshot& snapshot) const override;
};

class NodeSelectorFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "NodeSelector"; }
  FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                      const Snapshot& snapshot) const override;
};

class NodePortsFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "NodePorts"; }
  FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                      const Snapshot& snapshot) const override;
};

// Requests vs allocatable minus requested: pods count, cpu, memory,
// ephemeral storage and extended resources; every shortfall is a reason.
class NodeResourcesFitFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "NodeResourcesFit"; }
  FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                      const Snapshot& snapshot) const override;
};

// Honours kGpuModelAllowAnnotation against the node's kGpuModelLabel. Note
// for the flow mode: pod classes (PodInfo::class_signature) do not include the
// annotation, so only greedy mode checks it for every pod.
class GpuModelFilter final : public FilterPlugin {
 public:
  std::string_view name() const override { return "GpuModel"; }
  FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                      const Snapshot& snapshot) const override;
};

// Favors nodes with more free cpu and memory after placing the pod:
// mean over cpu, memory of (allocatable - requested) * 100 / allocatable.
class LeastAllocatedScore final : public ScorePlugin {
 public:
  std::string_view name() const override { return "LeastAllocated"; }
  int64_t score(const PodInfo& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
};

// Favors nodes whose cpu and memory fractions stay close:
// (1 - |cpu fraction - memory fraction| / 2) * 100.
class BalancedAllocationScore final : public ScorePlugin {
 public:
  std::string_view name() const override { return "BalancedAllocation"; }
  int64_t score(const PodInfo& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
};

// kube's SelectorSpread: fewer pods of the same owner on the node, and in the
// node's zone, score higher; the zone part weighs 2/3 when nodes have zones.
class SelectorSpreadScore final : public ScorePlugin {
 public:
  std::string_view name() const override { return "SelectorSpread"; }
  int64_t score(const PodInfo& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  void normalize(const PodInfo& pod, const Snapshot& snapshot, std::span<const int> nodes,
                 std::span<int64_t> scores) const override;
};

// A framework with every built-in filter and score (weights 1, spreading 2
// as kube weighs its default topology spreading), in
// kube-scheduler's order, and no Reserve/Bind plugins.
std::unique_ptr<Framework> make_default_framework();

}  // namespace flotilla::sched
