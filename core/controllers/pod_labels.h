// The labels every pod had when a pod watch last delivered it, by
// "<namespace>/<name>": a controller that selects pods by label learns from
// it which labels a pod had before its change (a pod relabelled out of a
// selector must leave that selector's object). Pods made from one template
// share one copy of their labels. Not the snapshots themselves: a held
// snapshot outlives the store's while newer versions wait on the watch
// (+420 MB at the large scenario's start).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/api/labels.h"
#include "core/api/object.h"
#include "core/ports/store.h"

namespace flotilla::ctrl {

class PodLabels {
 public:
  // Keeps the labels of the event's pod under `key` (forgets them when it is
  // deleted) and returns those it had; null when the pod was not known.
  std::shared_ptr<const api::Labels> observe(const std::string& key, const WatchEvent& e) {
    if (e.type == WatchEventType::kDeleted) {
      auto node = pods_.extract(key);
      return node.empty() ? nullptr : std::move(node.mapped());
    }
    const api::Labels& now = api::meta_of(*e.object).labels();
    std::shared_ptr<const api::Labels>& slot = pods_[key];
    std::shared_ptr<const api::Labels> before = slot;
    if (slot == nullptr || !api::same_labels(*slot, now)) slot = shared(now);
    return before;
  }

 private:
  // The one copy of a label set.
  std::shared_ptr<const api::Labels> shared(const api::Labels& labels) {
    std::vector<std::pair<std::string_view, std::string_view>> sorted(labels.begin(),
                                                                      labels.end());
    std::sort(sorted.begin(), sorted.end());
    std::string key;
    for (const auto& [k, v] : sorted) {
      key.append(k).push_back('\0');
      key.append(v).push_back('\0');
    }
    std::weak_ptr<const api::Labels>& weak = sets_[key];
    if (auto held = weak.lock()) return held;
    auto made = std::make_shared<const api::Labels>(labels);
    weak = made;
    if (sets_.size() > 2 * pruned_at_ + 64) {  // drop the sets no pod has any more
      std::erase_if(sets_, [](const auto& kv) { return kv.second.expired(); });
      pruned_at_ = sets_.size();
    }
    return made;
  }

  std::unordered_map<std::string, std::shared_ptr<const api::Labels>> pods_;  // hashed: never walked
  std::unordered_map<std::string, std::weak_ptr<const api::Labels>> sets_;
  size_t pruned_at_ = 0;
};

}  // namespace flotilla::ctrl
