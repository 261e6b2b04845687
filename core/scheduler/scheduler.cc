#include "core/scheduler/scheduler.h"

#include <algorithm>
#include <cstdio>

#include "core/scheduler/plugins.h"

namespace flotilla::sched {
namespace {

bool terminal(const api::Pod& pod) {
  return pod.status().phase() == "Succeeded" || pod.status().phase() == "Failed";
}

std::string hex(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Sets the PodScheduled condition; returns false when it already said so.
bool set_scheduled_condition(api::Pod& pod, const std::string& status, const std::string& reason,
                             const std::string& message, TimePoint now) {
  api::PodCondition* cond = nullptr;
  for (api::PodCondition& c : *pod.mutable_status()->mutable_conditions()) {
    if (c.type() == "PodScheduled") cond = &c;
  }
  if (cond != nullptr && cond->status() == status && cond->reason() == reason &&
      cond->message() == message) {
    return false;
  }
  if (cond == nullptr) {
    cond = pod.mutable_status()->add_conditions();
    cond->set_type("PodScheduled");
  }
  if (cond->status() != status) cond->mutable_last_transition_time()->set_nanos(to_nanos(now));
  cond->set_status(status);
  cond->set_reason(reason);
  cond->set_message(message);
  cond->mutable_last_probe_time()->set_nanos(0);
  return true;
}

}  // namespace

Scheduler::Scheduler(Store& store, EventLoop& loop, TraceSink& trace, SchedulerOptions options,
                     std::unique_ptr<Framework> framework)
    : store_(store),
      loop_(loop),
      trace_(trace),
      options_(std::move(options)),
      framework_(framework ? std::move(framework) : make_default_framework()),
      greedy_(*framework_, options_.placement),
      flow_(*framework_, options_.flow) {}

Scheduler::~Scheduler() { stop(); }

Status Scheduler::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> nodes =
      store_.watch(api::Kind::kNode, wo, [this](const WatchEvent& e) { on_node(e); });
  if (!nodes.is_ok()) return nodes.status().with_prefix("scheduler: watch nodes: ");
  StatusOr<WatchHandle> pods =
      store_.watch(api::Kind::kPod, wo, [this](const WatchEvent& e) { on_pod(e); });
  if (!pods.is_ok()) return pods.status().with_prefix("scheduler: watch pods: ");
  node_watch_ = std::move(nodes).value();
  pod_watch_ = std::move(pods).value();
  return Status::ok();
}

void Scheduler::stop() {
  node_watch_.reset();
  pod_watch_.reset();
  timer_.reset();
  cycle_.reset();
}

bool Scheduler::ours(const api::Pod& pod) const {
  const std::string& name = pod.spec().scheduler_name();
  if (name.empty()) return true;
  return std::find(options_.scheduler_names.begin(), options_.scheduler_names.end(), name) !=
         options_.scheduler_names.end();
}

void Scheduler::on_node(const WatchEvent& e) {
  auto node = api::as<api::Node>(e.object);
  const std::string& name = node->metadata().name();
  if (e.type == WatchEventType::kDeleted) {
    snapshot_.remove_node(name);
    return;
  }
  const NodeInfo* before = snapshot_.find_node(name);
  bool existed = before != nullptr && before->exists();
  bool could_fit = existed && before->ready && before->schedulable;
  Resources old_alloc = existed ? before->allocatable : Resources{};
  StatusOr<int> index = snapshot_.upsert_node(node);
  if (!index.is_ok()) return;  // an unparsable node stays as it was; validation should stop it
  const NodeInfo& after = snapshot_.node(*index);
  bool can_fit = after.ready && after.schedulable;
  if (can_fit && (!could_fit || !(after.allocatable == old_alloc))) on_cluster_change();
}

void Scheduler::on_pod(const WatchEvent& e) {
  auto pod = api::as<api::Pod>(e.object);
  const std::string& ns = pod->metadata().namespace_().empty() ? std::string("default")
                                                               : pod->metadata().namespace_();
  std::string key = ns + "/" + pod->metadata().name();
  if (e.type == WatchEventType::kDeleted) {
    pending_.erase(key);
    if (snapshot_.remove_pod(key)) on_cluster_change();
    return;
  }
  if (!pod->spec().node_name().empty()) {
    pending_.erase(key);
    if (terminal(*pod)) {
      if (snapshot_.remove_pod(key)) on_cluster_change();
      return;
    }
    const NodeInfo* at = snapshot_.node_of_pod(key);
    if (at != nullptr && at->name == pod->spec().node_name()) return;  // assumed already
    StatusOr<PodInfo> info = PodInfo::from_pod(pod, snapshot_.resource_names());
    if (!info.is_ok()) return;
    snapshot_.intern_spread_key(*info);
    snapshot_.add_pod(*info, pod->spec().node_name());
    return;
  }
  if (!ours(*pod) || pod->metadata().has_deletion_timestamp() || terminal(*pod)) {
    pending_.erase(key);
    return;
  }
  enqueue(std::move(pod));
}

void Scheduler::enqueue(std::shared_ptr<const api::Pod> pod) {
  StatusOr<PodInfo> info = PodInfo::from_pod(pod, snapshot_.resource_names());
  if (!info.is_ok()) {
    PodInfo bare;
    bare.ns = pod->metadata().namespace_().empty() ? "default" : pod->metadata().namespace_();
    bare.name = pod->metadata().name();
    bare.uid = pod->metadata().uid();
    emit_event(bare, "Warning", "FailedScheduling", info.status().message());
    return;
  }
  snapshot_.intern_spread_key(*info);
  auto it = pending_.find(info->key);
  if (it != pending_.end()) {
    it->second.info = std::move(info).value();  // a newer version of a queued pod
    return;
  }
  std::string key = info->key;
  Pending p;
  p.info = std::move(info).value();
  pending_.emplace(key, std::move(p));
  active_.push_back(key);
  arm_cycle();
}

void Scheduler::activate(const std::string& key) {
  auto it = pending_.find(key);
  if (it == pending_.end() || it->second.state == State::kActive) return;
  it->second.state = State::kActive;
  active_.push_back(key);
  arm_cycle();
}

void Scheduler::on_cluster_change() {
  const TimePoint now = loop_.now();
  std::vector<std::string> ready;
  for (auto& [key, p] : pending_) {
    if (p.state != State::kUnschedulable) continue;
    if (now >= p.backoff_until) {
      ready.push_back(key);
    } else {
      p.state = State::kBackoff;
      timers_.insert({p.backoff_until, key});
    }
  }
  ensure_ordered_active(ready);
  for (const std::string& key : ready) activate(key);
  arm_timer();
}

void Scheduler::ensure_ordered_active(std::vector<std::string>& keys) {
  // Higher priority first, then older pods, then by key: kube's queue order.
  std::stable_sort(keys.begin(), keys.end(), [this](const std::string& a, const std::string& b) {
    const PodInfo& x = pending_.at(a).info;
    const PodInfo& y = pending_.at(b).info;
    if (x.priority != y.priority) return x.priority > y.priority;
    return x.created < y.created;
  });
}

void Scheduler::arm_cycle() {
  if (cycle_ && cycle_->pending()) return;
  cycle_ = loop_.run_after(Duration::zero(), [this] { run_cycle(); });
}

void Scheduler::arm_timer() {
  if (timers_.empty()) return;
  TimePoint next = timers_.begin()->first;
  if (timer_ && timer_->pending() && timer_at_ <= next) return;
  timer_at_ = next;
  timer_ = loop_.run_at(next, [this] { on_timer(); });
}

void Scheduler::on_timer() {
  timer_at_ = kTimeMax;
  const TimePoint now = loop_.now();
  std::vector<std::string> ready;
  while (!timers_.empty() && timers_.begin()->first <= now) {
    std::string key = timers_.begin()->second;
    timers_.erase(timers_.begin());
    auto it = pending_.find(key);
    if (it == pending_.end()) continue;
    Pending& p = it->second;
    bool backoff_done = p.state == State::kBackoff && now >= p.backoff_until;
    bool flush = p.state == State::kUnschedulable &&
                 now >= p.unschedulable_since + options_.unschedulable_flush;
    if (flush && now < p.backoff_until) {
      // Flushed while still backing off: wait out the backoff first.
      p.state = State::kBackoff;
      timers_.insert({p.backoff_until, key});
      continue;
    }
    if (backoff_done || flush) ready.push_back(key);
  }
  ensure_ordered_active(ready);
  for (const std::string& key : ready) activate(key);
  arm_timer();
}

void Scheduler::run_cycle() {
  ++stats_.cycles;
  std::vector<std::string> keys;
  while (!active_.empty() && static_cast<int>(keys.size()) < options_.max_pods_per_cycle) {
    std::string key = std::move(active_.front());
    active_.pop_front();
    auto it = pending_.find(key);
    if (it == pending_.end() || it->second.state != State::kActive) continue;
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    keys.push_back(std::move(key));
  }
  ensure_ordered_active(keys);
  if (options_.mode == PlacementMode::kFlow) {
    schedule_flow(keys);
  } else {
    schedule_greedy(keys);
  }
  if (!active_.empty()) arm_cycle();
  arm_timer();
}

void Scheduler::schedule_greedy(std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    auto it = pending_.find(key);
    if (it == pending_.end()) continue;
    PlacementResult r = greedy_.place(it->second.info, snapshot_);
    if (!r.ok()) {
      failed(it->second, r.message);
      continue;
    }
    snapshot_.add_pod(it->second.info, snapshot_.node(r.node).name);  // assume
    bind(it->second, r.node);
  }
}

