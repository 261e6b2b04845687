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

const api::Pod& pod_of(const api::Object& o) { return static_cast<const api::Pod&>(*o); }

}  // namespace

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

std::string_view endpoint_hostname(const api::Service& service, const api::Pod& pod) {
  if (pod.spec().hostname().empty() || pod.spec().subdomain() != service.metadata().name()) {
    return {};
  }
  return pod.spec().hostname();
}

std::vector<api::EndpointSubset> compute_subsets(const api::Service& service,
                                                 const std::vector<api::Object>& pods) {
  SubsetBuilder b(api::share(service));
  for (const api::Object& o : pods) b.set(api::meta_of(*o).name(), o);
  return b.subsets();
}

SubsetBuilder::SubsetBuilder(api::Object service) : service_(std::move(service)) {}

bool SubsetBuilder::AddressOrder::operator()(const Member* a, const Member* b) const {
  return std::tie(a->ip, *a->name) < std::tie(b->ip, *b->name);
}

void SubsetBuilder::set(const std::string& name, api::Object pod) {
  auto it = members_.find(name);
  if (it == members_.end()) {
    if (pod == nullptr) return;
    Decision d = decide(pod_of(pod));
    it = members_.try_emplace(name).first;
    Member& m = it->second;
    m.name = &it->first;
    take(m, pod_of(pod));
    if (d.serves) place(m, std::move(d));
    return;
  }
  Member& m = it->second;
  if (pod == nullptr) {
    if (m.serves) unplace(m);
    members_.erase(it);
    return;
  }
  const std::string& rv = api::meta_of(*pod).resource_version();
  if (!rv.empty() && rv == m.resource_version) return;
  // Most new snapshots of a pod (a status write, a restart counted) leave
  // what the subsets show of it as it was: no change, no sync to compute.
  Decision d = decide(pod_of(pod));
  if (shows(m, d, pod_of(pod))) {
    m.resource_version = rv;
    return;
  }
  if (m.serves) unplace(m);
  take(m, pod_of(pod));
  m.serves = false;
  if (d.serves) place(m, std::move(d));
}

// What `pod` contributes to the subsets: pods with an IP, not terminating,
// not finished, and (when the service has ports) serving at least one of
// them.
SubsetBuilder::Decision SubsetBuilder::decide(const api::Pod& pod) const {
  const auto& service = static_cast<const api::Service&>(*service_);
  Decision d;
  if (pod.status().pod_ip().empty() || api::is_terminating(pod) || api::is_pod_finished(pod)) {
    return d;
  }
  d.ports = resolved_ports(service, pod);
  if (!service.spec().ports().empty() && d.ports.empty()) return d;
  d.group = port_list_key(d.ports);
  d.serves = true;
  d.ready = api::is_pod_ready(pod) || service.spec().publish_not_ready_addresses();
  return d;
}

// Everything an address is rendered from: readiness, ports, IP, node,
// hostname and the pod's identity.
bool SubsetBuilder::shows(const Member& m, const Decision& d, const api::Pod& pod) const {
  if (d.serves != m.serves) return false;
  if (!m.serves) return true;
  if (d.ready != m.ready || d.group != m.group->first) return false;
  const auto& svc = static_cast<const api::Service&>(*service_);
  const std::string& node = pod.spec().node_name();
  return m.ip == pod.status().pod_ip() && m.uid == pod.metadata().uid() &&
         (m.node == nullptr ? node.empty() : *m.node == node) &&
         m.hostname == endpoint_hostname(svc, pod);
}

void SubsetBuilder::take(Member& m, const api::Pod& pod) {
  m.resource_version = pod.metadata().resource_version();
  m.ip = pod.status().pod_ip();
  m.uid = pod.metadata().uid();
  m.hostname = endpoint_hostname(static_cast<const api::Service&>(*service_), pod);
  const std::string& node = pod.spec().node_name();
  m.node = node.empty() ? nullptr : &*interned_.insert(node).first;
  m.ns = &*interned_.insert(ns_of(pod.metadata())).first;
}

// Puts a serving member's address in its group.
void SubsetBuilder::place(Member& m, Decision d) {
  auto [g, inserted] = groups_.try_emplace(std::move(d.group));
  if (inserted) g->second.ports = std::move(d.ports);
  m.serves = true;
  m.ready = d.ready;
  m.group = g;
  (m.ready ? g->second.ready : g->second.not_ready).insert(&m);
  ++version_;
}

void SubsetBuilder::unplace(const Member& m) {
  ++version_;
  Group& g = m.group->second;
  (m.ready ? g.ready : g.not_ready).erase(&m);
  if (g.ready.empty() && g.not_ready.empty()) groups_.erase(m.group);
}

void SubsetBuilder::add_address(
    const Member& m, google::protobuf::RepeatedPtrField<api::EndpointAddress>* to) const {
  api::EndpointAddress& addr = *to->Add();
  addr.set_ip(m.ip);
  if (m.node != nullptr) addr.set_node_name(*m.node);
  if (!m.hostname.empty()) addr.set_hostname(m.hostname);
  auto* ref = addr.mutable_target_ref();
  ref->set_kind("Pod");
  ref->set_namespace_(*m.ns);
  ref->set_name(*m.name);
  ref->set_uid(m.uid);
}

