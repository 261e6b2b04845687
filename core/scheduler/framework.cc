#include "core/scheduler/framework.h"

#include <algorithm>

namespace flotilla::sched {

void Framework::add(std::unique_ptr<Plugin> plugin, int64_t score_weight) {
  Plugin* p = plugin.get();
  if (auto* x = dynamic_cast<const PreFilterPlugin*>(p)) pre_filters_.push_back(x);
  if (auto* x = dynamic_cast<const FilterPlugin*>(p)) filters_.push_back(x);
  if (auto* x = dynamic_cast<const ScorePlugin*>(p)) {
    scores_.push_back({x, score_weight});
    total_weight_ += score_weight;
  }
  if (auto* x = dynamic_cast<ReservePlugin*>(p)) reserves_.push_back(x);
  if (auto* x = dynamic_cast<BindPlugin*>(p)) binds_.push_back(x);
  owned_.push_back(std::move(plugin));
}

FilterStatus Framework::run_pre_filter(const PodInfo& pod, const Snapshot& snapshot) const {
  for (const PreFilterPlugin* p : pre_filters_) {
    FilterStatus s = p->pre_filter(pod, snapshot);
    if (!s.is_success()) return s;
  }
  return FilterStatus::success();
}

FilterStatus Framework::run_filters(const PodInfo& pod, const NodeInfo& node,
                                    const Snapshot& snapshot) const {
  for (const FilterPlugin* f : filters_) {
    FilterStatus s = f->filter(pod, node, snapshot);
    if (!s.is_success()) return s;
  }
  return FilterStatus::success();
}

void Framework::run_scores(const PodInfo& pod, const Snapshot& snapshot,
                           std::span<const int> nodes, std::span<int64_t> totals) const {
  std::fill(totals.begin(), totals.end(), 0);
  scratch_.resize(nodes.size());
  std::span<int64_t> scratch(scratch_.data(), nodes.size());
  for (const Scored& s : scores_) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      scratch[i] = s.plugin->score(pod, snapshot.node(nodes[i]), snapshot);
    }
    s.plugin->normalize(pod, snapshot, nodes, scratch);
    for (size_t i = 0; i < nodes.size(); ++i) totals[i] += s.weight * scratch[i];
  }
}

Status Framework::run_reserve(const PodInfo& pod, const std::string& node) {
  for (size_t i = 0; i < reserves_.size(); ++i) {
    Status s = reserves_[i]->reserve(pod, node);
    if (!s.is_ok()) {
      for (size_t j = i; j-- > 0;) reserves_[j]->unreserve(pod, node);
      return s;
    }
  }
  return Status::ok();
}

void Framework::run_unreserve(const PodInfo& pod, const std::string& node) {
  for (size_t j = reserves_.size(); j-- > 0;) reserves_[j]->unreserve(pod, node);
}

Status Framework::run_bind(const PodInfo& pod, const std::string& node) {
  if (binds_.empty()) return failed_precondition_error("no bind plugin is registered");
  return binds_.front()->bind(pod, node);
}

std::vector<std::string_view> Framework::plugin_names() const {
  std::vector<std::string_view> names;
  for (const auto& p : owned_) names.push_back(p->name());
  return names;
}

}  // namespace flotilla::sched
