// InMemoryStore on the simulator's event loop: CRUD and defaults, optimistic
// concurrency, preconditions, validation, indexed lists and pagination, and
// watches (ordering, resumption, kGone, selector transitions, cancellation,
// no re-entrant delivery).
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "tests/core/store/forwarding_store.h"

namespace flotilla::store {
namespace {

using api::Kind;
using api::Pod;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

api::Object make_pod(const std::string& ns, const std::string& name,
                     const std::map<std::string, std::string>& labels = {},
                     const std::string& node = "") {
  Pod p;
  p.mutable_metadata()->set_namespace_(ns);
  p.mutable_metadata()->set_name(name);
  for (const auto& [k, v] : labels) (*p.mutable_metadata()->mutable_labels())[k] = v;
  p.mutable_spec()->set_node_name(node);
  p.mutable_spec()->add_containers()->set_name("c");
  return api::share(std::move(p));
}

const Pod& pod_of(const api::Object& o) { return static_cast<const Pod&>(*o); }

int64_t rv_of(const api::Object& o) { return std::stoll(api::meta_of(*o).resource_version()); }

// A modified copy of a stored pod.
template <typename Fn>
api::Object edit(const api::Object& o, Fn fn) {
  Pod p = pod_of(o);
  fn(p);
  return api::share(std::move(p));
}

std::vector<std::string> names(const std::vector<api::Object>& items) {
  std::vector<std::string> out;
  for (const auto& o : items)
    out.push_back(api::meta_of(*o).namespace_() + "/" + api::meta_of(*o).name());
  return out;
}

struct Seen {
  WatchEventType type;
  std::string name;
  int64_t rv;
  std::string label_app;
  friend bool operator==(const Seen&, const Seen&) = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  static const char* kTypes[] = {"ADDED", "MODIFIED", "DELETED"};
  return os << kTypes[static_cast<int>(s.type)] << " " << s.name << " @" << s.rv
            << " app=" << s.label_app;
}

// Every test runs three times: with objects kept parsed, with every kind
// packed (StoreOptions::packed_kinds: serialized between reads), and with
// every kind packed and compressed (StoreOptions::packed_dictionaries).
enum class Storage { kParsed, kPacked, kCompressed };

class StoreTest : public ::testing::TestWithParam<Storage> {
 protected:
  explicit StoreTest(StoreOptions options = {})
      : random_(sim::SimRandom(7).stream("store")),
        store_(std::make_unique<InMemoryStore>(loop_, *random_, with_packing(std::move(options)))) {}

  StoreOptions with_packing(StoreOptions o) const {
    if (GetParam() == Storage::kParsed) return o;
    // Any bytes make a dictionary; a pod's suit the pods most tests store.
    const std::string dictionary = make_pod("default", "web-1", {{"app", "web"}}, "n1")
                                       ->SerializeAsString();
    for (const api::KindInfo& k : api::all_kinds()) {
      o.packed_kinds.push_back(k.kind);
      if (GetParam() == Storage::kCompressed) o.packed_dictionaries.emplace_back(k.kind, dictionary);
    }
    return o;
  }

  InMemoryStore& store() { return *store_; }

  // The very snapshot for parsed kinds; an equal object parsed again for
  // packed ones.
  bool same_object(const api::Object& a, const api::Object& b) const {
    if (GetParam() == Storage::kParsed) return a.get() == b.get();
    return a != nullptr && b != nullptr && a.get() != b.get() &&
           google::protobuf::util::MessageDifferencer::Equals(*a, *b);
  }

  api::Object must_create(api::Object o) {
    StatusOr<api::Object> r = store().create(std::move(o));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }
  api::Object must_update(api::Object o) {
    StatusOr<api::Object> r = store().update(std::move(o));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }

  ListResult must_list(ListOptions o, Kind kind = Kind::kPod) {
    StatusOr<ListResult> r = store().list(kind, o);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : ListResult{};
  }

  // Opens a watch that appends what it sees to `out`.
  WatchHandle must_watch(WatchOptions o, std::vector<Seen>* out, Kind kind = Kind::kPod) {
    StatusOr<WatchHandle> w = store().watch(kind, o, [out](const WatchEvent& e) {
      const api::ObjectMeta& m = api::meta_of(*e.object);
      auto it = m.labels().find("app");
      out->push_back(
          Seen{e.type, m.name(), e.resource_version, it == m.labels().end() ? "" : it->second});
    });
    EXPECT_TRUE(w.is_ok()) << w.status().to_string();
    return w.is_ok() ? std::move(*w) : nullptr;
  }

