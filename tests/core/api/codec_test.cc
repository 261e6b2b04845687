#include "core/api/codec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "core/api/types.pb.h"
#include "core/api/validation.h"

namespace flotilla::api {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

// Strings chosen to trip a careless printer: numbers, booleans, nulls, colons,
// quotes, newlines, non-ASCII.
const char* const kTrickyStrings[] = {
    "plain",   "8080",  "128Mi", "1e3", "0x1F", "12:30",         "true",        "",           "null",       "with: colon",
    "a #hash", "multi\nline",  "quote\"d",    "ünïcödé ✓",  "-dash",      "1.0",
    "yes",     "  padded  ",   "tab\there",   "~",          "{brace}",    "http://x:80/p"};

class Filler {
 public:
  void fill(pb::Message* m, int depth = 0) {
    const pb::Descriptor* d = m->GetDescriptor();
    const pb::Reflection* r = m->GetReflection();
    if (d->full_name() == "flotilla.api.Time") {
      r->SetInt64(m, d->FindFieldByName("nanos"), 1767323045000000000 + (++n_ % 2) * 123456789);
      return;
    }
    if (d->full_name() == "flotilla.api.IntOrString") {
      if (++n_ % 2) {
        r->SetInt32(m, d->FindFieldByName("int_val"), 8080);
      } else {
        r->SetString(m, d->FindFieldByName("str_val"), (n_ % 4) ? "http" : "9090");
      }
      return;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* f = d->field(i);
      if (f->is_map()) {
        for (const char* key : {"zeta.io/b", "alpha", "8080"}) {
          pb::Message* e = r->AddMessage(m, f);
          e->GetReflection()->SetString(e, f->message_type()->map_key(), key);
          e->GetReflection()->SetString(e, f->message_type()->map_value(), next_string());
        }
      } else if (f->is_repeated()) {
        for (int j = 0; j < 2; ++j) add_or_set(m, f, true, depth);
      } else {
        add_or_set(m, f, false, depth);
      }
    }
  }

 private:
  std::string next_string() { return kTrickyStrings[n_++ % std::size(kTrickyStrings)]; }

  void add_or_set(pb::Message* m, const FD* f, bool add, int depth) {
    const pb::Reflection* r = m->GetReflection();
    bool zero = f->has_presence() && !add && f->cpp_type() != FD::CPPTYPE_MESSAGE && (++n_ % 2);
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING: {
        std::string s = next_string();
        if (s.empty() && !add && !f->has_presence()) s = "nonempty";
        add ? r->AddString(m, f, s) : r->SetString(m, f, s);
        break;
      }
      case FD::CPPTYPE_INT32: {
        int32_t v = zero ? 0 : (++n_ % 2 ? -2147483647 - 1 : 65535);
        add ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
        break;
      }
      case FD::CPPTYPE_INT64: {
        int64_t v = zero ? 0 : (++n_ % 2 ? 9223372036854775807 : -42);
        add ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
        break;
      }
      case FD::CPPTYPE_BOOL:
        add ? r->AddBool(m, f, !zero) : r->SetBool(m, f, !zero);
        break;
      case FD::CPPTYPE_MESSAGE:
        if (depth < 12) fill(add ? r->AddMessage(m, f) : r->MutableMessage(m, f), depth + 1);
        break;
      default:
        FAIL() << "filler does not know " << f->full_name();
    }
  }

  int n_ = 0;
};

bool same(const pb::Message& a, const pb::Message& b, std::string* diff) {
  pb::util::MessageDifferencer d;
  d.ReportDifferencesToString(diff);
  return d.Compare(a, b);
}

