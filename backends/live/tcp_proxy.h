// TcpServiceProxy: the data path of kube-proxy's original userspace mode. For
// every TCP port of every Service it listens on 127.0.0.1:<host port> (and,
// optionally, on more addresses and on the Service VIP when that is a local
// address), asks the core proxy::ServiceProxy which endpoint each accepted
// connection goes to, connects (on failure: report it, try the next endpoint,
// up to max_retries more), then splices bytes both ways with Asio until both
// sides have closed, and releases the pick. A backend that resets or closes a
// connection before answering is reported failed (passive health); the
// connection moves to another endpoint when nothing was exchanged yet, and,
// for Services that opt in, also when a request was sent but not answered.
// Single-threaded, on the loop.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backends/live/asio_event_loop.h"
#include "core/ports/store.h"
#include "core/proxy/service_proxy.h"

namespace flotilla::live {

// Annotation on a Service choosing its host ports: "30080" (the first port) or
// "http=30080,metrics=30090" (by port name or service port number).
inline constexpr std::string_view kHostPortAnnotation = "flotilla.io/host-port";
// Annotation on a Service: "true" or "false" overrides
// TcpServiceProxyOptions::retry_unanswered for its ports.
inline constexpr std::string_view kRetryUnansweredAnnotation =
    "flotilla.io/proxy-retry-unanswered";

struct TcpServiceProxyOptions {
  // Every Service port is reachable from the host on host_address:<host port>.
  std::string host_address = "127.0.0.1";
  // Host port = service port + offset, unless the annotation says otherwise.
  int host_port_offset = 30000;
  // Further addresses to listen on at the host port, e.g. the gateway IP of
  // the "flotilla" Docker bridge so pods reach the proxy.
  std::vector<std::string> extra_addresses;
  // Also listen on VIP:port of each Service. Only works when the VIP is a
  // local address (e.g. `ip addr add 10.96.0.10/32 dev <bridge>`); when it is
  // not, a warning is recorded and the bind is retried (bind_retry_*).
  bool listen_on_vip = false;
  // With listen_on_vip: bind VIP listeners to this interface (SO_BINDTODEVICE,
  // e.g. the Flotilla Docker bridge holding the VIPs, see vip_addresses.h) and
  // with IP_FREEBIND, so they open before the VIP is local and several runs,
  // each on its own bridge, can serve the same VIP:port side by side.
  std::string vip_device;
  // Per direction and connection.
  size_t buffer_bytes = 32 * 1024;
  int max_retries = 2;  // extra endpoints tried after a failed connect
  Duration connect_timeout = seconds(1);
  // Redispatch unanswered connections: when a backend resets or closes a
  // connection before sending a single byte back, and the client has sent at
  // most `buffer_bytes` so far (kept until the first answer byte), connect to
  // another endpoint (within max_retries) and replay those bytes there, as
  // HAProxy's `retry-on empty-response` and Envoy's `retry_on: reset` do for
  // HTTP. It saves requests caught by a backend's crash (e.g. connections
  // still in a killed server's accept queue); but a request the dead backend
  // had acted on before dying is then delivered twice, so it is only for
  // idempotent request/response protocols. Off by default; per Service with
  // kRetryUnansweredAnnotation.
  bool retry_unanswered = false;
  // A Service whose listener could not bind (host port or VIP:port taken, VIP
  // not local yet) is synced again after this delay, doubling per failure up
  // to bind_retry_max, back to bind_retry_initial once every listener is open.
  // Each failed attempt is one warning per listener.
  Duration bind_retry_initial = seconds(1);
  Duration bind_retry_max = seconds(30);
};

class TcpServiceProxy {
 public:
  struct Stats {
    int64_t accepted = 0;
    int64_t active = 0;
    int64_t forwarded = 0;         // connections that reached a backend
    int64_t no_backend = 0;        // closed: no endpoint could be picked or reached
    int64_t connect_failures = 0;  // failed backend connects (each reported to health)
    int64_t backend_failures = 0;  // reset/closed by the backend before answering (reported)
    int64_t redispatched = 0;      // of those, moved (and replayed) to another endpoint
    int64_t bytes_up = 0;          // client -> backend
    int64_t bytes_down = 0;        // backend -> client
  };

