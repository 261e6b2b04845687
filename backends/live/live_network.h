// LiveNetwork: the Network port on real sockets. Probes and connects are
// Boost.Asio operations on the AsioEventLoop's io_context (the loop's own
// thread); every result comes back through EventLoop::post, never from inside
// the call. DNS records are kept here and fed to an attached DnsServer. It only
// connects to the addresses it is given (loopback, Flotilla's own networks).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "backends/live/asio_event_loop.h"
#include "core/ports/network.h"

namespace flotilla::live {

class DnsServer;

class LiveNetwork final : public Network {
 public:
  explicit LiveNetwork(AsioEventLoop& loop);
  ~LiveNetwork() override;
  LiveNetwork(const LiveNetwork&) = delete;
  LiveNetwork& operator=(const LiveNetwork&) = delete;

  // --- Network ---
  // kTcp: OK once a TCP connection is accepted. kHttp: "GET <path> HTTP/1.1"
  // with Connection: close; OK for a status line 200-399. Errors:
  // kUnavailable ("connection refused", unreachable, reset), kDeadlineExceeded
  // (nothing within request.timeout, the message says at which step),
  // kFailedPrecondition ("HTTP probe ... returned status 503"), kBadRequest for
  // an address that is not an IPv4/IPv6 literal. `from_node` is informational:
  // every logical node shares this host's network.
  void probe(const ProbeRequest& request, Callback<Status> done) override;
  // A TCP connect that is closed at once; errors as for a kTcp probe.
  void connect(const std::string& from_node, const NetEndpoint& target, Duration timeout,
               Callback<Status> done) override;
  // Records `name` -> `ip` (empty ip removes it) and forwards it to the
  // attached DnsServer, if any. Names are compared case-insensitively, without
  // a trailing dot.
  void set_dns_record(const std::string& name, const std::string& ip) override;

  // Attaches (or with nullptr detaches) the DNS server that answers the
  // records; the records set so far are loaded into it. Not owned; it must
  // outlive this object or be detached first.
  void attach_dns(DnsServer* dns);
  // The records set so far, by normalised name.
  const std::map<std::string, std::string>& dns_records() const { return records_; }
  // Probes and connects still in flight.
  int in_flight() const { return *in_flight_; }

 private:
  struct Op;
  void start(std::shared_ptr<Op> op);

  AsioEventLoop& loop_;
  DnsServer* dns_ = nullptr;
  std::map<std::string, std::string> records_;
  std::shared_ptr<int> in_flight_ = std::make_shared<int>(0);
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// "Web.Default.svc.cluster.local." -> "web.default.svc.cluster.local".
std::string normalize_dns_name(std::string_view name);

}  // namespace flotilla::live
