// NodeAgent on virtual time against the real InMemoryStore and scripted
// runtime/network fakes: pod start, crash-loop backoff timing, restart
// policies, probes, OOM, graceful deletion, image pull errors, heartbeats and
// adoption after an agent restart.
#include "core/agent/node_agent.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/api/pod_util.h"
#include "core/controllers/node_lifecycle.h"
#include "core/controllers/pod_deletion.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "sim/engine/simulator.h"
#include "tests/core/agent/fake_runtime.h"
#include "tests/core/store/forwarding_store.h"

namespace flotilla::agent {
namespace {

using testing::ContainerScript;
using testing::FakeNetwork;
using testing::FakeRuntime;

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

struct Snapshot {
  TimePoint at;
  api::Pod pod;
};

class NodeAgentTest : public ::testing::Test {
 protected:
  explicit NodeAgentTest(store::StoreOptions options = {})
      : store_random_(random_.stream("store")), store_(sim_, *store_random_, std::move(options)) {}

  static NodeDescription node_description() {
    NodeDescription d;
    d.capacity = {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}};
    d.labels = {{"topology.kubernetes.io/zone", "zone-a"}};
    d.addresses = {{"InternalIP", "192.168.0.10"}, {"Hostname", "node-1"}};
    return d;
  }

  void start_agent() {
    agent_ = std::make_unique<NodeAgent>("node-1", sim_, store_, runtime_, network_, trace_,
                                         timing_, node_description());
    ASSERT_TRUE(agent_->start().is_ok());
  }

  static api::Pod make_pod(const std::string& name, const std::string& policy = "",
                           const std::string& image = "nginx:1.25") {
    api::Pod p;
    p.mutable_metadata()->set_name(name);
    p.mutable_metadata()->set_namespace_("default");
    (*p.mutable_metadata()->mutable_labels())["app"] = "web";
    p.mutable_spec()->set_node_name("node-1");
    p.mutable_spec()->set_restart_policy(policy);
    api::Container* c = p.mutable_spec()->add_containers();
    c->set_name("web");
    c->set_image(image);
    api::ContainerPort* port = c->add_ports();
    port->set_name("http");
    port->set_container_port(8080);
    return p;
  }

  std::string create(api::Pod p) {
    StatusOr<api::Object> r = store_.create(api::share(std::move(p)));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? api::meta_of(**r).uid() : "";
  }

  // node-1's Lease as stored, or null.
  std::shared_ptr<const api::Lease> lease() {
    StatusOr<api::Object> l =
        store_.get(api::Kind::kLease, std::string(ctrl::kNodeLeaseNamespace), "node-1");
    return l.is_ok() ? api::as<api::Lease>(*l) : nullptr;
  }

  std::shared_ptr<const api::Pod> pod(const std::string& name) {
    StatusOr<api::Object> r = store_.get(api::Kind::kPod, "default", name);
    return r.is_ok() ? api::as<api::Pod>(*r) : nullptr;
  }

  // Records every state of the pod's status the store held.
  void record_pods() {
    StatusOr<WatchHandle> w =
        store_.watch(api::Kind::kPod, {}, [this](const WatchEvent& e) {
          snapshots_.push_back({sim_.now(), *api::as<api::Pod>(e.object)});
        });
    ASSERT_TRUE(w.is_ok());
    pod_watch_ = std::move(*w);
  }

  std::vector<api::Event> events(const std::string& reason) {
    ListOptions opts;
    StatusOr<ListResult> r = store_.list(api::Kind::kEvent, opts);
    std::vector<api::Event> out;
    if (!r.is_ok()) return out;
    for (const auto& o : r->items) {
      auto e = api::as<api::Event>(o);
      if (e->reason() == reason) out.push_back(*e);
    }
    return out;
  }

  void run_for(Duration d) { sim_.run_for(d); }

