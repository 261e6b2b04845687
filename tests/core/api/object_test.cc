// The kind table: finding an object's kind and its typed accessors.
#include "core/api/object.h"

#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace flotilla::api {
namespace {

// A node's Lease copied into a compact message: equal to the source, and
// every field in the one block allocated with it.
TEST(MakeCompact, HoldsALeaseInTheOneBlockAllocatedWithIt) {
  Lease source;
  source.set_api_version("coordination.k8s.io/v1");
  source.set_kind("Lease");
  ObjectMeta* meta = source.mutable_metadata();
  meta->set_name("node-01234");
  meta->set_namespace_("kube-node-lease");
  meta->set_uid("0b7f0e2a-1111-2222-3333-444455556666");
  meta->set_resource_version("123456789");
  meta->mutable_creation_timestamp()->set_nanos(12345);
  OwnerReference* owner = meta->add_owner_references();
  owner->set_api_version("v1");
  owner->set_kind("Node");
  owner->set_name("node-01234");
  owner->set_uid("0b7f0e2a-1111-2222-3333-444455556667");
  LeaseSpec* spec = source.mutable_spec();
  spec->set_holder_identity("node-01234");
  spec->set_lease_duration_seconds(40);
  spec->mutable_acquire_time()->set_nanos(1);
  spec->mutable_renew_time()->set_nanos(2);

  std::shared_ptr<Lease> compact = make_compact<Lease>();
  *compact = source;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*compact, source));
  google::protobuf::Arena* arena = compact->GetArena();
  ASSERT_NE(arena, nullptr);
  EXPECT_EQ(arena->SpaceAllocated(), 1536u);  // the first block only
  // Outgrowing the block is allowed: the arena takes more.
  for (int i = 0; i < 40; ++i) (*meta->mutable_annotations())["key-" + std::to_string(i)] = "v";
  *compact = source;
  EXPECT_EQ(compact->metadata().annotations().size(), 40);
  EXPECT_GT(arena->SpaceAllocated(), 1536u);
  // A snapshot like any other: a heap copy of it is equal.
  Object shared = compact;
  Lease copy = *as<Lease>(shared);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(copy, source));
}

TEST(KindOf, FindsEveryKindByItsClassAndADynamicMessageByItsDescriptor) {
  for (const KindInfo& k : all_kinds()) {
    std::unique_ptr<google::protobuf::Message> m = k.make();
    ASSERT_EQ(kind_of(*m), &k) << k.name;
    // Same descriptor, another class: found the slower way.
    google::protobuf::DynamicMessageFactory factory;
    std::unique_ptr<google::protobuf::Message> dynamic(factory.GetPrototype(k.descriptor)->New());
    EXPECT_EQ(kind_of(*dynamic), &k) << k.name;
  }
  EXPECT_EQ(kind_of(ObjectMeta()), nullptr);
  EXPECT_EQ(kind_of(PodSpec()), nullptr);
}

TEST(KindInfo, GivesTheSpecOfKindsThatHaveOneAndFillsTheTypeMeta) {
  Lease lease;
  lease.mutable_spec()->set_holder_identity("n1");
  const KindInfo& l = kind_info(Kind::kLease);
  ASSERT_EQ(l.spec(lease), &lease.spec());
  EXPECT_EQ(kind_info(Kind::kEndpoints).spec(Endpoints()), nullptr);
  EXPECT_EQ(kind_info(Kind::kEvent).spec(Event()), nullptr);
  Pod pod;
  EXPECT_EQ(kind_info(Kind::kPod).spec(pod), &pod.spec());

  l.fill_type_meta(lease);
  EXPECT_EQ(lease.api_version(), "coordination.k8s.io/v1");
  EXPECT_EQ(lease.kind(), "Lease");
  // What is set already stays (validation reports a wrong one).
  pod.set_api_version("v2");
  kind_info(Kind::kPod).fill_type_meta(pod);
  EXPECT_EQ(pod.api_version(), "v2");
  EXPECT_EQ(pod.kind(), "Pod");
}

