#include "core/agent/node_agent.h"

#include <algorithm>
#include <array>
#include <utility>

#include "core/api/labels.h"
#include "core/api/pod_util.h"
#include "core/api/quantity.h"
#include "core/controllers/node_lifecycle.h"

namespace flotilla::agent {
namespace {

// Equal statuses serialize to equal bytes (PodStatus has no map fields, so
// serialization is canonical): far cheaper than a reflective comparison, and
// the periodic resync of every pod asks this of each one.
bool same_status(const api::PodStatus& a, const api::PodStatus& b) {
  if (a.ByteSizeLong() != b.ByteSizeLong()) return false;
  return a.SerializeAsString() == b.SerializeAsString();
}

enum ProbeKind { kLiveness = 0, kReadiness = 1, kStartup = 2 };
constexpr std::array<const char*, 3> kProbeNames = {"Liveness", "Readiness", "Startup"};
constexpr int kMaxWriteAttempts = 4;
constexpr int kKilledExitCode = 137;  // 128 + SIGKILL, what Kubernetes reports

bool has_action(const api::Probe& p) {
  return p.has_exec() || p.has_http_get() || p.has_tcp_socket();
}

const api::Probe* probe_of(const api::Container& c, int kind) {
  switch (kind) {
    case kLiveness:
      return c.has_liveness_probe() && has_action(c.liveness_probe()) ? &c.liveness_probe()
                                                                      : nullptr;
    case kReadiness:
      return c.has_readiness_probe() && has_action(c.readiness_probe()) ? &c.readiness_probe()
                                                                        : nullptr;
    default:
      return c.has_startup_probe() && has_action(c.startup_probe()) ? &c.startup_probe()
                                                                    : nullptr;
  }
}

// Kubernetes' probe defaults for fields left at zero.
Duration probe_period(const api::Probe& p) {
  return seconds(p.period_seconds() > 0 ? p.period_seconds() : 10);
}
Duration probe_timeout(const api::Probe& p) {
  return seconds(p.timeout_seconds() > 0 ? p.timeout_seconds() : 1);
}
int probe_success_threshold(const api::Probe& p) {
  return p.success_threshold() > 0 ? p.success_threshold() : 1;
}
int probe_failure_threshold(const api::Probe& p) {
  return p.failure_threshold() > 0 ? p.failure_threshold() : 3;
}

// initial * 2^(step-1), capped at max; step 0 is an immediate restart.
Duration backoff_delay(int step, Duration initial, Duration max) {
  if (step <= 0) return Duration(0);
  Duration d = initial;
  for (int i = 1; i < step && d < max; ++i) d *= 2;
  return std::min(d, max);
}

std::string pod_ref(const std::string& name, const std::string& ns, const std::string& uid) {
  return name + "_" + ns + "(" + uid + ")";
}

void set_time(api::Time* t, TimePoint tp) { t->set_nanos(to_nanos(tp)); }

VolumeConfig volume_config(const api::Volume& v) {
  VolumeConfig out;
  out.name = v.name();
  if (v.has_host_path()) {
    out.type = VolumeConfig::Type::kHostPath;
    out.source = v.host_path().path();
  } else if (v.has_shared()) {
    out.type = VolumeConfig::Type::kShared;
    out.source = v.shared().name().empty() ? v.name() : v.shared().name();
  } else if (v.has_nfs()) {
    // NFS is network storage visible from every node: the shared kind.
    out.type = VolumeConfig::Type::kShared;
    out.source = "nfs:" + v.nfs().server() + ":" + v.nfs().path();
  } else {
    out.type = VolumeConfig::Type::kEmptyDir;
  }
  return out;
}

int64_t quantity_milli(const google::protobuf::Map<std::string, std::string>& m,
                       const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) return 0;
  StatusOr<api::Quantity> q = api::Quantity::parse(it->second);
  return q.is_ok() ? q->milli_value() : 0;
}

int64_t quantity_value(const google::protobuf::Map<std::string, std::string>& m,
                       const std::string& key) {
  auto it = m.find(key);
  if (it == m.end()) return 0;
  StatusOr<api::Quantity> q = api::Quantity::parse(it->second);
  return q.is_ok() ? q->value() : 0;
}

}  // namespace

struct NodeAgent::ProbeState {
  TimerHandle timer;
  int successes = 0;
  int failures = 0;
  bool in_flight = false;
};

struct NodeAgent::ContainerRecord {
  // The container in the pod's spec_source snapshot (shared with the store's
  // objects instead of a copy of its own: 150,000 pods' containers are
  // hundreds of megabytes).
  const api::Container* spec = nullptr;
  enum class Phase { kWaiting, kRunning, kTerminated };
  Phase phase = Phase::kWaiting;
  std::string waiting_reason = "ContainerCreating";
  std::string waiting_message;
  std::string id;         // runtime id of the current (or last) instance
  uint64_t instance = 0;  // changes with every start: stale probe results are dropped
  TimePoint started_at{};
  TimePoint exited_at{};               // when the agent saw the last exit
  api::ContainerStateTerminated term;  // valid in kTerminated
  bool has_last = false;
  api::ContainerStateTerminated last_term;
  int restart_count = 0;
  bool ever_started = false;
  bool ready = false;    // readiness probe (or running, without one)
  bool started = false;  // startup probe passed (or running, without one)
  bool busy = false;     // a pull or start is in flight
  bool killing = false;
  bool image_ready = false;
  // Crash-loop backoff: steps taken since the last reset, and the planned restart.
  int backoff_steps = 0;
  bool restart_planned = false;
  TimePoint restart_at{};
  // Image pull backoff.
  int pull_failures = 0;
  TimePoint pull_failed_at{};
  TimePoint pull_retry_at{};
  std::array<ProbeState, 3> probes;
};

struct NodeAgent::PodRecord {
  std::string uid, ns, name;
  std::shared_ptr<const api::Pod> pod;  // latest snapshot seen or written
  // The snapshot the containers' specs point into: the first one seen, or a
  // later one whose containers have the same names and images (the only
  // container field an update may change), so the agent keeps acting on the
  // spec it started from without holding an old snapshot alive.
  std::shared_ptr<const api::Pod> spec_source;
  std::string written_rv;               // our last status write: its watch echo is skipped
  std::string sandbox_id, ip;
  bool sandbox_busy = false;  // run_pod_sandbox in flight
  bool removing = false;      // remove_pod_sandbox in flight
  bool queued = false;
  // Something may have changed since the status was last computed: every
  // enqueue but the periodic resync's sets it. A clean pod whose snapshot is
  // the one its status was checked against skips recomputing its status.
  bool dirty = true;
  std::string checked_rv;  // snapshot version the last computed status matched
  // The last sync found every container running and the status written:
  // until something marks the pod dirty, a sync would do nothing, so the
  // periodic resync passes it by without touching the pod.
  bool settled = false;
  bool has_start_time = false;
  TimePoint start_time{};
  std::vector<ContainerRecord> containers;
  TimerHandle wake;
  TimePoint wake_time{};
  // Exits reported before start_container's callback named the container.
  std::map<std::string, std::pair<ContainerStatus, bool>> early_exits;
  // Traced transitions.
  bool traced_running = false;
  bool traced_ready = false;
  bool traced_finished = false;
};

template <typename F>
auto NodeAgent::guard(F fn) {
  return [this, weak = std::weak_ptr<int>(alive_), epoch = epoch_,
          fn = std::move(fn)](auto&&... args) mutable {
    if (weak.expired() || epoch != epoch_) return;
    fn(std::forward<decltype(args)>(args)...);
  };
}