TEST(CodecTest, AGroupKindNeedsItsGroupVersion) {
  auto ok = decode_manifests(
      "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: n1, namespace: "
      "kube-node-lease}\nspec: {holderIdentity: n1, leaseDurationSeconds: 40, renewTime: "
      "\"2026-01-02T03:04:05.123456Z\"}\n",
      "l.yaml");
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  const auto& lease = static_cast<const api::Lease&>(*ok->front().object);
  EXPECT_EQ(lease.spec().lease_duration_seconds(), 40);
  EXPECT_EQ(lease.spec().renew_time().nanos() % 1'000'000'000, 123'456'000);
  auto core = decode_manifests("apiVersion: v1\nkind: Lease\nmetadata: {name: n1}\n", "l.yaml");
  ASSERT_FALSE(core.is_ok());
  EXPECT_NE(core.status().message().find("l.yaml:1:1: no matches for kind \"Lease\" in version \"v1\""),
            std::string::npos)
      << core.status().message();
  auto pod = decode_manifests("apiVersion: coordination.k8s.io/v1\nkind: Pod\n", "p.yaml");
  EXPECT_FALSE(pod.is_ok());
}

TEST(CodecTest, AnEndpointSliceDecodesWithItsGroupVersion) {
  auto ok = decode_manifests(
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-abc, labels: "
      "{kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: "
      "[10.0.0.1], conditions: {ready: false, serving: true}, nodeName: n1, targetRef: {kind: "
      "Pod, name: web-1}}]\nports: [{name: http, port: 8080, protocol: TCP}]\n",
      "s.yaml");
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  ASSERT_EQ(ok->front().kind, Kind::kEndpointSlice);
  const auto& s = static_cast<const api::EndpointSlice&>(*ok->front().object);
  EXPECT_EQ(s.address_type(), "IPv4");
  ASSERT_EQ(s.endpoints_size(), 1);
  EXPECT_EQ(s.endpoints(0).addresses(0), "10.0.0.1");
  EXPECT_TRUE(s.endpoints(0).conditions().has_ready());
  EXPECT_FALSE(s.endpoints(0).conditions().ready());
  EXPECT_FALSE(s.endpoints(0).conditions().has_terminating());  // unset stays unset
  EXPECT_EQ(s.endpoints(0).node_name(), "n1");
  EXPECT_EQ(s.endpoints(0).target_ref().name(), "web-1");
  EXPECT_EQ(s.ports(0).port(), 8080);
  auto core = decode_manifests("apiVersion: v1\nkind: EndpointSlice\nmetadata: {name: x}\n", "s.yaml");
  ASSERT_FALSE(core.is_ok());
  EXPECT_NE(core.status().message().find(
                "no matches for kind \"EndpointSlice\" in version \"v1\""),
            std::string::npos)
      << core.status().message();
}

TEST(CodecTest, EveryFieldOfEveryKindRoundTripsThroughJsonAndYaml) {
  for (const KindInfo& k : all_kinds()) {
    auto original = k.make();
    Filler().fill(original.get());
    fill_type_meta(original.get());  // filler wrote junk kind/apiVersion; put real ones
    original->GetReflection()->SetString(
        original.get(), original->GetDescriptor()->FindFieldByName("api_version"),
        std::string(k.api_version));
    original->GetReflection()->SetString(
        original.get(), original->GetDescriptor()->FindFieldByName("kind"), std::string(k.name));

    for (bool pretty : {false, true}) {
      std::string json = encode_json(*original, pretty);
      auto decoded = decode_manifests(json, "x.json");
      ASSERT_TRUE(decoded.is_ok()) << k.name << ": " << decoded.status().message() << "\n" << json;
      ASSERT_EQ(decoded->size(), 1u);
      EXPECT_TRUE((*decoded)[0].warnings.empty());
      std::string diff;
      EXPECT_TRUE(same(*original, *(*decoded)[0].object, &diff)) << k.name << " json: " << diff;
    }
    std::string yaml = encode_yaml(*original);
    auto decoded = decode_manifests(yaml, "x.yaml");
    ASSERT_TRUE(decoded.is_ok()) << k.name << ": " << decoded.status().message() << "\n" << yaml;
    ASSERT_EQ(decoded->size(), 1u);
    std::string diff;
    EXPECT_TRUE(same(*original, *(*decoded)[0].object, &diff)) << k.name << " yaml: " << diff
                                                               << "\n" << yaml;
    // Deterministic: encoding the decoded copy gives the same bytes.
    EXPECT_EQ(encode_yaml(*(*decoded)[0].object), yaml);
  }
}

TEST(CodecTest, StatusMessageRoundTripsThroughTheGenericDecoder) {
  Status original;
  Filler().fill(&original);
  Status back;
  std::vector<DecodeWarning> warnings;
  ASSERT_TRUE(decode_yaml(encode_yaml(original), "s.yaml", &back, &warnings).is_ok());
  std::string diff;
  EXPECT_TRUE(same(original, back, &diff)) << diff;
  EXPECT_TRUE(warnings.empty());
}

constexpr const char* kRc = R"(# a replication controller
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: apache
        image: httpd:2.4
        imagePullSecretz: nope
        ports:
        - containerPort: 80
          name: http
        livenessProbe:
          httpGet: {path: /, port: http}
      volumes:
      - name: cache
        emptyDir: {}
)";

