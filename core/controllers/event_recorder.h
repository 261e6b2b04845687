// Kubernetes Events for every component (scheduler, agent, controllers): a
// recorder writes Event objects into the store and, like client-go's
// correlator, folds a repeat of an identical event (same object, type, reason,
// message and source) into the existing Event by bumping its count and
// lastTimestamp instead of creating a new one.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <string_view>

#include "core/api/object.h"
#include "core/ports/event_loop.h"
#include "core/ports/store.h"

namespace flotilla::ctrl {

inline constexpr std::string_view kEventNormal = "Normal";
inline constexpr std::string_view kEventWarning = "Warning";

// A reference to any stored object (kind, namespace, name, uid).
api::ObjectReference reference_to(const google::protobuf::Message& object);

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
  struct Cached {
    std::string ns;
    std::string name;
    std::list<std::string>::iterator lru;
  };
  bool bump(const Cached& cached);
  void remember(const std::string& key, std::string ns, std::string name);

  Store& store_;
  EventLoop& loop_;
  std::string component_;
  std::string host_;
  size_t cache_size_;
  std::map<std::string, Cached> cache_;  // correlation key -> stored Event
  std::list<std::string> lru_;           // most recent first
  uint64_t dropped_ = 0;
};

}  // namespace flotilla::ctrl