  sim::Simulator loop_;
  std::unique_ptr<RandomStream> random_;
  std::unique_ptr<InMemoryStore> store_;
};

// -------------------------------------------------------------------- CRUD

TEST_P(StoreTest, CreateFillsDefaults) {
  loop_.run_for(seconds(5));
  api::Object stored = must_create(make_pod("", "web-1"));
  const Pod& p = pod_of(stored);
  EXPECT_EQ(p.metadata().namespace_(), "default");
  EXPECT_EQ(p.metadata().name(), "web-1");
  EXPECT_THAT(p.metadata().uid(),
              MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  EXPECT_EQ(p.metadata().generation(), 1);
  EXPECT_EQ(p.metadata().creation_timestamp().nanos(), to_nanos(seconds(5)));
  EXPECT_EQ(p.metadata().resource_version(), "1");
  EXPECT_EQ(p.kind(), "Pod");
  EXPECT_EQ(p.api_version(), "v1");
  EXPECT_EQ(store().resource_version(), 1);

  StatusOr<api::Object> got = store().get(Kind::kPod, "default", "web-1");
  ASSERT_TRUE(got.is_ok());
  EXPECT_TRUE(same_object(*got, stored)) << "get shares the stored snapshot";
  // The empty namespace means "default" on reads too.
  EXPECT_TRUE(store().get(Kind::kPod, "", "web-1").is_ok());
}

// A write takes over an object nobody else holds (no copy on the hot path)
// and copies one the caller still holds, which it never changes.
TEST_P(StoreTest, WritesCopyOnlyObjectsTheCallerStillHolds) {
  api::Object held = make_pod("default", "a");
  api::Object stored = must_create(held);
  EXPECT_NE(stored.get(), held.get());
  EXPECT_EQ(pod_of(held).metadata().uid(), "") << "the caller's object is left as it was";
  EXPECT_EQ(pod_of(held).metadata().resource_version(), "");

  api::Object sole = edit(stored, [](Pod& p) { p.mutable_status()->set_phase("Running"); });
  const google::protobuf::Message* address = sole.get();
  api::Object updated = must_update(std::move(sole));
  EXPECT_EQ(updated.get(), address) << "taken over, not copied";
  EXPECT_EQ(pod_of(updated).status().phase(), "Running");
  EXPECT_EQ(pod_of(updated).metadata().resource_version(), "2");

  api::Object again = edit(updated, [](Pod& p) { p.mutable_status()->set_phase("Failed"); });
  api::Object keep = again;
  api::Object second = must_update(std::move(again));
  EXPECT_NE(second.get(), keep.get());
  EXPECT_EQ(pod_of(keep).metadata().resource_version(), "2") << "held: not changed";
  EXPECT_EQ(pod_of(second).metadata().resource_version(), "3");
}

// A poll of one object: nothing while the stored version is the one the
// caller knows; the stored object once it changed; get()'s errors.
TEST_P(StoreTest, GetIfChangedAnswersNullWhileTheKnownVersionIsStored) {
  api::Node n;
  n.mutable_metadata()->set_name("node-1");
  api::Object known = must_create(api::share(n));
  must_create(make_pod("default", "other"));  // the global version moves on

  StatusOr<api::Object> same = store().get_if_changed(Kind::kNode, "", "node-1", known);
  ASSERT_TRUE(same.is_ok()) << same.status().to_string();
  EXPECT_EQ(*same, nullptr) << "still the known version";
  // What get() returned is known too (for a packed kind: an equal copy).
  StatusOr<api::Object> read = store().get(Kind::kNode, "", "node-1");
  ASSERT_TRUE(read.is_ok());
  EXPECT_EQ(*store().get_if_changed(Kind::kNode, "", "node-1", *read), nullptr);

  auto edit_node = [](const api::Object& o, auto fn) {
    api::Node node = static_cast<const api::Node&>(*o);
    fn(node);
    return api::share(std::move(node));
  };
  api::Object changed = must_update(edit_node(known, [](api::Node& node) {
    (*node.mutable_metadata()->mutable_labels())["zone"] = "a";
  }));
  StatusOr<api::Object> now = store().get_if_changed(Kind::kNode, "", "node-1", known);
  ASSERT_TRUE(now.is_ok());
  ASSERT_NE(*now, nullptr) << "changed since the known version";
  EXPECT_TRUE(same_object(*now, changed));
  EXPECT_EQ(api::meta_of(**now).labels().at("zone"), "a");
  EXPECT_EQ(*store().get_if_changed(Kind::kNode, "", "node-1", changed), nullptr);

  // Nothing known: the stored object, as get() gives it.
  StatusOr<api::Object> unknown = store().get_if_changed(Kind::kNode, "", "node-1", nullptr);
  ASSERT_TRUE(unknown.is_ok());
  EXPECT_TRUE(same_object(*unknown, changed));

  // An equal object from elsewhere at another version is not the stored one.
  api::Object stale = edit_node(changed, [](api::Node& node) {
    node.mutable_metadata()->set_resource_version("1");
  });
  EXPECT_NE(*store().get_if_changed(Kind::kNode, "", "node-1", stale), nullptr);

  ASSERT_TRUE(store().remove(Kind::kNode, "", "node-1").is_ok());
  StatusOr<api::Object> gone = store().get_if_changed(Kind::kNode, "", "node-1", changed);
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(gone.status().message(), "nodes \"node-1\" not found");
}

TEST_P(StoreTest, UidsDifferAndResourceVersionIsGlobalAcrossKinds) {
  api::Object a = must_create(make_pod("default", "a"));
  api::Node n;
  n.mutable_metadata()->set_name("node-1");
  api::Object node = must_create(api::share(n));
  api::Object b = must_create(make_pod("default", "b"));
  EXPECT_NE(api::meta_of(*a).uid(), api::meta_of(*b).uid());
  EXPECT_EQ(api::meta_of(*node).resource_version(), "2");
  EXPECT_EQ(api::meta_of(*node).namespace_(), "");
  EXPECT_EQ(api::meta_of(*b).resource_version(), "3");
  EXPECT_TRUE(store().get(Kind::kNode, "", "node-1").is_ok());
}

TEST_P(StoreTest, ErrorsCarryKubernetesMessages) {
  must_create(make_pod("default", "web-1"));
  StatusOr<api::Object> dup = store().create(make_pod("default", "web-1"));
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(dup.status().message(), "pods \"web-1\" already exists");
  // Same name in another namespace is another object.
  EXPECT_TRUE(store().create(make_pod("prod", "web-1")).is_ok());

  StatusOr<api::Object> missing = store().get(Kind::kPod, "default", "web-2");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "pods \"web-2\" not found");
  EXPECT_EQ(store().update(make_pod("default", "web-2")).status().message(),
            "pods \"web-2\" not found");
  EXPECT_EQ(store().remove(Kind::kPod, "default", "web-2").status().code(), StatusCode::kNotFound);

  StatusOr<api::Object> unnamed = store().create(make_pod("default", ""));
  EXPECT_EQ(unnamed.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(unnamed.status().message(), HasSubstr("name or generateName is required"));

  api::Node n;
  n.mutable_metadata()->set_name("n1");
  n.mutable_metadata()->set_namespace_("default");
  StatusOr<api::Object> scoped = store().create(api::share(n));
  EXPECT_EQ(scoped.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(scoped.status().message(), HasSubstr("metadata.namespace: Forbidden"));

  api::Object with_rv = edit(make_pod("default", "x"),
                             [](Pod& p) { p.mutable_metadata()->set_resource_version("4"); });
  EXPECT_EQ(store().create(with_rv).status().code(), StatusCode::kBadRequest);
  EXPECT_EQ(store().resource_version(), 2) << "failed writes do not bump the version";
}

TEST_P(StoreTest, GenerateNameAppendsAFiveCharacterSuffix) {
  api::Object tmpl = edit(make_pod("default", ""),
                          [](Pod& p) { p.mutable_metadata()->set_generate_name("web-"); });
  api::Object a = must_create(tmpl);
  api::Object b = must_create(tmpl);
  EXPECT_THAT(api::meta_of(*a).name(), MatchesRegex("web-[bcdfghjklmnpqrstvwxz2456789]{5}"));
  EXPECT_NE(api::meta_of(*a).name(), api::meta_of(*b).name());
}

class GenerateNameClashTest : public StoreTest {
 protected:
  static StoreOptions options() {
    StoreOptions o;
    auto calls = std::make_shared<int>(0);
    o.new_name_suffix = [calls] { return (*calls)++ < 2 ? std::string("aaaaa") : "bbbbb"; };
    return o;
  }
  GenerateNameClashTest() : StoreTest(options()) {}
};

TEST_P(GenerateNameClashTest, RetriesOnClash) {
  api::Object tmpl = edit(make_pod("default", ""),
                          [](Pod& p) { p.mutable_metadata()->set_generate_name("web-"); });
  EXPECT_EQ(api::meta_of(*must_create(tmpl)).name(), "web-aaaaa");
  EXPECT_EQ(api::meta_of(*must_create(tmpl)).name(), "web-bbbbb");
}

class EnforcedNamespacesTest : public StoreTest {
 protected:
  static StoreOptions options() {
    StoreOptions o;
    o.enforce_namespaces = true;
    return o;
  }
  EnforcedNamespacesTest() : StoreTest(options()) {}
};

TEST_P(EnforcedNamespacesTest, CreateNeedsTheNamespace) {
  StatusOr<api::Object> r = store().create(make_pod("prod", "web-1"));
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "namespaces \"prod\" not found");
  api::Namespace ns;
  ns.mutable_metadata()->set_name("prod");
  must_create(api::share(ns));
  EXPECT_TRUE(store().create(make_pod("prod", "web-1")).is_ok());
}

TEST_P(StoreTest, NamespacesAreNotEnforcedByDefault) {
  EXPECT_TRUE(store().create(make_pod("nowhere", "web-1")).is_ok());
}

// ------------------------------------------------------------------ update

TEST_P(StoreTest, UpdateKeepsIdentityAndBumpsVersion) {
  loop_.run_for(seconds(1));
  api::Object v1 = must_create(make_pod("default", "web-1", {{"app", "web"}}));
  loop_.run_for(seconds(1));
  api::Object v2 = must_update(edit(v1, [](Pod& p) {
    p.mutable_metadata()->set_uid("");                                  // empty: keep
    p.mutable_metadata()->mutable_creation_timestamp()->set_nanos(42);  // ignored
    p.mutable_status()->set_phase("Running");
  }));
  EXPECT_EQ(api::meta_of(*v2).uid(), api::meta_of(*v1).uid());
  EXPECT_EQ(api::meta_of(*v2).creation_timestamp().nanos(), to_nanos(seconds(1)));
  EXPECT_EQ(api::meta_of(*v2).resource_version(), "2");
  EXPECT_EQ(pod_of(v2).status().phase(), "Running");
  EXPECT_EQ(pod_of(v1).status().phase(), "") << "snapshots are immutable";

  StatusOr<api::Object> other_uid =
      store().update(edit(v2, [](Pod& p) { p.mutable_metadata()->set_uid("someone-else"); }));
  EXPECT_EQ(other_uid.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(other_uid.status().message(), HasSubstr("metadata.uid"));
  EXPECT_THAT(other_uid.status().message(), HasSubstr("field is immutable"));
}

TEST_P(StoreTest, GenerationFollowsSpecChangesOnly) {
  api::Object v = must_create(make_pod("default", "web-1"));
  v = must_update(edit(v, [](Pod& p) { p.mutable_status()->set_phase("Running"); }));
  EXPECT_EQ(api::meta_of(*v).generation(), 1) << "status-only change";
  v = must_update(edit(v, [](Pod& p) { (*p.mutable_metadata()->mutable_labels())["a"] = "b"; }));
  EXPECT_EQ(api::meta_of(*v).generation(), 1) << "metadata-only change";
  v = must_update(edit(v, [](Pod& p) { p.mutable_spec()->set_node_name("n1"); }));
  EXPECT_EQ(api::meta_of(*v).generation(), 2) << "spec change";
  v = must_update(edit(v, [](Pod& p) {
    p.mutable_metadata()->set_generation(99);  // clients cannot set it
    p.mutable_spec()->set_priority(5);
  }));
  EXPECT_EQ(api::meta_of(*v).generation(), 3);
}

TEST_P(StoreTest, StaleResourceVersionConflicts) {
  api::Object v1 = must_create(make_pod("default", "x"));
  must_update(edit(v1, [](Pod& p) { p.mutable_status()->set_phase("Running"); }));
  StatusOr<api::Object> stale =
      store().update(edit(v1, [](Pod& p) { p.mutable_status()->set_phase("Failed"); }));
  EXPECT_EQ(stale.status().code(), StatusCode::kConflict);
  EXPECT_EQ(stale.status().message(),
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please "
            "apply your changes to the latest version and try again");
  EXPECT_EQ(pod_of(*store().get(Kind::kPod, "default", "x")).status().phase(), "Running");
}

TEST_P(StoreTest, ConcurrentWritersOneWinsTheOtherConflicts) {
  must_create(make_pod("default", "x"));
  api::Object read_a = *store().get(Kind::kPod, "default", "x");
  api::Object read_b = *store().get(Kind::kPod, "default", "x");
  StatusOr<api::Object> a =
      store().update(edit(read_a, [](Pod& p) { p.mutable_spec()->set_node_name("n1"); }));
  StatusOr<api::Object> b =
      store().update(edit(read_b, [](Pod& p) { p.mutable_spec()->set_node_name("n2"); }));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::kConflict);
  EXPECT_EQ(pod_of(*store().get(Kind::kPod, "default", "x")).spec().node_name(), "n1");
  // The loser re-reads and retries.
  api::Object fresh = *store().get(Kind::kPod, "default", "x");
  EXPECT_TRUE(store()
                  .update(edit(fresh, [](Pod& p) { p.mutable_status()->set_phase("Running"); }))
                  .is_ok());
}

TEST_P(StoreTest, EmptyResourceVersionIsUnconditional) {
  api::Object v1 = must_create(make_pod("default", "x"));
  must_update(edit(v1, [](Pod& p) { p.mutable_status()->set_phase("Running"); }));
  api::Object forced = must_update(edit(v1, [](Pod& p) {
    p.mutable_metadata()->set_resource_version("");
    p.mutable_status()->set_phase("Failed");
  }));
  EXPECT_EQ(pod_of(forced).status().phase(), "Failed");
  EXPECT_EQ(api::meta_of(*forced).resource_version(), "3");
}

TEST_P(StoreTest, IdenticalUpdateWritesNothing) {
  api::Object v1 = must_create(make_pod("default", "x"));
  std::vector<Seen> seen;
  WatchHandle w = must_watch({}, &seen);
  api::Object same = must_update(edit(v1, [](Pod&) {}));
  EXPECT_TRUE(same_object(same, v1));
  EXPECT_EQ(store().resource_version(), 1);
  loop_.run();
  EXPECT_TRUE(seen.empty());
}

// ------------------------------------------------------------------ remove

TEST_P(StoreTest, RemoveHonoursPreconditions) {
  api::Object v1 = must_create(make_pod("default", "web-1"));
  const std::string uid = api::meta_of(*v1).uid();
  StatusOr<api::Object> wrong_uid = store().remove(Kind::kPod, "default", "web-1", {"other", ""});
  EXPECT_EQ(wrong_uid.status().code(), StatusCode::kConflict);
  EXPECT_EQ(wrong_uid.status().message(),
            "Precondition failed: UID in precondition: other, UID in object meta: " + uid);
  StatusOr<api::Object> wrong_rv = store().remove(Kind::kPod, "default", "web-1", {uid, "7"});
  EXPECT_EQ(wrong_rv.status().code(), StatusCode::kConflict);
  EXPECT_THAT(wrong_rv.status().message(), HasSubstr("ResourceVersion in precondition: 7"));
  EXPECT_TRUE(store().get(Kind::kPod, "default", "web-1").is_ok());

  StatusOr<api::Object> gone = store().remove(Kind::kPod, "default", "web-1", {uid, "1"});
  ASSERT_TRUE(gone.is_ok());
  EXPECT_TRUE(same_object(*gone, v1)) << "returns the last state";
  EXPECT_EQ(store().resource_version(), 2);
  EXPECT_EQ(store().get(Kind::kPod, "default", "web-1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store().object_count(Kind::kPod), 0u);
  // A new incarnation gets a new uid.
  api::Object again = must_create(make_pod("default", "web-1"));
  EXPECT_NE(api::meta_of(*again).uid(), uid);
}

// -------------------------------------------------------------- validation

class ValidatedStoreTest : public StoreTest {
 protected:
  static StoreOptions options(std::vector<bool>* saw_old) {
    StoreOptions o;
    o.validator = [saw_old](const google::protobuf::Message& obj,
                            const google::protobuf::Message* old) -> Status {
      saw_old->push_back(old != nullptr);
      if (api::meta_of(obj).labels().contains("bad")) {
        return invalid_error("Pod \"" + api::meta_of(obj).name() +
                             "\" is invalid: metadata.labels: bad label");
      }
      return Status::ok();
    };
    return o;
  }
  ValidatedStoreTest() : StoreTest(options(&saw_old_)) {}
  std::vector<bool> saw_old_;
};

TEST_P(ValidatedStoreTest, RejectionLeavesNothingWritten) {
  std::vector<Seen> seen;
  WatchHandle w = must_watch({}, &seen);
  StatusOr<api::Object> r = store().create(make_pod("default", "x", {{"bad", "1"}}));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
  EXPECT_THAT(r.status().message(), HasSubstr("bad label"));
  EXPECT_EQ(store().resource_version(), 0);
  EXPECT_EQ(store().object_count(Kind::kPod), 0u);
  EXPECT_TRUE(must_list(ListOptions{.labels = *api::LabelSelector::parse("bad")}).items.empty());

  api::Object v1 = must_create(make_pod("default", "x", {{"app", "web"}}));
  StatusOr<api::Object> u = store().update(edit(v1, [](Pod& p) {
    (*p.mutable_metadata()->mutable_labels())["bad"] = "1";
    p.mutable_spec()->set_node_name("n1");
  }));
  EXPECT_EQ(u.status().code(), StatusCode::kInvalid);
  EXPECT_TRUE(same_object(*store().get(Kind::kPod, "default", "x"), v1));
  EXPECT_EQ(store().resource_version(), 1);
  EXPECT_TRUE(must_list(ListOptions{.fields = *api::FieldSelector::parse("spec.nodeName=n1")})
                  .items.empty())
      << "the node index is untouched";
  EXPECT_THAT(saw_old_, ElementsAre(false, false, true));
  loop_.run();
  EXPECT_THAT(seen, ElementsAre(Seen{WatchEventType::kAdded, "x", 1, "web"}));
}

// ------------------------------------------------------------------- lists

TEST_P(StoreTest, ListIsOrderedByNamespaceThenName) {
  for (const char* ns : {"a-x", "a", "b"}) {
    for (const char* n : {"z", "m", "a"}) must_create(make_pod(ns, n));
  }
  EXPECT_THAT(names(must_list({}).items),
              ElementsAre("a/a", "a/m", "a/z", "a-x/a", "a-x/m", "a-x/z", "b/a", "b/m", "b/z"));
  ListResult in_a = must_list(ListOptions{.ns = "a"});
  EXPECT_THAT(names(in_a.items), ElementsAre("a/a", "a/m", "a/z"));
  EXPECT_EQ(in_a.resource_version, 9);
  EXPECT_EQ(store().last_list_candidates(), 3) << "namespace lists scan only the namespace";
  EXPECT_TRUE(must_list(ListOptions{.ns = "none"}).items.empty());
  EXPECT_THAT(names(must_list(ListOptions{.fields = *api::FieldSelector::parse(
                                              "metadata.namespace=b,metadata.name=m")})
                        .items),
              ElementsAre("b/m"));
  EXPECT_EQ(store().last_list_candidates(), 1);
}

TEST_P(StoreTest, LabelSelectorListScansOnlyIndexedCandidates) {
  for (int i = 0; i < 1000; ++i) {
    std::string app = i % 100 == 0 ? "web" : i % 100 == 1 ? "db" : "batch";
    must_create(make_pod("default", "p" + std::to_string(1000 + i),
                         {{"app", app}, {"tier", i % 2 ? "odd" : "even"}}));
  }
  ListResult web = must_list(ListOptions{.labels = *api::LabelSelector::parse("app=web")});
  EXPECT_EQ(web.items.size(), 10u);
  EXPECT_EQ(store().last_list_candidates(), 10);
  for (const auto& o : web.items) EXPECT_EQ(api::meta_of(*o).labels().at("app"), "web");

  ListResult both =
      must_list(ListOptions{.labels = *api::LabelSelector::parse("app in (web,db),tier=even")});
  EXPECT_EQ(both.items.size(), 10u);  // web are even, db are odd
  EXPECT_EQ(store().last_list_candidates(), 20);
  EXPECT_THAT(names(both.items).front(), "default/p1000");

  ListResult not_web = must_list(ListOptions{.labels = *api::LabelSelector::parse("app!=web")});
  EXPECT_EQ(not_web.items.size(), 990u);
  ListResult none = must_list(ListOptions{.labels = *api::LabelSelector::parse("app=nope")});
  EXPECT_TRUE(none.items.empty());
  EXPECT_EQ(store().last_list_candidates(), 0);
}

TEST_P(StoreTest, LabelIndexFollowsUpdatesAndDeletes) {
  api::Object p = must_create(make_pod("default", "x", {{"app", "web"}}));
  auto web = [&] {
    return must_list(ListOptions{.labels = *api::LabelSelector::parse("app=web")}).items.size();
  };
  auto db = [&] {
    return must_list(ListOptions{.labels = *api::LabelSelector::parse("app=db")}).items.size();
  };
  EXPECT_EQ(web(), 1u);
  p = must_update(edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_labels())["app"] = "db"; }));
  EXPECT_EQ(web(), 0u);
  EXPECT_EQ(db(), 1u);
  ASSERT_TRUE(store().remove(Kind::kPod, "default", "x").is_ok());
  EXPECT_EQ(db(), 0u);
}

TEST_P(StoreTest, NodeNameFieldSelectorUsesTheNodeIndex) {
  for (int i = 0; i < 300; ++i) {
    must_create(make_pod("ns" + std::to_string(i % 3), "p" + std::to_string(i), {},
                         i < 200 ? "node-" + std::to_string(i % 20) : ""));
  }
  ListResult on7 =
      must_list(ListOptions{.fields = *api::FieldSelector::parse("spec.nodeName=node-7")});
  EXPECT_EQ(on7.items.size(), 10u);
  EXPECT_EQ(store().last_list_candidates(), 10);
  for (const auto& o : on7.items) EXPECT_EQ(pod_of(o).spec().node_name(), "node-7");

  ListResult unscheduled =
      must_list(ListOptions{.fields = *api::FieldSelector::parse("spec.nodeName=")});
  EXPECT_EQ(unscheduled.items.size(), 100u);
  EXPECT_EQ(store().last_list_candidates(), 100);

  // Binding a pod moves it in the index.
  api::Object p = *store().get(Kind::kPod, "ns0", "p201");
  must_update(edit(p, [](Pod& q) { q.mutable_spec()->set_node_name("node-7"); }));
  EXPECT_EQ(must_list(ListOptions{.fields = *api::FieldSelector::parse("spec.nodeName=node-7")})
                .items.size(),
            11u);
  EXPECT_EQ(must_list(ListOptions{.ns = "ns0",
                                  .fields = *api::FieldSelector::parse("spec.nodeName=node-7")})
                .items.size(),
            4u);
  EXPECT_EQ(must_list(ListOptions{.fields = *api::FieldSelector::parse(
                                      "spec.nodeName=node-7,status.phase=Running")})
                .items.size(),
            0u);
}

TEST_P(StoreTest, PaginationWalksEveryItemOnce) {
  for (int i = 0; i < 25; ++i) {
    must_create(make_pod("default", "p" + std::to_string(100 + i), {{"app", i % 5 ? "a" : "b"}}));
  }
  std::vector<std::string> all;
  ListOptions o{.limit = 10};
  std::vector<int64_t> remaining;
  int pages = 0;
  while (true) {
    ListResult r = must_list(o);
    ++pages;
    for (const auto& n : names(r.items)) all.push_back(n);
    remaining.push_back(r.remaining);
    EXPECT_EQ(r.resource_version, 25);
    if (r.continue_token.empty()) break;
    o.continue_token = r.continue_token;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(remaining, ElementsAre(15, 5, 0));
  EXPECT_EQ(all, names(must_list({}).items));

  // With a selector, pages count only matching items.
  ListOptions sel{.labels = *api::LabelSelector::parse("app=a"), .limit = 15};
  ListResult first = must_list(sel);
  EXPECT_EQ(first.items.size(), 15u);
  EXPECT_EQ(first.remaining, 5);
  sel.continue_token = first.continue_token;
  ListResult second = must_list(sel);
  EXPECT_EQ(second.items.size(), 5u);
  EXPECT_TRUE(second.continue_token.empty());
}

TEST_P(StoreTest, PaginationSeesChangesAfterTheLastKeyAndKeepsTheFirstVersion) {
  for (int i = 0; i < 6; ++i) must_create(make_pod("default", "p" + std::to_string(i)));
  ListResult first = must_list(ListOptions{.limit = 3});
  EXPECT_THAT(names(first.items), ElementsAre("default/p0", "default/p1", "default/p2"));
  ASSERT_TRUE(store().remove(Kind::kPod, "default", "p3").is_ok());
  must_create(make_pod("default", "p1a"));  // before the last key: not seen
  must_create(make_pod("default", "p9"));
  ListResult second = must_list(ListOptions{.limit = 3, .continue_token = first.continue_token});
  EXPECT_THAT(names(second.items), ElementsAre("default/p4", "default/p5", "default/p9"));
  EXPECT_EQ(second.resource_version, first.resource_version);
}

TEST_P(StoreTest, BadContinueTokenIsABadRequest) {
  StatusOr<ListResult> r = store().list(Kind::kPod, ListOptions{.continue_token = "zz"});
  EXPECT_EQ(r.status().code(), StatusCode::kBadRequest);
  EXPECT_THAT(r.status().message(), HasSubstr("continue"));
}

class SmallHistoryTest : public StoreTest {
 protected:
  static StoreOptions options() {
    StoreOptions o;
    o.history_size = 3;
    return o;
  }
  SmallHistoryTest() : StoreTest(options()) {}
};

TEST_P(SmallHistoryTest, ContinueTokenExpiresWithTheHistory) {
  for (int i = 0; i < 4; ++i) must_create(make_pod("default", "p" + std::to_string(i)));
  ListResult first = must_list(ListOptions{.limit = 2});
  for (int i = 0; i < 5; ++i) must_create(make_pod("other", "q" + std::to_string(i)));
  StatusOr<ListResult> r =
      store().list(Kind::kPod, ListOptions{.limit = 2, .continue_token = first.continue_token});
  EXPECT_EQ(r.status().code(), StatusCode::kGone);
  EXPECT_THAT(r.status().message(), HasSubstr("continue parameter is too old"));
}

// A change that no selector can see keeps no "state before" in the history:
// the version it replaces is freed as soon as its own history entry and its
// holders let go of it. One that moves the object across a selector keeps it
// (a replaying watcher needs it to see the object leave).
// Parsed storage only: a packed kind keeps bytes, and the old version it
// hands the history is parsed again, not the one a caller held.
class ParsedSmallHistoryTest : public SmallHistoryTest {};

TEST_P(ParsedSmallHistoryTest, AChangeNoSelectorCanSeeKeepsNoOldVersion) {
  auto push_out_of_history = [&](const std::string& prefix) {
    for (int i = 0; i < 3; ++i) must_create(make_pod("default", prefix + std::to_string(i)));
  };
  // Each version is written once its predecessor's own entry has left the
  // history, so only the new entry could still hold the predecessor.
  api::Object v1 = must_create(make_pod("default", "x", {{"app", "db"}}));
  push_out_of_history("a");
  api::Object v2 = must_update(edit(v1, [](Pod& q) {
    (*q.mutable_metadata()->mutable_annotations())["note"] = "same labels, same fields";
  }));
  std::weak_ptr<const google::protobuf::Message> old1 = v1;
  v1 = nullptr;
  EXPECT_TRUE(old1.expired());
  push_out_of_history("b");
  api::Object v3 =
      must_update(edit(v2, [](Pod& q) { (*q.mutable_metadata()->mutable_labels())["app"] = "web"; }));
  std::weak_ptr<const google::protobuf::Message> old2 = v2;
  v2 = nullptr;
  EXPECT_FALSE(old2.expired());  // the label change's entry holds it
  push_out_of_history("c");
  EXPECT_TRUE(old2.expired());
  api::Object v4 =
      must_update(edit(v3, [](Pod& q) { q.mutable_status()->set_phase("Running"); }));
  std::weak_ptr<const google::protobuf::Message> old3 = v3;
  v3 = nullptr;
  EXPECT_FALSE(old3.expired());  // status.phase is a selectable field
}

// What a watcher replaying the history sees is what one watching live saw,
// for changes that cross its selector and changes that do not.
TEST_P(StoreTest, ReplayedSelectorTransitionsMatchTheLiveOnes) {
  const WatchOptions by_label{.labels = *api::LabelSelector::parse("app=web")};
  const WatchOptions by_phase{.fields = *api::FieldSelector::parse("status.phase=Running")};
  std::vector<Seen> live_label, live_phase;
  WatchHandle l1 = must_watch(by_label, &live_label);
  WatchHandle l2 = must_watch(by_phase, &live_phase);
  must_create(make_pod("default", "other"));
  const int64_t from = store().resource_version();
  api::Object p = must_create(make_pod("default", "x", {{"app", "db"}}));
  p = must_update(edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_labels())["app"] = "web"; }));
  p = must_update(edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_annotations())["n"] = "1"; }));
  p = must_update(edit(p, [](Pod& q) { q.mutable_status()->set_phase("Running"); }));
  p = must_update(edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_annotations())["n"] = "2"; }));
  p = must_update(edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_labels())["app"] = "db"; }));
  p = must_update(edit(p, [](Pod& q) { q.mutable_status()->set_phase("Succeeded"); }));
  loop_.run();
  std::vector<Seen> replay_label, replay_phase;
  WatchOptions r1 = by_label;
  r1.resource_version = from;
  WatchOptions r2 = by_phase;
  r2.resource_version = from;
  WatchHandle w1 = must_watch(r1, &replay_label);
  WatchHandle w2 = must_watch(r2, &replay_phase);
  loop_.run();
  EXPECT_THAT(live_label, ElementsAre(Seen{WatchEventType::kAdded, "x", 3, "web"},
                                      Seen{WatchEventType::kModified, "x", 4, "web"},
                                      Seen{WatchEventType::kModified, "x", 5, "web"},
                                      Seen{WatchEventType::kModified, "x", 6, "web"},
                                      Seen{WatchEventType::kDeleted, "x", 7, "web"}));
  EXPECT_THAT(live_phase, ElementsAre(Seen{WatchEventType::kAdded, "x", 5, "web"},
                                      Seen{WatchEventType::kModified, "x", 6, "web"},
                                      Seen{WatchEventType::kModified, "x", 7, "db"},
                                      Seen{WatchEventType::kDeleted, "x", 8, "db"}));
  EXPECT_EQ(replay_label, live_label);
  EXPECT_EQ(replay_phase, live_phase);
}

