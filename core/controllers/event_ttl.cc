#include "core/controllers/event_ttl.h"

#include "core/api/object.h"

namespace flotilla::ctrl {

Status EventTtlController::start() {
  if (ctx_.timing.event_ttl <= Duration(0)) return Status::ok();
  WatchOptions wo;
  wo.send_initial_events = true;
  StatusOr<WatchHandle> w =
      ctx_.store.watch(api::Kind::kEvent, wo, [this](const WatchEvent& e) { on_event(e); });
  if (!w.is_ok()) return w.status();
  watch_ = std::move(*w);
  return Status::ok();
}

void EventTtlController::on_event(const WatchEvent& e) {
  const api::ObjectMeta& meta = api::meta_of(*e.object);
  std::string key = meta.namespace_() + "/" + meta.name();
  if (e.type == WatchEventType::kDeleted) {
    auto it = events_.find(key);
    if (it == events_.end()) return;
    if (it->second.queued == 0) {
      if (it->second.deleted) --deleted_;
      events_.erase(it);
    } else if (!it->second.deleted) {
      it->second.deleted = true;
      ++deleted_;
    }
    return;
  }
  TimePoint now = ctx_.loop.now();
  Entry& entry = *events_.try_emplace(std::move(key)).first;
  if (entry.second.deleted) {
    entry.second.deleted = false;
    --deleted_;
  }
  entry.second.last_write = now;
  ++entry.second.queued;
  writes_.emplace_back(now, &entry);
  arm();
}

void EventTtlController::arm() {
  if (writes_.empty()) return;
  TimePoint due = writes_.front().first + ctx_.timing.event_ttl;
  if (timer_ && timer_->pending() && timer_at_ <= due) return;
  timer_at_ = due;
  timer_ = ctx_.loop.run_at(due, [this] { expire(); });
}

void EventTtlController::expire() {
  TimePoint now = ctx_.loop.now();
  Duration ttl = ctx_.timing.event_ttl;
  size_t removed = 0;
  while (!writes_.empty() && writes_.front().first + ttl <= now) {
    if (removed == kMaxExpiredPerPass) {
      // The rest in a pass of its own, after the watch deliveries of these.
      timer_at_ = now;
      timer_ = ctx_.loop.run_after(Duration(0), [this] { expire(); });
      return;
    }
    auto [written, entry] = writes_.front();
    writes_.pop_front();
    Tracked& t = entry->second;
    --t.queued;
    if (t.deleted || t.last_write != written) {  // gone, or rewritten since
      if (t.queued == 0 && t.deleted) {
        --deleted_;
        events_.erase(entry->first);
      }
      continue;
    }
    std::string key = entry->first;
    if (t.queued == 0) {
      events_.erase(key);
    } else {  // written twice at one instant: the other entry is still queued
      t.deleted = true;
      ++deleted_;
    }
    size_t slash = key.find('/');
    ++removed;
    Status s = ctx_.store.remove(api::Kind::kEvent, key.substr(0, slash), key.substr(slash + 1))
                   .status();
    if (s.is_ok()) ++expired_;
  }
  arm();
}

}  // namespace flotilla::ctrl
