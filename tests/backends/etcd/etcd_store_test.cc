// EtcdStore against a real local etcd (LocalEtcd): objects as stored in etcd
// (key layout, protobuf values, resourceVersion = mod_revision), the same
// errors as the in-memory store, two stores on one prefix (another writer's
// changes reach the cache; a stale version conflicts), watches (resume from
// a version, expired versions are 410), a restart of the flotilla side
// keeping everything, and etcd itself going away and coming back.
#include "backends/etcd/etcd_store.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "core/api/validation.h"
#include "tests/backends/etcd/local_etcd.h"

namespace flotilla::etcd {
namespace {

using ::testing::HasSubstr;
using testing::LocalEtcd;

api::Pod pod(const std::string& name, const std::string& app = "web") {
  api::Pod p;
  p.mutable_metadata()->set_name(name);
  (*p.mutable_metadata()->mutable_labels())["app"] = app;
  auto* c = p.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("nginx:1.25");
  return p;
}

const api::Pod& as_pod(const api::Object& o) { return static_cast<const api::Pod&>(*o); }

class EtcdStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = testing::shared_etcd();
    ASSERT_NE(etcd_, nullptr);
    prefix_ = testing::unique_prefix();
    store_ = open();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<EtcdStore> open(int64_t history = 10000) {
    store::StoreOptions so;
    so.history_size = history;
    so.validator = [](const google::protobuf::Message& obj, const google::protobuf::Message* old) {
      return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
    };
    EtcdOptions eo;
    eo.endpoints = etcd_->endpoints();
    eo.prefix = prefix_;
    eo.timeout = std::chrono::seconds(10);
    auto s = EtcdStore::open(loop_, random_, so, eo);
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    return s.is_ok() ? std::move(*s) : nullptr;
  }

  // Runs the loop until `done` holds (watch deliveries), at most 10 s.
  bool run_until(const std::function<bool()>& done) {
    return loop_.run_until(done, std::chrono::seconds(10));
  }

  int64_t rv_of(const api::Object& o) { return std::stoll(api::meta_of(*o).resource_version()); }

  LocalEtcd* etcd_ = nullptr;
  std::string prefix_;
  live::AsioEventLoop loop_;
  apiserver::SplitMix64Stream random_{7};
  std::unique_ptr<EtcdStore> store_;
};

TEST(EtcdEndpoints, ParsesTheStoreFlag) {
  auto eps = parse_endpoints("etcd://10.0.0.1:2379,etcd-2:32379,http://h3");
  ASSERT_TRUE(eps.is_ok()) << eps.status().message();
  ASSERT_EQ(eps->size(), 3u);
  EXPECT_EQ((*eps)[0].str(), "10.0.0.1:2379");
  EXPECT_EQ((*eps)[1].str(), "etcd-2:32379");
  EXPECT_EQ((*eps)[2].str(), "h3:2379");
  EXPECT_FALSE(parse_endpoints("etcd://host:99999").is_ok());
  EXPECT_FALSE(parse_endpoints("etcd://a:1,,b:2").is_ok());
  EXPECT_FALSE(parse_endpoints("etcd://").is_ok());
}

TEST(EtcdBase64, RoundTripsEveryLength) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    auto back = base64_decode(base64_encode(bytes));
    ASSERT_TRUE(back.is_ok());
    EXPECT_EQ(*back, bytes);
    bytes += static_cast<char>(i * 37 + 200);
  }
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(prefix_end("/registry/"), "/registry0");
}

