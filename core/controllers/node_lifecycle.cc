#include "core/controllers/node_lifecycle.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/api/pod_util.h"
#include "core/controllers/pod_deletion.h"

namespace flotilla::ctrl {
namespace {

constexpr std::string_view kUnknownReason = "NodeStatusUnknown";
constexpr std::string_view kStoppedPosting = "Kubelet stopped posting node status.";
constexpr std::string_view kNeverPosted = "Kubelet never posted node status.";

bool not_ready(const std::string& status) { return status == "False" || status == "Unknown"; }

ListOptions pods_on(const std::string& node) {
  ListOptions lo;
  lo.fields = *api::FieldSelector::parse("spec.nodeName=" + node);
  return lo;
}

}  // namespace

void TokenBucket::refill(TimePoint now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + to_seconds(now - last_) * rate_);
    last_ = now;
  }
}

bool TokenBucket::try_take(TimePoint now) {
  if (rate_ <= 0) return true;
  refill(now);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Duration TokenBucket::wait(TimePoint now) {
  if (rate_ <= 0) return Duration(0);
  refill(now);
  if (tokens_ >= 1.0) return Duration(0);
  return nanoseconds(static_cast<int64_t>(std::ceil((1.0 - tokens_) / rate_ * 1e9)));
}

NodeLifecycleController::NodeLifecycleController(ControllerContext ctx)
    : ctx_(ctx),
      recorder_(ctx.store, ctx.loop, std::string(kComponent)),
      eviction_limiter_(ctx.timing.eviction_rate_per_second, 1.0, ctx.loop.now()) {}

NodeLifecycleController::~NodeLifecycleController() {
  node_watch_.reset();
  lease_watch_.reset();
  pod_watch_.reset();
}

Status NodeLifecycleController::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> nodes =
      ctx_.store.watch(api::Kind::kNode, wo, [this](const WatchEvent& e) { on_node(e); });
  if (!nodes.is_ok()) return nodes.status();
  node_watch_ = std::move(*nodes);
  WatchOptions lo;
  lo.ns = std::string(kNodeLeaseNamespace);
  StatusOr<WatchHandle> leases =
      ctx_.store.watch(api::Kind::kLease, lo, [this](const WatchEvent& e) { on_lease(e); });
  if (!leases.is_ok()) return leases.status();
  lease_watch_ = std::move(*leases);
  StatusOr<WatchHandle> pods =
      ctx_.store.watch(api::Kind::kPod, {}, [this](const WatchEvent& e) { on_pod(e); });
  if (!pods.is_ok()) return pods.status();
  pod_watch_ = std::move(*pods);
  schedule_monitor();
  return Status::ok();
}

void NodeLifecycleController::schedule_monitor() {
  monitor_timer_ = ctx_.loop.run_after(ctx_.timing.node_monitor_period, [this] {
    monitor();
    schedule_monitor();
  });
}

std::string NodeLifecycleController::observed_ready(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() ? std::string() : it->second.ready;
}

bool NodeLifecycleController::evicted(const std::string& node) const {
  auto it = nodes_.find(node);
  return it != nodes_.end() && it->second.evicted;
}

void NodeLifecycleController::trace_node(trace::EventType type, const std::string& node,
                                         const std::string& reason,
                                         const std::string& message) {
  trace::Record r;
  r.set_time_ns(to_nanos(ctx_.loop.now()));
  r.set_type(type);
  r.set_node(node);
  r.set_reason(reason);
  r.set_message(message);
  ctx_.trace.record(r);
}

void NodeLifecycleController::on_node(const WatchEvent& e) {
  auto node = api::as<api::Node>(e.object);
  const std::string& name = node->metadata().name();
  const TimePoint now = ctx_.loop.now();
  if (e.type == WatchEventType::kDeleted) {
    // The node is gone for good: nothing will ever stop its pods.
    by_name_.erase(std::string_view(name), name_hash(name));
    nodes_.erase(name);
    remove_all_pods(name);
    return;
  }
  auto [it, inserted] = nodes_.try_emplace(name);
  NodeHealth& h = it->second;
  if (inserted) by_name_.insert(name_hash(name), it);
  const api::NodeCondition* ready = api::find_condition(node->status(), "Ready");
  int64_t heartbeat = ready != nullptr ? ready->last_heartbeat_time().nanos() : -1;
  if (inserted || heartbeat != h.heartbeat) {
    h.heartbeat = heartbeat;
    h.probe = now;
  }
  std::string status = ready != nullptr ? ready->status() : std::string();
  if (inserted) {
    h.ready = status;
    if (not_ready(status)) h.not_ready_since = now;
    return;
  }
  if (status == h.ready) return;
  if (status == "True") {
    became_ready(name, h, *node);
  } else if (not_ready(status)) {
    if (!not_ready(h.ready)) {
      became_not_ready(name, h, *node, status, ready->reason());
    } else {
      h.ready = status;  // False <-> Unknown: still not ready
      if (status == "False") h.not_ready_since = now;
    }
    set_taints(name, status);
  } else {
    h.ready = status;
  }
}