namespace {

// The node conditions the agent reports: Ready, and no pressure of any kind.
struct ReportedCondition {
  std::string_view type, status, reason, message;
};
constexpr ReportedCondition kReportedConditions[] = {
    {"Ready", "True", "KubeletReady", "agent is posting ready status"},
    {"MemoryPressure", "False", "KubeletHasSufficientMemory",
     "agent has sufficient memory available"},
    {"DiskPressure", "False", "KubeletHasNoDiskPressure", "agent has no disk pressure"},
    {"PIDPressure", "False", "KubeletHasSufficientPID", "agent has sufficient PID available"},
};

void report_conditions(api::NodeStatus* st, int64_t now) {
  for (const ReportedCondition& c : kReportedConditions) {
    api::set_condition(st, c.type, c.status, now, c.reason, c.message);
  }
  for (auto& c : *st->mutable_conditions()) c.mutable_last_heartbeat_time()->set_nanos(now);
}

bool conditions_as_reported(const api::NodeStatus& st) {
  for (const ReportedCondition& c : kReportedConditions) {
    const api::NodeCondition* have = api::find_condition(st, c.type);
    if (have == nullptr || have->status() != c.status) return false;
  }
  return true;
}

}  // namespace

NodeAgent::NodeAgent(std::string node_name, EventLoop& loop, Store& store,
                     ContainerRuntime& runtime, Network& network, TraceSink& trace,
                     TimingProfile timing, NodeDescription node)
    : node_name_(std::move(node_name)),
      loop_(loop),
      store_(store),
      runtime_(runtime),
      network_(network),
      trace_(trace),
      timing_(std::move(timing)),
      node_(std::move(node)),
      recorder_(store, loop, "kubelet", node_name_),
      alive_(std::make_shared<int>(0)) {
  if (node_.allocatable.empty()) node_.allocatable = node_.capacity;
  for (const auto& [type, address] : node_.addresses) {
    if (type == "InternalIP") {
      host_ip_ = address;
      break;
    }
  }
  if (host_ip_.empty() && !node_.addresses.empty()) host_ip_ = node_.addresses.front().second;
}

NodeAgent::~NodeAgent() {
  stop();
  alive_.reset();
}

NodeAgent::PodRecord* NodeAgent::find(const std::string& uid) {
  auto it = pods_.find(uid);
  return it == pods_.end() ? nullptr : it->second.get();
}

// ------------------------------------------------------------------ lifecycle

Status NodeAgent::start() {
  if (running_) return Status::ok();
  running_ = true;
  Status s = register_node();
  if (!s.is_ok()) {
    running_ = false;
    return s;
  }
  renew_lease();
  schedule_heartbeat();
  if (!renews_with_heartbeat()) schedule_lease_renewal();
  runtime_sub_ = runtime_.subscribe(guard([this](const ContainerEvent& e) { on_runtime_event(e); }));
  runtime_.list_pod_sandboxes(guard([this](StatusOr<std::vector<PodSandboxStatus>> r) {
    on_sandboxes_listed(std::move(r));
  }));
  schedule_resync();
  return Status::ok();
}

void NodeAgent::stop() {
  running_ = false;
  ++epoch_;
  pod_watch_.reset();
  runtime_sub_.reset();
  heartbeat_timer_.reset();
  lease_timer_.reset();
  resync_timer_.reset();
  pods_.clear();
  unsettled_ = 0;
  queue_.clear();
  drain_posted_ = false;
}

// ----------------------------------------------------------------------- node

Status NodeAgent::register_node() {
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    StatusOr<api::Object> existing = store_.get(api::Kind::kNode, "", node_name_);
    api::Node n;
    if (existing.is_ok()) {
      n = *api::as<api::Node>(*existing);
    } else if (existing.status().code() != StatusCode::kNotFound) {
      return existing.status();
    } else {
      n.set_api_version("v1");
      n.set_kind("Node");
      n.mutable_metadata()->set_name(node_name_);
    }
    auto* labels = n.mutable_metadata()->mutable_labels();
    for (const auto& [k, v] : node_.labels) (*labels)[k] = v;
    (*labels)["kubernetes.io/hostname"] = node_name_;
    api::NodeStatus* st = n.mutable_status();
    st->clear_capacity();
    st->clear_allocatable();
    for (const auto& [k, v] : node_.capacity) (*st->mutable_capacity())[k] = v;
    for (const auto& [k, v] : node_.allocatable) (*st->mutable_allocatable())[k] = v;
    st->clear_addresses();
    for (const auto& [type, address] : node_.addresses) {
      api::NodeAddress* a = st->add_addresses();
      a->set_type(type);
      a->set_address(address);
    }
    api::NodeSystemInfo* info = st->mutable_node_info();
    info->set_machine_id(node_name_);
    info->set_system_uuid(node_name_);
    info->set_os_image(node_.os_image);
    info->set_container_runtime_version(node_.container_runtime_version);
    info->set_kubelet_version("flotilla-agent/0.1");
    info->set_kube_proxy_version("flotilla-proxy/0.1");
    info->set_operating_system("linux");
    info->set_architecture("amd64");
    st->mutable_daemon_endpoints()->mutable_kubelet_endpoint()->set_port(10250);
    st->set_phase("Running");
    report_conditions(st, to_nanos(loop_.now()));
    StatusOr<api::Object> written = existing.is_ok() ? store_.update(api::share(std::move(n)))
                                                     : store_.create(api::share(std::move(n)));
    if (written.is_ok()) {
      last_status_report_ = loop_.now();
      const std::string& uid = api::meta_of(**written).uid();
      // A new Node owns the Lease from now on: the next renewal reads the
      // stored Lease and sets its owner again.
      if (uid != node_uid_) lease_ = nullptr;
      node_uid_ = uid;
      return Status::ok();
    }
    StatusCode code = written.status().code();
    if (code != StatusCode::kConflict && code != StatusCode::kAlreadyExists) {
      return written.status();
    }
  }
  return conflict_error("node \"" + node_name_ + "\": kept conflicting while registering");
}

void NodeAgent::post_node_status(bool only_if_changed) {
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    // A check asks for the Node only if it is no longer the snapshot last
    // found as reported (most checks of a large cluster find it still is).
    StatusOr<api::Object> existing =
        only_if_changed && node_as_reported_ != nullptr
            ? store_.get_if_changed(api::Kind::kNode, "", node_name_, node_as_reported_)
            : store_.get(api::Kind::kNode, "", node_name_);
    if (!existing.is_ok()) {
      // Deleted from under us (or the store failed): register again, as a kubelet does.
      if (existing.status().code() == StatusCode::kNotFound) (void)register_node();
      return;
    }
    if (*existing == nullptr) return;
    const api::Node& stored = *api::as<api::Node>(*existing);
    // The kubelet's nodeStatusHasChanged: only the conditions can drift here
    // (the node controller sets them Unknown while we were unreachable).
    if (only_if_changed && conditions_as_reported(stored.status())) {
      node_as_reported_ = *existing;
      return;
    }
    api::Node n = stored;
    report_conditions(n.mutable_status(), to_nanos(loop_.now()));
    StatusOr<api::Object> written = store_.update(api::share(std::move(n)));
    if (written.is_ok()) {
      last_status_report_ = loop_.now();
      node_as_reported_ = *written;
    }
    if (written.is_ok() || written.status().code() != StatusCode::kConflict) return;
  }
}

// One timer does both heartbeats when their periods are equal (10 s in the
// kubernetes profile, 1 s in fast): the status check, then the renewal, as
// two timers started together would run them, at half the timer events. A
// repeating timer: 5,000 nodes beat 500 times a second.
void NodeAgent::schedule_heartbeat() {
  heartbeat_timer_ = loop_.run_every(timing_.node_status_update_period, guard([this] {
                                       bool report_due = loop_.now() - last_status_report_ >=
                                                         timing_.node_status_report_period;
                                       post_node_status(!report_due);
                                       if (renews_with_heartbeat()) renew_lease();
                                     }));
}

