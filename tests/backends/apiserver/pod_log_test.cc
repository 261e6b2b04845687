// pods/{name}/log over HTTP, against a log source that behaves as a
// ContainerRuntime's read_logs does (callbacks through the loop): the whole
// output, tailLines, limitBytes, follow streaming until the container ends,
// and Kubernetes' refusals (unknown pod, a container name needed, a container
// still waiting, no runtime behind the server).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>

#include "core/api/object.h"
#include "core/api/types.pb.h"
#include "tests/backends/apiserver/test_server.h"

namespace flotilla::apiserver::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Container outputs by id; a follow read gets the output, then `more` (one
// piece per loop turn), then the end.
struct FakeLogs {
  std::map<std::string, std::string> output;
  std::vector<std::string> more;
  std::vector<std::pair<std::string, bool>> calls;  // (container id, follow)
  std::string node = "node-a";
};

class NoopStream final : public ContainerLogStream {};

ApiServerOptions with_logs(std::shared_ptr<FakeLogs> fake, std::shared_ptr<TestServer*> server) {
  ApiServerOptions o;
  o.port = 0;
  o.logs = [fake, server](const std::string& node, const std::string& id, bool follow,
                          std::function<void(std::string)> on_data,
                          Callback<Status> done) -> std::unique_ptr<ContainerLogStream> {
    if (node != fake->node) return nullptr;
    fake->calls.emplace_back(id, follow);
    live::AsioEventLoop& loop = (*server)->loop();
    auto it = fake->output.find(id);
    if (it == fake->output.end()) {
      loop.post([done] { done(not_found_error("container not found")); });
      return std::make_unique<NoopStream>();
    }
    loop.post([on_data, text = it->second] { on_data(text); });
    if (follow) {
      for (const std::string& m : fake->more) loop.post([on_data, m] { on_data(m); });
    }
    loop.post([done] { done(Status::ok()); });
    return std::make_unique<NoopStream>();
  };
  return o;
}

void add_pod(TestServer& ts, const std::string& name, std::vector<std::string> containers,
             const std::string& running_id) {
  ts.on_loop([&] {
    api::Pod p;
    p.mutable_metadata()->set_name(name);
    p.mutable_metadata()->set_namespace_("default");
    for (const auto& c : containers) {
      api::Container* spec = p.mutable_spec()->add_containers();
      spec->set_name(c);
      spec->set_image("demo:1");
    }
    p.mutable_spec()->set_node_name("node-a");
    api::ContainerStatus* cs = p.mutable_status()->add_container_statuses();
    cs->set_name(containers[0]);
    if (running_id.empty()) {
      cs->mutable_state()->mutable_waiting()->set_reason("ErrImagePull");
    } else {
      cs->set_container_id("flotilla://" + running_id);
      cs->mutable_state()->mutable_running();
    }
    ASSERT_TRUE(ts.store().create(api::share(p)).is_ok());
  });
}

class PodLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = std::make_shared<FakeLogs>();
    auto holder = std::make_shared<TestServer*>(nullptr);
    server_ = std::make_unique<TestServer>(with_logs(fake_, holder));
    *holder = server_.get();
  }
  HttpResult get(const std::string& target) { return http_request(server_->port(), "GET", target); }

  std::shared_ptr<FakeLogs> fake_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(PodLogTest, WholeOutputTailAndLimit) {
  fake_->output["c1"] = "one\ntwo\nthree\n";
  add_pod(*server_, "web-1", {"web"}, "c1");
  HttpResult all = get("/api/v1/namespaces/default/pods/web-1/log");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.body, "one\ntwo\nthree\n");
  EXPECT_EQ(all.content_type, "text/plain");
  // The runtime got the id without its scheme.
  ASSERT_FALSE(fake_->calls.empty());
  EXPECT_EQ(fake_->calls.back(), std::make_pair(std::string("c1"), false));

  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web-1/log?tailLines=2").body, "two\nthree\n");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web-1/log?tailLines=0").body, "");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web-1/log?tailLines=10").body,
            "one\ntwo\nthree\n");
  EXPECT_EQ(get("/api/v1/namespaces/default/pods/web-1/log?container=web&limitBytes=5").body,
            "one\nt");
}