TEST_F(EtcdStoreTest, CreateStoresTheProtobufUnderTheKubernetesKeyWithEtcdsRevision) {
  auto created = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(created.is_ok()) << created.status().message();
  const api::ObjectMeta& meta = api::meta_of(**created);
  EXPECT_EQ(meta.namespace_(), "default");
  EXPECT_FALSE(meta.uid().empty());
  EXPECT_GT(meta.creation_timestamp().nanos(), 0);
  EXPECT_EQ(meta.generation(), 1);

  EXPECT_EQ(store_->key_for(api::Kind::kPod, "default", "web-1"), prefix_ + "pods/default/web-1");
  EtcdClient raw(etcd_->endpoints(), std::chrono::seconds(5));
  auto r = raw.range(prefix_ + "pods/default/web-1", "");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(std::to_string(r->kvs[0].mod_revision), meta.resource_version());
  api::Pod stored;
  ASSERT_TRUE(stored.ParseFromString(r->kvs[0].value));
  EXPECT_EQ(stored.metadata().uid(), meta.uid());
  EXPECT_EQ(stored.spec().containers(0).image(), "nginx:1.25");

  auto got = store_->get(api::Kind::kPod, "default", "web-1");
  ASSERT_TRUE(got.is_ok());
  EXPECT_EQ(api::meta_of(**got).resource_version(), meta.resource_version());
  EXPECT_EQ(store_->resource_version(), r->kvs[0].mod_revision);
}

TEST_F(EtcdStoreTest, ErrorsAreTheInMemoryStoresAndInvalidObjectsNeverReachEtcd) {
  ASSERT_TRUE(store_->create(api::share(pod("web-1"))).is_ok());
  auto again = store_->create(api::share(pod("web-1")));
  ASSERT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "pods \"web-1\" already exists");

  api::Pod bad = pod("Bad_Name");
  auto invalid = store_->create(api::share(bad));
  EXPECT_EQ(invalid.status().code(), StatusCode::kInvalid);
  EtcdClient raw(etcd_->endpoints(), std::chrono::seconds(5));
  auto r = raw.range(prefix_, prefix_end(prefix_));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->kvs.size(), 1u);  // only web-1

  EXPECT_EQ(store_->get(api::Kind::kPod, "default", "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->remove(api::Kind::kPod, "default", "nope").status().code(),
            StatusCode::kNotFound);

  api::Pod gen;
  gen.mutable_metadata()->set_generate_name("job-");
  *gen.mutable_spec() = pod("x").spec();
  auto g = store_->create(api::share(gen));
  ASSERT_TRUE(g.is_ok()) << g.status().message();
  EXPECT_THAT(api::meta_of(**g).name(), ::testing::StartsWith("job-"));
  EXPECT_EQ(api::meta_of(**g).name().size(), 9u);
}

TEST_F(EtcdStoreTest, UpdateChecksTheVersionAndKeepsIdentity) {
  auto created = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(created.is_ok());
  api::Pod p = as_pod(*created);
  p.mutable_spec()->mutable_containers(0)->set_image("nginx:1.26");
  auto updated = store_->update(api::share(p));
  ASSERT_TRUE(updated.is_ok()) << updated.status().message();
  EXPECT_GT(rv_of(*updated), rv_of(*created));
  EXPECT_EQ(as_pod(*updated).metadata().generation(), 2);
  EXPECT_EQ(as_pod(*updated).metadata().uid(), p.metadata().uid());

  // The same update again, from the old version: a conflict, nothing written.
  p.mutable_spec()->mutable_containers(0)->set_image("nginx:1.27");
  auto stale = store_->update(api::share(p));
  ASSERT_EQ(stale.status().code(), StatusCode::kConflict);
  EXPECT_THAT(stale.status().message(), HasSubstr("the object has been modified"));
  EXPECT_EQ(as_pod(*store_->get(api::Kind::kPod, "default", "web-1")).spec().containers(0).image(),
            "nginx:1.26");

  // Unconditional: applies to the latest.
  p.mutable_metadata()->clear_resource_version();
  auto forced = store_->update(api::share(p));
  ASSERT_TRUE(forced.is_ok()) << forced.status().message();
  EXPECT_EQ(as_pod(*forced).spec().containers(0).image(), "nginx:1.27");

  // A no-op update writes nothing (same version back).
  int64_t before = store_->resource_version();
  auto same = store_->update(*forced);
  ASSERT_TRUE(same.is_ok());
  EXPECT_EQ(rv_of(*same), rv_of(*forced));
  EXPECT_EQ(store_->resource_version(), before);
}

