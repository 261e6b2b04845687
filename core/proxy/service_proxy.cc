#include "core/proxy/service_proxy.h"

#include <algorithm>
#include <functional>

#include "core/api/pod_util.h"
#include "core/proxy/events.h"

namespace flotilla::proxy {

struct ServiceProxy::PortState {
  ServiceState* service = nullptr;
  std::string name;
  int port = 0;
  NetEndpoint frontend;           // VIP:port; ip empty when headless
  std::vector<Backend> backends;  // ready endpoints, sorted by endpoint
  // How many applied slices list each of `backends` (an endpoint moving
  // between slices may sit in two for a while).
  std::map<NetEndpoint, int> listed;
  std::unique_ptr<Balancer> balancer;
  std::optional<AffinityTable> affinity;  // set for sessionAffinity ClientIP
};

struct ServiceProxy::ServiceState {
  std::string key;  // "<ns>/<name>"
  std::string dns_name;
  std::string vip;  // "" when headless or not yet allocated
  bool headless = false;
  BalancerKind balancer = BalancerKind::kRoundRobin;
  std::vector<std::unique_ptr<PortState>> ports;  // spec order
  // What the ports were built from: a sync that finds the same Service
  // applies only the slices that changed.
  std::shared_ptr<const api::Service> service;
  std::map<std::string, std::shared_ptr<const api::EndpointSlice>> slices;  // by name
};

struct ServiceProxy::RouteState {
  RouteRequest request;
  Callback<RouteResult> done;
  RouteResult result;
  std::vector<NetEndpoint> tried;
  TimePoint started{};
};

namespace {


std::string object_key_of(const google::protobuf::Message& m) {
  return api::namespaced_name(api::meta_of(m));
}

// Calls f(NetEndpoint) for each ready endpoint `slice` gives Service port
// `sp` (of a Service with `nports` ports): ready endpoints only (the
// condition unset counts as ready), their first address, on the slice port
// of the same name (or the only port, for a single-port Service).
template <typename F>
void for_each_ready(const api::EndpointSlice& slice, const api::ServicePort& sp, int nports, F f) {
  const api::EndpointPort* ep_port = nullptr;
  for (const auto& p : slice.ports()) {
    if (p.name() == sp.name()) ep_port = &p;
  }
  if (ep_port == nullptr && nports == 1 && slice.ports_size() == 1) ep_port = &slice.ports(0);
  if (ep_port == nullptr) return;
  for (const auto& ep : slice.endpoints()) {
    if (ep.addresses().empty()) continue;
    if (ep.conditions().has_ready() && !ep.conditions().ready()) continue;
    f(NetEndpoint{ep.addresses(0), ep_port->port()});
  }
}

}  // namespace

ServiceProxyOptions ServiceProxyOptions::from_timing(const TimingProfile& timing,
                                                     std::string node_name) {
  ServiceProxyOptions o;
  o.node_name = std::move(node_name);
  o.min_sync_period = timing.proxy_min_sync_period;
  o.max_retries = timing.proxy_max_retries;
  // An interval of 0 turns active checks off: passive failure detection only,
  // as kube-proxy does (no checks of 15,000 endpoints from every node).
  o.health.active_checks = timing.proxy_health_check_interval > Duration(0);
  o.health.interval = timing.proxy_health_check_interval;
  o.health.rise = timing.proxy_health_rise;
  o.health.fall = timing.proxy_health_fall;
  o.health.timeout = std::min<Duration>(seconds(1), timing.proxy_health_check_interval);
  o.health.passive_cooldown =
      o.health.active_checks ? timing.proxy_health_check_interval * 5 : seconds(10);
  return o;
}

ServiceProxy::ServiceProxy(EventLoop& loop, Store& store, Network& network, Random& random,
                           ServiceProxyOptions options, TraceSink* trace)
    : loop_(loop), store_(store), network_(network), random_(random),
      options_(std::move(options)), trace_(trace),
      health_(loop, network, options_.node_name, options_.health) {}

ServiceProxy::~ServiceProxy() { *alive_ = false; }

Status ServiceProxy::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  auto sw = store_.watch(api::Kind::kService, wo,
                         [this](const WatchEvent& e) { on_service_event(e); });
  if (!sw) return sw.status().with_prefix("service proxy: watching Services: ");
  auto ew = store_.watch(api::Kind::kEndpointSlice, wo,
                         [this](const WatchEvent& e) { on_slice_event(e); });
  if (!ew) return ew.status().with_prefix("service proxy: watching EndpointSlices: ");
  service_watch_ = std::move(*sw);
  slice_watch_ = std::move(*ew);
  request_sync();
  return Status::ok();
}

