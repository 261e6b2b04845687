// The endpoints controller: every Service with a selector gets an Endpoints
// object of the same name listing its pods' addresses, ready ones in
// `addresses` and not-ready ones in `notReadyAddresses`, with ports resolved
// from each service port's targetPort (a number, or a named container port).
// Output is sorted so equal inputs give equal objects; writes happen only on
// change (compared field by field with what this controller last wrote), and
// every ready address that appears or disappears is traced.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/api/labels.h"
#include "core/controllers/context.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

// The Endpoints subsets a service should have given its pods (all pods of the
// namespace that match its selector, in any order): pods with an IP, not
// terminating and not finished; grouped by their resolved port list; sorted.
//
// `memo` (optional) keeps what was decided per pod snapshot (whether it has
// an address, its port list, its readiness) for the next call with the same
// service snapshot: a sync after one pod changed decides for that pod only.
// It holds the snapshots it decided on (their addresses are its keys) and is
// replaced by the pods of each call.
struct PodPorts {
  api::Object pod;
  bool serves = false;  // has an address in the subsets
  bool ready = false;   // in `addresses`, not `notReadyAddresses`
  std::string key;      // the resolved port list, canonical
};
using SubsetMemo = std::unordered_map<const google::protobuf::Message*, PodPorts>;
std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods,
                                                 SubsetMemo* memo = nullptr);

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
  // One ready endpoint, "ip" or "ip:port", without a string of its own.
  struct ReadyEndpoint {
    std::string_view ip;     // into the source object
    std::array<char, 8> port{};  // ":" and the port's digits
    uint8_t port_len = 0;
    const api::EndpointAddress* address = nullptr;  // the first address that gave it
    std::string_view port_view() const { return {port.data(), port_len}; }
    std::string str() const;
  };
  // A service's ready endpoints, sorted as their strings, distinct.
  struct ReadySet {
    std::shared_ptr<const api::Endpoints> source;
    std::vector<ReadyEndpoint> endpoints;
  };
  static ReadySet ready_set(std::shared_ptr<const api::Endpoints> ep);
  // Traces every ready endpoint that disappears (in `was` order) then every
  // one that appears (in `is` order).
  void trace_changes(const std::string& ns, const std::string& name, const ReadySet& was,
                     const ReadySet& is);

  // What this controller last wrote per service ("ns/name"), with its ready
  // set: when the stored object is still that one, it needs no deep compare
  // and its ready set no rebuild.
  std::map<std::string, ReadySet> written_;
  // Per service ("ns/name"): the service snapshot and compute_subsets' memo
  // for it (dropped when the service changes or goes).
  struct Memo {
    api::Object service;
    SubsetMemo pods;
  };
  std::map<std::string, Memo> memos_;

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
