// What the TcpServiceProxy tests share (tests/backends/live and
// tests/backends/live_net): Service and EndpointSlice objects for the store;
// off_loop, which runs a blocking client on a helper thread while the test's
// AsioEventLoop runs, failing the test at a deadline instead of hanging it; and
// ProxyTest, a fixture with a real store, the core ServiceProxy and the
// TcpServiceProxy on that loop. The loopback servers themselves are in
// tests/backends/live_net/local_servers.h.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "backends/live/asio_event_loop.h"
#include "backends/live/live_network.h"
#include "backends/live/tcp_proxy.h"
#include "core/api/object.h"
#include "core/proxy/service_proxy.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "tests/backends/live_net/local_servers.h"

namespace flotilla::live::testing {

// A Service "default/<name>" selecting app=<name>, one TCP port.
inline api::Object service_object(const std::string& name, int port,
                                  const std::map<std::string, std::string>& annotations = {},
                                  const std::string& cluster_ip = "") {
  api::Service s;
  s.set_api_version("v1");
  s.set_kind("Service");
  s.mutable_metadata()->set_name(name);
  s.mutable_metadata()->set_namespace_("default");
  for (const auto& [k, v] : annotations) (*s.mutable_metadata()->mutable_annotations())[k] = v;
  (*s.mutable_spec()->mutable_selector())["app"] = name;
  auto* sp = s.mutable_spec()->add_ports();
  sp->set_port(port);
  sp->set_protocol("TCP");
  if (!cluster_ip.empty()) {
    s.mutable_spec()->set_cluster_ip(cluster_ip);
    s.mutable_spec()->add_cluster_ips(cluster_ip);
  }
  return std::make_shared<api::Service>(std::move(s));
}

// The EndpointSlices of Service "default/<name>", one per port (named
// "<name>-<port>"): every backend is 127.0.0.1:<port>. Pass the current
// resource_version to update.
inline api::Object slice_object(const std::string& name, int port,
                                const std::string& resource_version = "") {
  api::EndpointSlice e;
  e.set_api_version("discovery.k8s.io/v1");
  e.set_kind("EndpointSlice");
  e.mutable_metadata()->set_name(name + "-" + std::to_string(port));
  e.mutable_metadata()->set_namespace_("default");
  e.mutable_metadata()->set_resource_version(resource_version);
  (*e.mutable_metadata()->mutable_labels())["kubernetes.io/service-name"] = name;
  e.set_address_type("IPv4");
  auto* ep = e.add_endpoints();
  ep->add_addresses("127.0.0.1");
  ep->mutable_conditions()->set_ready(true);
  e.add_ports()->set_port(port);
  return std::make_shared<api::EndpointSlice>(std::move(e));
}

// Creates slice_object(name, p) for each port; false when the store refuses one.
template <typename S>
bool create_slices(S& store, const std::string& name, const std::vector<int>& ports) {
  for (int p : ports) {
    if (!store.create(slice_object(name, p)).is_ok()) return false;
  }
  return true;
}

// Runs `fn` on a helper thread while `loop` runs; returns its result. The
// helper marks itself done and then posts to the loop, so run_until (which
// checks after loop callbacks) wakes at once. A missed deadline fails the
// test and shuts the helper's registered sockets down (CancelGuard) so its
// blocking calls return and the thread can be joined.
template <typename Fn>
auto off_loop(AsioEventLoop& loop, Fn fn, Duration deadline = seconds(10)) {
  using R = decltype(fn());
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto result = std::make_shared<std::optional<R>>();
  auto canceller = std::make_shared<ClientCanceller>();
  std::thread t([&loop, fn, done, result, canceller] {
    current_canceller = canceller.get();
    result->emplace(fn());
    current_canceller = nullptr;
    done->store(true);
    loop.post([] {});
  });
  const bool finished = loop.run_until([&] { return done->load(); }, deadline);
  EXPECT_TRUE(finished) << "helper thread missed its deadline; cancelling its sockets";
  if (!finished) canceller->cancel();
  t.join();
  return std::move(**result);
}

// A store, the decisions (proxy::ServiceProxy) and the data path
// (TcpServiceProxy) on one AsioEventLoop; a test builds the two proxies with
// its options (make_proxies), then creates objects and starts them.
class ProxyTest : public ::testing::Test {
 protected:
  explicit ProxyTest(uint64_t seed) : random_(seed), rng_(random_.stream("store")),
                                      store_(loop_, *rng_) {}
  ~ProxyTest() override {
    proxy_.reset();
    decisions_.reset();
  }

  // The decisions' options these tests start from: node "node-1", syncs at
  // most every 10 ms, 2 retries after a failed connect.
  static proxy::ServiceProxyOptions decision_options() {
    proxy::ServiceProxyOptions o;
    o.node_name = "node-1";
    o.min_sync_period = milliseconds(10);
    o.max_retries = 2;
    return o;
  }
  void make_proxies(const proxy::ServiceProxyOptions& decisions,
                    const TcpServiceProxyOptions& data_path) {
    decisions_ = std::make_unique<proxy::ServiceProxy>(loop_, store_, net_, random_, decisions);
    proxy_ = std::make_unique<TcpServiceProxy>(loop_, store_, *decisions_, data_path);
  }

  // A port free on 127.0.0.1 right now (bound, read, closed).
  int free_port() {
    boost::asio::ip::tcp::acceptor probe(
        loop_.io_context(),
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    return probe.local_endpoint().port();
  }

  // Creates Service "web" (port 80 on a free host port, plus `annotations`)
  // and its EndpointSlices (127.0.0.1:<each backend port>), starts both proxies and
  // waits until the host port listens and every endpoint is known. Returns
  // the host port, 0 on failure (the test has failed then).
  int start_web(const std::vector<int>& backend_ports,
                std::map<std::string, std::string> annotations = {}) {
    const int host_port = free_port();
    annotations[std::string(kHostPortAnnotation)] = std::to_string(host_port);
    EXPECT_TRUE(store_.create(service_object("web", 80, annotations)).is_ok());
    EXPECT_TRUE(create_slices(store_, "web", backend_ports));
    EXPECT_TRUE(decisions_->start().is_ok());
    EXPECT_TRUE(proxy_->start().is_ok());
    EXPECT_TRUE(loop_.run_until(
        [&] {
          return proxy_->host_port("default/web", 80).is_ok() &&
                 decisions_->endpoints("default/web", 80).size() == backend_ports.size();
        },
        seconds(5)));
    auto hp = proxy_->host_port("default/web", 80);
    EXPECT_TRUE(hp.is_ok()) << hp.status().to_string();
    return hp.is_ok() ? *hp : 0;
  }

  // off_loop on this fixture's loop.
  template <typename Fn>
  auto off_loop(Fn fn, Duration deadline = seconds(10)) {
    return testing::off_loop(loop_, fn, deadline);
  }

  AsioEventLoop loop_;
  sim::SimRandom random_;
  std::unique_ptr<RandomStream> rng_;
  store::InMemoryStore store_;
  LiveNetwork net_{loop_};
  std::unique_ptr<proxy::ServiceProxy> decisions_;
  std::unique_ptr<TcpServiceProxy> proxy_;
};

}  // namespace flotilla::live::testing