  // `decisions` (started by the caller) and `store` must outlive this object.
  TcpServiceProxy(AsioEventLoop& loop, Store& store, proxy::ServiceProxy& decisions,
                  TcpServiceProxyOptions options = {});
  ~TcpServiceProxy();
  TcpServiceProxy(const TcpServiceProxy&) = delete;
  TcpServiceProxy& operator=(const TcpServiceProxy&) = delete;

  // Watches Services (with their current state) and opens listeners as they
  // appear; closes them when a Service or port goes away (open connections
  // finish undisturbed).
  Status start();
  // Closes every listener and connection, and drops pending bind retries.
  void stop();

  // Listens on `address:port` and forwards to the Service port `service_key`
  // ("<ns>/<name>") `service_port` without watching the store; for the
  // standalone driver and tests. Port 0 picks an ephemeral port. Returns the
  // bound port. Errors: kUnavailable (address in use / not local).
  StatusOr<int> add_listener(const std::string& service_key, int service_port,
                             const std::string& address, int port);

  // The host port `127.0.0.1:<port>` of a Service port. Errors: kNotFound (no
  // such Service port seen), kUnavailable (its listener could not bind; why).
  StatusOr<int> host_port(std::string_view service_key, int service_port) const;
  // Every listening address:port, sorted.
  std::vector<NetEndpoint> listening() const;
  const Stats& stats() const { return stats_; }
  // Listener problems so far (bind failures, bad annotations), oldest first.
  // A listener that keeps failing to bind adds one per retry (at most one per
  // bind_retry_max once the backoff is at its cap).
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Services with a listener that could not bind, each with the delay before
  // its next attempt (for tests and status).
  std::map<std::string, Duration> pending_bind_retries() const;

 private:
  struct Listener;
  struct Connection;
  struct Pump;
  // A Service waiting to bind again: its last seen object, the backoff step,
  // the timer, and the failures already warned about in this step.
  struct BindRetry {
    api::Object service;
    Duration delay{};
    TimerHandle timer;
    std::set<std::string> warned;
  };
  struct Target {
    std::string service_key;
    std::string dns_name;
    int service_port = 0;
    NetEndpoint vip;  // set for a VIP listener: pick by VIP:port
    bool retry_unanswered = false;
  };

  void on_service_event(const WatchEvent& e);
  void sync_service(const std::string& key, const api::Object& service);
  // After a sync of `key` in which `failures` listeners did not bind: warn
  // (once per backoff step) and arm or clear the retry.
  void note_bind_result(const std::string& key, const api::Object& service,
                        const std::vector<std::string>& failures);
  Status open(const std::string& owner, const Target& target, const NetEndpoint& at,
              int* bound_port);
  void accept(const std::shared_ptr<Listener>& l);
  void on_accept(const std::shared_ptr<Listener>& l, boost::asio::ip::tcp::socket s,
                 const boost::asio::ip::tcp::endpoint& peer);
  void connect_next(const std::shared_ptr<Connection>& c);
  void start_pumps(const std::shared_ptr<Connection>& c);
  // The backend failed before answering: report it; redispatch or finish.
  void backend_failed(const std::shared_ptr<Connection>& c, const std::string& why);
  void finish(const std::shared_ptr<Connection>& c);
  void warn(std::string message);

  AsioEventLoop& loop_;
  Store& store_;
  proxy::ServiceProxy& decisions_;
  TcpServiceProxyOptions options_;
  WatchHandle watch_;
  // Listeners by owner ("<ns>/<name>", or "" for add_listener) then address.
  std::map<std::string, std::map<NetEndpoint, std::shared_ptr<Listener>>> listeners_;
  // (service key, service port) -> host port, or the reason it has none.
  std::map<std::pair<std::string, int>, StatusOr<int>> host_ports_;
  std::set<Connection*> connections_;
  std::map<std::string, BindRetry> bind_retries_;  // by service key
  std::vector<std::string> warnings_;
  Stats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flotilla::live
