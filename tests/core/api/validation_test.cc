#include "core/api/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/api/codec.h"
#include "core/api/names.h"
#include "core/api/types.pb.h"

namespace flotilla::api {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> strings(const std::vector<FieldError>& errors) {
  std::vector<std::string> out;
  for (const FieldError& e : errors) out.push_back(e.to_string());
  return out;
}

template <typename T>
T parse(const std::string& yaml) {
  auto r = decode_manifests(yaml, "t.yaml");
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  if (!r.is_ok() || r->empty()) return T();
  return static_cast<const T&>(*(*r)[0].object);
}

Pod valid_pod() {
  return parse<Pod>(R"(apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web}}
spec:
  containers:
  - name: web
    image: nginx:1.25
    ports: [{name: http, containerPort: 80}]
)");
}

ReplicationController valid_rc() {
  return parse<ReplicationController>(R"(apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  selector: {app: web}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
      - {name: web, image: nginx}
)");
}

Service valid_service() {
  return parse<Service>(R"(apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
)");
}

TEST(ValidationTest, ValidObjectsHaveNoErrors) {
  EXPECT_THAT(strings(validate(valid_pod())), IsEmpty());
  EXPECT_THAT(strings(validate(valid_rc())), IsEmpty());
  EXPECT_THAT(strings(validate(valid_service())), IsEmpty());
  Namespace ns;
  ns.mutable_metadata()->set_name("team-a");
  EXPECT_THAT(strings(validate(ns)), IsEmpty());
  Node node;
  node.mutable_metadata()->set_name("node-1.rack-2");
  (*node.mutable_status()->mutable_capacity())["cpu"] = "4";
  EXPECT_THAT(strings(validate(node)), IsEmpty());
}

TEST(ValidationTest, ExampleManifestIsValid) {
  std::string path = std::string(FLOTILLA_SOURCE_DIR) + "/examples/apache-rc.yaml";
  FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr) << path;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  auto r = decode_manifests(text, "apache-rc.yaml");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  for (const auto& o : *r) {
    EXPECT_THAT(strings(validate(*o.object)), IsEmpty());
    EXPECT_THAT(o.warnings, IsEmpty());
  }
}

TEST(ValidationTest, NameLengthBoundaries) {
  Pod pod = valid_pod();
  pod.mutable_metadata()->set_name(std::string(253, 'a'));
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
  pod.mutable_metadata()->set_name(std::string(254, 'a'));
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("metadata.name: Invalid value: \"" + std::string(254, 'a') +
                          "\": must be no more than 253 characters"));

  Service svc = valid_service();
  svc.mutable_metadata()->set_name(std::string(63, 's'));
  EXPECT_THAT(strings(validate(svc)), IsEmpty());
  svc.mutable_metadata()->set_name(std::string(64, 's'));
  EXPECT_THAT(strings(validate(svc)),
              ElementsAre("metadata.name: Invalid value: \"" + std::string(64, 's') +
                          "\": must be no more than 63 characters"));
  svc.mutable_metadata()->set_name("a.b");  // a subdomain is not a label
  EXPECT_EQ(validate(svc).size(), 1u);

  Pod c = valid_pod();
  c.mutable_spec()->mutable_containers(0)->set_name(std::string(63, 'c'));
  EXPECT_THAT(strings(validate(c)), IsEmpty());
  c.mutable_spec()->mutable_containers(0)->set_name(std::string(64, 'c'));
  EXPECT_THAT(strings(validate(c)),
              ElementsAre("spec.containers[0].name: Invalid value: \"" + std::string(64, 'c') +
                          "\": must be no more than 63 characters"));

  EXPECT_TRUE(is_dns1123_label(std::string(63, 'x')));
  EXPECT_FALSE(is_dns1123_label(std::string(64, 'x')));
  EXPECT_TRUE(is_dns1123_subdomain(std::string(253, 'x')));
  EXPECT_FALSE(is_dns1123_subdomain(std::string(254, 'x')));
  EXPECT_FALSE(is_dns1123_label("-a"));
  EXPECT_FALSE(is_dns1123_label("a-"));
  EXPECT_FALSE(is_dns1123_label("A"));
  EXPECT_FALSE(is_dns1123_subdomain("a..b"));
  EXPECT_TRUE(is_dns1123_subdomain("a.b-c.d"));
}

