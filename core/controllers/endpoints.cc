#include "core/controllers/endpoints.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <charconv>
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

// Field-by-field equality, equal to MessageDifferencer::Equals for messages
// without unknown fields (presence of node_name and target_ref included).
bool same_ref(const api::ObjectReference& a, const api::ObjectReference& b) {
  return a.kind() == b.kind() && a.namespace_() == b.namespace_() && a.name() == b.name() &&
         a.uid() == b.uid() && a.api_version() == b.api_version() &&
         a.resource_version() == b.resource_version() && a.field_path() == b.field_path();
}

bool same_address(const api::EndpointAddress& a, const api::EndpointAddress& b) {
  return a.ip() == b.ip() && a.hostname() == b.hostname() &&
         a.has_node_name() == b.has_node_name() && a.node_name() == b.node_name() &&
         a.has_target_ref() == b.has_target_ref() && same_ref(a.target_ref(), b.target_ref());
}

bool same_port(const api::EndpointPort& a, const api::EndpointPort& b) {
  return a.name() == b.name() && a.port() == b.port() && a.protocol() == b.protocol() &&
         a.app_protocol() == b.app_protocol();
}

template <typename T, typename Eq>
bool same_list(const google::protobuf::RepeatedPtrField<T>& a,
               const google::protobuf::RepeatedPtrField<T>& b, Eq eq) {
  if (a.size() != b.size()) return false;
  for (int i = 0; i < a.size(); ++i) {
    if (!eq(a.Get(i), b.Get(i))) return false;
  }
  return true;
}

bool same_subset(const api::EndpointSubset& a, const api::EndpointSubset& b) {
  return same_list(a.ports(), b.ports(), same_port) &&
         same_list(a.addresses(), b.addresses(), same_address) &&
         same_list(a.not_ready_addresses(), b.not_ready_addresses(), same_address);
}

}  // namespace

namespace {

// The sorted, resolved port list `pod` serves `service` on.
std::vector<api::EndpointPort> resolved_ports(const api::Service& service, const api::Pod& pod) {
  std::vector<api::EndpointPort> ports;
  for (const auto& sp : service.spec().ports()) {
    int32_t port = resolve_target(sp, pod);
    if (port == 0) continue;
    api::EndpointPort ep;
    ep.set_name(sp.name());
    ep.set_port(port);
    ep.set_protocol(sp.protocol().empty() ? "TCP" : sp.protocol());
    if (!sp.app_protocol().empty()) ep.set_app_protocol(sp.app_protocol());
    ports.push_back(std::move(ep));
  }
  std::sort(ports.begin(), ports.end(), [](const api::EndpointPort& a, const api::EndpointPort& b) {
    if (a.name() != b.name()) return a.name() < b.name();
    if (a.port() != b.port()) return a.port() < b.port();
    return a.protocol() < b.protocol();
  });
  return ports;
}

// What a pod contributes to a service's subsets.
PodPorts decide(const api::Service& service, const api::Object& o) {
  PodPorts d;
  d.pod = o;
  auto pod = api::as<api::Pod>(o);
  if (pod->status().pod_ip().empty() || api::is_terminating(*pod) || api::is_pod_finished(*pod)) {
    return d;
  }
  std::vector<api::EndpointPort> ports = resolved_ports(service, *pod);
  if (!service.spec().ports().empty() && ports.empty()) return d;
  for (const auto& p : ports) {
    d.key += p.name() + "/" + std::to_string(p.port()) + "/" + p.protocol() + ";";
  }
  d.serves = true;
  d.ready = api::is_pod_ready(*pod) || service.spec().publish_not_ready_addresses();
  return d;
}

}  // namespace

