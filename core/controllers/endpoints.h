// The endpoints controller: every Service with a selector gets an Endpoints
// object of the same name listing its pods' addresses, ready ones in
// `addresses` and not-ready ones in `notReadyAddresses`, with ports resolved
// from each service port's targetPort (a number, or a named container port).
// Output is sorted so equal inputs give equal objects; writes happen only on
// change, and every ready address that appears or disappears is traced.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "core/api/labels.h"
#include "core/controllers/context.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

// The Endpoints subsets a service should have given its pods (all pods of the
// namespace that match its selector, in any order): pods with an IP, not
// terminating and not finished; grouped by their resolved port list; sorted.
std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods);

class EndpointsController {
 public:
  static constexpr std::string_view kComponent = "endpoint-controller";

  explicit EndpointsController(ControllerContext ctx, int max_per_pass = 64);
  ~EndpointsController();
  EndpointsController(const EndpointsController&) = delete;
  EndpointsController& operator=(const EndpointsController&) = delete;

  // Watches services, pods and endpoints; every existing service is synced.
  Status start();
  // Syncs one service ("ns/name"). Public for tests.
  ReconcileResult reconcile(const std::string& key);

  WorkQueue& queue() { return *queue_; }
  // Endpoints objects written (created, updated or deleted) since start.
  uint64_t writes() const { return writes_; }

 private:
  void on_service(const WatchEvent& e);
  void on_pod(const WatchEvent& e);
  void on_endpoints(const WatchEvent& e);
  void enqueue_matching(const std::string& ns, const api::Labels& labels);
  void trace_changes(const std::string& ns, const std::string& name,
                     const std::vector<api::EndpointSubset>& before,
                     const std::vector<api::EndpointSubset>& after);

  ControllerContext ctx_;
  std::unique_ptr<WorkQueue> queue_;
  // Selectors of services that have one, by "ns/name" (ordered: ns prefix scans).
  std::map<std::string, api::LabelSelector> selectors_;
  std::map<std::string, api::Labels> pod_labels_;  // pod key -> labels last seen
  WatchHandle service_watch_;
  WatchHandle pod_watch_;
  WatchHandle endpoints_watch_;
  uint64_t writes_ = 0;
};

}  // namespace flotilla::ctrl
