// ServiceProxy: one per node, the decision half of kube-proxy's userspace mode.
// It watches Services and EndpointSlices, applies changes in coalesced syncs (at
// most one per min_sync_period, like BoundedFrequencyRunner), and answers the
// data path: which ready endpoint should this connection to VIP:port (or
// <svc>.<ns>.svc.cluster.local:port) go to. route() also connects and retries
// on the next endpoint when a backend refuses.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/api/object.h"
#include "core/ports/event_loop.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "core/proxy/balancer.h"
#include "core/proxy/health.h"
#include "core/proxy/service_ip.h"
#include "core/timing/timing.h"

namespace flotilla::proxy {

struct ServiceProxyOptions {
  std::string node_name;
  std::string cluster_domain = std::string(kDefaultClusterDomain);
  Duration min_sync_period = seconds(1);
  int max_retries = 2;  // extra attempts on other endpoints after a failed connect
  Duration connect_timeout = seconds(1);
  HealthConfig health;

  // The proxy_* values of a timing profile.
  static ServiceProxyOptions from_timing(const TimingProfile& timing, std::string node_name);
};

// One decision: the endpoint a connection goes to. While a Pick is held the
// endpoint counts one active connection (for least-connections); give it back
// with release().
struct Pick {
  NetEndpoint endpoint;
  std::string service;    // "<ns>/<name>"
  std::string port_name;  // the ServicePort's name ("" for a single unnamed port)
  NetEndpoint frontend;   // VIP:port the client addressed
};

struct RouteRequest {
  std::string host;  // a VIP ("10.96.0.10") or a DNS name ("web.default.svc.cluster.local",
                     // "web.default.svc", "web.default")
  int port = 0;      // the Service port; 0 picks the Service's only port
  std::string client_ip;
};

struct RouteResult {
  Status status;             // OK, or why no endpoint served it
  NetEndpoint endpoint;      // the endpoint that accepted (when OK)
  std::string service;       // "<ns>/<name>" when the target resolved
  int attempts = 0;          // connects tried
  std::vector<std::pair<NetEndpoint, Status>> failures;  // in order
};

class ServiceProxy {
 public:
  // `trace` may be null. Nothing happens until start().
  ServiceProxy(EventLoop& loop, Store& store, Network& network, Random& random,
               ServiceProxyOptions options, TraceSink* trace = nullptr);
  ~ServiceProxy();
  ServiceProxy(const ServiceProxy&) = delete;
  ServiceProxy& operator=(const ServiceProxy&) = delete;

  // Watches Services and EndpointSlices (with their current state), as
  // kube-proxy does; the first sync follows at once. A slice belongs to the
  // Service its kubernetes.io/service-name label names.
  Status start();

  // --- data path ---
  // Chooses an endpoint for a connection to the Service at `frontend` (VIP:port)
  // and counts it active. Errors: kNotFound (no Service has that VIP:port),
  // kUnavailable ("no ready endpoints for service ns/name", or all of its
  // endpoints failing health checks). O(1) lookup plus the balancer's pick.
  StatusOr<Pick> pick(const NetEndpoint& frontend, const std::string& client_ip);
  // The same by host (VIP or DNS name) and port; port 0 picks the Service's
  // only port. Errors as above, plus kFailedPrecondition for a headless Service
  // and kInvalid for an ambiguous port 0.
  StatusOr<Pick> pick(std::string_view host, int port, const std::string& client_ip);
  // Ends a picked connection (active count back down).
  void release(const Pick& pick);
  // Passive health: how a connection to `endpoint` went.
  void report_result(const NetEndpoint& endpoint, bool ok, const std::string& error = "");
  // pick + Network::connect + on failure report it and try the next endpoint,
  // up to max_retries more times. `done` runs through the loop with the
  // endpoint that accepted or why none did. The connection's active count is
  // held only while connecting.
  void route(const RouteRequest& request, Callback<RouteResult> done);

  // --- introspection (tests, CLI) ---
  // Ready endpoints (after the last sync) of a Service port, sorted.
  std::vector<NetEndpoint> endpoints(std::string_view service_key, int port) const;
  std::optional<BalancerKind> balancer(std::string_view service_key) const;
  // The VIP a Service has in the proxy's view ("" when none or headless).
  std::string vip(std::string_view service_key) const;
  const HealthChecker& health() const { return health_; }
  // Called when an endpoint leaves the rotation or comes back, with why (the
  // live agent logs it, as HAProxy logs a server going DOWN and UP).
  void set_on_health_change(HealthChecker::ChangeFn fn) { health_.set_on_change(std::move(fn)); }
  int64_t syncs() const { return syncs_; }
  TimePoint last_sync() const { return last_sync_; }
  // Warnings logged so far, oldest first (also written as Warning Events).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct PortState;
  struct ServiceState;
  struct RouteState;

  void on_service_event(const WatchEvent& e);
  void on_slice_event(const WatchEvent& e);
  void request_sync();
  void sync();
  using SliceMap = std::map<std::string, std::shared_ptr<const api::EndpointSlice>>;
  void rebuild(const std::string& key);
  void apply_slices(ServiceState& s, const SliceMap& slices);
  void drop(const std::string& key);
  StatusOr<Pick> pick_in(PortState& port, const std::string& client_ip,
                         std::span<const NetEndpoint> exclude);
  StatusOr<PortState*> resolve(std::string_view host, int port);
  void attempt(const std::shared_ptr<RouteState>& rs);
  void warn(const api::Service& service, std::string_view reason, const std::string& message);
  void trace_request(const RouteResult& r, const RouteRequest& req);

  EventLoop& loop_;
  Store& store_;
  Network& network_;
  Random& random_;
  ServiceProxyOptions options_;
  TraceSink* trace_;
  HealthChecker health_;

  WatchHandle service_watch_;
  WatchHandle slice_watch_;
  // Desired state as last seen on the watches, applied at the next sync.
  std::map<std::string, std::shared_ptr<const api::Service>> seen_services_;
  // By service ("<ns>/<name>"), then slice name.
  std::map<std::string, SliceMap> seen_slices_;
  std::unordered_map<std::string, std::string> slice_service_;  // slice "<ns>/<name>" -> service
  std::set<std::string> dirty_;
  TimerHandle sync_timer_;
  bool synced_once_ = false;
  TimePoint last_sync_{};
  int64_t syncs_ = 0;

  // Applied state.
  std::map<std::string, std::unique_ptr<ServiceState>> services_;      // by "<ns>/<name>"
  std::unordered_map<NetEndpoint, PortState*, NetEndpointHash> by_vip_;  // VIP:port
  std::unordered_map<std::string, ServiceState*> by_name_;            // full DNS name
  std::map<std::string, std::string> warned_;  // key -> last warning
  std::vector<std::string> warnings_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flotilla::proxy
