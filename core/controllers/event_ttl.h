// Event expiry, as kube-apiserver's --event-ttl does it: an Event object lives
// for `timing.event_ttl` after its last write (creation or a count bump) and is
// then deleted. Without it a long run's Events pile up without bound: every pod
// start records five of them. A ttl of 0 keeps Events forever.
#pragma once

#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/controllers/context.h"

namespace flotilla::ctrl {

class EventTtlController {
 public:
  explicit EventTtlController(ControllerContext ctx) : ctx_(std::move(ctx)) {}
  EventTtlController(const EventTtlController&) = delete;
  EventTtlController& operator=(const EventTtlController&) = delete;

  // Watches Events (those already stored count as written now).
  Status start();
  uint64_t expired() const { return expired_; }
  // Events deleted in one loop event at most. Those written at one instant
  // (a cluster's start-up: five per pod) expire at one instant too; each
  // deletion hands every Event watcher the whole last state, so in passes
  // of this many the watchers take them in before the next pass.
  static constexpr size_t kMaxExpiredPerPass = 500;
  size_t tracked() const { return events_.size() - deleted_; }

 private:
  void on_event(const WatchEvent& e);
  void arm();
  void expire();

  ControllerContext ctx_;
  WatchHandle watch_;
  TimerHandle timer_;
  TimePoint timer_at_{};
  struct Tracked {
    TimePoint last_write{};
    uint32_t queued = 0;   // entries of writes_ that point here
    bool deleted = false;  // gone from the store, kept while still queued
  };
  using Entry = std::unordered_map<std::string, Tracked>::value_type;
  // "ns/name" -> the Event's last write. writes_ points at these entries
  // (an unordered_map's nodes stay put), so each key is held once.
  std::unordered_map<std::string, Tracked> events_;
  size_t deleted_ = 0;
  // (write time, entry) in time order; stale entries (rewritten or deleted
  // Events) are skipped when they come up.
  std::deque<std::pair<TimePoint, Entry*>> writes_;
  uint64_t expired_ = 0;
};

}  // namespace flotilla::ctrl
