#include "core/controllers/endpoints.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <tuple>
#include <utility>

#include "core/api/pod_util.h"

namespace flotilla::ctrl {
namespace {

using google::protobuf::util::MessageDifferencer;

std::string ns_of(const api::ObjectMeta& m) {
  return m.namespace_().empty() ? std::string(api::kDefaultNamespace) : m.namespace_();
}

// The container port a service port sends to on `pod`; 0 when it cannot.
int32_t resolve_target(const api::ServicePort& sp, const api::Pod& pod) {
  const api::IntOrString& t = sp.target_port();
  if (t.value_case() == api::IntOrString::kIntVal && t.int_val() != 0) return t.int_val();
  if (t.value_case() == api::IntOrString::kStrVal && !t.str_val().empty()) {
    std::string protocol = sp.protocol().empty() ? "TCP" : sp.protocol();
    for (const auto& c : pod.spec().containers()) {
      for (const auto& cp : c.ports()) {
        std::string cp_protocol = cp.protocol().empty() ? "TCP" : cp.protocol();
        if (cp.name() == t.str_val() && cp_protocol == protocol) return cp.container_port();
      }
    }
    return 0;
  }
  return sp.port();
}

bool address_less(const api::EndpointAddress& a, const api::EndpointAddress& b) {
  return std::tie(a.ip(), a.target_ref().name()) < std::tie(b.ip(), b.target_ref().name());
}

std::vector<std::string> endpoint_strings(const api::EndpointSubset& s,
                                          const api::EndpointAddress& a) {
  std::vector<std::string> out;
  if (s.ports().empty()) out.push_back(a.ip());
  for (const auto& p : s.ports()) out.push_back(a.ip() + ":" + std::to_string(p.port()));
  return out;
}

}  // namespace

std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods) {
  struct Group {
    api::EndpointSubset subset;
  };
  std::map<std::string, Group> groups;  // by canonical port list
  for (const api::Object& o : pods) {
    auto pod = api::as<api::Pod>(o);
    if (pod->status().pod_ip().empty() || api::is_terminating(*pod) ||
        api::is_pod_finished(*pod)) {
      continue;
    }
    std::vector<api::EndpointPort> ports;
    for (const auto& sp : service.spec().ports()) {
      int32_t port = resolve_target(sp, *pod);
      if (port == 0) continue;
      api::EndpointPort ep;
      ep.set_name(sp.name());
      ep.set_port(port);
      ep.set_protocol(sp.protocol().empty() ? "TCP" : sp.protocol());
      if (!sp.app_protocol().empty()) ep.set_app_protocol(sp.app_protocol());
      ports.push_back(std::move(ep));
    }
    if (!service.spec().ports().empty() && ports.empty()) continue;
    std::sort(ports.begin(), ports.end(), [](const api::EndpointPort& a, const api::EndpointPort& b) {
      if (a.name() != b.name()) return a.name() < b.name();
      if (a.port() != b.port()) return a.port() < b.port();
      return a.protocol() < b.protocol();
    });
    std::string key;
    for (const auto& p : ports) {
      key += p.name() + "/" + std::to_string(p.port()) + "/" + p.protocol() + ";";
    }
    api::EndpointAddress addr;
    addr.set_ip(pod->status().pod_ip());
    if (!pod->spec().node_name().empty()) addr.set_node_name(pod->spec().node_name());
    if (!pod->spec().hostname().empty() &&
        pod->spec().subdomain() == service.metadata().name()) {
      addr.set_hostname(pod->spec().hostname());
    }
    auto* ref = addr.mutable_target_ref();
    ref->set_kind("Pod");
    ref->set_namespace_(ns_of(pod->metadata()));
    ref->set_name(pod->metadata().name());
    ref->set_uid(pod->metadata().uid());

    auto [it, inserted] = groups.try_emplace(key);
    if (inserted) {
      for (auto& p : ports) *it->second.subset.add_ports() = std::move(p);
    }
    bool ready = api::is_pod_ready(*pod) || service.spec().publish_not_ready_addresses();
    *(ready ? it->second.subset.add_addresses() : it->second.subset.add_not_ready_addresses()) =
        std::move(addr);
  }
  std::vector<api::EndpointSubset> out;
  for (auto& [key, g] : groups) {
    auto* a = g.subset.mutable_addresses();
    std::sort(a->begin(), a->end(), address_less);
    auto* n = g.subset.mutable_not_ready_addresses();
    std::sort(n->begin(), n->end(), address_less);
    out.push_back(std::move(g.subset));
  }
  return out;
}