std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods,
                                                 SubsetMemo* memo) {
  struct Group {
    api::EndpointSubset subset;
  };
  std::map<std::string, Group> groups;  // by canonical port list
  SubsetMemo next;
  if (memo != nullptr) next.reserve(pods.size());
  for (const api::Object& o : pods) {
    PodPorts decided;
    const PodPorts* d = &decided;
    if (memo != nullptr) {
      auto hit = memo->find(o.get());
      auto [it, inserted] =
          next.try_emplace(o.get(), hit != memo->end() ? std::move(hit->second) : decide(service, o));
      d = &it->second;
    } else {
      decided = decide(service, o);
    }
    if (!d->serves) continue;
    auto pod = api::as<api::Pod>(o);
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

    auto [it, inserted] = groups.try_emplace(d->key);
    if (inserted) {
      for (auto& p : resolved_ports(service, *pod)) *it->second.subset.add_ports() = std::move(p);
    }
    *(d->ready ? it->second.subset.add_addresses() : it->second.subset.add_not_ready_addresses()) =
        std::move(addr);
  }
  if (memo != nullptr) *memo = std::move(next);
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

namespace {

// Three-way comparison of the concatenations a1+a2 and b1+b2, as strings.
int compare_joined(std::string_view a1, std::string_view a2, std::string_view b1,
                   std::string_view b2) {
  const size_t head = std::min(a1.size(), b1.size());
  if (int c = a1.substr(0, head).compare(b1.substr(0, head)); c != 0) return c;
  const size_t na = a1.size() + a2.size(), nb = b1.size() + b2.size();
  for (size_t i = head; i < na && i < nb; ++i) {
    auto ca = static_cast<unsigned char>(i < a1.size() ? a1[i] : a2[i - a1.size()]);
    auto cb = static_cast<unsigned char>(i < b1.size() ? b1[i] : b2[i - b1.size()]);
    if (ca != cb) return ca < cb ? -1 : 1;
  }
  return na == nb ? 0 : (na < nb ? -1 : 1);
}

}  // namespace

std::string EndpointsController::ReadyEndpoint::str() const {
  std::string out(ip);
  out.append(port_view());
  return out;
}

EndpointsController::ReadySet EndpointsController::ready_set(
    std::shared_ptr<const api::Endpoints> ep) {
  ReadySet out;
  out.source = std::move(ep);
  if (out.source == nullptr) return out;
  auto& eps = out.endpoints;
  for (const auto& s : out.source->subsets()) {
    for (const auto& a : s.addresses()) {
      ReadyEndpoint e;
      e.ip = a.ip();
      e.address = &a;
      if (s.ports().empty()) eps.push_back(e);
      for (const auto& p : s.ports()) {
        auto [end, ec] = std::to_chars(e.port.data() + 1, e.port.data() + e.port.size(), p.port());
        if (ec != std::errc()) continue;  // an int32 always fits
        e.port[0] = ':';
        e.port_len = static_cast<uint8_t>(end - e.port.data());
        eps.push_back(e);
      }
    }
  }
  auto cmp = [](const ReadyEndpoint& x, const ReadyEndpoint& y) {
    return compare_joined(x.ip, x.port_view(), y.ip, y.port_view());
  };
  // Sorted by endpoint; of equal ones the first listed stays.
  std::stable_sort(eps.begin(), eps.end(),
                   [&](const auto& x, const auto& y) { return cmp(x, y) < 0; });
  eps.erase(std::unique(eps.begin(), eps.end(),
                        [&](const auto& x, const auto& y) { return cmp(x, y) == 0; }),
            eps.end());
  return out;
}

void EndpointsController::trace_changes(const std::string& ns, const std::string& name,
                                        const ReadySet& was, const ReadySet& is) {
  auto record = [&](trace::EventType type, const ReadyEndpoint& e) {
    const api::EndpointAddress& a = *e.address;
    trace::Record r;
    r.set_time_ns(to_nanos(ctx_.loop.now()));
    r.set_type(type);
    r.set_service(ns + "/" + name);
    r.set_endpoint(e.str());
    r.set_namespace_(ns);
    r.set_name(a.target_ref().name());
    r.set_uid(a.target_ref().uid());
    if (a.has_node_name()) r.set_node(a.node_name());
    ctx_.trace.record(r);
  };
  // Every entry of `from` missing in `other` (both sorted, distinct), in order.
  auto missing = [&](const ReadySet& from, const ReadySet& other, trace::EventType type) {
    auto o = other.endpoints.begin();
    for (const ReadyEndpoint& e : from.endpoints) {
      int c = 1;
      while (o != other.endpoints.end() &&
             (c = compare_joined(o->ip, o->port_view(), e.ip, e.port_view())) < 0) {
        ++o;
      }
      if (o == other.endpoints.end() || c != 0) record(type, e);
    }
  };
  missing(was, is, trace::ENDPOINT_REMOVED);
  missing(is, was, trace::ENDPOINT_ADDED);
}

ReconcileResult EndpointsController::reconcile(const std::string& key) {
  auto slash = key.find('/');
  std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  StatusOr<api::Object> svc_got = ctx_.store.get(api::Kind::kService, ns, name);
  StatusOr<api::Object> ep_got = ctx_.store.get(api::Kind::kEndpoints, ns, name);
  if (!ep_got.is_ok() && ep_got.status().code() != StatusCode::kNotFound) {
    return ReconcileResult::error(ep_got.status());
  }
  std::shared_ptr<const api::Endpoints> stored;
  if (ep_got.is_ok()) stored = api::as<api::Endpoints>(*ep_got);
  // Whether the stored object is the very one this controller wrote last.
  auto cached = written_.find(key);
  const bool ours = stored != nullptr && cached != written_.end() && cached->second.source == stored;
  ReadySet rebuilt;
  auto was = [&]() -> const ReadySet& {
    if (ours) return cached->second;
    rebuilt = ready_set(stored);
    return rebuilt;
  };

  if (!svc_got.is_ok()) {
    if (svc_got.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(svc_got.status());
    }
    memos_.erase(key);
    if (!ep_got.is_ok()) {
      if (cached != written_.end()) written_.erase(cached);
      return ReconcileResult::ok();
    }
    StatusOr<api::Object> removed = ctx_.store.remove(api::Kind::kEndpoints, ns, name);
    if (!removed.is_ok() && removed.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(removed.status());
    }
    ++writes_;
    trace_changes(ns, name, was(), ReadySet{});
    written_.erase(key);
    return ReconcileResult::ok();
  }
  auto svc = api::as<api::Service>(*svc_got);
  if (svc->spec().selector().empty()) {  // user-managed endpoints
    memos_.erase(key);
    return ReconcileResult::ok();
  }

  ListOptions lo;
  lo.ns = ns;
  lo.labels = api::LabelSelector::from_map(svc->spec().selector());
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, lo);
  if (!pods.is_ok()) return ReconcileResult::error(pods.status());
  Memo& memo = memos_[key];
  if (memo.service != *svc_got) memo = Memo{*svc_got, {}};
  std::vector<api::EndpointSubset> after = compute_subsets(*svc, pods->items, &memo.pods);

  api::Endpoints ep;
  if (stored != nullptr) {
    bool same = static_cast<size_t>(stored->subsets().size()) == after.size();
    for (size_t i = 0; same && i < after.size(); ++i) {
      const api::EndpointSubset& have = stored->subsets(static_cast<int>(i));
      // What this controller wrote has no unknown fields: compare without reflection.
      same = ours ? same_subset(have, after[i]) : MessageDifferencer::Equals(have, after[i]);
    }
    if (same && api::same_labels(svc->metadata().labels(), stored->metadata().labels())) {
      return ReconcileResult::ok();
    }
    if (ours) {  // all but the subsets, which are replaced
      ep.set_api_version(stored->api_version());
      ep.set_kind(stored->kind());
      *ep.mutable_metadata() = stored->metadata();
    } else {
      ep = *stored;
      ep.clear_subsets();
    }
  } else {
    ep.set_api_version("v1");
    ep.set_kind("Endpoints");
    ep.mutable_metadata()->set_name(name);
    ep.mutable_metadata()->set_namespace_(ns);
  }
  *ep.mutable_metadata()->mutable_labels() = svc->metadata().labels();
  ep.mutable_subsets()->Reserve(static_cast<int>(after.size()));
  for (auto& s : after) *ep.add_subsets() = std::move(s);
  StatusOr<api::Object> written = stored != nullptr ? ctx_.store.update(api::share(std::move(ep)))
                                                    : ctx_.store.create(api::share(std::move(ep)));
  if (!written.is_ok()) return ReconcileResult::error(written.status());
  ++writes_;
  ReadySet is = ready_set(api::as<api::Endpoints>(*written));
  trace_changes(ns, name, was(), is);
  written_[key] = std::move(is);
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
