// Balancers: which ready endpoint of a Service port gets the next connection.
// Round-robin (default), random (from a seeded RandomStream) and
// least-connections (fewest active connections, ties in round-robin order),
// chosen per Service by the annotation `flotilla.io/balancer`; plus the
// ClientIP session-affinity table that pins a client to an endpoint on virtual time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/api/labels.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/util/time.h"

namespace flotilla::proxy {

inline constexpr std::string_view kBalancerAnnotation = "flotilla.io/balancer";

enum class BalancerKind { kRoundRobin, kRandom, kLeastConnections };
std::string_view balancer_name(BalancerKind kind);  // "round-robin", ...

struct BalancerChoice {
  BalancerKind kind = BalancerKind::kRoundRobin;
  // Non-empty when the annotation held an unknown value and round-robin was
  // used instead; says what was wrong and what is accepted.
  std::string warning;
};
// Reads `flotilla.io/balancer` from a Service's annotations.
BalancerChoice balancer_from_annotations(const api::Labels& annotations);

// What a balancer sees of one endpoint; shared by every Service port that
// routes to it on this node (the proxy and the health checker keep it current).
struct BackendState {
  int64_t active_connections = 0;
  bool usable = true;  // not marked down by active or passive health
};

struct Backend {
  NetEndpoint endpoint;
  BackendState* state = nullptr;  // never null once built
};

class Balancer {
 public:
  virtual ~Balancer() = default;
  virtual BalancerKind kind() const = 0;
  // The index of the chosen backend among those `usable` and not in `exclude`
  // (endpoints already tried by this request); nullopt when there is none.
  // `backends` is sorted by endpoint and stable between calls unless the
  // endpoint set changed. Deterministic for a given sequence of calls.
  virtual std::optional<size_t> pick(std::span<const Backend> backends,
                                     std::span<const NetEndpoint> exclude = {}) = 0;
};

// `stream` is required for kRandom (the balancer owns it) and ignored otherwise.
std::unique_ptr<Balancer> make_balancer(BalancerKind kind,
                                        std::unique_ptr<RandomStream> stream = nullptr);

// ClientIP session affinity (kube-proxy's userspace affinity table): a client
// sticks to the endpoint it was last sent to until it has been idle for
// `timeout` of virtual time; each use refreshes the entry.
class AffinityTable {
 public:
  // Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds.
  static constexpr Duration kDefaultTimeout = seconds(10800);

  explicit AffinityTable(Duration timeout = kDefaultTimeout) : timeout_(timeout) {}
  Duration timeout() const { return timeout_; }
  void set_timeout(Duration t) { timeout_ = t; }

  // The client's endpoint if its entry has not expired at `now` (and refreshes
  // it); an expired entry is dropped.
  std::optional<NetEndpoint> lookup(const std::string& client_ip, TimePoint now);
  void record(const std::string& client_ip, const NetEndpoint& endpoint, TimePoint now);
  void forget(const std::string& client_ip) { entries_.erase(client_ip); }
  // Drops every entry idle for `timeout` or longer at `now`.
  void expire(TimePoint now);
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    NetEndpoint endpoint;
    TimePoint last_used;
  };
  Duration timeout_;
  std::unordered_map<std::string, Entry> entries_;  // lookup only, never iterated for output
};

}  // namespace flotilla::proxy
