// The scheduling framework, after kube-scheduler's framework/interface.go: small
// opt-in plugin interfaces (PreFilter, Filter, Score, Reserve, Bind). A plugin
// implements only the extension points it needs; the Framework owns the order
// they run in and the score weights. Filters return a FilterStatus whose reason
// strings ("Insufficient cpu") feed the FailedScheduling message.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/scheduler/snapshot.h"
#include "core/util/status.h"

namespace flotilla::sched {

// The result of a filter. Reasons are string_views that must outlive the
// scheduling cycle: string literals, or strings interned in the Snapshot
// (ResourceNames). Success (the common case, thousands per pod) is a few
// zeroed words and never allocates.
class FilterStatus {
 public:
  enum class Code : uint8_t { kSuccess, kUnschedulable, kError };
  FilterStatus() = default;
  static FilterStatus success() { return {}; }
  static FilterStatus unschedulable(std::string_view reason) {
    FilterStatus s;
    s.add_reason(reason);
    return s;
  }
  static FilterStatus error(std::string_view reason) {
    FilterStatus s = unschedulable(reason);
    s.code_ = Code::kError;
    return s;
  }
  // The first reason is stored inline; only a second one allocates.
  void add_reason(std::string_view reason) {
    code_ = code_ == Code::kSuccess ? Code::kUnschedulable : code_;
    if (first_.empty()) {
      first_ = reason;
    } else {
      more_.push_back(reason);
    }
  }
  bool is_success() const { return code_ == Code::kSuccess; }
  Code code() const { return code_; }
  int reason_count() const { return first_.empty() ? 0 : 1 + static_cast<int>(more_.size()); }
  std::string_view reason(int i) const { return i == 0 ? first_ : more_[static_cast<size_t>(i - 1)]; }
  std::vector<std::string_view> reason_list() const {
    std::vector<std::string_view> all;
    for (int i = 0; i < reason_count(); ++i) all.push_back(reason(i));
    return all;
  }

 private:
  Code code_ = Code::kSuccess;
  std::string_view first_;
  std::vector<std::string_view> more_;
};

// Scores are 0..kMaxNodeScore; the framework multiplies by the plugin's weight.
inline constexpr int64_t kMaxNodeScore = 100;

class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual std::string_view name() const = 0;
};

// Runs once per pod before any node is filtered; a failure makes every node
// infeasible with the returned reason.
class PreFilterPlugin : public virtual Plugin {
 public:
  virtual FilterStatus pre_filter(const PodInfo& pod, const Snapshot& snapshot) const = 0;
};

// Can `pod` run on `node` given the snapshot? Must be cheap and allocation-free
// on success: it runs for thousands of nodes per pod.
class FilterPlugin : public virtual Plugin {
 public:
  virtual FilterStatus filter(const PodInfo& pod, const NodeInfo& node,
                              const Snapshot& snapshot) const = 0;
};

// Ranks a feasible node, 0..100 (higher is better). normalize() may rescale
// the scores of all nodes being ranked for one pod (e.g. relative to the
// maximum); `nodes` are node indexes in the snapshot, parallel to `scores`.
class ScorePlugin : public virtual Plugin {
 public:
  virtual int64_t score(const PodInfo& pod, const NodeInfo& node,
                        const Snapshot& snapshot) const = 0;
  virtual void normalize(const PodInfo& /*pod*/, const Snapshot& /*snapshot*/,
                         std::span<const int> /*nodes*/, std::span<int64_t> /*scores*/) const {}
};

// Holds or releases per-node resources of the plugin's own between choosing a
// node and binding (volumes, ...). Unreserve must undo Reserve and never fail.
class ReservePlugin : public virtual Plugin {
 public:
  virtual Status reserve(const PodInfo& pod, const std::string& node) = 0;
  virtual void unreserve(const PodInfo& pod, const std::string& node) = 0;
};

// Makes the placement real (writes spec.nodeName). The first Bind plugin runs.
class BindPlugin : public virtual Plugin {
 public:
  virtual Status bind(const PodInfo& pod, const std::string& node) = 0;
};

// Owns plugins and runs them in registration order. Not thread-safe.
class Framework {
 public:
  Framework() = default;
  Framework(const Framework&) = delete;
  Framework& operator=(const Framework&) = delete;

  // Registers `plugin` at every extension point it implements. `score_weight`
  // applies when it is a ScorePlugin (kube's default weights are 1).
  void add(std::unique_ptr<Plugin> plugin, int64_t score_weight = 1);

  FilterStatus run_pre_filter(const PodInfo& pod, const Snapshot& snapshot) const;
  // The first failing filter's status (kube stops at the first failure), or success.
  FilterStatus run_filters(const PodInfo& pod, const NodeInfo& node,
                           const Snapshot& snapshot) const;
  // Fills totals[i] with the weighted sum over score plugins (after each
  // plugin's normalize) for node nodes[i]. Both spans have the same size.
  void run_scores(const PodInfo& pod, const Snapshot& snapshot, std::span<const int> nodes,
                  std::span<int64_t> totals) const;
  // Runs every Reserve plugin; on a failure unreserves those that succeeded.
  Status run_reserve(const PodInfo& pod, const std::string& node);
  void run_unreserve(const PodInfo& pod, const std::string& node);
  // kFailedPrecondition when no Bind plugin is registered.
  Status run_bind(const PodInfo& pod, const std::string& node);

  // 100 * sum of score weights: the best possible total.
  int64_t max_total_score() const { return kMaxNodeScore * total_weight_; }
  bool has_bind() const { return !binds_.empty(); }
  std::vector<std::string_view> plugin_names() const;

 private:
  struct Scored {
    const ScorePlugin* plugin;
    int64_t weight;
  };
  std::vector<std::unique_ptr<Plugin>> owned_;
  std::vector<const PreFilterPlugin*> pre_filters_;
  std::vector<const FilterPlugin*> filters_;
  std::vector<Scored> scores_;
  std::vector<ReservePlugin*> reserves_;
  std::vector<BindPlugin*> binds_;
  int64_t total_weight_ = 0;
  mutable std::vector<int64_t> scratch_;
};

}  // namespace flotilla::sched