TEST(CodecTest, DecodesAManifestWithPositionsAndUnknownFieldWarnings) {
  auto r = decode_manifests(kRc, "web.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  const DecodedObject& o = (*r)[0];
  EXPECT_EQ(o.kind, Kind::kReplicationController);
  EXPECT_EQ(o.source, "web.yaml");
  EXPECT_EQ(o.line, 2);
  ASSERT_EQ(o.warnings.size(), 1u);
  EXPECT_EQ(o.warnings[0].to_string(),
            "spec.template.spec.containers[0].imagePullSecretz: unknown field");
  EXPECT_EQ(o.warnings[0].line, 19);
  EXPECT_EQ(o.warnings[0].column, 9);

  const auto& rc = static_cast<const ReplicationController&>(*o.object);
  EXPECT_EQ(rc.metadata().name(), "web");
  EXPECT_EQ(rc.metadata().labels().at("app"), "web");
  EXPECT_TRUE(rc.spec().has_replicas());
  EXPECT_EQ(rc.spec().replicas(), 3);
  const Container& c = rc.spec().template_().spec().containers(0);
  EXPECT_EQ(c.image(), "httpd:2.4");
  EXPECT_EQ(c.ports(0).container_port(), 80);
  EXPECT_EQ(c.liveness_probe().http_get().port().str_val(), "http");
  EXPECT_TRUE(rc.spec().template_().spec().volumes(0).has_empty_dir());
}

TEST(CodecTest, TypeErrorsNameFieldPathLineAndColumn) {
  std::string text = kRc;
  text.replace(text.find("replicas: 3"), 11, "replicas: three");
  auto r = decode_manifests(text, "web.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kBadRequest);
  EXPECT_EQ(r.status().message(), "web.yaml:8:13: spec.replicas: expected an integer, got \"three\"");

  auto quoted = decode_manifests("apiVersion: v1\nkind: Pod\nspec:\n  priority: \"5\"\n", "p.yaml");
  ASSERT_FALSE(quoted.is_ok());
  EXPECT_EQ(quoted.status().message(), "p.yaml:4:13: spec.priority: expected an integer, got \"5\"");

  auto range = decode_manifests("apiVersion: v1\nkind: Pod\nspec:\n  priority: 3000000000\n", "p.yaml");
  ASSERT_FALSE(range.is_ok());
  EXPECT_EQ(range.status().message(),
            "p.yaml:4:13: spec.priority: integer 3000000000 is out of range for int32");

  auto shape = decode_manifests("apiVersion: v1\nkind: Pod\nspec:\n  containers: {name: a}\n", "p.yaml");
  ASSERT_FALSE(shape.is_ok());
  EXPECT_EQ(shape.status().message(),
            "p.yaml:4:15: spec.containers: expected a sequence, got a mapping");

  auto boolean = decode_manifests(
      "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    volumeMounts:\n"
      "    - {name: v, readOnly: maybe}\n",
      "p.yaml");
  ASSERT_FALSE(boolean.is_ok());
  EXPECT_EQ(boolean.status().message(),
            "p.yaml:7:27: spec.containers[0].volumeMounts[0].readOnly: expected a boolean, got "
            "\"maybe\"");

  auto labels = decode_manifests("apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    a: [1]\n",
                                 "p.yaml");
  ASSERT_FALSE(labels.is_ok());
  EXPECT_EQ(labels.status().message(),
            "p.yaml:5:8: metadata.labels[a]: expected a string, got a sequence");
}

TEST(CodecTest, SyntaxErrorsReportLineAndColumn) {
  auto r = decode_manifests("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n", "bad.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kBadRequest);
  EXPECT_EQ(r.status().message().rfind("bad.yaml:", 0), 0u) << r.status().message();
  EXPECT_NE(r.status().message().find("invalid YAML"), std::string::npos);
  // line:column after the file name
  std::string rest = r.status().message().substr(9);
  EXPECT_TRUE(isdigit(rest[0])) << r.status().message();

  auto tabs = decode_manifests("a:\n\t- b\n", "tab.yaml");
  EXPECT_FALSE(tabs.is_ok());
}

TEST(CodecTest, MultiDocumentStreamsSkipEmptyDocuments) {
  const char* text =
      "---\n"
      "# only a comment\n"
      "---\n"
      "apiVersion: v1\n"
      "kind: Service\n"
      "metadata: {name: web}\n"
      "---\n"
      "---\n"
      "apiVersion: v1\n"
      "kind: Namespace\n"
      "metadata: {name: team-a}\n"
      "...\n";
  auto r = decode_manifests(text, "all.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].kind, Kind::kService);
  EXPECT_EQ((*r)[0].line, 4);
  EXPECT_EQ((*r)[1].kind, Kind::kNamespace);
  EXPECT_EQ((*r)[1].line, 9);
  EXPECT_EQ(meta_of(*(*r)[1].object).name(), "team-a");

  auto empty = decode_manifests("", "empty.yaml");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
}

TEST(CodecTest, ReadsJsonWithBigIntegersAndEscapes) {
  const char* json = R"({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "p\u00e9", "generation": 9223372036854775807,
               "annotations": {"note": "line1\nline2 \"q\" \\ \/"},
               "deletionGracePeriodSeconds": -9223372036854775808},
  "spec": {"containers": [{"name": "c", "image": "busybox", "env": [{"name": "N", "value": 8080}]}],
           "activeDeadlineSeconds": 0}
})";
  auto r = decode_manifests(json, "pod.json");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const auto& pod = static_cast<const Pod&>(*(*r)[0].object);
  EXPECT_EQ(pod.metadata().name(), "p\xc3\xa9");
  EXPECT_EQ(pod.metadata().generation(), 9223372036854775807);
  EXPECT_EQ(pod.metadata().deletion_grace_period_seconds(), -9223372036854775807 - 1);
  EXPECT_EQ(pod.metadata().annotations().at("note"), "line1\nline2 \"q\" \\ /");
  EXPECT_EQ(pod.spec().containers(0).env(0).value(), "8080");
  EXPECT_TRUE(pod.spec().has_active_deadline_seconds());  // explicit zero is kept

  std::string out = encode_json(pod);
  EXPECT_NE(out.find("\"generation\":9223372036854775807"), std::string::npos) << out;
  EXPECT_NE(out.find("\"activeDeadlineSeconds\":0"), std::string::npos) << out;

  auto too_big = decode_manifests(
      R"({"apiVersion": "v1", "kind": "Pod", "metadata": {"generation": 9223372036854775808}})",
      "big.json");
  ASSERT_FALSE(too_big.is_ok());
  EXPECT_NE(too_big.status().message().find("metadata.generation: integer 9223372036854775808 is "
                                            "out of range for int64"),
            std::string::npos)
      << too_big.status().message();
}

// JSON with an object key over 1,024 characters, which YAML's implicit keys
// cannot hold (found by the codec fuzzer), is read as JSON: the key comes back
// whole, strings stay strings, and validation, not the reader, refuses it.
// Text that is neither YAML nor JSON keeps the YAML error and its position.
TEST(CodecTest, ReadsJsonWithKeysLongerThanYamlAllows) {
  const std::string key(1030, 'k');
  const std::string json = R"({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
    "annotations": {")" + key + R"(": "v", "n": "1"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}], "activeDeadlineSeconds": 5}})";
  auto r = decode_manifests(json, "pod.json");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  const auto& pod = static_cast<const Pod&>(*(*r)[0].object);
  EXPECT_EQ(pod.metadata().annotations().at(key), "v");
  EXPECT_EQ(pod.metadata().annotations().at("n"), "1");
  EXPECT_EQ(pod.spec().active_deadline_seconds(), 5);
  EXPECT_FALSE(validate(pod).empty());  // no valid key is that long

  Pod one;
  ASSERT_TRUE(decode_yaml(json, "pod.json", &one, nullptr).is_ok());
  EXPECT_EQ(one.metadata().annotations().at(key), "v");

  auto typed = decode_manifests(R"({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
    "annotations": {")" + key + R"(": "v"}, "generation": "x"}})",
                                "typed.json");
  ASSERT_FALSE(typed.is_ok());
  EXPECT_NE(typed.status().message().find("metadata.generation"), std::string::npos)
      << typed.status().message();

  // The fuzzer's case: a key of control characters, each written as six.
  Pod odd;
  odd.set_api_version("v1");
  odd.set_kind("Pod");
  odd.mutable_metadata()->set_name("p");
  (*odd.mutable_metadata()->mutable_annotations())[std::string(200, '\x01')] = "v";
  auto* c = odd.mutable_spec()->add_containers();
  c->set_name("c");
  (*c->mutable_resources()->mutable_requests())[std::string(180, '\x02')] = "1";
  (*c->mutable_resources()->mutable_requests())["cpu"] = "2";
  const std::string odd_json = encode_json(odd);
  ASSERT_GT(odd_json.size(), 1200u);
  auto back = decode_manifests(odd_json, "odd.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(odd, *(*back)[0].object));
  // In YAML such a key is written explicitly ("? key"), which YAML reads.
  const std::string odd_yaml = encode_yaml(odd);
  EXPECT_NE(odd_yaml.find("? \""), std::string::npos) << odd_yaml;
  back = decode_manifests(odd_yaml, "odd.yaml");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(odd, *(*back)[0].object));

  auto broken = decode_manifests("{\"kind\": \"Pod\",\n \"" + key + "\": }", "broken.json");
  ASSERT_FALSE(broken.is_ok());
  EXPECT_NE(broken.status().message().find("broken.json:"), std::string::npos)
      << broken.status().message();
  EXPECT_NE(broken.status().message().find("invalid YAML"), std::string::npos)
      << broken.status().message();
}