TEST(ValidationTest, NameRequiredAndUppercaseRejected) {
  Pod pod = valid_pod();
  pod.mutable_metadata()->clear_name();
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("metadata.name: Required value: name or generateName is required"));
  pod.mutable_metadata()->set_generate_name("web-");
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
  pod.mutable_metadata()->set_name("Web");
  auto errs = strings(validate(pod));
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].rfind("metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain", 0),
            0u);
  Namespace ns;
  ns.mutable_metadata()->set_name("x");
  ns.mutable_metadata()->set_namespace_("y");
  EXPECT_THAT(strings(validate(ns)), ElementsAre("metadata.namespace: Forbidden: not allowed on this type"));
}

TEST(ValidationTest, LabelKeysAndValues) {
  Pod pod = valid_pod();
  auto& labels = *pod.mutable_metadata()->mutable_labels();
  labels["example.com/" + std::string(63, 'k')] = std::string(63, 'v');
  labels[std::string(253, 'p') + "/name"] = "";
  labels["Under_Score.ok"] = "Mixed-Case_1.0";
  EXPECT_THAT(strings(validate(pod)), IsEmpty());

  labels.clear();
  labels["example.com/" + std::string(64, 'k')] = "x";
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("metadata.labels: Invalid value: \"example.com/" + std::string(64, 'k') +
                          "\": name part must be no more than 63 characters"));
  labels.clear();
  labels["k"] = std::string(64, 'v');
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("metadata.labels: Invalid value: \"" + std::string(64, 'v') +
                          "\": must be no more than 63 characters"));
  labels.clear();
  labels["bad key"] = "v";
  labels["a/b/c"] = "v";
  labels["Bad.Prefix/name"] = "v";
  labels["ok"] = "-bad";
  auto errs = strings(validate(pod));
  ASSERT_EQ(errs.size(), 4u);
  EXPECT_THAT(errs[0], ::testing::StartsWith("metadata.labels: Invalid value: \"Bad.Prefix/name\": prefix part a lowercase RFC 1123 subdomain"));
  EXPECT_THAT(errs[1], ::testing::StartsWith("metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist"));
  EXPECT_THAT(errs[2], ::testing::StartsWith("metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric"));
  EXPECT_THAT(errs[3], ::testing::StartsWith("metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"));
}

TEST(ValidationTest, AnnotationSizeLimitIs256KiB) {
  Pod pod = valid_pod();
  auto& ann = *pod.mutable_metadata()->mutable_annotations();
  ann["k"] = std::string(262144 - 1, 'x');  // key + value == 262144 bytes
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
  ann["k"] += "x";
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("metadata.annotations: Too long: must have at most 262144 bytes"));
  ann.clear();
  ann["Example.COM/Key"] = "anything: goes";  // checked lower-cased, like Kubernetes
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
  ann["no//way"] = "";
  EXPECT_EQ(validate(pod).size(), 1u);
}

TEST(ValidationTest, ContainersAreRequiredAndChecked) {
  Pod pod = valid_pod();
  pod.mutable_spec()->clear_containers();
  EXPECT_THAT(strings(validate(pod)), ElementsAre("spec.containers: Required value"));

  pod = valid_pod();
  Container* c = pod.mutable_spec()->add_containers();
  c->set_name("web");
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[1].image: Required value",
                          "spec.containers[1].name: Duplicate value: \"web\""));
  c->set_name("");
  c->set_image("x");
  EXPECT_THAT(strings(validate(pod)), ElementsAre("spec.containers[1].name: Required value"));
}

TEST(ValidationTest, PortsProtocolsAndPortNames) {
  Pod pod = valid_pod();
  Container* c = pod.mutable_spec()->mutable_containers(0);
  c->mutable_ports(0)->set_container_port(65535);
  c->mutable_ports(0)->set_protocol("SCTP");
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
  c->mutable_ports(0)->set_container_port(65536);
  c->mutable_ports(0)->set_protocol("ICMP");
  auto* p2 = c->add_ports();
  p2->set_name("http");
  p2->set_container_port(0);
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].ports[0].containerPort: Invalid value: 65536: must be "
                          "between 1 and 65535, inclusive",
                          "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": "
                          "supported values: \"SCTP\", \"TCP\", \"UDP\"",
                          "spec.containers[0].ports[1].name: Duplicate value: \"http\"",
                          "spec.containers[0].ports[1].containerPort: Required value"));
  pod = valid_pod();
  pod.mutable_spec()->mutable_containers(0)->mutable_ports(0)->set_name("12345");
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].ports[0].name: Invalid value: \"12345\": must "
                          "contain at least one letter (a-z)"));
}