class RetainedHistoryTest : public StoreTest {
 protected:
  static StoreOptions options() {
    StoreOptions o;
    o.history_retention = std::chrono::minutes(5);
    return o;
  }
  RetainedHistoryTest() : StoreTest(options()) {}
};

TEST_P(RetainedHistoryTest, EventsOlderThanTheRetentionLeaveAtTheNextWrite) {
  api::Object a = must_create(make_pod("default", "a"));
  api::Object a2 = must_update(edit(a, [](Pod& p) { p.mutable_status()->set_phase("Running"); }));
  loop_.run_for(std::chrono::minutes(4));
  must_create(make_pod("default", "b"));
  auto watch_from = [&](const api::Object& o) {
    return store().watch(Kind::kPod, WatchOptions{.resource_version = rv_of(o)},
                         [](const WatchEvent&) {});
  };
  // Nothing is older than 5 minutes yet: a watch from `a` replays a2 and b.
  EXPECT_TRUE(watch_from(a).is_ok());
  loop_.run_for(std::chrono::minutes(2));
  // Time alone drops nothing: the next write does.
  EXPECT_TRUE(watch_from(a).is_ok());
  must_create(make_pod("default", "c"));
  StatusOr<WatchHandle> gone = watch_from(a);
  EXPECT_EQ(gone.status().code(), StatusCode::kGone) << gone.status().to_string();
  EXPECT_TRUE(watch_from(a2).is_ok()) << "b (4 minutes old) and c are kept";
  EXPECT_EQ(store().oldest_watchable_version(Kind::kPod), rv_of(a2));
}

