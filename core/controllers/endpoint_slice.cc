#include "core/controllers/endpoint_slice.h"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <tuple>
#include <utility>

#include "core/api/pod_util.h"
#include "core/controllers/endpoints.h"

namespace flotilla::ctrl {
namespace {

std::string ns_or_default(const api::ObjectMeta& m) {
  return m.namespace_().empty() ? std::string(api::kDefaultNamespace) : m.namespace_();
}

// "IPv4|name/port/protocol;..." : slices hold one address type and one port list.
template <typename Ports>
std::string group_key(std::string_view address_type, const Ports& ports) {
  return std::string(address_type) + "|" + port_list_key(ports);
}

api::LabelSelector selector_of(
    std::initializer_list<std::pair<std::string_view, std::string_view>> pairs) {
  api::Labels labels;
  for (const auto& [k, v] : pairs) labels[std::string(k)] = std::string(v);
  return api::LabelSelector::from_map(labels);
}

int64_t version_number(const std::string& rv) {
  int64_t v = -1;
  auto [end, ec] = std::from_chars(rv.data(), rv.data() + rv.size(), v);
  return ec == std::errc() && end == rv.data() + rv.size() ? v : -1;
}

const api::Pod& pod_of(const api::Object& o) { return static_cast<const api::Pod&>(*o); }

bool ready_condition(const api::Endpoint& e) {
  return !e.conditions().has_ready() || e.conditions().ready();  // unset means ready
}

// "ip:port" for each port (or "ip" when there are none), sorted, distinct.
template <typename Ports>
std::vector<std::string> endpoint_strings(const std::string& ip, const Ports& ports) {
  std::vector<std::string> out;
  if (ports.empty()) out.push_back(ip);
  for (const api::EndpointPort& p : ports) out.push_back(ip + ":" + std::to_string(p.port()));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

bool EndpointSliceController::MemberOrder::operator()(const Member* a, const Member* b) const {
  return std::tie(a->ip, *a->name) < std::tie(b->ip, *b->name);
}

EndpointSliceController::EndpointSliceController(ControllerContext ctx,
                                                 int max_endpoints_per_slice, int max_per_pass)
    : ctx_(ctx), max_per_slice_(std::max(1, max_endpoints_per_slice)) {
  WorkQueueOptions qo;
  qo.backoff_initial = ctx_.timing.controller_backoff_initial;
  qo.backoff_max = ctx_.timing.controller_backoff_max;
  qo.max_per_pass = max_per_pass;
  queue_ = std::make_unique<WorkQueue>(
      ctx_.loop, "endpointslice", [this](const std::string& key) { return reconcile(key); }, qo);
}

EndpointSliceController::~EndpointSliceController() {
  service_watch_.reset();
  pod_watch_.reset();
  slice_watch_.reset();
  endpoints_watch_.reset();
  queue_->shut_down();
}

Status EndpointSliceController::start() {
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
  WatchOptions so;
  so.labels = selector_of({{kManagedByLabel, kSliceControllerName}});
  StatusOr<WatchHandle> slices = ctx_.store.watch(
      api::Kind::kEndpointSlice, so, [this](const WatchEvent& e) { on_slice(e); });
  if (!slices.is_ok()) return slices.status();
  slice_watch_ = std::move(*slices);
  StatusOr<WatchHandle> eps = ctx_.store.watch(api::Kind::kEndpoints, {},
                                               [this](const WatchEvent& e) { on_endpoints(e); });
  if (!eps.is_ok()) return eps.status();
  endpoints_watch_ = std::move(*eps);
  return Status::ok();
}

// Endpoints of a Service without a selector are mirrored; the others (which
// the endpoints controller writes) are not this controller's business.
void EndpointSliceController::on_endpoints(const WatchEvent& e) {
  std::string key = api::namespaced_name(api::meta_of(*e.object));
  if (services_.count(key) == 0) queue_->add(key);
}

void EndpointSliceController::on_service(const WatchEvent& e) {
  // The state is made (or remade) by the sync this enqueues.
  queue_->add(api::namespaced_name(api::meta_of(*e.object)));
}

// Every built service of the pod's namespace whose selector matches the pod
// as it was or as it is now takes the new snapshot (or loses the pod), and
// syncs after the batch period.
void EndpointSliceController::on_pod(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  const std::string ns = ns_or_default(meta);
  const std::string key = ns + "/" + meta.name();
  const bool gone = e.type == WatchEventType::kDeleted;
  const std::shared_ptr<const api::Labels> before = pod_labels_.observe(key, e);
  const api::Labels* was = before.get();
  const std::string prefix = ns + "/";
  static const api::Object kNone;
  for (auto it = services_.lower_bound(prefix);
       it != services_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    ServiceState& st = it->second;
    if (!st.built) continue;  // its next sync builds it from the store
    const bool matched = was != nullptr && st.selector.matches(*was);
    const bool matches = !gone && st.selector.matches(meta.labels());
    if (!matched && !matches) continue;
    set_pod(st, meta.name(), matches ? e.object : kNone);
    queue_->add_batched(it->first, ctx_.timing.endpoint_updates_batch_period);
  }
}

// A change to a slice this controller did not make (an edit, a deletion, a
// slice someone created with its label): the service is built again from
// the store, which adopts or corrects what it finds.
void EndpointSliceController::on_slice(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  auto svc = meta.labels().find(std::string(kServiceNameLabel));
  if (svc == meta.labels().end()) return;
  const std::string key = ns_or_default(meta) + "/" + svc->second;
  auto it = services_.find(key);
  if (it == services_.end()) {
    queue_->add(key);  // a slice of a service unknown here: removed if the service is gone
    return;
  }
  ServiceState& st = it->second;
  if (!st.built) return;  // a rebuild is queued already
  auto s = st.by_name.find(meta.name());
  if (e.type != WatchEventType::kDeleted && s != st.by_name.end() &&
      s->second->stored != nullptr) {
    const int64_t seen = version_number(meta.resource_version());
    const int64_t mine = version_number(s->second->stored->metadata().resource_version());
    if (seen >= 0 && mine >= 0 && seen <= mine) return;  // this controller's own write
  }
  // Deleted: this controller's deletions leave by_name before their event.
  if (e.type == WatchEventType::kDeleted && s == st.by_name.end()) return;
  st.built = false;
  queue_->add(key);
}

EndpointSliceController::Decision EndpointSliceController::decide(const ServiceState& st,
                                                                  const api::Pod& pod) const {
  const auto& service = static_cast<const api::Service&>(*st.service);
  Decision d;
  if (pod.status().pod_ip().empty() || api::is_pod_finished(pod)) return d;
  d.ports = resolved_ports(service, pod);
  if (!service.spec().ports().empty() && d.ports.empty()) return d;
  const std::string& ip = pod.status().pod_ip();
  d.group = group_key(ip.find(':') != std::string::npos ? "IPv6" : "IPv4", d.ports);
  d.serves = true;
  d.serving = api::is_pod_ready(pod);
  d.terminating = api::is_terminating(pod);
  d.ready = service.spec().publish_not_ready_addresses() || (d.serving && !d.terminating);
  return d;
}

// Everything the member's Endpoint is rendered from: conditions, group,
// address, node, hostname and the pod's identity.
bool EndpointSliceController::shows(const ServiceState& st, const Member& m, const Decision& d,
                                    const api::Pod& pod) const {
  const bool listed = m.slice != nullptr;
  if (d.serves != listed) return false;
  if (!listed) return true;
  if (d.ready != m.ready || d.serving != m.serving || d.terminating != m.terminating ||
      d.group != m.slice->group) {
    return false;
  }
  const auto& svc = static_cast<const api::Service&>(*st.service);
  const std::string& node = pod.spec().node_name();
  return m.ip == pod.status().pod_ip() && m.uid == pod.metadata().uid() &&
         (m.node == nullptr ? node.empty() : *m.node == node) &&
         m.hostname == endpoint_hostname(svc, pod);
}

void EndpointSliceController::take(const ServiceState& st, Member& m, const api::Pod& pod,
                                   const Decision& d) {
  const auto& svc = static_cast<const api::Service&>(*st.service);
  m.resource_version = pod.metadata().resource_version();
  m.ip = pod.status().pod_ip();
  m.uid = pod.metadata().uid();
  m.hostname = endpoint_hostname(svc, pod);
  const std::string& node = pod.spec().node_name();
  m.node = node.empty() ? nullptr : &*nodes_.insert(node).first;
  m.ready = d.ready;
  m.serving = d.serving;
  m.terminating = d.terminating;
}

void EndpointSliceController::mark(ServiceState& st, Slice& s) {
  s.dirty = true;
  st.dirty.insert(s.id);
}

// Into a slice of the member's group: one already being written that has
// room, else the fullest with room, else a new one.
void EndpointSliceController::place(ServiceState& st, Member& m, Decision d) {
  auto [git, inserted] = st.groups.try_emplace(d.group);
  Group& g = git->second;
  if (inserted) {
    g.address_type = d.group.substr(0, d.group.find('|'));
    g.ports = std::move(d.ports);
  }
  Slice* best = nullptr;
  for (auto& [id, s] : g.slices) {
    if (s->dirty && static_cast<int>(s->members.size()) < max_per_slice_) {
      best = s;
      break;
    }
  }
  if (best == nullptr) {
    for (auto& [id, s] : g.slices) {
      const size_t n = s->members.size();
      if (static_cast<int>(n) < max_per_slice_ && (best == nullptr || n > best->members.size())) {
        best = s;
      }
    }
  }
  if (best == nullptr) {
    auto s = std::make_unique<Slice>();
    s->id = st.next_id++;
    s->group = git->first;
    best = s.get();
    g.slices.emplace(s->id, best);
    st.slices.emplace(s->id, std::move(s));
  }
  best->members.insert(&m);
  m.slice = best;
  mark(st, *best);
}

void EndpointSliceController::unplace(ServiceState& st, Member& m) {
  if (m.slice == nullptr) return;
  m.slice->members.erase(&m);
  mark(st, *m.slice);
  m.slice = nullptr;
}

void EndpointSliceController::note_change(ServiceState& st, const std::string& name,
                                          const Member* m) const {
  if (!st.changed.insert(name).second || m == nullptr) return;
  Traced t = traced_now(st, *m);
  if (!t.endpoints.empty()) st.was.emplace(name, std::move(t));
}

void EndpointSliceController::set_pod(ServiceState& st, const std::string& name,
                                      const api::Object& pod) {
  auto it = st.members.find(name);
  if (it == st.members.end()) {
    if (pod == nullptr) return;
    Decision d = decide(st, pod_of(pod));
    it = st.members.try_emplace(name).first;
    Member& m = it->second;
    m.name = &it->first;
    take(st, m, pod_of(pod), d);
    if (d.serves) {
      note_change(st, name, nullptr);
      place(st, m, std::move(d));
    }
    return;
  }
  Member& m = it->second;
  if (pod == nullptr) {
    note_change(st, name, &m);
    unplace(st, m);
    st.members.erase(it);
    return;
  }
  const std::string& rv = api::meta_of(*pod).resource_version();
  if (!rv.empty() && rv == m.resource_version) return;
  Decision d = decide(st, pod_of(pod));
  // Most new snapshots of a pod (a restart counted, a status write) leave
  // its endpoint as it was.
  if (shows(st, m, d, pod_of(pod))) {
    m.resource_version = rv;
    return;
  }
  note_change(st, name, &m);
  if (m.slice != nullptr && d.serves && d.group == m.slice->group) {  // updated where it is
    Slice* s = m.slice;
    s->members.erase(&m);
    take(st, m, pod_of(pod), d);
    s->members.insert(&m);
    mark(st, *s);
    return;
  }
  unplace(st, m);
  take(st, m, pod_of(pod), d);
  if (d.serves) place(st, m, std::move(d));
}

Status EndpointSliceController::build(const std::string& ns, const std::string& name,
                                      ServiceState& st) {
  ListOptions lo;
  lo.ns = ns;
  lo.labels = st.selector;
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, lo);
  if (!pods.is_ok()) return pods.status();
  ListOptions so;
  so.ns = ns;
  so.labels = selector_of({{kServiceNameLabel, name}, {kManagedByLabel, kSliceControllerName}});
  StatusOr<ListResult> slices = ctx_.store.list(api::Kind::kEndpointSlice, so);
  if (!slices.is_ok()) return slices.status();
  // Mirrored from the user's Endpoints while the service had no selector.
  FLOTILLA_RETURN_IF_ERROR(remove_slices(ns, name, kMirroringControllerName));

  // Nothing traced of the service yet: the slices found (this controller's
  // before a restart) are what was traced.
  const bool first = !st.built && st.was.empty() && st.slices.empty();
  for (const auto& [pod, m] : st.members) note_change(st, pod, &m);
  st.members.clear();
  st.groups.clear();
  st.slices.clear();
  st.by_name.clear();
  st.dirty.clear();
  // Every pod decided, in the list's order; placed below.
  std::vector<std::pair<Member*, Decision>> pending;
  std::unordered_map<const Member*, const Decision*> decided;
  for (const api::Object& o : pods->items) {
    auto it = st.members.try_emplace(api::meta_of(*o).name()).first;
    Member& m = it->second;
    m.name = &it->first;
    Decision d = decide(st, pod_of(o));
    take(st, m, pod_of(o), d);
    if (d.serves) pending.emplace_back(&m, std::move(d));
  }
  decided.reserve(pending.size());
  for (const auto& [m, d] : pending) decided.emplace(m, &d);
  // The slices found keep the endpoints they list that still belong there.
  for (const api::Object& o : slices->items) {
    auto found = api::as<api::EndpointSlice>(o);
    auto s = std::make_unique<Slice>();
    s->id = st.next_id++;
    s->name = found->metadata().name();
    s->group = group_key(found->address_type(), found->ports());
    s->stored = found;
    Slice* sp = s.get();
    auto [git, inserted] = st.groups.try_emplace(s->group);
    if (inserted) {
      git->second.address_type = found->address_type();
      git->second.ports.assign(found->ports().begin(), found->ports().end());
    }
    git->second.slices.emplace(s->id, sp);
    st.by_name.emplace(s->name, sp);
    st.slices.emplace(s->id, std::move(s));
    mark(st, *sp);  // the store's no-op check tells whether it changed
    for (const api::Endpoint& e : found->endpoints()) {
      auto m = st.members.find(e.target_ref().name());
      if (first && ready_condition(e) && e.addresses_size() > 0) {
        st.changed.insert(e.target_ref().name());
        Traced& t = st.was[e.target_ref().name()];
        std::vector<std::string> eps = endpoint_strings(e.addresses(0), found->ports());
        t.endpoints.insert(t.endpoints.end(), eps.begin(), eps.end());
        std::sort(t.endpoints.begin(), t.endpoints.end());
        t.uid = e.target_ref().uid();
        t.node = e.node_name();
      }
      if (m == st.members.end() || m->second.slice != nullptr ||
          static_cast<int>(sp->members.size()) >= max_per_slice_) {
        continue;
      }
      auto d = decided.find(&m->second);
      if (d == decided.end() || d->second->group != sp->group) continue;
      Member& mm = m->second;
      sp->members.insert(&mm);
      mm.slice = sp;
    }
  }
  for (auto& [m, d] : pending) {
    if (m->slice == nullptr) place(st, *m, std::move(d));
  }
  for (const auto& [pod, m] : st.members) st.changed.insert(pod);
  st.built = true;
  return Status::ok();
}

std::shared_ptr<api::EndpointSlice> EndpointSliceController::render(
    const ServiceState& st, const Slice& s, const std::string& ns,
    const std::string& service_name) const {
  const auto& svc = static_cast<const api::Service&>(*st.service);
  const Group& g = st.groups.at(s.group);
  auto out = std::make_shared<api::EndpointSlice>();
  api::EndpointSlice& es = *out;
  if (s.stored != nullptr) {
    es.set_api_version(s.stored->api_version());
    es.set_kind(s.stored->kind());
    *es.mutable_metadata() = s.stored->metadata();
  } else {
    es.set_api_version(std::string(api::kind_info(api::Kind::kEndpointSlice).api_version));
    es.set_kind("EndpointSlice");
    es.mutable_metadata()->set_generate_name(service_name + "-");
    es.mutable_metadata()->set_namespace_(ns);
  }
  auto* labels = es.mutable_metadata()->mutable_labels();
  *labels = svc.metadata().labels();
  (*labels)[std::string(kServiceNameLabel)] = service_name;
  (*labels)[std::string(kManagedByLabel)] = std::string(kSliceControllerName);
  auto* owners = es.mutable_metadata()->mutable_owner_references();
  owners->Clear();
  api::OwnerReference* owner = owners->Add();
  owner->set_api_version("v1");
  owner->set_kind("Service");
  owner->set_name(service_name);
  owner->set_uid(svc.metadata().uid());
  owner->set_controller(true);
  owner->set_block_owner_deletion(true);
  es.set_address_type(g.address_type);
  es.mutable_endpoints()->Reserve(static_cast<int>(s.members.size()));
  for (const Member* m : s.members) {
    api::Endpoint& e = *es.add_endpoints();
    e.add_addresses(m->ip);
    auto* c = e.mutable_conditions();
    c->set_ready(m->ready);
    c->set_serving(m->serving);
    c->set_terminating(m->terminating);
    if (m->node != nullptr) e.set_node_name(*m->node);
    if (!m->hostname.empty()) e.set_hostname(m->hostname);
    auto* ref = e.mutable_target_ref();
    ref->set_kind("Pod");
    ref->set_namespace_(ns);
    ref->set_name(*m->name);
    ref->set_uid(m->uid);
  }
  es.mutable_ports()->Reserve(static_cast<int>(g.ports.size()));
  for (const api::EndpointPort& p : g.ports) *es.add_ports() = p;
  return out;
}

EndpointSliceController::Traced EndpointSliceController::traced_now(const ServiceState& st,
                                                                   const Member& m) const {
  Traced t;
  if (m.slice == nullptr || !m.ready) return t;
  t.endpoints = endpoint_strings(m.ip, st.groups.at(m.slice->group).ports);
  t.uid = m.uid;
  if (m.node != nullptr) t.node = *m.node;
  return t;
}

// The ready endpoints each changed pod lost, then those it gained, each
// list sorted by endpoint then pod: the same changes give the same trace.
void EndpointSliceController::trace_changes(ServiceState& st, const std::string& ns,
                                            const std::string& name) {
  struct Change {
    std::string endpoint, pod;
    const Traced* info;
  };
  std::vector<Change> removed, added;
  std::vector<Traced> now;  // the new state of each changed pod, kept for `added`
  now.reserve(st.changed.size());
  for (const std::string& pod : st.changed) {
    auto m = st.members.find(pod);
    Traced& t = now.emplace_back();
    if (m != st.members.end()) t = traced_now(st, m->second);
    auto old = st.was.find(pod);
    static const Traced kNone;
    const Traced& was = old != st.was.end() ? old->second : kNone;
    for (const std::string& e : was.endpoints) {
      if (!std::binary_search(t.endpoints.begin(), t.endpoints.end(), e)) {
        removed.push_back({e, pod, &was});
      }
    }
    for (const std::string& e : t.endpoints) {
      if (!std::binary_search(was.endpoints.begin(), was.endpoints.end(), e)) {
        added.push_back({e, pod, &t});
      }
    }
  }
  auto by_endpoint = [](const Change& a, const Change& b) {
    return std::tie(a.endpoint, a.pod) < std::tie(b.endpoint, b.pod);
  };
  std::sort(removed.begin(), removed.end(), by_endpoint);
  std::sort(added.begin(), added.end(), by_endpoint);
  auto record = [&](trace::EventType type, const Change& c) {
    trace::Record r;
    r.set_time_ns(to_nanos(ctx_.loop.now()));
    r.set_type(type);
    r.set_service(ns + "/" + name);
    r.set_endpoint(c.endpoint);
    r.set_namespace_(ns);
    r.set_name(c.pod);
    r.set_uid(c.info->uid);
    if (!c.info->node.empty()) r.set_node(c.info->node);
    ctx_.trace.record(r);
  };
  for (const Change& c : removed) record(trace::ENDPOINT_REMOVED, c);
  for (const Change& c : added) record(trace::ENDPOINT_ADDED, c);
  st.changed.clear();
  st.was.clear();
}

void EndpointSliceController::trace_all_gone(ServiceState& st, const std::string& ns,
                                              const std::string& name) {
  for (const auto& [pod, m] : st.members) note_change(st, pod, &m);
  st.members.clear();
  trace_changes(st, ns, name);
}

Status EndpointSliceController::remove_slices(const std::string& ns, const std::string& name,
                                              std::string_view manager) {
  ListOptions so;
  so.ns = ns;
  so.labels = selector_of({{kServiceNameLabel, name}, {kManagedByLabel, manager}});
  StatusOr<ListResult> slices = ctx_.store.list(api::Kind::kEndpointSlice, so);
  if (!slices.is_ok()) return slices.status();
  for (const api::Object& o : slices->items) {
    StatusOr<api::Object> removed =
        ctx_.store.remove(api::Kind::kEndpointSlice, ns, api::meta_of(*o).name());
    if (!removed.is_ok() && removed.status().code() != StatusCode::kNotFound) {
      return removed.status();
    }
    ++writes_;
  }
  return Status::ok();
}

Status EndpointSliceController::forget(const std::string& key, const std::string& ns,
                                       const std::string& name) {
  auto it = services_.find(key);
  if (it != services_.end()) {
    it->second.by_name.clear();  // their deletions are this controller's
    it->second.built = false;
  }
  FLOTILLA_RETURN_IF_ERROR(remove_slices(ns, name, kSliceControllerName));
  if (it != services_.end()) {
    trace_all_gone(it->second, ns, name);
    services_.erase(it);
  }
  return Status::ok();
}

// As upstream's mirroring controller: each subset's addresses (ready, then
// not ready) in slices of at most the slice size, with the subset's ports,
// one address type a slice; the slices found are rewritten in name order,
// the extra ones removed. User-written Endpoints are small: each sync
// recomputes them whole.
Status EndpointSliceController::mirror(const std::string& ns, const std::string& name) {
  StatusOr<api::Object> ep_got = ctx_.store.get(api::Kind::kEndpoints, ns, name);
  if (!ep_got.is_ok() && ep_got.status().code() != StatusCode::kNotFound) {
    return ep_got.status();
  }
  std::vector<api::EndpointSlice> want;
  if (ep_got.is_ok()) {
    const auto& ep = static_cast<const api::Endpoints&>(**ep_got);
    auto skip = ep.metadata().labels().find(std::string(kSkipMirrorLabel));
    const bool skipped = skip != ep.metadata().labels().end() && skip->second == "true";
    for (int si = 0; !skipped && si < ep.subsets_size(); ++si) {
      const api::EndpointSubset& subset = ep.subsets(si);
      std::map<std::string, api::EndpointSlice*> open;  // by address type: the slice being filled
      auto add = [&](const api::EndpointAddress& a, bool ready) {
        const std::string type = a.ip().find(':') != std::string::npos ? "IPv6" : "IPv4";
        api::EndpointSlice*& s = open[type];
        if (s == nullptr || s->endpoints_size() >= max_per_slice_) {
          s = &want.emplace_back();
          s->set_address_type(type);
          for (const api::EndpointPort& p : subset.ports()) *s->add_ports() = p;
        }
        api::Endpoint* e = s->add_endpoints();
        e->add_addresses(a.ip());
        e->mutable_conditions()->set_ready(ready);
        if (!a.hostname().empty()) e->set_hostname(a.hostname());
        if (a.has_node_name()) e->set_node_name(a.node_name());
        if (a.has_target_ref()) *e->mutable_target_ref() = a.target_ref();
      };
      // Pointers into `want` are kept only until its next growth: one
      // subset's slices are finished before the next subset starts.
      want.reserve(want.size() + static_cast<size_t>(subset.addresses_size() +
                                                     subset.not_ready_addresses_size()) + 2);
      for (const auto& a : subset.addresses()) add(a, true);
      for (const auto& a : subset.not_ready_addresses()) add(a, false);
    }
  }
  ListOptions so;
  so.ns = ns;
  so.labels = selector_of({{kServiceNameLabel, name}, {kManagedByLabel, kMirroringControllerName}});
  StatusOr<ListResult> found = ctx_.store.list(api::Kind::kEndpointSlice, so);
  if (!found.is_ok()) return found.status();
  for (size_t i = 0; i < want.size(); ++i) {
    auto out = std::make_shared<api::EndpointSlice>(std::move(want[i]));
    api::ObjectMeta* meta = out->mutable_metadata();
    if (i < found->items.size()) {
      *meta = api::meta_of(*found->items[i]);
    } else {
      meta->set_generate_name(name + "-");
      meta->set_namespace_(ns);
    }
    auto* labels = meta->mutable_labels();
    *labels = static_cast<const api::Endpoints&>(**ep_got).metadata().labels();
    (*labels)[std::string(kServiceNameLabel)] = name;
    (*labels)[std::string(kManagedByLabel)] = std::string(kMirroringControllerName);
    out->set_api_version(std::string(api::kind_info(api::Kind::kEndpointSlice).api_version));
    out->set_kind("EndpointSlice");
    const bool update = i < found->items.size();
    StatusOr<api::Object> written =
        update ? ctx_.store.update(std::move(out)) : ctx_.store.create(std::move(out));
    if (!written.is_ok()) return written.status();
    if (!update || *written != found->items[i]) ++writes_;
  }
  for (size_t i = want.size(); i < found->items.size(); ++i) {
    StatusOr<api::Object> removed = ctx_.store.remove(
        api::Kind::kEndpointSlice, ns, api::meta_of(*found->items[i]).name());
    if (!removed.is_ok() && removed.status().code() != StatusCode::kNotFound) {
      return removed.status();
    }
    ++writes_;
  }
  return Status::ok();
}

ReconcileResult EndpointSliceController::reconcile(const std::string& key) {
  auto slash = key.find('/');
  std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  StatusOr<api::Object> svc_got = ctx_.store.get(api::Kind::kService, ns, name);
  if (!svc_got.is_ok() && svc_got.status().code() != StatusCode::kNotFound) {
    return ReconcileResult::error(svc_got.status());
  }
  if (!svc_got.is_ok()) {  // gone: its slices go, mirrored ones too
    Status s = forget(key, ns, name);
    if (s.is_ok()) s = remove_slices(ns, name, kMirroringControllerName);
    return ReconcileResult::from(s);
  }
  if (api::as<api::Service>(*svc_got)->spec().selector().empty()) {
    // Its endpoints are the user's: the slices this controller made of them
    // go, and the user's Endpoints are mirrored.
    Status s = forget(key, ns, name);
    if (s.is_ok()) s = mirror(ns, name);
    return ReconcileResult::from(s);
  }
  auto svc = api::as<api::Service>(*svc_got);

  ServiceState& st = services_[key];
  if (!st.built || st.service != *svc_got) {
    st.built = false;
    st.service = *svc_got;
    st.selector = api::LabelSelector::from_map(svc->spec().selector());
    if (Status s = build(ns, name, st); !s.is_ok()) return ReconcileResult::error(s);
  }
  const std::vector<uint64_t> dirty(st.dirty.begin(), st.dirty.end());
  for (uint64_t id : dirty) {
    auto sit = st.slices.find(id);
    if (sit == st.slices.end()) {
      st.dirty.erase(id);
      continue;
    }
    Slice& s = *sit->second;
    if (s.members.empty()) {  // deleted, and forgotten
      if (!s.name.empty()) {
        st.by_name.erase(s.name);
        StatusOr<api::Object> removed = ctx_.store.remove(api::Kind::kEndpointSlice, ns, s.name);
        if (!removed.is_ok() && removed.status().code() != StatusCode::kNotFound) {
          st.built = false;
          return ReconcileResult::error(removed.status());
        }
        ++writes_;
      }
      auto git = st.groups.find(s.group);
      if (git != st.groups.end()) {
        git->second.slices.erase(id);
        if (git->second.slices.empty()) st.groups.erase(git);
      }
      st.dirty.erase(id);
      st.slices.erase(sit);
      continue;
    }
    std::shared_ptr<api::EndpointSlice> out = render(st, s, ns, name);
    StatusOr<api::Object> written =
        s.stored != nullptr ? ctx_.store.update(std::move(out)) : ctx_.store.create(std::move(out));
    if (!written.is_ok()) {
      // Someone changed or removed it meanwhile: built again from the store.
      st.built = false;
      if (written.status().code() == StatusCode::kConflict) return ReconcileResult::requeue();
      return ReconcileResult::error(written.status());
    }
    if (s.stored == nullptr || *written != s.stored) ++writes_;  // the same: a no-op
    if (s.name.empty()) {
      s.name = api::meta_of(**written).name();
      st.by_name.emplace(s.name, &s);
    }
    s.stored = api::as<api::EndpointSlice>(*written);
    s.dirty = false;
    st.dirty.erase(id);
  }
  trace_changes(st, ns, name);
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
