// The kind table: finding an object's kind and its typed accessors.
#include "core/api/object.h"

#include <google/protobuf/dynamic_message.h>
#include <gtest/gtest.h>

#include <memory>

namespace flotilla::api {
namespace {

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

}  // namespace
}  // namespace flotilla::api
