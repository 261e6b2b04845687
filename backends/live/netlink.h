// rtnetlink for the live backends that change the host's network: pod routes,
// neighbours, VXLAN links (pod_routes.cc) and Service VIP addresses
// (vip_addresses.cc). A Request is one message built in place; send() opens a
// NETLINK_ROUTE socket, sends it, and reads until the kernel's ACK or error.
// Blocking but quick (one round trip). Needs CAP_NET_ADMIN for changes.
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/util/status.h"

namespace flotilla::live::netlink {

// Owns a file descriptor; closes it at scope exit. -1 when none.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_;
};

// One rtnetlink request: header (NLM_F_REQUEST | NLM_F_ACK | flags), a
// family struct (body<T>()), then attributes, which may nest.
class Request {
 public:
  Request(uint16_t type, uint16_t flags);

  // The family struct (rtmsg, ifaddrmsg, ifinfomsg, ndmsg), zeroed; call it
  // once, before any attribute.
  template <typename T>
  T* body() {
    buf_.resize(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(T)), 0);
    sync();
    return reinterpret_cast<T*>(buf_.data() + NLMSG_HDRLEN);
  }
  void attr(uint16_t type, const void* data, size_t len);
  template <typename T>
  void attr(uint16_t type, T value) {
    attr(type, &value, sizeof(value));
  }
  // A NUL-terminated string attribute.
  void attr_string(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  // Opens a nested attribute; returns its offset for nest_end.
  size_t nest_begin(uint16_t type);
  void nest_end(size_t at);

  // Sends the request and waits for the kernel's answer: 0 when it was done,
  // else the errno (the kernel's, or the socket call's).
  int send() const;

 private:
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  void sync() { hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size()); }
  std::vector<char> buf_;
};

// The Status of a request about `what` ("adding 10.96.0.10/32 to br0") that
// ended with errno `err` from send(): OK for 0; kForbidden with "(needs
// root)" for EPERM/EACCES; otherwise kUnavailable with the errno text. Callers
// map the errnos their operation expects (EEXIST, ENOENT, ...) first.
Status status(int err, const std::string& what);

}  // namespace flotilla::live::netlink