  sim::Simulator sim_;
  sim::SimRandom random_{7};
  std::unique_ptr<RandomStream> store_random_;
  store::InMemoryStore store_;
  FakeRuntime runtime_{sim_};
  FakeNetwork network_{sim_};
  RecordingTrace trace_;
  TimingProfile timing_ = TimingProfile::kubernetes();
  std::unique_ptr<NodeAgent> agent_;
  WatchHandle pod_watch_;
  std::vector<Snapshot> snapshots_;
};

const api::ContainerStatus& web(const api::Pod& p) { return p.status().container_statuses(0); }

TEST_F(NodeAgentTest, RegistersNodeRenewsItsLeaseAndReportsStatusOnChangeOrEveryFiveMinutes) {
  start_agent();
  StatusOr<api::Object> n = store_.get(api::Kind::kNode, "", "node-1");
  ASSERT_TRUE(n.is_ok());
  auto node = api::as<api::Node>(*n);
  EXPECT_TRUE(api::is_node_ready(*node));
  EXPECT_EQ(node->status().capacity().at("cpu"), "4");
  EXPECT_EQ(node->status().allocatable().at("memory"), "8Gi");
  EXPECT_EQ(node->metadata().labels().at("topology.kubernetes.io/zone"), "zone-a");
  EXPECT_EQ(node->status().addresses(0).address(), "192.168.0.10");

  // Heartbeats: the Lease every 10 s (a quarter of its 40 s duration); the
  // Node's status only when it changed or every 5 minutes.
  ASSERT_NE(lease(), nullptr);
  EXPECT_EQ(lease()->spec().holder_identity(), "node-1");
  EXPECT_EQ(lease()->spec().lease_duration_seconds(), 40);
  ASSERT_EQ(lease()->metadata().owner_references_size(), 1);
  EXPECT_EQ(lease()->metadata().owner_references(0).kind(), "Node");
  EXPECT_EQ(lease()->metadata().owner_references(0).uid(), node->metadata().uid());
  std::vector<int64_t> renewals;
  std::vector<int64_t> status_writes;
  WatchOptions lo;
  lo.ns = std::string(ctrl::kNodeLeaseNamespace);
  StatusOr<WatchHandle> lw = store_.watch(api::Kind::kLease, lo, [&](const WatchEvent& e) {
    renewals.push_back(api::as<api::Lease>(e.object)->spec().renew_time().nanos());
  });
  ASSERT_TRUE(lw.is_ok());
  StatusOr<WatchHandle> w = store_.watch(api::Kind::kNode, {}, [&](const WatchEvent& e) {
    auto nn = api::as<api::Node>(e.object);
    const api::NodeCondition* ready = api::find_condition(nn->status(), "Ready");
    ASSERT_NE(ready, nullptr);
    if (ready->status() != "True") return;  // the test's own write below
    EXPECT_EQ(ready->last_heartbeat_time().nanos(), to_nanos(sim_.now()));
    status_writes.push_back(ready->last_heartbeat_time().nanos());
  });
  ASSERT_TRUE(w.is_ok());
  run_for(seconds(65));
  std::vector<int64_t> want;
  for (int i = 1; i <= 6; ++i) want.push_back(to_nanos(seconds(10 * i)));
  EXPECT_EQ(renewals, want);
  EXPECT_TRUE(status_writes.empty());
  sim_.run_until(TimePoint() + seconds(301));
  EXPECT_EQ(status_writes, std::vector<int64_t>{to_nanos(seconds(300))});

  // The node controller marks the node Unknown (it lost us for a while): the
  // next status check writes Ready=True back at once.
  api::Node marked = *api::as<api::Node>(*store_.get(api::Kind::kNode, "", "node-1"));
  for (auto& c : *marked.mutable_status()->mutable_conditions()) c.set_status("Unknown");
  ASSERT_TRUE(store_.update(api::share(marked)).is_ok());
  sim_.run_until(TimePoint() + seconds(311));
  EXPECT_EQ(status_writes.size(), 2u);
  auto back = api::as<api::Node>(*store_.get(api::Kind::kNode, "", "node-1"));
  EXPECT_TRUE(api::is_node_ready(*back));
  EXPECT_EQ(api::find_condition(back->status(), "MemoryPressure")->status(), "False");

  // A stopped agent (a dead node) posts nothing more.
  agent_->stop();
  size_t renewed = renewals.size();
  run_for(minutes(10));
  EXPECT_EQ(renewals.size(), renewed);
  EXPECT_EQ(status_writes.size(), 2u);
}

// The agent renews from the Lease it last wrote (the kubelet's latestLease);
// one removed meanwhile is created again at the next renewal, and one changed
// by someone else (a conflict) is read again and taken back.
TEST_F(NodeAgentTest, ALeaseRemovedOrTakenMeanwhileIsRenewedAtTheNextRenewal) {
  start_agent();
  const std::string ns(ctrl::kNodeLeaseNamespace);
  run_for(seconds(15));  // renewed at 10 s
  ASSERT_NE(lease(), nullptr);
  const std::string first_uid = lease()->metadata().uid();
  ASSERT_TRUE(store_.remove(api::Kind::kLease, ns, "node-1").is_ok());
  run_for(seconds(10));  // the renewal at 20 s
  auto recreated = lease();
  ASSERT_NE(recreated, nullptr) << "created again in the same renewal";
  EXPECT_NE(recreated->metadata().uid(), first_uid);
  EXPECT_EQ(recreated->spec().renew_time().nanos(), to_nanos(seconds(20)));
  EXPECT_EQ(recreated->spec().holder_identity(), "node-1");
  ASSERT_EQ(recreated->metadata().owner_references_size(), 1);
  EXPECT_EQ(recreated->metadata().owner_references(0).kind(), "Node");

  api::Lease taken = *recreated;
  taken.mutable_spec()->set_holder_identity("someone-else");
  ASSERT_TRUE(store_.update(api::share(std::move(taken))).is_ok());
  run_for(seconds(10));  // the renewal at 30 s conflicts, reads again, retries
  auto back = lease();
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->spec().holder_identity(), "node-1");
  EXPECT_EQ(back->spec().renew_time().nanos(), to_nanos(seconds(30)));
  EXPECT_EQ(back->spec().acquire_time().nanos(), to_nanos(seconds(30)))
      << "a Lease acquired again gets a new acquireTime";
}