TEST(CodecTest, ListKindsContributeTheirItems) {
  const char* text = R"(apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
- apiVersion: v1
  kind: Service
  metadata: {name: b}
)";
  auto r = decode_manifests(text, "list.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].kind, Kind::kPod);
  EXPECT_EQ((*r)[0].line, 4);
  EXPECT_EQ((*r)[1].kind, Kind::kService);

  // Typed lists: items may leave kind out.
  auto typed = decode_manifests(
      R"({"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"7"},
          "items":[{"metadata":{"name":"x"}},{"metadata":{"name":"y"}}]})",
      "pods.json");
  ASSERT_TRUE(typed.is_ok()) << typed.status().message();
  ASSERT_EQ(typed->size(), 2u);
  EXPECT_EQ((*typed)[1].kind, Kind::kPod);
  EXPECT_EQ(static_cast<const Pod&>(*(*typed)[1].object).kind(), "Pod");
  EXPECT_EQ(meta_of(*(*typed)[1].object).name(), "y");
}

TEST(CodecTest, KindAndVersionAreChecked) {
  auto apps = decode_manifests("apiVersion: apps/v1\nkind: Deployment\n", "d.yaml");
  ASSERT_FALSE(apps.is_ok());
  EXPECT_EQ(apps.status().message().rfind(
                "d.yaml:1:1: no matches for kind \"Deployment\" in version \"apps/v1\"", 0),
            0u)
      << apps.status().message();
  auto wrong_version = decode_manifests("apiVersion: v2\nkind: Pod\n", "p.yaml");
  ASSERT_FALSE(wrong_version.is_ok());
  EXPECT_NE(wrong_version.status().message().find("kind \"Pod\" in version \"v2\""),
            std::string::npos);
  auto no_kind = decode_manifests("apiVersion: v1\nmetadata: {name: x}\n", "p.yaml");
  ASSERT_FALSE(no_kind.is_ok());
  EXPECT_EQ(no_kind.status().message(), "p.yaml:1:1: Object 'Kind' is missing");
  auto no_version = decode_manifests("kind: Pod\n", "p.yaml");
  ASSERT_FALSE(no_version.is_ok());
  EXPECT_EQ(no_version.status().message(), "p.yaml:1:1: Object 'apiVersion' is missing");
  auto scalar = decode_manifests("just text\n", "t.yaml");
  ASSERT_FALSE(scalar.is_ok());
  EXPECT_EQ(scalar.status().message(),
            "t.yaml:1:1: expected an object (a mapping), got \"just text\"");
}