// Every field of LeaseSpec's descriptor counts, presence included: one set
// (to a zero value, or an empty Time) on one side only, or set differently on
// each, makes the specs differ, as their serializations do.
TEST(SameLeaseSpec, TellsApartSpecsThatDifferInAnyField) {
  LeaseSpec base;
  EXPECT_TRUE(same_lease_spec(base, base));
  const google::protobuf::Descriptor* d = LeaseSpec::descriptor();
  const google::protobuf::Reflection* r = LeaseSpec::GetReflection();
  ASSERT_GT(d->field_count(), 0);
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    LeaseSpec a, b;
    switch (f->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
        if (f->has_presence()) {
          r->SetInt32(&a, f, 0);  // present, zero: still not the absent field
          EXPECT_FALSE(same_lease_spec(a, base)) << f->name();
          EXPECT_FALSE(same_lease_spec(base, a)) << f->name();
        }
        r->SetInt32(&a, f, 1);
        r->SetInt32(&b, f, 2);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
        r->SetString(&a, f, "n1");
        r->SetString(&b, f, "n2");
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
        r->MutableMessage(&a, f);  // present, empty
        EXPECT_FALSE(same_lease_spec(a, base)) << f->name();
        EXPECT_FALSE(same_lease_spec(base, a)) << f->name();
        static_cast<Time*>(r->MutableMessage(&a, f))->set_nanos(1);
        static_cast<Time*>(r->MutableMessage(&b, f))->set_nanos(2);
        ASSERT_EQ(f->message_type(), Time::descriptor()) << f->name();
        break;
      default:
        FAIL() << "LeaseSpec." << f->name() << ": a field of a type this test does not set";
    }
    EXPECT_FALSE(same_lease_spec(a, base)) << f->name();
    EXPECT_FALSE(same_lease_spec(a, b)) << f->name();
    EXPECT_TRUE(same_lease_spec(a, LeaseSpec(a))) << f->name();
    EXPECT_NE(a.SerializeAsString(), b.SerializeAsString()) << f->name();
  }
}

// The kind table's spec compare: the Lease's is same_lease_spec on the two
// objects' specs; the other kinds compare serializations (none).
TEST(KindInfoSameSpec, TheLeaseComparesFieldByFieldOthersBySerialization) {
  for (const KindInfo& k : all_kinds()) {
    EXPECT_EQ(k.same_spec != nullptr, k.kind == Kind::kLease) << k.name;
  }
  Lease a, b;
  a.mutable_spec()->set_holder_identity("n1");
  b.mutable_spec()->set_holder_identity("n1");
  b.mutable_metadata()->set_name("other");  // not the spec
  const KindInfo& lease = kind_info(Kind::kLease);
  EXPECT_TRUE(lease.same_spec(a, b));
  b.mutable_spec()->mutable_renew_time()->set_nanos(5);
  EXPECT_FALSE(lease.same_spec(a, b));
  EXPECT_FALSE(lease.same_spec(b, a));
}

// The store's no-op check: equal when the deterministic bytes are, for small
// objects (on the stack) and large ones (a buffer the thread keeps), in any
// order of sizes, a large pair never answering from an earlier pair's bytes.
TEST(SameBytes, ComparesSmallAndLargeObjectsByTheirBytes) {
  auto endpoints = [](int n, const std::string& last_uid) {
    Endpoints e;
    e.mutable_metadata()->set_name("web");
    EndpointSubset* s = e.add_subsets();
    for (int i = 0; i < n; ++i) {
      EndpointAddress* a = s->add_addresses();
      a->set_ip("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
      a->mutable_target_ref()->set_uid(i + 1 == n ? last_uid : "uid-" + std::to_string(i));
    }
    return e;
  };
  const std::string uid_a(36, 'a'), uid_b(36, 'b');
  for (int n : {1, 2000, 40, 5000, 2000}) {
    const Endpoints x = endpoints(n, uid_a);
    EXPECT_TRUE(same_bytes(x, endpoints(n, uid_a))) << n;
    // Same size, one byte apart, at the very end.
    EXPECT_FALSE(same_bytes(x, endpoints(n, uid_b))) << n;
    EXPECT_FALSE(same_bytes(endpoints(n, uid_b), x)) << n;
    EXPECT_FALSE(same_bytes(x, endpoints(n + 1, uid_a))) << n;
    EXPECT_TRUE(same_bytes(x, x)) << n;
    EXPECT_EQ(same_bytes(x, endpoints(n, uid_b)),
              deterministic_bytes(x) == deterministic_bytes(endpoints(n, uid_b)));
  }
}

}  // namespace
}  // namespace flotilla::api