void NodeLifecycleController::on_lease(const WatchEvent& e) {
  if (e.type == WatchEventType::kDeleted) return;
  auto lease = api::as<api::Lease>(e.object);
  // A Lease of a node we have not seen yet: the Node's first event starts its
  // clock anyway.
  NodeHealth* h = find_node(lease->metadata().name());
  if (h == nullptr) return;
  int64_t renew = lease->spec().renew_time().nanos();
  if (renew != h->lease_renew) {
    h->lease_renew = renew;
    h->probe = ctx_.loop.now();
  }
}

int64_t NodeLifecycleController::stored_lease_renew(const std::string& name) {
  StatusOr<api::Object> got =
      ctx_.store.get(api::Kind::kLease, std::string(kNodeLeaseNamespace), name);
  return got.is_ok() ? api::as<api::Lease>(*got)->spec().renew_time().nanos() : -1;
}

void NodeLifecycleController::on_pod(const WatchEvent& e) {
  if (e.type == WatchEventType::kDeleted) return;
  auto pod = api::as<api::Pod>(e.object);
  if (!api::is_terminating(*pod) || pod->spec().node_name().empty()) return;
  auto it = nodes_.find(pod->spec().node_name());
  if (it == nodes_.end() || it->second.ready != "Unknown") return;
  it->second.next_force_check =
      std::min(it->second.next_force_check,
               time_from_nanos(pod->metadata().deletion_timestamp().nanos()));
}

void NodeLifecycleController::became_ready(const std::string& name, NodeHealth& h,
                                           const api::Node& node) {
  bool was_not_ready = not_ready(h.ready);
  h.ready = "True";
  h.eviction_queued = false;
  h.evicted = false;
  h.next_force_check = kTimeMax;
  eviction_queue_.erase(std::remove(eviction_queue_.begin(), eviction_queue_.end(), name),
                        eviction_queue_.end());
  set_taints(name, "True");
  if (was_not_ready) {
    trace_node(trace::NODE_READY, name, "NodeReady", "");
    recorder_.normal(node, "NodeReady", "Node " + name + " status is now: NodeReady");
  }
}

void NodeLifecycleController::became_not_ready(const std::string& name, NodeHealth& h,
                                               const api::Node& node,
                                               const std::string& status,
                                               const std::string& reason) {
  h.ready = status;
  h.not_ready_since = ctx_.loop.now();
  trace_node(trace::NODE_NOT_READY, name, reason, "");
  recorder_.normal(node, "NodeNotReady", "Node " + name + " status is now: NodeNotReady");
  mark_pods_not_ready(name, h);
}

bool NodeLifecycleController::mark_unknown(const std::string& name, NodeHealth& h) {
  const int64_t now = to_nanos(ctx_.loop.now());
  for (int attempt = 0; attempt < 3; ++attempt) {
    StatusOr<api::Object> got = ctx_.store.get(api::Kind::kNode, "", name);
    if (!got.is_ok()) return false;
    api::Node node = *api::as<api::Node>(*got);
    const api::NodeCondition* ready = api::find_condition(node.status(), "Ready");
    // A heartbeat we have not seen yet arrived: not stale after all.
    int64_t hb = ready != nullptr ? ready->last_heartbeat_time().nanos() : -1;
    int64_t renew = stored_lease_renew(name);
    if (hb != h.heartbeat || renew != h.lease_renew) {
      h.heartbeat = hb;
      h.lease_renew = renew;
      h.probe = ctx_.loop.now();
      return false;
    }
    std::string_view message = ready == nullptr ? kNeverPosted : kStoppedPosting;
    api::set_condition(node.mutable_status(), "Ready", "Unknown", now, kUnknownReason, message);
    for (auto& c : *node.mutable_status()->mutable_conditions()) {
      if (c.type() != "Ready") {
        api::set_condition(node.mutable_status(), c.type(), "Unknown", now, kUnknownReason,
                           message);
      }
    }
    StatusOr<api::Object> updated = ctx_.store.update(api::share(node));
    if (updated.is_ok()) {
      if (!not_ready(h.ready)) {
        became_not_ready(name, h, node, "Unknown", std::string(kUnknownReason));
      } else {
        h.ready = "Unknown";
        mark_pods_not_ready(name, h);  // also learns which pods are Terminating there
      }
      set_taints(name, "Unknown");
      return true;
    }
    if (updated.status().code() != StatusCode::kConflict) return false;
  }
  return false;
}

