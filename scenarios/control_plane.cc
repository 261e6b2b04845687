#include "scenarios/control_plane.h"

#include "core/api/codec.h"
#include "core/api/pod_util.h"
#include "core/api/quantity.h"
#include "core/api/validation.h"
#include "core/controllers/event_recorder.h"
#include "core/controllers/pod_deletion.h"

namespace flotilla::scenarios {

namespace {

template <typename F>
void record(TraceSink& trace, EventLoop& loop, trace::EventType type, F fill) {
  trace::Record r;
  r.set_time_ns(to_nanos(loop.now()));
  r.set_type(type);
  fill(r);
  trace.record(r);
}

// The zstd dictionary of stored Events: serialized Events as the recorder
// makes them (new_event), with the reasons and messages of the kubelet,
// scheduler, replication manager and node controller, the most common last. It
// decides only how small Events are kept, never what is stored.
std::string event_dictionary() {
  struct Sample {
    const char* component;
    const char* host;
    const char* kind;
    const char* involved;
    const char* type;
    const char* reason;
    const char* message;
  };
  static constexpr Sample kSamples[] = {
      {"node-controller", "", "Node", "node-0042", "Normal", "NodeNotReady",
       "Node node-0042 status is now: NodeNotReady"},
      {"node-controller", "", "Pod", "app-0-x7k2p", "Normal", "NodeControllerEviction",
       "Marking for deletion Pod default/app-0-x7k2p from Node node-0042"},
      {"kubelet", "node-0042", "Pod", "app-0-x7k2p", "Normal", "Killing",
       "Stopping container app"},
      {"replication-controller", "", "ReplicationController", "app-0", "Normal",
       "SuccessfulCreate", "Created pod: app-0-x7k2p"},
      {"default-scheduler", "", "Pod", "app-0-x7k2p", "Normal", "Scheduled",
       "Successfully assigned default/app-0-x7k2p to node-0042"},
      {"kubelet", "node-0042", "Pod", "app-0-x7k2p", "Normal", "Pulling",
       "Pulling image \"flotilla/demo-server\""},
      {"kubelet", "node-0042", "Pod", "app-0-x7k2p", "Normal", "Pulled",
       "Successfully pulled image \"flotilla/demo-server\" in 2.5s"},
      {"kubelet", "node-0042", "Pod", "app-0-x7k2p", "Normal", "Created",
       "Created container app"},
      {"kubelet", "node-0042", "Pod", "app-0-x7k2p", "Normal", "Started",
       "Started container app"},
  };
  constexpr int64_t kNow = 3'600'000'000'000;
  std::string out;
  for (const Sample& x : kSamples) {
    api::ObjectReference ref;
    ref.set_kind(x.kind);
    ref.set_api_version("v1");
    if (std::string_view(x.kind) != "Node") ref.set_namespace_(std::string(api::kDefaultNamespace));
    ref.set_name(x.involved);
    ref.set_uid("7a1e9c4b-2d6f-4e8a-b3c5-0f9d8e7a6b21");
    api::Event e = ctrl::new_event(ref, x.type, x.reason, x.message, x.component, x.host, kNow);
    // What the store adds.
    api::ObjectMeta* meta = e.mutable_metadata();
    meta->set_name(ctrl::event_name(x.involved, kNow, 0));
    meta->set_uid("3f6c2d8e-5b1a-4c7e-9d0f-2a8b6e4c1d95");
    meta->set_resource_version("1234567");
    meta->mutable_creation_timestamp()->set_nanos(kNow);
    out += e.SerializeAsString();
  }
  return out;
}

}  // namespace

store::StoreOptions ControlPlane::store_options() {
  store::StoreOptions so;
  so.validator = [](const google::protobuf::Message& obj,
                    const google::protobuf::Message* old) -> Status {
    std::vector<api::FieldError> errors =
        old == nullptr ? api::validate(obj) : api::validate_update(*old, obj);
    if (errors.empty()) return Status::ok();
    return api::invalid_status(obj, errors);
  };
  // Five Events per pod start: a large run's biggest heap item when parsed.
  so.packed_kinds = {api::Kind::kEvent};
  so.packed_dictionaries = {{api::Kind::kEvent, event_dictionary()}};
  // kube-apiserver's --etcd-compaction-interval: watch history older than
  // this is compacted away (a large run's Endpoints history grew by ~0.25 GB
  // per simulated hour without it).
  so.history_retention = std::chrono::minutes(5);
  // kube-apiserver's watch cache: --default-watch-cache-size is 100 events
  // per resource, 1,000 what large clusters are tuned to. 10,000 kept the
  // last 20 s of a 5,000-node cluster's Lease renewals alive (three versions
  // of every Lease): 1,000 cut the steady state's CPU by ~10% and 45 MB.
  so.history_size = 1000;
  return so;
}

ControlPlane::ControlPlane(EventLoop& loop, Random& random, Network& network, TraceSink& trace,
                           const LoadedScenario& scenario)
    : loop_(loop), trace_(trace), scenario_(scenario), network_(network) {
  store_rng_ = random.stream("store");
  auto memory = std::make_unique<store::InMemoryStore>(loop_, *store_rng_, store_options());
  memory_ = memory.get();
  store_ = std::move(memory);
}

ControlPlane::ControlPlane(EventLoop& loop, Random& /*random*/, Network& network,
                           TraceSink& trace, const LoadedScenario& scenario,
                           std::unique_ptr<Store> store)
    : loop_(loop), trace_(trace), scenario_(scenario), store_(std::move(store)),
      network_(network) {}

ControlPlane::~ControlPlane() = default;

Status ControlPlane::start() {
  ctrl::ControllerContext ctx{*store_, loop_, trace_, scenario_.timing};
  controllers_ = std::make_unique<ctrl::ControllerManager>(ctx);
  FLOTILLA_RETURN_IF_ERROR(controllers_->start());
  auto ips = proxy::ServiceIPAllocator::create(loop_, *store_, network_);
  if (!ips.is_ok()) return ips.status();
  service_ips_ = std::move(ips).value();
  FLOTILLA_RETURN_IF_ERROR(service_ips_->start());
  sched::SchedulerOptions opts;
  opts.mode = scenario_.scheduler_mode == "flow" ? sched::PlacementMode::kFlow
                                                 : sched::PlacementMode::kGreedy;
  opts.placement.percentage_of_nodes_to_score = scenario_.percentage_of_nodes_to_score;
  opts.initial_backoff = scenario_.timing.scheduler_backoff_initial;
  opts.max_backoff = scenario_.timing.scheduler_backoff_max;
  scheduler_ = std::make_unique<sched::Scheduler>(*store_, loop_, trace_, opts);
  return scheduler_->start();
}

Status ControlPlane::enable_node_ipam(const ctrl::NodeIpamOptions& options) {
  if (node_ipam_) return failed_precondition_error("node IPAM already enabled");
  auto ipam = ctrl::NodeIpamController::create(
      ctrl::ControllerContext{*store_, loop_, trace_, scenario_.timing}, options);
  if (!ipam.is_ok()) return ipam.status();
  FLOTILLA_RETURN_IF_ERROR((*ipam)->start());
  node_ipam_ = std::move(*ipam);
  return Status::ok();
}

void ControlPlane::apply(const WorkloadAction& a) {
  for (const auto& obj : a.apply) {
    auto copy = std::shared_ptr<google::protobuf::Message>(obj.object->New());
    copy->CopyFrom(*obj.object);
    api::fill_type_meta(copy.get());
    const api::KindInfo& k = api::kind_info(obj.kind);
    api::ObjectMeta* meta = k.mutable_meta(*copy);
    if (k.namespaced && meta->namespace_().empty()) meta->set_namespace_("default");
    Status s = store_->create(copy).status();
    if (s.code() == StatusCode::kAlreadyExists) {
      auto existing = store_->get(obj.kind, meta->namespace_(), meta->name());
      if (existing.is_ok()) {
        meta->set_resource_version(k.meta(**existing).resource_version());
        s = store_->update(copy).status();
      }
    }
    record(trace_, loop_, trace::WORKLOAD_APPLIED, [&](trace::Record& r) {
      r.set_namespace_(meta->namespace_());
      r.set_name(meta->name());
      r.set_reason(std::string(k.name));
      if (obj.kind == api::Kind::kService) r.set_service(meta->namespace_() + "/" + meta->name());
      if (!s.is_ok()) r.set_message(s.message());
    });
  }
  if (a.scale) {
    Status s = not_found_error("replicationcontrollers \"" + a.scale->name() + "\" not found");
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto rc = store_->get(api::Kind::kReplicationController, a.scale->namespace_(), a.scale->name());
      if (!rc.is_ok()) break;
      api::ReplicationController copy = *api::as<api::ReplicationController>(*rc);
      copy.mutable_spec()->set_replicas(a.scale->replicas());
      s = store_->update(api::share(std::move(copy))).status();
      if (s.code() != StatusCode::kConflict) break;
    }
    record(trace_, loop_, trace::WORKLOAD_APPLIED, [&](trace::Record& r) {
      r.set_namespace_(a.scale->namespace_());
      r.set_name(a.scale->name());
      r.set_reason("Scale");
      r.set_value(a.scale->replicas());
      if (!s.is_ok()) r.set_message(s.message());
    });
  }
  if (a.remove) {
    const api::KindInfo* k = api::kind_by_name(a.remove->kind());
    Status s;
    if (k->kind == api::Kind::kPod) {
      s = ctrl::delete_pod(*store_, a.remove->namespace_(), a.remove->name(), loop_.now(),
                           std::nullopt)
              .status();
    } else {
      s = store_->remove(k->kind, k->namespaced ? a.remove->namespace_() : "", a.remove->name())
              .status();
    }
    record(trace_, loop_, trace::WORKLOAD_APPLIED, [&](trace::Record& r) {
      r.set_namespace_(a.remove->namespace_());
      r.set_name(a.remove->name());
      r.set_reason("Delete" + std::string(k->name));
      if (!s.is_ok()) r.set_message(s.message());
    });
  }
}