// ------------------------------------------------------------------ watch & sync

void ServiceProxy::on_service_event(const WatchEvent& e) {
  const std::string key = object_key_of(*e.object);
  if (e.type == WatchEventType::kDeleted) {
    seen_services_.erase(key);
  } else {
    seen_services_[key] = api::as<api::Service>(e.object);
  }
  dirty_.insert(key);
  request_sync();
}

void ServiceProxy::on_slice_event(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  const std::string ns =
      meta.namespace_().empty() ? std::string(api::kDefaultNamespace) : meta.namespace_();
  const std::string key = ns + "/" + meta.name();
  std::string service;
  if (e.type != WatchEventType::kDeleted) {
    auto label = meta.labels().find("kubernetes.io/service-name");
    if (label != meta.labels().end() && !label->second.empty()) service = ns + "/" + label->second;
  }
  // Out of the service it was in (deleted, or relabelled).
  auto was = slice_service_.find(key);
  if (was != slice_service_.end() && was->second != service) {
    auto it = seen_slices_.find(was->second);
    if (it != seen_slices_.end()) {
      it->second.erase(meta.name());
      if (it->second.empty()) seen_slices_.erase(it);
    }
    dirty_.insert(was->second);
    slice_service_.erase(was);
  }
  if (!service.empty()) {
    seen_slices_[service][meta.name()] = api::as<api::EndpointSlice>(e.object);
    slice_service_[key] = service;
    dirty_.insert(service);
  }
  request_sync();
}

// BoundedFrequencyRunner: a request while a sync is scheduled changes nothing;
// otherwise the sync runs now, or min_sync_period after the last one.
void ServiceProxy::request_sync() {
  if (sync_timer_ && sync_timer_->pending()) return;
  TimePoint at = loop_.now();
  if (synced_once_) at = std::max(at, last_sync_ + options_.min_sync_period);
  sync_timer_ = loop_.run_at(at, [this] { sync(); });
}

void ServiceProxy::sync() {
  ++syncs_;
  synced_once_ = true;
  last_sync_ = loop_.now();
  std::set<std::string> batch;
  batch.swap(dirty_);
  for (const auto& key : batch) rebuild(key);
  for (auto& [key, svc] : services_) {
    for (auto& p : svc->ports) {
      if (p->affinity) p->affinity->expire(last_sync_);
    }
  }
}

void ServiceProxy::drop(const std::string& key) {
  auto it = services_.find(key);
  if (it == services_.end()) return;
  ServiceState& s = *it->second;
  for (auto& p : s.ports) {
    auto v = by_vip_.find(p->frontend);
    if (v != by_vip_.end() && v->second == p.get()) by_vip_.erase(v);
    for (const auto& b : p->backends) health_.untrack(b.endpoint);
  }
  auto n = by_name_.find(s.dns_name);
  if (n != by_name_.end() && n->second == &s) by_name_.erase(n);
  services_.erase(it);
}

