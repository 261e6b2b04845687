// The real kubectl against an in-process API server: apply, get in every
// output form, get -w, describe with events, scale, delete, create namespace,
// Leases in the coordination.k8s.io group, and Kubernetes' error wording, on
// every store. Skipped when kubectl is not installed.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tests/backends/apiserver/test_server.h"
#include "tests/scratch_dir.h"

namespace flotilla::apiserver::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string find_kubectl() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::string p(path);
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find(':', i);
    if (j == std::string::npos) j = p.size();
    fs::path candidate = fs::path(p.substr(i, j - i)) / "kubectl";
    std::error_code ec;
    if (fs::exists(candidate, ec) && access(candidate.c_str(), X_OK) == 0) return candidate;
    i = j + 1;
  }
  return "";
}

std::string source_dir() {
  const char* d = std::getenv("FLOTILLA_SOURCE_DIR");
  return d != nullptr ? d : ".";
}

struct KubectlRun {
  int code;
  std::string out;
  std::string err;
};

// Every test runs on each store (InMemory, Durable, Etcd).
class KubectlTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    kubectl_ = find_kubectl();
    if (kubectl_.empty()) GTEST_SKIP() << "kubectl is not installed (command -v kubectl)";
    ASSERT_TRUE(store_kind_available(GetParam()));
    server_ = std::make_unique<TestServer>(GetParam());
    dir_ = flotilla::testing::scratch_dir(
        "kubectl", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ofstream(dir_ / "kubeconfig")
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: f\n  cluster:\n    server: "
        << server_->url()
        << "\nusers:\n- name: f\n  user: {}\ncontexts:\n- name: f\n  context:\n"
           "    cluster: f\n    user: f\n    namespace: default\ncurrent-context: f\n";
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  std::vector<std::string> argv(const std::vector<std::string>& args) {
    std::vector<std::string> a = {kubectl_, "--kubeconfig", (dir_ / "kubeconfig").string(),
                                  "--cache-dir", (dir_ / "cache").string()};
    a.insert(a.end(), args.begin(), args.end());
    return a;
  }
  std::vector<std::string> env() { return {"HOME=" + dir_.string()}; }

  KubectlRun kubectl(const std::vector<std::string>& args) {
    Subprocess p(argv(args), env());
    int code = p.wait(30s);
    return {code, p.out(), p.err()};
  }

  std::string write(const std::string& name, const std::string& text) {
    fs::path f = dir_ / name;
    std::ofstream(f) << text;
    return f.string();
  }

  // Puts a running pod straight into the store, as an agent would report it.
  void add_running_pod(const std::string& name, const std::string& app, const std::string& node,
                       const std::string& ip) {
    server_->on_loop([&] {
      api::Pod p;
      p.mutable_metadata()->set_name(name);
      (*p.mutable_metadata()->mutable_labels())["app"] = app;
      api::Container* c = p.mutable_spec()->add_containers();
      c->set_name("web");
      c->set_image("nginx:1");
      p.mutable_spec()->set_node_name(node);
      p.mutable_status()->set_phase("Running");
      p.mutable_status()->set_pod_ip(ip);
      api::ContainerStatus* cs = p.mutable_status()->add_container_statuses();
      cs->set_name("web");
      cs->set_ready(true);
      cs->mutable_state()->mutable_running();
      ASSERT_TRUE(server_->store().create(api::share(p)).is_ok());
    });
  }

  std::string kubectl_;
  std::unique_ptr<TestServer> server_;
  fs::path dir_;
};

INSTANTIATE_TEST_SUITE_P(Stores, KubectlTest, ::testing::ValuesIn(all_store_kinds()),
                         [](const auto& p) { return store_kind_name(p.param); });

