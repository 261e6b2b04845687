#include "core/controllers/replication.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "core/api/labels.h"
#include "core/api/pod_util.h"
#include "core/controllers/pod_deletion.h"

namespace flotilla::ctrl {
namespace {

// Syncs of one RC put off in a row while its pod watch lags the store.
constexpr int kMaxDeferrals = 2;

using PodPtr = std::shared_ptr<const api::Pod>;

int phase_rank(const std::string& phase) {
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 0;  // Pending and anything else
}

int max_restarts(const api::Pod& pod) {
  int n = 0;
  for (const auto& cs : pod.status().container_statuses()) n = std::max(n, cs.restart_count());
  return n;
}

std::string pod_key(const api::ObjectMeta& m) { return api::namespaced_name(m); }

// The RC's selector; Kubernetes defaults an empty one to the template labels.
api::LabelSelector rc_selector(const api::ReplicationController& rc) {
  if (!rc.spec().selector().empty()) return api::LabelSelector::from_map(rc.spec().selector());
  return api::LabelSelector::from_map(rc.spec().template_().metadata().labels());
}

bool rc_has_selector(const api::ReplicationController& rc) {
  return !rc.spec().selector().empty() || !rc.spec().template_().metadata().labels().empty();
}

int desired_replicas(const api::ReplicationController& rc) {
  return rc.spec().has_replicas() ? std::max(0, rc.spec().replicas()) : 1;
}

bool fully_labeled(const api::Pod& pod, const api::ReplicationController& rc) {
  for (const auto& [k, v] : rc.spec().template_().metadata().labels()) {
    auto it = pod.metadata().labels().find(k);
    if (it == pod.metadata().labels().end() || it->second != v) return false;
  }
  return true;
}

bool labels_include(const api::Labels& labels, const api::Labels& want) {
  for (const auto& [k, v] : want) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

const api::Labels& selector_map(const api::ReplicationController& rc) {
  return !rc.spec().selector().empty() ? rc.spec().selector()
                                       : rc.spec().template_().metadata().labels();
}

bool same_status(const api::ReplicationControllerStatus& a,
                 const api::ReplicationControllerStatus& b) {
  return a.replicas() == b.replicas() && a.fully_labeled_replicas() == b.fully_labeled_replicas() &&
         a.ready_replicas() == b.ready_replicas() &&
         a.available_replicas() == b.available_replicas() &&
         a.observed_generation() == b.observed_generation();
}

}  // namespace

bool delete_before(const api::Pod& a, const api::Pod& b) {
  bool a_bound = !a.spec().node_name().empty(), b_bound = !b.spec().node_name().empty();
  if (a_bound != b_bound) return !a_bound;
  int pa = phase_rank(a.status().phase()), pb = phase_rank(b.status().phase());
  if (pa != pb) return pa < pb;
  bool ra = api::is_pod_ready(a), rb = api::is_pod_ready(b);
  if (ra != rb) return !ra;
  if (ra && rb) {
    int64_t ta = api::find_condition(a.status(), "Ready")->last_transition_time().nanos();
    int64_t tb = api::find_condition(b.status(), "Ready")->last_transition_time().nanos();
    if (ta != tb) return ta > tb;  // ready for less time first
  }
  int xa = max_restarts(a), xb = max_restarts(b);
  if (xa != xb) return xa > xb;
  int64_t ca = a.metadata().creation_timestamp().nanos();
  int64_t cb = b.metadata().creation_timestamp().nanos();
  if (ca != cb) return ca > cb;  // newer first
  return a.metadata().name() < b.metadata().name();
}

std::vector<int> slow_start_batches(int count) {
  std::vector<int> out;
  for (int batch = 1; count > 0; batch *= 2) {
    int size = std::min(batch, count);
    out.push_back(size);
    count -= size;
  }
  return out;
}

ReplicationManager::ReplicationManager(ControllerContext ctx, ReplicationOptions options)
    : ctx_(ctx),
      options_(options),
      recorder_(ctx.store, ctx.loop, std::string(kComponent)),
      expectations_(options.expectations_timeout) {
  WorkQueueOptions qo;
  qo.backoff_initial = ctx_.timing.controller_backoff_initial;
  qo.backoff_max = ctx_.timing.controller_backoff_max;
  qo.max_per_pass = options_.max_per_pass;
  queue_ = std::make_unique<WorkQueue>(
      ctx_.loop, "replication", [this](const std::string& key) { return reconcile(key); }, qo);
}

ReplicationManager::~ReplicationManager() {
  rc_watch_.reset();
  pod_watch_.reset();
  queue_->shut_down();
}

Status ReplicationManager::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> pods = ctx_.store.watch(api::Kind::kPod, wo,
                                                [this](const WatchEvent& e) { on_pod(e); });
  if (!pods.is_ok()) return pods.status();
  pod_watch_ = std::move(*pods);
  StatusOr<WatchHandle> rcs = ctx_.store.watch(api::Kind::kReplicationController, wo,
                                               [this](const WatchEvent& e) { on_rc(e); });
  if (!rcs.is_ok()) return rcs.status();
  rc_watch_ = std::move(*rcs);
  return Status::ok();
}

void ReplicationManager::on_rc(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  std::string key = pod_key(meta);
  if (e.type == WatchEventType::kDeleted) expectations_.erase(key);
  queue_->add(key);
}

void ReplicationManager::enqueue_matching(const std::string& ns, const api::Labels& labels) {
  ListOptions lo;
  lo.ns = ns;
  StatusOr<ListResult> rcs = ctx_.store.list(api::Kind::kReplicationController, lo);
  if (!rcs.is_ok()) return;
  for (const api::Object& o : rcs->items) {
    auto rc = api::as<api::ReplicationController>(o);
    if (rc_has_selector(*rc) && rc_selector(*rc).matches(labels)) {
      queue_->add(pod_key(rc->metadata()));
    }
  }
}

void ReplicationManager::on_pod(const WatchEvent& e) {
  pods_seen_rv_ = std::max(pods_seen_rv_, e.resource_version);
  auto pod = api::as<api::Pod>(e.object);
  const auto& meta = pod->metadata();
  const std::string key = pod_key(meta);
  const std::string ns = meta.namespace_().empty() ? std::string(api::kDefaultNamespace)
                                                   : meta.namespace_();
  auto rc_key = [&](const std::string& name) { return ns + "/" + name; };

  PodInfo now;
  if (const api::OwnerReference* ref = api::controller_of(meta)) {
    if (ref->kind() == "ReplicationController") {
      now.owner_name = ref->name();
      now.owner_uid = ref->uid();
    } else {
      now.other_controller_uid = ref->uid();
    }
  }
  now.labels = meta.labels();
  now.terminating = api::is_terminating(*pod);
  now.active = api::is_pod_active(*pod);
  now.ready = api::is_pod_ready(*pod);

  auto old_it = pods_.find(key);
  std::optional<PodInfo> old;
  if (old_it != pods_.end()) {
    old = std::move(old_it->second);
    count_pod(key, *old, -1);
  }

  // Keep the owner index; a pod that keeps its owner (every status write)
  // keeps its place among the owner's pods (15,000 of them at scale: two
  // searches of a set of strings per event, for nothing).
  const bool same_owner =
      old && e.type != WatchEventType::kDeleted && old->owner_uid == now.owner_uid;
  if (old && !old->owner_uid.empty() && !same_owner) {
    auto o = owned_.find(old->owner_uid);
    if (o != owned_.end()) {
      o->second.erase(key);
      if (o->second.empty()) owned_.erase(o);
    }
  }
  if (e.type == WatchEventType::kDeleted) {
    if (old_it != pods_.end()) pods_.erase(old_it);
  } else {
    if (!now.owner_uid.empty() && !same_owner) owned_[now.owner_uid].insert(key);
    count_pod(key, now, 1);
    if (old_it != pods_.end()) {
      old_it->second = now;
    } else {
      pods_.emplace(key, now);
    }
  }

  // Expectations: creations seen on ADDED, deletions when the pod goes away or
  // starts terminating.
  if (!now.owner_name.empty()) {
    std::string owner = rc_key(now.owner_name);
    if (e.type == WatchEventType::kAdded && !now.terminating) {
      StatusOr<api::Object> rc = ctx_.store.get(api::Kind::kReplicationController, ns,
                                                now.owner_name);
      if (rc.is_ok() && api::meta_of(**rc).uid() == now.owner_uid) {
        expectations_.creation_observed(owner);
      }
    }
    bool gone = e.type == WatchEventType::kDeleted || (now.terminating && (!old || !old->terminating));
    if (gone) expectations_.deletion_observed(owner, key);
    queue_->add_batched(owner, ctx_.timing.replication_updates_batch_period);
  } else {
    enqueue_matching(ns, now.labels);
  }
  if (old) {
    if (!old->owner_name.empty() && old->owner_name != now.owner_name) {
      expectations_.deletion_observed(rc_key(old->owner_name), key);
      queue_->add(rc_key(old->owner_name));
    }
    // An orphan whose labels changed may have stopped matching another RC,
    // which may now be short of pods only once it looks again.
    bool labels_changed = !api::same_labels(old->labels, now.labels);
    if (old->owner_name.empty() && (labels_changed || !now.owner_name.empty())) {
      enqueue_matching(ns, old->labels);
    }
  }
}

namespace {

// Adds `sign` times a pod's contribution to an RC's counts.
template <typename Counts, typename Info>
void classify(Counts& c, const std::string& key, const Info& info, int sign) {
  if (key.compare(0, c.ns_prefix.size(), c.ns_prefix) != 0 || !c.selector.matches(info.labels)) {
    c.irregular += sign;
    return;
  }
  if (!info.active) return;
  c.active += sign;
  if (labels_include(info.labels, c.template_labels)) c.fully_labeled += sign;
  if (info.ready) c.ready += sign;
}

}  // namespace

void ReplicationManager::count_pod(const std::string& key, const PodInfo& info, int sign) {
  if (!info.other_controller_uid.empty()) {
    auto [it, inserted] = other_controlled_.try_emplace(info.other_controller_uid, 0);
    it->second += sign;
    if (it->second == 0) other_controlled_.erase(it);
    return;
  }
  if (info.owner_uid.empty()) {
    if (info.terminating) return;
    if (sign > 0) {
      orphans_.insert(key);
    } else {
      orphans_.erase(key);
    }
    return;
  }
  auto it = counts_.find(info.owner_uid);
  if (it != counts_.end()) classify(it->second, key, info, sign);
}

const ReplicationManager::RcCounts& ReplicationManager::counts_for(
    const api::ReplicationController& rc, const std::string& key) {
  const auto& meta = rc.metadata();
  const std::string ns_prefix = key.substr(0, key.find('/') + 1);
  const api::Labels& sel = selector_map(rc);
  const api::Labels& tmpl = rc.spec().template_().metadata().labels();
  auto it = counts_.find(meta.uid());
  if (it != counts_.end() && it->second.ns_prefix == ns_prefix &&
      api::same_labels(it->second.selector_map, sel) &&
      api::same_labels(it->second.template_labels, tmpl)) {
    return it->second;
  }
  auto [kit, inserted] = counted_uid_.try_emplace(key, meta.uid());
  if (!inserted && kit->second != meta.uid()) {
    counts_.erase(kit->second);
    kit->second = meta.uid();
  }
  RcCounts c;
  c.ns_prefix = ns_prefix;
  c.selector_map = sel;
  c.selector = api::LabelSelector::from_map(sel);
  c.template_labels = tmpl;
  auto owned = owned_.find(meta.uid());
  if (owned != owned_.end()) {
    for (const std::string& pk : owned->second) classify(c, pk, pods_.at(pk), 1);
  }
  RcCounts& out = counts_[meta.uid()];
  out = std::move(c);
  return out;
}

std::optional<ReconcileResult> ReplicationManager::reconcile_from_counts(
    const api::ReplicationController& rc, const std::string& key, const std::string& ns,
    const std::string& name) {
  if (!options_.incremental) return std::nullopt;
  // The cache equals the store only when every pod change has been delivered.
  if (pods_seen_rv_ < ctx_.store.kind_resource_version(api::Kind::kPod)) return std::nullopt;
  // Availability after minReadySeconds depends on each pod's ready time.
  if (rc.spec().min_ready_seconds() > 0) return std::nullopt;
  const auto& meta = rc.metadata();
  if (other_controlled_.count(meta.uid()) > 0) return std::nullopt;
  const RcCounts& c = counts_for(rc, key);
  if (c.irregular > 0) return std::nullopt;  // pods to release
  const bool being_deleted = meta.has_deletion_timestamp();
  if (!being_deleted) {
    for (auto it = orphans_.lower_bound(c.ns_prefix);
         it != orphans_.end() && it->compare(0, c.ns_prefix.size(), c.ns_prefix) == 0; ++it) {
      if (c.selector.matches(pods_.at(*it).labels)) return std::nullopt;  // one to adopt
    }
  }
  const TimePoint now = ctx_.loop.now();
  const int desired = desired_replicas(rc);
  const bool manage = !being_deleted && expectations_.satisfied(key, now);
  const int active = static_cast<int>(c.active);
  if (manage && active > desired) return std::nullopt;  // victims need the pods
  const int fully = static_cast<int>(c.fully_labeled), ready = static_cast<int>(c.ready);
  ++syncs_from_counts_;

  Status error;
  if (manage && active < desired) {
    error = create_pods(rc, key, std::min(desired - active, options_.burst_replicas));
  }
  api::ReplicationControllerStatus status;
  status.set_replicas(active);
  status.set_fully_labeled_replicas(fully);
  status.set_ready_replicas(ready);
  status.set_available_replicas(ready);
  status.set_observed_generation(meta.generation());
  Status st = update_status(rc, status);
  if (!st.is_ok() && error.is_ok()) error = st;
  trace_counts(key, ns, name, meta.uid(), desired, ready);
  if (!error.is_ok()) return ReconcileResult::error(error);
  return ReconcileResult::ok();
}

void ReplicationManager::trace_counts(const std::string& key, const std::string& ns,
                                      const std::string& name, const std::string& uid,
                                      int64_t desired, int64_t ready) {
  auto counts = std::make_pair(desired, ready);
  auto traced = traced_.find(key);
  if (traced != traced_.end() && traced->second == counts) return;
  traced_[key] = counts;
  trace::Record r;
  r.set_time_ns(to_nanos(ctx_.loop.now()));
  r.set_type(trace::REPLICAS_CHANGED);
  r.set_namespace_(ns);
  r.set_name(name);
  r.set_uid(uid);
  r.set_value(counts.first);
  r.set_value2(counts.second);
  ctx_.trace.record(r);
}

Status ReplicationManager::create_pods(const api::ReplicationController& rc,
                                       const std::string& key, int count) {
  const auto& meta = rc.metadata();
  expectations_.expect_creations(key, count, ctx_.loop.now());
  Status first_error;
  int remaining = count;
  for (int batch : slow_start_batches(count)) {
    bool failed = false;
    for (int i = 0; i < batch; ++i) {
      api::Pod pod;
      pod.set_api_version("v1");
      pod.set_kind("Pod");
      auto* pm = pod.mutable_metadata();
      pm->set_generate_name(meta.name() + "-");
      pm->set_namespace_(meta.namespace_());
      *pm->mutable_labels() = rc.spec().template_().metadata().labels();
      *pm->mutable_annotations() = rc.spec().template_().metadata().annotations();
      auto* ref = pm->add_owner_references();
      ref->set_api_version("v1");
      ref->set_kind("ReplicationController");
      ref->set_name(meta.name());
      ref->set_uid(meta.uid());
      ref->set_controller(true);
      ref->set_block_owner_deletion(true);
      *pod.mutable_spec() = rc.spec().template_().spec();
      ++creations_attempted_;
      StatusOr<api::Object> created = ctx_.store.create(api::share(std::move(pod)));
      if (created.is_ok()) {
        recorder_.normal(rc, "SuccessfulCreate",
                         "Created pod: " + api::meta_of(**created).name());
      } else {
        expectations_.creation_observed(key);
        recorder_.warning(rc, "FailedCreate", "Error creating: " + created.status().message());
        if (first_error.is_ok()) first_error = created.status();
        failed = true;
      }
    }
    remaining -= batch;
    if (failed) break;
  }
  // Creations never attempted are never observed: stop expecting them.
  for (int i = 0; i < remaining; ++i) expectations_.creation_observed(key);
  return first_error;
}

Status ReplicationManager::delete_pods(const api::ReplicationController& rc,
                                       const std::string& key, std::vector<PodPtr> active,
                                       int count) {
  std::sort(active.begin(), active.end(),
            [](const PodPtr& a, const PodPtr& b) { return delete_before(*a, *b); });
  active.resize(static_cast<size_t>(count));
  std::set<std::string> keys;
  for (const PodPtr& p : active) keys.insert(pod_key(p->metadata()));
  expectations_.expect_deletions(key, keys, ctx_.loop.now());
  Status first_error;
  for (const PodPtr& p : active) {
    StatusOr<PodDeletion> d = delete_pod(ctx_.store, p->metadata().namespace_(),
                                         p->metadata().name(), ctx_.loop.now(), std::nullopt);
    if (d.is_ok() || d.status().code() == StatusCode::kNotFound) {
      if (!d.is_ok()) expectations_.deletion_observed(key, pod_key(p->metadata()));
      recorder_.normal(rc, "SuccessfulDelete", "Deleted pod: " + p->metadata().name());
    } else {
      expectations_.deletion_observed(key, pod_key(p->metadata()));
      recorder_.warning(rc, "FailedDelete",
                        "Error deleting: " + d.status().message());
      if (first_error.is_ok()) first_error = d.status();
    }
  }
  return first_error;
}

Status ReplicationManager::update_status(const api::ReplicationController& rc,
                                         const api::ReplicationControllerStatus& status) {
  api::ReplicationController current = rc;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (same_status(current.status(), status)) return Status::ok();
    api::ReplicationController copy = current;
    auto* s = copy.mutable_status();
    s->set_replicas(status.replicas());
    s->set_fully_labeled_replicas(status.fully_labeled_replicas());
    s->set_ready_replicas(status.ready_replicas());
    s->set_available_replicas(status.available_replicas());
    s->set_observed_generation(status.observed_generation());
    StatusOr<api::Object> updated = ctx_.store.update(api::share(std::move(copy)));
    if (updated.is_ok()) return Status::ok();
    if (updated.status().code() != StatusCode::kConflict) return updated.status();
    StatusOr<api::Object> fresh = ctx_.store.get(api::Kind::kReplicationController,
                                                 rc.metadata().namespace_(), rc.metadata().name());
    if (!fresh.is_ok()) return fresh.status();
    current = *api::as<api::ReplicationController>(*fresh);
    if (current.metadata().uid() != rc.metadata().uid()) return Status::ok();
  }
  return conflict_error("replicationcontrollers \"" + rc.metadata().name() +
                        "\": status update kept conflicting");
}