void ServiceProxy::rebuild(const std::string& key) {
  auto sit = seen_services_.find(key);
  if (sit == seen_services_.end()) {
    drop(key);
    warned_.erase(key);
    return;
  }
  const api::Service& svc = *sit->second;
  auto slices_it = seen_slices_.find(key);
  static const SliceMap kNoSlices;
  const SliceMap& slices = slices_it == seen_slices_.end() ? kNoSlices : slices_it->second;

  ServiceState* old = nullptr;
  if (auto it = services_.find(key); it != services_.end()) old = it->second.get();
  if (old != nullptr && old->service == sit->second) {
    apply_slices(*old, slices);
    return;
  }

  auto next = std::make_unique<ServiceState>();
  next->key = key;
  next->dns_name =
      service_dns_name(svc.metadata().name(), svc.metadata().namespace_(), options_.cluster_domain);
  next->headless = is_headless(svc);
  if (!next->headless) next->vip = svc.spec().cluster_ip();
  BalancerChoice choice = balancer_from_annotations(svc.metadata().annotations());
  next->balancer = choice.kind;
  if (!choice.warning.empty()) {
    warn(svc, "UnknownBalancer", choice.warning);
  } else {
    warned_.erase(key);
  }
  const bool client_ip_affinity = svc.spec().session_affinity() == "ClientIP";
  Duration affinity_timeout = AffinityTable::kDefaultTimeout;
  if (svc.spec().session_affinity_config().client_ip().has_timeout_seconds()) {
    affinity_timeout = seconds(svc.spec().session_affinity_config().client_ip().timeout_seconds());
  }

  const int nports = svc.spec().ports_size();
  for (const auto& sp : svc.spec().ports()) {
    auto port = std::make_unique<PortState>();
    port->service = next.get();
    port->name = sp.name();
    port->port = sp.port();
    port->frontend = NetEndpoint{next->vip, sp.port()};
    for (const auto& [slice_name, slice] : slices) {
      for_each_ready(*slice, sp, nports, [&](NetEndpoint e) { ++port->listed[std::move(e)]; });
    }
    port->backends.reserve(port->listed.size());
    for (const auto& [e, n] : port->listed) port->backends.push_back(Backend{e, health_.track(e)});
    // Keep the balancer's rotation and the affinity table across syncs.
    PortState* prev = nullptr;
    if (old != nullptr) {
      for (auto& p : old->ports) {
        if (p->name == port->name) prev = p.get();
      }
    }
    if (prev != nullptr && prev->balancer->kind() == choice.kind) {
      port->balancer = std::move(prev->balancer);
    } else {
      std::unique_ptr<RandomStream> stream;
      if (choice.kind == BalancerKind::kRandom) {
        stream = random_.stream("proxy/" + options_.node_name + "/" + key + "/" +
                                std::to_string(sp.port()));
      }
      port->balancer = make_balancer(choice.kind, std::move(stream));
    }
    if (client_ip_affinity) {
      if (prev != nullptr && prev->affinity) {
        port->affinity = std::move(prev->affinity);
        port->affinity->set_timeout(affinity_timeout);
      } else {
        port->affinity.emplace(affinity_timeout);
      }
    }
    next->ports.push_back(std::move(port));
  }

  next->service = sit->second;
  next->slices = slices;
  // New endpoints are tracked above before the old ones are released, so an
  // endpoint that stays keeps its health and connection counts.
  drop(key);
  ServiceState* s = next.get();
  services_[key] = std::move(next);
  by_name_[s->dns_name] = s;
  if (!s->vip.empty()) {
    for (auto& p : s->ports) by_vip_.emplace(p->frontend, p.get());
  }
}