TEST(CodecTest, IntOrStringKeepsNumbersAndStringsApart) {
  const char* text = R"(apiVersion: v1
kind: Service
spec:
  ports:
  - port: 80
    targetPort: 8080
  - port: 81
    targetPort: http
  - port: 82
    targetPort: "9090"
)";
  auto r = decode_manifests(text, "s.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const auto& svc = static_cast<const Service&>(*(*r)[0].object);
  EXPECT_EQ(svc.spec().ports(0).target_port().value_case(), IntOrString::kIntVal);
  EXPECT_EQ(svc.spec().ports(0).target_port().int_val(), 8080);
  EXPECT_EQ(svc.spec().ports(1).target_port().str_val(), "http");
  EXPECT_EQ(svc.spec().ports(2).target_port().value_case(), IntOrString::kStrVal);
  EXPECT_EQ(svc.spec().ports(2).target_port().str_val(), "9090");
  std::string json = encode_json(svc);
  EXPECT_NE(json.find("\"targetPort\":8080"), std::string::npos) << json;
  EXPECT_NE(json.find("\"targetPort\":\"9090\""), std::string::npos) << json;
  std::string yaml = encode_yaml(svc);
  EXPECT_NE(yaml.find("targetPort: 8080\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("targetPort: \"9090\"\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("targetPort: http\n"), std::string::npos) << yaml;
}

TEST(CodecTest, TimeIsRfc3339) {
  auto r = decode_manifests(
      "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: 2026-01-02T03:04:05Z\n"
      "status:\n  startTime: \"2026-01-02T03:04:05.25Z\"\n",
      "p.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const auto& pod = static_cast<const Pod&>(*(*r)[0].object);
  EXPECT_EQ(pod.metadata().creation_timestamp().nanos(), 1767323045LL * 1000000000);
  EXPECT_EQ(pod.status().start_time().nanos(), 1767323045LL * 1000000000 + 250000000);
  std::string json = encode_json(pod);
  EXPECT_NE(json.find("\"creationTimestamp\":\"2026-01-02T03:04:05Z\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"startTime\":\"2026-01-02T03:04:05.25Z\""), std::string::npos) << json;

  auto bad = decode_manifests("apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: yesterday\n",
                              "p.yaml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(),
            "p.yaml:4:22: metadata.creationTimestamp: invalid time \"yesterday\": expected RFC "
            "3339, e.g. \"2026-01-02T03:04:05Z\"");
}

TEST(CodecTest, EncodesKubernetesStyleYamlAndJson) {
  Pod pod;
  fill_type_meta(&pod);
  pod.mutable_metadata()->set_name("web-1");
  (*pod.mutable_metadata()->mutable_labels())["tier"] = "front";
  (*pod.mutable_metadata()->mutable_labels())["app"] = "web";
  (*pod.mutable_metadata()->mutable_labels())["version"] = "1.0";
  Container* c = pod.mutable_spec()->add_containers();
  c->set_name("apache");
  c->set_image("httpd:2.4");
  c->add_command("httpd-foreground");
  (*c->mutable_resources()->mutable_limits())["memory"] = "128Mi";
  Volume* v = pod.mutable_spec()->add_volumes();
  v->set_name("cache");
  v->mutable_empty_dir();
  pod.mutable_spec()->set_restart_policy("");  // default: omitted
  pod.mutable_spec()->set_termination_grace_period_seconds(0);  // explicit: kept

  EXPECT_EQ(encode_yaml(pod),
            "apiVersion: v1\n"
            "kind: Pod\n"
            "metadata:\n"
            "  name: web-1\n"
            "  labels:\n"
            "    app: web\n"
            "    tier: front\n"
            "    version: \"1.0\"\n"
            "spec:\n"
            "  volumes:\n"
            "  - name: cache\n"
            "    emptyDir: {}\n"
            "  containers:\n"
            "  - name: apache\n"
            "    image: httpd:2.4\n"
            "    command:\n"
            "    - httpd-foreground\n"
            "    resources:\n"
            "      limits:\n"
            "        memory: 128Mi\n"
            "  terminationGracePeriodSeconds: 0\n");
  EXPECT_EQ(encode_json(pod),
            R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","labels":{"app":"web",)"
            R"("tier":"front","version":"1.0"}},"spec":{"volumes":[{"name":"cache","emptyDir":{}}],)"
            R"("containers":[{"name":"apache","image":"httpd:2.4","command":["httpd-foreground"],)"
            R"("resources":{"limits":{"memory":"128Mi"}}}],"terminationGracePeriodSeconds":0}})");
  Namespace ns;
  ns.mutable_metadata()->set_name("a");
  EXPECT_EQ(encode_json(ns, true), "{\n  \"metadata\": {\n    \"name\": \"a\"\n  }\n}\n");
  EXPECT_EQ(encode_yaml(Namespace()), "{}\n");
  EXPECT_EQ(object_label(pod), "Pod/web-1");
}

TEST(CodecTest, GenericDecodeIntoReportsPathsUnderABase) {
  YAML::Node node = YAML::Load("name: c\nimage: x\nbogus: 1\nports:\n- containerPort: nope\n");
  Container c;
  std::vector<DecodeWarning> warnings;
  flotilla::Status s = decode_into(node, &c, "workload[2].containers[0]", &warnings);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(),
            "5:18: workload[2].containers[0].ports[0].containerPort: expected an integer, got "
            "\"nope\"");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].to_string(), "workload[2].containers[0].bogus: unknown field");
  EXPECT_EQ(warnings[0].line, 3);
}

