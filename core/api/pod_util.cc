#include "core/api/pod_util.h"

namespace flotilla::api {
namespace {

template <typename Status, typename Cond>
Cond* find_mut(Status* status, std::string_view type) {
  for (auto& c : *status->mutable_conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

template <typename Status, typename Cond>
const Cond* find_const(const Status& status, std::string_view type) {
  for (const auto& c : status.conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

template <typename Status, typename Cond>
bool set_impl(Status* status, std::string_view type, std::string_view value, int64_t now,
              std::string_view reason, std::string_view message) {
  Cond* c = find_mut<Status, Cond>(status, type);
  if (c == nullptr) {
    c = status->add_conditions();
    c->set_type(std::string(type));
  } else if (c->status() == value && c->reason() == reason && c->message() == message) {
    return false;
  }
  if (c->status() != value) c->mutable_last_transition_time()->set_nanos(now);
  c->set_status(std::string(value));
  c->set_reason(std::string(reason));
  c->set_message(std::string(message));
  return true;
}

}  // namespace

const PodCondition* find_condition(const PodStatus& status, std::string_view type) {
  return find_const<PodStatus, PodCondition>(status, type);
}
PodCondition* find_condition(PodStatus* status, std::string_view type) {
  return find_mut<PodStatus, PodCondition>(status, type);
}
const NodeCondition* find_condition(const NodeStatus& status, std::string_view type) {
  return find_const<NodeStatus, NodeCondition>(status, type);
}
NodeCondition* find_condition(NodeStatus* status, std::string_view type) {
  return find_mut<NodeStatus, NodeCondition>(status, type);
}

bool set_condition(PodStatus* status, std::string_view type, std::string_view value,
                   int64_t now_nanos, std::string_view reason, std::string_view message) {
  return set_impl<PodStatus, PodCondition>(status, type, value, now_nanos, reason, message);
}
bool set_condition(NodeStatus* status, std::string_view type, std::string_view value,
                   int64_t now_nanos, std::string_view reason, std::string_view message) {
  return set_impl<NodeStatus, NodeCondition>(status, type, value, now_nanos, reason, message);
}

bool is_pod_ready(const Pod& pod) {
  const PodCondition* c = find_condition(pod.status(), "Ready");
  return c != nullptr && c->status() == "True";
}

bool is_terminating(const Pod& pod) { return pod.metadata().has_deletion_timestamp(); }

bool is_pod_finished(const Pod& pod) {
  return pod.status().phase() == "Succeeded" || pod.status().phase() == "Failed";
}

bool is_pod_active(const Pod& pod) { return !is_terminating(pod) && !is_pod_finished(pod); }

bool is_node_ready(const Node& node) {
  const NodeCondition* c = find_condition(node.status(), "Ready");
  return c != nullptr && c->status() == "True";
}

const OwnerReference* controller_of(const ObjectMeta& meta) {
  for (const auto& ref : meta.owner_references()) {
    if (ref.has_controller() && ref.controller()) return &ref;
  }
  return nullptr;
}

std::string namespaced_name(const ObjectMeta& meta) {
  return (meta.namespace_().empty() ? std::string("default") : meta.namespace_()) + "/" +
         meta.name();
}

std::string_view restart_policy(const PodSpec& spec) {
  return spec.restart_policy().empty() ? std::string_view("Always") : spec.restart_policy();
}

}  // namespace flotilla::api