// Only the slices that changed since `s` was built (kube-proxy's
// EndpointSliceCache): their old endpoints counted out, their new ones in;
// an endpoint whose count leaves or reaches zero enters or leaves the
// backends, the rest keep their place, health and connection counts.
void ServiceProxy::apply_slices(ServiceState& s, const SliceMap& slices) {
  std::vector<std::pair<const api::EndpointSlice*, const api::EndpointSlice*>> changed;
  auto a = s.slices.begin();
  auto b = slices.begin();
  while (a != s.slices.end() || b != slices.end()) {
    if (b == slices.end() || (a != s.slices.end() && a->first < b->first)) {
      changed.emplace_back(a->second.get(), nullptr);
      ++a;
    } else if (a == s.slices.end() || b->first < a->first) {
      changed.emplace_back(nullptr, b->second.get());
      ++b;
    } else {
      if (a->second != b->second) changed.emplace_back(a->second.get(), b->second.get());
      ++a;
      ++b;
    }
  }
  if (changed.empty()) return;
  const api::Service& svc = *s.service;
  const int nports = svc.spec().ports_size();
  for (int i = 0; i < nports && i < static_cast<int>(s.ports.size()); ++i) {
    PortState& port = *s.ports[static_cast<size_t>(i)];
    const api::ServicePort& sp = svc.spec().ports(i);
    // Counted in first, then out: an endpoint that moved between two changed
    // slices never reaches zero.
    std::vector<NetEndpoint> added, gone;
    for (const auto& [was, now] : changed) {
      if (now == nullptr) continue;
      for_each_ready(*now, sp, nports, [&](NetEndpoint e) {
        auto [it, fresh] = port.listed.try_emplace(std::move(e), 0);
        if (it->second++ == 0) added.push_back(it->first);
      });
    }
    for (const auto& [was, now] : changed) {
      if (was == nullptr) continue;
      for_each_ready(*was, sp, nports, [&](const NetEndpoint& e) {
        auto it = port.listed.find(e);
        if (it == port.listed.end()) return;
        if (--it->second == 0) {
          gone.push_back(it->first);
          port.listed.erase(it);
        }
      });
    }
    if (added.empty() && gone.empty()) continue;
    std::sort(added.begin(), added.end());
    std::sort(gone.begin(), gone.end());
    std::vector<Backend> merged;
    merged.reserve(port.backends.size() + added.size() - std::min(gone.size(), port.backends.size()));
    auto in = added.begin();
    auto out = gone.begin();
    for (Backend& be : port.backends) {
      while (in != added.end() && *in < be.endpoint) {
        merged.push_back(Backend{*in, health_.track(*in)});
        ++in;
      }
      while (out != gone.end() && *out < be.endpoint) ++out;
      if (out != gone.end() && *out == be.endpoint) continue;  // left
      merged.push_back(std::move(be));
    }
    for (; in != added.end(); ++in) merged.push_back(Backend{*in, health_.track(*in)});
    port.backends = std::move(merged);
    for (const NetEndpoint& e : gone) health_.untrack(e);
  }
  s.slices = slices;
}

// ------------------------------------------------------------------ data path

StatusOr<Pick> ServiceProxy::pick_in(PortState& port, const std::string& client_ip,
                                     std::span<const NetEndpoint> exclude) {
  const ServiceState& svc = *port.service;
  if (port.backends.empty()) {
    std::string msg = "no ready endpoints for service " + svc.key;
    if (svc.ports.size() > 1) msg += " port " + (port.name.empty() ? std::to_string(port.port) : port.name);
    return unavailable_error(std::move(msg));
  }
  const Backend* chosen = nullptr;
  const TimePoint now = loop_.now();
  if (port.affinity && !client_ip.empty()) {
    if (auto ep = port.affinity->lookup(client_ip, now)) {
      auto it = std::lower_bound(port.backends.begin(), port.backends.end(), *ep,
                                 [](const Backend& b, const NetEndpoint& e) { return b.endpoint < e; });
      const bool excluded = std::find(exclude.begin(), exclude.end(), *ep) != exclude.end();
      if (it != port.backends.end() && it->endpoint == *ep && it->state->usable && !excluded) {
        chosen = &*it;
      } else {
        port.affinity->forget(client_ip);
      }
    }
  }
  if (chosen == nullptr) {
    auto idx = port.balancer->pick(port.backends, exclude);
    if (!idx) {
      return unavailable_error("no healthy endpoints for service " + svc.key + ": all " +
                               std::to_string(port.backends.size()) +
                               " ready endpoints are failing health checks or were already tried");
    }
    chosen = &port.backends[*idx];
    if (port.affinity && !client_ip.empty()) port.affinity->record(client_ip, chosen->endpoint, now);
  }
  ++chosen->state->active_connections;
  return Pick{chosen->endpoint, svc.key, port.name, port.frontend};
}

