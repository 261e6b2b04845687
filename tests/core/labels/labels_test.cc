// Label and field selectors: parsing, canonical form, matching with Kubernetes
// semantics, and the invalid forms a user must be told about.
#include "core/api/labels.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "core/api/types.pb.h"

namespace flotilla::api {
namespace {

using ::testing::HasSubstr;

Labels labels(const std::vector<std::pair<const char*, const char*>>& kv) {
  Labels l;
  for (const auto& [k, v] : kv) l[k] = v;
  return l;
}

LabelSelector must_parse(std::string_view text) {
  StatusOr<LabelSelector> s = LabelSelector::parse(text);
  EXPECT_TRUE(s.is_ok()) << text << ": " << s.status().to_string();
  return s.is_ok() ? *s : LabelSelector();
}

bool sel_matches(std::string_view text, const Labels& l) { return must_parse(text).matches(l); }

// ------------------------------------------------------------------ parsing

struct CanonicalCase {
  const char* input;
  const char* canonical;
};

class LabelCanonical : public ::testing::TestWithParam<CanonicalCase> {};

TEST_P(LabelCanonical, ParsesToCanonicalFormThatRoundTrips) {
  LabelSelector s = must_parse(GetParam().input);
  EXPECT_EQ(s.to_string(), GetParam().canonical);
  LabelSelector again = must_parse(s.to_string());
  EXPECT_EQ(again, s);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, LabelCanonical,
    ::testing::Values(
        CanonicalCase{"", ""}, CanonicalCase{"   ", ""}, CanonicalCase{"app=web", "app=web"},
        CanonicalCase{"app==web", "app=web"}, CanonicalCase{"app!=web", "app!=web"},
        CanonicalCase{" app = web ", "app=web"}, CanonicalCase{"tier in (b,a)", "tier in (a,b)"},
        CanonicalCase{"tier in(a, b ,a)", "tier in (a,b)"},
        CanonicalCase{"tier notin (x)", "tier notin (x)"}, CanonicalCase{"app", "app"},
        CanonicalCase{"!app", "!app"}, CanonicalCase{"! app", "!app"},
        CanonicalCase{"z=1,a=2", "a=2,z=1"}, CanonicalCase{"app=web,app", "app=web,app"},
        CanonicalCase{"app,app=web", "app=web,app"}, CanonicalCase{"a=", "a="},
        CanonicalCase{"a!=", "a!="}, CanonicalCase{"x in (in,notin)", "x in (in,notin)"},
        CanonicalCase{"a=in", "a=in"},
        CanonicalCase{"example.com/app=web,k8s.io/x-y_z.w=V-1",
                      "example.com/app=web,k8s.io/x-y_z.w=V-1"},
        CanonicalCase{"env in (prod,qa),tier notin (front),!legacy,app=web",
                      "app=web,env in (prod,qa),!legacy,tier notin (front)"}));

TEST(LabelSelectorParse, KeepsRequirementStructure) {
  LabelSelector s = must_parse("tier in (b,a),app!=web,!old,new");
  ASSERT_EQ(s.requirements().size(), 4u);
  EXPECT_EQ(s.requirements()[0],
            (LabelRequirement{"app", LabelRequirement::Op::kNotEquals, {"web"}}));
  EXPECT_EQ(s.requirements()[1], (LabelRequirement{"new", LabelRequirement::Op::kExists, {}}));
  EXPECT_EQ(s.requirements()[2],
            (LabelRequirement{"old", LabelRequirement::Op::kDoesNotExist, {}}));
  EXPECT_EQ(s.requirements()[3], (LabelRequirement{"tier", LabelRequirement::Op::kIn, {"a", "b"}}));
}

TEST(LabelSelectorParse, ExactValue) {
  LabelSelector s = must_parse("app=web,tier in (db),env in (a,b),x!=y");
  ASSERT_NE(s.exact_value("app"), nullptr);
  EXPECT_EQ(*s.exact_value("app"), "web");
  ASSERT_NE(s.exact_value("tier"), nullptr);
  EXPECT_EQ(*s.exact_value("tier"), "db");
  EXPECT_EQ(s.exact_value("env"), nullptr);
  EXPECT_EQ(s.exact_value("x"), nullptr);
  EXPECT_EQ(s.exact_value("missing"), nullptr);
}

TEST(LabelSelectorParse, FromMapIsSortedEquality) {
  LabelSelector s = LabelSelector::from_map(labels({{"tier", "db"}, {"app", "web"}}));
  EXPECT_EQ(s.to_string(), "app=web,tier=db");
  EXPECT_TRUE(s.matches(labels({{"app", "web"}, {"tier", "db"}, {"x", "y"}})));
  EXPECT_FALSE(s.matches(labels({{"app", "web"}})));
  LabelSelector all = LabelSelector::from_map(Labels());
  EXPECT_TRUE(all.empty());
  EXPECT_TRUE(all.matches(labels({})));
}

// ----------------------------------------------------------------- matching

struct MatchCase {
  const char* selector;
  std::vector<std::pair<const char*, const char*>> labels;
  bool matches;
};

class LabelMatch : public ::testing::TestWithParam<MatchCase> {};

TEST_P(LabelMatch, FollowsKubernetesSemantics) {
  const MatchCase& c = GetParam();
  EXPECT_EQ(sel_matches(c.selector, labels(c.labels)), c.matches) << c.selector;
}

INSTANTIATE_TEST_SUITE_P(
    Semantics, LabelMatch,
    ::testing::Values(
        MatchCase{"", {}, true}, MatchCase{"", {{"a", "b"}}, true},
        MatchCase{"app=web", {{"app", "web"}}, true}, MatchCase{"app=web", {{"app", "db"}}, false},
        MatchCase{"app=web", {}, false}, MatchCase{"app==web", {{"app", "web"}}, true},
        MatchCase{"app!=web", {{"app", "db"}}, true},
        MatchCase{"app!=web", {{"app", "web"}}, false},
        // != also matches objects WITHOUT the key
        MatchCase{"app!=web", {}, true}, MatchCase{"app!=web", {{"other", "web"}}, true},
        MatchCase{"tier in (a,b)", {{"tier", "a"}}, true},
        MatchCase{"tier in (a,b)", {{"tier", "b"}}, true},
        MatchCase{"tier in (a,b)", {{"tier", "c"}}, false}, MatchCase{"tier in (a,b)", {}, false},
        MatchCase{"tier notin (a,b)", {{"tier", "c"}}, true},
        MatchCase{"tier notin (a,b)", {{"tier", "a"}}, false},
        // notin also matches when the key is absent
        MatchCase{"tier notin (a,b)", {}, true}, MatchCase{"app", {{"app", ""}}, true},
        MatchCase{"app", {{"apps", "x"}}, false}, MatchCase{"!app", {}, true},
        MatchCase{"!app", {{"app", "x"}}, false}, MatchCase{"a=", {{"a", ""}}, true},
        MatchCase{"a=", {}, false}, MatchCase{"a!=", {}, true},
        MatchCase{"a!=", {{"a", ""}}, false},
        MatchCase{"app=web,tier in (db)", {{"app", "web"}, {"tier", "db"}}, true},
        MatchCase{"app=web,tier in (db)", {{"app", "web"}, {"tier", "fe"}}, false},
        MatchCase{"app=web,app=db", {{"app", "web"}}, false},
        MatchCase{"app=web,!legacy,env notin (dev)", {{"app", "web"}, {"env", "prod"}}, true},
        MatchCase{"app=web,!legacy,env notin (dev)", {{"app", "web"}, {"legacy", "1"}}, false},
        MatchCase{"example.com/role=api", {{"example.com/role", "api"}}, true},
        MatchCase{"example.com/role=api", {{"role", "api"}}, false},
        MatchCase{"v=Web", {{"v", "web"}}, false}));

// ------------------------------------------------------------ invalid forms

struct InvalidCase {
  const char* selector;
  const char* message_part;
};

class LabelInvalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(LabelInvalid, IsRejectedWithAClearMessage) {
  StatusOr<LabelSelector> s = LabelSelector::parse(GetParam().selector);
  ASSERT_FALSE(s.is_ok()) << GetParam().selector << " parsed as " << s->to_string();
  EXPECT_EQ(s.status().code(), StatusCode::kBadRequest);
  EXPECT_THAT(s.status().message(), HasSubstr("invalid label selector"));
  EXPECT_THAT(s.status().message(), HasSubstr(GetParam().message_part)) << GetParam().selector;
}

INSTANTIATE_TEST_SUITE_P(
    Forms, LabelInvalid,
    ::testing::Values(
        InvalidCase{"=web", "empty key"}, InvalidCase{"==web", "empty key"},
        InvalidCase{"!=web", "empty key"}, InvalidCase{" = web", "empty key"},
        InvalidCase{"app=web,", "trailing comma"}, InvalidCase{",app=web", "empty requirement"},
        InvalidCase{"app=web,,tier=db", "empty requirement"},
        InvalidCase{"tier in ()", "cannot be empty"},
        InvalidCase{"tier notin ( )", "cannot be empty"},
        InvalidCase{"tier in a", "parenthesized list"},
        InvalidCase{"tier in", "parenthesized list"},
        InvalidCase{"tier notin a,b", "parenthesized list"},
        InvalidCase{"tier in (a,b", "missing ')'"}, InvalidCase{"tier in (a", "missing ')'"},
        InvalidCase{"tier in (a b)", "expected ',' or ')'"},
        InvalidCase{"tier in (a,)", "trailing comma"}, InvalidCase{"tier in (,a)", "empty value"},
        InvalidCase{"tier in ((a))", "expected a label value"},
        InvalidCase{"app=web)", "unbalanced parentheses"},
        InvalidCase{"app)", "unbalanced parentheses"},
        InvalidCase{"app > 3", "operator '>' is not supported"},
        InvalidCase{"app < 3", "operator '<' is not supported"},
        InvalidCase{"app ~ web", "expected an operator"},
        InvalidCase{"app web", "expected an operator"},
        InvalidCase{"app !web", "did you mean '!='"},
        InvalidCase{"app=web=x", "expected ',' or end of string"},
        InvalidCase{"app=(web)", "expected a label value"},
        InvalidCase{"app===web", "expected a label value"}, InvalidCase{"!", "missing label key"},
        InvalidCase{"!app=web", "expected ',' or end of string"},
        InvalidCase{"in=web", "expected a label key"},
        InvalidCase{"-app=web", "name part must consist of alphanumeric"},
        InvalidCase{"app-=web", "name part must consist of alphanumeric"},
        InvalidCase{"my app=web", "expected an operator"},
        InvalidCase{"a$b=c", "name part must consist of alphanumeric"},
        InvalidCase{"/app=web", "prefix part must not be empty"},
        InvalidCase{"example.com/=web", "name part must not be empty"},
        InvalidCase{"a/b/c=web", "optional DNS subdomain prefix"},
        InvalidCase{"Example.com/app=web", "RFC 1123 subdomain"},
        InvalidCase{"ex_ample.com/app=web", "RFC 1123 subdomain"},
        InvalidCase{"app=-web", "label value \"-web\""},
        InvalidCase{"app=we$b", "must consist of alphanumeric"},
        InvalidCase{"tier in (a,b_)", "label value \"b_\""},
        InvalidCase{"app=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "no more than 63 characters"},
        InvalidCase{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=x",
                    "no more than 63 characters"}));

TEST(LabelSyntax, KeyAndValueChecks) {
  EXPECT_TRUE(check_label_key("app").is_ok());
  EXPECT_TRUE(check_label_key("app.kubernetes.io/name").is_ok());
  EXPECT_TRUE(check_label_key("A_b.c-D").is_ok());
  EXPECT_TRUE(check_label_key(std::string(63, 'a')).is_ok());
  EXPECT_FALSE(check_label_key(std::string(64, 'a')).is_ok());
  EXPECT_FALSE(check_label_key("").is_ok());
  EXPECT_FALSE(check_label_key("a..b/c").is_ok());
  EXPECT_FALSE(check_label_key(std::string(254, 'a') + "/x").is_ok());
  EXPECT_TRUE(check_label_value("").is_ok());
  EXPECT_TRUE(check_label_value("v1.2-3_x").is_ok());
  EXPECT_FALSE(check_label_value("v1 2").is_ok());
  EXPECT_FALSE(check_label_value("_v").is_ok());
}

// ----------------------------------------------------------- field selectors

Pod pod(const char* ns, const char* name, const char* node, const char* phase) {
  Pod p;
  p.mutable_metadata()->set_namespace_(ns);
  p.mutable_metadata()->set_name(name);
  p.mutable_spec()->set_node_name(node);
  p.mutable_status()->set_phase(phase);
  return p;
}

FieldSelector must_parse_fields(std::string_view text) {
  StatusOr<FieldSelector> s = FieldSelector::parse(text);
  EXPECT_TRUE(s.is_ok()) << text << ": " << s.status().to_string();
  return s.is_ok() ? *s : FieldSelector();
}

TEST(FieldSelector, ParsesAndCanonicalises) {
  EXPECT_TRUE(must_parse_fields("").empty());
  EXPECT_TRUE(must_parse_fields("  ").empty());
  EXPECT_EQ(must_parse_fields("spec.nodeName=n1").to_string(), "spec.nodeName=n1");
  EXPECT_EQ(must_parse_fields("spec.nodeName==n1").to_string(), "spec.nodeName=n1");
  EXPECT_EQ(must_parse_fields(" status.phase != Running , spec.nodeName = n1 ").to_string(),
            "spec.nodeName=n1,status.phase!=Running");
  EXPECT_EQ(must_parse_fields("metadata.name=a\\,b").requirements().front().value, "a,b");
  EXPECT_EQ(must_parse_fields("metadata.name=a\\,b").to_string(), "metadata.name=a\\,b");
  EXPECT_EQ(must_parse_fields("metadata.name=x=y").requirements().front().value, "x=y");
  FieldSelector s = must_parse_fields("spec.nodeName=");
  ASSERT_EQ(s.requirements().size(), 1u);
  EXPECT_EQ(s.requirements().front().value, "");
  EXPECT_EQ(must_parse_fields(s.to_string()), s);
}

TEST(FieldSelector, MatchesPods) {
  Pod running = pod("prod", "web-1", "n1", "Running");
  Pod pending = pod("default", "web-2", "", "Pending");
  EXPECT_TRUE(must_parse_fields("spec.nodeName=n1").matches(running));
  EXPECT_FALSE(must_parse_fields("spec.nodeName=n1").matches(pending));
  EXPECT_TRUE(must_parse_fields("spec.nodeName=").matches(pending));
  EXPECT_FALSE(must_parse_fields("spec.nodeName=").matches(running));
  EXPECT_TRUE(must_parse_fields("spec.nodeName!=n2").matches(running));
  EXPECT_TRUE(must_parse_fields("status.phase!=Running").matches(pending));
  EXPECT_FALSE(must_parse_fields("status.phase!=Running").matches(running));
  EXPECT_TRUE(must_parse_fields("metadata.name=web-1,metadata.namespace=prod").matches(running));
  EXPECT_FALSE(
      must_parse_fields("metadata.name=web-1,metadata.namespace=default").matches(running));
  EXPECT_TRUE(FieldSelector().matches(running));
}

TEST(FieldSelector, FieldsAKindLacksReadAsEmpty) {
  Service svc;
  svc.mutable_metadata()->set_name("web");
  EXPECT_TRUE(must_parse_fields("spec.nodeName=").matches(svc));
  EXPECT_FALSE(must_parse_fields("spec.nodeName=n1").matches(svc));
  EXPECT_TRUE(must_parse_fields("metadata.name=web").matches(svc));
  Node node;
  node.mutable_status()->set_phase("Running");
  EXPECT_EQ(FieldSelector::field_value(node, "status.phase"), "Running");
}

TEST(FieldSelector, SameFieldsComparesEverySelectableField) {
  Pod a = pod("prod", "web-1", "n1", "Running");
  Pod b = a;
  b.mutable_status()->set_pod_ip("10.0.0.9");  // not a selectable field
  (*b.mutable_metadata()->mutable_annotations())["note"] = "x";
  EXPECT_TRUE(FieldSelector::same_fields(a, b));
  Pod moved = a;
  moved.mutable_spec()->set_node_name("n2");
  EXPECT_FALSE(FieldSelector::same_fields(a, moved));
  Pod done = a;
  done.mutable_status()->set_phase("Succeeded");
  EXPECT_FALSE(FieldSelector::same_fields(a, done));
  Node up;
  up.mutable_metadata()->set_name("n1");
  up.mutable_status()->set_phase("Running");
  Node gone = up;
  gone.mutable_status()->set_phase("Terminated");
  EXPECT_FALSE(FieldSelector::same_fields(up, gone));
  EXPECT_TRUE(FieldSelector::same_fields(up, up));
  Node renamed = up;
  renamed.mutable_metadata()->set_name("n2");
  EXPECT_FALSE(FieldSelector::same_fields(up, renamed));
  Pod elsewhere = a;
  elsewhere.mutable_metadata()->set_namespace_("dev");
  EXPECT_FALSE(FieldSelector::same_fields(a, elsewhere));
  // A kind with no selectable field beyond the metadata's: a renewal is the same.
  Lease held;
  held.mutable_metadata()->set_name("n1");
  held.mutable_metadata()->set_namespace_("kube-node-lease");
  Lease renewed = held;
  renewed.mutable_spec()->mutable_renew_time()->set_nanos(10);
  EXPECT_TRUE(FieldSelector::same_fields(held, renewed));
  Lease other = held;
  other.mutable_metadata()->set_name("n2");
  EXPECT_FALSE(FieldSelector::same_fields(held, other));
  // Two kinds: the fields each has are compared, as field_value reads them.
  Node named_like_pod;
  named_like_pod.mutable_metadata()->set_name("web-1");
  named_like_pod.mutable_metadata()->set_namespace_("prod");
  EXPECT_FALSE(FieldSelector::same_fields(a, named_like_pod));
}

TEST(FieldSelector, ExactValue) {
  FieldSelector s = must_parse_fields("spec.nodeName=n1,status.phase!=Failed");
  ASSERT_NE(s.exact_value("spec.nodeName"), nullptr);
  EXPECT_EQ(*s.exact_value("spec.nodeName"), "n1");
  EXPECT_EQ(s.exact_value("status.phase"), nullptr);
}

struct FieldInvalidCase {
  const char* selector;
  const char* message_part;
};
class FieldInvalid : public ::testing::TestWithParam<FieldInvalidCase> {};

TEST_P(FieldInvalid, IsRejectedWithAClearMessage) {
  StatusOr<FieldSelector> s = FieldSelector::parse(GetParam().selector);
  ASSERT_FALSE(s.is_ok()) << GetParam().selector;
  EXPECT_EQ(s.status().code(), StatusCode::kBadRequest);
  EXPECT_THAT(s.status().message(), HasSubstr(GetParam().message_part));
}

INSTANTIATE_TEST_SUITE_P(
    Forms, FieldInvalid,
    ::testing::Values(FieldInvalidCase{"spec.foo=x", "field label not supported: \"spec.foo\""},
                      FieldInvalidCase{
                          "spec.foo=x",
                          "(supported: metadata.name, metadata.namespace, spec.nodeName, "
                          "status.phase)"},
                      FieldInvalidCase{"spec.nodename=x", "not supported"},
                      FieldInvalidCase{"spec.nodeName", "has no operator"},
                      FieldInvalidCase{"=x", "empty field name"},
                      FieldInvalidCase{"spec.nodeName=a,", "trailing comma"},
                      FieldInvalidCase{"spec.nodeName=a,,status.phase=b", "empty requirement"},
                      FieldInvalidCase{"metadata.name=a\\x", "invalid escape sequence"},
                      FieldInvalidCase{"metadata.name=a\\", "escapes nothing"}));

}  // namespace
}  // namespace flotilla::api