// A Node deleted and registered again is a new owner: the renewal after the
// registration points the Lease at it, though the agent renews the Lease it
// wrote without reading the store.
TEST_F(NodeAgentTest, TheLeaseFollowsTheNodeWhenItIsRegisteredAgain) {
  start_agent();
  auto node_uid = [&] {
    StatusOr<api::Object> n = store_.get(api::Kind::kNode, "", "node-1");
    return n.is_ok() ? api::meta_of(**n).uid() : "";
  };
  run_for(seconds(25));  // renewed at 10 s and 20 s
  const std::string first = node_uid();
  ASSERT_FALSE(first.empty());
  ASSERT_NE(lease(), nullptr);
  ASSERT_EQ(lease()->metadata().owner_references_size(), 1);
  EXPECT_EQ(lease()->metadata().owner_references(0).uid(), first);

  ASSERT_TRUE(store_.remove(api::Kind::kNode, "", "node-1").is_ok());
  run_for(seconds(10));  // the heartbeat at 30 s registers again, then renews
  const std::string second = node_uid();
  ASSERT_FALSE(second.empty()) << "registered again";
  ASSERT_NE(second, first);
  auto renewed = lease();
  ASSERT_NE(renewed, nullptr);
  EXPECT_EQ(renewed->spec().renew_time().nanos(), to_nanos(seconds(30)));
  ASSERT_EQ(renewed->metadata().owner_references_size(), 1);
  EXPECT_EQ(renewed->metadata().owner_references(0).uid(), second);
  EXPECT_EQ(renewed->spec().holder_identity(), "node-1");
}
TEST_F(NodeAgentTest, PodStartsRunningAndReadyWithIp) {
  start_agent();
  std::string uid = create(make_pod("web-abc"));
  run_for(seconds(5));
  auto p = pod("web-abc");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->status().phase(), "Running");
  EXPECT_TRUE(api::is_pod_ready(*p));
  EXPECT_EQ(p->status().host_ip(), "192.168.0.10");
  EXPECT_FALSE(p->status().pod_ip().empty());
  ASSERT_EQ(p->status().pod_ips_size(), 1);
  EXPECT_EQ(p->status().pod_ips(0).ip(), p->status().pod_ip());
  EXPECT_TRUE(p->status().has_start_time());
  ASSERT_EQ(p->status().container_statuses_size(), 1);
  EXPECT_TRUE(web(*p).state().has_running());
  EXPECT_TRUE(web(*p).ready());
  EXPECT_TRUE(web(*p).started());
  EXPECT_EQ(web(*p).image(), "nginx:1.25");
  EXPECT_FALSE(web(*p).container_id().empty());
  for (const char* type : {"PodScheduled", "Initialized", "ContainersReady", "Ready"}) {
    const api::PodCondition* c = api::find_condition(p->status(), type);
    ASSERT_NE(c, nullptr) << type;
    EXPECT_EQ(c->status(), "True") << type;
  }
  EXPECT_EQ(runtime_.sandboxes_created, 1);
  ASSERT_EQ(runtime_.sandboxes().size(), 1u);
  const auto& sb = runtime_.sandboxes().begin()->second;
  EXPECT_EQ(sb.status.pod_uid, uid);
  EXPECT_EQ(sb.status.ip, p->status().pod_ip());
  EXPECT_EQ(trace_.of(trace::POD_RUNNING).size(), 1u);
  EXPECT_EQ(trace_.of(trace::POD_READY).size(), 1u);
  EXPECT_EQ(trace_.of(trace::CONTAINER_STARTED).size(), 1u);
  EXPECT_EQ(trace_.of(trace::IMAGE_PULLED).size(), 1u);
  for (const char* reason : {"Pulling", "Pulled", "Created", "Started"}) {
    EXPECT_EQ(events(reason).size(), 1u) << reason;
  }
  // Resyncs after that change nothing and start nothing again.
  run_for(minutes(5));
  EXPECT_EQ(runtime_.starts["web"].size(), 1u);
  EXPECT_EQ(runtime_.sandboxes_created, 1);
}

TEST_F(NodeAgentTest, PodOnAnotherNodeIsIgnored) {
  start_agent();
  api::Pod p = make_pod("elsewhere");
  p.mutable_spec()->set_node_name("node-2");
  create(p);
  run_for(seconds(30));
  EXPECT_EQ(runtime_.sandboxes_created, 0);
  EXPECT_EQ(agent_->tracked_pods(), 0u);
}

