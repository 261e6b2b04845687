// A small world for proxy tests: virtual time (sim::Simulator), the in-memory
// Store, a scripted Network, seeded randomness, and builders for Services and
// Endpoints objects.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/api/object.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "tests/core/proxy/scripted_network.h"

namespace flotilla::proxy::testing {

struct World {
  World() : rng(random.stream("store")), store(sim, *rng), net(sim) {}

  sim::Simulator sim;
  sim::SimRandom random{42};
  std::unique_ptr<RandomStream> rng;
  store::InMemoryStore store;
  ScriptedNetwork net;

  void run_for(Duration d) { sim.run_for(d); }
};

struct PortSpec {
  std::string name;
  int port = 80;
};

inline api::Service make_service(const std::string& name, std::vector<PortSpec> ports = {{"", 80}},
                                 const std::string& cluster_ip = "",
                                 std::map<std::string, std::string> annotations = {},
                                 const std::string& ns = "default") {
  api::Service s;
  s.set_api_version("v1");
  s.set_kind("Service");
  s.mutable_metadata()->set_name(name);
  s.mutable_metadata()->set_namespace_(ns);
  for (auto& [k, v] : annotations) (*s.mutable_metadata()->mutable_annotations())[k] = v;
  (*s.mutable_spec()->mutable_selector())["app"] = name;
  for (const auto& p : ports) {
    auto* sp = s.mutable_spec()->add_ports();
    sp->set_name(p.name);
    sp->set_port(p.port);
    sp->mutable_target_port()->set_int_val(8080);
  }
  s.mutable_spec()->set_cluster_ip(cluster_ip);
  if (!cluster_ip.empty() && cluster_ip != "None") s.mutable_spec()->add_cluster_ips(cluster_ip);
  return s;
}

inline api::Endpoints make_endpoints(const std::string& name, const std::vector<std::string>& ready,
                                     const std::vector<std::string>& not_ready = {},
                                     int port = 8080, const std::string& port_name = "",
                                     const std::string& ns = "default") {
  api::Endpoints e;
  e.set_api_version("v1");
  e.set_kind("Endpoints");
  e.mutable_metadata()->set_name(name);
  e.mutable_metadata()->set_namespace_(ns);
  auto* subset = e.add_subsets();
  for (const auto& ip : ready) subset->add_addresses()->set_ip(ip);
  for (const auto& ip : not_ready) subset->add_not_ready_addresses()->set_ip(ip);
  auto* p = subset->add_ports();
  p->set_name(port_name);
  p->set_port(port);
  return e;
}

}  // namespace flotilla::proxy::testing
