// Helpers for scheduler tests: build Node and Pod objects the way manifests
// would, and check a snapshot against every filter's invariant.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/api/types.pb.h"
#include "core/scheduler/snapshot.h"

namespace flotilla::sched::testing {

struct NodeSpec {
  std::string name;
  std::string cpu = "4";
  std::string memory = "8Gi";
  std::string pods = "110";
  std::string zone;
  bool ready = true;
  bool unschedulable = false;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> extended;  // "alibaba.com/gpu" -> "2"
};

inline std::shared_ptr<const api::Node> make_node(const NodeSpec& s) {
  api::Node n;
  n.set_kind("Node");
  n.mutable_metadata()->set_name(s.name);
  for (const auto& [k, v] : s.labels) (*n.mutable_metadata()->mutable_labels())[k] = v;
  if (!s.zone.empty()) (*n.mutable_metadata()->mutable_labels())[std::string(kZoneLabel)] = s.zone;
  n.mutable_spec()->set_unschedulable(s.unschedulable);
  auto& alloc = *n.mutable_status()->mutable_allocatable();
  alloc["cpu"] = s.cpu;
  alloc["memory"] = s.memory;
  alloc["pods"] = s.pods;
  for (const auto& [k, v] : s.extended) alloc[k] = v;
  *n.mutable_status()->mutable_capacity() = alloc;
  api::NodeCondition* c = n.mutable_status()->add_conditions();
  c->set_type("Ready");
  c->set_status(s.ready ? "True" : "False");
  return std::make_shared<const api::Node>(std::move(n));
}

struct PodSpec {
  std::string name;
  std::string cpu;     // "" for none
  std::string memory;  // "" for none
  std::vector<int> host_ports;
  std::string owner_uid;  // controller owner reference
  std::map<std::string, std::string> node_selector;
  std::string node_name;
  std::map<std::string, std::string> extended;
  std::string ns = "default";
};

inline std::shared_ptr<const api::Pod> make_pod(const PodSpec& s) {
  api::Pod p;
  p.set_kind("Pod");
  p.mutable_metadata()->set_name(s.name);
  p.mutable_metadata()->set_namespace_(s.ns);
  p.mutable_metadata()->set_uid("uid-" + s.name);
  if (!s.owner_uid.empty()) {
    api::OwnerReference* o = p.mutable_metadata()->add_owner_references();
    o->set_kind("ReplicationController");
    o->set_name("rc-" + s.owner_uid);
    o->set_uid(s.owner_uid);
    o->set_controller(true);
  }
  api::Container* c = p.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("nginx");
  auto& req = *c->mutable_resources()->mutable_requests();
  if (!s.cpu.empty()) req["cpu"] = s.cpu;
  if (!s.memory.empty()) req["memory"] = s.memory;
  for (const auto& [k, v] : s.extended) req[k] = v;
  for (int hp : s.host_ports) {
    api::ContainerPort* port = c->add_ports();
    port->set_container_port(hp);
    port->set_host_port(hp);
  }
  for (const auto& [k, v] : s.node_selector) (*p.mutable_spec()->mutable_node_selector())[k] = v;
  p.mutable_spec()->set_node_name(s.node_name);
  return std::make_shared<const api::Pod>(std::move(p));
}

// Parses a pod against the snapshot's resource names and interns its owner.
inline PodInfo pod_info(Snapshot& snap, const PodSpec& s) {
  StatusOr<PodInfo> info = PodInfo::from_pod(make_pod(s), snap.resource_names());
  PodInfo p = std::move(info).value();
  snap.intern_spread_key(p);
  return p;
}

// Every node: requested <= allocatable in every dimension, and no two assigned
// host ports conflict. Returns "" when all hold, else the first violation.
inline std::string check_invariants(const Snapshot& snap) {
  for (int i : snap.live_nodes()) {
    const NodeInfo& n = snap.node(i);
    const Resources& a = n.allocatable;
    const Resources& r = n.requested;
    if (r.milli_cpu > a.milli_cpu) return n.name + ": cpu over";
    if (r.memory > a.memory) return n.name + ": memory over";
    if (r.pods > a.pods) return n.name + ": pods over";
    if (r.ephemeral_storage > a.ephemeral_storage) return n.name + ": ephemeral over";
    for (const auto& [id, v] : r.extended) {
      if (v > a.extended_value(id)) return n.name + ": extended over";
    }
    for (size_t x = 0; x < n.used_ports.size(); ++x) {
      for (size_t y = x + 1; y < n.used_ports.size(); ++y) {
        if (n.used_ports[x].conflicts(n.used_ports[y])) return n.name + ": port conflict";
      }
    }
  }
  return "";
}

}  // namespace flotilla::sched::testing