TEST(ValidationTest, RestartPolicyAndRcTemplate) {
  Pod pod = valid_pod();
  pod.mutable_spec()->set_restart_policy("Sometimes");
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: "
                          "\"Always\", \"Never\", \"OnFailure\""));
  pod.mutable_spec()->set_restart_policy("Never");
  EXPECT_THAT(strings(validate(pod)), IsEmpty());

  ReplicationController rc = valid_rc();
  rc.mutable_spec()->mutable_template_()->mutable_spec()->set_restart_policy("Never");
  EXPECT_THAT(strings(validate(rc)),
              ElementsAre("spec.template.spec.restartPolicy: Unsupported value: \"Never\": "
                          "supported values: \"Always\""));
}

TEST(ValidationTest, RcSelectorReplicasAndMessage) {
  ReplicationController rc = valid_rc();
  rc.mutable_spec()->set_replicas(0);
  EXPECT_THAT(strings(validate(rc)), IsEmpty());
  rc.mutable_spec()->set_replicas(-1);
  (*rc.mutable_spec()->mutable_selector())["app"] = "db";
  auto errs = validate(rc);
  EXPECT_THAT(strings(errs),
              ElementsAre("spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                          "spec.template.metadata.labels: Invalid value: "
                          "map[string]string{\"app\":\"web\", \"tier\":\"front\"}: `selector` does "
                          "not match template `labels`"));
  flotilla::Status s = invalid_status(rc, errs);
  EXPECT_EQ(s.code(), StatusCode::kInvalid);
  EXPECT_EQ(s.message(),
            "ReplicationController \"web\" is invalid: [spec.replicas: Invalid value: -1: must be "
            "greater than or equal to 0, spec.template.metadata.labels: Invalid value: "
            "map[string]string{\"app\":\"web\", \"tier\":\"front\"}: `selector` does not match "
            "template `labels`]");

  rc = valid_rc();
  rc.mutable_spec()->mutable_template_()->mutable_spec()->mutable_containers(0)->clear_image();
  EXPECT_EQ(invalid_status(rc, validate(rc)).message(),
            "ReplicationController \"web\" is invalid: spec.template.spec.containers[0].image: "
            "Required value");
  EXPECT_TRUE(invalid_status(rc, {}).is_ok());

  rc = valid_rc();
  rc.mutable_spec()->clear_selector();
  rc.mutable_spec()->clear_template_();
  EXPECT_THAT(strings(validate(rc)),
              ElementsAre("spec.selector: Required value", "spec.template: Required value"));
}

TEST(ValidationTest, Probes) {
  Pod pod = valid_pod();
  Probe* p = pod.mutable_spec()->mutable_containers(0)->mutable_liveness_probe();
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].livenessProbe: Required value: must specify a "
                          "handler type"));
  p->mutable_http_get()->mutable_port()->set_str_val("http");
  p->mutable_tcp_socket()->mutable_port()->set_int_val(80);
  p->set_period_seconds(-1);
  p->set_success_threshold(2);
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify "
                          "more than 1 handler type",
                          "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must "
                          "be greater than or equal to 0",
                          "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: "
                          "must be 1"));
  p->clear_tcp_socket();
  p->set_period_seconds(10);
  p->set_success_threshold(1);
  p->mutable_http_get()->mutable_port()->set_int_val(0);
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must "
                          "be between 1 and 65535, inclusive"));
  // Readiness may need several successes.
  pod = valid_pod();
  Probe* r = pod.mutable_spec()->mutable_containers(0)->mutable_readiness_probe();
  r->mutable_exec()->add_command("true");
  r->set_success_threshold(3);
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
}

TEST(ValidationTest, ResourcesParseAndLimitsCoverRequests) {
  Pod pod = valid_pod();
  auto* res = pod.mutable_spec()->mutable_containers(0)->mutable_resources();
  (*res->mutable_requests())["cpu"] = "500m";
  (*res->mutable_limits())["cpu"] = "0.5";
  (*res->mutable_requests())["memory"] = "1Gi";
  (*res->mutable_limits())["memory"] = "1024Mi";
  EXPECT_THAT(strings(validate(pod)), IsEmpty());
  (*res->mutable_requests())["cpu"] = "501m";
  (*res->mutable_limits())["memory"] = "lots";
  (*res->mutable_limits())["gpu"] = "1";
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must "
                          "be a standard resource type or fully qualified",
                          "spec.containers[0].resources.limits[memory]: Invalid value: \"lots\": "
                          "quantities must match the regular expression "
                          "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                          "spec.containers[0].resources.requests[cpu]: Invalid value: \"501m\": "
                          "must be less than or equal to cpu limit of 500m"));
  res->Clear();
  (*res->mutable_requests())["example.com/gpu"] = "-1";
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.containers[0].resources.requests[example.com/gpu]: Invalid value: "
                          "\"-1\": must be greater than or equal to 0"));
}