void NodeLifecycleController::set_taints(const std::string& name, std::string_view status) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    StatusOr<api::Object> got = ctx_.store.get(api::Kind::kNode, "", name);
    if (!got.is_ok()) return;
    api::Node node = *api::as<api::Node>(*got);
    std::string want;
    if (status == "Unknown") want = kTaintUnreachable;
    if (status == "False") want = kTaintNotReady;
    auto* taints = node.mutable_spec()->mutable_taints();
    bool changed = false;
    bool have = false;
    for (int i = taints->size() - 1; i >= 0; --i) {
      const std::string& key = taints->Get(i).key();
      if (key != kTaintUnreachable && key != kTaintNotReady) continue;
      if (key == want) {
        have = true;
        continue;
      }
      taints->DeleteSubrange(i, 1);
      changed = true;
    }
    if (!want.empty() && !have) {
      api::Taint* t = taints->Add();
      t->set_key(want);
      t->set_effect("NoSchedule");
      t->mutable_time_added()->set_nanos(to_nanos(ctx_.loop.now()));
      changed = true;
    }
    if (!changed) return;
    StatusOr<api::Object> updated = ctx_.store.update(api::share(std::move(node)));
    if (updated.is_ok() || updated.status().code() != StatusCode::kConflict) return;
  }
}

void NodeLifecycleController::mark_pods_not_ready(const std::string& name, NodeHealth& h) {
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, pods_on(name));
  if (!pods.is_ok()) return;
  const int64_t now = to_nanos(ctx_.loop.now());
  for (const api::Object& o : pods->items) {
    auto pod = api::as<api::Pod>(o);
    if (api::is_terminating(*pod)) {
      h.next_force_check = std::min(
          h.next_force_check, time_from_nanos(pod->metadata().deletion_timestamp().nanos()));
    }
    if (api::is_pod_finished(*pod)) continue;
    const api::PodCondition* c = api::find_condition(pod->status(), "Ready");
    if (c != nullptr && c->status() == "False") continue;
    bool was_ready = api::is_pod_ready(*pod);
    api::Pod copy = *pod;
    api::set_condition(copy.mutable_status(), "Ready", "False", now, "NodeNotReady",
                       "Node " + name + " is not ready");
    if (!ctx_.store.update(api::share(std::move(copy))).is_ok()) continue;
    if (was_ready) {
      trace::Record r;
      r.set_time_ns(now);
      r.set_type(trace::POD_NOT_READY);
      r.set_node(name);
      r.set_namespace_(pod->metadata().namespace_());
      r.set_name(pod->metadata().name());
      r.set_uid(pod->metadata().uid());
      r.set_reason("NodeNotReady");
      ctx_.trace.record(r);
    }
  }
}

void NodeLifecycleController::monitor() {
  const TimePoint now = ctx_.loop.now();
  const Duration grace = ctx_.timing.node_monitor_grace_period;
  const Duration eviction = ctx_.timing.pod_eviction_timeout;
  for (auto& [name, h] : nodes_) {
    if (h.ready != "Unknown" && now - h.probe > grace) mark_unknown(name, h);
    // Kubernetes (readyTransitionTimestamp + podEvictionTimeout): a node is
    // evicted pod_eviction_timeout after it turned NotReady or Unknown, so a
    // silent node loses its pods about grace + timeout after its last heartbeat.
    bool due = not_ready(h.ready) && now - h.not_ready_since > eviction;
    if (due && !h.eviction_queued && !h.evicted) {
      h.eviction_queued = true;
      eviction_queue_.push_back(name);
    }
    if (h.ready == "Unknown" && now >= h.next_force_check) force_sweep(name, h);
  }
  process_evictions();
}

void NodeLifecycleController::process_evictions() {
  const TimePoint now = ctx_.loop.now();
  while (!eviction_queue_.empty()) {
    auto it = nodes_.find(eviction_queue_.front());
    if (it == nodes_.end() || !it->second.eviction_queued) {
      eviction_queue_.pop_front();  // came back or went away meanwhile
      continue;
    }
    if (!eviction_limiter_.try_take(now)) break;
    std::string name = eviction_queue_.front();
    eviction_queue_.pop_front();
    evict(name, it->second);
  }
  if (!eviction_queue_.empty() && (eviction_timer_ == nullptr || !eviction_timer_->pending())) {
    eviction_timer_ =
        ctx_.loop.run_after(eviction_limiter_.wait(now), [this] { process_evictions(); });
  }
}

