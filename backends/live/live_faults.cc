#include "backends/live/live_faults.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "backends/docker/docker_container_runtime.h"
#include "core/api/object.h"
#include "core/api/types.pb.h"

namespace flotilla::live {

namespace {

using nlohmann::json;

const char* kind_reason(sim::FaultSpec::Kind k) {
  switch (k) {
    case sim::FaultSpec::Kind::kKillNode: return "kill_node";
    case sim::FaultSpec::Kind::kRestartNode: return "restart_node";
    case sim::FaultSpec::Kind::kKillContainers: return "kill_containers";
    case sim::FaultSpec::Kind::kHangContainers: return "hang_containers";
    case sim::FaultSpec::Kind::kPartition: return "partition";
    case sim::FaultSpec::Kind::kPowerOff: return "power_off";
    case sim::FaultSpec::Kind::kStochasticNodes: return "node_failure";
    case sim::FaultSpec::Kind::kStochasticContainers: return "container_crash";
  }
  return "fault";
}

std::string label_filter(std::string_view key, const std::string& value) {
  return std::string(key) + "=" + value;
}

// Running containers with all of `labels`.
StatusOr<json> running_containers(const docker::DockerClient& client,
                                  const std::vector<std::string>& labels) {
  json filters = {{"label", json::array({label_filter(docker::kManagedLabel, "true")})}};
  for (const auto& l : labels) filters["label"].push_back(l);
  return client.call("GET", "/containers/json?filters=" + docker::encode_filters(filters));
}

std::string label_of(const json& c, std::string_view key) {
  if (!c.contains("Labels") || !c["Labels"].is_object()) return "";
  return c["Labels"].value(std::string(key), "");
}

}  // namespace

// --- SwitchableStoreLink ---

Status SwitchableStoreLink::refused() const {
  return unavailable_error("node " + node_ + " cannot reach the control plane (network partition)");
}
StatusOr<api::Object> SwitchableStoreLink::get(api::Kind kind, std::string_view ns,
                                               std::string_view name) const {
  if (cut_off_) return refused();
  return inner_.get(kind, ns, name);
}
StatusOr<ListResult> SwitchableStoreLink::list(api::Kind kind, const ListOptions& options) const {
  if (cut_off_) return refused();
  return inner_.list(kind, options);
}
StatusOr<api::Object> SwitchableStoreLink::create(api::Object object) {
  if (cut_off_) return refused();
  return inner_.create(std::move(object));
}
StatusOr<api::Object> SwitchableStoreLink::update(api::Object object) {
  if (cut_off_) return refused();
  return inner_.update(std::move(object));
}
StatusOr<api::Object> SwitchableStoreLink::remove(api::Kind kind, std::string_view ns,
                                                  std::string_view name,
                                                  const DeleteOptions& options) {
  if (cut_off_) return refused();
  return inner_.remove(kind, ns, name, options);
}
StatusOr<WatchHandle> SwitchableStoreLink::watch(api::Kind kind, const WatchOptions& options,
                                                 std::function<void(const WatchEvent&)> on_event) {
  return inner_.watch(kind, options, std::move(on_event));
}

// --- LiveFaultInjector ---

LiveFaultInjector::LiveFaultInjector(EventLoop& loop, Random& random, TraceSink& trace,
                                     Store& store, const docker::DockerClient& client,
                                     LiveNodeControl& control, std::vector<LiveNodeInfo> nodes,
                                     std::string network)
    : loop_(loop),
      random_(random),
      trace_(trace),
      store_(store),
      client_(client),
      control_(control),
      nodes_(std::move(nodes)),
      network_(std::move(network)),
      holds_(nodes_.size(), 0) {
  worker_ = std::thread([this] { worker_main(); });
}

LiveFaultInjector::~LiveFaultInjector() {
  alive_.reset();
  timers_.clear();
  pod_watch_.reset();
  crash_timers_.clear();
  units_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  worker_.join();
}

size_t LiveFaultInjector::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size() + static_cast<size_t>(running_jobs_);
}

void LiveFaultInjector::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void LiveFaultInjector::worker_main() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_jobs_;
    }
    job();
    std::lock_guard<std::mutex> lock(mu_);
    --running_jobs_;
  }
}

