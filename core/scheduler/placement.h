// Greedy placement of one pod, as kube-scheduler's scheduleOne: filter nodes
// from a rotating start index until enough feasible nodes are found
// (percentageOfNodesToScore), score them, take the best (ties to the earliest
// in rotation order, or random among equals with a RandomStream). When no node
// fits, the FailedScheduling message counts reasons per node as kube does:
// "0/5 nodes are available: 2 node(s) were not ready, 3 Insufficient cpu."
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/ports/random.h"
#include "core/scheduler/framework.h"
#include "core/scheduler/snapshot.h"

namespace flotilla::sched {

struct PlacementOptions {
  // Percentage of nodes to score: 0 = adaptive as kube (max(5, 50 - nodes/125)),
  // 100 = every node. Below kMinFeasibleNodesToFind nodes, every node.
  int percentage_of_nodes_to_score = 0;
  int min_feasible_nodes_to_find = 100;
  // Optional: break score ties at random instead of by rotation order. Borrowed.
  RandomStream* tie_break = nullptr;
};

// How many feasible nodes to find before scoring (kube's numFeasibleNodesToFind).
int num_feasible_nodes_to_find(int num_nodes, const PlacementOptions& options);

// "0/<total> nodes are available: <n> <reason>, ... ." with reason entries
// formatted "<count> <reason>" and sorted as strings, exactly as kube's
// FitError.Error() does.
std::string failed_scheduling_message(int total_nodes,
                                      const std::map<std::string_view, int>& reason_counts);

struct PlacementResult {
  int node = -1;          // snapshot node index; -1 when unschedulable
  std::string message;    // FailedScheduling message when node < 0
  int evaluated = 0;      // nodes filtered
  int feasible = 0;       // feasible nodes found (and scored)
  bool ok() const { return node >= 0; }
};

// Places pods one at a time on a Snapshot. Does not modify the snapshot: the
// caller assumes the pod (Snapshot::add_pod) once it decides to bind.
class GreedyPlacer {
 public:
  GreedyPlacer(const Framework& framework, PlacementOptions options = {})
      : framework_(framework), options_(options) {}

  PlacementResult place(const PodInfo& pod, const Snapshot& snapshot);

 private:
  const Framework& framework_;
  PlacementOptions options_;
  size_t next_start_ = 0;  // rotates over snapshot.live_nodes() for fairness
  std::vector<int> feasible_;
  std::vector<int64_t> scores_;
};

}  // namespace flotilla::sched