// ----------------------------------------------------------------- watches

TEST_P(StoreTest, WatchDeliversOrderedEventsThroughTheLoopOnly) {
  std::vector<Seen> seen;
  WatchHandle w = must_watch({}, &seen);
  api::Object p = must_create(make_pod("default", "x", {{"app", "web"}}));
  EXPECT_TRUE(seen.empty()) << "never delivered from inside create()";
  p = must_update(edit(p, [](Pod& q) { q.mutable_status()->set_phase("Running"); }));
  ASSERT_TRUE(store().remove(Kind::kPod, "default", "x").is_ok());
  EXPECT_TRUE(seen.empty());
  loop_.run();
  EXPECT_THAT(seen, ElementsAre(Seen{WatchEventType::kAdded, "x", 1, "web"},
                                Seen{WatchEventType::kModified, "x", 2, "web"},
                                Seen{WatchEventType::kDeleted, "x", 3, "web"}));
}

TEST_P(StoreTest, WatchEventsShareTheStoredSnapshot) {
  std::vector<api::Object> got;
  StatusOr<WatchHandle> w =
      store().watch(Kind::kPod, {}, [&](const WatchEvent& e) { got.push_back(e.object); });
  ASSERT_TRUE(w.is_ok());
  api::Object p = must_create(make_pod("default", "x"));
  loop_.run();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].get(), p.get());
}

