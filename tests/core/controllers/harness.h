// Shared fixture for the controller tests: sim::Simulator as the clock, the
// real InMemoryStore, a recording trace sink, and helpers that write nodes and
// pods straight into the store the way an agent would.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/api/labels.h"
#include "core/api/object.h"
#include "core/api/pod_util.h"
#include "core/controllers/context.h"
#include "core/ports/trace.h"
#include "core/store/in_memory_store.h"
#include "core/timing/timing.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"

namespace flotilla::ctrl::testing {

struct RecordingTrace final : TraceSink {
  std::vector<trace::Record> records;
  void record(const trace::Record& r) override { records.push_back(r); }
  std::vector<trace::Record> of(trace::EventType type) const {
    std::vector<trace::Record> out;
    for (const auto& r : records) {
      if (r.type() == type) out.push_back(r);
    }
    return out;
  }
};

class ControllerTest : public ::testing::Test {
 protected:
  ControllerContext context() { return ControllerContext{store_, sim_, trace_, timing_}; }

  void run_for(Duration d) { sim_.run_for(d); }
  // Runs whatever is due now (watch deliveries, queued reconciles).
  void settle() { sim_.run_for(Duration(0)); }

  static api::Labels labels(std::initializer_list<std::pair<const std::string, std::string>> kv) {
    api::Labels l;
    for (const auto& [k, v] : kv) l[k] = v;
    return l;
  }

  api::ReplicationController make_rc(const std::string& name, int replicas,
                                     const std::string& app = "web") {
    api::ReplicationController rc;
    rc.mutable_metadata()->set_name(name);
    rc.mutable_metadata()->set_namespace_("default");
    rc.mutable_spec()->set_replicas(replicas);
    (*rc.mutable_spec()->mutable_selector())["app"] = app;
    auto* t = rc.mutable_spec()->mutable_template_();
    (*t->mutable_metadata()->mutable_labels())["app"] = app;
    auto* c = t->mutable_spec()->add_containers();
    c->set_name("main");
    c->set_image("nginx:1.25");
    auto* port = c->add_ports();
    port->set_name("http");
    port->set_container_port(8080);
    return rc;
  }

  api::Object create(const google::protobuf::Message& m) {
    std::unique_ptr<google::protobuf::Message> copy(m.New());
    copy->CopyFrom(m);
    StatusOr<api::Object> r = store_.create(api::Object(std::move(copy)));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }

  template <typename T>
  std::shared_ptr<const T> get(const std::string& ns, const std::string& name) {
    StatusOr<api::Object> r = store_.get(api::kind_for<T>(), ns, name);
    return r.is_ok() ? api::as<T>(*r) : nullptr;
  }

  // Pods in "default", optionally only those with a label app=<app>.
  std::vector<std::shared_ptr<const api::Pod>> pods(const std::string& app = "") {
    ListOptions lo;
    lo.ns = "default";
    if (!app.empty()) lo.labels = api::LabelSelector::from_map(labels({{"app", app}}));
    StatusOr<ListResult> r = store_.list(api::Kind::kPod, lo);
    std::vector<std::shared_ptr<const api::Pod>> out;
    if (!r.is_ok()) return out;
    for (const auto& o : r->items) out.push_back(api::as<api::Pod>(o));
    return out;
  }
  std::vector<std::shared_ptr<const api::Pod>> active_pods(const std::string& app = "") {
    std::vector<std::shared_ptr<const api::Pod>> out;
    for (auto& p : pods(app)) {
      if (api::is_pod_active(*p)) out.push_back(p);
    }
    return out;
  }

  // Writes what an agent would: bound to `node`, Running, an IP, Ready as given.
  void set_pod_state(const std::string& name, const std::string& node, const std::string& ip,
                     bool ready, int restarts = 0, const std::string& phase = "Running") {
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto p = get<api::Pod>("default", name);
      ASSERT_NE(p, nullptr) << name;
      api::Pod copy = *p;
      copy.mutable_spec()->set_node_name(node);
      copy.mutable_status()->set_phase(phase);
      copy.mutable_status()->set_pod_ip(ip);
      copy.mutable_status()->clear_container_statuses();
      auto* cs = copy.mutable_status()->add_container_statuses();
      cs->set_name("main");
      cs->set_restart_count(restarts);
      cs->set_ready(ready);
      api::set_condition(copy.mutable_status(), "Ready", ready ? "True" : "False",
                         to_nanos(sim_.now()));
      if (store_.update(api::share(std::move(copy))).is_ok()) return;
    }
    FAIL() << "could not update pod " << name;
  }

  // Creates or heartbeats a node: Ready=<status>, lastHeartbeatTime = now.
  void heartbeat(const std::string& node, const std::string& status = "True") {
    auto n = get<api::Node>("", node);
    api::Node copy;
    if (n != nullptr) {
      copy = *n;
    } else {
      copy.mutable_metadata()->set_name(node);
    }
    api::set_condition(copy.mutable_status(), "Ready", status, to_nanos(sim_.now()),
                       status == "True" ? "KubeletReady" : "KubeletNotReady");
    api::find_condition(copy.mutable_status(), "Ready")
        ->mutable_last_heartbeat_time()
        ->set_nanos(to_nanos(sim_.now()));
    StatusOr<api::Object> r =
        n != nullptr ? store_.update(api::share(copy)) : store_.create(api::share(copy));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }

  std::vector<api::Event> events(const std::string& reason) {
    ListOptions lo;
    StatusOr<ListResult> r = store_.list(api::Kind::kEvent, lo);
    std::vector<api::Event> out;
    if (!r.is_ok()) return out;
    for (const auto& o : r->items) {
      auto e = api::as<api::Event>(o);
      if (e->reason() == reason) out.push_back(*e);
    }
    return out;
  }

  sim::Simulator sim_;
  sim::SimRandom random_{42};
  std::unique_ptr<RandomStream> store_random_ = random_.stream("store");
  store::InMemoryStore store_{sim_, *store_random_};
  RecordingTrace trace_;
  TimingProfile timing_ = TimingProfile::kubernetes();
};

}  // namespace flotilla::ctrl::testing