TEST(CodecTest, NeverThrowsOnHostileInput) {
  for (const char* text : {"[", "{", "\"", "*alias", "&a [*a]", ": :", "- - - -", "!!binary x",
                           "apiVersion: v1\nkind: Pod\nmetadata: [", "\xff\xfe", "a: b: c",
                           "apiVersion: v1\nkind: List\nitems: 5\n",
                           "apiVersion: v1\nkind: List\nitems: [5]\n",
                           "apiVersion: v1\nkind: Pod\n? [a]\n: b\n"}) {
    auto r = decode_manifests(text, "h.yaml");
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().message().rfind("h.yaml:", 0), 0u) << r.status().message();
    }
  }
  std::string deep(100000, '[');
  EXPECT_FALSE(decode_manifests(deep, "deep.yaml").is_ok());
}

// Found by tests/fuzz (codec target): yaml-cpp 0.7's LoadAll loops forever,
// collecting empty documents, on a stray ',' (jbeder/yaml-cpp#1040).
TEST(CodecTest, AStrayCommaIsASyntaxErrorNotAHang) {
  for (const char* text : {",", "\n,\n", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n,"}) {
    SCOPED_TRACE(text);
    auto r = decode_manifests(text, "c.yaml");
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kBadRequest);
    EXPECT_EQ(r.status().message().rfind("c.yaml:", 0), 0u) << r.status().message();
  }
  auto two = decode_manifests("---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
                              "two.yaml");
  ASSERT_TRUE(two.is_ok()) << two.status().to_string();
  EXPECT_EQ(two->size(), 1u);
}