TEST_F(NodeAgentTest, CrashLoopFollowsTheBackoffCurveExactly) {
  // Every run crashes after 3 minutes, except the 9th, which runs 11 minutes
  // cleanly (past the 10-minute reset) before crashing.
  runtime_.script = [](const std::string&, int start) {
    ContainerScript s;
    s.exit_after = start == 8 ? minutes(11) : minutes(3);
    s.exit_code = 1;
    return s;
  };
  record_pods();
  start_agent();
  std::string uid = create(make_pod("web-abc"));
  sim_.set_stop_predicate([&] { return runtime_.starts["web"].size() >= 11; });
  sim_.run_until(kTimeZero + hours(3));
  sim_.set_stop_predicate({});
  run_for(seconds(1));  // the agent hears back from the 11th start
  const auto& starts = runtime_.starts["web"];
  const auto& exits = runtime_.exits["web"];
  ASSERT_EQ(starts.size(), 11u);
  std::vector<int64_t> gaps;
  for (size_t i = 0; i + 1 < starts.size(); ++i) gaps.push_back((starts[i + 1] - exits[i]) / seconds(1));
  EXPECT_EQ(gaps, (std::vector<int64_t>{0, 10, 20, 40, 80, 160, 300, 300, 0, 10}));
  // Exact to the nanosecond, not just to the second.
  EXPECT_EQ(starts[3] - exits[2], seconds(20));

  // While waiting: CrashLoopBackOff with Kubernetes' message, lastState the crash.
  auto waiting_at = [&](TimePoint t) -> const api::Pod* {
    const api::Pod* found = nullptr;
    for (const auto& s : snapshots_) {
      if (s.at <= t) found = &s.pod;
    }
    return found;
  };
  const api::Pod* p = waiting_at(exits[3] + seconds(30));
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(web(*p).state().has_waiting());
  EXPECT_EQ(web(*p).state().waiting().reason(), "CrashLoopBackOff");
  EXPECT_EQ(web(*p).state().waiting().message(),
            "back-off 40s restarting failed container=web pod=web-abc_default(" + uid + ")");
  EXPECT_EQ(web(*p).restart_count(), 3);
  EXPECT_EQ(web(*p).last_state().terminated().exit_code(), 1);
  EXPECT_EQ(web(*p).last_state().terminated().reason(), "Error");
  EXPECT_FALSE(api::is_pod_ready(*p));
  EXPECT_EQ(p->status().phase(), "Running");
  p = waiting_at(exits[6] + seconds(1));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(web(*p).state().waiting().message(),
            "back-off 5m0s restarting failed container=web pod=web-abc_default(" + uid + ")");

  auto now = pod("web-abc");
  EXPECT_EQ(web(*now).restart_count(), 10);
  EXPECT_TRUE(web(*now).state().has_running());
  EXPECT_EQ(trace_.of(trace::CONTAINER_RESTARTED).size(), 10u);
  auto exited = trace_.of(trace::CONTAINER_EXITED);
  ASSERT_EQ(exited.size(), 10u);
  EXPECT_EQ(exited[0].exit_code(), 1);
  EXPECT_EQ(exited[0].reason(), "Error");
  ASSERT_FALSE(events("BackOff").empty());
  EXPECT_EQ(events("BackOff")[0].type(), "Warning");
  EXPECT_EQ(runtime_.sandboxes_created, 1);  // restarts reuse the sandbox
}

TEST_F(NodeAgentTest, OnFailureRestartsFailuresButNotSuccess) {
  runtime_.script = [](const std::string&, int start) {
    ContainerScript s;
    s.exit_after = seconds(30);
    s.exit_code = start == 0 ? 2 : 0;  // fails once, then succeeds
    return s;
  };
  start_agent();
  create(make_pod("job", "OnFailure"));
  run_for(minutes(5));
  EXPECT_EQ(runtime_.starts["web"].size(), 2u);
  auto p = pod("job");
  EXPECT_EQ(p->status().phase(), "Succeeded");
  EXPECT_EQ(web(*p).restart_count(), 1);
  EXPECT_EQ(web(*p).state().terminated().exit_code(), 0);
  EXPECT_EQ(web(*p).state().terminated().reason(), "Completed");
  EXPECT_EQ(web(*p).last_state().terminated().exit_code(), 2);
  EXPECT_FALSE(api::is_pod_ready(*p));
  EXPECT_EQ(trace_.of(trace::POD_SUCCEEDED).size(), 1u);
  EXPECT_TRUE(runtime_.sandboxes().empty());  // a finished pod's sandbox is given back
  EXPECT_EQ(p->status().pod_ip().empty(), false);
}

TEST_F(NodeAgentTest, NeverDoesNotRestartAndFails) {
  runtime_.script = [](const std::string&, int) {
    ContainerScript s;
    s.exit_after = seconds(30);
    s.exit_code = 3;
    return s;
  };
  start_agent();
  create(make_pod("once", "Never"));
  run_for(minutes(10));
  EXPECT_EQ(runtime_.starts["web"].size(), 1u);
  auto p = pod("once");
  EXPECT_EQ(p->status().phase(), "Failed");
  EXPECT_EQ(web(*p).restart_count(), 0);
  EXPECT_EQ(web(*p).state().terminated().exit_code(), 3);
  EXPECT_EQ(trace_.of(trace::POD_FAILED).size(), 1u);
}

