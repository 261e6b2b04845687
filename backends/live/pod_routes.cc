#include "backends/live/pod_routes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "backends/live/netlink.h"
#include "core/api/object.h"
#include "core/api/pod_util.h"
#include "core/api/types.pb.h"
#include "core/controllers/node_ipam.h"

extern char** environ;

namespace flotilla::live {

using nlohmann::json;

StatusOr<PodNetworkMode> parse_pod_network_mode(std::string_view text) {
  if (text == "host-gw") return PodNetworkMode::kHostGw;
  if (text == "vxlan") return PodNetworkMode::kVxlan;
  return bad_request_error("pod network mode \"" + std::string(text) +
                           "\": want host-gw or vxlan");
}

std::string_view to_string(PodNetworkMode mode) {
  return mode == PodNetworkMode::kHostGw ? "host-gw" : "vxlan";
}

namespace {

using netlink::UniqueFd;

Status netlink_status(int err, const std::string& what) {
  if (err == ENODEV) return not_found_error(what + ": no such device");
  return netlink::status(err, what);
}

StatusOr<in_addr> ipv4(const std::string& ip) {
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) {
    return bad_request_error("\"" + ip + "\" is not an IPv4 address");
  }
  return a;
}

StatusOr<int> ifindex(const std::string& device) {
  const unsigned index = ::if_nametoindex(device.c_str());
  if (index == 0) return not_found_error("no network interface \"" + device + "\"");
  return static_cast<int>(index);
}

StatusOr<std::array<unsigned char, 6>> parse_mac(const std::string& mac) {
  std::array<unsigned char, 6> out{};
  unsigned v[6];
  if (std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) !=
      6) {
    return bad_request_error("\"" + mac + "\" is not a MAC address");
  }
  for (int i = 0; i < 6; ++i) out[static_cast<size_t>(i)] = static_cast<unsigned char>(v[i]);
  return out;
}

// Runs a command (no shell); its exit code, or -1 when it could not start.
int run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Adds an iptables rule unless it is there (-C then -A/-I).
Status ensure_rule(const std::string& table, const std::string& chain, bool insert,
                   const std::vector<std::string>& rule) {
  std::vector<std::string> check = {"iptables", "-w", "-t", table, "-C", chain};
  check.insert(check.end(), rule.begin(), rule.end());
  if (run(check) == 0) return Status::ok();
  std::vector<std::string> add = {"iptables", "-w", "-t", table, insert ? "-I" : "-A", chain};
  add.insert(add.end(), rule.begin(), rule.end());
  int rc = run(add);
  if (rc == 0) return Status::ok();
  std::string text;
  for (const auto& a : add) text += (text.empty() ? "" : " ") + a;
  return unavailable_error(text + (rc < 0 ? ": iptables not found" : ": failed (exit " +
                                                                         std::to_string(rc) + ")"));
}

// The network address of a CIDR ("10.244.3.0/24" -> "10.244.3.0").
StatusOr<std::string> network_address(const std::string& cidr) {
  auto c = ctrl::Ipv4Cidr::parse(cidr);
  if (!c.is_ok()) return c.status();
  return ctrl::format_ipv4(c->base);
}

}  // namespace