EndpointsController::EndpointsController(ControllerContext ctx, int max_per_pass) : ctx_(ctx) {
  WorkQueueOptions qo;
  qo.backoff_initial = ctx_.timing.controller_backoff_initial;
  qo.backoff_max = ctx_.timing.controller_backoff_max;
  qo.max_per_pass = max_per_pass;
  queue_ = std::make_unique<WorkQueue>(
      ctx_.loop, "endpoints", [this](const std::string& key) { return reconcile(key); }, qo);
}

EndpointsController::~EndpointsController() {
  service_watch_.reset();
  pod_watch_.reset();
  endpoints_watch_.reset();
  queue_->shut_down();
}

Status EndpointsController::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> services = ctx_.store.watch(
      api::Kind::kService, wo, [this](const WatchEvent& e) { on_service(e); });
  if (!services.is_ok()) return services.status();
  service_watch_ = std::move(*services);
  StatusOr<WatchHandle> pods =
      ctx_.store.watch(api::Kind::kPod, wo, [this](const WatchEvent& e) { on_pod(e); });
  if (!pods.is_ok()) return pods.status();
  pod_watch_ = std::move(*pods);
  StatusOr<WatchHandle> eps = ctx_.store.watch(api::Kind::kEndpoints, {},
                                               [this](const WatchEvent& e) { on_endpoints(e); });
  if (!eps.is_ok()) return eps.status();
  endpoints_watch_ = std::move(*eps);
  return Status::ok();
}

void EndpointsController::on_service(const WatchEvent& e) {
  auto svc = api::as<api::Service>(e.object);
  std::string key = api::namespaced_name(svc->metadata());
  if (e.type == WatchEventType::kDeleted || svc->spec().selector().empty()) {
    selectors_.erase(key);
  } else {
    selectors_[key] = api::LabelSelector::from_map(svc->spec().selector());
  }
  queue_->add(key);
}

void EndpointsController::enqueue_matching(const std::string& ns, const api::Labels& labels) {
  const std::string prefix = ns + "/";
  for (auto it = selectors_.lower_bound(prefix);
       it != selectors_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (it->second.matches(labels)) {
      queue_->add_batched(it->first, ctx_.timing.endpoint_updates_batch_period);
    }
  }
}

void EndpointsController::on_pod(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  std::string key = api::namespaced_name(meta);
  std::string ns = ns_of(meta);
  auto old = pod_labels_.find(key);
  if (old != pod_labels_.end()) {
    enqueue_matching(ns, old->second);
    if (e.type == WatchEventType::kDeleted) {
      pod_labels_.erase(old);
      return;
    }
  }
  enqueue_matching(ns, meta.labels());
  if (e.type != WatchEventType::kDeleted) pod_labels_[key] = meta.labels();
}

void EndpointsController::on_endpoints(const WatchEvent& e) {
  if (e.type != WatchEventType::kDeleted) return;
  std::string key = api::namespaced_name(api::meta_of(*e.object));
  if (selectors_.count(key) > 0) queue_->add(key);  // recreate what someone removed
}

