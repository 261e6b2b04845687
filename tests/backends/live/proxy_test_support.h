// What the TcpServiceProxy tests share (tests/backends/live and
// tests/backends/live_net): Service and Endpoints objects for the store, and
// off_loop, which runs a blocking client on a helper thread while the test's
// AsioEventLoop runs, failing the test at a deadline instead of hanging it.
// The loopback servers themselves are in tests/backends/live_net/local_servers.h.
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
#include "core/api/object.h"
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

// Endpoints "default/<name>", one subset per port: every backend is
// 127.0.0.1:<port>. Pass the current resource_version to update.
inline api::Object endpoints_object(const std::string& name, const std::vector<int>& ports,
                                    const std::string& resource_version = "") {
  api::Endpoints e;
  e.set_api_version("v1");
  e.set_kind("Endpoints");
  e.mutable_metadata()->set_name(name);
  e.mutable_metadata()->set_namespace_("default");
  e.mutable_metadata()->set_resource_version(resource_version);
  for (int p : ports) {
    auto* subset = e.add_subsets();
    subset->add_addresses()->set_ip("127.0.0.1");
    subset->add_ports()->set_port(p);
  }
  return std::make_shared<api::Endpoints>(std::move(e));
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

}  // namespace flotilla::live::testing