Status route_replace(const std::string& cidr, const std::string& gateway,
                     const std::string& device, bool onlink) {
  auto c = ctrl::Ipv4Cidr::parse(cidr);
  if (!c.is_ok()) return c.status();
  auto gw = ipv4(gateway);
  if (!gw.is_ok()) return gw.status();
  netlink::Request req(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  auto* rt = req.body<rtmsg>();
  rt->rtm_family = AF_INET;
  rt->rtm_dst_len = static_cast<unsigned char>(c->prefix);
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_STATIC;
  rt->rtm_scope = RT_SCOPE_UNIVERSE;
  rt->rtm_type = RTN_UNICAST;
  if (onlink) rt->rtm_flags = RTNH_F_ONLINK;
  const in_addr dst{htonl(c->base)};
  req.attr(RTA_DST, dst);
  req.attr(RTA_GATEWAY, *gw);
  if (!device.empty()) {
    auto idx = ifindex(device);
    if (!idx.is_ok()) return idx.status();
    req.attr(RTA_OIF, static_cast<uint32_t>(*idx));
  }
  return netlink_status(req.send(), "route " + cidr + " via " + gateway +
                                        (device.empty() ? "" : " dev " + device));
}

Status route_delete(const std::string& cidr) {
  auto c = ctrl::Ipv4Cidr::parse(cidr);
  if (!c.is_ok()) return c.status();
  netlink::Request req(RTM_DELROUTE, 0);
  auto* rt = req.body<rtmsg>();
  rt->rtm_family = AF_INET;
  rt->rtm_dst_len = static_cast<unsigned char>(c->prefix);
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_scope = RT_SCOPE_NOWHERE;
  const in_addr dst{htonl(c->base)};
  req.attr(RTA_DST, dst);
  int err = req.send();
  if (err == ESRCH || err == ENOENT) return Status::ok();
  return netlink_status(err, "deleting route " + cidr);
}

static Status neighbour(bool add, int family, const std::string& device, const std::string& ip,
                        const std::string& mac) {
  auto idx = ifindex(device);
  if (!idx.is_ok()) return idx.status();
  auto addr = ipv4(ip);
  if (!addr.is_ok()) return addr.status();
  auto lladdr = parse_mac(mac);
  if (!lladdr.is_ok()) return lladdr.status();
  netlink::Request req(add ? RTM_NEWNEIGH : RTM_DELNEIGH,
                       add ? (NLM_F_CREATE | NLM_F_REPLACE) : 0);
  auto* nd = req.body<ndmsg>();
  nd->ndm_family = static_cast<unsigned char>(family);
  nd->ndm_ifindex = *idx;
  nd->ndm_state = NUD_PERMANENT;
  nd->ndm_type = RTN_UNICAST;
  if (family == AF_BRIDGE) nd->ndm_flags = NTF_SELF;
  if (family == AF_BRIDGE) {
    req.attr(NDA_LLADDR, lladdr->data(), lladdr->size());
    req.attr(NDA_DST, *addr);
  } else {
    req.attr(NDA_DST, *addr);
    if (add) req.attr(NDA_LLADDR, lladdr->data(), lladdr->size());
  }
  int err = req.send();
  if (!add && (err == ENOENT || err == ESRCH)) return Status::ok();
  return netlink_status(err, std::string(add ? "adding " : "removing ") +
                                 (family == AF_BRIDGE ? "fdb entry " + mac + " dst " + ip
                                                      : "neighbour " + ip + " lladdr " + mac) +
                                 " on " + device);
}

Status neighbour_replace(const std::string& device, const std::string& ip,
                         const std::string& mac) {
  return neighbour(true, AF_INET, device, ip, mac);
}
Status neighbour_delete(const std::string& device, const std::string& ip) {
  return neighbour(false, AF_INET, device, ip, "00:00:00:00:00:00");
}
Status fdb_replace(const std::string& device, const std::string& mac, const std::string& dst) {
  return neighbour(true, AF_BRIDGE, device, dst, mac);
}
Status fdb_delete(const std::string& device, const std::string& mac, const std::string& dst) {
  return neighbour(false, AF_BRIDGE, device, dst, mac);
}

Status link_delete(const std::string& device) {
  const unsigned index = ::if_nametoindex(device.c_str());
  if (index == 0) return Status::ok();
  netlink::Request req(RTM_DELLINK, 0);
  auto* ifi = req.body<ifinfomsg>();
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(index);
  int err = req.send();
  if (err == ENODEV) return Status::ok();
  return netlink_status(err, "deleting link " + device);
}

Status vxlan_ensure(const std::string& device, uint32_t vni, const std::string& local_ip,
                    uint16_t port, const std::string& mac, int mtu, const std::string& address) {
  auto local = ipv4(local_ip);
  if (!local.is_ok()) return local.status();
  auto lladdr = parse_mac(mac);
  if (!lladdr.is_ok()) return lladdr.status();
  auto addr = ipv4(address);
  if (!addr.is_ok()) return addr.status();
  // A device left by an earlier agent may have other settings: made afresh
  // (its routes are re-added from the Node objects right after).
  FLOTILLA_RETURN_IF_ERROR(link_delete(device));
  {
    netlink::Request req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    auto* ifi = req.body<ifinfomsg>();
    ifi->ifi_family = AF_UNSPEC;
    req.attr_string(IFLA_IFNAME, device);
    req.attr(IFLA_ADDRESS, lladdr->data(), lladdr->size());
    if (mtu > 0) req.attr(IFLA_MTU, static_cast<uint32_t>(mtu));
    size_t info = req.nest_begin(IFLA_LINKINFO);
    req.attr_string(IFLA_INFO_KIND, "vxlan");
    size_t data = req.nest_begin(IFLA_INFO_DATA);
    req.attr(IFLA_VXLAN_ID, vni);
    req.attr(IFLA_VXLAN_LOCAL, *local);
    req.attr(IFLA_VXLAN_PORT, htons(port));
    req.attr(IFLA_VXLAN_LEARNING, static_cast<uint8_t>(0));
    req.nest_end(data);
    req.nest_end(info);
    FLOTILLA_RETURN_IF_ERROR(netlink_status(req.send(), "creating vxlan device " + device));
  }
  auto idx = ifindex(device);
  if (!idx.is_ok()) return idx.status();
  {
    netlink::Request req(RTM_NEWLINK, 0);
    auto* ifi = req.body<ifinfomsg>();
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = *idx;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    FLOTILLA_RETURN_IF_ERROR(netlink_status(req.send(), "setting " + device + " up"));
  }
  netlink::Request req(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
  auto* ifa = req.body<ifaddrmsg>();
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = 32;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<unsigned>(*idx);
  req.attr(IFA_LOCAL, *addr);
  req.attr(IFA_ADDRESS, *addr);
  int err = req.send();
  if (err == EEXIST) err = 0;
  return netlink_status(err, "adding " + address + "/32 to " + device);
}

int mtu_of_address(const std::string& ip) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return 0;
  std::string name;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)) != nullptr && ip == buf) {
      name = i->ifa_name;
      break;
    }
  }
  ::freeifaddrs(list);
  if (name.empty()) return 0;
  // SIOCGIFMTU, not /sys: /sys shows the namespace it was mounted in.
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return 0;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFMTU, &ifr) != 0) return 0;
  return ifr.ifr_mtu;
}