// Found by tests/fuzz (codec target): with a repeated key the object's kind
// came from the first "kind" and its kind field from the last, so the round
// trip changed the kind. Repeated fields are errors, as in Kubernetes.
TEST(CodecTest, RepeatedFieldsAreErrors) {
  auto r = decode_manifests(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nkind: ReplicationController\n", "d.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "d.yaml:4:1: kind: duplicate field (already given at line 2)");
  auto nested = decode_manifests(
      "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\", \"name\": \"b\"}}",
      "d.json");
  ASSERT_FALSE(nested.is_ok());
  EXPECT_NE(nested.status().message().find("metadata.name: duplicate field"), std::string::npos)
      << nested.status().message();
  auto in_map = decode_manifests(
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {app: web, app: db}\n", "m.yaml");
  ASSERT_FALSE(in_map.is_ok());
  EXPECT_NE(in_map.status().message().find("duplicate key (already given at line 5)"),
            std::string::npos) << in_map.status().message();
}

// Found by tests/fuzz (codec target, UBSan): a year past 2262 overflowed the
// int64 nanosecond count.
TEST(CodecTest, TimesOutsideTheRepresentableRangeAreErrors) {
  for (const char* t : {"4048-01-02T03:04:05Z", "1500-01-01T00:00:00Z"}) {
    SCOPED_TRACE(t);
    auto r = decode_manifests(
        std::string("apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: ") + t + "\n", "p.yaml");
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("p.yaml:4:22: metadata.creationTimestamp"), std::string::npos)
        << r.status().message();
  }
  EXPECT_TRUE(decode_manifests("apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: "
                               "2262-01-01T00:00:00Z\n", "p.yaml").is_ok());
}