TEST_F(EtcdStoreTest, DeleteHonoursPreconditionsAndReturnsTheLastState) {
  auto created = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(created.is_ok());
  DeleteOptions wrong_uid;
  wrong_uid.uid = "not-the-uid";
  EXPECT_EQ(store_->remove(api::Kind::kPod, "default", "web-1", wrong_uid).status().code(),
            StatusCode::kConflict);
  auto gone = store_->remove(api::Kind::kPod, "default", "web-1");
  ASSERT_TRUE(gone.is_ok()) << gone.status().message();
  EXPECT_EQ(api::meta_of(**gone).uid(), api::meta_of(**created).uid());
  EXPECT_EQ(store_->get(api::Kind::kPod, "default", "web-1").status().code(),
            StatusCode::kNotFound);
  EtcdClient raw(etcd_->endpoints(), std::chrono::seconds(5));
  EXPECT_TRUE(raw.range(prefix_ + "pods/default/web-1", "")->kvs.empty());
}

TEST_F(EtcdStoreTest, ListHonoursNamespaceSelectorsAndPages) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        store_->create(api::share(pod("web-" + std::to_string(i), i % 2 ? "a" : "b"))).is_ok());
  }
  api::Pod other = pod("web-9", "a");
  other.mutable_metadata()->set_namespace_("other");
  ASSERT_TRUE(store_->create(api::share(other)).is_ok());

  ListOptions by_label;
  by_label.labels = *api::LabelSelector::parse("app=a");
  auto a = store_->list(api::Kind::kPod, by_label);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->items.size(), 3u);  // web-1, web-3 and other/web-9

  ListOptions in_default;
  in_default.ns = "default";
  in_default.limit = 2;
  std::vector<std::string> names;
  for (int page = 0; page < 5; ++page) {
    auto r = store_->list(api::Kind::kPod, in_default);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    for (const auto& o : r->items) names.push_back(api::meta_of(*o).name());
    if (r->continue_token.empty()) break;
    in_default.continue_token = r->continue_token;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"web-0", "web-1", "web-2", "web-3", "web-4"}));
}

TEST_F(EtcdStoreTest, WatchDeliversChangesInOrderAndResumesFromAVersion) {
  std::vector<std::pair<WatchEventType, int64_t>> seen;
  auto w = store_->watch(api::Kind::kPod, {}, [&](const WatchEvent& e) {
    seen.emplace_back(e.type, e.resource_version);
  });
  ASSERT_TRUE(w.is_ok());
  auto c = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(c.is_ok());
  api::Pod p = as_pod(*c);
  (*p.mutable_metadata()->mutable_labels())["tier"] = "front";
  auto u = store_->update(api::share(p));
  ASSERT_TRUE(u.is_ok());
  auto d = store_->remove(api::Kind::kPod, "default", "web-1");
  ASSERT_TRUE(d.is_ok());
  ASSERT_TRUE(run_until([&] { return seen.size() >= 3; }));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_pair(WatchEventType::kAdded, rv_of(*c)));
  EXPECT_EQ(seen[1], std::make_pair(WatchEventType::kModified, rv_of(*u)));
  EXPECT_EQ(seen[2].first, WatchEventType::kDeleted);
  EXPECT_GT(seen[2].second, rv_of(*u));

  // From the create's version: the update and the delete again.
  std::vector<WatchEventType> resumed;
  WatchOptions from;
  from.resource_version = rv_of(*c);
  auto w2 =
      store_->watch(api::Kind::kPod, from, [&](const WatchEvent& e) { resumed.push_back(e.type); });
  ASSERT_TRUE(w2.is_ok());
  ASSERT_TRUE(run_until([&] { return resumed.size() >= 2; }));
  EXPECT_EQ(resumed,
            (std::vector<WatchEventType>{WatchEventType::kModified, WatchEventType::kDeleted}));
}

// Per kind, the version of the newest change of that kind the cache holds:
// another kind's writes leave it where it is.
TEST_F(EtcdStoreTest, EachKindHasTheVersionOfItsOwnNewestChange) {
  auto c = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE(run_until([&] { return store_->kind_resource_version(api::Kind::kPod) >= rv_of(*c); }));
  EXPECT_EQ(store_->kind_resource_version(api::Kind::kPod), rv_of(*c));
  api::Service svc;
  svc.mutable_metadata()->set_name("web");
  svc.mutable_metadata()->set_namespace_("default");
  svc.mutable_spec()->add_ports()->set_port(80);
  auto other = store_->create(api::share(svc));
  ASSERT_TRUE(other.is_ok()) << other.status().message();
  ASSERT_TRUE(run_until([&] { return store_->resource_version() >= rv_of(*other); }));
  EXPECT_EQ(store_->kind_resource_version(api::Kind::kPod), rv_of(*c));
  EXPECT_EQ(store_->kind_resource_version(api::Kind::kService), rv_of(*other));
}

