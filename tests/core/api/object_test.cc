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

}  // namespace
}  // namespace flotilla::api
