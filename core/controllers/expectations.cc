#include "core/controllers/expectations.h"

namespace flotilla::ctrl {

bool Expectations::satisfied(const std::string& controller, TimePoint now) const {
  auto it = records_.find(controller);
  if (it == records_.end()) return true;
  const Record& r = it->second;
  if (r.adds <= 0 && r.deletes.empty()) return true;
  return now - r.timestamp > timeout_;
}

void Expectations::expect_creations(const std::string& controller, int adds, TimePoint now) {
  records_[controller] = Record{adds, {}, now};
}

void Expectations::expect_deletions(const std::string& controller,
                                    const std::set<std::string>& pod_keys, TimePoint now) {
  records_[controller] = Record{0, pod_keys, now};
}

void Expectations::creation_observed(const std::string& controller) {
  auto it = records_.find(controller);
  if (it != records_.end() && it->second.adds > 0) --it->second.adds;
}

void Expectations::deletion_observed(const std::string& controller, const std::string& pod_key) {
  auto it = records_.find(controller);
  if (it != records_.end()) it->second.deletes.erase(pod_key);
}

int Expectations::pending_creations(const std::string& controller) const {
  auto it = records_.find(controller);
  return it == records_.end() ? 0 : it->second.adds;
}

int Expectations::pending_deletions(const std::string& controller) const {
  auto it = records_.find(controller);
  return it == records_.end() ? 0 : static_cast<int>(it->second.deletes.size());
}

}  // namespace flotilla::ctrl