TEST_F(EtcdStoreTest, AnotherWritersChangesReachTheCacheAndItsVersionsConflict) {
  std::unique_ptr<EtcdStore> other = open();
  ASSERT_NE(other, nullptr);
  auto mine = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(mine.is_ok());
  // The other control plane sees it through its watch...
  ASSERT_TRUE(run_until([&] { return other->get(api::Kind::kPod, "default", "web-1").is_ok(); }));
  std::vector<WatchEventType> events;
  auto w =
      store_->watch(api::Kind::kPod, {}, [&](const WatchEvent& e) { events.push_back(e.type); });
  ASSERT_TRUE(w.is_ok());
  // ...and changes it.
  api::Pod theirs = as_pod(*other->get(api::Kind::kPod, "default", "web-1"));
  theirs.mutable_spec()->mutable_containers(0)->set_image("nginx:theirs");
  ASSERT_TRUE(other->update(api::share(theirs)).is_ok());
  // Our update from the version we had is a conflict, whether or not our
  // cache has caught up yet.
  api::Pod ours = as_pod(*mine);
  ours.mutable_spec()->mutable_containers(0)->set_image("nginx:ours");
  auto stale = store_->update(api::share(ours));
  EXPECT_EQ(stale.status().code(), StatusCode::kConflict);
  ASSERT_TRUE(run_until([&] { return !events.empty(); }));
  EXPECT_EQ(events[0], WatchEventType::kModified);
  EXPECT_EQ(as_pod(*store_->get(api::Kind::kPod, "default", "web-1")).spec().containers(0).image(),
            "nginx:theirs");
  // A create of a name the other took is kAlreadyExists even before our
  // cache has seen it.
  ASSERT_TRUE(other->create(api::share(pod("web-2"))).is_ok());
  EXPECT_EQ(store_->create(api::share(pod("web-2"))).status().code(), StatusCode::kAlreadyExists);
}

TEST_F(EtcdStoreTest, ErrorsAreAsOfEtcdNotAsOfTheWatchsDelay) {
  std::unique_ptr<EtcdStore> other = open();
  ASSERT_NE(other, nullptr);
  // The other store creates a pod; at once (our watch may not have brought
  // it yet) we update it from the version it returned: not kNotFound.
  auto theirs = other->create(api::share(pod("web-1")));
  ASSERT_TRUE(theirs.is_ok());
  api::Pod p = as_pod(*theirs);
  p.mutable_spec()->mutable_containers(0)->set_image("nginx:ours");
  auto ours = store_->update(api::share(p));
  ASSERT_TRUE(ours.is_ok()) << ours.status().message();
  EXPECT_EQ(as_pod(*ours).spec().containers(0).image(), "nginx:ours");
  // They delete it; at once we delete it too: kNotFound, as etcd says.
  ASSERT_TRUE(run_until(
      [&] { return rv_of(*other->get(api::Kind::kPod, "default", "web-1")) == rv_of(*ours); }));
  ASSERT_TRUE(other->remove(api::Kind::kPod, "default", "web-1").is_ok());
  EXPECT_EQ(store_->remove(api::Kind::kPod, "default", "web-1").status().code(),
            StatusCode::kNotFound);
  // And we can create it again at once.
  EXPECT_TRUE(store_->create(api::share(pod("web-1"))).is_ok());
}