// Found by tests/fuzz (codec target): bytes that are not UTF-8 did not
// survive encoding to JSON and back. Strings must be UTF-8, as in Kubernetes.
TEST(CodecTest, StringsMustBeUtf8) {
  for (const char* bad : {"a\xbb", "\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"}) {
    auto r = decode_manifests(std::string("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
                                          "  annotations: {note: \"") + bad + "\"}\n", "u.yaml");
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("invalid UTF-8"), std::string::npos) << r.status().message();
  }
  auto ok = decode_manifests("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: "
                             "{note: \"\xc3\xbc \xe2\x9c\x93 \xf0\x9f\x9a\x80\"}}\n", "u.yaml");
  EXPECT_TRUE(ok.is_ok()) << ok.status().to_string();
}

// Found by tests/fuzz (codec target, clang + ASan): the decoder kept references
// to the key and value of a yaml-cpp iterator proxy past its statement
// (stack-use-after-scope on every mapping). Under the asan-ubsan preset this
// test reads the same paths; everywhere it checks that names survive decoding.
TEST(CodecTest, FieldNamesAndValuesOutliveTheIterator) {
  auto r = decode_manifests(
      "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: web\n"
      "  labels: {app: web, tier: front}\nspec:\n  replicas: three\n",
      "web.yaml");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("web.yaml:7:13: spec.replicas"), std::string::npos)
      << r.status().message();
  auto ok = decode_manifests(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b, c: d}}\nbogus: 1\n",
      "p.yaml");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  const auto& pod = static_cast<const Pod&>(*ok->front().object);
  EXPECT_EQ(pod.metadata().labels().at("c"), "d");
  ASSERT_EQ(ok->front().warnings.size(), 1u);
  EXPECT_EQ(ok->front().warnings[0].field, "bogus");
}

}  // namespace
}  // namespace flotilla::api

// Manifests are UTF-8: a stray byte is an error naming its line and column,
// not a string that would be written out as JSON nothing reads back.
TEST(CodecUtf8, InvalidUtf8IsRejectedWithItsPosition) {
  const std::string bad = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: w\x92x\n";
  auto decoded = flotilla::api::decode_manifests(bad, "pod.yaml");
  ASSERT_FALSE(decoded.is_ok());
  EXPECT_EQ(decoded.status().message(),
            "pod.yaml:4:10: invalid UTF-8: byte 0x92 does not start a character");
  const std::string good =
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: w\n  annotations: "
      "{note: \"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x99\x82\"}\n";
  EXPECT_TRUE(flotilla::api::decode_manifests(good, "pod.yaml").is_ok());
  // Each kind of bad sequence, named for what it is, at its first byte.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\xC0\xAF", "U+002F in a longer form than its own"},
      {"\xE0\x80\xAF", "U+002F in a longer form than its own"},
      {"\xED\xA0\x80", "U+D800 is a surrogate, not a character"},
      {"\xF4\x90\x80\x80", "U+110000 is beyond U+10FFFF"},
      {"\xC3(", "byte 0x28 after 0xC3 is not a continuation byte"},
      {"\xF8\x88\x80\x80\x80", "byte 0xF8 does not start a character"},
  };
  for (const auto& [bytes, problem] : cases) {
    std::string text = "apiVersion: v1\nkind: Pod\nmetadata: {name: \"a" + bytes + "\"}\n";
    auto r = flotilla::api::decode_manifests(text, "x");
    ASSERT_FALSE(r.is_ok()) << problem;
    EXPECT_EQ(r.status().message(), "x:3:20: invalid UTF-8: " + problem);
  }
  auto cut = flotilla::api::decode_manifests("kind: Pod\n# caf\xC3", "x");
  ASSERT_FALSE(cut.is_ok());
  EXPECT_EQ(cut.status().message(),
            "x:2:6: invalid UTF-8: the character starting with byte 0xC3 is cut off");
}
