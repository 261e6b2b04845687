// Batch placement as min-cost max-flow (Quincy / Firmament): a batch of pending
// pods flows source -> pod class -> {candidate nodes directly, or per-class
// zone aggregators -> nodes} -> sink, with an "unscheduled" arc per class at a
// high cost. Costs are 100 - the framework's normalized score; spreading is
// convex (each further same-owner pod in a zone or on a node costs more).
// Node capacities are conservative per pod class, and every assignment is
// re-checked with the filters as it is applied; whatever the flow could not
// place is retried greedily, so no filter is ever violated.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/scheduler/framework.h"
#include "core/scheduler/placement.h"
#include "core/scheduler/snapshot.h"

namespace flotilla::sched {

enum class PlacementMode { kGreedy, kFlow };

struct FlowOptions {
  // Candidate nodes per pod class: at least this many (when feasible), and
  // enough to offer `capacity_slack` times the class's pod count.
  int min_candidates_per_class = 32;
  int max_candidates_per_class = 2048;
  int capacity_slack = 2;
  // Cost of leaving a pod unscheduled; above any path cost, so the solver
  // maximizes the number placed first.
  int64_t unscheduled_cost = 1'000'000;
  // Convex spreading costs, in score points per same-owner pod already there.
  int64_t zone_spread_step = 10;
  int64_t node_spread_step = 5;
  // Flow rounds per batch; each re-derives node capacities from what is free.
  int max_rounds = 6;
  // Used for the greedy repair of pods the flow left out.
  PlacementOptions greedy;
};

struct FlowStats {
  int classes = 0;   // largest round's figures
  int vertices = 0;
  int edges = 0;            // forward arcs (the solver adds a reverse per arc)
  int rounds = 0;
  int placed_by_flow = 0;   // passed verification as solved
  int dropped_in_verify = 0;
  int placed_by_repair = 0;
  int64_t total_cost = 0;
};

struct BatchResult {
  std::vector<int> node;              // per pod in batch order; -1: unscheduled
  std::vector<std::string> messages;  // per pod; FailedScheduling message when unscheduled
  FlowStats stats;
  int placed() const;
};

class FlowPlacer {
 public:
  explicit FlowPlacer(const Framework& framework, FlowOptions options = {})
      : framework_(framework), options_(options), repair_(framework, options.greedy) {}

  // Places the batch and assumes every placed pod into `snapshot` (add_pod),
  // in batch order. Pods need spread ids interned in this snapshot.
  BatchResult place(std::span<const PodInfo> pods, Snapshot& snapshot);

 private:
  // One min-cost-flow solve for the pods at `remaining`; returns a node per
  // batch index (-1: none), not yet verified.
  std::vector<int> solve_round(std::span<const PodInfo> pods, const std::vector<size_t>& remaining,
                               const Snapshot& snapshot, FlowStats& stats);

  const Framework& framework_;
  FlowOptions options_;
  GreedyPlacer repair_;
};

// Places the batch one pod at a time with `placer`, assuming each placed pod;
// the baseline flow placement is compared with.
BatchResult place_greedy(std::span<const PodInfo> pods, Snapshot& snapshot, GreedyPlacer& placer);

}  // namespace flotilla::sched