TEST(ValidationTest, VolumesAndMounts) {
  Pod pod = valid_pod();
  auto* spec = pod.mutable_spec();
  auto* v1 = spec->add_volumes();
  v1->set_name("cache");
  v1->mutable_empty_dir();
  auto* v2 = spec->add_volumes();
  v2->set_name("cache");
  v2->mutable_host_path();
  v2->mutable_empty_dir();
  auto* v3 = spec->add_volumes();
  v3->set_name("none");
  auto* m = spec->mutable_containers(0)->add_volume_mounts();
  m->set_name("cache");
  m->set_mount_path("/c");
  auto* m2 = spec->mutable_containers(0)->add_volume_mounts();
  m2->set_name("ghost");
  m2->set_mount_path("/c");
  EXPECT_THAT(strings(validate(pod)),
              ElementsAre("spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type",
                          "spec.volumes[1].name: Duplicate value: \"cache\"",
                          "spec.volumes[2]: Required value: must specify a volume type",
                          "spec.containers[0].volumeMounts[1].name: Not found: \"ghost\"",
                          "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/c\": "
                          "must be unique"));
}

TEST(ValidationTest, ServiceRules) {
  Service svc = valid_service();
  auto* spec = svc.mutable_spec();
  spec->set_cluster_ip("10.0.0.1");
  spec->set_session_affinity("ClientIP");
  EXPECT_THAT(strings(validate(svc)), IsEmpty());
  spec->set_cluster_ip("None");
  EXPECT_THAT(strings(validate(svc)), IsEmpty());
  spec->set_cluster_ip("fd00::1");
  EXPECT_THAT(strings(validate(svc)), IsEmpty());
  spec->set_cluster_ip("10.0.0.256");
  spec->set_session_affinity("Sticky");
  auto* p = spec->add_ports();
  p->set_port(80);
  p->mutable_target_port()->set_int_val(70000);
  EXPECT_THAT(strings(validate(svc)),
              ElementsAre("spec.ports[1].name: Required value",
                          "spec.ports[1].targetPort: Invalid value: 70000: must be between 1 and "
                          "65535, inclusive",
                          "spec.ports[1]: Duplicate value: \"80/TCP\"",
                          "spec.clusterIP: Invalid value: \"10.0.0.256\": must be empty, 'None', "
                          "or a valid IP address",
                          "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: "
                          "\"ClientIP\", \"None\""));
  svc = valid_service();
  svc.mutable_spec()->clear_ports();
  EXPECT_THAT(strings(validate(svc)), ElementsAre("spec.ports: Required value"));
}

TEST(ValidationTest, LeaseRules) {
  Lease l;
  l.mutable_metadata()->set_name("node-1");
  l.mutable_metadata()->set_namespace_("kube-node-lease");
  l.mutable_spec()->set_holder_identity("node-1");
  l.mutable_spec()->set_lease_duration_seconds(40);
  l.mutable_spec()->set_lease_transitions(0);
  EXPECT_THAT(strings(validate(l)), IsEmpty());
  l.mutable_spec()->set_lease_duration_seconds(0);
  l.mutable_spec()->set_lease_transitions(-1);
  l.mutable_metadata()->set_name("Node_1");
  auto errs = strings(validate(l));
  ASSERT_EQ(errs.size(), 3u) << ::testing::PrintToString(errs);
  EXPECT_THAT(errs[0], ::testing::HasSubstr("metadata.name: Invalid value: \"Node_1\""));
  EXPECT_EQ(errs[1], "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0");
  EXPECT_EQ(errs[2], "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0");
}

