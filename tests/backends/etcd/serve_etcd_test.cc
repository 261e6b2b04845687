// `flotilla serve --backend none --store etcd://...`, the real binary: the
// flag's conflicts and an unreachable etcd are clear errors, and objects
// written through the API survive a SIGKILL of serve (they are in etcd).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "tests/backends/apiserver/test_server.h"
#include "tests/backends/etcd/local_etcd.h"

namespace flotilla::etcd {
namespace {

using apiserver::testing::http_request;
using apiserver::testing::Subprocess;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr const char* kPod = R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1"},
  "spec":{"containers":[{"name":"web","image":"nginx:1"}]}})";

std::vector<std::string> serve(const std::vector<std::string>& extra) {
  std::vector<std::string> a = {FLOTILLA_BIN, "serve",    "--backend",
                                "none",       "--listen", "127.0.0.1:0"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// The API port once serve says where it listens; 0 when it did not.
uint16_t wait_ready(Subprocess& p) {
  static const std::regex kUrl("Kubernetes API on http://127\\.0\\.0\\.1:([0-9]+)");
  std::smatch m;
  p.read_err_until([&](const std::string& err) { return std::regex_search(err, m, kUrl); }, 30s);
  std::string err = p.err();
  if (!std::regex_search(err, m, kUrl)) return 0;
  return static_cast<uint16_t>(std::stoi(m[1]));
}

TEST(ServeEtcd, StoreAndDataDirAreMutuallyExclusive) {
  Subprocess p(serve({"--store", "etcd://127.0.0.1:2379", "--data-dir", "/tmp/x"}), {});
  EXPECT_EQ(p.wait(30s), 2);
  EXPECT_THAT(p.err(), HasSubstr("--store and --data-dir"));
  EXPECT_THAT(p.err(), HasSubstr("mutually exclusive"));
}

TEST(ServeEtcd, AnUnreachableEtcdIsAnErrorNamingTheEndpoint) {
  Subprocess p(serve({"--store", "etcd://127.0.0.1:1"}), {});
  EXPECT_EQ(p.wait(30s), 1);
  EXPECT_THAT(p.err(), HasSubstr("cannot use the store etcd://127.0.0.1:1"));
  EXPECT_THAT(p.err(), HasSubstr("127.0.0.1:1: Connection refused"));
}

TEST(ServeEtcd, ObjectsSurviveAKilledServe) {
  testing::LocalEtcd* etcd = testing::shared_etcd();
  ASSERT_NE(etcd, nullptr);
  std::string uid;
  {
    Subprocess first(serve({"--store", etcd->url()}), {});
    uint16_t port = wait_ready(first);
    ASSERT_NE(port, 0) << first.err();
    auto c = http_request(port, "POST", "/api/v1/namespaces/default/pods", kPod);
    ASSERT_EQ(c.status, 201) << c.body;
    uid = nlohmann::json::parse(c.body)["metadata"]["uid"];
    first.signal(SIGKILL);
    first.wait(10s);
  }
  Subprocess second(serve({"--store", etcd->url()}), {});
  uint16_t port = wait_ready(second);
  ASSERT_NE(port, 0) << second.err();
  auto g = http_request(port, "GET", "/api/v1/namespaces/default/pods/web-1");
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(nlohmann::json::parse(g.body)["metadata"]["uid"], uid);
  // The namespaces were found in etcd, not created again.
  EXPECT_EQ(http_request(port, "GET", "/api/v1/namespaces/kube-system").status, 200);
  second.signal(SIGTERM);
  EXPECT_EQ(second.wait(10s), 0);
}

}  // namespace
}  // namespace flotilla::etcd
