// The controller manager: the control loops of the cluster (replication,
// garbage collection, node lifecycle, endpoints and endpoint slices, event expiry) built over
// one context and
// started together, as kube-controller-manager does. What the CLI and the
// scenario runner start in both worlds.
#pragma once

#include <memory>

#include "core/controllers/context.h"
#include "core/controllers/endpoint_slice.h"
#include "core/controllers/endpoints.h"
#include "core/controllers/event_ttl.h"
#include "core/controllers/garbage_collector.h"
#include "core/controllers/node_lifecycle.h"
#include "core/controllers/replication.h"

namespace flotilla::ctrl {

class ControllerManager {
 public:
  explicit ControllerManager(ControllerContext ctx)
      : replication_(ctx), gc_(ctx), nodes_(ctx), endpoints_(ctx), slices_(ctx), event_ttl_(ctx) {}

  // Starts every controller's watches and timers; the first error stops it.
  Status start() {
    FLOTILLA_RETURN_IF_ERROR(replication_.start());
    FLOTILLA_RETURN_IF_ERROR(gc_.start());
    FLOTILLA_RETURN_IF_ERROR(nodes_.start());
    FLOTILLA_RETURN_IF_ERROR(endpoints_.start());
    FLOTILLA_RETURN_IF_ERROR(slices_.start());
    return event_ttl_.start();
  }

  ReplicationManager& replication() { return replication_; }
  GarbageCollector& garbage_collector() { return gc_; }
  NodeLifecycleController& node_lifecycle() { return nodes_; }
  EndpointsController& endpoints() { return endpoints_; }
  EndpointSliceController& endpoint_slices() { return slices_; }
  EventTtlController& event_ttl() { return event_ttl_; }

 private:
  ReplicationManager replication_;
  GarbageCollector gc_;
  NodeLifecycleController nodes_;
  EndpointsController endpoints_;
  EndpointSliceController slices_;
  EventTtlController event_ttl_;
};

}  // namespace flotilla::ctrl
