// Cross-host pod networking for live mode (flannel's host-gw and vxlan
// backends, sized down): a host's Docker bridge network is built from its
// Node's spec.podCIDR without masquerading, and every other node's podCIDR is
// routed to that node over rtnetlink, either straight via its InternalIP
// (host-gw: hosts share one L2 segment) or through one kernel VXLAN device
// (vxlan: any IP reachability). Routes follow the Node objects in a Store.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "backends/docker/docker_client.h"
#include "backends/docker/docker_container_runtime.h"
#include "core/ports/store.h"
#include "core/util/status.h"

namespace flotilla::live {

enum class PodNetworkMode { kHostGw, kVxlan };
// "host-gw" | "vxlan"; kBadRequest otherwise.
StatusOr<PodNetworkMode> parse_pod_network_mode(std::string_view text);
std::string_view to_string(PodNetworkMode mode);

// -------------------------------------------------------------- rtnetlink
// Blocking, quick (one netlink round trip each); need CAP_NET_ADMIN. Errors:
// kBadRequest (bad address/CIDR), kNotFound (no such device), kForbidden (not
// root), kUnavailable (other kernel errors, with strerror).

// `ip route replace CIDR via GATEWAY [dev DEV] [onlink]` (DEV "" lets the kernel
// pick by gateway; onlink needs DEV).
Status route_replace(const std::string& cidr, const std::string& gateway,
                     const std::string& device = "", bool onlink = false);
// `ip route del CIDR`; OK when there is no such route.
Status route_delete(const std::string& cidr);
// `ip neigh replace IP lladdr MAC dev DEV nud permanent`.
Status neighbour_replace(const std::string& device, const std::string& ip,
                         const std::string& mac);
Status neighbour_delete(const std::string& device, const std::string& ip);
// `bridge fdb replace MAC dev DEV dst IP self permanent` (a VXLAN peer).
Status fdb_replace(const std::string& device, const std::string& mac, const std::string& dst);
Status fdb_delete(const std::string& device, const std::string& mac, const std::string& dst);
// Creates (or keeps, when one with this VNI exists) a VXLAN device: VNI,
// local address, UDP port, learning off, MAC `mac`, MTU `mtu` (0: kernel's),
// then sets it up and gives it `address`/32.
Status vxlan_ensure(const std::string& device, uint32_t vni, const std::string& local_ip,
                    uint16_t port, const std::string& mac, int mtu, const std::string& address);
// Deletes a link; OK when absent.
Status link_delete(const std::string& device);
// The MTU of the interface holding `ip` (0 when none holds it).
int mtu_of_address(const std::string& ip);

// The VXLAN tunnel endpoint MAC of a node, derived from its InternalIP so no
// node has to publish it: 0a:58:<the four bytes of the IP> (a locally
// administered unicast address, as OVN-Kubernetes does for pod MACs).
std::string vtep_mac_for(const std::string& node_ip);

// -------------------------------------------------------------- Docker network

struct PodNetworkSpec {
  std::string name = "flotilla";  // the Docker network
  std::string pod_cidr;           // the node's spec.podCIDR
  std::string bridge;             // Linux bridge name; "" -> "flpod-" + name-derived suffix
  int mtu = 0;                    // 0: Docker's default (1500)
};

// Makes the host's Docker network for pods from its pod CIDR: subnet = the
// CIDR, gateway = its first address (on the bridge), IP masquerade off (pods
// keep their source IP towards other hosts), direct routed access allowed
// (gateway mode nat-unprotected). An existing network with another subnet is
// removed first when no container is attached, else kFailedPrecondition.
StatusOr<docker::DockerNetworkInfo> ensure_pod_network(const docker::DockerClient& client,
                                                       const PodNetworkSpec& spec);

// The pods' traffic to anywhere outside the cluster CIDR is masqueraded
// (iptables -t nat POSTROUTING, added once); forwarding to and from the pod
// CIDR is accepted in DOCKER-USER so Docker's filter lets other hosts' pods in.
Status ensure_pod_nat_rules(const std::string& pod_cidr, const std::string& cluster_cidr,
                            const std::string& bridge);

// -------------------------------------------------------------- routes

struct PodRoutesOptions {
  PodNetworkMode mode = PodNetworkMode::kHostGw;
  std::string node_name;  // this node: no route to itself
  std::string node_ip;    // this host's address on the segment (vxlan local)
  std::string vxlan_device = "flotilla.1";
  uint32_t vni = 1;
  uint16_t vxlan_port = 8472;
};

// One other node's reachability as the routes need it.
struct PeerRoute {
  std::string pod_cidr;
  std::string node_ip;
  bool operator==(const PeerRoute&) const = default;
};

// Keeps this host's routes to every other node's podCIDR equal to the Node
// objects in `store` (watched with initial events): a node with a podCIDR and
// an InternalIP gets a route when it appears and loses it when it is deleted
// or its CIDR/IP changes. A NotReady node keeps its route: its pods may well be
// running (an agent restart, a partition from the API only) and the endpoints
// controller already stops sending Service traffic to them. Runs on the
// store's loop; failures are kept as warnings and retried at the next event.
class PodRoutes {
 public:
  PodRoutes(Store& store, PodRoutesOptions options);
  // Removes the routes (and VXLAN entries) it made; the VXLAN device stays.
  ~PodRoutes();
  PodRoutes(const PodRoutes&) = delete;
  PodRoutes& operator=(const PodRoutes&) = delete;

  // In vxlan mode creates the device, addressed with `local_pod_cidr`'s
  // network address; then watches Nodes.
  Status start(const std::string& local_pod_cidr);
  // The routes in place, by node name.
  const std::map<std::string, PeerRoute>& peers() const { return peers_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  void on_node(const WatchEvent& e);
  Status add(const PeerRoute& p);
  Status remove(const PeerRoute& p);

  Store& store_;
  PodRoutesOptions options_;
  std::map<std::string, PeerRoute> peers_;
  std::vector<std::string> warnings_;
  WatchHandle watch_;
};

}  // namespace flotilla::live
