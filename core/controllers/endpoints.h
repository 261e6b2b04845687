// The endpoints controller: every Service with a selector gets an Endpoints
// object of the same name listing its pods' addresses, ready ones in
// `addresses` and not-ready ones in `notReadyAddresses`, with ports resolved
// from each service port's targetPort (a number, or a named container port).
// Output is sorted so equal inputs give equal objects; writes happen only on
// change. As upstream since EndpointSlices (which the service proxy reads,
// see endpoint_slice.h), an Endpoints object lists at most 1,000 addresses:
// a larger service's is truncated and annotated
// endpoints.kubernetes.io/over-capacity: truncated.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/api/labels.h"
#include "core/controllers/context.h"
#include "core/controllers/pod_labels.h"
#include "core/controllers/work_queue.h"

namespace flotilla::ctrl {

// The port list `pod` serves `service` on: each service port's targetPort
// resolved (a number, or a named container port of the pod), sorted by
// name, port and protocol; ports that do not resolve are left out.
std::vector<api::EndpointPort> resolved_ports(const api::Service& service, const api::Pod& pod);

// A port list's canonical key ("name/port/protocol;" each, in order): pods
// with equal keys share a subset (a slice group).
template <typename Ports>
std::string port_list_key(const Ports& ports) {
  std::string key;
  for (const api::EndpointPort& p : ports) {
    key += p.name();
    key += '/';
    key += std::to_string(p.port());
    key += '/';
    key += p.protocol();
    key += ';';
  }
  return key;
}

// The hostname `pod` shows among `service`'s endpoints: its own, when its
// subdomain is the service's name; else empty.
std::string_view endpoint_hostname(const api::Service& service, const api::Pod& pod);

// The Endpoints subsets a service should have given its pods (all pods of the
// namespace that match its selector, in any order): pods with an IP, not
// terminating and not finished; grouped by their resolved port list; sorted.
std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods);

// The same subsets kept up to date pod by pod: each pod snapshot is decided
// and its address built once, when it arrives, and kept in the order the
// subsets list it. A sync after a few of a large service's pods changed then
// neither lists the pods nor reads the others (in the large scenario,
// 15,000 pods a service, scattered over the heap). subsets() equals
// compute_subsets(service(), the pods set) at all times.
class SubsetBuilder {
 public:
  explicit SubsetBuilder(api::Object service);
  SubsetBuilder(const SubsetBuilder&) = delete;
  SubsetBuilder& operator=(const SubsetBuilder&) = delete;

  // Puts pod `name`'s snapshot in the set (replacing an earlier one; the
  // same resourceVersion again changes nothing), or takes it out when `pod`
  // is null. Keeps what an address shows of it (not the pod), rendered into
  // addresses when subsets are filled.
  void set(const std::string& name, api::Object pod);
  std::vector<api::EndpointSubset> subsets() const;
  // The same subsets written into `out` (cleared first): a new object is
  // filled straight from the builder, each address copied once. At most
  // `max_addresses` are written, cut as upstream's truncateEndpoints does;
  // returns whether any were left out.
  bool fill(google::protobuf::RepeatedPtrField<api::EndpointSubset>* out,
            size_t max_addresses = SIZE_MAX) const;

  const api::Object& service() const { return service_; }
  // Bumped by every set() that changes subsets(); a new snapshot of a pod
  // whose address, readiness and ports are as before does not bump it.
  uint64_t version() const { return version_; }
  size_t size() const { return members_.size(); }

 private:
  struct Member;
  // Ordered as the subsets list addresses: by IP, then pod name.
  struct AddressOrder {
    bool operator()(const Member* a, const Member* b) const;
  };
  struct Group {
    std::vector<api::EndpointPort> ports;
    std::set<const Member*, AddressOrder> ready, not_ready;
  };
  using Groups = std::map<std::string, Group>;  // by port list
  struct Member {
    const std::string* name = nullptr;  // the members map's key
    std::string resource_version;       // of the snapshot decided
    std::string ip, uid;
    std::string hostname;               // shown: the pod's subdomain is the service
    const std::string* node = nullptr;  // interned; null: none
    const std::string* ns = nullptr;    // interned
    bool serves = false;  // has an address in the subsets
    bool ready = false;   // in `addresses`, not `notReadyAddresses`
    Groups::iterator group;  // when it serves
  };
  struct Decision {
    bool serves = false, ready = false;
    std::string group;  // the resolved port list, canonical
    std::vector<api::EndpointPort> ports;
  };
  Decision decide(const api::Pod& pod) const;
  // Copies what an address shows of `pod` into `m`.
  void take(Member& m, const api::Pod& pod);
  // Whether member `m` shows what `d` decided of `pod`.
  bool shows(const Member& m, const Decision& d, const api::Pod& pod) const;
  void place(Member& m, Decision d);
  void unplace(const Member& m);
  void add_address(const Member& m,
                   google::protobuf::RepeatedPtrField<api::EndpointAddress>* to) const;
  // The group's ports and the first `ready` / `not_ready` of its addresses.
  void fill_group(const Group& g, api::EndpointSubset& s, size_t ready = SIZE_MAX,
                  size_t not_ready = SIZE_MAX) const;

  api::Object service_;
  std::unordered_map<std::string, Member> members_;  // by pod name
  std::unordered_set<std::string> interned_;         // node and namespace names members point to
  Groups groups_;
  uint64_t version_ = 0;
};

class EndpointsController {
 public:
  static constexpr std::string_view kComponent = "endpoint-controller";
  static constexpr size_t kMaxAddresses = 1000;
  static constexpr std::string_view kOverCapacityAnnotation =
      "endpoints.kubernetes.io/over-capacity";

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

  // What this controller last wrote per service ("ns/name"): when the
  // stored object is still that one, it needs no deep compare.
  std::map<std::string, std::shared_ptr<const api::Endpoints>> written_;
  // Per service with a selector ("ns/name"): its pods as the pod watch
  // delivered them, and the builder's version at the last sync that found
  // the stored object in agreement: while the stored object is still the one
  // this controller wrote (`written_`) and the version is unchanged, a sync
  // has nothing to compute.
  struct ServiceState {
    static constexpr uint64_t kNeverSynced = ~uint64_t{0};
    api::LabelSelector selector;
    std::unique_ptr<SubsetBuilder> builder;
    uint64_t synced_version = kNeverSynced;
  };
  // A builder for `service` filled from the store's pods (a service is new
  // or changed: rare).
  StatusOr<std::unique_ptr<SubsetBuilder>> build(const std::string& ns,
                                                 const api::LabelSelector& selector,
                                                 api::Object service) const;
  std::map<std::string, ServiceState> services_;   // ordered: ns prefix scans
  PodLabels pod_labels_;  // the labels each pod had

  ControllerContext ctx_;
  std::unique_ptr<WorkQueue> queue_;
  WatchHandle service_watch_;
  WatchHandle pod_watch_;
  WatchHandle endpoints_watch_;
  uint64_t writes_ = 0;
};

}  // namespace flotilla::ctrl
