#include "core/controllers/garbage_collector.h"

#include <utility>

#include "core/api/pod_util.h"
#include "core/controllers/pod_deletion.h"

namespace flotilla::ctrl {

GarbageCollector::GarbageCollector(ControllerContext ctx, int max_per_pass)
    : ctx_(ctx), recorder_(ctx.store, ctx.loop, std::string(kComponent)) {
  WorkQueueOptions qo;
  qo.backoff_initial = ctx_.timing.controller_backoff_initial;
  qo.backoff_max = ctx_.timing.controller_backoff_max;
  qo.max_per_pass = max_per_pass;
  queue_ = std::make_unique<WorkQueue>(
      ctx_.loop, "garbage-collector", [this](const std::string& key) { return reconcile(key); },
      qo);
}

GarbageCollector::~GarbageCollector() {
  pod_watch_.reset();
  rc_watch_.reset();
  queue_->shut_down();
}

Status GarbageCollector::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> pods =
      ctx_.store.watch(api::Kind::kPod, wo, [this](const WatchEvent& e) { on_pod(e); });
  if (!pods.is_ok()) return pods.status();
  pod_watch_ = std::move(*pods);
  WatchOptions owners;  // only deletions matter: from now on
  StatusOr<WatchHandle> rcs = ctx_.store.watch(api::Kind::kReplicationController, owners,
                                               [this](const WatchEvent& e) { on_owner(e); });
  if (!rcs.is_ok()) return rcs.status();
  rc_watch_ = std::move(*rcs);
  return Status::ok();
}

namespace {

bool same_owners(const std::set<std::string>& uids,
                 const google::protobuf::RepeatedPtrField<api::OwnerReference>& refs) {
  if (static_cast<size_t>(refs.size()) != uids.size()) return false;
  for (const api::OwnerReference& ref : refs) {
    if (!uids.contains(ref.uid())) return false;
  }
  return true;
}

}  // namespace

void GarbageCollector::on_pod(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  const std::string key = api::namespaced_name(meta);
  auto old = owners_.find(key);
  // A change that leaves the owners as they were needs nothing (Kubernetes'
  // graph builder acts on owner-reference changes): most pod events are
  // status writes, and each used to take its key out of its owner's 15,000
  // dependents and put it back. An ADDED event is checked even so: after a
  // watch is made again its listing is how an owner deleted meanwhile shows.
  if (e.type == WatchEventType::kModified && old != owners_.end() &&
      same_owners(old->second, meta.owner_references())) {
    return;
  }
  if (old != owners_.end()) {
    for (const std::string& uid : old->second) {
      auto d = dependents_.find(uid);
      if (d == dependents_.end()) continue;
      d->second.erase(key);
      if (d->second.empty()) dependents_.erase(d);
    }
    owners_.erase(old);
  }
  if (e.type == WatchEventType::kDeleted || meta.owner_references().empty()) return;
  std::set<std::string> uids;
  for (const auto& ref : meta.owner_references()) {
    uids.insert(ref.uid());
    dependents_[ref.uid()].insert(key);
  }
  owners_[key] = std::move(uids);
  // Added, or its owners changed: is every owner still there? Pods already
  // terminating are on their way out and need nothing more.
  if (!api::is_terminating(*api::as<api::Pod>(e.object))) queue_->add(key);
}

void GarbageCollector::on_owner(const WatchEvent& e) {
  if (e.type != WatchEventType::kDeleted) return;
  auto d = dependents_.find(api::meta_of(*e.object).uid());
  if (d == dependents_.end()) return;
  for (const std::string& key : d->second) queue_->add(key);
}

ReconcileResult GarbageCollector::reconcile(const std::string& key) {
  auto slash = key.find('/');
  std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  StatusOr<api::Object> got = ctx_.store.get(api::Kind::kPod, ns, name);
  if (!got.is_ok()) {
    return got.status().code() == StatusCode::kNotFound ? ReconcileResult::ok()
                                                        : ReconcileResult::error(got.status());
  }
  auto pod = api::as<api::Pod>(*got);
  if (api::is_terminating(*pod) || pod->metadata().owner_references().empty()) {
    return ReconcileResult::ok();
  }
  std::vector<int> dangling;
  const auto& refs = pod->metadata().owner_references();
  for (int i = 0; i < refs.size(); ++i) {
    const api::OwnerReference& ref = refs.Get(i);
    const api::KindInfo* kind = api::kind_by_name(ref.kind());
    if (kind == nullptr) continue;  // an owner we cannot look up: assume it lives
    StatusOr<api::Object> owner =
        ctx_.store.get(kind->kind, kind->namespaced ? ns : std::string(), ref.name());
    if (owner.is_ok() && api::meta_of(**owner).uid() == ref.uid()) continue;
    if (!owner.is_ok() && owner.status().code() != StatusCode::kNotFound) {
      return ReconcileResult::error(owner.status());
    }
    dangling.push_back(i);
  }
  if (dangling.empty()) return ReconcileResult::ok();

  if (static_cast<int>(dangling.size()) == refs.size()) {
    StatusOr<PodDeletion> d = delete_pod(ctx_.store, ns, name, ctx_.loop.now(), std::nullopt);
    if (!d.is_ok()) {
      return d.status().code() == StatusCode::kNotFound ? ReconcileResult::ok()
                                                        : ReconcileResult::error(d.status());
    }
    ++deleted_;
    const api::OwnerReference* owner = api::controller_of(pod->metadata());
    recorder_.normal(*pod, "OwnerDeleted",
                     "Deleting pod: owner " +
                         (owner != nullptr ? owner->kind() + " " + owner->name()
                                           : std::string("references")) +
                         " no longer exists");
    return ReconcileResult::ok();
  }
  // Some owners live: drop only the dangling references.
  api::Pod copy = *pod;
  auto* mrefs = copy.mutable_metadata()->mutable_owner_references();
  for (auto it = dangling.rbegin(); it != dangling.rend(); ++it) mrefs->DeleteSubrange(*it, 1);
  StatusOr<api::Object> updated = ctx_.store.update(api::share(std::move(copy)));
  if (!updated.is_ok() && updated.status().code() != StatusCode::kNotFound) {
    return ReconcileResult::error(updated.status());
  }
  return ReconcileResult::ok();
}

}  // namespace flotilla::ctrl