StatusOr<std::vector<size_t>> LiveFaultInjector::resolve_nodes(const sim::FaultSpec& spec) const {
  std::vector<size_t> out;
  for (const auto& name : spec.nodes) {
    auto it = std::find_if(nodes_.begin(), nodes_.end(),
                           [&](const LiveNodeInfo& n) { return n.name == name; });
    if (it == nodes_.end()) return not_found_error(spec.name + ": no node named \"" + name + "\"");
    out.push_back(static_cast<size_t>(it - nodes_.begin()));
  }
  if (!spec.rack.empty() || !spec.zone.empty()) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if ((!spec.rack.empty() && nodes_[i].rack == spec.rack) ||
          (!spec.zone.empty() && nodes_[i].zone == spec.zone)) {
        out.push_back(i);
      }
    }
    if (out.empty()) {
      return not_found_error(spec.name + ": no node in " +
                             (spec.rack.empty() ? "zone \"" + spec.zone : "rack \"" + spec.rack) +
                             "\"");
    }
  }
  if (out.empty()) return invalid_error(spec.name + ": names no node");
  return out;
}

Status LiveFaultInjector::add(const sim::FaultSpec& spec) {
  using K = sim::FaultSpec::Kind;
  if (spec.kind == K::kStochasticNodes) return add_stochastic_nodes(spec);
  if (spec.kind == K::kStochasticContainers) return add_stochastic_containers(spec);
  if ((spec.kind == K::kKillNode || spec.kind == K::kRestartNode) && spec.nodes.size() != 1) {
    return invalid_error(spec.name + ": needs exactly one node");
  }
  std::vector<size_t> nodes;
  if (spec.kind != K::kKillContainers && spec.kind != K::kHangContainers) {
    auto r = resolve_nodes(spec);
    if (!r.is_ok()) return r.status();
    nodes = std::move(*r);
  }
  if (spec.kind == K::kKillContainers && spec.exit_code != 137) {
    warnings_.push_back(spec.name + ": live mode kills with SIGKILL, so the exit code is 137, not " +
                        std::to_string(spec.exit_code));
  }
  timers_.push_back(loop_.run_after(spec.at, [this, spec, nodes] { fire(spec, nodes); }));
  return Status::ok();
}

Status LiveFaultInjector::add_all(const std::vector<sim::FaultSpec>& specs) {
  for (const auto& s : specs) FLOTILLA_RETURN_IF_ERROR(add(s));
  return Status::ok();
}

Status LiveFaultInjector::fire_now(const sim::FaultSpec& spec) {
  std::vector<size_t> nodes;
  if (spec.kind != sim::FaultSpec::Kind::kKillContainers &&
      spec.kind != sim::FaultSpec::Kind::kHangContainers) {
    auto r = resolve_nodes(spec);
    if (!r.is_ok()) return r.status();
    nodes = std::move(*r);
  }
  fire(spec, nodes);
  return Status::ok();
}

void LiveFaultInjector::record(trace::EventType type, const sim::FaultSpec& spec,
                               const std::string& reason, const std::string& node,
                               const std::string& message) {
  trace::Record r;
  r.set_time_ns(to_nanos(loop_.now()));
  r.set_type(type);
  r.set_node(node);
  r.set_reason(reason);
  r.set_message(message);
  (*r.mutable_attrs())["fault"] = spec.name;
  if (!spec.rack.empty()) (*r.mutable_attrs())["rack"] = spec.rack;
  if (!spec.zone.empty()) (*r.mutable_attrs())["zone"] = spec.zone;
  trace_.record(r);
  if (type == trace::FAULT_INJECTED) {
    ++injected_;
  } else {
    ++healed_;
  }
}

void LiveFaultInjector::node_down(size_t n, const std::string& reason) {
  if (holds_[n]++ != 0) return;
  control_.node_down(nodes_[n].name, reason);
  // The machine's containers die with it.
  const std::string node_label = label_filter(docker::kNodeLabel, nodes_[n].docker_node);
  enqueue([this, node_label] {
    auto cs = running_containers(client_, {node_label});
    if (!cs.is_ok()) return;
    std::vector<std::string> apps, sandboxes;
    for (const json& c : *cs) {
      (label_of(c, docker::kRoleLabel) == "sandbox" ? sandboxes : apps).push_back(c["Id"]);
    }
    for (const auto& list : {apps, sandboxes}) {
      for (const auto& id : list) (void)client_.call("POST", "/containers/" + id + "/kill");
    }
  });
}