std::string vtep_mac_for(const std::string& node_ip) {
  auto a = ctrl::parse_ipv4(node_ip);
  const uint32_t v = a ? *a : 0;
  char buf[18];
  std::snprintf(buf, sizeof(buf), "0a:58:%02x:%02x:%02x:%02x", v >> 24, (v >> 16) & 0xff,
                (v >> 8) & 0xff, v & 0xff);
  return buf;
}

// ------------------------------------------------------------ Docker network

StatusOr<docker::DockerNetworkInfo> ensure_pod_network(const docker::DockerClient& client,
                                                       const PodNetworkSpec& spec) {
  auto cidr = ctrl::Ipv4Cidr::parse(spec.pod_cidr);
  if (!cidr.is_ok()) return cidr.status().with_prefix("pod CIDR: ");
  if (cidr->prefix > 30) return bad_request_error("pod CIDR " + spec.pod_cidr + " is too small");
  const std::string gateway = ctrl::format_ipv4(cidr->base + 1);
  const std::string path = "/networks/" + docker::url_encode(spec.name);
  auto existing = client.call("GET", path);
  if (existing.is_ok()) {
    std::string subnet;
    if ((*existing).contains("IPAM") && (*existing)["IPAM"].contains("Config") &&
        (*existing)["IPAM"]["Config"].is_array() && !(*existing)["IPAM"]["Config"].empty()) {
      subnet = (*existing)["IPAM"]["Config"][0].value("Subnet", "");
    }
    if (subnet == cidr->to_string()) {
      return docker::ensure_network(client, spec.name, {cidr->to_string()});
    }
    const json& containers = (*existing)["Containers"];
    if (containers.is_object() && !containers.empty()) {
      return failed_precondition_error(
          "Docker network " + spec.name + " has subnet " + subnet + " but this node's podCIDR is " +
          spec.pod_cidr + ", and " + std::to_string(containers.size()) +
          " containers are attached: remove them (or the network) first");
    }
    auto removed = client.call("DELETE", path);
    if (!removed.is_ok()) return removed.status().with_prefix("removing network " + spec.name + ": ");
  } else if (existing.status().code() != StatusCode::kNotFound) {
    return existing.status();
  }
  json options = {{"com.docker.network.bridge.enable_ip_masquerade", "false"},
                  {"com.docker.network.bridge.gateway_mode_ipv4", "nat-unprotected"}};
  if (!spec.bridge.empty()) options["com.docker.network.bridge.name"] = spec.bridge;
  if (spec.mtu > 0) options["com.docker.network.driver.mtu"] = std::to_string(spec.mtu);
  json body = {
      {"Name", spec.name},
      {"CheckDuplicate", true},
      {"Driver", "bridge"},
      {"Options", options},
      {"Labels", {{std::string(docker::kManagedLabel), "true"}, {"flotilla.io/pod-cidr", spec.pod_cidr}}},
      {"IPAM",
       {{"Driver", "default"},
        {"Config", json::array({{{"Subnet", cidr->to_string()}, {"Gateway", gateway}}})}}}};
  auto created = client.call("POST", "/networks/create", body);
  if (!created.is_ok() && created.status().code() != StatusCode::kConflict) {
    return created.status().with_prefix("creating network " + spec.name + " on " +
                                        spec.pod_cidr + ": ");
  }
  return docker::ensure_network(client, spec.name, {cidr->to_string()});
}