TEST_P(StoreTest, CallbackMayWriteWithoutReentrantDelivery) {
  std::vector<std::string> log;
  bool inside = false;
  StatusOr<WatchHandle> w = store().watch(Kind::kPod, {}, [&](const WatchEvent& e) {
    EXPECT_FALSE(inside) << "delivered re-entrantly";
    inside = true;
    const std::string& name = api::meta_of(*e.object).name();
    log.push_back(name);
    if (name == "a") must_create(make_pod("default", "b"));
    log.push_back("after-create-" + name);
    inside = false;
  });
  ASSERT_TRUE(w.is_ok());
  must_create(make_pod("default", "a"));
  loop_.run();
  EXPECT_THAT(log, ElementsAre("a", "after-create-a", "b", "after-create-b"));
}

// A watch is a stream: a burst of changes reaches each watcher in one loop
// event (its buffer drained in order), not one event per change.
TEST_P(StoreTest, ABurstReachesEachWatcherInOneLoopEvent) {
  std::vector<Seen> a, b;
  WatchHandle wa = must_watch({}, &a);
  WatchHandle wb = must_watch({}, &b);
  for (int i = 0; i < 100; ++i) must_create(make_pod("default", "p" + std::to_string(i)));
  const uint64_t before = loop_.events_processed();
  loop_.run();
  EXPECT_EQ(loop_.events_processed() - before, 2u);
  ASSERT_EQ(a.size(), 100u);
  ASSERT_EQ(b.size(), 100u);
  for (size_t j = 1; j < a.size(); ++j) EXPECT_LT(a[j - 1].rv, a[j].rv);
}

