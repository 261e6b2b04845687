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

}  // namespace

std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods) {
  SubsetBuilder b(api::share(service));
  for (const api::Object& o : pods) b.set(api::meta_of(*o).name(), o);
  return b.subsets();
}

SubsetBuilder::SubsetBuilder(api::Object service) : service_(std::move(service)) {}

bool SubsetBuilder::AddressOrder::operator()(const Member* a, const Member* b) const {
  return address_less(a->address, b->address);
}

void SubsetBuilder::set(const std::string& name, api::Object pod) {
  const std::string* rv = pod != nullptr ? &api::meta_of(*pod).resource_version() : nullptr;
  auto it = members_.find(name);
  if (it == members_.end()) {
    if (pod == nullptr) return;
    it = members_.try_emplace(name).first;
    Member& m = it->second;
    m.resource_version = *rv;
    std::vector<api::EndpointPort> ports = decide(m, static_cast<const api::Pod&>(*pod));
    if (m.serves) place(m, std::move(ports));
    return;
  }
  Member& m = it->second;
  if (rv != nullptr && !rv->empty() && *rv == m.resource_version) return;
  if (pod == nullptr) {
    if (m.serves) unplace(m);
    members_.erase(it);
    return;
  }
  // Most new snapshots of a pod (a status write, a restart counted) leave
  // what the subsets show of it as it was: no change, no sync to compute.
  Member next;
  next.resource_version = *rv;
  std::vector<api::EndpointPort> ports = decide(next, static_cast<const api::Pod&>(*pod));
  if (next.serves == m.serves &&
      (!m.serves || (next.ready == m.ready && next.group == m.group &&
                     same_address(next.address, m.address)))) {
    m.resource_version = std::move(next.resource_version);
    return;
  }
  if (m.serves) unplace(m);
  m = std::move(next);
  if (m.serves) place(m, std::move(ports));
}

// Decides what `pod` contributes to the subsets and builds its address:
// pods with an IP, not terminating, not finished, and (when the service has
// ports) serving at least one of them. Returns the resolved ports.
std::vector<api::EndpointPort> SubsetBuilder::decide(Member& m, const api::Pod& pod) const {
  const auto& service = static_cast<const api::Service&>(*service_);
  m.serves = false;
  m.group.clear();
  m.address.Clear();
  if (pod.status().pod_ip().empty() || api::is_terminating(pod) || api::is_pod_finished(pod)) {
    return {};
  }
  std::vector<api::EndpointPort> ports = resolved_ports(service, pod);
  if (!service.spec().ports().empty() && ports.empty()) return {};
  for (const auto& p : ports) {
    m.group += p.name() + "/" + std::to_string(p.port()) + "/" + p.protocol() + ";";
  }
  m.serves = true;
  m.ready = api::is_pod_ready(pod) || service.spec().publish_not_ready_addresses();
  api::EndpointAddress& addr = m.address;
  addr.set_ip(pod.status().pod_ip());
  if (!pod.spec().node_name().empty()) addr.set_node_name(pod.spec().node_name());
  if (!pod.spec().hostname().empty() && pod.spec().subdomain() == service.metadata().name()) {
    addr.set_hostname(pod.spec().hostname());
  }
  auto* ref = addr.mutable_target_ref();
  ref->set_kind("Pod");
  ref->set_namespace_(ns_of(pod.metadata()));
  ref->set_name(pod.metadata().name());
  ref->set_uid(pod.metadata().uid());
  return ports;
}

// Puts a serving member's address in its group.
void SubsetBuilder::place(Member& m, std::vector<api::EndpointPort> ports) {
  auto [g, inserted] = groups_.try_emplace(m.group);
  if (inserted) g->second.ports = std::move(ports);
  (m.ready ? g->second.ready : g->second.not_ready).insert(&m);
  ++version_;
}

void SubsetBuilder::unplace(const Member& m) {
  ++version_;
  auto g = groups_.find(m.group);
  if (g == groups_.end()) return;
  (m.ready ? g->second.ready : g->second.not_ready).erase(&m);
  if (g->second.ready.empty() && g->second.not_ready.empty()) groups_.erase(g);
}

std::vector<api::EndpointSubset> SubsetBuilder::subsets() const {
  std::vector<api::EndpointSubset> out;
  out.reserve(groups_.size());
  for (const auto& [key, g] : groups_) fill_group(g, out.emplace_back());
  return out;
}

void SubsetBuilder::fill(google::protobuf::RepeatedPtrField<api::EndpointSubset>* out) const {
  out->Clear();
  out->Reserve(static_cast<int>(groups_.size()));
  for (const auto& [key, g] : groups_) fill_group(g, *out->Add());
}

void SubsetBuilder::fill_group(const Group& g, api::EndpointSubset& s) {
  for (const auto& p : g.ports) *s.add_ports() = p;
  s.mutable_addresses()->Reserve(static_cast<int>(g.ready.size()));
  for (const Member* m : g.ready) *s.add_addresses() = m->address;
  s.mutable_not_ready_addresses()->Reserve(static_cast<int>(g.not_ready.size()));
  for (const Member* m : g.not_ready) *s.add_not_ready_addresses() = m->address;
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
  // The builder is made (or remade) by the sync this enqueues.
  if (e.type == WatchEventType::kDeleted || svc->spec().selector().empty()) services_.erase(key);
  queue_->add(key);
}