void LiveFaultInjector::node_up(size_t n, const std::string& reason) {
  if (holds_[n] == 0) return;
  if (--holds_[n] != 0) return;
  control_.node_up(nodes_[n].name, reason);
}

void LiveFaultInjector::partition(size_t n, bool cut) {
  control_.set_cut_off(nodes_[n].name, cut);
  const std::string node_label = label_filter(docker::kNodeLabel, nodes_[n].docker_node);
  auto detached = detached_;
  const std::string net = network_;
  enqueue([this, n, cut, node_label, detached, net] {
    if (cut) {
      auto cs = running_containers(client_, {node_label, label_filter(docker::kRoleLabel, "sandbox")});
      if (!cs.is_ok()) return;
      for (const json& c : *cs) {
        std::string ip;
        if (c.contains("NetworkSettings") && c["NetworkSettings"].contains("Networks") &&
            c["NetworkSettings"]["Networks"].contains(net)) {
          ip = c["NetworkSettings"]["Networks"][net].value("IPAddress", "");
        }
        if (ip.empty()) continue;
        if (client_.call("POST", "/networks/" + docker::url_encode(net) + "/disconnect",
                         json{{"Container", c["Id"]}, {"Force", true}})
                .is_ok()) {
          (*detached)[n].emplace_back(c["Id"].get<std::string>(), ip);
        }
      }
    } else {
      for (const auto& [id, ip] : (*detached)[n]) {
        (void)client_.call("POST", "/networks/" + docker::url_encode(net) + "/connect",
                           json{{"Container", id},
                                {"EndpointConfig", {{"IPAMConfig", {{"IPv4Address", ip}}}}}});
      }
      (*detached)[n].clear();
    }
  });
}

void LiveFaultInjector::containers(const sim::FaultSpec& spec) {
  const bool kill = spec.kind == sim::FaultSpec::Kind::kKillContainers;
  const std::string reason = kind_reason(spec.kind);
  // The matching pods, from the store, in key order.
  // (uid, ns/name, docker node label): by node label too, as another run of
  // the same scenario on this host has pods with the same UIDs.
  std::vector<std::tuple<std::string, std::string, std::string>> pods;
  ListOptions lo;
  lo.labels = spec.selector;
  auto list = store_.list(api::Kind::kPod, lo);
  if (list.is_ok()) {
    for (const auto& o : list->items) {
      const auto& pod = *api::as<api::Pod>(o);
      if (pod.spec().node_name().empty() || pod.metadata().has_deletion_timestamp()) continue;
      std::string docker_node;
      for (const auto& n : nodes_) {
        if (n.name == pod.spec().node_name()) docker_node = n.docker_node;
      }
      if (docker_node.empty()) continue;
      pods.emplace_back(pod.metadata().uid(), pod.metadata().namespace_() + "/" + pod.metadata().name(),
                        docker_node);
    }
  }
  // Their running app containers: chosen on the worker, where the Engine API is.
  std::weak_ptr<int> alive = alive_;
  auto stream = std::shared_ptr<RandomStream>(random_.stream("faults/" + spec.name));
  enqueue([this, alive, spec, pods, kill, reason, stream] {
    std::vector<std::pair<std::string, std::string>> ids;  // (container id, pod)
    for (const auto& [uid, key, docker_node] : pods) {
      auto cs = running_containers(client_, {label_filter(docker::kPodUidLabel, uid),
                                             label_filter(docker::kNodeLabel, docker_node),
                                             label_filter(docker::kRoleLabel, "app")});
      if (!cs.is_ok()) continue;
      std::vector<std::pair<std::string, std::string>> mine;
      for (const json& c : *cs) mine.emplace_back(label_of(c, docker::kContainerLabel) + "\n" + c["Id"].get<std::string>(), key);
      std::sort(mine.begin(), mine.end());
      for (auto& [k, p] : mine) ids.emplace_back(k.substr(k.find('\n') + 1), p);
    }
    if (spec.count > 0 && static_cast<size_t>(spec.count) < ids.size()) {
      for (size_t i = 0; i < static_cast<size_t>(spec.count); ++i) {
        size_t j = i + stream->next_below(ids.size() - i);
        std::swap(ids[i], ids[j]);
      }
      ids.resize(static_cast<size_t>(spec.count));
    }
    for (const auto& [id, pod] : ids) {
      (void)client_.call("POST", "/containers/" + id + (kill ? "/kill" : "/pause"));
    }
    loop_.post([this, alive, spec, ids, kill, reason] {
      if (alive.expired()) return;
      std::string names;
      for (const auto& [id, pod] : ids) {
        affected_pods_.push_back(pod);
        names += (names.empty() ? "" : ",") + pod;
      }
      record(trace::FAULT_INJECTED, spec, reason, "",
             std::to_string(ids.size()) + " containers matching \"" + spec.selector_text + "\"" +
                 (kill ? " killed" : " hung") + (names.empty() ? "" : " (" + names + ")"));
    });
  });
}

