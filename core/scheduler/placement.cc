#include "core/scheduler/placement.h"

#include <algorithm>

namespace flotilla::sched {

int num_feasible_nodes_to_find(int num_nodes, const PlacementOptions& options) {
  int min_find = options.min_feasible_nodes_to_find;
  if (num_nodes < min_find || options.percentage_of_nodes_to_score >= 100) return num_nodes;
  int pct = options.percentage_of_nodes_to_score;
  if (pct <= 0) {
    pct = 50 - num_nodes / 125;
    if (pct < 5) pct = 5;
  }
  int n = static_cast<int>(static_cast<int64_t>(num_nodes) * pct / 100);
  return n < min_find ? min_find : n;
}

std::string failed_scheduling_message(int total_nodes,
                                      const std::map<std::string_view, int>& reason_counts) {
  std::vector<std::string> entries;
  entries.reserve(reason_counts.size());
  for (const auto& [reason, count] : reason_counts) {
    entries.push_back(std::to_string(count) + " " + std::string(reason));
  }
  std::sort(entries.begin(), entries.end());
  std::string msg = "0/" + std::to_string(total_nodes) + " nodes are available";
  if (entries.empty()) return msg + ".";
  msg += ":";
  for (size_t i = 0; i < entries.size(); ++i) {
    msg += i == 0 ? " " : ", ";
    msg += entries[i];
  }
  msg += ".";
  return msg;
}

PlacementResult GreedyPlacer::place(const PodInfo& pod, const Snapshot& snapshot) {
  PlacementResult result;
  const std::vector<int>& nodes = snapshot.live_nodes();
  const int n = static_cast<int>(nodes.size());
  if (n == 0) {
    result.message = failed_scheduling_message(0, {});
    return result;
  }
  FilterStatus pre = framework_.run_pre_filter(pod, snapshot);
  if (!pre.is_success()) {
    std::map<std::string_view, int> counts;
    for (int i = 0; i < pre.reason_count(); ++i) counts[pre.reason(i)] = n;
    result.message = failed_scheduling_message(n, counts);
    return result;
  }

  const int want = num_feasible_nodes_to_find(n, options_);
  feasible_.clear();
  if (next_start_ >= nodes.size()) next_start_ = 0;
  int processed = 0;
  size_t at = next_start_;
  for (; processed < n && static_cast<int>(feasible_.size()) < want; ++processed) {
    int index = nodes[at];
    if (++at == nodes.size()) at = 0;
    if (framework_.run_filters(pod, snapshot.node(index), snapshot).is_success()) {
      feasible_.push_back(index);
    }
  }
  next_start_ = at;
  result.evaluated = processed;
  result.feasible = static_cast<int>(feasible_.size());
  if (feasible_.empty()) {
    // Every node was filtered and none fits: filter again, counting reasons
    // (cheaper than counting on the common path).
    std::map<std::string_view, int> counts;
    for (int index : nodes) {
      FilterStatus s = framework_.run_filters(pod, snapshot.node(index), snapshot);
      for (int i = 0; i < s.reason_count(); ++i) ++counts[s.reason(i)];
    }
    result.message = failed_scheduling_message(n, counts);
    return result;
  }
  if (feasible_.size() == 1) {
    result.node = feasible_.front();
    return result;
  }
  scores_.resize(feasible_.size());
  framework_.run_scores(pod, snapshot, feasible_, scores_);
  // Highest score; ties go to the first in rotation order, or a uniform pick
  // among the tied nodes (reservoir sampling) when a tie-break stream is given.
  size_t best = 0;
  uint64_t ties = 1;
  for (size_t i = 1; i < feasible_.size(); ++i) {
    if (scores_[i] > scores_[best]) {
      best = i;
      ties = 1;
    } else if (scores_[i] == scores_[best] && options_.tie_break != nullptr) {
      ++ties;
      if (options_.tie_break->next_below(ties) == 0) best = i;
    }
  }
  result.node = feasible_[best];
  return result;
}

}  // namespace flotilla::sched
