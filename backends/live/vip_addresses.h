// Service VIPs made local for pods: kube-proxy's userspace mode redirected
// VIP:port to its proxy with iptables; we instead add each Service's ClusterIP
// as a /32 address to the Flotilla Docker bridge (rtnetlink, no iptables, no
// shelling out), so a pod's connection to VIP:port is delivered to the
// TcpServiceProxy listening there. Only addresses this object added are ever
// removed; deleting the Docker network removes the bridge and whatever it held.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/ports/store.h"
#include "core/util/status.h"

namespace flotilla::live {

// IPv4 /32 addresses on one network interface, over rtnetlink. Needs root
// (CAP_NET_ADMIN). Blocking but quick (one netlink round trip per call); call
// it from one thread.
class InterfaceAddresses {
 public:
  explicit InterfaceAddresses(std::string device);
  // Removes every address this object added and still holds.
  ~InterfaceAddresses();
  InterfaceAddresses(const InterfaceAddresses&) = delete;
  InterfaceAddresses& operator=(const InterfaceAddresses&) = delete;

  // Adds ip/32. Idempotent: an address the interface already has is OK (and
  // not taken over: it is not removed later unless this object added it).
  // Errors: kInvalid (not an IPv4 address), kNotFound (no such interface),
  // kForbidden (not root), kUnavailable (other netlink errors).
  Status add(const std::string& ip);
  // Removes ip/32 if this object added it; OK otherwise.
  Status remove(const std::string& ip);
  // Removes all added addresses; the first error, if any.
  Status remove_all();

  const std::string& device() const { return device_; }
  const std::set<std::string>& added() const { return added_; }

 private:
  Status change(const std::string& ip, bool add);
  std::string device_;
  std::set<std::string> added_;
};

// The IPv4 addresses (without prefix length) of an interface, sorted.
StatusOr<std::vector<std::string>> ipv4_addresses_of(const std::string& device);

// Keeps `addresses` equal to the ClusterIPs of every Service in the store
// (watched with initial events): added when a Service gets one, removed when
// the last Service with it goes. Runs on the store's loop. Failures become
// warnings (the Services stay reachable from the host).
class ServiceVipAddresses {
 public:
  ServiceVipAddresses(Store& store, InterfaceAddresses& addresses);
  Status start();
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  void on_event(const WatchEvent& e);
  Store& store_;
  InterfaceAddresses& addresses_;
  std::map<std::string, std::string> vip_of_;  // service key -> VIP
  std::vector<std::string> warnings_;
  WatchHandle watch_;
};

}  // namespace flotilla::live