TEST_F(NodeAgentTest, AlwaysRestartsEvenAfterSuccess) {
  runtime_.script = [](const std::string&, int) {
    ContainerScript s;
    s.exit_after = seconds(30);
    s.exit_code = 0;
    return s;
  };
  start_agent();
  create(make_pod("svc"));
  run_for(seconds(45));
  EXPECT_EQ(runtime_.starts["web"].size(), 2u);
  EXPECT_EQ(pod("svc")->status().phase(), "Running");
}

TEST_F(NodeAgentTest, LivenessFailureKillsAndRestarts) {
  runtime_.script = [](const std::string&, int start) {
    ContainerScript s;
    s.exec_exit_code = start == 0 ? 1 : 0;  // the first instance is unhealthy
    return s;
  };
  api::Pod p = make_pod("live");
  api::Probe* probe = p.mutable_spec()->mutable_containers(0)->mutable_liveness_probe();
  probe->mutable_exec()->add_command("cat");
  probe->mutable_exec()->add_command("/tmp/healthy");
  probe->set_initial_delay_seconds(5);
  start_agent();
  create(p);
  run_for(seconds(60));
  const auto& starts = runtime_.starts["web"];
  ASSERT_EQ(starts.size(), 2u);
  // Probes at +5, +15, +25 fail; the third failure kills; the restart is immediate.
  EXPECT_EQ(starts[1] - starts[0], seconds(25));
  auto live = pod("live");
  EXPECT_EQ(web(*live).restart_count(), 1);
  EXPECT_EQ(web(*live).last_state().terminated().exit_code(), 137);
  EXPECT_TRUE(web(*live).state().has_running());
  auto unhealthy = events("Unhealthy");
  ASSERT_EQ(unhealthy.size(), 1u);  // one Event, counted three times
  EXPECT_EQ(unhealthy[0].count(), 3);
  EXPECT_EQ(unhealthy[0].message().rfind("Liveness probe failed: ", 0), 0u);
  ASSERT_EQ(events("Killing").size(), 1u);
  EXPECT_EQ(events("Killing")[0].message(),
            "Container web failed liveness probe, will be restarted");
  EXPECT_EQ(trace_.of(trace::PROBE_FAILED).size(), 3u);
}

// Forwards to a store, refusing pod updates (the API server unreachable for
// status writes) while `refuse` is set.
class RefusingPodUpdates final : public flotilla::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  bool refuse = false;
  int refused = 0;

  StatusOr<api::Object> update(api::Object o) override {
    if (refuse && api::kind_of(*o)->kind == api::Kind::kPod) {
      ++refused;
      return unavailable_error("the API server is unreachable");
    }
    return ForwardingStore::update(std::move(o));
  }
};

// A status write that fails is written at a later resync, also when nothing
// else changes: the pod became ready again while the store refused the write,
// and stays ready (a steady pod never marked itself dirty again, so the store
// kept it NotReady and out of its Services for good).
TEST_F(NodeAgentTest, AStatusWriteThatFailedIsWrittenAtTheNextResync) {
  bool healthy = true;
  network_.answer = [&](const ProbeRequest&) {
    return healthy ? Status::ok() : unavailable_error("connection refused");
  };
  RefusingPodUpdates link(store_);
  agent_ = std::make_unique<NodeAgent>("node-1", sim_, link, runtime_, network_, trace_, timing_,
                                       node_description());
  ASSERT_TRUE(agent_->start().is_ok());
  api::Pod p = make_pod("ready");
  api::Probe* probe = p.mutable_spec()->mutable_containers(0)->mutable_readiness_probe();
  probe->mutable_tcp_socket()->mutable_port()->set_int_val(8080);
  probe->set_period_seconds(1);
  probe->set_failure_threshold(1);
  create(p);
  run_for(seconds(3));
  ASSERT_TRUE(api::is_pod_ready(*pod("ready")));
  healthy = false;
  run_for(seconds(2));
  ASSERT_FALSE(api::is_pod_ready(*pod("ready")));

  link.refuse = true;  // the agent sees the pod ready again; the store says no
  healthy = true;
  run_for(seconds(2));
  EXPECT_GT(link.refused, 0);
  EXPECT_FALSE(api::is_pod_ready(*pod("ready")));
  link.refuse = false;
  run_for(timing_.agent_sync_period + seconds(1));
  EXPECT_TRUE(api::is_pod_ready(*pod("ready")));
  agent_.reset();
}