TEST(ValidationTest, EndpointSliceRules) {
  EndpointSlice s;
  s.mutable_metadata()->set_name("web-abcde");
  s.mutable_metadata()->set_namespace_("default");
  s.set_address_type("IPv4");
  auto* e = s.add_endpoints();
  e->add_addresses("10.0.0.1");
  e->set_node_name("node-1");
  auto* p = s.add_ports();
  p->set_name("http");
  p->set_port(8080);
  p->set_protocol("TCP");
  EXPECT_THAT(strings(validate(s)), IsEmpty());

  EndpointSlice bad = s;
  bad.set_address_type("IPv5");
  bad.add_endpoints();                              // no address
  bad.add_endpoints()->add_addresses("fd00::1");    // not IPv4 (checked once the type is known)
  bad.mutable_ports(0)->set_protocol("HTTP");
  bad.add_ports()->set_name("http");                // a second "http"
  EXPECT_THAT(strings(validate(bad)),
              ElementsAre("addressType: Unsupported value: \"IPv5\": supported values: "
                          "\"FQDN\", \"IPv4\", \"IPv6\"",
                          "endpoints[1].addresses: Required value: must contain at least 1 address",
                          "ports[0].protocol: Unsupported value: \"HTTP\": supported values: "
                          "\"SCTP\", \"TCP\", \"UDP\"",
                          "ports[1].name: Duplicate value: \"http\""));
  bad = s;
  bad.mutable_endpoints(0)->set_addresses(0, "fd00::1");
  EXPECT_THAT(strings(validate(bad)),
              ElementsAre("endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid "
                          "IPv4 address"));
  bad = s;
  bad.clear_address_type();
  for (int i = 0; i < 1000; ++i) *bad.add_endpoints() = s.endpoints(0);
  EXPECT_THAT(strings(validate(bad)),
              ElementsAre("addressType: Required value",
                          "endpoints: Too many: 1001: must have at most 1000 items"));
  // The address type cannot change.
  EndpointSlice retyped = s;
  retyped.set_address_type("IPv6");
  retyped.mutable_endpoints(0)->set_addresses(0, "fd00::1");
  EXPECT_THAT(strings(validate_update(s, retyped)),
              ElementsAre("addressType: Invalid value: \"IPv6\": field is immutable"));
}

TEST(ValidationTest, UpdatesKeepImmutableFields) {
  Pod old_pod = valid_pod();
  old_pod.mutable_metadata()->set_uid("u-1");
  Pod pod = old_pod;
  pod.mutable_spec()->mutable_containers(0)->set_image("nginx:1.26");
  pod.mutable_spec()->set_active_deadline_seconds(60);
  EXPECT_THAT(strings(validate_update(old_pod, pod)), IsEmpty());

  Pod renamed = pod;
  renamed.mutable_metadata()->set_name("web-2");
  renamed.mutable_metadata()->set_uid("u-2");
  EXPECT_THAT(strings(validate_update(pod, renamed)),
              ElementsAre("metadata.name: Invalid value: \"web-2\": field is immutable",
                          "metadata.uid: Invalid value: \"u-2\": field is immutable"));

  Pod more_ports = pod;
  more_ports.mutable_spec()->mutable_containers(0)->mutable_ports(0)->set_container_port(81);
  more_ports.mutable_spec()->set_active_deadline_seconds(120);
  auto errs = strings(validate_update(pod, more_ports));
  ASSERT_EQ(errs.size(), 2u);
  EXPECT_THAT(errs[0], ::testing::StartsWith("spec: Forbidden: pod updates may not change fields"));
  EXPECT_EQ(errs[1], "spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal "
                     "to previous value");

  // A status write leaves the spec byte for byte (maps compared in key
  // order, however they were filled); a changed map entry is a change.
  Pod selecting = pod;
  (*selecting.mutable_spec()->mutable_node_selector())["zone"] = "a";
  (*selecting.mutable_spec()->mutable_node_selector())["disk"] = "ssd";
  Pod status_write;
  status_write.mutable_metadata()->CopyFrom(selecting.metadata());
  (*status_write.mutable_spec()->mutable_node_selector())["disk"] = "ssd";
  status_write.mutable_spec()->MergeFrom(selecting.spec());
  status_write.mutable_status()->set_phase("Running");
  EXPECT_THAT(strings(validate_update(selecting, status_write)), IsEmpty());
  Pod reselected = status_write;
  (*reselected.mutable_spec()->mutable_node_selector())["zone"] = "b";
  errs = strings(validate_update(selecting, reselected));
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0], ::testing::StartsWith("spec: Forbidden: pod updates may not change fields"));

  Service s1 = valid_service();
  s1.mutable_spec()->set_cluster_ip("10.0.0.1");
  Service s2 = s1;
  s2.mutable_spec()->set_cluster_ip("10.0.0.2");
  EXPECT_THAT(strings(validate_update(s1, s2)),
              ElementsAre("spec.clusterIP: Invalid value: \"10.0.0.2\": field is immutable"));
}

