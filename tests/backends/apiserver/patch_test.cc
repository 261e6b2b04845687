#include "backends/apiserver/patch.h"

#include <gtest/gtest.h>

namespace flotilla::apiserver {
namespace {

using nlohmann::json;

TEST(MergePatch, NullDeletesAndObjectsMergeListsReplace) {
  json target = json::parse(R"({"a":1,"b":{"c":2,"d":3},"l":[1,2]})");
  json patch = json::parse(R"({"a":null,"b":{"c":5},"l":[3]})");
  EXPECT_EQ(merge_patch(target, patch), json::parse(R"({"b":{"c":5,"d":3},"l":[3]})"));
}

TEST(StrategicMergePatch, ContainersMergeByNameAndPortsByContainerPort) {
  json target = json::parse(R"({"spec":{"containers":[
      {"name":"a","image":"x:1","ports":[{"containerPort":80,"name":"http"}]},
      {"name":"b","image":"y:1"}]}})");
  json patch = json::parse(R"({"spec":{"containers":[
      {"name":"a","image":"x:2","ports":[{"containerPort":443,"name":"https"}]},
      {"name":"c","image":"z:1"}]}})");
  auto out = strategic_merge_patch(target, patch);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const json& cs = (*out)["spec"]["containers"];
  ASSERT_EQ(cs.size(), 3u);
  EXPECT_EQ(cs[0]["image"], "x:2");
  EXPECT_EQ(cs[0]["ports"].size(), 2u);  // merged by containerPort, not replaced
  EXPECT_EQ(cs[1]["name"], "b");
  EXPECT_EQ(cs[2]["name"], "c");
}

TEST(StrategicMergePatch, DirectivesDeleteReplaceAndOrder) {
  json target = json::parse(R"({"spec":{"containers":[{"name":"a"},{"name":"b"}],
      "volumes":[{"name":"v1"}],"finalizers":["x","y"]}})");
  json patch = json::parse(R"({"spec":{
      "containers":[{"name":"a","$patch":"delete"},{"name":"c"}],
      "$setElementOrder/containers":[{"name":"c"},{"name":"b"}],
      "volumes":[{"$patch":"replace"},{"name":"v2"}],
      "$deleteFromPrimitiveList/finalizers":["x"]}})");
  auto out = strategic_merge_patch(target, patch);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)["spec"]["containers"], json::parse(R"([{"name":"c"},{"name":"b"}])"));
  EXPECT_EQ((*out)["spec"]["volumes"], json::parse(R"([{"name":"v2"}])"));
  EXPECT_EQ((*out)["spec"]["finalizers"], json::parse(R"(["y"])"));
}

TEST(StrategicMergePatch, ItemWithoutMergeKeyIsRejected) {
  json target = json::parse(R"({"spec":{"containers":[{"name":"a"}]}})");
  auto out = strategic_merge_patch(target, json::parse(R"({"spec":{"containers":[{"image":"x"}]}})"));
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().code(), StatusCode::kBadRequest);
}

TEST(JsonPatch, OperationsAndFailedTest) {
  json target = json::parse(R"({"spec":{"replicas":1}})");
  auto out = json_patch(target, json::parse(R"([{"op":"replace","path":"/spec/replicas","value":4}])"));
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ((*out)["spec"]["replicas"], 4);
  auto failed = json_patch(target, json::parse(R"([{"op":"test","path":"/spec/replicas","value":9}])"));
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalid);
}

TEST(YamlToJson, ScalarsKeepTheirTypes) {
  auto out = yaml_to_json("a: 1\nb: \"1\"\nc: true\nd: ~\ne: web\nf: 1.5\n");
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(*out, json::parse(R"({"a":1,"b":"1","c":true,"d":null,"e":"web","f":1.5})"));
}

}  // namespace
}  // namespace flotilla::apiserver
