// The EndpointSlice controller: every Service with a selector gets its
// endpoints as discovery.k8s.io/v1 EndpointSlices of at most 100 endpoints
// each, one set of slices per resolved port list (and address type). A
// pod's change rewrites the one slice that holds it, not the Service's whole
// endpoint list: in the large scenario one pod of a 15,000-pod Service
// costs a 100-endpoint write instead of a 15,000-address one. The service
// proxy reads these slices, and this controller traces every ready endpoint
// that appears or disappears (EndpointAdded / EndpointRemoved).
//
// As upstream's controller: slices are named from generateName "<service>-",
// labelled kubernetes.io/service-name and endpointslice.kubernetes.io/
// managed-by (and the Service's own labels), owned by the Service. New
// endpoints go into a slice already being written that has room, else the
// fullest slice with room, else a new slice; a slice left empty is deleted.
// Terminating pods stay listed (ready false, terminating true) until they
// are gone; a Service without endpoints has no slices (upstream writes one
// empty placeholder slice). Slices this controller finds in the store (a
// restart, or someone's edit) are adopted as they are and corrected.
//
// A Service without a selector has its Endpoints written by the user; as
// upstream's EndpointSlice mirroring controller, those are mirrored into
// slices (managed-by endpointslicemirroring-controller.k8s.io, 100
// endpoints each, unless the Endpoints carry the label
// endpointslice.kubernetes.io/skip-mirror=true), so that the proxy, which
// reads only slices, serves them too. Mirrored endpoints are not traced.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/api/labels.h"
#include "core/controllers/context.h"
#include "core/controllers/pod_labels.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";
inline constexpr std::string_view kManagedByLabel = "endpointslice.kubernetes.io/managed-by";
inline constexpr std::string_view kSliceControllerName = "endpointslice-controller.k8s.io";
inline constexpr std::string_view kMirroringControllerName =
    "endpointslicemirroring-controller.k8s.io";
inline constexpr std::string_view kSkipMirrorLabel = "endpointslice.kubernetes.io/skip-mirror";

class EndpointSliceController {
 public:
  static constexpr std::string_view kComponent = "endpointslice-controller";
  static constexpr int kDefaultMaxEndpointsPerSlice = 100;

  explicit EndpointSliceController(ControllerContext ctx,
                                   int max_endpoints_per_slice = kDefaultMaxEndpointsPerSlice,
                                   int max_per_pass = 64);
  ~EndpointSliceController();
  EndpointSliceController(const EndpointSliceController&) = delete;
  EndpointSliceController& operator=(const EndpointSliceController&) = delete;

  // Watches services, pods, endpoint slices and Endpoints; every existing
  // service is synced.
  Status start();
  // Syncs one service ("ns/name"). Public for tests.
  ReconcileResult reconcile(const std::string& key);

  WorkQueue& queue() { return *queue_; }
  // EndpointSlices written (created, updated or deleted) since start.
  uint64_t writes() const { return writes_; }