void Scheduler::schedule_flow(std::vector<std::string>& keys) {
  std::vector<PodInfo> batch;
  batch.reserve(keys.size());
  for (const std::string& key : keys) batch.push_back(pending_.at(key).info);
  BatchResult r = flow_.place(batch, snapshot_);  // assumes the placed pods
  for (size_t i = 0; i < keys.size(); ++i) {
    Pending& p = pending_.at(keys[i]);
    if (r.node[i] >= 0) {
      bind(p, r.node[i]);
    } else {
      failed(p, r.messages[i]);
    }
  }
}

bool Scheduler::bind(Pending& p, int node) {
  const std::string node_name = snapshot_.node(node).name;
  const std::string key = p.info.key;
  auto forget = [&] { snapshot_.remove_pod(key); };
  Status reserved = framework_->run_reserve(p.info, node_name);
  if (!reserved.is_ok()) {
    forget();
    failed(p, reserved.message());
    return false;
  }
  Status bound;
  if (framework_->has_bind()) {
    bound = framework_->run_bind(p.info, node_name);
  } else {
    std::shared_ptr<const api::Pod> current = p.info.pod;
    for (int attempt = 0; attempt < 2; ++attempt) {
      api::Pod copy = *current;
      copy.mutable_spec()->set_node_name(node_name);
      set_scheduled_condition(copy, "True", "", "", loop_.now());
      StatusOr<api::Object> written = store_.update(api::share(std::move(copy)));
      bound = written.status();
      if (bound.is_ok() || bound.code() != StatusCode::kConflict) break;
      ++stats_.bind_conflicts;
      // Someone else wrote the pod: retry once on the fresh copy if it still
      // wants a node from us.
      StatusOr<api::Object> fresh = store_.get(api::Kind::kPod, p.info.ns, p.info.name);
      if (!fresh.is_ok()) break;
      current = api::as<api::Pod>(*fresh);
      if (!current->spec().node_name().empty() || current->metadata().has_deletion_timestamp() ||
          current->metadata().uid() != p.info.uid) {
        break;
      }
    }
  }
  if (!bound.is_ok()) {
    framework_->run_unreserve(p.info, node_name);
    forget();
    if (bound.code() == StatusCode::kNotFound || bound.code() == StatusCode::kConflict) {
      pending_.erase(key);  // gone, or bound elsewhere: the watch will tell
      return false;
    }
    failed(p, "Binding rejected: " + bound.message());
    return false;
  }
  ++stats_.scheduled;
  const TimePoint now = loop_.now();
  trace::Record rec;
  rec.set_time_ns(to_nanos(now));
  rec.set_type(trace::POD_SCHEDULED);
  rec.set_node(node_name);
  rec.set_namespace_(p.info.ns);
  rec.set_name(p.info.name);
  rec.set_uid(p.info.uid);
  rec.set_latency_ns(to_nanos(now - p.info.created));
  trace_.record(rec);
  emit_event(p.info, "Normal", "Scheduled",
             "Successfully assigned " + p.info.key + " to " + node_name);
  pending_.erase(key);
  return true;
}