// What a handler's own write causes is delivered behind everything posted
// before it, as with an event posted per change; and a watch closed by a
// handler gets none of its buffer's rest.
TEST_P(StoreTest, EventsAHandlerCausesComeAfterWhatWasPostedBefore) {
  std::vector<std::string> log;
  WatchHandle w;
  StatusOr<WatchHandle> opened = store().watch(Kind::kPod, {}, [&](const WatchEvent& e) {
    const std::string& name = api::meta_of(*e.object).name();
    log.push_back(name);
    if (name == "a") must_create(make_pod("default", "c"));
    if (name == "c") w.reset();
  });
  ASSERT_TRUE(opened.is_ok());
  w = std::move(*opened);
  must_create(make_pod("default", "a"));
  must_create(make_pod("default", "b"));
  loop_.post([&] { log.push_back("posted"); });
  loop_.run();
  EXPECT_THAT(log, ElementsAre("a", "b", "posted", "c"));
  must_create(make_pod("default", "d"));
  loop_.run();
  EXPECT_THAT(log, ElementsAre("a", "b", "posted", "c")) << "closed while delivering c";

  // Closed by its handler with more in the buffer: the rest is dropped.
  std::vector<std::string> seen;
  WatchHandle w2;
  opened = store().watch(Kind::kPod, {}, [&](const WatchEvent& e) {
    seen.push_back(api::meta_of(*e.object).name());
    w2.reset();
  });
  ASSERT_TRUE(opened.is_ok());
  w2 = std::move(*opened);
  must_create(make_pod("default", "e"));
  must_create(make_pod("default", "f"));
  loop_.run();
  EXPECT_THAT(seen, ElementsAre("e"));
}

