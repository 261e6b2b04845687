// The shared control plane of a cluster, as both worlds run it: the store (with
// API validation), the controllers (replication, garbage collection, node
// lifecycle, endpoints), the Service IP allocator and the scheduler, built over
// one EventLoop and started together. Also the scenario's workload steps
// applied to its store, and an incremental view of requested resources. The
// simulator's runner and the live runner both use it, so both worlds run the
// very same control plane.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/controllers/controller_manager.h"
#include "core/controllers/node_ipam.h"
#include "core/ports/event_loop.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/ports/trace.h"
#include "core/proxy/service_ip.h"
#include "core/scheduler/scheduler.h"
#include "core/store/in_memory_store.h"
#include "core/timing/timing.h"
#include "scenarios/loader.h"

namespace flotilla::scenarios {

class ControlPlane {
 public:
  // Borrows every argument; they must outlive the control plane.
  ControlPlane(EventLoop& loop, Random& random, Network& network, TraceSink& trace,
               const LoadedScenario& scenario);
  // Runs on `store` (built with store_options(), e.g. the durable store of
  // backends/storage) instead of a new in-memory one; the control plane owns
  // it. What the store already holds is picked up as the controllers start.
  ControlPlane(EventLoop& loop, Random& random, Network& network, TraceSink& trace,
               const LoadedScenario& scenario, std::unique_ptr<Store> store);
  // The options of the control plane's store: API validation on every write.
  static store::StoreOptions store_options();
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Starts controllers, the Service IP allocator and the scheduler.
  Status start();
  Store& store() { return *store_; }
  // Only for a control plane built with its own in-memory store.
  store::InMemoryStore& memory_store() { return *memory_; }
  sched::Scheduler& scheduler() { return *scheduler_; }
  // Starts the node IPAM controller (spec.podCIDR for every Node, for live
  // cross-host pod networking; docs/multihost.md). Off unless called, so
  // simulator runs and their traces are unchanged. Errors: a bad CIDR/mask.
  Status enable_node_ipam(const ctrl::NodeIpamOptions& options);
  ctrl::NodeIpamController* node_ipam() { return node_ipam_.get(); }

  // Applies one workload step now: creates (or updates) its objects, scales or
  // deletes; records WORKLOAD_APPLIED.
  void apply(const WorkloadAction& action);

 private:
  EventLoop& loop_;
  TraceSink& trace_;
  const LoadedScenario& scenario_;
  std::unique_ptr<RandomStream> store_rng_;
  std::unique_ptr<Store> store_;
  store::InMemoryStore* memory_ = nullptr;  // store_, when it is the in-memory store
  std::unique_ptr<ctrl::ControllerManager> controllers_;
  std::unique_ptr<proxy::ServiceIPAllocator> service_ips_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  std::unique_ptr<ctrl::NodeIpamController> node_ipam_;
  Network& network_;
};

// Requested CPU and memory of the pods bound to nodes, kept from a pod watch;
// records CLUSTER_SAMPLE every period and POD_CREATED / POD_DELETED as the
// store sees them.
class AllocationTracker {
 public:
  AllocationTracker(EventLoop& loop, Store& store, TraceSink& trace, Duration period);
  Status start();
  // Allocatable capacity of the nodes that are up (the caller keeps it current).
  void add_allocatable(int64_t cpu_millis, int64_t memory_bytes) {
    allocatable_cpu_ += cpu_millis;
    allocatable_mem_ += memory_bytes;
  }
  // Records one sample now and schedules the next (when `until` allows).
  void sample(TimePoint until);

 private:
  struct PodRequests {
    int64_t cpu_millis = 0;
    int64_t memory_bytes = 0;
    bool bound = false;
  };
  void on_pod_event(const WatchEvent& e);

  EventLoop& loop_;
  Store& store_;
  TraceSink& trace_;
  Duration period_;
  WatchHandle watch_;
  TimerHandle timer_;
  std::unordered_map<std::string, PodRequests> pods_;  // by uid
  int64_t requested_cpu_ = 0, requested_mem_ = 0;
  int64_t allocatable_cpu_ = 0, allocatable_mem_ = 0;
  int64_t bound_ = 0;
};

}  // namespace flotilla::scenarios
