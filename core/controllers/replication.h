// The ReplicationController manager (Kubernetes' replica_set.go, sized down):
// level-triggered on RCs and Pods; keeps spec.replicas active pods per RC,
// creating them from the template in slow-start batches and deleting the
// cheapest victims first; adopts matching orphans, releases pods that stopped
// matching; guards against double work with expectations; writes status back.
// Status counts are kept up to date from the pod watch, so a sync with nothing
// to adopt, release or delete lists no pods (when the watch is current).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/controllers/context.h"
#include "core/controllers/event_recorder.h"
#include "core/controllers/expectations.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

struct ReplicationOptions {
  // Kubernetes' burstReplicas: most creations or deletions per sync.
  int burst_replicas = 500;
  Duration expectations_timeout = Expectations::kDefaultTimeout;
  // One sync per pass of the work queue: the next sync runs after the watch
  // events of this one's writes, so its cache is current and it can work from
  // the counts instead of listing the store (with many controllers syncing in
  // one instant, as after a node failure, most would otherwise list).
  int max_per_pass = 1;
  // Syncs work from the counts kept from the pod watch when its cache is
  // current; false: every sync lists the store (tests compare the two).
  bool incremental = true;
};

// Kubernetes' scale-down order (controller.ActivePods): true when `a` should be
// deleted before `b`. Unscheduled before scheduled; Pending < Unknown <
// Running; not ready before ready; ready for a shorter time first; more
// container restarts first; newer (creationTimestamp) first; then by name.
bool delete_before(const api::Pod& a, const api::Pod& b);

// Sizes of the slow-start batches for `count` creations: 1, 2, 4, ... (the
// last one cut to what remains).
std::vector<int> slow_start_batches(int count);

class ReplicationManager {
 public:
  static constexpr std::string_view kComponent = "replication-controller";

  ReplicationManager(ControllerContext ctx, ReplicationOptions options = {});
  ~ReplicationManager();
  ReplicationManager(const ReplicationManager&) = delete;
  ReplicationManager& operator=(const ReplicationManager&) = delete;

  // Starts the watches; every existing RC is synced. Errors from the store.
  Status start();

  // Reconciles one RC ("ns/name"); the queue calls it. Public for tests.
  ReconcileResult reconcile(const std::string& key);

  WorkQueue& queue() { return *queue_; }
  const Expectations& expectations() const { return expectations_; }
  // Pod creations attempted (successful or not) since construction.
  uint64_t creations_attempted() const { return creations_attempted_; }
  // Syncs done from the incremental counts, without listing pods.
  uint64_t syncs_from_counts() const { return syncs_from_counts_; }

 private:
  struct PodInfo {
    std::string owner_name;  // controller ref of kind ReplicationController
    std::string owner_uid;
    std::string other_controller_uid;  // a controller ref of another kind
    api::Labels labels;
    bool terminating = false;
    bool active = false;  // api::is_pod_active
    bool ready = false;   // api::is_pod_ready
  };
  // An RC's pod counts kept up to date from the pod watch (over the owned_
  // pods), so that a sync with nothing to adopt, release or delete needs no
  // pod list. Valid for the classification basis it was built with.
  struct RcCounts {
    std::string ns_prefix;      // "ns/"
    api::Labels selector_map;   // the effective selector, as a map
    api::LabelSelector selector;
    api::Labels template_labels;
    int64_t irregular = 0;  // owned pods outside ns_prefix or not matching the selector
    int64_t active = 0, fully_labeled = 0, ready = 0;  // among matching owned pods
  };
  void on_rc(const WatchEvent& e);
  void on_pod(const WatchEvent& e);
  // Adds (sign 1) or removes (sign -1) a pod's contribution to its owner's counts.
  void count_pod(const std::string& key, const PodInfo& info, int sign);
  // The counts of `rc`, (re)built from the cache when its basis changed.
  const RcCounts& counts_for(const api::ReplicationController& rc, const std::string& key);
  // The reconcile pass with nothing to claim and nothing to delete, from the
  // counts; nullopt when it does not apply (the full pass runs instead).
  std::optional<ReconcileResult> reconcile_from_counts(const api::ReplicationController& rc,
                                                       const std::string& key,
                                                       const std::string& ns,
                                                       const std::string& name);
  void trace_counts(const std::string& key, const std::string& ns, const std::string& name,
                    const std::string& uid, int64_t desired, int64_t ready);
  // Enqueues every RC in `ns` whose selector matches `labels`.
  void enqueue_matching(const std::string& ns, const api::Labels& labels);
  Status create_pods(const api::ReplicationController& rc, const std::string& key, int count);
  Status delete_pods(const api::ReplicationController& rc, const std::string& key,
                     std::vector<std::shared_ptr<const api::Pod>> active, int count);
  Status update_status(const api::ReplicationController& rc,
                       const api::ReplicationControllerStatus& status);

  ControllerContext ctx_;
  ReplicationOptions options_;
  EventRecorder recorder_;
  Expectations expectations_;
  std::unique_ptr<WorkQueue> queue_;
  WatchHandle rc_watch_;
  WatchHandle pod_watch_;
  // Pod key -> what we last saw. Hashed: 150,000 pods, looked up on every
  // pod event, never walked in order.
  std::unordered_map<std::string, PodInfo> pods_;
  std::map<std::string, std::set<std::string>> owned_;      // rc uid -> pod keys
  std::map<std::string, std::pair<int64_t, int64_t>> traced_;  // rc key -> (desired, ready)
  std::map<std::string, RcCounts> counts_;               // rc uid -> counts
  std::map<std::string, std::string> counted_uid_;       // rc key -> uid in counts_
  std::map<std::string, int64_t> other_controlled_;      // uid -> pods it controls (not as RC)
  std::set<std::string> orphans_;  // keys of pods with no controller ref, not terminating
  int64_t pods_seen_rv_ = 0;       // the newest pod watch event's version
  uint64_t creations_attempted_ = 0;
  uint64_t syncs_from_counts_ = 0;
  // Syncs put off in a row per RC because the pod watch lagged the store.
  std::unordered_map<std::string, int> deferred_;
};

}  // namespace flotilla::ctrl
