// Small questions every controller asks of pods and nodes, answered one way:
// is it ready, is it being deleted, who owns it, what is its condition. Shared
// by the replication and endpoints controllers, the agent and the proxy.
#pragma once

#include <string>
#include <string_view>

#include "core/api/types.pb.h"

namespace flotilla::api {

// The condition of `type` ("Ready", "PodScheduled", ...) or nullptr.
const PodCondition* find_condition(const PodStatus& status, std::string_view type);
PodCondition* find_condition(PodStatus* status, std::string_view type);
const NodeCondition* find_condition(const NodeStatus& status, std::string_view type);
NodeCondition* find_condition(NodeStatus* status, std::string_view type);

// Sets (or adds) a condition; last_transition_time changes only when the
// status changes. Returns true when anything changed.
bool set_condition(PodStatus* status, std::string_view type, std::string_view value,
                   int64_t now_nanos, std::string_view reason = "",
                   std::string_view message = "");
bool set_condition(NodeStatus* status, std::string_view type, std::string_view value,
                   int64_t now_nanos, std::string_view reason = "",
                   std::string_view message = "");

// Pod Ready condition is True.
bool is_pod_ready(const Pod& pod);
// metadata.deletionTimestamp is set: the pod is shutting down.
bool is_terminating(const Pod& pod);
// Phase Succeeded or Failed.
bool is_pod_finished(const Pod& pod);
// Not terminating and not finished: counts toward a controller's replicas.
bool is_pod_active(const Pod& pod);
// Node Ready condition is True.
bool is_node_ready(const Node& node);

// The owner reference with controller=true, or nullptr.
const OwnerReference* controller_of(const ObjectMeta& meta);

// "<namespace>/<name>".
std::string namespaced_name(const ObjectMeta& meta);

// The effective restart policy ("Always" when unset).
std::string_view restart_policy(const PodSpec& spec);

}  // namespace flotilla::api
