#include "core/proxy/balancer.h"

#include <algorithm>
#include <cassert>

namespace flotilla::proxy {

std::string_view balancer_name(BalancerKind kind) {
  switch (kind) {
    case BalancerKind::kRoundRobin: return "round-robin";
    case BalancerKind::kRandom: return "random";
    case BalancerKind::kLeastConnections: return "least-connections";
  }
  return "round-robin";
}

BalancerChoice balancer_from_annotations(const api::Labels& annotations) {
  BalancerChoice choice;
  auto it = annotations.find(std::string(kBalancerAnnotation));
  if (it == annotations.end() || it->second.empty()) return choice;
  const std::string& v = it->second;
  if (v == "round-robin") return choice;
  if (v == "random") {
    choice.kind = BalancerKind::kRandom;
    return choice;
  }
  if (v == "least-connections") {
    choice.kind = BalancerKind::kLeastConnections;
    return choice;
  }
  choice.warning = "unknown balancer \"" + v + "\" in annotation " +
                   std::string(kBalancerAnnotation) +
                   " (known: round-robin, random, least-connections); using round-robin";
  return choice;
}

namespace {

bool excluded(const NetEndpoint& e, std::span<const NetEndpoint> exclude) {
  for (const auto& x : exclude) {
    if (x == e) return true;
  }
  return false;
}

bool eligible(const Backend& b, std::span<const NetEndpoint> exclude) {
  return b.state->usable && (exclude.empty() || !excluded(b.endpoint, exclude));
}

// Rotates through the backends: each pick takes the first eligible one at or
// after the cursor, then moves the cursor past it.
class RoundRobinBalancer final : public Balancer {
 public:
  BalancerKind kind() const override { return BalancerKind::kRoundRobin; }
  std::optional<size_t> pick(std::span<const Backend> backends,
                             std::span<const NetEndpoint> exclude) override {
    const size_t n = backends.size();
    if (n == 0) return std::nullopt;
    if (next_ >= n) next_ = 0;
    for (size_t k = 0; k < n; ++k) {
      size_t i = next_ + k;
      if (i >= n) i -= n;
      if (eligible(backends[i], exclude)) {
        next_ = i + 1;
        return i;
      }
    }
    return std::nullopt;
  }

 private:
  size_t next_ = 0;
};

// Uniform over the backends; an ineligible draw moves on to the next eligible
// one (linear probing), so it never loops on a mostly-down set.
class RandomBalancer final : public Balancer {
 public:
  explicit RandomBalancer(std::unique_ptr<RandomStream> stream) : stream_(std::move(stream)) {
    assert(stream_ != nullptr);
  }
  BalancerKind kind() const override { return BalancerKind::kRandom; }
  std::optional<size_t> pick(std::span<const Backend> backends,
                             std::span<const NetEndpoint> exclude) override {
    const size_t n = backends.size();
    if (n == 0) return std::nullopt;
    const size_t start = static_cast<size_t>(stream_->next_below(n));
    for (size_t k = 0; k < n; ++k) {
      size_t i = start + k;
      if (i >= n) i -= n;
      if (eligible(backends[i], exclude)) return i;
    }
    return std::nullopt;
  }

 private:
  std::unique_ptr<RandomStream> stream_;
};

// Fewest active connections; ties go to the first in round-robin order from
// the cursor, so idle backends share the load evenly (nginx least_conn).
class LeastConnectionsBalancer final : public Balancer {
 public:
  BalancerKind kind() const override { return BalancerKind::kLeastConnections; }
  std::optional<size_t> pick(std::span<const Backend> backends,
                             std::span<const NetEndpoint> exclude) override {
    const size_t n = backends.size();
    if (n == 0) return std::nullopt;
    if (next_ >= n) next_ = 0;
    size_t best = n;
    int64_t best_active = 0;
    size_t i = next_;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (i == n) i = 0;
      const Backend& b = backends[i];
      if (!eligible(b, exclude)) continue;
      const int64_t a = b.state->active_connections;
      if (best == n || a < best_active) {
        best = i;
        best_active = a;
        if (a == 0) break;  // nothing beats idle
      }
    }
    if (best == n) return std::nullopt;
    next_ = best + 1;
    return best;
  }

 private:
  size_t next_ = 0;
};

}  // namespace

std::unique_ptr<Balancer> make_balancer(BalancerKind kind, std::unique_ptr<RandomStream> stream) {
  switch (kind) {
    case BalancerKind::kRandom: return std::make_unique<RandomBalancer>(std::move(stream));
    case BalancerKind::kLeastConnections: return std::make_unique<LeastConnectionsBalancer>();
    case BalancerKind::kRoundRobin: break;
  }
  return std::make_unique<RoundRobinBalancer>();
}

// ------------------------------------------------------------------ AffinityTable

std::optional<NetEndpoint> AffinityTable::lookup(const std::string& client_ip, TimePoint now) {
  auto it = entries_.find(client_ip);
  if (it == entries_.end()) return std::nullopt;
  if (now - it->second.last_used >= timeout_) {
    entries_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second.endpoint;
}

void AffinityTable::record(const std::string& client_ip, const NetEndpoint& endpoint,
                           TimePoint now) {
  entries_[client_ip] = Entry{endpoint, now};
}

void AffinityTable::expire(TimePoint now) {
  std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last_used >= timeout_; });
}

}  // namespace flotilla::proxy