 private:
  struct Slice;
  // One pod of a service: what its Endpoint is rendered from when its slice
  // is written, copied from its last snapshot (not the snapshot: holding
  // 150,000 of them keeps older versions alive while newer ones wait on the
  // watch, +420 MB in the large scenario's start).
  struct Member {
    const std::string* name = nullptr;  // the members map's key
    std::string resource_version;       // of the snapshot decided
    std::string ip, uid;
    std::string hostname;               // shown: the pod's subdomain is the service
    const std::string* node = nullptr;  // interned in nodes_; null: none
    Slice* slice = nullptr;             // the slice listing it; null: not listed
    bool ready = false, serving = false, terminating = false;
  };
  // What a snapshot of a pod shows in the service's slices.
  struct Decision {
    bool serves = false;  // listed in a slice
    bool ready = false, serving = false, terminating = false;
    std::string group;    // address type and resolved port list, canonical
    std::vector<api::EndpointPort> ports;
  };
  struct MemberOrder {  // as a slice lists its endpoints: by address, then pod name
    bool operator()(const Member* a, const Member* b) const;
  };
  struct Slice {
    uint64_t id = 0;          // creation order, for a stable walk
    std::string name;         // empty until created
    std::string group;
    std::shared_ptr<const api::EndpointSlice> stored;  // as last written or found
    std::set<const Member*, MemberOrder> members;
    bool dirty = false;
  };
  struct Group {
    std::string address_type;
    std::vector<api::EndpointPort> ports;
    std::map<uint64_t, Slice*> slices;  // by id
  };
  // A pod's ready endpoints ("ip:port") as a sync traced them.
  struct Traced {
    std::vector<std::string> endpoints;
    std::string uid, node;
  };
  struct ServiceState {
    api::Object service;
    api::LabelSelector selector;
    bool built = false;  // members and slices reflect the store
    std::unordered_map<std::string, Member> members;  // by pod name
    std::map<std::string, Group> groups;              // by group key
    std::map<uint64_t, std::unique_ptr<Slice>> slices;
    std::map<std::string, Slice*> by_name;            // created slices
    std::set<uint64_t> dirty;                         // slices to write
    // Pods changed since the last sync, and what each showed at that sync
    // (taken when it first changed; absent: no ready endpoints). The other
    // members show what that sync traced.
    std::set<std::string> changed;
    std::map<std::string, Traced> was;
    uint64_t next_id = 0;
  };

  void on_service(const WatchEvent& e);
  void on_pod(const WatchEvent& e);
  void on_slice(const WatchEvent& e);
  void on_endpoints(const WatchEvent& e);

  // Puts pod `name`'s snapshot in the service's state (null: takes it out);
  // the slices it leaves or enters become dirty.
  void set_pod(ServiceState& st, const std::string& name, const api::Object& pod);
  Decision decide(const ServiceState& st, const api::Pod& pod) const;
  // Copies what an Endpoint shows of `pod` into `m`.
  void take(const ServiceState& st, Member& m, const api::Pod& pod, const Decision& d);
  // Whether `m` shows what `d` decided of `pod`.
  bool shows(const ServiceState& st, const Member& m, const Decision& d,
             const api::Pod& pod) const;
  void place(ServiceState& st, Member& m, Decision d);
  void unplace(ServiceState& st, Member& m);
  void mark(ServiceState& st, Slice& s);
  // Members and slices from the store: the pods the selector matches and the
  // slices this controller manages for the service.
  Status build(const std::string& ns, const std::string& name, ServiceState& st);
  std::shared_ptr<api::EndpointSlice> render(const ServiceState& st, const Slice& s,
                                             const std::string& ns,
                                             const std::string& service_name) const;
  Traced traced_now(const ServiceState& st, const Member& m) const;
  // Pod `name` is about to change: what it shows now is kept for the trace
  // (once a sync; `m` null: it is not a member).
  void note_change(ServiceState& st, const std::string& name, const Member* m) const;
  void trace_changes(ServiceState& st, const std::string& ns, const std::string& name);
  void trace_all_gone(ServiceState& st, const std::string& ns, const std::string& name);
  // Removes the service's slices that `manager` manages.
  Status remove_slices(const std::string& ns, const std::string& name, std::string_view manager);
  // Removes the slices this controller made of the service (it is gone, or
  // lost its selector), traces its ready endpoints gone and forgets it.
  Status forget(const std::string& key, const std::string& ns, const std::string& name);
  // The service's (selector-less) Endpoints as mirrored slices.
  Status mirror(const std::string& ns, const std::string& name);

  std::map<std::string, ServiceState> services_;  // ordered: ns prefix scans
  PodLabels pod_labels_;  // the labels each pod had
  std::unordered_set<std::string> nodes_;  // node names members point to

  ControllerContext ctx_;
  int max_per_slice_;
  std::unique_ptr<WorkQueue> queue_;
  WatchHandle service_watch_;
  WatchHandle pod_watch_;
  WatchHandle slice_watch_;
  WatchHandle endpoints_watch_;
  uint64_t writes_ = 0;
};

}  // namespace flotilla::ctrl