TEST_F(NodeAgentTest, ReadinessFailureMakesThePodNotReadyAndBack) {
  bool healthy = true;
  network_.answer = [&](const ProbeRequest&) {
    return healthy ? Status::ok() : unavailable_error("connection refused");
  };
  api::Pod p = make_pod("ready");
  api::Probe* probe = p.mutable_spec()->mutable_containers(0)->mutable_readiness_probe();
  probe->mutable_http_get()->set_path("/healthz");
  probe->mutable_http_get()->mutable_port()->set_str_val("http");
  probe->set_period_seconds(5);
  start_agent();
  create(p);
  run_for(seconds(3));
  auto r = pod("ready");
  EXPECT_TRUE(api::is_pod_ready(*r));
  ASSERT_FALSE(network_.probes.empty());
  EXPECT_EQ(network_.probes[0].target.ip, r->status().pod_ip());
  EXPECT_EQ(network_.probes[0].target.port, 8080);  // named port resolved
  EXPECT_EQ(network_.probes[0].kind, ProbeRequest::Kind::kHttp);
  EXPECT_EQ(network_.probes[0].http_path, "/healthz");
  EXPECT_EQ(network_.probes[0].from_node, "node-1");
  EXPECT_EQ(network_.probes[0].timeout, seconds(1));

  healthy = false;
  run_for(seconds(20));  // three failures, 5 s apart
  r = pod("ready");
  EXPECT_FALSE(api::is_pod_ready(*r));
  EXPECT_FALSE(web(*r).ready());
  EXPECT_EQ(r->status().phase(), "Running");
  EXPECT_EQ(web(*r).restart_count(), 0);  // readiness never restarts
  EXPECT_EQ(trace_.of(trace::POD_NOT_READY).size(), 1u);

  healthy = true;
  run_for(seconds(10));
  EXPECT_TRUE(api::is_pod_ready(*pod("ready")));
  EXPECT_EQ(trace_.of(trace::POD_READY).size(), 2u);
}

TEST_F(NodeAgentTest, AgentRestoresReadyWhenSomeoneElseFlipsIt) {
  start_agent();
  create(make_pod("flip"));
  run_for(seconds(5));
  api::Pod p = *pod("flip");
  api::set_condition(p.mutable_status(), "Ready", "False", to_nanos(sim_.now()), "NodeLost");
  ASSERT_TRUE(store_.update(api::share(p)).is_ok());
  run_for(seconds(1));
  EXPECT_TRUE(api::is_pod_ready(*pod("flip")));
}

// A store keeping one event of history, so a snapshot is alive only while
// someone other than the store holds it.
class NodeAgentShortHistoryTest : public NodeAgentTest {
 protected:
  NodeAgentShortHistoryTest() : NodeAgentTest(short_history()) {}
  static store::StoreOptions short_history() {
    store::StoreOptions o;
    o.history_size = 1;
    return o;
  }
};

TEST_F(NodeAgentShortHistoryTest, ActsOnTheSpecItStartedFromWithoutHoldingOldSnapshots) {
  start_agent();
  create(make_pod("web"));
  std::weak_ptr<const api::Pod> as_created = pod("web");
  run_for(seconds(5));
  ASSERT_TRUE(api::is_pod_ready(*pod("web")));
  // Another pod's write pushes the agent's last write out of the history.
  api::Pod elsewhere = make_pod("elsewhere");
  elsewhere.mutable_spec()->set_node_name("node-2");
  create(elsewhere);
  EXPECT_TRUE(as_created.expired()) << "the agent holds the snapshot it started from";

  // An image change (the one container field an update may change) is not
  // acted on: the agent keeps the spec it started the container from.
  api::Pod p = *pod("web");
  p.mutable_spec()->mutable_containers(0)->set_image("nginx:1.26");
  ASSERT_TRUE(store_.update(api::share(std::move(p))).is_ok());
  api::Pod q = *pod("web");
  (*q.mutable_metadata()->mutable_labels())["tier"] = "front";
  ASSERT_TRUE(store_.update(api::share(std::move(q))).is_ok());
  run_for(minutes(2));
  EXPECT_EQ(web(*pod("web")).image(), "nginx:1.25");
  EXPECT_EQ(runtime_.starts["web"].size(), 1u);
  EXPECT_TRUE(api::is_pod_ready(*pod("web")));
}

TEST_F(NodeAgentTest, OomKillIsReportedInLastState) {
  runtime_.script = [](const std::string&, int start) {
    ContainerScript s;
    if (start == 0) {
      s.exit_after = minutes(2);
      s.oom = true;
    }
    return s;
  };
  start_agent();
  create(make_pod("leaky"));
  run_for(minutes(3));
  auto p = pod("leaky");
  EXPECT_EQ(web(*p).restart_count(), 1);
  EXPECT_EQ(web(*p).last_state().terminated().reason(), "OOMKilled");
  EXPECT_EQ(web(*p).last_state().terminated().exit_code(), 137);
  EXPECT_EQ(trace_.of(trace::CONTAINER_OOM_KILLED).size(), 1u);
}