ReconcileResult ReplicationManager::reconcile(const std::string& key) {
  const TimePoint now = ctx_.loop.now();
  auto slash = key.find('/');
  std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  StatusOr<api::Object> got = ctx_.store.get(api::Kind::kReplicationController, ns, name);
  if (!got.is_ok()) {
    if (got.status().code() == StatusCode::kNotFound) {
      expectations_.erase(key);
      traced_.erase(key);
      deferred_.erase(key);
      auto counted = counted_uid_.find(key);
      if (counted != counted_uid_.end()) {
        counts_.erase(counted->second);
        counted_uid_.erase(counted);
      }
      return ReconcileResult::ok();  // dependents are the garbage collector's
    }
    return ReconcileResult::error(got.status());
  }
  auto rc = api::as<api::ReplicationController>(*got);
  const auto& meta = rc->metadata();
  if (!rc_has_selector(*rc)) return ReconcileResult::ok();  // validation's job to reject
  const api::LabelSelector selector = rc_selector(*rc);
  // The pod watch lags the store (writes made this instant, their events
  // still queued): sync again after them, when the cache is current and the
  // counts will do, instead of listing the store now. At most twice in a row.
  if (pods_seen_rv_ < ctx_.store.kind_resource_version(api::Kind::kPod)) {
    int& deferred = deferred_[key];
    if (deferred < kMaxDeferrals) {
      ++deferred;
      queue_->add(key);  // runs in a pass posted after the queued events
      return ReconcileResult::ok();
    }
  }
  deferred_.erase(key);
  if (auto done = reconcile_from_counts(*rc, key, ns, name)) return *done;
  const bool being_deleted = meta.has_deletion_timestamp();
  Status error;

  // Claim: adopt matching orphans, keep matching owned pods, release the rest.
  ListOptions lo;
  lo.ns = ns;
  lo.labels = selector;
  StatusOr<ListResult> listed = ctx_.store.list(api::Kind::kPod, lo);
  if (!listed.is_ok()) return ReconcileResult::error(listed.status());
  std::vector<PodPtr> owned;
  std::set<std::string> seen;
  for (const api::Object& o : listed->items) {
    auto pod = api::as<api::Pod>(o);
    seen.insert(pod_key(pod->metadata()));
    const api::OwnerReference* ref = api::controller_of(pod->metadata());
    if (ref != nullptr) {
      if (ref->uid() == meta.uid()) owned.push_back(pod);
      continue;
    }
    if (being_deleted || api::is_terminating(*pod)) continue;
    api::Pod copy = *pod;
    auto* r = copy.mutable_metadata()->add_owner_references();
    r->set_api_version("v1");
    r->set_kind("ReplicationController");
    r->set_name(meta.name());
    r->set_uid(meta.uid());
    r->set_controller(true);
    r->set_block_owner_deletion(true);
    StatusOr<api::Object> adopted = ctx_.store.update(api::share(std::move(copy)));
    if (adopted.is_ok()) {
      owned.push_back(api::as<api::Pod>(*adopted));
    } else if (adopted.status().code() != StatusCode::kNotFound && error.is_ok()) {
      error = adopted.status();
    }
  }
  auto owned_it = owned_.find(meta.uid());
  if (owned_it != owned_.end()) {
    std::set<std::string> stale = owned_it->second;  // copy: updates change the index later
    for (const std::string& pk : stale) {
      if (seen.count(pk) > 0) continue;
      auto s = pk.find('/');
      StatusOr<api::Object> p = ctx_.store.get(api::Kind::kPod, pk.substr(0, s), pk.substr(s + 1));
      if (!p.is_ok()) continue;
      auto pod = api::as<api::Pod>(*p);
      const api::OwnerReference* ref = api::controller_of(pod->metadata());
      if (ref == nullptr || ref->uid() != meta.uid()) continue;
      if (selector.matches(pod->metadata().labels())) continue;
      api::Pod copy = *pod;
      auto* refs = copy.mutable_metadata()->mutable_owner_references();
      for (int i = 0; i < refs->size(); ++i) {
        if (refs->Get(i).uid() == meta.uid()) {
          refs->DeleteSubrange(i, 1);
          break;
        }
      }
      StatusOr<api::Object> released = ctx_.store.update(api::share(std::move(copy)));
      if (!released.is_ok() && released.status().code() != StatusCode::kNotFound &&
          error.is_ok()) {
        error = released.status();
      }
    }
  }

  std::vector<PodPtr> active;
  for (const PodPtr& p : owned) {
    if (api::is_pod_active(*p)) active.push_back(p);
  }

  // Manage replicas, unless our own last changes are still unobserved.
  const int desired = desired_replicas(*rc);
  if (!being_deleted && expectations_.satisfied(key, now)) {
    int diff = static_cast<int>(active.size()) - desired;
    Status s;
    if (diff < 0) {
      s = create_pods(*rc, key, std::min(-diff, options_.burst_replicas));
    } else if (diff > 0) {
      s = delete_pods(*rc, key, active, std::min(diff, options_.burst_replicas));
    }
    if (!s.is_ok() && error.is_ok()) error = s;
  }

  // Status, from what was observed at the start of this pass.
  api::ReplicationControllerStatus status;
  int fully = 0, ready = 0, available = 0;
  Duration next_check = Duration::max();
  const Duration min_ready = seconds(rc->spec().min_ready_seconds());
  for (const PodPtr& p : active) {
    if (fully_labeled(*p, *rc)) ++fully;
    if (!api::is_pod_ready(*p)) continue;
    ++ready;
    TimePoint since = time_from_nanos(
        api::find_condition(p->status(), "Ready")->last_transition_time().nanos());
    if (min_ready <= Duration(0) || since + min_ready <= now) {
      ++available;
    } else {
      next_check = std::min(next_check, since + min_ready - now);
    }
  }
  status.set_replicas(static_cast<int32_t>(active.size()));
  status.set_fully_labeled_replicas(fully);
  status.set_ready_replicas(ready);
  status.set_available_replicas(available);
  status.set_observed_generation(meta.generation());
  Status st = update_status(*rc, status);
  if (!st.is_ok() && error.is_ok()) error = st;

  trace_counts(key, ns, name, meta.uid(), desired, ready);

  if (!error.is_ok()) return ReconcileResult::error(error);
  if (next_check != Duration::max()) return ReconcileResult::requeue_after(next_check);
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