TEST_P(KubectlTest, ApplyRcAndServiceThenGetInEveryForm) {
  KubectlRun apply = kubectl({"apply", "-f", source_dir() + "/examples/apache-rc.yaml"});
  ASSERT_EQ(apply.code, 0) << apply.err;
  EXPECT_NE(apply.out.find("replicationcontroller/apache created"), std::string::npos);
  EXPECT_NE(apply.out.find("service/apache created"), std::string::npos);
  EXPECT_TRUE(server_->on_loop([&] {
    return server_->store().get(api::Kind::kService, "default", "apache").is_ok();
  }));

  KubectlRun rc = kubectl({"get", "rc"});
  ASSERT_EQ(rc.code, 0) << rc.err;
  EXPECT_EQ(rc.out.substr(0, rc.out.find('\n')),
            "NAME     DESIRED   CURRENT   READY   AGE");
  EXPECT_EQ(rc.out.find("apache   3         0         0"), rc.out.find('\n') + 1) << rc.out;

  KubectlRun svc = kubectl({"get", "svc", "-o", "wide"});
  ASSERT_EQ(svc.code, 0) << svc.err;
  EXPECT_NE(svc.out.find("PORT(S)"), std::string::npos);
  EXPECT_NE(svc.out.find("80/TCP"), std::string::npos);
  EXPECT_NE(svc.out.find("app.kubernetes.io/name=apache,tier=frontend"), std::string::npos);

  KubectlRun js = kubectl({"get", "rc", "apache", "-o", "json"});
  ASSERT_EQ(js.code, 0) << js.err;
  json obj = json::parse(js.out);
  EXPECT_EQ(obj["kind"], "ReplicationController");
  EXPECT_EQ(obj["spec"]["template"]["spec"]["containers"][0]["image"], "httpd:2.4-alpine");
  EXPECT_TRUE(obj["metadata"]["annotations"].contains(
      "kubectl.kubernetes.io/last-applied-configuration"));

  KubectlRun yaml = kubectl({"get", "svc", "apache", "-o", "yaml"});
  ASSERT_EQ(yaml.code, 0) << yaml.err;
  EXPECT_NE(yaml.out.find("kind: Service"), std::string::npos);
  EXPECT_NE(yaml.out.find("targetPort: http"), std::string::npos);

  // Applying a changed manifest patches (client-side three-way patch).
  std::ifstream in(source_dir() + "/examples/apache-rc.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.replace(text.find("replicas: 3"), 11, "replicas: 4");
  KubectlRun again = kubectl({"apply", "-f", write("rc4.yaml", text)});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("replicationcontroller/apache configured"), std::string::npos);
  EXPECT_NE(again.out.find("service/apache unchanged"), std::string::npos);
  int replicas = server_->on_loop([&] {
    auto o = server_->store().get(api::Kind::kReplicationController, "default", "apache");
    return o.is_ok() ? api::as<api::ReplicationController>(*o)->spec().replicas() : -1;
  });
  EXPECT_EQ(replicas, 4);
}

TEST_P(KubectlTest, GetPodsPrintsColumnsWideAndLabelSelection) {
  add_running_pod("web-1", "web", "node-a", "10.0.0.5");
  add_running_pod("db-1", "db", "node-b", "10.0.0.6");
  KubectlRun get = kubectl({"get", "pods"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out.substr(0, get.out.find('\n')),
            "NAME    READY   STATUS    RESTARTS   AGE");
  EXPECT_NE(get.out.find("web-1   1/1     Running   0"), std::string::npos) << get.out;

  KubectlRun wide = kubectl({"get", "pods", "-o", "wide"});
  ASSERT_EQ(wide.code, 0) << wide.err;
  EXPECT_NE(wide.out.find("IP"), std::string::npos);
  EXPECT_NE(wide.out.find("NODE"), std::string::npos);
  EXPECT_NE(wide.out.find("10.0.0.5"), std::string::npos);
  EXPECT_NE(wide.out.find("node-a"), std::string::npos);

  KubectlRun sel = kubectl({"get", "pods", "-l", "app=db", "-o", "name"});
  ASSERT_EQ(sel.code, 0) << sel.err;
  EXPECT_EQ(sel.out, "pod/db-1\n");
}

TEST_P(KubectlTest, GetWatchPrintsNewPods) {
  add_running_pod("web-1", "web", "node-a", "10.0.0.5");
  Subprocess watch(argv({"get", "pods", "-w"}), env());
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) { return s.find("web-1") != std::string::npos; }, 20s))
      << watch.out() << watch.err();
  add_running_pod("web-2", "web", "node-b", "10.0.0.7");
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) {
        size_t at = s.find("web-2");
        return at != std::string::npos && s.find('\n', at) != std::string::npos;
      },
      20s))
      << watch.out() << watch.err();
  EXPECT_NE(watch.out().find("web-2   1/1     Running"), std::string::npos) << watch.out();
}