TEST_F(NodeAgentTest, GracefulDeletionHonoursGraceThenRemovesFromStore) {
  runtime_.script = [](const std::string&, int) {
    ContainerScript s;
    s.ignore_sigterm = true;
    return s;
  };
  start_agent();
  std::string uid = create(make_pod("bye"));
  run_for(seconds(5));
  TimePoint deleted_at = sim_.now();
  StatusOr<ctrl::PodDeletion> d = ctrl::delete_pod(store_, "default", "bye", sim_.now(),
                                                    seconds(20));
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  ASSERT_EQ(d->outcome, ctrl::PodDeletion::Outcome::kMarked);
  run_for(seconds(19));
  ASSERT_NE(pod("bye"), nullptr);  // still shutting down within its grace
  ASSERT_EQ(runtime_.removals.size(), 1u);
  EXPECT_EQ(runtime_.removals[0].grace, seconds(20));
  EXPECT_EQ(runtime_.removals[0].at, deleted_at);
  run_for(seconds(2));
  EXPECT_EQ(pod("bye"), nullptr);
  EXPECT_TRUE(runtime_.sandboxes().empty());
  EXPECT_EQ(agent_->tracked_pods(), 0u);
  ASSERT_EQ(events("Killing").size(), 1u);
  EXPECT_EQ(events("Killing")[0].message(), "Stopping container web");

  // A new pod with the same name is a new incarnation, started afresh.
  create(make_pod("bye"));
  run_for(seconds(5));
  EXPECT_EQ(pod("bye")->status().phase(), "Running");
  EXPECT_NE(pod("bye")->metadata().uid(), uid);
}

TEST_F(NodeAgentTest, ForceDeletedPodLosesItsSandbox) {
  start_agent();
  create(make_pod("gone"));
  run_for(seconds(5));
  ASSERT_EQ(runtime_.sandboxes().size(), 1u);
  ASSERT_TRUE(store_.remove(api::Kind::kPod, "default", "gone").is_ok());
  run_for(seconds(1));
  EXPECT_TRUE(runtime_.sandboxes().empty());
  EXPECT_EQ(runtime_.running_containers(), 0);
}

TEST_F(NodeAgentTest, MissingImageGivesErrImagePullThenImagePullBackOff) {
  runtime_.missing_images = {"nginx:nope"};
  record_pods();
  start_agent();
  create(make_pod("img", "", "nginx:nope"));
  run_for(seconds(1));
  auto p = pod("img");
  ASSERT_TRUE(web(*p).state().has_waiting());
  EXPECT_EQ(web(*p).state().waiting().reason(), "ErrImagePull");
  EXPECT_EQ(p->status().phase(), "Pending");
  run_for(seconds(6));
  p = pod("img");
  EXPECT_EQ(web(*p).state().waiting().reason(), "ImagePullBackOff");
  EXPECT_EQ(web(*p).state().waiting().message(), "Back-off pulling image \"nginx:nope\"");
  // Retries back off: at 0, 10, 30, 70 s.
  run_for(seconds(70) - seconds(7));
  EXPECT_EQ(runtime_.pulls.size(), 4u);
  EXPECT_EQ(runtime_.starts["web"].size(), 0u);
  EXPECT_FALSE(events("Failed").empty());
  // The image appears: the next retry (at 150 s) pulls it and the pod runs.
  runtime_.missing_images.clear();
  run_for(seconds(90));
  p = pod("img");
  EXPECT_EQ(p->status().phase(), "Running");
  EXPECT_EQ(runtime_.starts["web"].size(), 1u);
  EXPECT_EQ(runtime_.starts["web"][0], kTimeZero + seconds(150));
}

TEST_F(NodeAgentTest, RestartedAgentAdoptsSandboxesWithoutDuplicates) {
  start_agent();
  std::string uid = create(make_pod("keep"));
  run_for(seconds(5));
  ASSERT_EQ(runtime_.sandboxes().size(), 1u);
  std::string container_id = web(*pod("keep")).container_id();
  std::string ip = pod("keep")->status().pod_ip();

  agent_->stop();
  agent_.reset();
  // While the agent is down: a stale sandbox of a pod that no longer exists.
  runtime_.add_sandbox("uid-of-a-deleted-pod", "old");
  run_for(seconds(30));
  start_agent();
  run_for(seconds(30));

  EXPECT_EQ(runtime_.sandboxes_created, 1);  // nothing new made
  ASSERT_EQ(runtime_.sandboxes().size(), 1u);
  EXPECT_EQ(runtime_.sandboxes().begin()->second.status.pod_uid, uid);
  EXPECT_EQ(runtime_.starts["web"].size(), 1u);
  EXPECT_EQ(runtime_.running_containers(), 1);
  auto p = pod("keep");
  EXPECT_EQ(web(*p).container_id(), container_id);
  EXPECT_EQ(p->status().pod_ip(), ip);
  EXPECT_EQ(web(*p).restart_count(), 0);
  EXPECT_TRUE(api::is_pod_ready(*p));
}