Status ensure_pod_nat_rules(const std::string& pod_cidr, const std::string& cluster_cidr,
                            const std::string& bridge) {
  FLOTILLA_RETURN_IF_ERROR(ensure_rule(
      "nat", "POSTROUTING", false,
      {"-s", pod_cidr, "!", "-d", cluster_cidr, "!", "-o", bridge, "-m", "comment", "--comment",
       "flotilla pods to outside the cluster", "-j", "MASQUERADE"}));
  FLOTILLA_RETURN_IF_ERROR(ensure_rule("filter", "DOCKER-USER", true,
                                       {"-d", pod_cidr, "-o", bridge, "-m", "comment",
                                        "--comment", "flotilla pods from other hosts", "-j",
                                        "ACCEPT"}));
  return ensure_rule("filter", "DOCKER-USER", true,
                     {"-s", pod_cidr, "-i", bridge, "-m", "comment", "--comment",
                      "flotilla pods to other hosts", "-j", "ACCEPT"});
}

// ------------------------------------------------------------ PodRoutes

PodRoutes::PodRoutes(Store& store, PodRoutesOptions options)
    : store_(store), options_(std::move(options)) {}

PodRoutes::~PodRoutes() {
  watch_.reset();
  for (const auto& [name, p] : peers_) (void)remove(p);
}

Status PodRoutes::start(const std::string& local_pod_cidr) {
  if (options_.mode == PodNetworkMode::kVxlan) {
    auto net = network_address(local_pod_cidr);
    if (!net.is_ok()) return net.status();
    const int underlay = mtu_of_address(options_.node_ip);
    if (underlay == 0) {
      return failed_precondition_error("no interface of this host has the node IP " +
                                       options_.node_ip + " (--node-ip)");
    }
    FLOTILLA_RETURN_IF_ERROR(vxlan_ensure(options_.vxlan_device, options_.vni, options_.node_ip,
                                          options_.vxlan_port, vtep_mac_for(options_.node_ip),
                                          underlay - 50, *net));
  }
  WatchOptions wo;
  wo.send_initial_events = true;
  auto w = store_.watch(api::Kind::kNode, wo, [this](const WatchEvent& e) { on_node(e); });
  if (!w.is_ok()) return w.status().with_prefix("pod routes: watching Nodes: ");
  watch_ = std::move(*w);
  return Status::ok();
}

Status PodRoutes::add(const PeerRoute& p) {
  if (options_.mode == PodNetworkMode::kHostGw) return route_replace(p.pod_cidr, p.node_ip);
  auto net = network_address(p.pod_cidr);
  if (!net.is_ok()) return net.status();
  const std::string mac = vtep_mac_for(p.node_ip);
  const std::string& dev = options_.vxlan_device;
  FLOTILLA_RETURN_IF_ERROR(fdb_replace(dev, mac, p.node_ip));
  FLOTILLA_RETURN_IF_ERROR(neighbour_replace(dev, *net, mac));
  return route_replace(p.pod_cidr, *net, dev, /*onlink=*/true);
}

Status PodRoutes::remove(const PeerRoute& p) {
  Status s = route_delete(p.pod_cidr);
  if (options_.mode == PodNetworkMode::kVxlan) {
    auto net = network_address(p.pod_cidr);
    const std::string mac = vtep_mac_for(p.node_ip);
    if (net.is_ok()) (void)neighbour_delete(options_.vxlan_device, *net);
    (void)fdb_delete(options_.vxlan_device, mac, p.node_ip);
  }
  return s;
}

void PodRoutes::on_node(const WatchEvent& e) {
  auto node = api::as<api::Node>(e.object);
  const std::string& name = node->metadata().name();
  if (name == options_.node_name) return;
  PeerRoute want;
  if (e.type != WatchEventType::kDeleted) {
    want.pod_cidr = node->spec().pod_cidr();
    for (const auto& a : node->status().addresses()) {
      if (a.type() == "InternalIP") want.node_ip = a.address();
    }
  }
  auto it = peers_.find(name);
  if (it != peers_.end() && it->second == want) return;
  if (it != peers_.end()) {
    Status s = remove(it->second);
    if (!s.is_ok()) warnings_.push_back("node " + name + ": " + s.message());
    peers_.erase(it);
  }
  if (want.pod_cidr.empty() || want.node_ip.empty() || !ctrl::parse_ipv4(want.node_ip)) return;
  Status s = add(want);
  if (!s.is_ok()) {
    warnings_.push_back("node " + name + ": " + s.message());
    return;
  }
  peers_[name] = want;
}

}  // namespace flotilla::live
