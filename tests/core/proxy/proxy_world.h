// A small world for proxy tests: virtual time (sim::Simulator), the in-memory
// Store, a scripted Network, seeded randomness, and builders for Services and
// EndpointSlices.
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

// An EndpointSlice of Service `name` (named as the Service, labelled
// kubernetes.io/service-name): ready and not-ready endpoints on one port.
inline api::EndpointSlice make_slice(const std::string& name, const std::vector<std::string>& ready,
                                     const std::vector<std::string>& not_ready = {},
                                     int port = 8080, const std::string& port_name = "",
                                     const std::string& ns = "default") {
  api::EndpointSlice e;
  e.set_api_version("discovery.k8s.io/v1");
  e.set_kind("EndpointSlice");
  e.mutable_metadata()->set_name(name);
  e.mutable_metadata()->set_namespace_(ns);
  (*e.mutable_metadata()->mutable_labels())["kubernetes.io/service-name"] = name;
  e.set_address_type("IPv4");
  for (const auto& ip : ready) {
    auto* ep = e.add_endpoints();
    ep->add_addresses(ip);
    ep->mutable_conditions()->set_ready(true);
  }
  for (const auto& ip : not_ready) {
    auto* ep = e.add_endpoints();
    ep->add_addresses(ip);
    ep->mutable_conditions()->set_ready(false);
  }
  auto* p = e.add_ports();
  p->set_name(port_name);
  p->set_port(port);
  return e;
}

}  // namespace flotilla::proxy::testing