Duration NodeAgent::lease_renew_period() const {
  return std::max<Duration>(timing_.node_lease_duration / 4, milliseconds(1));
}

bool NodeAgent::renews_with_heartbeat() const {
  return lease_renew_period() == timing_.node_status_update_period;
}

// The kubelet's node lease: kube-node-lease/<node>, owned by the Node, renewed
// every quarter of its duration; the node controller treats a renewal as a
// heartbeat.
void NodeAgent::renew_lease() {
  const int64_t now = to_nanos(loop_.now());
  const auto duration_s = static_cast<int32_t>(
      std::max<int64_t>(1, timing_.node_lease_duration.count() / 1'000'000'000));
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    const bool cached = lease_ != nullptr;
    StatusOr<api::Object> existing =
        cached ? StatusOr<api::Object>(lease_)
               : store_.get(api::Kind::kLease, std::string(ctrl::kNodeLeaseNamespace), node_name_);
    // Compact: 5,000 nodes renew 500 times a second, and each renewal's copy
    // and the free of the version it replaces were ~30% of the large
    // scenario's steady state as one allocation per field.
    std::shared_ptr<api::Lease> compact = api::make_compact<api::Lease>();
    api::Lease& lease = *compact;
    if (existing.is_ok()) {
      lease = *api::as<api::Lease>(*existing);
    } else if (existing.status().code() != StatusCode::kNotFound) {
      return;
    } else {
      lease.mutable_metadata()->set_name(node_name_);
      lease.mutable_metadata()->set_namespace_(std::string(ctrl::kNodeLeaseNamespace));
    }
    // Owned by the Node (as the kubelet's setNodeOwnerFunc), also when the
    // Lease was left by an earlier Node of the same name; held by this node.
    // The Lease this agent last wrote already is both (a registration that
    // changes the Node's uid drops it), and is not compared again.
    api::LeaseSpec* spec = lease.mutable_spec();
    if (!cached) {
      auto* refs = lease.mutable_metadata()->mutable_owner_references();
      if (!node_uid_.empty() && (refs->empty() || refs->Get(0).uid() != node_uid_)) {
        refs->Clear();
        api::OwnerReference* ref = refs->Add();
        ref->set_api_version("v1");
        ref->set_kind("Node");
        ref->set_name(node_name_);
        ref->set_uid(node_uid_);
      }
      if (spec->holder_identity() != node_name_) {
        spec->set_holder_identity(node_name_);
        spec->mutable_acquire_time()->set_nanos(now);
      }
    }
    spec->set_lease_duration_seconds(duration_s);
    spec->mutable_renew_time()->set_nanos(now);
    StatusOr<api::Object> written =
        existing.is_ok() ? store_.update(std::move(compact)) : store_.create(std::move(compact));
    if (written.is_ok()) {
      lease_ = *written;
      return;
    }
    lease_ = nullptr;  // changed or removed by someone else: read it again
    StatusCode code = written.status().code();
    if (cached && code == StatusCode::kNotFound) continue;  // removed: create it now
    if (code != StatusCode::kConflict && code != StatusCode::kAlreadyExists) return;
  }
}

void NodeAgent::schedule_lease_renewal() {
  lease_timer_ = loop_.run_every(lease_renew_period(), guard([this] { renew_lease(); }));
}

// --------------------------------------------------------- pods: watch, queue

void NodeAgent::on_sandboxes_listed(StatusOr<std::vector<PodSandboxStatus>> sandboxes) {
  StatusOr<api::FieldSelector> selector =
      api::FieldSelector::parse("spec.nodeName=" + node_name_);
  assert(selector.is_ok());
  ListOptions opts;
  opts.fields = *selector;
  StatusOr<ListResult> list = store_.list(api::Kind::kPod, opts);
  if (!list.is_ok()) {
    // The store is unreachable: try the whole start-up listing again later.
    resync_timer_ = loop_.run_after(timing_.agent_sync_period, guard([this] {
      runtime_.list_pod_sandboxes(guard([this](StatusOr<std::vector<PodSandboxStatus>> r) {
        on_sandboxes_listed(std::move(r));
      }));
    }));
    return;
  }
  for (const api::Object& o : list->items) track_pod(api::as<api::Pod>(o));
  if (sandboxes.is_ok()) {
    for (const PodSandboxStatus& sb : *sandboxes) {
      PodRecord* p = find(sb.pod_uid);
      if (p != nullptr && p->sandbox_id.empty() && sb.ready) {
        adopt(*p, sb);
      } else {
        // Its pod is gone, bound elsewhere, already has a sandbox, or the
        // sandbox died with the node: clean it up.
        runtime_.remove_pod_sandbox(sb.id, Duration(0), [](Status) {});
      }
    }
  }
  WatchOptions wopts;
  wopts.fields = *selector;
  wopts.resource_version = list->resource_version;
  StatusOr<WatchHandle> w =
      store_.watch(api::Kind::kPod, wopts, guard([this](const WatchEvent& e) { on_pod_event(e); }));
  if (w.is_ok()) pod_watch_ = std::move(*w);
  for (const auto& [uid, p] : pods_) enqueue(uid);
  schedule_resync();
}

void NodeAgent::on_pod_event(const WatchEvent& event) {
  auto pod = api::as<api::Pod>(event.object);
  const std::string& uid = pod->metadata().uid();
  if (event.type == WatchEventType::kDeleted || pod->spec().node_name() != node_name_) {
    forget_pod(uid, /*remove_sandbox=*/true);
    return;
  }
  PodRecord* p = find(uid);
  if (p == nullptr) {
    track_pod(pod);
    enqueue(uid);
    return;
  }
  bool own_write = pod->metadata().resource_version() == p->written_rv;
  set_snapshot(*p, pod);
  if (!own_write) enqueue(uid);
}

void NodeAgent::on_runtime_event(const ContainerEvent& event) {
  PodRecord* p = find(event.pod_uid);
  if (p == nullptr || event.sandbox_id != p->sandbox_id) return;  // stale: resync cleans up
  switch (event.type) {
    case ContainerEvent::Type::kStarted:
      return;
    case ContainerEvent::Type::kExited:
    case ContainerEvent::Type::kOomKilled: {
      bool oom = event.type == ContainerEvent::Type::kOomKilled;
      for (ContainerRecord& c : p->containers) {
        if (c.id == event.container.id) {
          on_container_exit(*p, c, event.container, oom);
          return;
        }
      }
      bool starting = std::any_of(p->containers.begin(), p->containers.end(),
                                  [](const ContainerRecord& c) { return c.busy; });
      if (starting) p->early_exits[event.container.id] = {event.container, oom};
      return;
    }
    case ContainerEvent::Type::kSandboxLost: {
      p->sandbox_id.clear();
      for (ContainerRecord& c : p->containers) {
        if (c.phase != ContainerRecord::Phase::kRunning) continue;
        ContainerStatus gone;
        gone.id = c.id;
        gone.exit_code = kKilledExitCode;
        gone.reason = "Error";
        on_container_exit(*p, c, gone, false);
      }
      enqueue(p->uid);
      return;
    }
  }
}

void NodeAgent::track_pod(std::shared_ptr<const api::Pod> pod) {
  auto rec = std::make_unique<PodRecord>();
  rec->uid = pod->metadata().uid();
  rec->ns = pod->metadata().namespace_().empty() ? std::string(api::kDefaultNamespace)
                                                 : pod->metadata().namespace_();
  rec->name = pod->metadata().name();
  rec->containers.resize(static_cast<size_t>(pod->spec().containers_size()));
  for (int i = 0; i < pod->spec().containers_size(); ++i) {
    rec->containers[static_cast<size_t>(i)].spec = &pod->spec().containers(i);
  }
  rec->spec_source = pod;
  rec->pod = std::move(pod);
  seed_from_status(*rec);
  std::string uid = rec->uid;
  std::unique_ptr<PodRecord>& slot = pods_[uid];
  if (slot != nullptr && !slot->settled) --unsettled_;
  slot = std::move(rec);
  ++unsettled_;  // a new record is not settled
}

void NodeAgent::set_snapshot(PodRecord& rec, std::shared_ptr<const api::Pod> pod) {
  const auto& now = pod->spec().containers();
  bool same = now.size() == static_cast<int>(rec.containers.size());
  for (int i = 0; same && i < now.size(); ++i) {
    const api::Container* was = rec.containers[static_cast<size_t>(i)].spec;
    same = now.Get(i).name() == was->name() && now.Get(i).image() == was->image();
  }
  if (same && pod != rec.spec_source) {
    for (int i = 0; i < now.size(); ++i) rec.containers[static_cast<size_t>(i)].spec = &now.Get(i);
    rec.spec_source = pod;
  }
  rec.pod = std::move(pod);
}

// Recovers what an earlier incarnation of the agent reported (restart counts,
// last terminations, finished containers) so a restart loses no history.
void NodeAgent::seed_from_status(PodRecord& pod) {
  const api::PodStatus& st = pod.pod->status();
  if (st.has_start_time()) {
    pod.has_start_time = true;
    pod.start_time = time_from_nanos(st.start_time().nanos());
  }
  pod.traced_running = st.phase() == "Running" || api::is_pod_finished(*pod.pod);
  pod.traced_ready = api::is_pod_ready(*pod.pod);
  pod.traced_finished = api::is_pod_finished(*pod.pod);
  for (const api::ContainerStatus& cs : st.container_statuses()) {
    for (ContainerRecord& c : pod.containers) {
      if (c.spec->name() != cs.name()) continue;
      c.restart_count = cs.restart_count();
      if (cs.last_state().has_terminated()) {
        c.has_last = true;
        c.last_term = cs.last_state().terminated();
      }
      if (cs.state().has_terminated()) {
        c.phase = ContainerRecord::Phase::kTerminated;
        c.term = cs.state().terminated();
        c.ever_started = true;
        c.id = c.term.container_id();
      } else if (cs.state().has_running()) {
        // Running once, but nothing is known of it now: adopt() overrides this
        // when the runtime still has the container.
        c.phase = ContainerRecord::Phase::kTerminated;
        c.term = api::ContainerStateTerminated();
        c.term.set_exit_code(kKilledExitCode);
        c.term.set_reason("ContainerStatusUnknown");
        c.term.set_message("The container could not be located when the agent restarted");
        *c.term.mutable_started_at() = cs.state().running().started_at();
        set_time(c.term.mutable_finished_at(), loop_.now());
        c.ever_started = true;
      } else if (cs.state().has_waiting() && c.has_last) {
        // In a crash loop: the last termination is the one to restart from.
        c.phase = ContainerRecord::Phase::kTerminated;
        c.term = c.last_term;
        c.has_last = false;
        c.ever_started = true;
      }
      if (c.phase == ContainerRecord::Phase::kTerminated) {
        c.exited_at = loop_.now();
        c.started_at = time_from_nanos(c.term.started_at().nanos());
      }
    }
  }
}

void NodeAgent::adopt(PodRecord& pod, const PodSandboxStatus& sandbox) {
  pod.sandbox_id = sandbox.id;
  pod.ip = sandbox.ip;
  if (!pod.has_start_time) {
    pod.has_start_time = true;
    pod.start_time = loop_.now();
  }
  std::vector<bool> used(sandbox.containers.size(), false);
  for (size_t i = 0; i < pod.containers.size(); ++i) {
    ContainerRecord& c = pod.containers[i];
    // Prefer the running instance; otherwise the last one to finish.
    int best = -1;
    for (size_t j = 0; j < sandbox.containers.size(); ++j) {
      const ContainerStatus& cs = sandbox.containers[j];
      if (cs.name != c.spec->name()) continue;
      if (best < 0) {
        best = static_cast<int>(j);
        continue;
      }
      const ContainerStatus& b = sandbox.containers[static_cast<size_t>(best)];
      bool better = (cs.state == ContainerState::kRunning && b.state != ContainerState::kRunning) ||
                    (cs.state == b.state && cs.finished_at > b.finished_at);
      if (better) best = static_cast<int>(j);
    }
    if (best < 0) continue;
    used[static_cast<size_t>(best)] = true;
    const ContainerStatus& cs = sandbox.containers[static_cast<size_t>(best)];
    c.id = cs.id;
    c.ever_started = true;
    c.image_ready = true;
    if (cs.state == ContainerState::kRunning) {
      c.phase = ContainerRecord::Phase::kRunning;
      c.started_at = cs.started_at;
      c.instance = next_instance_++;
      c.ready = probe_of(*c.spec, kReadiness) == nullptr;
      c.started = probe_of(*c.spec, kStartup) == nullptr;
      start_probes(pod, i);
    } else {
      c.phase = ContainerRecord::Phase::kTerminated;
      c.term = api::ContainerStateTerminated();
      c.term.set_exit_code(cs.exit_code);
      c.term.set_reason(cs.reason.empty() ? (cs.exit_code == 0 ? "Completed" : "Error")
                                          : cs.reason);
      set_time(c.term.mutable_started_at(), cs.started_at);
      set_time(c.term.mutable_finished_at(), cs.finished_at);
      c.term.set_container_id(cs.id);
      c.started_at = cs.started_at;
      c.exited_at = cs.finished_at;
    }
  }
  // Older instances and containers the spec no longer names.
  for (size_t j = 0; j < sandbox.containers.size(); ++j) {
    if (!used[j]) runtime_.stop_container(sandbox.containers[j].id, Duration(0), [](Status) {});
  }
}

void NodeAgent::forget_pod(const std::string& uid, bool remove_sandbox) {
  PodRecord* p = find(uid);
  if (p == nullptr) return;
  if (remove_sandbox && !p->sandbox_id.empty() && !p->removing) {
    runtime_.remove_pod_sandbox(p->sandbox_id, Duration(0), [](Status) {});
  }
  if (!p->settled) --unsettled_;
  pods_.erase(uid);
}

void NodeAgent::set_settled(PodRecord& pod, bool settled) {
  if (pod.settled == settled) return;
  pod.settled = settled;
  if (settled) {
    --unsettled_;
  } else {
    ++unsettled_;
  }
}

void NodeAgent::enqueue(const std::string& uid, bool resync) {
  PodRecord* p = find(uid);
  if (p == nullptr) return;
  if (!resync) {
    p->dirty = true;
    set_settled(*p, false);
  }
  if (p->queued) return;
  p->queued = true;
  queue_.push_back(uid);
  if (!drain_posted_) {
    drain_posted_ = true;
    loop_.post(guard([this] { drain_queue(); }));
  }
}

void NodeAgent::drain_queue() {
  drain_posted_ = false;
  // Only what was queued when the drain began: a sync that queues its own pod
  // again runs in the next drain, never in a loop here.
  for (size_t n = queue_.size(); n > 0 && !queue_.empty(); --n) {
    std::string uid = std::move(queue_.front());
    queue_.pop_front();
    PodRecord* p = find(uid);
    if (p == nullptr) continue;
    p->queued = false;
    sync_pod(*p);
  }
  if (!queue_.empty() && !drain_posted_) {
    drain_posted_ = true;
    loop_.post(guard([this] { drain_queue(); }));
  }
}

void NodeAgent::schedule_resync() {
  resync_timer_ = loop_.run_after(timing_.agent_sync_period, guard([this] {
                                    // Most nodes of a steady cluster have no
                                    // unsettled pod: nothing to walk. (The
                                    // count is checked against the records
                                    // in builds with assertions.)
                                    assert(unsettled_ ==
                                           static_cast<size_t>(std::count_if(
                                               pods_.begin(), pods_.end(), [](const auto& e) {
                                                 return !e.second->settled;
                                               })));
                                    if (unsettled_ > 0) {
                                      for (const auto& [uid, p] : pods_) {
                                        if (!p->settled) enqueue(uid, /*resync=*/true);
                                      }
                                    }
                                    schedule_resync();
                                  }));
}

void NodeAgent::wake_at(PodRecord& pod, TimePoint t) {
  if (pod.wake && pod.wake->pending() && pod.wake_time <= t) return;
  pod.wake_time = t;
  pod.wake = loop_.run_at(t, guard([this, uid = pod.uid] { enqueue(uid); }));
}

// ------------------------------------------------------------------ reconcile

Duration NodeAgent::grace_period(const PodRecord& pod) const {
  const api::Pod& p = *pod.pod;
  if (p.metadata().has_deletion_grace_period_seconds()) {
    // What is left of it: an agent that sees the deletion late (or restarted
    // meanwhile) still stops the pod by its deadline.
    Duration grace = seconds(std::max<int64_t>(0, p.metadata().deletion_grace_period_seconds()));
    if (p.metadata().has_deletion_timestamp()) {
      Duration left = time_from_nanos(p.metadata().deletion_timestamp().nanos()) - loop_.now();
      grace = std::clamp(left, Duration(0), grace);
    }
    return grace;
  }
  if (p.spec().has_termination_grace_period_seconds()) {
    return seconds(std::max<int64_t>(0, p.spec().termination_grace_period_seconds()));
  }
  return timing_.default_termination_grace;
}

bool NodeAgent::should_restart(const PodRecord& pod, const ContainerRecord& c) const {
  std::string_view policy = api::restart_policy(pod.pod->spec());
  if (policy == "Never") return false;
  if (policy == "OnFailure") return c.term.exit_code() != 0;
  return true;
}

bool NodeAgent::pod_finished(const PodRecord& pod) const {
  if (pod.containers.empty() || api::restart_policy(pod.pod->spec()) == "Always") return false;
  return std::all_of(pod.containers.begin(), pod.containers.end(),
                     [&](const ContainerRecord& c) {
                       return c.phase == ContainerRecord::Phase::kTerminated && !c.busy &&
                              !should_restart(pod, c);
                     });
}

void NodeAgent::sync_pod(PodRecord& pod) {
  ++syncs_;
  set_settled(pod, false);
  if (api::is_terminating(*pod.pod)) {
    sync_terminating(pod);
    return;
  }
  if (!pod.has_start_time) {
    pod.has_start_time = true;
    pod.start_time = loop_.now();
  }
  if (pod_finished(pod)) {
    // A finished pod keeps its status (and IP) but gives its sandbox back.
    if (!pod.sandbox_id.empty() && !pod.removing) {
      pod.removing = true;
      runtime_.remove_pod_sandbox(pod.sandbox_id, Duration(0),
                                  guard([this, uid = pod.uid](Status) {
                                    PodRecord* p = find(uid);
                                    if (p == nullptr) return;
                                    p->removing = false;
                                    p->sandbox_id.clear();
                                  }));
    }
    write_status(pod);
    return;
  }
  bool all_running = !pod.sandbox_id.empty();
  if (pod.sandbox_id.empty()) {
    pod.dirty = true;
    ensure_sandbox(pod);
  } else {
    for (size_t i = 0; i < pod.containers.size(); ++i) {
      const ContainerRecord& c = pod.containers[i];
      if (c.busy || c.phase != ContainerRecord::Phase::kRunning) {
        pod.dirty = true;
        all_running = false;
      }
      sync_container(pod, i);
    }
  }
  // A periodic resync of a pod nothing happened to finds the status it
  // checked last time: skip building it again.
  if (pod.dirty || pod.checked_rv != pod.pod->metadata().resource_version()) write_status(pod);
  set_settled(pod, all_running && !pod.dirty &&
                       pod.checked_rv == pod.pod->metadata().resource_version());
}

void NodeAgent::ensure_sandbox(PodRecord& pod) {
  if (pod.sandbox_busy || pod.removing) return;
  const api::Pod& obj = *pod.pod;
  PodSandboxConfig config;
  config.pod_uid = pod.uid;
  config.ns = pod.ns;
  config.name = pod.name;
  config.hostname = obj.spec().hostname().empty() ? pod.name : obj.spec().hostname();
  for (const auto& [k, v] : obj.metadata().labels()) config.labels[k] = v;
  for (const api::Volume& v : obj.spec().volumes()) config.volumes.push_back(volume_config(v));
  for (const api::Container& c : obj.spec().containers()) {
    for (const api::ContainerPort& port : c.ports()) {
      PortConfig pc;
      pc.container_port = port.container_port();
      pc.host_port = port.host_port();
      pc.protocol = port.protocol().empty() ? "TCP" : port.protocol();
      config.ports.push_back(std::move(pc));
    }
  }
  config.dns_searches = {pod.ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"};
  pod.sandbox_busy = true;
  runtime_.run_pod_sandbox(
      config, guard([this, uid = pod.uid](StatusOr<PodSandboxStatus> r) {
        PodRecord* p = find(uid);
        if (p == nullptr) {
          // The pod went away while its sandbox was being made.
          if (r.is_ok()) runtime_.remove_pod_sandbox(r->id, Duration(0), [](Status) {});
          return;
        }
        p->sandbox_busy = false;
        if (!r.is_ok()) {
          record_event(*p, "Warning", "FailedCreatePodSandBox",
                       "Failed to create pod sandbox: " + r.status().message());
          wake_at(*p, loop_.now() + timing_.agent_sync_period);
          return;
        }
        p->sandbox_id = r->id;
        p->ip = r->ip;
        p->early_exits.clear();
        enqueue(uid);
      }));
}

void NodeAgent::sync_container(PodRecord& pod, size_t index) {
  ContainerRecord& c = pod.containers[index];
  using Phase = ContainerRecord::Phase;
  if (c.busy || c.phase == Phase::kRunning) return;
  TimePoint now = loop_.now();
  if (c.ever_started) {
    if (c.phase == Phase::kTerminated && !should_restart(pod, c)) return;
    if (!c.restart_planned) {
      // Kubernetes' crash-loop backoff: immediate, then initial doubling to max;
      // a run of container_backoff_reset or longer starts the curve again.
      if (c.exited_at - c.started_at >= timing_.container_backoff_reset) c.backoff_steps = 0;
      Duration delay = backoff_delay(c.backoff_steps, timing_.container_backoff_initial,
                                     timing_.container_backoff_max);
      ++c.backoff_steps;
      c.restart_planned = true;
      c.restart_at = c.exited_at + delay;
    }
    if (now < c.restart_at) {
      if (c.phase == Phase::kTerminated) {
        Duration delay = backoff_delay(c.backoff_steps - 1, timing_.container_backoff_initial,
                                       timing_.container_backoff_max);
        c.last_term = c.term;
        c.has_last = true;
        c.phase = Phase::kWaiting;
        c.waiting_reason = "CrashLoopBackOff";
        c.waiting_message = "back-off " + format_duration(delay) +
                            " restarting failed container=" + c.spec->name() +
                            " pod=" + pod_ref(pod.name, pod.ns, pod.uid);
        record_event(pod, "Warning", "BackOff",
                     "Back-off restarting failed container " + c.spec->name() + " in pod " +
                         pod_ref(pod.name, pod.ns, pod.uid));
      }
      wake_at(pod, c.restart_at);
      return;
    }
  }
  if (!c.image_ready) {
    if (c.pull_failures > 0 && now < c.pull_retry_at) {
      // ErrImagePull stays visible for half the backoff, then ImagePullBackOff.
      TimePoint show_backoff = c.pull_failed_at + (c.pull_retry_at - c.pull_failed_at) / 2;
      if (now >= show_backoff) {
        if (c.waiting_reason != "ImagePullBackOff") {
          c.phase = Phase::kWaiting;
          c.waiting_reason = "ImagePullBackOff";
          c.waiting_message = "Back-off pulling image \"" + c.spec->image() + "\"";
          record_event(pod, "Normal", "BackOff", c.waiting_message);
        }
        wake_at(pod, c.pull_retry_at);
      } else {
        wake_at(pod, show_backoff);
      }
      return;
    }
    pull_image(pod, index);
    return;
  }
  start_container(pod, index);
}

void NodeAgent::pull_image(PodRecord& pod, size_t index) {
  pod.containers[index].busy = true;
  const std::string image = pod.containers[index].spec->image();
  record_event(pod, "Normal", "Pulling", "Pulling image \"" + image + "\"");
  TimePoint began = loop_.now();
  runtime_.pull_image(image, guard([this, uid = pod.uid, index, image, began](Status s) {
                        PodRecord* p = find(uid);
                        if (p == nullptr || index >= p->containers.size()) return;
                        ContainerRecord& c = p->containers[index];
                        c.busy = false;
                        TimePoint now = loop_.now();
                        if (s.is_ok()) {
                          c.image_ready = true;
                          c.pull_failures = 0;
                          record_event(*p, "Normal", "Pulled",
                                       "Successfully pulled image \"" + image + "\" in " +
                                           format_duration(now - began));
                          trace(trace::IMAGE_PULLED, *p, c.spec->name(), "", image);
                          enqueue(uid);
                          return;
                        }
                        ++c.pull_failures;
                        Duration backoff =
                            backoff_delay(c.pull_failures, timing_.image_pull_backoff_initial,
                                          timing_.image_pull_backoff_max);
                        c.pull_failed_at = now;
                        c.pull_retry_at = now + backoff;
                        c.phase = c.ever_started ? c.phase : ContainerRecord::Phase::kWaiting;
                        if (c.phase == ContainerRecord::Phase::kWaiting) {
                          c.waiting_reason = "ErrImagePull";
                          c.waiting_message = s.message();
                        }
                        record_event(*p, "Warning", "Failed",
                                     "Failed to pull image \"" + image + "\": " + s.message());
                        record_event(*p, "Warning", "Failed", "Error: ErrImagePull");
                        write_status(*p);
                        wake_at(*p, c.pull_failed_at + backoff / 2);
                      }));
}

void NodeAgent::start_container(PodRecord& pod, size_t index) {
  ContainerRecord& want = pod.containers[index];
  const api::Pod& obj = *pod.pod;
  ContainerConfig config;
  config.name = want.spec->name();
  config.image = want.spec->image();
  config.command.assign(want.spec->command().begin(), want.spec->command().end());
  config.args.assign(want.spec->args().begin(), want.spec->args().end());
  for (const api::EnvVar& e : want.spec->env()) config.env.emplace_back(e.name(), e.value());
  config.working_dir = want.spec->working_dir();
  const auto& res = want.spec->resources();
  config.cpu_request_millis = quantity_milli(res.requests(), "cpu");
  config.cpu_limit_millis = quantity_milli(res.limits(), "cpu");
  config.memory_request_bytes = quantity_value(res.requests(), "memory");
  config.memory_limit_bytes = quantity_value(res.limits(), "memory");
  for (const api::VolumeMount& m : want.spec->volume_mounts()) {
    config.mounts.push_back(MountConfig{m.name(), m.mount_path(), m.read_only()});
  }
  for (const auto& [k, v] : obj.metadata().labels()) config.labels[k] = v;
  config.labels["io.kubernetes.container.name"] = want.spec->name();
  config.labels["io.kubernetes.pod.name"] = pod.name;
  config.labels["io.kubernetes.pod.namespace"] = pod.ns;
  config.labels["io.kubernetes.pod.uid"] = pod.uid;
  want.busy = true;
  runtime_.start_container(
      pod.sandbox_id, config,
      guard([this, uid = pod.uid, index, sandbox = pod.sandbox_id](StatusOr<std::string> r) {
        PodRecord* p = find(uid);
        if (p == nullptr || index >= p->containers.size()) return;
        ContainerRecord& c = p->containers[index];
        c.busy = false;
        if (p->sandbox_id != sandbox) {
          // Its sandbox was lost or removed meanwhile; this instance is orphaned.
          if (r.is_ok()) runtime_.stop_container(*r, Duration(0), [](Status) {});
          enqueue(uid);
          return;
        }
        if (!r.is_ok()) {
          c.phase = c.ever_started ? c.phase : ContainerRecord::Phase::kWaiting;
          c.waiting_reason = "CreateContainerError";
          c.waiting_message = r.status().message();
          record_event(*p, "Warning", "Failed", "Error: " + r.status().message());
          write_status(*p);
          wake_at(*p, loop_.now() + timing_.agent_sync_period);
          return;
        }
        bool restart = c.ever_started;
        if (c.phase == ContainerRecord::Phase::kTerminated) {
          c.last_term = c.term;
          c.has_last = true;
        }
        if (restart) ++c.restart_count;
        std::string old_id = c.id;
        if (!old_id.empty() && old_id != *r) {
          runtime_.stop_container(old_id, Duration(0), [](Status) {});  // the dead instance
        }
        c.id = *r;
        c.phase = ContainerRecord::Phase::kRunning;
        c.started_at = loop_.now();
        c.ever_started = true;
        c.restart_planned = false;
        c.killing = false;
        c.instance = next_instance_++;
        c.ready = probe_of(*c.spec, kReadiness) == nullptr;
        c.started = probe_of(*c.spec, kStartup) == nullptr;
        if (c.spec->image_pull_policy() == "Always") c.image_ready = false;
        record_event(*p, "Normal", "Created", "Created container " + c.spec->name());
        record_event(*p, "Normal", "Started", "Started container " + c.spec->name());
        trace(trace::CONTAINER_STARTED, *p, c.spec->name(), "", "", 0, c.restart_count);
        if (restart) {
          trace(trace::CONTAINER_RESTARTED, *p, c.spec->name(), "", "", 0, c.restart_count);
        }
        start_probes(*p, index);
        auto early = p->early_exits.find(c.id);
        if (early != p->early_exits.end()) {
          auto [status, oom] = early->second;
          p->early_exits.erase(early);
          on_container_exit(*p, c, status, oom);
        }
        enqueue(uid);
      }));
}

void NodeAgent::on_container_exit(PodRecord& pod, ContainerRecord& c,
                                  const ContainerStatus& status, bool oom) {
  if (c.phase != ContainerRecord::Phase::kRunning || c.id != status.id) return;
  stop_probes(c);
  TimePoint now = loop_.now();
  c.phase = ContainerRecord::Phase::kTerminated;
  c.ready = false;
  c.killing = false;
  c.exited_at = now;
  c.term = api::ContainerStateTerminated();
  c.term.set_exit_code(status.exit_code);
  std::string reason = oom ? "OOMKilled"
                           : (!status.reason.empty() ? status.reason
                                                     : (status.exit_code == 0 ? "Completed"
                                                                              : "Error"));
  c.term.set_reason(reason);
  set_time(c.term.mutable_started_at(), c.started_at);
  set_time(c.term.mutable_finished_at(), now);
  c.term.set_container_id(c.id);
  trace(trace::CONTAINER_EXITED, pod, c.spec->name(), reason, "", status.exit_code);
  if (oom) trace(trace::CONTAINER_OOM_KILLED, pod, c.spec->name(), reason, "", status.exit_code);
  enqueue(pod.uid);
}

void NodeAgent::kill_container(PodRecord& pod, size_t index, Duration grace,
                               const std::string& why) {
  ContainerRecord& target = pod.containers[index];
  if (target.killing || target.phase != ContainerRecord::Phase::kRunning) return;
  target.killing = true;
  stop_probes(target);
  record_event(pod, "Normal", "Killing", why);
  std::string id = target.id;
  runtime_.stop_container(id, grace, guard([this, uid = pod.uid, index, id](Status) {
                            PodRecord* p = find(uid);
                            if (p == nullptr || index >= p->containers.size()) return;
                            ContainerRecord& c = p->containers[index];
                            ContainerStatus killed;
                            killed.id = id;
                            killed.exit_code = kKilledExitCode;
                            killed.reason = "Error";
                            on_container_exit(*p, c, killed, false);  // no-op if seen already
                          }));
}

void NodeAgent::sync_terminating(PodRecord& pod) {
  if (pod.removing || pod.sandbox_busy) return;  // a callback re-queues the pod
  for (auto& c : pod.containers) {
    if (c.busy) return;
  }
  if (!pod.sandbox_id.empty()) {
    Duration grace = grace_period(pod);
    for (ContainerRecord& c : pod.containers) {
      if (c.phase != ContainerRecord::Phase::kRunning) continue;
      stop_probes(c);
      record_event(pod, "Normal", "Killing", "Stopping container " + c.spec->name());
    }
    pod.removing = true;
    runtime_.remove_pod_sandbox(
        pod.sandbox_id, grace, guard([this, uid = pod.uid](Status s) {
          PodRecord* p = find(uid);
          if (p == nullptr) return;
          p->removing = false;
          if (s.is_ok()) {
            p->sandbox_id.clear();
            for (ContainerRecord& c : p->containers) {
              if (c.phase != ContainerRecord::Phase::kRunning) continue;
              ContainerStatus stopped;
              stopped.id = c.id;
              stopped.exit_code = 0;
              stopped.reason = "Completed";
              on_container_exit(*p, c, stopped, false);
            }
          } else {
            wake_at(*p, loop_.now() + timing_.agent_sync_period);
          }
          enqueue(uid);
        }));
    return;
  }
  // Containers stopped and sandbox gone: the pod object can go, this incarnation only.
  DeleteOptions opts;
  opts.uid = pod.uid;
  StatusOr<api::Object> removed = store_.remove(api::Kind::kPod, pod.ns, pod.name, opts);
  if (removed.is_ok() || removed.status().code() == StatusCode::kNotFound ||
      removed.status().code() == StatusCode::kConflict) {
    if (removed.is_ok()) trace(trace::POD_DELETED, pod, "", "Graceful");
    forget_pod(pod.uid, /*remove_sandbox=*/false);
    return;
  }
  wake_at(pod, loop_.now() + timing_.agent_sync_period);
}

// --------------------------------------------------------------------- probes

void NodeAgent::start_probes(PodRecord& pod, size_t index) {
  ContainerRecord& c = pod.containers[index];
  for (int kind = 0; kind < 3; ++kind) {
    const api::Probe* probe = probe_of(*c.spec, kind);
    if (probe == nullptr) continue;
    c.probes[static_cast<size_t>(kind)] = ProbeState();
    schedule_probe(pod, index, kind, seconds(std::max(0, probe->initial_delay_seconds())));
  }
}

void NodeAgent::stop_probes(ContainerRecord& c) {
  for (ProbeState& ps : c.probes) ps = ProbeState();
}

void NodeAgent::schedule_probe(PodRecord& pod, size_t index, int kind, Duration delay) {
  ContainerRecord& c = pod.containers[index];
  c.probes[static_cast<size_t>(kind)].timer =
      loop_.run_after(delay, guard([this, uid = pod.uid, index, kind, inst = c.instance] {
                        run_probe(uid, index, kind, inst);
                      }));
}

void NodeAgent::run_probe(const std::string& uid, size_t index, int kind, uint64_t instance) {
  PodRecord* p = find(uid);
  if (p == nullptr || index >= p->containers.size()) return;
  ContainerRecord& c = p->containers[index];
  if (c.instance != instance || c.phase != ContainerRecord::Phase::kRunning || c.killing) return;
  const api::Probe* probe = probe_of(*c.spec, kind);
  if (probe == nullptr) return;
  ProbeState& ps = c.probes[static_cast<size_t>(kind)];
  schedule_probe(*p, index, kind, probe_period(*probe));
  // Liveness and readiness wait until the startup probe has passed.
  if (kind != kStartup && !c.started) return;
  if (kind == kStartup && c.started) return;
  if (ps.in_flight) return;
  ps.in_flight = true;
  Duration timeout = probe_timeout(*probe);
  auto done = guard([this, uid, index, kind, instance](Status s) {
    on_probe_result(uid, index, kind, instance, std::move(s));
  });
  if (probe->has_exec()) {
    std::vector<std::string> command(probe->exec().command().begin(),
                                     probe->exec().command().end());
    runtime_.exec(c.id, command, timeout, [done, command](StatusOr<int> r) mutable {
      if (!r.is_ok()) {
        done(r.status());
      } else if (*r != 0) {
        std::string cmd;
        for (const auto& part : command) cmd += (cmd.empty() ? "" : " ") + part;
        done(failed_precondition_error("command \"" + cmd + "\" exited with code " +
                                       std::to_string(*r)));
      } else {
        done(Status::ok());
      }
    });
    return;
  }
  const api::IntOrString& port_spec =
      probe->has_http_get() ? probe->http_get().port() : probe->tcp_socket().port();
  int port = 0;
  if (port_spec.value_case() == api::IntOrString::kIntVal) {
    port = port_spec.int_val();
  } else {
    for (const api::ContainerPort& cp : c.spec->ports()) {
      if (cp.name() == port_spec.str_val()) port = cp.container_port();
    }
  }
  if (port <= 0) {
    // Reported through the loop like any probe result.
    loop_.post([done, name = port_spec.str_val()]() mutable {
      done(invalid_error("port \"" + name + "\" is not one of the container's named ports"));
    });
    return;
  }
  ProbeRequest req;
  req.kind = probe->has_http_get() ? ProbeRequest::Kind::kHttp : ProbeRequest::Kind::kTcp;
  req.from_node = node_name_;
  req.target = NetEndpoint{p->ip, port};
  if (probe->has_http_get() && !probe->http_get().path().empty()) {
    req.http_path = probe->http_get().path();
  }
  req.timeout = timeout;
  network_.probe(req, std::move(done));
}

void NodeAgent::on_probe_result(const std::string& uid, size_t index, int kind,
                                uint64_t instance, Status result) {
  PodRecord* p = find(uid);
  if (p == nullptr || index >= p->containers.size()) return;
  ContainerRecord& c = p->containers[index];
  if (c.instance != instance || c.phase != ContainerRecord::Phase::kRunning || c.killing) return;
  const api::Probe* probe = probe_of(*c.spec, kind);
  if (probe == nullptr) return;
  ProbeState& ps = c.probes[static_cast<size_t>(kind)];
  ps.in_flight = false;
  const std::string name = kProbeNames[static_cast<size_t>(kind)];
  if (result.is_ok()) {
    bool was_failing = ps.failures > 0;
    ps.failures = 0;
    ++ps.successes;
    if (was_failing) trace(trace::PROBE_SUCCEEDED, *p, c.spec->name(), name);
    if (ps.successes < probe_success_threshold(*probe)) return;
    if (kind == kReadiness && !c.ready) {
      c.ready = true;
      enqueue(uid);
    } else if (kind == kStartup && !c.started) {
      c.started = true;
      ps.timer.reset();
      enqueue(uid);
    }
    return;
  }
  ps.successes = 0;
  ++ps.failures;
  std::string message = name + " probe failed: " + result.message();
  trace(trace::PROBE_FAILED, *p, c.spec->name(), name, result.message());
  record_event(*p, "Warning", "Unhealthy", message);
  if (ps.failures < probe_failure_threshold(*probe)) return;
  if (kind == kReadiness) {
    if (c.ready) {
      c.ready = false;
      enqueue(uid);
    }
    return;
  }
  ps.failures = 0;
  Duration grace = probe->has_termination_grace_period_seconds()
                       ? seconds(probe->termination_grace_period_seconds())
                       : grace_period(*p);
  std::string verb = kind == kLiveness ? "liveness" : "startup";
  kill_container(*p, index, grace,
                 "Container " + c.spec->name() + " failed " + verb + " probe, will be restarted");
}

// ------------------------------------------------------ status, events, trace

api::PodStatus NodeAgent::compute_status(const PodRecord& pod, const api::PodStatus& old) const {
  using Phase = ContainerRecord::Phase;
  api::PodStatus s = old;
  int64_t now = to_nanos(loop_.now());
  s.set_host_ip(host_ip_);
  if (!pod.ip.empty()) {
    s.set_pod_ip(pod.ip);
    s.clear_pod_ips();
    s.add_pod_ips()->set_ip(pod.ip);
  }
  if (pod.has_start_time) set_time(s.mutable_start_time(), pod.start_time);
  s.clear_container_statuses();
  int running = 0, waiting = 0, stopped = 0, succeeded = 0;
  bool all_ready = true;
  std::string unready;
  for (const ContainerRecord& c : pod.containers) {
    api::ContainerStatus* cs = s.add_container_statuses();
    cs->set_name(c.spec->name());
    cs->set_image(c.spec->image());
    cs->set_restart_count(c.restart_count);
    if (!c.id.empty()) cs->set_container_id(c.id);
    bool ready = c.phase == Phase::kRunning && c.ready && c.started;
    cs->set_ready(ready);
    cs->set_started(c.phase == Phase::kRunning && c.started);
    if (!ready) {
      all_ready = false;
      unready += (unready.empty() ? "" : " ") + c.spec->name();
    }
    switch (c.phase) {
      case Phase::kRunning:
        ++running;
        set_time(cs->mutable_state()->mutable_running()->mutable_started_at(), c.started_at);
        break;
      case Phase::kTerminated:
        ++stopped;
        if (c.term.exit_code() == 0) ++succeeded;
        *cs->mutable_state()->mutable_terminated() = c.term;
        break;
      case Phase::kWaiting:
        if (c.has_last) {
          ++stopped;
        } else {
          ++waiting;
        }
        cs->mutable_state()->mutable_waiting()->set_reason(c.waiting_reason);
        cs->mutable_state()->mutable_waiting()->set_message(c.waiting_message);
        break;
    }
    if (c.has_last) *cs->mutable_last_state()->mutable_terminated() = c.last_term;
  }
  // Kubernetes' getPhase.
  std::string_view policy = api::restart_policy(pod.pod->spec());
  std::string phase = "Pending";
  if (waiting > 0) {
    phase = "Pending";
  } else if (running > 0) {
    phase = "Running";
  } else if (stopped > 0) {
    if (policy == "Always") {
      phase = "Running";
    } else if (stopped == succeeded) {
      phase = "Succeeded";
    } else if (policy == "Never") {
      phase = "Failed";
    } else {
      phase = "Running";
    }
  }
  if (pod.containers.empty()) phase = "Pending";
  s.set_phase(phase);
  api::set_condition(&s, "PodScheduled", "True", now);
  api::set_condition(&s, "Initialized", "True", now);
  bool finished = phase == "Succeeded" || phase == "Failed";
  if (finished) {
    api::set_condition(&s, "ContainersReady", "False", now, "PodCompleted");
    api::set_condition(&s, "Ready", "False", now, "PodCompleted");
  } else if (all_ready) {
    api::set_condition(&s, "ContainersReady", "True", now);
    api::set_condition(&s, "Ready", "True", now);
  } else {
    std::string msg = "containers with unready status: [" + unready + "]";
    api::set_condition(&s, "ContainersReady", "False", now, "ContainersNotReady", msg);
    api::set_condition(&s, "Ready", "False", now, "ContainersNotReady", msg);
  }
  return s;
}

void NodeAgent::write_status(PodRecord& pod) {
  api::PodStatus status = compute_status(pod, pod.pod->status());
  // Dirty until the store has this status: a write that fails (the API
  // server unreachable or slow, conflicts every attempt) is tried again by
  // the next periodic resync, not left until something else changes, which
  // for a steady pod is never (a Ready that did not get through kept the pod
  // out of its Services for good).
  pod.dirty = true;
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    if (same_status(status, pod.pod->status())) {
      pod.checked_rv = pod.pod->metadata().resource_version();
      pod.dirty = false;
      break;
    }
    // The stored pod with the new status (its old status is not copied).
    api::Pod updated;
    updated.set_api_version(pod.pod->api_version());
    updated.set_kind(pod.pod->kind());
    *updated.mutable_metadata() = pod.pod->metadata();
    *updated.mutable_spec() = pod.pod->spec();
    *updated.mutable_status() = status;
    StatusOr<api::Object> written = store_.update(api::share(std::move(updated)));
    if (written.is_ok()) {
      set_snapshot(pod, api::as<api::Pod>(*written));
      pod.written_rv = pod.pod->metadata().resource_version();
      pod.checked_rv = pod.written_rv;
      pod.dirty = false;
      break;
    }
    if (written.status().code() != StatusCode::kConflict) break;  // resync retries
    StatusOr<api::Object> fresh = store_.get(api::Kind::kPod, pod.ns, pod.name);
    if (!fresh.is_ok()) break;
    auto fresh_pod = api::as<api::Pod>(*fresh);
    if (fresh_pod->metadata().uid() != pod.uid) break;
    set_snapshot(pod, fresh_pod);
    status = compute_status(pod, pod.pod->status());
  }
  // Traces follow what the agent decided, whether or not the write landed.
  const std::string& phase = status.phase();
  bool ready = false;
  if (const api::PodCondition* c = api::find_condition(status, "Ready")) {
    ready = c->status() == "True";
  }
  if (phase == "Running" && !pod.traced_running) {
    pod.traced_running = true;
    trace(trace::POD_RUNNING, pod);
  }
  if (ready != pod.traced_ready) {
    pod.traced_ready = ready;
    trace(ready ? trace::POD_READY : trace::POD_NOT_READY, pod);
  }
  if ((phase == "Succeeded" || phase == "Failed") && !pod.traced_finished) {
    pod.traced_finished = true;
    trace(phase == "Succeeded" ? trace::POD_SUCCEEDED : trace::POD_FAILED, pod);
  }
}

void NodeAgent::record_event(PodRecord& pod, const std::string& type, const std::string& reason,
                             const std::string& message) {
  api::ObjectReference ref;
  ref.set_kind("Pod");
  ref.set_api_version("v1");
  ref.set_namespace_(pod.ns);
  ref.set_name(pod.name);
  ref.set_uid(pod.uid);
  recorder_.event(ref, type, reason, message);
}

void NodeAgent::trace(trace::EventType type, const PodRecord& pod, const std::string& container,
                      const std::string& reason, const std::string& message, int exit_code,
                      int64_t value) {
  trace::Record r;
  r.set_time_ns(to_nanos(loop_.now()));
  r.set_type(type);
  r.set_node(node_name_);
  r.set_namespace_(pod.ns);
  r.set_name(pod.name);
  r.set_uid(pod.uid);
  r.set_container(container);
  r.set_reason(reason);
  r.set_message(message);
  r.set_exit_code(exit_code);
  r.set_value(value);
  trace_.record(r);
}

}  // namespace flotilla::agent