AllocationTracker::AllocationTracker(EventLoop& loop, Store& store, TraceSink& trace,
                                     Duration period)
    : loop_(loop), store_(store), trace_(trace), period_(period) {}

Status AllocationTracker::start() {
  auto w = store_.watch(api::Kind::kPod, WatchOptions{},
                        [this](const WatchEvent& e) { on_pod_event(e); });
  if (!w.is_ok()) return w.status();
  watch_ = std::move(w).value();
  return Status::ok();
}

void AllocationTracker::on_pod_event(const WatchEvent& e) {
  const auto& pod = static_cast<const api::Pod&>(*e.object);
  auto [slot, added] = pods_.try_emplace(pod.metadata().uid());
  PodRequests& was = slot->second;
  PodRequests now;
  if (e.type != WatchEventType::kDeleted) {
    if (added) {
      for (const auto& c : pod.spec().containers()) {
        const auto& req = c.resources().requests();
        if (auto it = req.find("cpu"); it != req.end()) {
          if (auto q = api::Quantity::parse(it->second); q.is_ok()) now.cpu_millis += q->milli_value();
        }
        if (auto it = req.find("memory"); it != req.end()) {
          if (auto q = api::Quantity::parse(it->second); q.is_ok()) now.memory_bytes += q->value();
        }
      }
    } else {
      // A pod's requests never change (its spec is immutable): only whether
      // it holds them.
      now.cpu_millis = was.cpu_millis;
      now.memory_bytes = was.memory_bytes;
    }
    now.bound = !pod.spec().node_name().empty() && !api::is_pod_finished(pod);
  }
  if (was.bound) {
    requested_cpu_ -= was.cpu_millis;
    requested_mem_ -= was.memory_bytes;
    --bound_;
  }
  if (now.bound) {
    requested_cpu_ += now.cpu_millis;
    requested_mem_ += now.memory_bytes;
    ++bound_;
  }
  const api::ObjectMeta& m = pod.metadata();
  if (e.type == WatchEventType::kDeleted) {
    pods_.erase(slot);
    record(trace_, loop_, trace::POD_DELETED, [&](trace::Record& r) {
      r.set_namespace_(m.namespace_());
      r.set_name(m.name());
      r.set_uid(m.uid());
      r.set_node(pod.spec().node_name());
      r.set_reason("Removed");
    });
    return;
  }
  was = now;
  if (e.type == WatchEventType::kAdded) {
    record(trace_, loop_, trace::POD_CREATED, [&](trace::Record& r) {
      r.set_namespace_(m.namespace_());
      r.set_name(m.name());
      r.set_uid(m.uid());
    });
  }
}

void AllocationTracker::sample(TimePoint until) {
  record(trace_, loop_, trace::CLUSTER_SAMPLE, [&](trace::Record& r) {
    r.set_value(requested_cpu_);
    r.set_value2(requested_mem_);
    auto& a = *r.mutable_attrs();
    a["cpu_allocatable"] = std::to_string(allocatable_cpu_);
    a["memory_allocatable"] = std::to_string(allocatable_mem_);
    a["pods_bound"] = std::to_string(bound_);
    a["pods_pending"] = std::to_string(static_cast<int64_t>(pods_.size()) - bound_);
  });
  if (loop_.now() + period_ <= until) {
    timer_ = loop_.run_after(period_, [this, until] { sample(until); });
  }
}

}  // namespace flotilla::scenarios
