#include "backends/live/netlink.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flotilla::live::netlink {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

Request::Request(uint16_t type, uint16_t flags) : buf_(NLMSG_HDRLEN, 0) {
  hdr()->nlmsg_type = type;
  hdr()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  hdr()->nlmsg_seq = 1;
  sync();
}

void Request::attr(uint16_t type, const void* data, size_t len) {
  const size_t at = NLMSG_ALIGN(buf_.size());
  buf_.resize(at + RTA_ALIGN(RTA_LENGTH(len)), 0);
  auto* rta = reinterpret_cast<rtattr*>(buf_.data() + at);
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  if (len > 0) std::memcpy(RTA_DATA(rta), data, len);
  sync();
}

size_t Request::nest_begin(uint16_t type) {
  const size_t at = NLMSG_ALIGN(buf_.size());
  attr(static_cast<uint16_t>(type | NLA_F_NESTED), nullptr, 0);
  return at;
}

void Request::nest_end(size_t at) {
  auto* rta = reinterpret_cast<rtattr*>(buf_.data() + at);
  rta->rta_len = static_cast<unsigned short>(buf_.size() - at);
}

int Request::send() const {
  UniqueFd sock(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!sock.valid()) return errno;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(sock.get(), buf_.data(), buf_.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
    return errno;
  }
  // The answer is an NLMSG_ERROR (error 0 is the ACK), or NLMSG_DONE.
  char buf[8192];
  for (;;) {
    ssize_t n = ::recv(sock.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    const size_t len = static_cast<size_t>(n);
    size_t off = 0;
    while (off + sizeof(nlmsghdr) <= len) {
      nlmsghdr nh;
      std::memcpy(&nh, buf + off, sizeof(nh));
      if (nh.nlmsg_len < sizeof(nlmsghdr) || off + nh.nlmsg_len > len) break;
      if (nh.nlmsg_type == NLMSG_ERROR && nh.nlmsg_len >= sizeof(nlmsghdr) + sizeof(nlmsgerr)) {
        nlmsgerr err;
        std::memcpy(&err, buf + off + sizeof(nlmsghdr), sizeof(err));
        return -err.error;
      }
      if (nh.nlmsg_type == NLMSG_DONE) return 0;
      off += NLMSG_ALIGN(nh.nlmsg_len);
    }
  }
}

Status status(int err, const std::string& what) {
  if (err == 0) return Status::ok();
  if (err == EPERM || err == EACCES) {
    return Status(StatusCode::kForbidden, what + ": " + std::strerror(err) + " (needs root)");
  }
  return unavailable_error(what + ": " + std::strerror(err));
}

}  // namespace flotilla::live::netlink