TEST_P(KubectlTest, DescribeShowsEvents) {
  add_running_pod("web-1", "web", "node-a", "10.0.0.5");
  server_->on_loop([&] {
    auto pod = server_->store().get(api::Kind::kPod, "default", "web-1");
    ASSERT_TRUE(pod.is_ok());
    api::Event e;
    e.mutable_metadata()->set_name("web-1.1");
    api::ObjectReference* ref = e.mutable_involved_object();
    ref->set_kind("Pod");
    ref->set_name("web-1");
    ref->set_namespace_("default");
    ref->set_uid(api::meta_of(**pod).uid());
    e.set_reason("Scheduled");
    e.set_message("Successfully assigned default/web-1 to node-a");
    e.set_type("Normal");
    e.set_count(1);
    e.mutable_source()->set_component("scheduler");
    ASSERT_TRUE(server_->store().create(api::share(e)).is_ok());
  });
  KubectlRun d = kubectl({"describe", "pod", "web-1"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("Node:         node-a"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("Status:       Running"), std::string::npos);
  EXPECT_NE(d.out.find("Events:"), std::string::npos);
  EXPECT_NE(d.out.find("Successfully assigned default/web-1 to node-a"), std::string::npos)
      << d.out;
}

TEST_P(KubectlTest, ScaleDeleteAndCreateNamespace) {
  ASSERT_EQ(kubectl({"apply", "-f", source_dir() + "/examples/apache-rc.yaml"}).code, 0);
  KubectlRun scale = kubectl({"scale", "rc", "apache", "--replicas=5"});
  ASSERT_EQ(scale.code, 0) << scale.err;
  EXPECT_NE(scale.out.find("replicationcontroller/apache scaled"), std::string::npos);
  int replicas = server_->on_loop([&] {
    auto o = server_->store().get(api::Kind::kReplicationController, "default", "apache");
    return o.is_ok() ? api::as<api::ReplicationController>(*o)->spec().replicas() : -1;
  });
  EXPECT_EQ(replicas, 5);

  KubectlRun del = kubectl({"delete", "rc", "apache"});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_NE(del.out.find("replicationcontroller \"apache\" deleted"), std::string::npos);
  EXPECT_FALSE(server_->on_loop([&] {
    return server_->store().get(api::Kind::kReplicationController, "default", "apache").is_ok();
  }));

  KubectlRun ns = kubectl({"create", "namespace", "x"});
  ASSERT_EQ(ns.code, 0) << ns.err;
  EXPECT_EQ(ns.out, "namespace/x created\n");
  KubectlRun get = kubectl({"get", "ns"});
  EXPECT_NE(get.out.find("x             Active"), std::string::npos) << get.out;

  KubectlRun ssa = kubectl({"apply", "--server-side", "-f", source_dir() + "/examples/apache-rc.yaml"});
  ASSERT_EQ(ssa.code, 0) << ssa.err;
  EXPECT_NE(ssa.out.find("replicationcontroller/apache serverside-applied"), std::string::npos);
}

// A kind in an API group: kubectl discovers coordination.k8s.io/v1 and
// applies, lists (NAME HOLDER AGE), prints, patches and deletes Leases.
TEST_P(KubectlTest, LeasesInTheCoordinationGroup) {
  KubectlRun ns = kubectl({"create", "namespace", "kube-node-lease"});
  ASSERT_EQ(ns.code, 0) << ns.err;

  KubectlRun res = kubectl({"api-resources"});
  ASSERT_EQ(res.code, 0) << res.err;
  std::string lease_line;
  for (size_t at = 0; at < res.out.size();) {
    size_t end = res.out.find('\n', at);
    std::string line = res.out.substr(at, end - at);
    if (line.rfind("leases ", 0) == 0) lease_line = line;
    at = end == std::string::npos ? res.out.size() : end + 1;
  }
  ASSERT_FALSE(lease_line.empty()) << res.out;
  // NAME SHORTNAMES APIVERSION NAMESPACED KIND, whitespace-separated (no short name).
  std::istringstream words(lease_line);
  std::vector<std::string> cols{std::istream_iterator<std::string>(words), {}};
  EXPECT_EQ(cols, (std::vector<std::string>{"leases", "coordination.k8s.io/v1", "true", "Lease"}))
      << lease_line;
  KubectlRun core = kubectl({"api-resources", "--api-group="});
  ASSERT_EQ(core.code, 0) << core.err;
  EXPECT_EQ(core.out.find("leases"), std::string::npos) << core.out;

  // node-a's Lease as a manifest, renewed at `renew_time`.
  auto lease_manifest = [&](const std::string& file, const std::string& renew_time) {
    return write(file, R"(apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: node-a
  namespace: kube-node-lease
spec:
  holderIdentity: node-a
  leaseDurationSeconds: 40
  renewTime: ")" + renew_time + "\"\n");
  };
  std::string manifest = lease_manifest("lease.yaml", "2026-11-30T01:02:03.456789Z");
  KubectlRun apply = kubectl({"apply", "-f", manifest});
  ASSERT_EQ(apply.code, 0) << apply.err;
  EXPECT_EQ(apply.out, "lease.coordination.k8s.io/node-a created\n");
  EXPECT_EQ(apply.err, "") << "no warning (validation, openapi, discovery)";
  EXPECT_TRUE(server_->on_loop([&] {
    auto l = server_->store().get(api::Kind::kLease, "kube-node-lease", "node-a");
    return l.is_ok() && api::as<api::Lease>(*l)->spec().lease_duration_seconds() == 40;
  }));

  KubectlRun get = kubectl({"get", "leases", "-n", "kube-node-lease"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out.substr(0, get.out.find('\n')), "NAME     HOLDER   AGE") << get.out;
  EXPECT_EQ(get.err, "");
  EXPECT_EQ(get.out.find("node-a   node-a   "), get.out.find('\n') + 1) << get.out;

  // get -w: a watch under the group path, printed as Table rows.
  Subprocess watch(argv({"get", "leases", "-n", "kube-node-lease", "-w"}), env());
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) { return s.find("node-a") != std::string::npos; }, 20s))
      << watch.out() << watch.err();
  server_->on_loop([&] {
    api::Lease b;
    b.mutable_metadata()->set_name("node-b");
    b.mutable_metadata()->set_namespace_("kube-node-lease");
    b.mutable_spec()->set_holder_identity("node-b-holder");
    ASSERT_TRUE(server_->store().create(api::share(b)).is_ok());
  });
  ASSERT_TRUE(watch.read_until(
      [](const std::string& s) {
        size_t at = s.find("node-b-holder");
        return at != std::string::npos && s.find('\n', at) != std::string::npos;
      },
      20s))
      << watch.out() << watch.err();
  EXPECT_NE(watch.out().find("node-b   node-b-holder   "), std::string::npos) << watch.out();
  watch.kill();
  ASSERT_EQ(kubectl({"delete", "lease", "node-b", "-n", "kube-node-lease"}).code, 0);

  KubectlRun all = kubectl({"get", "leases", "-A", "-o", "name"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_EQ(all.out, "lease.coordination.k8s.io/node-a\n");
  KubectlRun describe = kubectl({"describe", "lease", "node-a", "-n", "kube-node-lease"});
  ASSERT_EQ(describe.code, 0) << describe.err;
  EXPECT_NE(describe.out.find("Holder Identity:"), std::string::npos) << describe.out;

  KubectlRun yaml = kubectl({"get", "lease", "node-a", "-n", "kube-node-lease", "-o", "yaml"});
  ASSERT_EQ(yaml.code, 0) << yaml.err;
  EXPECT_NE(yaml.out.find("apiVersion: coordination.k8s.io/v1"), std::string::npos) << yaml.out;
  EXPECT_NE(yaml.out.find("kind: Lease"), std::string::npos);
  EXPECT_NE(yaml.out.find("  holderIdentity: node-a\n"), std::string::npos) << yaml.out;
  EXPECT_NE(yaml.out.find("  leaseDurationSeconds: 40\n"), std::string::npos) << yaml.out;
  EXPECT_NE(yaml.out.find("  renewTime: \"2026-11-30T01:02:03.456789Z\"\n"), std::string::npos)
      << yaml.out;

  // A changed manifest is a client-side three-way patch of the Lease.
  std::string renewed = lease_manifest("lease2.yaml", "2026-11-30T01:02:13.000001Z");
  KubectlRun again = kubectl({"apply", "-f", renewed});
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out, "lease.coordination.k8s.io/node-a configured\n");
  EXPECT_EQ(again.err, "");
  KubectlRun js = kubectl({"get", "lease", "node-a", "-n", "kube-node-lease", "-o", "json"});
  ASSERT_EQ(js.code, 0) << js.err;
  EXPECT_EQ(json::parse(js.out)["spec"]["renewTime"], "2026-11-30T01:02:13.000001Z");

  KubectlRun ssa = kubectl({"apply", "--server-side", "-f", renewed});
  ASSERT_EQ(ssa.code, 0) << ssa.err;
  EXPECT_EQ(ssa.out, "lease.coordination.k8s.io/node-a serverside-applied\n");

  KubectlRun missing = kubectl({"get", "lease", "nope", "-n", "kube-node-lease"});
  EXPECT_NE(missing.code, 0);
  EXPECT_EQ(missing.err,
            "Error from server (NotFound): leases.coordination.k8s.io \"nope\" not found\n");

  KubectlRun del = kubectl({"delete", "lease", "node-a", "-n", "kube-node-lease"});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_EQ(del.out, "lease.coordination.k8s.io \"node-a\" deleted\n");
  EXPECT_FALSE(server_->on_loop([&] {
    return server_->store().get(api::Kind::kLease, "kube-node-lease", "node-a").is_ok();
  }));
}

TEST_P(KubectlTest, EndpointSlicesApplyListByServiceAndPrintAsKubectlDoes) {
  std::string manifest = write("slice.yaml", R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abcde
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
- addresses: [10.0.0.2]
  conditions: {ready: false}
- addresses: [10.0.0.3]
- addresses: [10.0.0.4]
ports:
- {name: http, port: 8080, protocol: TCP}
)");
  KubectlRun apply = kubectl({"apply", "-f", manifest});
  ASSERT_EQ(apply.code, 0) << apply.err;
  EXPECT_EQ(apply.out, "endpointslice.discovery.k8s.io/web-abcde created\n");
  EXPECT_EQ(apply.err, "") << "no warning (validation, openapi, discovery)";

  KubectlRun get = kubectl({"get", "endpointslices"});
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_EQ(get.out.substr(0, get.out.find('\n')),
            "NAME        ADDRESSTYPE   PORTS   ENDPOINTS                                AGE")
      << get.out;
  EXPECT_EQ(get.out.find("web-abcde   IPv4          8080    10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...   "),
            get.out.find('\n') + 1)
      << get.out;
  KubectlRun by_service =
      kubectl({"get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "name"});
  ASSERT_EQ(by_service.code, 0) << by_service.err;
  EXPECT_EQ(by_service.out, "endpointslice.discovery.k8s.io/web-abcde\n");
  KubectlRun other =
      kubectl({"get", "endpointslices", "-l", "kubernetes.io/service-name=db", "-o", "name"});
  ASSERT_EQ(other.code, 0) << other.err;
  EXPECT_EQ(other.out, "");

  // Refused with the field named: an IPv6 address in an IPv4 slice.
  std::string bad = write("bad.yaml", R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-bad}
addressType: IPv4
endpoints:
- addresses: ["fd00::1"]
)");
  KubectlRun refused = kubectl({"apply", "-f", bad});
  EXPECT_NE(refused.code, 0);
  EXPECT_NE(refused.err.find("endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a "
                             "valid IPv4 address"),
            std::string::npos)
      << refused.err;

  KubectlRun del = kubectl({"delete", "endpointslice", "web-abcde"});
  ASSERT_EQ(del.code, 0) << del.err;
  EXPECT_EQ(del.out, "endpointslice.discovery.k8s.io \"web-abcde\" deleted\n");
}

TEST_P(KubectlTest, ErrorsUseKubernetesWording) {
  KubectlRun missing = kubectl({"get", "pods", "nope"});
  EXPECT_NE(missing.code, 0);
  EXPECT_EQ(missing.err, "Error from server (NotFound): pods \"nope\" not found\n");

  std::string bad = write("bad.yaml", R"(apiVersion: v1
kind: ReplicationController
metadata:
  name: bad
spec:
  replicas: -1
  selector: {app: bad}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers:
      - name: c
        image: ""
)");
  KubectlRun invalid = kubectl({"apply", "-f", bad});
  EXPECT_NE(invalid.code, 0);
  EXPECT_EQ(invalid.err,
            "The ReplicationController \"bad\" is invalid: \n"
            "* spec.replicas: Invalid value: -1: must be greater than or equal to 0\n"
            "* spec.template.spec.containers[0].image: Required value\n");

  KubectlRun nons = kubectl({"get", "pods", "-n", "nowhere"});
  EXPECT_EQ(nons.code, 0);
  EXPECT_EQ(nons.err, "No resources found in nowhere namespace.\n");
}

}  // namespace
}  // namespace flotilla::apiserver::testing