StatusOr<std::unique_ptr<SubsetBuilder>> EndpointsController::build(
    const std::string& ns, const api::LabelSelector& selector, api::Object service) const {
  ListOptions lo;
  lo.ns = ns;
  lo.labels = selector;
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, lo);
  if (!pods.is_ok()) return pods.status();
  auto b = std::make_unique<SubsetBuilder>(std::move(service));
  for (const api::Object& o : pods->items) b->set(api::meta_of(*o).name(), o);
  return b;
}

// Every service of the pod's namespace whose selector matches the pod as it
// was or as it is now gets the new snapshot (or loses the pod) and a sync.
void EndpointsController::on_pod(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  const std::string ns = ns_of(meta);
  const std::string key = ns + "/" + meta.name();
  const bool gone = e.type == WatchEventType::kDeleted;
  auto known = pod_labels_.find(key);
  api::Labels removed;
  const api::Labels* was = nullptr;
  if (known != pod_labels_.end()) {
    if (gone) {
      removed = std::move(known->second);
      pod_labels_.erase(known);
      was = &removed;
    } else {
      was = &known->second;
    }
  }
  const std::string prefix = ns + "/";
  for (auto it = services_.lower_bound(prefix);
       it != services_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    ServiceState& st = it->second;
    const bool matched = was != nullptr && st.selector.matches(*was);
    const bool matches = !gone && st.selector.matches(meta.labels());
    if (!matched && !matches) continue;
    if (st.builder != nullptr) st.builder->set(meta.name(), matches ? e.object : nullptr);
    queue_->add_batched(it->first, ctx_.timing.endpoint_updates_batch_period);
  }
  if (gone) return;
  if (known == pod_labels_.end()) {
    pod_labels_.emplace(key, meta.labels());
  } else if (!api::same_labels(known->second, meta.labels())) {
    known->second = meta.labels();
  }
}

void EndpointsController::on_endpoints(const WatchEvent& e) {
  if (e.type != WatchEventType::kDeleted) return;
  std::string key = api::namespaced_name(api::meta_of(*e.object));
  if (services_.count(key) > 0) queue_->add(key);  // recreate what someone removed
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
    services_.erase(key);
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
    services_.erase(key);
    return ReconcileResult::ok();
  }

  // The pods as the watch delivered them (an informer's cache), for the
  // service as stored: a service newer than its watch event is built now.
  ServiceState& st = services_[key];
  if (st.builder == nullptr || st.builder->service() != *svc_got) {
    st.selector = api::LabelSelector::from_map(svc->spec().selector());
    StatusOr<std::unique_ptr<SubsetBuilder>> built = build(ns, st.selector, *svc_got);
    if (!built.is_ok()) {
      services_.erase(key);
      return ReconcileResult::error(built.status());
    }
    st.builder = std::move(*built);
    st.synced_version = ServiceState::kNeverSynced;
  }
  // Nothing changed since a sync found the object this controller wrote in
  // agreement.
  if (ours && st.synced_version == st.builder->version()) {
    return ReconcileResult::ok();
  }
  // The object this controller wrote, with the builder moved since: almost
  // always a change to write. Not compared first: the store's update
  // compares the whole object anyway and writes nothing when it is the
  // stored one (changes undone within a batch period), so a comparison here
  // would be a second one. Someone else's object is compared reflectively
  // (it may carry fields this controller does not know).
  if (stored != nullptr && !ours) {
    std::vector<api::EndpointSubset> after = st.builder->subsets();
    bool same = static_cast<size_t>(stored->subsets().size()) == after.size();
    for (size_t i = 0; same && i < after.size(); ++i) {
      same = MessageDifferencer::Equals(stored->subsets(static_cast<int>(i)), after[i]);
    }
    if (same && api::same_labels(svc->metadata().labels(), stored->metadata().labels())) {
      st.synced_version = st.builder->version();
      return ReconcileResult::ok();
    }
  }
  // Filled straight from the builder: a large service's rewrite copies each
  // address once.
  auto out = std::make_shared<api::Endpoints>();
  api::Endpoints& ep = *out;
  if (stored != nullptr) {
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
  st.builder->fill(ep.mutable_subsets());
  StatusOr<api::Object> written =
      stored != nullptr ? ctx_.store.update(std::move(out)) : ctx_.store.create(std::move(out));
  if (!written.is_ok()) return ReconcileResult::error(written.status());
  st.synced_version = st.builder->version();
  if (ours && *written == *ep_got) return ReconcileResult::ok();  // the same: nothing written
  ++writes_;
  ReadySet is = ready_set(api::as<api::Endpoints>(*written));
  trace_changes(ns, name, was(), is);
  written_[key] = std::move(is);
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