// An update is checked for what it changes: the stored version passed
// validation when written, so fields it keeps are not checked again. Shown
// with stored versions that could not have been written (their values are
// invalid): kept, they pass; changed to another invalid value, they do not.
TEST(ValidationTest, UpdatesAreCheckedForWhatTheyChange) {
  Node node;
  node.mutable_metadata()->set_name("node-1");
  (*node.mutable_metadata()->mutable_labels())["zone"] = "Zone A";
  (*node.mutable_status()->mutable_capacity())["cpu"] = "four";
  (*node.mutable_status()->mutable_allocatable())["cpu"] = "4";
  ASSERT_EQ(validate(node).size(), 2u);
  Node report = node;
  report.mutable_status()->set_phase("Running");
  EXPECT_THAT(strings(validate_update(node, report)), IsEmpty());

  Node relabelled = report;
  (*relabelled.mutable_metadata()->mutable_labels())["zone"] = "Zone B";
  EXPECT_THAT(strings(validate_update(node, relabelled)),
              ElementsAre(::testing::StartsWith("metadata.labels: Invalid value: \"Zone B\"")));
  Node recounted = report;
  (*recounted.mutable_status()->mutable_capacity())["cpu"] = "five";
  (*recounted.mutable_status()->mutable_allocatable())["cpu"] = "4x";
  EXPECT_THAT(strings(validate_update(node, recounted)),
              ElementsAre(::testing::StartsWith("status.capacity[cpu]: Invalid value: \"five\""),
                          ::testing::StartsWith("status.allocatable[cpu]: Invalid value: \"4x\"")));

  // A pod's spec too: a status write keeps it; an image change checks it all.
  Pod stored = valid_pod();
  stored.mutable_spec()->mutable_containers(0)->set_name("Web_1");
  ASSERT_EQ(validate(stored).size(), 1u);
  Pod status_write = stored;
  status_write.mutable_status()->set_phase("Running");
  EXPECT_THAT(strings(validate_update(stored, status_write)), IsEmpty());
  Pod new_image = status_write;
  new_image.mutable_spec()->mutable_containers(0)->set_image("nginx:1.26");
  EXPECT_THAT(
      strings(validate_update(stored, new_image)),
      ElementsAre(::testing::StartsWith("spec.containers[0].name: Invalid value: \"Web_1\"")));

  Lease lease;
  lease.mutable_metadata()->set_name("Node_1");
  lease.mutable_metadata()->set_namespace_("kube-node-lease");
  Lease renewed = lease;
  renewed.mutable_spec()->mutable_renew_time()->set_nanos(10);
  EXPECT_THAT(strings(validate_update(lease, renewed)), IsEmpty());
  // What is checked whatever it keeps: the spec, and the metadata's numbers.
  renewed.mutable_spec()->set_lease_duration_seconds(0);
  renewed.mutable_metadata()->set_generation(-1);
  EXPECT_THAT(strings(validate_update(lease, renewed)),
              ElementsAre("metadata.generation: Invalid value: -1: must be greater than or equal "
                          "to 0",
                          "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"));
}

class CountingStream final : public RandomStream {
 public:
  uint64_t next_u64() override { return state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL; }

 private:
  uint64_t state_ = 42;
};

TEST(NamesTest, UidsAreVersion4AndSuffixesUseTheKubernetesAlphabet) {
  CountingStream r;
  std::string uid = new_uid(r);
  ASSERT_EQ(uid.size(), 36u);
  EXPECT_EQ(uid[8], '-');
  EXPECT_EQ(uid[13], '-');
  EXPECT_EQ(uid[14], '4');
  EXPECT_THAT(std::string("89ab"), ::testing::HasSubstr(std::string(1, uid[19])));
  EXPECT_NE(new_uid(r), uid);
  for (int i = 0; i < 100; ++i) {
    std::string s = generate_name_suffix(r);
    ASSERT_EQ(s.size(), 5u);
    for (char c : s) {
      EXPECT_NE(std::string("bcdfghjklmnpqrstvwxz2456789").find(c), std::string::npos) << s;
    }
  }
  std::string long_name = generate_name(std::string(80, 'p'), r);
  EXPECT_EQ(long_name.size(), 63u);
  EXPECT_TRUE(is_dns1123_label(generate_name("web-", r)));
}

}  // namespace
}  // namespace flotilla::api
