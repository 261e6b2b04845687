// Controller expectations (Kubernetes' ControllerExpectations with UID
// tracking of deletions): a controller records how many pods it is creating
// and which ones it is deleting, and does not act on the same controller again
// until its watch has observed those changes (or they time out), so it never
// creates or deletes twice for one need.
#pragma once

#include <map>
#include <set>
#include <string>

#include "core/util/time.h"

namespace flotilla::ctrl {

class Expectations {
 public:
  // Kubernetes' ExpectationsTimeout: a controller whose expectations are this
  // old syncs anyway (a lost watch event must not wedge it forever).
  static constexpr Duration kDefaultTimeout = minutes(5);

  explicit Expectations(Duration timeout = kDefaultTimeout) : timeout_(timeout) {}

  // True when `controller` may act: no record, everything observed, or the
  // record is older than the timeout.
  bool satisfied(const std::string& controller, TimePoint now) const;

  // Replaces the record: `adds` creations to observe.
  void expect_creations(const std::string& controller, int adds, TimePoint now);
  // Replaces the record: these pod keys ("ns/name") to see deleted.
  void expect_deletions(const std::string& controller, const std::set<std::string>& pod_keys,
                        TimePoint now);
  // One creation seen (or given up on: a create that failed or was skipped).
  void creation_observed(const std::string& controller);
  // The deletion of `pod_key` seen (or given up on); ignored when not expected.
  void deletion_observed(const std::string& controller, const std::string& pod_key);
  // Forgets the controller (it was deleted).
  void erase(const std::string& controller) { records_.erase(controller); }

  int pending_creations(const std::string& controller) const;
  int pending_deletions(const std::string& controller) const;

 private:
  struct Record {
    int adds = 0;
    std::set<std::string> deletes;
    TimePoint timestamp;
  };
  Duration timeout_;
  std::map<std::string, Record> records_;
};

}  // namespace flotilla::ctrl