// --- stochastic faults: the simulator's model (sim/faults) on real time ---

Status LiveFaultInjector::add_stochastic_nodes(const sim::FaultSpec& spec) {
  if (!spec.ttf || !spec.ttr) return invalid_error(spec.name + ": missing ttf or ttr");
  // Units in node order; a rack or zone unit holds its matching nodes.
  std::vector<std::pair<std::string, std::vector<size_t>>> units;
  std::map<std::string, size_t> by_domain;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (!spec.node_selector.empty()) {
      api::Labels l;
      for (const auto& [k, v] : nodes_[n].labels) l[k] = v;
      if (!spec.node_selector.matches(l)) continue;
    }
    const std::string key = spec.domain == sim::FaultSpec::Domain::kNode   ? nodes_[n].name
                            : spec.domain == sim::FaultSpec::Domain::kRack ? nodes_[n].rack
                                                                           : nodes_[n].zone;
    auto [it, inserted] = by_domain.emplace(key, units.size());
    if (inserted) units.emplace_back(key, std::vector<size_t>{});
    units[it->second].second.push_back(n);
  }
  for (auto& [name, nodes] : units) {
    auto u = std::make_unique<Unit>();
    u->name = name;
    u->nodes = std::move(nodes);
    u->spec = spec;
    u->stream = random_.stream("faults/" + spec.name + "/" + name);
    const size_t idx = units_.size();
    const Duration d = spec.ttf->sample_duration(*u->stream);
    u->timer = loop_.run_after(d, [this, idx] { unit_fail(idx); });
    units_.push_back(std::move(u));
  }
  return Status::ok();
}

void LiveFaultInjector::unit_fail(size_t idx) {
  Unit& u = *units_[idx];
  const std::string node = u.nodes.size() == 1 ? nodes_[u.nodes[0]].name : "";
  record(trace::FAULT_INJECTED, u.spec, "node_failure", node, u.name + " failed");
  for (size_t n : u.nodes) node_down(n, "node_failure");
  const Duration d = u.spec.ttr->sample_duration(*u.stream);
  u.timer = loop_.run_after(d, [this, idx] { unit_repair(idx); });
}

void LiveFaultInjector::unit_repair(size_t idx) {
  Unit& u = *units_[idx];
  const std::string node = u.nodes.size() == 1 ? nodes_[u.nodes[0]].name : "";
  record(trace::FAULT_HEALED, u.spec, "node_failure", node, u.name + " repaired");
  for (size_t n : u.nodes) node_up(n, "node_repair");
  const Duration d = u.spec.ttf->sample_duration(*u.stream);
  u.timer = loop_.run_after(d, [this, idx] { unit_fail(idx); });
}

Status LiveFaultInjector::add_stochastic_containers(const sim::FaultSpec& spec) {
  if (!spec.ttf) return invalid_error(spec.name + ": missing ttf");
  if (spec.exit_code != 137) {
    warnings_.push_back(spec.name + ": live mode kills with SIGKILL, so the exit code is 137, not " +
                        std::to_string(spec.exit_code));
  }
  hazards_.push_back(Hazard{spec, random_.stream("faults/" + spec.name)});
  hazard_seen_.emplace_back();
  if (!pod_watch_) {
    WatchOptions wo;
    wo.send_initial_events = true;
    auto w = store_.watch(api::Kind::kPod, wo, [this](const WatchEvent& e) { on_pod(e); });
    if (!w.is_ok()) return w.status().with_prefix(spec.name + ": watching pods: ");
    pod_watch_ = std::move(*w);
  }
  return Status::ok();
}

