#include "core/proxy/health.h"

#include <cassert>

namespace flotilla::proxy {

std::string_view health_state_name(EndpointHealth::State s) {
  switch (s) {
    case EndpointHealth::State::kUp: return "up";
    case EndpointHealth::State::kSuspect: return "suspect";
    case EndpointHealth::State::kDown: return "down";
  }
  return "up";
}

HealthChecker::HealthChecker(EventLoop& loop, Network& network, std::string node,
                             HealthConfig config)
    : loop_(loop), network_(network), node_(std::move(node)), config_(config) {
  assert(config_.rise >= 1 && config_.fall >= 1);
}

HealthChecker::~HealthChecker() { *alive_ = false; }

BackendState* HealthChecker::track(const NetEndpoint& endpoint) {
  auto [it, inserted] = records_.try_emplace(endpoint);
  if (inserted) {
    it->second = std::make_shared<Record>();
    it->second->endpoint = endpoint;
    if (config_.active_checks) schedule_check(it->second);
  }
  ++it->second->refs;
  return &it->second->backend;
}

void HealthChecker::untrack(const NetEndpoint& endpoint) {
  auto it = records_.find(endpoint);
  if (it == records_.end()) return;
  if (--it->second->refs > 0) return;
  // Timers die with the record; an in-flight probe finds its record expired.
  records_.erase(it);
}

BackendState* HealthChecker::state(const NetEndpoint& endpoint) {
  auto it = records_.find(endpoint);
  return it == records_.end() ? nullptr : &it->second->backend;
}

const EndpointHealth* HealthChecker::health(const NetEndpoint& endpoint) const {
  auto it = records_.find(endpoint);
  return it == records_.end() ? nullptr : &it->second->health;
}

void HealthChecker::set_state(Record& r, EndpointHealth::State s, const std::string& why) {
  const bool was_usable = r.backend.usable;
  r.health.state = s;
  r.backend.usable = s == EndpointHealth::State::kUp;
  if (s != EndpointHealth::State::kSuspect) r.cooldown_timer.reset();
  if (was_usable != r.backend.usable && on_change_) on_change_(r.endpoint, r.backend.usable, why);
}

void HealthChecker::report(const NetEndpoint& endpoint, bool ok, const std::string& error) {
  auto it = records_.find(endpoint);
  if (it == records_.end()) return;
  Record& r = *it->second;
  if (ok) return;  // a success says nothing an active check would not
  r.health.last_error = error;
  if (r.health.state == EndpointHealth::State::kDown) return;  // already out; checks bring it back
  set_state(r, EndpointHealth::State::kSuspect,
            "connection to " + endpoint_string(endpoint) + " failed" +
                (error.empty() ? "" : ": " + error));
  std::weak_ptr<Record> weak = it->second;
  r.cooldown_timer = loop_.run_after(config_.passive_cooldown, [this, weak] {
    auto rec = weak.lock();
    if (!rec || rec->health.state != EndpointHealth::State::kSuspect) return;
    set_state(*rec, EndpointHealth::State::kUp, "passive cool-down ended");
  });
}

void HealthChecker::schedule_check(const std::shared_ptr<Record>& r) {
  std::weak_ptr<Record> weak = r;
  r->check_timer = loop_.run_after(config_.interval, [this, weak] {
    if (auto rec = weak.lock()) run_check(rec);
  });
}

void HealthChecker::run_check(const std::shared_ptr<Record>& r) {
  schedule_check(r);  // fixed rate; a check still in flight makes the next one skip
  if (r->probe_in_flight) return;
  r->probe_in_flight = true;
  ProbeRequest req;
  req.kind = ProbeRequest::Kind::kTcp;
  req.from_node = node_;
  req.target = r->endpoint;
  req.timeout = config_.timeout;
  std::weak_ptr<Record> weak = r;
  std::weak_ptr<bool> alive = alive_;
  network_.probe(req, [this, weak, alive](Status s) {
    if (alive.expired()) return;
    if (auto rec = weak.lock()) on_check_result(rec, s);
  });
}

void HealthChecker::on_check_result(const std::shared_ptr<Record>& r, const Status& s) {
  r->probe_in_flight = false;
  EndpointHealth& h = r->health;
  ++h.checks;
  if (s.is_ok()) {
    ++h.consecutive_ok;
    h.consecutive_failed = 0;
    if (h.state == EndpointHealth::State::kSuspect) {
      set_state(*r, EndpointHealth::State::kUp, "passed an active check");
    } else if (h.state == EndpointHealth::State::kDown && h.consecutive_ok >= config_.rise) {
      set_state(*r, EndpointHealth::State::kUp,
                "passed " + std::to_string(h.consecutive_ok) + " active checks");
    }
    return;
  }
  h.consecutive_ok = 0;
  ++h.consecutive_failed;
  h.last_error = s.message();
  if (h.state != EndpointHealth::State::kDown && h.consecutive_failed >= config_.fall) {
    set_state(*r, EndpointHealth::State::kDown,
              "failed " + std::to_string(h.consecutive_failed) + " active checks: " + s.message());
  }
}

}  // namespace flotilla::proxy