TEST_P(StoreTest, WatchResumesFromAVersionWithExactlyTheLaterEvents) {
  api::Object a = must_create(make_pod("default", "a"));
  must_create(make_pod("default", "b"));
  const int64_t rv = store().resource_version();
  must_update(edit(a, [](Pod& q) { q.mutable_status()->set_phase("Running"); }));
  must_create(make_pod("default", "c"));
  ASSERT_TRUE(store().remove(Kind::kPod, "default", "b").is_ok());
  std::vector<Seen> seen;
  WatchHandle w = must_watch(WatchOptions{.resource_version = rv}, &seen);
  must_create(make_pod("default", "d"));  // live, after the replay
  loop_.run();
  EXPECT_THAT(seen, ElementsAre(Seen{WatchEventType::kModified, "a", 3, ""},
                                Seen{WatchEventType::kAdded, "c", 4, ""},
                                Seen{WatchEventType::kDeleted, "b", 5, ""},
                                Seen{WatchEventType::kAdded, "d", 6, ""}));
  // From the current version: nothing to replay.
  std::vector<Seen> none;
  WatchHandle w2 = must_watch(WatchOptions{.resource_version = store().resource_version()}, &none);
  loop_.run();
  EXPECT_TRUE(none.empty());
}

TEST_P(SmallHistoryTest, WatchFromACompactedVersionIsGone) {
  for (int i = 0; i < 10; ++i) must_create(make_pod("default", "p" + std::to_string(i)));
  EXPECT_EQ(store().oldest_watchable_version(Kind::kPod), 7);
  StatusOr<WatchHandle> old =
      store().watch(Kind::kPod, WatchOptions{.resource_version = 2}, [](const WatchEvent&) {});
  EXPECT_EQ(old.status().code(), StatusCode::kGone);
  EXPECT_EQ(old.status().message(), "too old resource version: 2 (7)");
  std::vector<Seen> seen;
  WatchHandle w = must_watch(WatchOptions{.resource_version = 7}, &seen);
  loop_.run();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.front().rv, 8);
  // Other kinds keep their own window.
  EXPECT_TRUE(store()
                  .watch(Kind::kNode, WatchOptions{.resource_version = 2}, [](const WatchEvent&) {})
                  .is_ok());
}

TEST_P(StoreTest, WatchFromTheFutureIsRejected) {
  must_create(make_pod("default", "a"));
  StatusOr<WatchHandle> w =
      store().watch(Kind::kPod, WatchOptions{.resource_version = 5}, [](const WatchEvent&) {});
  EXPECT_EQ(w.status().code(), StatusCode::kBadRequest);
  EXPECT_THAT(w.status().message(), HasSubstr("Too large resource version: 5, current: 1"));
}

TEST_P(StoreTest, LabelSelectorTransitionsBecomeAddedAndDeleted) {
  std::vector<Seen> seen;
  WatchHandle w = must_watch(WatchOptions{.labels = *api::LabelSelector::parse("app=web")}, &seen);
  api::Object p = must_create(make_pod("default", "x", {{"app", "db"}}));
  must_create(make_pod("default", "y", {{"app", "web"}}));
  p = must_update(
      edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_labels())["app"] = "web"; }));
  p = must_update(edit(p, [](Pod& q) { q.mutable_status()->set_phase("Running"); }));
  p = must_update(edit(p, [](Pod& q) { (*q.mutable_metadata()->mutable_labels())["app"] = "db"; }));
  p = must_update(edit(p, [](Pod& q) { q.mutable_status()->set_phase("Failed"); }));
  ASSERT_TRUE(store().remove(Kind::kPod, "default", "x").is_ok());
  loop_.run();
  EXPECT_THAT(seen, ElementsAre(Seen{WatchEventType::kAdded, "y", 2, "web"},
                                Seen{WatchEventType::kAdded, "x", 3, "web"},
                                Seen{WatchEventType::kModified, "x", 4, "web"},
                                // The deletion carries the last state that matched.
                                Seen{WatchEventType::kDeleted, "x", 5, "web"}));
}

TEST_P(StoreTest, NodePinnedWatchSeesPodsArriveAndLeave) {
  std::vector<Seen> on_n1;
  std::vector<Seen> everything;
  WatchHandle w1 =
      must_watch(WatchOptions{.fields = *api::FieldSelector::parse("spec.nodeName=n1")}, &on_n1);
  WatchHandle all = must_watch({}, &everything);
  api::Object p = must_create(make_pod("default", "x"));
  must_create(make_pod("default", "y", {}, "n2"));
  p = must_update(edit(p, [](Pod& q) { q.mutable_spec()->set_node_name("n1"); }));
  p = must_update(edit(p, [](Pod& q) { q.mutable_status()->set_phase("Running"); }));
  p = must_update(edit(p, [](Pod& q) { q.mutable_spec()->set_node_name("n2"); }));
  ASSERT_TRUE(store().remove(Kind::kPod, "default", "x").is_ok());
  EXPECT_EQ(store().watch_count(Kind::kPod), 2u);
  loop_.run();
  EXPECT_THAT(on_n1, ElementsAre(Seen{WatchEventType::kAdded, "x", 3, ""},
                                 Seen{WatchEventType::kModified, "x", 4, ""},
                                 Seen{WatchEventType::kDeleted, "x", 5, ""}));
  EXPECT_EQ(everything.size(), 6u);
}

TEST_P(StoreTest, NamespacedWatchSeesOnlyItsNamespace) {
  std::vector<Seen> seen;
  WatchHandle w = must_watch(WatchOptions{.ns = "prod"}, &seen);
  must_create(make_pod("default", "a"));
  must_create(make_pod("prod", "b"));
  loop_.run();
  EXPECT_THAT(seen, ElementsAre(Seen{WatchEventType::kAdded, "b", 2, ""}));
}

TEST_P(StoreTest, InitialEventsComeFirstInKeyOrder) {
  must_create(make_pod("default", "c", {{"app", "web"}}));
  must_create(make_pod("default", "a", {{"app", "web"}}));
  must_create(make_pod("default", "b", {{"app", "db"}}));
  std::vector<Seen> seen;
  WatchHandle w = must_watch(
      WatchOptions{.labels = *api::LabelSelector::parse("app=web"), .send_initial_events = true},
      &seen);
  must_create(make_pod("default", "d", {{"app", "web"}}));
  loop_.run();
  EXPECT_THAT(seen, ElementsAre(Seen{WatchEventType::kAdded, "a", 2, "web"},
                                Seen{WatchEventType::kAdded, "c", 1, "web"},
                                Seen{WatchEventType::kAdded, "d", 4, "web"}));
  EXPECT_EQ(store()
                .watch(Kind::kPod, WatchOptions{.resource_version = 1, .send_initial_events = true},
                       [](const WatchEvent&) {})
                .status()
                .code(),
            StatusCode::kBadRequest);
}

TEST_P(StoreTest, DestroyedHandleStopsEvenQueuedEvents) {
  std::vector<Seen> seen;
  WatchHandle w = must_watch({}, &seen);
  must_create(make_pod("default", "a"));
  must_create(make_pod("default", "b"));
  w.reset();  // two events are queued in the loop
  EXPECT_EQ(store().watch_count(Kind::kPod), 0u);
  loop_.run();
  EXPECT_TRUE(seen.empty());
}

