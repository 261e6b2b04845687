// Kubernetes Events for every component (scheduler, agent, controllers): a
// recorder writes Event objects into the store and, like client-go's
// correlator, folds a repeat of an identical event (same object, type, reason,
// message and source) into the existing Event by bumping its count and
// lastTimestamp instead of creating a new one; and, like its aggregator, from
// the tenth distinct message about one object with one reason within ten
// minutes records "(combined from similar events): <message>" on one Event.
#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/api/object.h"
#include "core/ports/event_loop.h"
#include "core/ports/store.h"

namespace flotilla::ctrl {

inline constexpr std::string_view kEventNormal = "Normal";
inline constexpr std::string_view kEventWarning = "Warning";
// client-go's EventAggregator defaults.
inline constexpr size_t kEventAggregateMaxSimilar = 10;
inline constexpr Duration kEventAggregateInterval = std::chrono::minutes(10);
inline constexpr std::string_view kEventCombinedPrefix = "(combined from similar events): ";

// A reference to any stored object (kind, namespace, name, uid).
api::ObjectReference reference_to(const google::protobuf::Message& object);

// An Event's name, as Kubernetes makes it: "<object>.<hex creation
// nanoseconds>", and "-<attempt>" after it when that name was taken.
std::string event_name(std::string_view involved_name, int64_t created_ns, int attempt);

// A new Event as a recorder writes it, before its name: in the involved
// object's namespace ("default" for cluster-scoped objects, as in
// Kubernetes), from `component` on `host`, count 1, first and last seen at
// `now_ns`.
api::Event new_event(const api::ObjectReference& involved, std::string_view type,
                     std::string_view reason, std::string message, std::string_view component,
                     std::string_view host, int64_t now_ns);

class EventRecorder {
 public:
  // `component` is the source ("replication-controller", "default-scheduler",
  // "kubelet"); `host` the node for per-node components. Store and loop must
  // outlive the recorder.
  EventRecorder(Store& store, EventLoop& loop, std::string component, std::string host = "",
                size_t cache_size = 4096);

  // Records an event about `involved`; type is kEventNormal or kEventWarning.
  // Never fails: an event the store rejects is dropped (events are best
  // effort, as in Kubernetes) and counted in dropped().
  void event(const api::ObjectReference& involved, std::string_view type,
             std::string_view reason, std::string message);
  void event(const google::protobuf::Message& involved, std::string_view type,
             std::string_view reason, std::string message) {
    event(reference_to(involved), type, reason, std::move(message));
  }
  void normal(const google::protobuf::Message& involved, std::string_view reason,
              std::string message) {
    event(involved, kEventNormal, reason, std::move(message));
  }
  void warning(const google::protobuf::Message& involved, std::string_view reason,
               std::string message) {
    event(involved, kEventWarning, reason, std::move(message));
  }

  const std::string& component() const { return component_; }
  uint64_t dropped() const { return dropped_; }

 private:
  // The Event an earlier event went into, in the namespace of the event.
  // Kept by a hash of the correlation key (a large simulation has thousands
  // of recorders of 4,096 entries each); bump() checks the stored Event really
  // is one with that key, so a hash collision only starts a new Event.
  // The Event's name is not kept but made again from the involved object's
  // name, the creation time and the attempt (see event_name): a large
  // simulation keeps hundreds of thousands of these.
  struct Cached {
    int64_t created_ns = 0;
    int attempt = 0;
    std::list<uint64_t>::iterator lru;
  };
  // The distinct messages (hashed) seen with one aggregate key: everything
  // but the message.
  struct Similar {
    std::vector<uint64_t> messages;
    TimePoint last{};
    std::list<uint64_t>::iterator lru;
  };
  bool bump(const std::string& ns, const std::string& name, const api::ObjectReference& involved,
            std::string_view type, std::string_view reason, const std::string& message);
  void remember(uint64_t key, int64_t created_ns, int attempt);
  // True when an event with `message` under `aggregate_key` is to be combined.
  bool aggregate(const std::string& aggregate_key, std::string_view message);

  Store& store_;
  EventLoop& loop_;
  std::string component_;
  std::string host_;
  size_t cache_size_;
  std::unordered_map<uint64_t, Cached> cache_;  // hash of the correlation key
  std::list<uint64_t> lru_;                     // keys of cache_, most recent first
  std::unordered_map<uint64_t, Similar> similar_;  // by hash of the aggregate key
  std::list<uint64_t> similar_lru_;       // most recent first
  uint64_t dropped_ = 0;
};

}  // namespace flotilla::ctrl
