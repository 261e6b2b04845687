// The in-process side of the tests whose `flotilla agent` children (see
// child_process.h) join a cluster over the API: remote_agent_test,
// service_agents_test and tests/backends/multihost/multihost_test. A
// scenario's control plane on the test's loop, the "default" namespace, and the
// API server the agents talk to; plus the Ready condition of their Nodes, and
// off_loop for whatever the test itself waits on.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "backends/apiserver/api_server.h"
#include "backends/live/asio_event_loop.h"
#include "core/api/object.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "scenarios/control_plane.h"
#include "scenarios/loader.h"

namespace flotilla::apiclient {

struct AgentControlPlane {
  // What start() may be told besides the scenario.
  struct Options {
    // The API server listens on this address, at a free port.
    std::string api_address = "127.0.0.1";
    // Adjusts the scenario's timing before the control plane is built.
    std::function<void(TimingProfile&)> tune;
    // Runs after the control plane started, before the API is served (e.g.
    // enable_node_ipam).
    std::function<Status(scenarios::ControlPlane&)> before_serving;
  };

  // Loads `scenario_yaml` (named `source_name` in errors), starts its control
  // plane on `loop`, creates namespace "default" and serves the API. The
  // borrowed ports must outlive this object.
  Status start(live::AsioEventLoop& loop, Random& random, Network& network, TraceSink& trace,
               const std::string& scenario_yaml, const std::string& source_name,
               const Options& options) {
    auto sc = scenarios::load_scenario_text(scenario_yaml, source_name, ".");
    if (!sc.is_ok()) return sc.status();
    scenario = std::make_unique<scenarios::LoadedScenario>(std::move(*sc));
    if (options.tune) options.tune(scenario->timing);
    control = std::make_unique<scenarios::ControlPlane>(loop, random, network, trace, *scenario);
    Status started = control->start();
    if (!started.is_ok()) return started.with_prefix("control plane: ");
    if (options.before_serving) {
      Status s = options.before_serving(*control);
      if (!s.is_ok()) return s;
    }
    api::Namespace ns;
    ns.mutable_metadata()->set_name("default");
    (void)control->store().create(api::share(ns));
    apiserver::ApiServerOptions so;
    so.address = options.api_address;
    so.port = 0;
    server = std::make_unique<apiserver::ApiServer>(loop, control->store(), so);
    return server->start();
  }
  Status start(live::AsioEventLoop& loop, Random& random, Network& network, TraceSink& trace,
               const std::string& scenario_yaml, const std::string& source_name) {
    return start(loop, random, network, trace, scenario_yaml, source_name, Options{});
  }
  // Stops serving (agents then lose the API server); the control plane stays.
  void stop() {
    if (server) server->stop();
  }

  Store& store() { return control->store(); }
  std::string url() const { return server->url(); }

  std::unique_ptr<scenarios::LoadedScenario> scenario;
  std::unique_ptr<scenarios::ControlPlane> control;
  std::unique_ptr<apiserver::ApiServer> server;
};

// The status of Node `name`'s Ready condition ("True", "False", "Unknown"),
// or "" when the Node or the condition does not exist yet.
inline std::string node_ready(Store& store, const std::string& name) {
  auto n = store.get(api::Kind::kNode, "", name);
  if (!n.is_ok()) return "";
  for (const auto& c : api::as<api::Node>(*n)->status().conditions()) {
    if (c.type() == "Ready") return c.status();
  }
  return "";
}

// Runs `f` (a docker exec, a blocking socket read) on another thread while
// this one keeps running `loop`, and returns its result. The control plane and
// API server live on the loop: blocked for longer than the node monitor's
// grace period (4 s in the fast profile), they read no heartbeat, the node
// controller marks every Node Unknown, and the Nodes' pods leave their
// Services until the agents' next status writes get through.
template <typename F>
auto off_loop(live::AsioEventLoop& loop, F f) -> decltype(f()) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto result = std::async(std::launch::async, [&f, done, &loop] {
    struct Wake {  // also when f throws
      std::atomic<bool>& done;
      live::AsioEventLoop& loop;
      ~Wake() {
        done.store(true);
        loop.post([] {});  // wakes run_until to look at `done`
      }
    } wake{*done, loop};
    return f();
  });
  while (!done->load()) loop.run_until([&] { return done->load(); }, std::chrono::hours(1));
  return result.get();
}

}  // namespace flotilla::apiclient