TEST_P(StoreTest, HandleDestroyedFromItsOwnCallbackStopsTheRest) {
  std::vector<std::string> seen;
  WatchHandle w;
  StatusOr<WatchHandle> r = store().watch(Kind::kPod, {}, [&](const WatchEvent& e) {
    seen.push_back(api::meta_of(*e.object).name());
    w.reset();
  });
  ASSERT_TRUE(r.is_ok());
  w = std::move(*r);
  must_create(make_pod("default", "a"));
  must_create(make_pod("default", "b"));
  loop_.run();
  EXPECT_THAT(seen, ElementsAre("a"));
}

TEST_P(StoreTest, DestroyedStoreDeliversNothingMore) {
  std::vector<Seen> seen;
  WatchHandle w = must_watch({}, &seen);
  must_create(make_pod("default", "a"));
  store_.reset();
  loop_.run();
  EXPECT_TRUE(seen.empty());
  w.reset();  // the handle outlives the store safely
}

TEST_P(StoreTest, ManyWatchersEachGetTheirOwnOrderedStream) {
  std::vector<std::vector<Seen>> seen(20);
  std::vector<WatchHandle> handles;
  for (int i = 0; i < 20; ++i) {
    WatchOptions o;
    if (i % 2 == 0)
      o.fields = *api::FieldSelector::parse("spec.nodeName=n" + std::to_string(i % 4));
    handles.push_back(must_watch(o, &seen[i]));
  }
  for (int i = 0; i < 40; ++i) {
    must_create(
        make_pod("default", "p" + std::to_string(100 + i), {}, "n" + std::to_string(i % 4)));
  }
  loop_.run();
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(seen[i].size(), i % 2 == 0 ? 10u : 40u) << i;
    for (size_t j = 1; j < seen[i].size(); ++j) EXPECT_LT(seen[i][j - 1].rv, seen[i][j].rv);
  }
}

// A packed kind with a dictionary keeps its objects compressed with it: the
// same objects take fewer bytes, read back equal, and a rewrite of the same
// object is still found to change nothing.
TEST(PackedDictionaryTest, EventsAreKeptSmallerAndReadBackEqual) {
  auto event = [](int i) {
    api::Event e;
    e.mutable_metadata()->set_namespace_("default");
    e.mutable_metadata()->set_name("web-" + std::to_string(i) + ".17a3b2c4d5e6f7a8");
    e.mutable_involved_object()->set_kind("Pod");
    e.mutable_involved_object()->set_name("web-" + std::to_string(i));
    e.set_reason("Started");
    e.set_message("Started container app");
    e.mutable_source()->set_component("kubelet");
    e.mutable_source()->set_host("node-" + std::to_string(i % 7));
    e.set_count(1);
    return e;
  };
  auto run = [&](bool with_dictionary, std::vector<api::Object>* stored) {
    sim::Simulator loop;
    auto random = sim::SimRandom(7).stream("store");
    StoreOptions o;
    o.packed_kinds = {Kind::kEvent};
    if (with_dictionary) o.packed_dictionaries = {{Kind::kEvent, event(0).SerializeAsString()}};
    InMemoryStore store(loop, *random, o);
    for (int i = 1; i <= 50; ++i) {
      StatusOr<api::Object> c = store.create(api::share(event(i)));
      EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    }
    StatusOr<ListResult> all = store.list(Kind::kEvent, {});
    EXPECT_TRUE(all.is_ok());
    if (all.is_ok()) *stored = all->items;
    // The same object again: nothing written.
    StatusOr<api::Object> got = store.get(Kind::kEvent, "default", "web-3.17a3b2c4d5e6f7a8");
    EXPECT_TRUE(got.is_ok());
    const int64_t rv = store.resource_version();
    StatusOr<api::Object> again = store.update(*got);
    EXPECT_TRUE(again.is_ok());
    EXPECT_EQ(store.resource_version(), rv);
    return store.packed_size(Kind::kEvent);
  };
  std::vector<api::Object> plain, compressed;
  const int64_t plain_bytes = run(false, &plain);
  const int64_t compressed_bytes = run(true, &compressed);
  EXPECT_LT(compressed_bytes * 4, plain_bytes * 3) << compressed_bytes << " vs " << plain_bytes;
  ASSERT_EQ(plain.size(), compressed.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*plain[i], *compressed[i]));
  }
}

// A store that does not answer get_if_changed itself (a remote one, which
// parses every object it reads): the port's default compares versions.
class CopyingStore final : public flotilla::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  StatusOr<api::Object> get(Kind kind, std::string_view ns, std::string_view name) const override {
    StatusOr<api::Object> o = inner().get(kind, ns, name);
    if (!o.is_ok()) return o;
    std::shared_ptr<google::protobuf::Message> copy((*o)->New());
    copy->CopyFrom(**o);
    return api::Object(std::move(copy));
  }
};

TEST(StorePortTest, GetIfChangedByDefaultComparesResourceVersions) {
  sim::Simulator loop;
  std::unique_ptr<RandomStream> random = sim::SimRandom(7).stream("store");
  InMemoryStore memory(loop, *random);
  CopyingStore store(memory);
  ASSERT_TRUE(store.create(make_pod("default", "a")).is_ok());
  StatusOr<api::Object> known = store.get(Kind::kPod, "default", "a");
  ASSERT_TRUE(known.is_ok());
  StatusOr<api::Object> same = store.get_if_changed(Kind::kPod, "default", "a", *known);
  ASSERT_TRUE(same.is_ok());
  EXPECT_EQ(*same, nullptr) << "another copy of the same version";

  ASSERT_TRUE(store.update(edit(*known, [](Pod& p) { p.mutable_status()->set_phase("Running"); }))
                  .is_ok());
  StatusOr<api::Object> now = store.get_if_changed(Kind::kPod, "default", "a", *known);
  ASSERT_TRUE(now.is_ok());
  ASSERT_NE(*now, nullptr);
  EXPECT_EQ(pod_of(*now).status().phase(), "Running");
  EXPECT_EQ(store.get_if_changed(Kind::kPod, "default", "b", *known).status().code(),
            StatusCode::kNotFound);
}

std::string storage_name(const ::testing::TestParamInfo<Storage>& info) {
  switch (info.param) {
    case Storage::kParsed: return "Parsed";
    case Storage::kPacked: return "Packed";
    case Storage::kCompressed: return "Compressed";
  }
  return "Unknown";
}
const auto kStorages =
    ::testing::Values(Storage::kParsed, Storage::kPacked, Storage::kCompressed);
INSTANTIATE_TEST_SUITE_P(Storage, StoreTest, kStorages, storage_name);
INSTANTIATE_TEST_SUITE_P(Storage, GenerateNameClashTest, kStorages, storage_name);
INSTANTIATE_TEST_SUITE_P(Storage, EnforcedNamespacesTest, kStorages, storage_name);
INSTANTIATE_TEST_SUITE_P(Storage, ValidatedStoreTest, kStorages, storage_name);
INSTANTIATE_TEST_SUITE_P(Storage, SmallHistoryTest, kStorages, storage_name);
INSTANTIATE_TEST_SUITE_P(Storage, ParsedSmallHistoryTest, ::testing::Values(Storage::kParsed),
                         storage_name);
INSTANTIATE_TEST_SUITE_P(Storage, RetainedHistoryTest, kStorages, storage_name);

}  // namespace
}  // namespace flotilla::store