void EndpointsController::trace_changes(const std::string& ns, const std::string& name,
                                        const std::vector<api::EndpointSubset>& before,
                                        const std::vector<api::EndpointSubset>& after) {
  auto collect = [](const std::vector<api::EndpointSubset>& subsets) {
    std::map<std::string, const api::EndpointAddress*> out;
    for (const auto& s : subsets) {
      for (const auto& a : s.addresses()) {
        for (std::string& ep : endpoint_strings(s, a)) out.emplace(std::move(ep), &a);
      }
    }
    return out;
  };
  auto was = collect(before);
  auto is = collect(after);
  auto record = [&](trace::EventType type, const std::string& ep, const api::EndpointAddress& a) {
    trace::Record r;
    r.set_time_ns(to_nanos(ctx_.loop.now()));
    r.set_type(type);
    r.set_service(ns + "/" + name);
    r.set_endpoint(ep);
    r.set_namespace_(ns);
    r.set_name(a.target_ref().name());
    r.set_uid(a.target_ref().uid());
    if (a.has_node_name()) r.set_node(a.node_name());
    ctx_.trace.record(r);
  };
  for (const auto& [ep, a] : was) {
    if (is.count(ep) == 0) record(trace::ENDPOINT_REMOVED, ep, *a);
  }
  for (const auto& [ep, a] : is) {
    if (was.count(ep) == 0) record(trace::ENDPOINT_ADDED, ep, *a);
  }
}

ReconcileResult EndpointsController::reconcile(const std::string& key) {
  auto slash = key.find('/');
  std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  StatusOr<api::Object> svc_got = ctx_.store.get(api::Kind::kService, ns, name);
  StatusOr<api::Object> ep_got = ctx_.store.get(api::Kind::kEndpoints, ns, name);
  if (!ep_got.is_ok() && ep_got.status().code() != StatusCode::kNotFound) {
    return ReconcileResult::error(ep_got.status());
  }
  std::vector<api::EndpointSubset> before;
  if (ep_got.is_ok()) {
    for (const auto& s : api::as<api::Endpoints>(*ep_got)->subsets()) before.push_back(s);
  }

  if (!svc_got.is_ok()) {
    if (svc_got.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(svc_got.status());
    }
    if (!ep_got.is_ok()) return ReconcileResult::ok();
    StatusOr<api::Object> removed = ctx_.store.remove(api::Kind::kEndpoints, ns, name);
    if (!removed.is_ok() && removed.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(removed.status());
    }
    ++writes_;
    trace_changes(ns, name, before, {});
    return ReconcileResult::ok();
  }
  auto svc = api::as<api::Service>(*svc_got);
  if (svc->spec().selector().empty()) return ReconcileResult::ok();  // user-managed endpoints

  ListOptions lo;
  lo.ns = ns;
  lo.labels = api::LabelSelector::from_map(svc->spec().selector());
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, lo);
  if (!pods.is_ok()) return ReconcileResult::error(pods.status());
  std::vector<api::EndpointSubset> after = compute_subsets(*svc, pods->items);

  api::Endpoints ep;
  if (ep_got.is_ok()) {
    ep = *api::as<api::Endpoints>(*ep_got);
    bool same = static_cast<size_t>(ep.subsets().size()) == after.size();
    for (size_t i = 0; same && i < after.size(); ++i) {
      same = MessageDifferencer::Equals(ep.subsets(static_cast<int>(i)), after[i]);
    }
    api::ObjectMeta want_labels;
    *want_labels.mutable_labels() = svc->metadata().labels();
    api::ObjectMeta have_labels;
    *have_labels.mutable_labels() = ep.metadata().labels();
    if (same && MessageDifferencer::Equals(want_labels, have_labels)) return ReconcileResult::ok();
  } else {
    ep.set_api_version("v1");
    ep.set_kind("Endpoints");
    ep.mutable_metadata()->set_name(name);
    ep.mutable_metadata()->set_namespace_(ns);
  }
  *ep.mutable_metadata()->mutable_labels() = svc->metadata().labels();
  ep.clear_subsets();
  for (const auto& s : after) *ep.add_subsets() = s;
  StatusOr<api::Object> written = ep_got.is_ok() ? ctx_.store.update(api::share(std::move(ep)))
                                                  : ctx_.store.create(api::share(std::move(ep)));
  if (!written.is_ok()) return ReconcileResult::error(written.status());
  ++writes_;
  trace_changes(ns, name, before, after);
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
