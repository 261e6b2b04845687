// EventTtlController: Events expire `event_ttl` after their last write, as
// kube-apiserver's --event-ttl makes them; a bump keeps an Event alive.
#include "core/controllers/event_ttl.h"

#include "core/controllers/event_recorder.h"
#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

using testing::ControllerTest;

class EventTtlTest : public ControllerTest {};

TEST_F(EventTtlTest, EventsExpireAfterTheTtlSinceTheirLastWrite) {
  timing_.event_ttl = minutes(10);
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "replication-controller");
  rec.normal(*rc, "Old", "recorded at 0");
  EventTtlController ttl(context());
  ASSERT_TRUE(ttl.start().is_ok());  // an Event stored before start counts from now
  run_for(minutes(4));
  rec.normal(*rc, "Bumped", "recorded at 4m");
  run_for(minutes(4));
  rec.normal(*rc, "Bumped", "recorded at 4m");  // count 2 at 8m: lives until 18m
  rec.normal(*rc, "Fresh", "recorded at 8m");

  run_for(minutes(2) + seconds(1));  // 10m01s
  EXPECT_TRUE(events("Old").empty());
  ASSERT_EQ(events("Bumped").size(), 1u);
  EXPECT_EQ(ttl.expired(), 1u);

  run_for(minutes(7));  // 17m01s
  EXPECT_EQ(events("Bumped").size(), 1u);
  EXPECT_EQ(events("Fresh").size(), 1u);
  run_for(minutes(1));  // 18m01s
  EXPECT_TRUE(events("Bumped").empty());
  EXPECT_TRUE(events("Fresh").empty());
  EXPECT_EQ(ttl.expired(), 3u);
  EXPECT_EQ(ttl.tracked(), 0u);
}

TEST_F(EventTtlTest, AnEventWrittenTwiceAtOneInstantExpiresOnce) {
  timing_.event_ttl = minutes(1);
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "replication-controller");
  EventTtlController ttl(context());
  ASSERT_TRUE(ttl.start().is_ok());
  rec.normal(*rc, "Twice", "same instant");
  rec.normal(*rc, "Twice", "same instant");
  run_for(seconds(1));
  ASSERT_EQ(events("Twice").size(), 1u);
  EXPECT_EQ(events("Twice")[0].count(), 2);
  EXPECT_EQ(ttl.tracked(), 1u);
  run_for(minutes(1));
  EXPECT_TRUE(events("Twice").empty());
  EXPECT_EQ(ttl.expired(), 1u);
  EXPECT_EQ(ttl.tracked(), 0u);
}

TEST_F(EventTtlTest, AnEventDeletedByHandIsForgottenAndZeroTtlKeepsEverything) {
  timing_.event_ttl = minutes(1);
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "replication-controller");
  {
    EventTtlController ttl(context());
    ASSERT_TRUE(ttl.start().is_ok());
    rec.normal(*rc, "Gone", "deleted by a user");
    auto gone = events("Gone");
    ASSERT_EQ(gone.size(), 1u);
    ASSERT_TRUE(store_.remove(api::Kind::kEvent, "default", gone[0].metadata().name()).is_ok());
    run_for(seconds(1));
    EXPECT_EQ(ttl.tracked(), 0u);
    run_for(minutes(2));
    EXPECT_EQ(ttl.expired(), 0u);
  }

  timing_.event_ttl = Duration(0);
  EventTtlController keep(context());
  ASSERT_TRUE(keep.start().is_ok());
  rec.normal(*rc, "Kept", "never expires");
  run_for(hours(24));
  EXPECT_EQ(events("Kept").size(), 1u);
  EXPECT_EQ(keep.expired(), 0u);
}

// A start-up's Events expire at one instant: deleted in passes, each pass's
// deletions reach the Event watchers before the next pass deletes more (so no
// watcher holds the last state of every expired Event at once).
TEST_F(EventTtlTest, EventsDueAtOneInstantExpireInPassesTheWatchersKeepUpWith) {
  timing_.event_ttl = minutes(1);
  EventTtlController ttl(context());
  ASSERT_TRUE(ttl.start().is_ok());
  const size_t n = 2 * EventTtlController::kMaxExpiredPerPass + 100;
  for (size_t i = 0; i < n; ++i) {
    api::Event e;
    e.mutable_metadata()->set_name("e" + std::to_string(i));
    e.mutable_metadata()->set_namespace_("default");
    e.set_reason("StartUp");
    create(e);
  }
  run_for(seconds(1));
  EXPECT_EQ(ttl.tracked(), n);
  std::vector<size_t> left_at_delivery;
  StatusOr<WatchHandle> w = store_.watch(api::Kind::kEvent, {}, [&](const WatchEvent& e) {
    if (e.type == WatchEventType::kDeleted) {
      left_at_delivery.push_back(store_.object_count(api::Kind::kEvent));
    }
  });
  ASSERT_TRUE(w.is_ok());
  run_for(minutes(1));
  EXPECT_EQ(ttl.expired(), n);
  EXPECT_TRUE(events("StartUp").empty());
  ASSERT_EQ(left_at_delivery.size(), n);
  // Delivered after the first pass, before the second: the second pass's
  // Events are still stored.
  const size_t per_pass = EventTtlController::kMaxExpiredPerPass;
  EXPECT_EQ(left_at_delivery.front(), n - per_pass);
  EXPECT_EQ(left_at_delivery[per_pass], n - 2 * per_pass);
  EXPECT_EQ(left_at_delivery.back(), 0u);
}

}  // namespace
}  // namespace flotilla::ctrl
