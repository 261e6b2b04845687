// SimNetwork: connection and probe outcomes from the world's state.
#include "sim/world/world.h"

namespace flotilla::sim {

namespace {
Status deadline_error(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
}  // namespace

SimNetwork::Outcome SimNetwork::evaluate(NodeId from, const NetEndpoint& target,
                                         Duration timeout) const {
  const World& w = world_;
  if (!w.nodes_[from]->info.up) {
    return {unavailable_error("node \"" + w.nodes_[from]->info.name + "\" is down"),
            Duration::zero()};
  }
  auto p = World::parse_pod_ip(target.ip);
  if (!p || p->first >= w.nodes_.size()) {
    return {unavailable_error("dial " + endpoint_string(target) + ": no route to host"),
            Duration::zero()};
  }
  const NodeId to = p->first;
  const Duration rtt = 2 * w.topology_.latency(from, to) + w.options_.service_time;
  if (!w.nodes_[to]->info.up || !w.topology_.reachable(from, to)) {
    return {deadline_error("dial " + endpoint_string(target) + ": i/o timeout after " +
                           format_duration(timeout)),
            timeout};
  }
  switch (w.endpoint_state(target)) {
    case EndpointState::kOk:
      if (rtt > timeout) break;
      return {Status::ok(), rtt};
    case EndpointState::kNoHost:
      return {unavailable_error("dial " + endpoint_string(target) + ": no route to host"), rtt};
    case EndpointState::kRefused:
      return {unavailable_error("dial " + endpoint_string(target) + ": connection refused"), rtt};
    case EndpointState::kNodeDown:
    case EndpointState::kHung:
      break;
  }
  return {deadline_error("dial " + endpoint_string(target) + ": i/o timeout after " +
                         format_duration(timeout)),
          timeout};
}

void SimNetwork::attempt(const std::string& from_node, const NetEndpoint& target,
                         Duration timeout, Callback<Status> done) {
  auto from = world_.topology_.find_node(from_node);
  Outcome o = from ? evaluate(*from, target, timeout)
                   : Outcome{invalid_error("unknown node \"" + from_node + "\""), Duration::zero()};
  auto fn = [done = std::move(done), st = std::move(o.status)]() mutable { done(std::move(st)); };
  if (o.after <= Duration::zero()) {
    world_.sim_.post(std::move(fn));
  } else {
    world_.sim_.schedule_after(o.after, std::move(fn));
  }
}

void SimNetwork::probe(const ProbeRequest& request, Callback<Status> done) {
  // A healthy simulated server answers HTTP GETs with 200, so TCP and HTTP
  // probes have the same outcome.
  attempt(request.from_node, request.target, request.timeout, std::move(done));
}

void SimNetwork::connect(const std::string& from_node, const NetEndpoint& target,
                         Duration timeout, Callback<Status> done) {
  attempt(from_node, target, timeout, std::move(done));
}

void SimNetwork::set_dns_record(const std::string& name, const std::string& ip) {
  if (ip.empty()) {
    dns_.erase(name);
  } else {
    dns_[name] = ip;
  }
}

std::optional<std::string> SimNetwork::lookup(const std::string& name) const {
  auto it = dns_.find(name);
  if (it == dns_.end()) return std::nullopt;
  return it->second;
}

}  // namespace flotilla::sim