TEST_F(EtcdStoreTest, AVersionOlderThanTheHistoryIsGone) {
  store_.reset();
  store_ = open(/*history=*/2);
  ASSERT_NE(store_, nullptr);
  auto first = store_->create(api::share(pod("web-1")));
  ASSERT_TRUE(first.is_ok());
  for (int i = 2; i <= 4; ++i)
    ASSERT_TRUE(store_->create(api::share(pod("web-" + std::to_string(i)))).is_ok());
  WatchOptions old;
  old.resource_version = rv_of(*first);
  auto w = store_->watch(api::Kind::kPod, old, [](const WatchEvent&) {});
  EXPECT_EQ(w.status().code(), StatusCode::kGone);
}

TEST_F(EtcdStoreTest, ReopeningKeepsEverythingExactly) {
  auto a = store_->create(api::share(pod("web-1")));
  auto b = store_->create(api::share(pod("web-2")));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_TRUE(store_->remove(api::Kind::kPod, "default", "web-2").is_ok());
  int64_t rv = store_->resource_version();
  store_.reset();  // the flotilla side restarts

  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->resource_version(), rv);
  auto again = store_->get(api::Kind::kPod, "default", "web-1");
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(**again, **a));
  EXPECT_EQ(store_->get(api::Kind::kPod, "default", "web-2").status().code(),
            StatusCode::kNotFound);
  // A watch from before the restart is kGone; writes go on at later versions.
  WatchOptions old;
  old.resource_version = rv_of(*a);
  EXPECT_EQ(store_->watch(api::Kind::kPod, old, [](const WatchEvent&) {}).status().code(),
            StatusCode::kGone);
  auto c = store_->create(api::share(pod("web-3")));
  ASSERT_TRUE(c.is_ok());
  EXPECT_GT(rv_of(*c), rv);
}

TEST(EtcdStoreOpen, AnUnreachableEtcdIsAClearError) {
  live::AsioEventLoop loop;
  apiserver::SplitMix64Stream random(1);
  EtcdOptions eo;
  eo.endpoints = {Endpoint{"127.0.0.1", 1}};
  eo.timeout = std::chrono::seconds(2);
  auto s = EtcdStore::open(loop, random, {}, eo);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.status().message(), HasSubstr("127.0.0.1:1"));
}

TEST(LocalEtcdStart, AMissingEtcdIsAFailureThatSaysWhatToInstall) {
  ::setenv("FLOTILLA_ETCD", "/nonexistent/etcd", 1);
  auto e = LocalEtcd::start();
  ::unsetenv("FLOTILLA_ETCD");
  ASSERT_FALSE(e.is_ok());
  EXPECT_THAT(e.status().message(), HasSubstr("/nonexistent/etcd is not an executable"));
}

TEST(EtcdStoreRestart, WritesFailWhileEtcdIsDownAndResumeWhenItReturns) {
  auto etcd = LocalEtcd::start();
  ASSERT_TRUE(etcd.is_ok()) << etcd.status().message();
  live::AsioEventLoop loop;
  apiserver::SplitMix64Stream random(3);
  EtcdOptions eo;
  eo.endpoints = (*etcd)->endpoints();
  eo.timeout = std::chrono::seconds(3);
  auto store = EtcdStore::open(loop, random, {}, eo);
  ASSERT_TRUE(store.is_ok()) << store.status().message();
  auto other = EtcdStore::open(loop, random, {}, eo);
  ASSERT_TRUE(other.is_ok());
  ASSERT_TRUE((*store)->create(api::share(pod("before"))).is_ok());

  (*etcd)->stop();
  auto during = (*store)->create(api::share(pod("during")));
  ASSERT_EQ(during.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(during.status().message(), HasSubstr((*etcd)->endpoints()[0].str()));

  ASSERT_TRUE((*etcd)->restart().is_ok());
  // The first request after the outage may find the old connection closed;
  // it reconnects by itself.
  auto after = (*store)->create(api::share(pod("after")));
  ASSERT_TRUE(after.is_ok()) << after.status().message();
  // The other store's watch reconnected too and saw both.
  EXPECT_TRUE(
      loop.run_until([&] { return (*other)->get(api::Kind::kPod, "default", "after").is_ok(); },
                     std::chrono::seconds(10)));
  EXPECT_TRUE((*other)->get(api::Kind::kPod, "default", "before").is_ok());
  EXPECT_TRUE((*store)->health().is_ok());
}

}  // namespace
}  // namespace flotilla::etcd
