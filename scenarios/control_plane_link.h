// The link between one simulated node and the control plane: a Store that
// forwards to the cluster's store while the node reaches the control plane and
// fails with kUnavailable while a partition cuts it off (its agent's
// heartbeats and status writes stop, as a real kubelet's would). Watch events
// keep flowing, as a relisting kubelet would see them once reconnected.
#pragma once

#include "core/ports/store.h"
#include "sim/world/topology.h"

namespace flotilla::scenarios {

class ControlPlaneLink final : public Store {
 public:
  ControlPlaneLink(Store& inner, const sim::Topology& topology, sim::NodeId node)
      : inner_(inner), topology_(topology), node_(node) {}

  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override {
    if (!up()) return cut_off();
    return inner_.get(kind, ns, name);
  }
  StatusOr<api::Object> get_if_changed(api::Kind kind, std::string_view ns, std::string_view name,
                                       const api::Object& known) const override {
    if (!up()) return cut_off();
    return inner_.get_if_changed(kind, ns, name, known);
  }
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override {
    if (!up()) return cut_off();
    return inner_.list(kind, options);
  }
  StatusOr<api::Object> create(api::Object object) override {
    if (!up()) return cut_off();
    return inner_.create(std::move(object));
  }
  StatusOr<api::Object> update(api::Object object) override {
    if (!up()) return cut_off();
    return inner_.update(std::move(object));
  }
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options) override {
    if (!up()) return cut_off();
    return inner_.remove(kind, ns, name, options);
  }
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override {
    return inner_.watch(kind, options, std::move(on_event));
  }
  int64_t resource_version() const override { return inner_.resource_version(); }
  int64_t kind_resource_version(api::Kind kind) const override {
    return inner_.kind_resource_version(kind);
  }

 private:
  bool up() const { return topology_.reaches_control_plane(node_); }
  Status cut_off() const {
    return unavailable_error("node " + std::string(topology_.node_name(node_)) +
                             " cannot reach the control plane (network partition)");
  }

  Store& inner_;
  const sim::Topology& topology_;
  sim::NodeId node_;
};

}  // namespace flotilla::scenarios