std::vector<api::EndpointSubset> SubsetBuilder::subsets() const {
  std::vector<api::EndpointSubset> out;
  out.reserve(groups_.size());
  for (const auto& [key, g] : groups_) fill_group(g, out.emplace_back());
  return out;
}

bool SubsetBuilder::fill(google::protobuf::RepeatedPtrField<api::EndpointSubset>* out,
                         size_t max_addresses) const {
  out->Clear();
  out->Reserve(static_cast<int>(groups_.size()));
  size_t ready = 0, not_ready = 0;
  for (const auto& [key, g] : groups_) {
    ready += g.ready.size();
    not_ready += g.not_ready.size();
  }
  if (ready + not_ready <= max_addresses) {
    for (const auto& [key, g] : groups_) fill_group(g, *out->Add());
    return false;
  }
  // As upstream's truncateEndpoints: with more ready addresses than fit,
  // only ready ones, each subset its share (rounded up) of the room left;
  // else every ready one and the not-ready ones shared out the same way.
  const bool ready_only = ready > max_addresses;
  const size_t budget = ready_only ? max_addresses : max_addresses - ready;
  const size_t total = ready_only ? ready : not_ready;
  size_t left = budget;
  for (const auto& [key, g] : groups_) {
    const auto& cut = ready_only ? g.ready : g.not_ready;
    size_t share = (cut.size() * budget + total - 1) / total;
    share = std::min({share, left, cut.size()});
    left -= share;
    if (ready_only && share == 0) continue;
    if (ready_only) {
      fill_group(g, *out->Add(), share, 0);
    } else {
      fill_group(g, *out->Add(), SIZE_MAX, share);
    }
  }
  return true;
}

void SubsetBuilder::fill_group(const Group& g, api::EndpointSubset& s, size_t ready,
                               size_t not_ready) const {
  for (const auto& p : g.ports) *s.add_ports() = p;
  auto copy = [&](const std::set<const Member*, AddressOrder>& from, size_t n,
                  google::protobuf::RepeatedPtrField<api::EndpointAddress>* to) {
    n = std::min(n, from.size());
    to->Reserve(static_cast<int>(n));
    for (auto it = from.begin(); n > 0; ++it, --n) add_address(**it, to);
  };
  copy(g.ready, ready, s.mutable_addresses());
  copy(g.not_ready, not_ready, s.mutable_not_ready_addresses());
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
  const std::shared_ptr<const api::Labels> before = pod_labels_.observe(key, e);
  const api::Labels* was = before.get();
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
}

void EndpointsController::on_endpoints(const WatchEvent& e) {
  if (e.type != WatchEventType::kDeleted) return;
  std::string key = api::namespaced_name(api::meta_of(*e.object));
  if (services_.count(key) > 0) queue_->add(key);  // recreate what someone removed
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
  const bool ours = stored != nullptr && cached != written_.end() && cached->second == stored;

  if (!svc_got.is_ok()) {
    if (svc_got.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(svc_got.status());
    }
    services_.erase(key);
    if (cached != written_.end()) written_.erase(cached);
    if (!ep_got.is_ok()) return ReconcileResult::ok();
    StatusOr<api::Object> removed = ctx_.store.remove(api::Kind::kEndpoints, ns, name);
    if (!removed.is_ok() && removed.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(removed.status());
    }
    ++writes_;
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
  // Filled straight from the builder, at most kMaxAddresses of it: a large
  // service's rewrite copies each address it lists once.
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
  auto* annotations = ep.mutable_metadata()->mutable_annotations();
  if (st.builder->fill(ep.mutable_subsets(), kMaxAddresses)) {
    (*annotations)[std::string(kOverCapacityAnnotation)] = "truncated";
  } else {
    annotations->erase(std::string(kOverCapacityAnnotation));
  }
  // The object this controller wrote, with the builder moved since: almost
  // always a change to write. Not compared first: the store's update
  // compares the whole object anyway and writes nothing when it is the
  // stored one (changes undone within a batch period, or changes to pods
  // past the truncation), so a comparison here would be a second one.
  // Someone else's object is compared reflectively (it may carry fields this
  // controller does not know).
  if (stored != nullptr && !ours && MessageDifferencer::Equals(ep, *stored)) {
    st.synced_version = st.builder->version();
    return ReconcileResult::ok();
  }
  StatusOr<api::Object> written =
      stored != nullptr ? ctx_.store.update(std::move(out)) : ctx_.store.create(std::move(out));
  if (!written.is_ok()) return ReconcileResult::error(written.status());
  st.synced_version = st.builder->version();
  written_[key] = api::as<api::Endpoints>(*written);
  if (ours && *written == *ep_got) return ReconcileResult::ok();  // the same: nothing written
  ++writes_;
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
