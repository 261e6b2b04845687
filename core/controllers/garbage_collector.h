// Garbage collection by owner reference (Kubernetes' garbage collector, in
// background-propagation mode, for pods): a pod whose owners no longer exist
// (no object of the owner's kind and name with the owner's uid) is deleted
// through delete_pod; a pod that keeps at least one live owner loses only the
// references to the dead ones. Deleting a ReplicationController thus deletes
// its pods.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>

#include "core/controllers/context.h"
#include "core/controllers/event_recorder.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

class GarbageCollector {
 public:
  static constexpr std::string_view kComponent = "garbage-collector";

  explicit GarbageCollector(ControllerContext ctx, int max_per_pass = 64);
  ~GarbageCollector();
  GarbageCollector(const GarbageCollector&) = delete;
  GarbageCollector& operator=(const GarbageCollector&) = delete;

  // Watches pods and their owners' kinds; every existing pod is checked once.
  Status start();
  // Checks one pod ("ns/name"). Public for tests.
  ReconcileResult reconcile(const std::string& key);

  WorkQueue& queue() { return *queue_; }
  uint64_t deleted() const { return deleted_; }

 private:
  void on_pod(const WatchEvent& e);
  void on_owner(const WatchEvent& e);

  ControllerContext ctx_;
  EventRecorder recorder_;
  std::unique_ptr<WorkQueue> queue_;
  std::map<std::string, std::set<std::string>> dependents_;  // owner uid -> pod keys
  // Pod key -> owner uids. Hashed: looked up on every pod event, never walked.
  std::unordered_map<std::string, std::set<std::string>> owners_;
  WatchHandle pod_watch_;
  WatchHandle rc_watch_;
  uint64_t deleted_ = 0;
};

}  // namespace flotilla::ctrl
