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
    last_write_.erase(key);
    return;
  }
  TimePoint now = ctx_.loop.now();
  last_write_[key] = now;
  writes_.emplace_back(now, std::move(key));
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
  while (!writes_.empty() && writes_.front().first + ttl <= now) {
    auto [written, key] = std::move(writes_.front());
    writes_.pop_front();
    auto it = last_write_.find(key);
    if (it == last_write_.end() || it->second != written) continue;  // rewritten or gone
    last_write_.erase(it);
    size_t slash = key.find('/');
    Status s = ctx_.store.remove(api::Kind::kEvent, key.substr(0, slash), key.substr(slash + 1))
                   .status();
    if (s.is_ok()) ++expired_;
  }
  arm();
}

}  // namespace flotilla::ctrl
