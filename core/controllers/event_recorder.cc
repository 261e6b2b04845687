#include "core/controllers/event_recorder.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <utility>

namespace flotilla::ctrl {

api::ObjectReference reference_to(const google::protobuf::Message& object) {
  api::ObjectReference ref;
  const api::KindInfo* k = api::kind_of(object);
  if (k == nullptr) return ref;
  const api::ObjectMeta& meta = k->meta(object);
  ref.set_kind(std::string(k->name));
  ref.set_api_version("v1");
  if (k->namespaced) {
    ref.set_namespace_(meta.namespace_().empty() ? std::string(api::kDefaultNamespace)
                                                 : meta.namespace_());
  }
  ref.set_name(meta.name());
  ref.set_uid(meta.uid());
  return ref;
}

EventRecorder::EventRecorder(Store& store, EventLoop& loop, std::string component,
                             std::string host, size_t cache_size)
    : store_(store),
      loop_(loop),
      component_(std::move(component)),
      host_(std::move(host)),
      cache_size_(cache_size == 0 ? 1 : cache_size) {}

// Kubernetes names events "<object>.<hex nanoseconds>"; a suffix ("-1", ...)
// keeps two events about one object at one instant apart.
std::string event_name(std::string_view involved_name, int64_t created_ns, int attempt) {
  char hex[24];
  std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(created_ns));
  std::string name(involved_name);
  name += '.';
  name += hex;
  if (attempt > 0) name += "-" + std::to_string(attempt);
  return name;
}

api::Event new_event(const api::ObjectReference& involved, std::string_view type,
                     std::string_view reason, std::string message, std::string_view component,
                     std::string_view host, int64_t now_ns) {
  api::Event e;
  e.set_api_version("v1");
  e.set_kind("Event");
  e.mutable_metadata()->set_namespace_(involved.namespace_().empty()
                                           ? std::string(api::kDefaultNamespace)
                                           : involved.namespace_());
  *e.mutable_involved_object() = involved;
  e.set_reason(std::string(reason));
  e.set_message(std::move(message));
  e.set_type(std::string(type));
  e.mutable_source()->set_component(std::string(component));
  if (!host.empty()) e.mutable_source()->set_host(std::string(host));
  e.set_reporting_component(std::string(component));
  e.set_reporting_instance(std::string(host));
  e.mutable_first_timestamp()->set_nanos(now_ns);
  e.mutable_last_timestamp()->set_nanos(now_ns);
  e.set_count(1);
  return e;
}

bool EventRecorder::bump(const std::string& ns, const std::string& name,
                         const api::ObjectReference& involved, std::string_view type,
                         std::string_view reason, const std::string& message) {
  StatusOr<api::Object> got = store_.get(api::Kind::kEvent, ns, name);
  if (!got.is_ok()) return false;
  const api::Event& stored = *api::as<api::Event>(*got);
  const api::ObjectReference& ref = stored.involved_object();
  // The one the key was made of: the same object, source, type and reason,
  // and the same message (any combined message for a combined event).
  const bool combined = message.starts_with(kEventCombinedPrefix);
  if (ref.uid() != involved.uid() || ref.name() != involved.name() ||
      ref.kind() != involved.kind() || stored.type() != type || stored.reason() != reason ||
      stored.source().component() != component_ || stored.source().host() != host_ ||
      (combined ? !stored.message().starts_with(kEventCombinedPrefix)
                : stored.message() != message)) {
    return false;
  }
  api::Event e = stored;
  e.set_count(e.count() + 1);
  e.mutable_last_timestamp()->set_nanos(to_nanos(loop_.now()));
  e.set_message(message);  // a combined event shows the latest message
  return store_.update(api::share(std::move(e))).is_ok();
}

void EventRecorder::remember(uint64_t key, int64_t created_ns, int attempt) {
  auto it = cache_.find(key);
  if (it != cache_.end()) {
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  while (cache_.size() >= cache_size_ && !lru_.empty()) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(key);
  cache_.emplace(key, Cached{created_ns, attempt, lru_.begin()});
}

bool EventRecorder::aggregate(const std::string& aggregate_key, std::string_view message) {
  const TimePoint now = loop_.now();
  const uint64_t key = std::hash<std::string>()(aggregate_key);
  const uint64_t local = std::hash<std::string_view>()(message);
  auto it = similar_.find(key);
  if (it == similar_.end()) {
    while (similar_.size() >= cache_size_ && !similar_lru_.empty()) {
      similar_.erase(similar_lru_.back());
      similar_lru_.pop_back();
    }
    similar_lru_.push_front(key);
    it = similar_.emplace(key, Similar{{}, now, similar_lru_.begin()}).first;
  } else {
    similar_lru_.splice(similar_lru_.begin(), similar_lru_, it->second.lru);
  }
  Similar& s = it->second;
  if (now - s.last > kEventAggregateInterval) s.messages.clear();
  s.last = now;
  if (std::find(s.messages.begin(), s.messages.end(), local) == s.messages.end()) {
    s.messages.push_back(local);
  }
  if (s.messages.size() < kEventAggregateMaxSimilar) return false;
  s.messages.pop_back();  // client-go keeps the set one short of the limit
  return true;
}

void EventRecorder::event(const api::ObjectReference& involved, std::string_view type,
                          std::string_view reason, std::string message) {
  // Events about cluster-scoped objects (nodes) live in "default", as in Kubernetes.
  std::string ns =
      involved.namespace_().empty() ? std::string(api::kDefaultNamespace) : involved.namespace_();
  std::string key;
  for (std::string_view part : {std::string_view(involved.kind()), std::string_view(ns),
                                std::string_view(involved.name()), std::string_view(involved.uid()),
                                type, reason, std::string_view(component_),
                                std::string_view(host_)}) {
    key += part;
    key += '\x1f';
  }
  // A combined event is found again by the aggregate key alone; any other by
  // the aggregate key and its message.
  if (aggregate(key, message)) {
    message.insert(0, kEventCombinedPrefix);
  } else {
    key += message;
  }
  const uint64_t hash = std::hash<std::string>()(key);
  auto it = cache_.find(hash);
  if (it != cache_.end()) {
    if (bump(ns, event_name(involved.name(), it->second.created_ns, it->second.attempt),
             involved, type, reason, message)) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);  // most recent again
      return;
    }
    // The Event was removed or changed under us: start a new one.
  }

  int64_t now = to_nanos(loop_.now());
  api::Event e = new_event(involved, type, reason, std::move(message), component_, host_, now);
  for (int attempt = 0; attempt < 8; ++attempt) {
    e.mutable_metadata()->set_name(event_name(involved.name(), now, attempt));
    StatusOr<api::Object> created = store_.create(api::share(e));
    if (created.is_ok()) {
      remember(hash, now, attempt);
      return;
    }
    if (created.status().code() != StatusCode::kAlreadyExists) break;
  }
  ++dropped_;
}

}  // namespace flotilla::ctrl
