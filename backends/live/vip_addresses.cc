#include "backends/live/vip_addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "backends/live/netlink.h"
#include "core/api/object.h"
#include "core/api/pod_util.h"
#include "core/api/types.pb.h"

namespace flotilla::live {

namespace {

// One RTM_NEWADDR / RTM_DELADDR of ip/32 and its acknowledgement; returns the
// kernel's errno (0 on success).
int netlink_addr(int ifindex, in_addr addr, bool add) {
  netlink::Request req(add ? RTM_NEWADDR : RTM_DELADDR,
                       add ? (NLM_F_CREATE | NLM_F_EXCL) : 0);
  auto* ifa = req.body<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = 32;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(ifindex);
  req.attr(IFA_LOCAL, addr);
  req.attr(IFA_ADDRESS, addr);
  return req.send();
}

}  // namespace

InterfaceAddresses::InterfaceAddresses(std::string device) : device_(std::move(device)) {}

InterfaceAddresses::~InterfaceAddresses() { (void)remove_all(); }

Status InterfaceAddresses::change(const std::string& ip, bool add) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) {
    return invalid_error("\"" + ip + "\" is not an IPv4 address");
  }
  const unsigned index = ::if_nametoindex(device_.c_str());
  if (index == 0) return not_found_error("no network interface \"" + device_ + "\"");
  const int err = netlink_addr(static_cast<int>(index), a, add);
  const std::string what = std::string(add ? "adding " : "removing ") + ip + "/32 " +
                           (add ? "to " : "from ") + device_;
  if (err == 0) return Status::ok();
  if (add && err == EEXIST) return already_exists_error(what + ": already there");
  if (!add && err == EADDRNOTAVAIL) return not_found_error(what + ": not there");
  return netlink::status(err, what);
}

Status InterfaceAddresses::add(const std::string& ip) {
  if (added_.count(ip) != 0) return Status::ok();
  Status s = change(ip, true);
  if (s.code() == StatusCode::kAlreadyExists) return Status::ok();  // not ours: left alone
  if (s.is_ok()) added_.insert(ip);
  return s;
}

Status InterfaceAddresses::remove(const std::string& ip) {
  if (added_.count(ip) == 0) return Status::ok();
  added_.erase(ip);
  Status s = change(ip, false);
  // Gone with the interface (its network was deleted) or removed by hand.
  if (s.code() == StatusCode::kNotFound) return Status::ok();
  return s;
}

Status InterfaceAddresses::remove_all() {
  Status first;
  const std::set<std::string> ips = added_;
  for (const auto& ip : ips) {
    Status s = remove(ip);
    if (!s.is_ok() && first.is_ok()) first = s;
  }
  return first;
}

StatusOr<std::vector<std::string>> ipv4_addresses_of(const std::string& device) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    return unavailable_error(std::string("getifaddrs: ") + std::strerror(errno));
  }
  std::vector<std::string> out;
  bool found = false;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_name == nullptr || device != i->ifa_name) continue;
    found = true;
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)) != nullptr) out.emplace_back(buf);
  }
  ::freeifaddrs(list);
  if (!found && ::if_nametoindex(device.c_str()) == 0) {
    return not_found_error("no network interface \"" + device + "\"");
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ------------------------------------------------------------ ServiceVipAddresses

ServiceVipAddresses::ServiceVipAddresses(Store& store, InterfaceAddresses& addresses)
    : store_(store), addresses_(addresses) {}

Status ServiceVipAddresses::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  auto w = store_.watch(api::Kind::kService, wo, [this](const WatchEvent& e) { on_event(e); });
  if (!w) return w.status().with_prefix("service VIPs: watching Services: ");
  watch_ = std::move(*w);
  return Status::ok();
}

void ServiceVipAddresses::on_event(const WatchEvent& e) {
  const std::string key = api::namespaced_name(api::meta_of(*e.object));
  std::string vip;
  if (e.type != WatchEventType::kDeleted) {
    vip = api::as<api::Service>(e.object)->spec().cluster_ip();
    if (vip == "None") vip.clear();  // headless
  }
  auto it = vip_of_.find(key);
  const std::string old = it == vip_of_.end() ? std::string() : it->second;
  if (old == vip) return;
  if (vip.empty()) {
    vip_of_.erase(key);
  } else {
    vip_of_[key] = vip;
    Status s = addresses_.add(vip);
    if (!s.is_ok()) warnings_.push_back("service " + key + ": VIP not reachable from pods: " + s.message());
  }
  if (!old.empty()) {
    const bool still_used = std::any_of(vip_of_.begin(), vip_of_.end(),
                                        [&](const auto& kv) { return kv.second == old; });
    if (!still_used) {
      Status s = addresses_.remove(old);
      if (!s.is_ok()) warnings_.push_back("service " + key + ": " + s.message());
    }
  }
}

}  // namespace flotilla::live