void LiveFaultInjector::on_pod(const WatchEvent& e) {
  const auto pod = api::as<api::Pod>(e.object);
  if (e.type == WatchEventType::kDeleted || pod->metadata().has_deletion_timestamp()) return;
  api::Labels labels;
  for (const auto& [k, v] : pod->metadata().labels()) labels[k] = v;
  for (size_t h = 0; h < hazards_.size(); ++h) {
    if (!hazards_[h].spec.selector.matches(labels)) continue;
    for (const auto& cs : pod->status().container_statuses()) {
      // A container start the hazard has not seen: draw its time to crash.
      if (!cs.state().has_running() || cs.container_id().empty()) continue;
      if (!hazard_seen_[h].insert(cs.container_id()).second) continue;
      const Duration d = hazards_[h].spec.ttf->sample_duration(*hazards_[h].stream);
      const std::string id = cs.container_id();
      crash_timers_[{h, id}] = loop_.run_after(
          d, [this, h, id, node = pod->spec().node_name(), ns = pod->metadata().namespace_(),
              name = pod->metadata().name(), uid = pod->metadata().uid(), c = cs.name()] {
            crash(h, id, node, ns, name, uid, c);
          });
    }
  }
}

void LiveFaultInjector::crash(size_t h, const std::string& id, const std::string& node,
                              const std::string& ns, const std::string& name,
                              const std::string& uid, const std::string& container) {
  crash_timers_.erase({h, id});
  std::weak_ptr<int> alive = alive_;
  const std::string fault = hazards_[h].spec.name;
  enqueue([this, alive, id, node, ns, name, uid, container, fault] {
    // Only a container still running crashes (it may have died or gone since).
    if (!client_.call("POST", "/containers/" + id + "/kill").is_ok()) return;
    loop_.post([this, alive, node, ns, name, uid, container, fault] {
      if (alive.expired()) return;
      trace::Record r;
      r.set_time_ns(to_nanos(loop_.now()));
      r.set_type(trace::FAULT_INJECTED);
      r.set_node(node);
      r.set_namespace_(ns);
      r.set_name(name);
      r.set_uid(uid);
      r.set_container(container);
      r.set_reason("container_crash");
      r.set_message(fault);
      r.set_exit_code(137);
      trace_.record(r);
      ++injected_;
      affected_pods_.push_back(ns + "/" + name);
    });
  });
}

void LiveFaultInjector::fire(const sim::FaultSpec& spec, const std::vector<size_t>& nodes) {
  using K = sim::FaultSpec::Kind;
  const std::string reason = kind_reason(spec.kind);
  std::weak_ptr<int> alive = alive_;
  switch (spec.kind) {
    case K::kKillNode:
      record(trace::FAULT_INJECTED, spec, reason, nodes_[nodes[0]].name, "node killed");
      node_down(nodes[0], reason);
      break;
    case K::kRestartNode:
      record(trace::FAULT_HEALED, spec, reason, nodes_[nodes[0]].name, "node restarted");
      if (holds_[nodes[0]] > 0) {
        holds_[nodes[0]] = 1;
        node_up(nodes[0], reason);
      }
      break;
    case K::kPowerOff: {
      std::string what = spec.rack.empty() ? "zone " + spec.zone : "rack " + spec.rack;
      record(trace::FAULT_INJECTED, spec, reason, "", what + " powered off");
      for (size_t n : nodes) node_down(n, reason);
      if (spec.duration) {
        timers_.push_back(loop_.run_after(*spec.duration, [this, spec, nodes, what, reason] {
          record(trace::FAULT_HEALED, spec, reason, "", what + " powered on");
          for (size_t n : nodes) node_up(n, reason);
        }));
      }
      break;
    }
    case K::kPartition: {
      std::string names;
      for (size_t n : nodes) names += (names.empty() ? "" : ",") + nodes_[n].name;
      const bool cp = spec.partition_from == sim::PartitionKind::kFromControlPlane;
      std::string what = names + (cp ? " cut off from the control plane" : " cut off from the rest");
      record(trace::FAULT_INJECTED, spec, reason, "", what);
      for (size_t n : nodes) partition(n, true);
      if (spec.duration) {
        timers_.push_back(loop_.run_after(*spec.duration, [this, spec, nodes, reason, what] {
          for (size_t n : nodes) partition(n, false);
          record(trace::FAULT_HEALED, spec, reason, "", what + ": healed");
        }));
      }
      break;
    }
    case K::kKillContainers:
    case K::kHangContainers:
      containers(spec);
      break;
    case K::kStochasticNodes:
    case K::kStochasticContainers:
      break;
  }
}

}  // namespace flotilla::live
