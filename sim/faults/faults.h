// Failure models for the simulated world: scheduled faults (at time T kill or
// restart a node, kill or hang containers by label selector, partition nodes,
// power off a rack or zone) and stochastic ones (per node or per failure
// domain time-to-failure / time-to-repair; container crash rates). Parsed
// from a scenario's `faults:` list; every fault and heal goes to the trace.
//
//   faults:
//     - {at: 2h, kill_node: node-3}
//     - {at: 3h, restart_node: node-3}
//     - {at: 1h, power_off: {rack: r1, for: 10m}}          # or {zone: z1}; no `for`: stays off
//     - {at: 30m, partition: {nodes: [n1, n2], for: 5m, from: control-plane}}  # or rack:/zone:; from: rest (default)
//     - {at: 10m, kill_containers: {selector: "app=web", count: 2, exit_code: 137}}  # count 0/absent: all
//     - {at: 10m, hang_containers: {selector: "app=db", count: 1}}
//     - {stochastic: {nodes: all, ttf: {exponential: {mean: 30d}}, ttr: {exponential: {mean: 1h}}, domain: rack}}
//     - {stochastic: {containers: "app=web", ttf: {exponential: {mean: 6h}}, exit_code: 137}}
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/api/labels.h"
#include "core/ports/random.h"
#include "core/util/status.h"
#include "core/util/time.h"
#include "sim/engine/distribution.h"
#include "sim/world/world.h"

namespace YAML {
class Node;
}

namespace flotilla::sim {

struct FaultSpec {
  enum class Kind {
    kKillNode,
    kRestartNode,
    kKillContainers,
    kHangContainers,
    kPartition,
    kPowerOff,
    kStochasticNodes,
    kStochasticContainers,
  };
  enum class Domain { kNode, kRack, kZone };

  Kind kind = Kind::kKillNode;
  std::string name;  // "faults[3]": names the fault in the trace and its random streams
  Duration at{};     // scheduled faults

  // Targets: nodes (kill/restart/partition), or a rack or a zone
  // (power_off/partition).
  std::vector<std::string> nodes;
  std::string rack;
  std::string zone;
  std::optional<Duration> duration;  // `for`: heals after this long
  PartitionKind partition_from = PartitionKind::kFromRest;

  // Containers.
  api::LabelSelector selector;
  std::string selector_text;
  int count = 0;  // 0: every match
  int exit_code = 137;

  // Stochastic nodes: `nodes: all` or a node label selector.
  api::LabelSelector node_selector;  // empty: all
  std::optional<Distribution> ttf;
  std::optional<Distribution> ttr;
  Domain domain = Domain::kNode;
};

// Parses a YAML list of faults; errors are kInvalid and read
// `faults[2].partition.for (line L, column C): <what is wrong>`.
StatusOr<std::vector<FaultSpec>> parse_faults(const YAML::Node& node,
                                              const std::string& path = "faults");

// Applies faults to a World through the simulator. Node outages from several
// faults overlap correctly: a node is down while any fault holds it down
// (a restart_node fault clears every hold). Draws come from the streams
// "faults/<name>/<unit>".
class FaultInjector {
 public:
  FaultInjector(World& world, Random& random);
  ~FaultInjector();
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // Schedules (or, for stochastic faults, starts) one fault. Errors: kNotFound
  // naming an unknown node, rack or zone; kInvalid for a spec missing a field.
  Status add(const FaultSpec& spec);
  Status add_all(const std::vector<FaultSpec>& specs);

  // Faults injected and healed so far.
  uint64_t injected() const { return injected_; }
  uint64_t healed() const { return healed_; }

 private:
  struct Unit {
    std::string name;  // node, rack or zone
    std::vector<NodeId> nodes;
    std::string fault;
    Distribution ttf;
    Distribution ttr;
    std::unique_ptr<RandomStream> stream;
  };

  StatusOr<std::vector<NodeId>> resolve_nodes(const FaultSpec& spec) const;
  void hold(NodeId n, const std::string& reason);
  void release(NodeId n, const std::string& reason);
  void record(trace::EventType type, const FaultSpec& spec, const std::string& reason,
              const std::string& node, const std::string& message);
  void fire(const FaultSpec& spec, const std::vector<NodeId>& nodes);
  void unit_fail(uint32_t unit);
  void unit_repair(uint32_t unit);

  World& world_;
  Random& random_;
  std::vector<uint32_t> holds_;  // by node: faults holding it down
  std::vector<Unit> units_;
  uint64_t injected_ = 0;
  uint64_t healed_ = 0;
};

}  // namespace flotilla::sim