void NodeLifecycleController::evict(const std::string& name, NodeHealth& h) {
  h.eviction_queued = false;
  h.evicted = true;
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, pods_on(name));
  if (!pods.is_ok()) {
    h.evicted = false;  // try again on the next pass
    return;
  }
  const TimePoint now = ctx_.loop.now();
  for (const api::Object& o : pods->items) {
    auto pod = api::as<api::Pod>(o);
    if (api::is_terminating(*pod)) {
      h.next_force_check = std::min(
          h.next_force_check, time_from_nanos(pod->metadata().deletion_timestamp().nanos()));
      continue;
    }
    StatusOr<PodDeletion> d = delete_pod(ctx_.store, pod->metadata().namespace_(),
                                         pod->metadata().name(), now, std::nullopt);
    if (!d.is_ok()) continue;
    ++pods_evicted_;
    const auto& after = api::as<api::Pod>(d->pod)->metadata();
    if (d->outcome != PodDeletion::Outcome::kRemoved && after.has_deletion_timestamp()) {
      h.next_force_check =
          std::min(h.next_force_check, time_from_nanos(after.deletion_timestamp().nanos()));
    }
    trace::Record r;
    r.set_time_ns(to_nanos(now));
    r.set_type(trace::POD_EVICTED);
    r.set_node(name);
    r.set_namespace_(pod->metadata().namespace_());
    r.set_name(pod->metadata().name());
    r.set_uid(pod->metadata().uid());
    r.set_reason("NodeControllerEviction");
    ctx_.trace.record(r);
    recorder_.normal(*pod, "NodeControllerEviction",
                     "Marking for deletion Pod " + pod->metadata().name() + " from Node " + name);
  }
}

void NodeLifecycleController::force_sweep(const std::string& name, NodeHealth& h) {
  h.next_force_check = kTimeMax;
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, pods_on(name));
  if (!pods.is_ok()) {
    h.next_force_check = ctx_.loop.now();  // retry on the next pass
    return;
  }
  const TimePoint now = ctx_.loop.now();
  for (const api::Object& o : pods->items) {
    auto pod = api::as<api::Pod>(o);
    if (!api::is_terminating(*pod)) continue;
    TimePoint deadline = time_from_nanos(pod->metadata().deletion_timestamp().nanos());
    if (deadline > now) {
      h.next_force_check = std::min(h.next_force_check, deadline);
      continue;
    }
    DeleteOptions opts;
    opts.uid = pod->metadata().uid();
    if (!ctx_.store.remove(api::Kind::kPod, pod->metadata().namespace_(), pod->metadata().name(),
                           opts)
             .is_ok()) {
      continue;
    }
    ++pods_force_removed_;
    trace::Record r;
    r.set_time_ns(to_nanos(now));
    r.set_type(trace::POD_DELETED);
    r.set_node(name);
    r.set_namespace_(pod->metadata().namespace_());
    r.set_name(pod->metadata().name());
    r.set_uid(pod->metadata().uid());
    r.set_reason("NodeUnreachable");
    r.set_message("force-removed: grace period over on an unreachable node");
    ctx_.trace.record(r);
  }
}

void NodeLifecycleController::remove_all_pods(const std::string& name) {
  StatusOr<ListResult> pods = ctx_.store.list(api::Kind::kPod, pods_on(name));
  if (!pods.is_ok()) return;
  for (const api::Object& o : pods->items) {
    auto pod = api::as<api::Pod>(o);
    DeleteOptions opts;
    opts.uid = pod->metadata().uid();
    if (ctx_.store.remove(api::Kind::kPod, pod->metadata().namespace_(), pod->metadata().name(),
                          opts)
            .is_ok()) {
      ++pods_force_removed_;
      trace::Record r;
      r.set_time_ns(to_nanos(ctx_.loop.now()));
      r.set_type(trace::POD_DELETED);
      r.set_node(name);
      r.set_namespace_(pod->metadata().namespace_());
      r.set_name(pod->metadata().name());
      r.set_uid(pod->metadata().uid());
      r.set_reason("NodeDeleted");
      ctx_.trace.record(r);
    }
  }
}

}  // namespace flotilla::ctrl
