// Endpoint health as seen from one node's proxy. Passive: a failed connection
// marks the endpoint bad at once; it is skipped until it passes an active check
// or a cool-down ends. Active (HAProxy-style): a TCP check every `interval`;
// `fall` consecutive failures take an endpoint down, `rise` consecutive
// successes bring it back. Checks go through Network::probe from this node.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/ports/event_loop.h"
#include "core/ports/network.h"
#include "core/proxy/balancer.h"

namespace flotilla::proxy {

struct HealthConfig {
  bool active_checks = true;
  Duration interval = seconds(2);  // TimingProfile::proxy_health_check_interval
  Duration timeout = seconds(1);   // per check
  int rise = 2;
  int fall = 3;
  Duration passive_cooldown = seconds(10);  // a passively-failed endpoint is retried after this
};

// What the checker knows about one endpoint.
struct EndpointHealth {
  enum class State {
    kUp,
    kSuspect,  // a connection failed (passive); skipped until a check passes or cool-down
    kDown,     // `fall` active checks failed; needs `rise` passing checks
  };
  State state = State::kUp;
  int consecutive_ok = 0;
  int consecutive_failed = 0;
  int64_t checks = 0;  // active checks completed
  std::string last_error;
};
std::string_view health_state_name(EndpointHealth::State s);

// Per-node registry of endpoint state: the BackendState the balancers read and
// the health that drives its `usable` flag. Endpoints are reference-counted by
// the Service ports that route to them; the first track() starts checks, the
// last untrack() stops them. Single-threaded, on the loop.
class HealthChecker {
 public:
  // Called after an endpoint's usability changed (true: usable again).
  using ChangeFn = std::function<void(const NetEndpoint&, bool usable, const std::string& why)>;

  HealthChecker(EventLoop& loop, Network& network, std::string node, HealthConfig config);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void set_on_change(ChangeFn fn) { on_change_ = std::move(fn); }

  // Returns the endpoint's shared state, creating it (usable) on first use.
  // The pointer stays valid until the matching last untrack().
  BackendState* track(const NetEndpoint& endpoint);
  void untrack(const NetEndpoint& endpoint);

  // Passive health: the outcome of a real connection.
  void report(const NetEndpoint& endpoint, bool ok, const std::string& error = "");

  // nullptr when not tracked.
  const EndpointHealth* health(const NetEndpoint& endpoint) const;
  BackendState* state(const NetEndpoint& endpoint);
  size_t tracked() const { return records_.size(); }
  const HealthConfig& config() const { return config_; }

 private:
  struct Record {
    NetEndpoint endpoint;
    int refs = 0;
    BackendState backend;
    EndpointHealth health;
    bool probe_in_flight = false;
    TimerHandle check_timer;
    TimerHandle cooldown_timer;
  };
  void schedule_check(const std::shared_ptr<Record>& r);
  void run_check(const std::shared_ptr<Record>& r);
  void on_check_result(const std::shared_ptr<Record>& r, const Status& s);
  void set_state(Record& r, EndpointHealth::State s, const std::string& why);

  EventLoop& loop_;
  Network& network_;
  std::string node_;
  HealthConfig config_;
  ChangeFn on_change_;
  std::unordered_map<NetEndpoint, std::shared_ptr<Record>, NetEndpointHash> records_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flotilla::proxy