TEST_F(NodeAgentTest, SandboxLostWhileDownIsRecreatedKeepingRestartCount) {
  start_agent();
  create(make_pod("phoenix"));
  run_for(seconds(5));
  agent_->stop();
  // The node rebooted: its sandboxes are gone (the fake just loses them).
  std::string sb = runtime_.sandboxes().begin()->first;
  runtime_.remove_pod_sandbox(sb, Duration(0), [](Status) {});
  run_for(seconds(10));
  ASSERT_TRUE(agent_->start().is_ok());
  run_for(seconds(10));
  auto p = pod("phoenix");
  EXPECT_EQ(runtime_.sandboxes_created, 2);
  EXPECT_EQ(runtime_.sandboxes().size(), 1u);
  EXPECT_TRUE(web(*p).state().has_running());
  EXPECT_EQ(web(*p).restart_count(), 1);
  EXPECT_EQ(web(*p).last_state().terminated().reason(), "ContainerStatusUnknown");
}

TEST_F(NodeAgentTest, SandboxGetsVolumesAndHostPorts) {
  api::Pod p = make_pod("vols");
  p.mutable_spec()->mutable_containers(0)->mutable_ports(0)->set_host_port(80);
  api::Volume* v = p.mutable_spec()->add_volumes();
  v->set_name("scratch");
  v->mutable_empty_dir();
  v = p.mutable_spec()->add_volumes();
  v->set_name("logs");
  v->mutable_host_path()->set_path("/var/log");
  v = p.mutable_spec()->add_volumes();
  v->set_name("data");
  v->mutable_shared()->set_name("db-data");
  start_agent();
  create(p);
  run_for(seconds(5));
  ASSERT_EQ(runtime_.sandboxes().size(), 1u);
  const PodSandboxConfig& cfg = runtime_.sandboxes().begin()->second.config;
  ASSERT_EQ(cfg.volumes.size(), 3u);
  EXPECT_EQ(cfg.volumes[0].type, VolumeConfig::Type::kEmptyDir);
  EXPECT_EQ(cfg.volumes[1].type, VolumeConfig::Type::kHostPath);
  EXPECT_EQ(cfg.volumes[1].source, "/var/log");
  EXPECT_EQ(cfg.volumes[2].type, VolumeConfig::Type::kShared);
  EXPECT_EQ(cfg.volumes[2].source, "db-data");
  ASSERT_EQ(cfg.ports.size(), 1u);
  EXPECT_EQ(cfg.ports[0].host_port, 80);
  EXPECT_EQ(cfg.ports[0].container_port, 8080);
}

// The status skip (a resync of a pod nothing happened to writes nothing) must
// not hide a status someone else overwrote: the agent writes its own back.
TEST_F(NodeAgentTest, StatusOverwrittenBySomeoneElseIsWrittenBackAndThenLeftAlone) {
  start_agent();
  create(make_pod("web-abc"));
  run_for(seconds(5));
  auto before = pod("web-abc");
  ASSERT_NE(before, nullptr);
  ASSERT_TRUE(api::is_pod_ready(*before));
  api::Pod forged = *before;
  forged.mutable_status()->set_phase("Pending");
  forged.mutable_status()->clear_pod_ip();
  api::set_condition(forged.mutable_status(), "Ready", "False", to_nanos(sim_.now()), "Forged");
  ASSERT_TRUE(store_.update(api::share(std::move(forged))).is_ok());
  run_for(seconds(1));
  auto after = pod("web-abc");
  EXPECT_EQ(after->status().phase(), "Running");
  EXPECT_TRUE(api::is_pod_ready(*after));
  EXPECT_EQ(after->status().pod_ip(), before->status().pod_ip());
  // Then quiet again: resyncs find nothing to write.
  int64_t rv = store_.resource_version();
  run_for(seconds(35));
  auto later = pod("web-abc");
  EXPECT_EQ(later->metadata().resource_version(), after->metadata().resource_version());
  EXPECT_LE(store_.resource_version() - rv, 4);  // Lease renewals only
}

TEST_F(NodeAgentTest, FullNodeIsQuietInSteadyState) {
  start_agent();
  for (int i = 0; i < 110; ++i) create(make_pod("p-" + std::to_string(i)));
  run_for(seconds(30));
  EXPECT_EQ(agent_->tracked_pods(), 110u);
  EXPECT_EQ(runtime_.running_containers(), 110);
  EXPECT_EQ(agent_->unsettled_pods(), 0u);  // so the resyncs walk nothing
  int64_t rv = store_.resource_version();
  uint64_t syncs = agent_->syncs();
  uint64_t events = sim_.events_processed();
  run_for(minutes(5));
  // Only heartbeats write: 30 Lease renewals and one status report (t = 300
  // s). The resyncs every 10 s pass settled pods by: no pod is synced.
  EXPECT_EQ(store_.resource_version() - rv, 31);
  EXPECT_EQ(agent_->syncs() - syncs, 0u);
  // And the loop runs 60 events: 30 resyncs and 30 heartbeat ticks, each a
  // status check and a Lease renewal (their periods are equal).
  EXPECT_EQ(sim_.events_processed() - events, 60u);
  EXPECT_EQ(runtime_.sandboxes_created, 110);
}

}  // namespace
}  // namespace flotilla::agent
