// EventRecorder: Event objects in the store, repeats folded into one Event.
#include "core/controllers/event_recorder.h"

#include <algorithm>
#include <string>

#include "tests/core/controllers/harness.h"

namespace flotilla::ctrl {
namespace {

using testing::ControllerTest;

class EventRecorderTest : public ControllerTest {
 protected:
  // A kubelet's "Pulled" Event about `rc`, recorded once and then removed
  // from the store (the recorder still has it cached); returns it.
  api::Event pulled_then_removed(EventRecorder& rec, const api::Object& rc) {
    rec.normal(*rc, "Pulled", "image pulled");
    auto first = events("Pulled");
    EXPECT_EQ(first.size(), 1u);
    if (first.empty()) return {};
    EXPECT_EQ(first[0].source().host(), "node-1");
    EXPECT_TRUE(store_.remove(api::Kind::kEvent, "default", first[0].metadata().name()).is_ok());
    return first[0];
  }
};

TEST_F(EventRecorderTest, RepeatedIdenticalEventsIncrementCountOnOneEvent) {
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "replication-controller");
  rec.warning(*rc, "FailedCreate", "Error creating: quota");
  run_for(seconds(5));
  rec.warning(*rc, "FailedCreate", "Error creating: quota");
  run_for(seconds(5));
  rec.warning(*rc, "FailedCreate", "Error creating: quota");
  rec.normal(*rc, "SuccessfulCreate", "Created pod: web-abcde");

  auto failed = events("FailedCreate");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].count(), 3);
  EXPECT_EQ(failed[0].type(), "Warning");
  EXPECT_EQ(failed[0].first_timestamp().nanos(), 0);
  EXPECT_EQ(failed[0].last_timestamp().nanos(), to_nanos(seconds(10)));
  EXPECT_EQ(failed[0].involved_object().kind(), "ReplicationController");
  EXPECT_EQ(failed[0].involved_object().name(), "web");
  EXPECT_EQ(failed[0].involved_object().uid(), api::meta_of(*rc).uid());
  EXPECT_EQ(failed[0].source().component(), "replication-controller");
  EXPECT_EQ(failed[0].metadata().namespace_(), "default");
  auto created = events("SuccessfulCreate");
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].count(), 1);
  EXPECT_EQ(created[0].type(), "Normal");
}

TEST_F(EventRecorderTest, DifferentMessagesAreSeparateEventsEvenAtOneInstant) {
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "replication-controller");
  rec.normal(*rc, "SuccessfulCreate", "Created pod: web-1");
  rec.normal(*rc, "SuccessfulCreate", "Created pod: web-2");
  EXPECT_EQ(events("SuccessfulCreate").size(), 2u);
  EXPECT_EQ(rec.dropped(), 0u);
  // The second took the name "<rc>.<hex time>-1"; a repeat of it is found
  // again under that name and counted there.
  run_for(seconds(1));
  rec.normal(*rc, "SuccessfulCreate", "Created pod: web-2");
  auto all = events("SuccessfulCreate");
  ASSERT_EQ(all.size(), 2u);
  const std::string first = event_name("web", 0, 0);
  for (const auto& e : all) {
    const bool second = e.metadata().name() == event_name("web", 0, 1);
    EXPECT_TRUE(second || e.metadata().name() == first) << e.metadata().name();
    EXPECT_EQ(e.count(), second ? 2 : 1) << e.metadata().name();
  }
}

// client-go's aggregator: nine distinct messages about one object with one
// reason are nine Events; from the tenth on, within ten minutes of the last,
// one combined Event counts them and shows the latest message.
TEST_F(EventRecorderTest, SimilarEventsFromTheTenthOnAreCombinedIntoOne) {
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "replication-controller");
  for (int i = 1; i <= 12; ++i) {
    rec.normal(*rc, "SuccessfulCreate", "Created pod: web-" + std::to_string(i));
    run_for(seconds(1));
  }
  rec.normal(*rc, "SuccessfulCreate", "Created pod: web-3");  // a repeat: its own Event
  auto created = events("SuccessfulCreate");
  ASSERT_EQ(created.size(), 10u);
  int combined = 0;
  for (const api::Event& e : created) {
    if (e.message().starts_with(kEventCombinedPrefix)) {
      ++combined;
      EXPECT_EQ(e.message(), "(combined from similar events): Created pod: web-12");
      EXPECT_EQ(e.count(), 3);
      EXPECT_EQ(e.first_timestamp().nanos(), to_nanos(seconds(9)));
      EXPECT_EQ(e.last_timestamp().nanos(), to_nanos(seconds(11)));
    } else if (e.message() == "Created pod: web-3") {
      EXPECT_EQ(e.count(), 2);
    } else {
      EXPECT_EQ(e.count(), 1) << e.message();
    }
  }
  EXPECT_EQ(combined, 1);
  // Another reason, or another object, is counted apart.
  rec.normal(*rc, "SuccessfulDelete", "Deleted pod: web-1");
  EXPECT_EQ(events("SuccessfulDelete")[0].message(), "Deleted pod: web-1");
  // Ten quiet minutes start the count again.
  run_for(minutes(11));
  rec.normal(*rc, "SuccessfulCreate", "Created pod: web-13");
  created = events("SuccessfulCreate");
  ASSERT_EQ(created.size(), 11u);
  EXPECT_EQ(std::count_if(created.begin(), created.end(),
                          [](const api::Event& e) { return e.message() == "Created pod: web-13"; }),
            1);
}

TEST_F(EventRecorderTest, AnEventRemovedMeanwhileIsStartedAgain) {
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "kubelet", "node-1");
  pulled_then_removed(rec, rc);
  run_for(seconds(1));
  rec.normal(*rc, "Pulled", "image pulled");
  auto again = events("Pulled");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].count(), 1);
}

// The cache keeps a hash of the correlation key and the Event's name: the
// stored Event is checked before it is bumped, so another Event found under
// that name (here: one recreated with another reason) is left alone.
TEST_F(EventRecorderTest, AnotherEventUnderTheCachedNameIsNotBumped) {
  api::Object rc = create(make_rc("web", 1));
  EventRecorder rec(store_, sim_, "kubelet", "node-1");
  api::Event other = pulled_then_removed(rec, rc);
  const std::string name = other.metadata().name();
  ASSERT_FALSE(name.empty());
  other.mutable_metadata()->clear_resource_version();
  other.mutable_metadata()->clear_uid();
  other.set_reason("Created");
  ASSERT_TRUE(store_.create(api::share(std::move(other))).is_ok());
  run_for(seconds(1));
  rec.normal(*rc, "Pulled", "image pulled");
  auto pulled = events("Pulled");
  ASSERT_EQ(pulled.size(), 1u);
  EXPECT_NE(pulled[0].metadata().name(), name);
  EXPECT_EQ(pulled[0].count(), 1);
  auto created = events("Created");
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].count(), 1) << "not bumped as if it were the Pulled event";
}

TEST_F(EventRecorderTest, NodeEventsLiveInDefaultNamespace) {
  heartbeat("node-1");
  auto node = get<api::Node>("", "node-1");
  EventRecorder rec(store_, sim_, "node-controller");
  rec.normal(*node, "NodeNotReady", "Node node-1 status is now: NodeNotReady");
  auto e = events("NodeNotReady");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].metadata().namespace_(), "default");
  EXPECT_EQ(e[0].involved_object().kind(), "Node");
  EXPECT_EQ(e[0].involved_object().namespace_(), "");
}

}  // namespace
}  // namespace flotilla::ctrl
