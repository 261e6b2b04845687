// Network: what the control plane asks of the wires. Probes (HTTP GET, TCP
// connect) from a node to a pod, connections made by the service proxy, and
// the cluster's DNS names. SimNetwork answers from the topology, partitions and
// simulated container state; live mode uses real sockets.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/ports/event_loop.h"
#include "core/util/status.h"

namespace flotilla {

struct NetEndpoint {
  std::string ip;
  int port = 0;
  friend bool operator==(const NetEndpoint&, const NetEndpoint&) = default;
  friend auto operator<=>(const NetEndpoint&, const NetEndpoint&) = default;
};

// "ip:port", as errors and logs name an endpoint.
inline std::string endpoint_string(const NetEndpoint& e) {
  return e.ip + ":" + std::to_string(e.port);
}

struct NetEndpointHash {
  size_t operator()(const NetEndpoint& e) const noexcept {
    return std::hash<std::string>{}(e.ip) * 31 + static_cast<size_t>(e.port);
  }
};

struct ProbeRequest {
  enum class Kind { kTcp, kHttp };
  Kind kind = Kind::kTcp;
  std::string from_node;  // the node the prober runs on
  NetEndpoint target;
  std::string http_path = "/";  // kHttp
  Duration timeout = std::chrono::seconds(1);
};

class Network {
 public:
  virtual ~Network() = default;

  // Probes a target. OK when a TCP connection was accepted or an HTTP GET
  // answered 200-399; otherwise kUnavailable (refused, unreachable),
  // kDeadlineExceeded (no answer within the timeout) or kFailedPrecondition
  // (HTTP status outside 200-399, in the message). Via the event loop.
  virtual void probe(const ProbeRequest& request, Callback<Status> done) = 0;

  // Opens (and closes) a connection from `from_node` to `target`, as the service
  // proxy does before forwarding; OK when it was accepted. Via the event loop.
  virtual void connect(const std::string& from_node, const NetEndpoint& target,
                       Duration timeout, Callback<Status> done) = 0;

  // Publishes `name` (e.g. "web.default.svc.cluster.local") as `ip` in the
  // cluster's DNS; an empty ip removes it.
  virtual void set_dns_record(const std::string& name, const std::string& ip) = 0;
};

}  // namespace flotilla