StatusOr<Pick> ServiceProxy::pick(const NetEndpoint& frontend, const std::string& client_ip) {
  auto it = by_vip_.find(frontend);
  if (it == by_vip_.end()) {
    return not_found_error("no service has virtual IP " + endpoint_string(frontend));
  }
  return pick_in(*it->second, client_ip, {});
}

StatusOr<Pick> ServiceProxy::pick(std::string_view host, int port, const std::string& client_ip) {
  auto p = resolve(host, port);
  if (!p) return p.status();
  return pick_in(**p, client_ip, {});
}

StatusOr<ServiceProxy::PortState*> ServiceProxy::resolve(std::string_view host, int port) {
  if (parse_ipv4(host).is_ok()) {
    if (port == 0) {
      return invalid_error("a port is required to reach virtual IP " + std::string(host));
    }
    auto it = by_vip_.find(NetEndpoint{std::string(host), port});
    if (it == by_vip_.end()) {
      return not_found_error("no service has virtual IP " + std::string(host) + ":" +
                             std::to_string(port));
    }
    return it->second;
  }
  std::string name(host);
  if (!name.empty() && name.back() == '.') name.pop_back();
  const std::string suffix = ".svc." + options_.cluster_domain;
  if (name.size() > 4 && name.ends_with(".svc")) {
    name += "." + options_.cluster_domain;
  } else if (!name.ends_with(suffix) && std::count(name.begin(), name.end(), '.') == 1) {
    name += suffix;
  }
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return not_found_error("no service named " + std::string(host));
  ServiceState& s = *it->second;
  if (s.headless) {
    return failed_precondition_error("service " + s.key +
                                     " is headless (clusterIP None): it has no virtual IP to "
                                     "proxy; connect to its endpoints directly");
  }
  if (port == 0) {
    if (s.ports.size() == 1) return s.ports[0].get();
    return invalid_error("service " + s.key + " has " + std::to_string(s.ports.size()) +
                         " ports: say which one");
  }
  std::string known;
  for (auto& p : s.ports) {
    if (p->port == port) return p.get();
    known += (known.empty() ? "" : ", ") + std::to_string(p->port);
  }
  return not_found_error("service " + s.key + " has no port " + std::to_string(port) +
                         " (ports: " + known + ")");
}

void ServiceProxy::release(const Pick& pick) {
  BackendState* st = health_.state(pick.endpoint);
  if (st != nullptr && st->active_connections > 0) --st->active_connections;
}

void ServiceProxy::report_result(const NetEndpoint& endpoint, bool ok, const std::string& error) {
  health_.report(endpoint, ok, error);
}

void ServiceProxy::route(const RouteRequest& request, Callback<RouteResult> done) {
  auto rs = std::make_shared<RouteState>();
  rs->request = request;
  rs->done = std::move(done);
  rs->started = loop_.now();
  std::weak_ptr<bool> alive = alive_;
  // Always answer through the loop, never from inside route().
  loop_.post([this, alive, rs] {
    if (alive.expired()) {
      rs->result.status = unavailable_error("service proxy stopped");
      rs->done(std::move(rs->result));
      return;
    }
    attempt(rs);
  });
}