TEST_F(PodLogTest, FollowStreamsUntilTheContainerEnds) {
  fake_->output["c1"] = "one\ntwo\n";
  fake_->more = {"three\n", "four\n"};
  add_pod(*server_, "web-1", {"web"}, "c1");
  StreamClient s(server_->port(), "/api/v1/namespaces/default/pods/web-1/log?follow=true");
  // The chunked body ends with the zero-length chunk once the output ends.
  ASSERT_TRUE(s.read_until(
      [](const std::string& r) { return r.find("\r\n0\r\n\r\n") != std::string::npos; }, 10s))
      << s.received();
  const std::string& r = s.received();
  EXPECT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos);
  size_t one = r.find("one\ntwo\n"), three = r.find("three\n"), four = r.find("four\n");
  ASSERT_NE(one, std::string::npos) << r;
  ASSERT_NE(three, std::string::npos) << r;
  ASSERT_NE(four, std::string::npos) << r;
  EXPECT_LT(one, three);
  EXPECT_LT(three, four);
}

TEST_F(PodLogTest, FollowWithTailSkipsWhatTheTailLeftOut) {
  fake_->output["c1"] = "one\ntwo\nthree\n";
  fake_->more = {"four\n"};
  add_pod(*server_, "web-1", {"web"}, "c1");
  StreamClient s(server_->port(),
                 "/api/v1/namespaces/default/pods/web-1/log?follow=true&tailLines=1");
  ASSERT_TRUE(s.read_until(
      [](const std::string& r) { return r.find("\r\n0\r\n\r\n") != std::string::npos; }, 10s))
      << s.received();
  const std::string& r = s.received();
  EXPECT_EQ(r.find("one"), std::string::npos) << r;
  EXPECT_EQ(r.find("two"), std::string::npos) << r;
  EXPECT_NE(r.find("three\n"), std::string::npos) << r;
  EXPECT_NE(r.find("four\n"), std::string::npos) << r;
  // One plain read for the tail, then one follow read.
  ASSERT_EQ(fake_->calls.size(), 2u);
  EXPECT_FALSE(fake_->calls[0].second);
  EXPECT_TRUE(fake_->calls[1].second);
}

TEST_F(PodLogTest, RefusalsUseKubernetesWording) {
  HttpResult missing = get("/api/v1/namespaces/default/pods/nope/log");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body)["message"], "pods \"nope\" not found");

  add_pod(*server_, "two", {"a", "b"}, "c2");
  HttpResult which = get("/api/v1/namespaces/default/pods/two/log");
  EXPECT_EQ(which.status, 400);
  EXPECT_EQ(json::parse(which.body)["message"],
            "a container name must be specified for pod two, choose one of: [a b]");
  HttpResult bad = get("/api/v1/namespaces/default/pods/two/log?container=zz");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["message"], "container zz is not valid for pod two");

  add_pod(*server_, "waiting", {"web"}, "");
  HttpResult w = get("/api/v1/namespaces/default/pods/waiting/log");
  EXPECT_EQ(w.status, 400);
  EXPECT_EQ(json::parse(w.body)["message"],
            "container \"web\" in pod \"waiting\" is waiting to start: ErrImagePull");

  // The runtime no longer has the container.
  add_pod(*server_, "gone", {"web"}, "c-gone");
  HttpResult gone = get("/api/v1/namespaces/default/pods/gone/log");
  EXPECT_EQ(gone.status, 404);
}

// python3-kubernetes posts typed objects without kind and apiVersion; the
// path says what they are, as Kubernetes reads it.
TEST(PodLogNoRuntime, CreateTakesTheKindFromThePath) {
  TestServer ts;
  HttpResult r = http_request(ts.port(), "POST", "/api/v1/namespaces/default/pods",
                              R"({"metadata":{"name":"py-1"},"spec":{"containers":[)"
                              R"({"name":"c","image":"demo:1"}]}})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(json::parse(r.body)["kind"], "Pod");
}

TEST(PodLogNoRuntime, ServerOverABareStoreAnswers503) {
  TestServer ts;
  add_pod(ts, "web-1", {"web"}, "c1");
  HttpResult r = http_request(ts.port(), "GET", "/api/v1/namespaces/default/pods/web-1/log");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["reason"], "ServiceUnavailable");
}

}  // namespace
}  // namespace flotilla::apiserver::testing
