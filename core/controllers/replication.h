// The ReplicationController manager (Kubernetes' replica_set.go, sized down):
// level-triggered on RCs and Pods; keeps spec.replicas active pods per RC,
// creating them from the template in slow-start batches and deleting the
// cheapest victims first; adopts matching orphans, releases pods that stopped
// matching; guards against double work with expectations; writes status back.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
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
  int max_per_pass = 64;
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

 private:
  struct PodInfo {
    std::string owner_name;  // controller ref of kind ReplicationController
    std::string owner_uid;
    api::Labels labels;
    bool terminating = false;
  };
  void on_rc(const WatchEvent& e);
  void on_pod(const WatchEvent& e);
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
  std::map<std::string, PodInfo> pods_;                     // pod key -> what we last saw
  std::map<std::string, std::set<std::string>> owned_;      // rc uid -> pod keys
  std::map<std::string, std::pair<int64_t, int64_t>> traced_;  // rc key -> (desired, ready)
  uint64_t creations_attempted_ = 0;
};

}  // namespace flotilla::ctrl