void ServiceProxy::attempt(const std::shared_ptr<RouteState>& rs) {
  RouteResult& r = rs->result;
  auto finish = [this, rs](Status s) {
    rs->result.status = std::move(s);
    trace_request(rs->result, rs->request);
    rs->done(std::move(rs->result));
  };
  auto port = resolve(rs->request.host, rs->request.port);
  if (!port) return finish(port.status());
  r.service = (*port)->service->key;
  auto picked = pick_in(**port, rs->request.client_ip, rs->tried);
  if (!picked) {
    if (r.failures.empty()) return finish(picked.status());
    std::string msg = "request to service " + r.service + " failed after " +
                      std::to_string(r.attempts) + " attempt" + (r.attempts == 1 ? "" : "s") + ":";
    for (const auto& [ep, s] : r.failures) msg += " " + endpoint_string(ep) + ": " + s.message() + ";";
    msg += " " + picked.status().message();
    return finish(unavailable_error(std::move(msg)));
  }
  ++r.attempts;
  rs->tried.push_back(picked->endpoint);
  std::weak_ptr<bool> alive = alive_;
  network_.connect(options_.node_name, picked->endpoint, options_.connect_timeout,
                   [this, alive, rs, pick = *picked, finish](Status s) {
                     if (alive.expired()) {
                       rs->result.status = unavailable_error("service proxy stopped");
                       rs->done(std::move(rs->result));
                       return;
                     }
                     release(pick);
                     report_result(pick.endpoint, s.is_ok(), s.message());
                     if (s.is_ok()) {
                       rs->result.endpoint = pick.endpoint;
                       return finish(Status::ok());
                     }
                     rs->result.failures.emplace_back(pick.endpoint, s);
                     if (rs->result.attempts > options_.max_retries) {
                       std::string msg = "request to service " + rs->result.service +
                                         " failed after " + std::to_string(rs->result.attempts) +
                                         " attempts:";
                       for (const auto& [ep, st] : rs->result.failures) {
                         msg += " " + endpoint_string(ep) + ": " + st.message() + ";";
                       }
                       msg.pop_back();
                       return finish(unavailable_error(std::move(msg)));
                     }
                     attempt(rs);
                   });
}

void ServiceProxy::trace_request(const RouteResult& r, const RouteRequest& req) {
  if (trace_ == nullptr) return;
  trace::Record rec;
  rec.set_time_ns(to_nanos(loop_.now()));
  rec.set_type(r.status.is_ok() ? trace::REQUEST_SERVED : trace::REQUEST_FAILED);
  rec.set_node(options_.node_name);
  rec.set_service(r.service.empty() ? req.host : r.service);
  if (r.status.is_ok()) rec.set_endpoint(endpoint_string(r.endpoint));
  if (!r.status.is_ok()) {
    rec.set_reason(std::string(status_code_reason(r.status.code())));
    rec.set_message(r.status.message());
  }
  rec.set_value(r.attempts);
  trace_->record(rec);
}

void ServiceProxy::warn(const api::Service& service, std::string_view reason,
                        const std::string& message) {
  const std::string key = service_key(service);
  auto it = warned_.find(key);
  if (it != warned_.end() && it->second == message) return;
  warned_[key] = message;
  warnings_.push_back("proxy " + options_.node_name + ": service " + key + ": " + message);
  (void)record_service_warning(store_, loop_.now(), service, "flotilla-proxy/" + options_.node_name,
                               reason, message);
}

// ------------------------------------------------------------------ introspection

std::vector<NetEndpoint> ServiceProxy::endpoints(std::string_view service_key, int port) const {
  std::vector<NetEndpoint> out;
  auto it = services_.find(std::string(service_key));
  if (it == services_.end()) return out;
  for (const auto& p : it->second->ports) {
    if (p->port != port) continue;
    for (const auto& b : p->backends) out.push_back(b.endpoint);
  }
  return out;
}

std::optional<BalancerKind> ServiceProxy::balancer(std::string_view service_key) const {
  auto it = services_.find(std::string(service_key));
  if (it == services_.end()) return std::nullopt;
  return it->second->balancer;
}

std::string ServiceProxy::vip(std::string_view service_key) const {
  auto it = services_.find(std::string(service_key));
  return it == services_.end() ? std::string() : it->second->vip;
}

}  // namespace flotilla::proxy