void Scheduler::failed(Pending& p, const std::string& message) {
  ++stats_.failed_attempts;
  const TimePoint now = loop_.now();
  ++p.attempts;
  Duration backoff = options_.initial_backoff;
  for (int i = 1; i < p.attempts && backoff < options_.max_backoff; ++i) backoff *= 2;
  backoff = std::min(backoff, options_.max_backoff);
  p.backoff_until = now + backoff;
  p.unschedulable_since = now;
  p.state = State::kUnschedulable;
  timers_.insert({now + options_.unschedulable_flush, p.info.key});

  trace::Record rec;
  rec.set_time_ns(to_nanos(now));
  rec.set_type(trace::POD_FAILED_SCHEDULING);
  rec.set_namespace_(p.info.ns);
  rec.set_name(p.info.name);
  rec.set_uid(p.info.uid);
  rec.set_reason("Unschedulable");
  rec.set_message(message);
  trace_.record(rec);
  emit_event(p.info, "Warning", "FailedScheduling", message);

  // Record the reason on the pod (PodScheduled=False), as kube does, only when it changed.
  if (p.info.pod) {
    api::Pod copy = *p.info.pod;
    if (set_scheduled_condition(copy, "False", "Unschedulable", message, now)) {
      StatusOr<api::Object> written = store_.update(api::share(std::move(copy)));
      if (written.is_ok()) p.info.pod = api::as<api::Pod>(*written);
    }
  }
}

void Scheduler::emit_event(const PodInfo& pod, const std::string& type, const std::string& reason,
                           const std::string& message) {
  if (!options_.emit_events) return;
  const TimePoint now = loop_.now();
  api::Event ev;
  ev.set_api_version("v1");
  ev.set_kind("Event");
  ev.mutable_metadata()->set_namespace_(pod.ns);
  ev.mutable_metadata()->set_name(pod.name + "." + hex(to_nanos(now)) + hex(++event_seq_));
  api::ObjectReference* ref = ev.mutable_involved_object();
  ref->set_kind("Pod");
  ref->set_api_version("v1");
  ref->set_namespace_(pod.ns);
  ref->set_name(pod.name);
  ref->set_uid(pod.uid);
  ev.set_reason(reason);
  ev.set_message(message);
  ev.set_type(type);
  ev.mutable_source()->set_component(options_.component);
  ev.mutable_first_timestamp()->set_nanos(to_nanos(now));
  ev.mutable_last_timestamp()->set_nanos(to_nanos(now));
  ev.set_count(1);
  ev.set_reporting_component(options_.component);
  (void)store_.create(api::share(std::move(ev)));  // events are best effort, as in kube
}

}  // namespace flotilla::sched
