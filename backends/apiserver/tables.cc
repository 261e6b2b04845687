#include "backends/apiserver/tables.h"

#include <algorithm>
#include <map>
#include <string_view>

#include "backends/apiserver/wire_json.h"
#include "core/api/codec.h"

namespace flotilla::apiserver {
namespace {

using nlohmann::json;

struct Column {
  std::string_view name;
  std::string_view type;
  int priority;
  std::string_view description;
};

const std::vector<Column>& columns(api::Kind kind) {
  static const std::map<api::Kind, std::vector<Column>> kColumns = {
      {api::Kind::kPod,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."},
        {"Status", "string", 0, "The aggregate status of the containers in this pod."},
        {"Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."},
        {"IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster."},
        {"Node", "string", 1, "NodeName indicates in which node this pod is scheduled."},
        {"Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node."},
        {"Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."}}},
      {api::Kind::kReplicationController,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Desired", "integer", 0, "Replicas is the number of desired replicas."},
        {"Current", "integer", 0, "Replicas is the most recently observed number of replicas."},
        {"Ready", "integer", 0, "The number of ready replicas for this replication controller."},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."},
        {"Containers", "string", 1, "Names of each container in the template."},
        {"Images", "string", 1, "Images referenced by each container in the template."},
        {"Selector", "string", 1, "Selector is a label query over pods that should match the Replicas count."}}},
      {api::Kind::kService,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Type", "string", 0, "type determines how the Service is exposed."},
        {"Cluster-IP", "string", 0, "clusterIP is the IP address of the service."},
        {"External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."},
        {"Port(s)", "string", 0, "The list of ports that are exposed by this service."},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."},
        {"Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."}}},
      {api::Kind::kEndpoints,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Endpoints", "string", 0, "Endpoints of the service."},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."}}},
      {api::Kind::kNode,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Status", "string", 0, "The status of the node"},
        {"Roles", "string", 0, "The roles of the node"},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."},
        {"Version", "string", 0, "Kubelet Version reported by the node."},
        {"Internal-IP", "string", 1, "List of addresses reachable to the node."},
        {"External-IP", "string", 1, "List of addresses reachable to the node."},
        {"OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release."},
        {"Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r'."},
        {"Container-Runtime", "string", 1, "Container Runtime Version reported by the node."}}},
      {api::Kind::kNamespace,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Status", "string", 0, "The status of the namespace"},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."}}},
      {api::Kind::kEvent,
       {{"Last Seen", "string", 0, "Time when this Event was last seen"},
        {"Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future."},
        {"Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for this event being generated."},
        {"Object", "string", 0, "The object this Event is about."},
        {"Subobject", "string", 1, "The subobject this Event is about (fieldPath)."},
        {"Source", "string", 1, "The component reporting this event."},
        {"Message", "string", 0, "A human-readable description of the status of this operation."},
        {"First Seen", "string", 1, "The time at which the event was first recorded."},
        {"Count", "string", 1, "The number of times this event has occurred."},
        {"Name", "string", 1, "Name must be unique within a namespace."}}},
      {api::Kind::kLease,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"Holder", "string", 0, "The holder of the lease"},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."}}},
      {api::Kind::kEndpointSlice,
       {{"Name", "string", 0, "Name must be unique within a namespace."},
        {"AddressType", "string", 0, "The address type of the endpoints in this slice."},
        {"Ports", "string", 0, "The ports of the endpoints in this slice."},
        {"Endpoints", "string", 0, "The addresses of the endpoints in this slice."},
        {"Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."}}},
  };
  return kColumns.at(kind);
}

std::string or_none(std::string s) { return s.empty() ? "<none>" : s; }

std::string age(const api::Time& t, TimePoint now) {
  if (t.nanos() == 0) return "<unknown>";
  return human_duration(now - time_from_nanos(t.nanos()));
}

std::string format_labels(const google::protobuf::Map<std::string, std::string>& m) {
  std::vector<std::pair<std::string, std::string>> sorted(m.begin(), m.end());
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (const auto& [k, v] : sorted) {
    if (!out.empty()) out += ",";
    out += k + "=" + v;
  }
  return out;
}

json pod_row(const api::Pod& pod, TimePoint now) {
  int ready = 0;
  int restarts = 0;
  int64_t last_restart_ns = 0;
  std::string reason = pod.status().reason().empty() ? pod.status().phase() : pod.status().reason();
  if (reason.empty()) reason = "Pending";
  bool running = false;
  for (const api::ContainerStatus& cs : pod.status().container_statuses()) {
    restarts += cs.restart_count();
    if (cs.last_state().has_terminated()) {
      last_restart_ns = std::max(last_restart_ns, cs.last_state().terminated().finished_at().nanos());
    }
    if (cs.ready() && cs.state().has_running()) ++ready;
  }
  for (int i = pod.status().container_statuses_size() - 1; i >= 0; --i) {
    const api::ContainerStatus& cs = pod.status().container_statuses(i);
    if (cs.state().has_waiting() && !cs.state().waiting().reason().empty()) {
      reason = cs.state().waiting().reason();
    } else if (cs.state().has_terminated() && !cs.state().terminated().reason().empty()) {
      reason = cs.state().terminated().reason();
    } else if (cs.state().has_terminated()) {
      reason = cs.state().terminated().signal() != 0
                   ? "Signal:" + std::to_string(cs.state().terminated().signal())
                   : "ExitCode:" + std::to_string(cs.state().terminated().exit_code());
    } else if (cs.ready() && cs.state().has_running()) {
      running = true;
    }
  }
  if (reason == "Completed" && running) reason = "Running";
  if (pod.metadata().has_deletion_timestamp()) {
    reason = pod.status().reason() == "NodeLost" ? "Unknown" : "Terminating";
  }
  std::string restarts_cell = std::to_string(restarts);
  if (restarts > 0 && last_restart_ns > 0) {
    restarts_cell += " (" + human_duration(now - time_from_nanos(last_restart_ns)) + " ago)";
  }
  return json::array({pod.metadata().name(),
                      std::to_string(ready) + "/" + std::to_string(pod.spec().containers_size()),
                      reason, restarts_cell, age(pod.metadata().creation_timestamp(), now),
                      or_none(pod.status().pod_ip()), or_none(pod.spec().node_name()),
                      or_none(pod.status().nominated_node_name()), "<none>"});
}

json rc_row(const api::ReplicationController& rc, TimePoint now) {
  std::string names, images;
  for (const api::Container& c : rc.spec().template_().spec().containers()) {
    if (!names.empty()) names += ",";
    if (!images.empty()) images += ",";
    names += c.name();
    images += c.image();
  }
  return json::array({rc.metadata().name(), rc.spec().has_replicas() ? rc.spec().replicas() : 1,
                      rc.status().replicas(), rc.status().ready_replicas(),
                      age(rc.metadata().creation_timestamp(), now), names, images,
                      or_none(format_labels(rc.spec().selector()))});
}

json service_row(const api::Service& svc, TimePoint now) {
  std::string type = svc.spec().type().empty() ? "ClusterIP" : svc.spec().type();
  std::string external;
  for (const std::string& ip : svc.spec().external_ips()) {
    if (!external.empty()) external += ",";
    external += ip;
  }
  if (external.empty() && type == "LoadBalancer") external = "<pending>";
  std::string ports;
  for (const api::ServicePort& p : svc.spec().ports()) {
    if (!ports.empty()) ports += ",";
    ports += std::to_string(p.port());
    if (p.node_port() != 0) ports += ":" + std::to_string(p.node_port());
    ports += "/" + (p.protocol().empty() ? std::string("TCP") : p.protocol());
  }
  return json::array({svc.metadata().name(), type, or_none(svc.spec().cluster_ip()),
                      or_none(external), or_none(ports),
                      age(svc.metadata().creation_timestamp(), now),
                      or_none(format_labels(svc.spec().selector()))});
}

json endpoints_row(const api::Endpoints& ep, TimePoint now) {
  std::vector<std::string> list;
  for (const api::EndpointSubset& s : ep.subsets()) {
    for (const api::EndpointAddress& a : s.addresses()) {
      if (s.ports_size() == 0) list.push_back(a.ip());
      for (const api::EndpointPort& p : s.ports()) {
        list.push_back(a.ip() + ":" + std::to_string(p.port()));
      }
    }
  }
  std::string cell;
  for (size_t i = 0; i < list.size() && i < 3; ++i) {
    if (!cell.empty()) cell += ",";
    cell += list[i];
  }
  if (list.size() > 3) cell += " + " + std::to_string(list.size() - 3) + " more...";
  return json::array({ep.metadata().name(), or_none(cell),
                      age(ep.metadata().creation_timestamp(), now)});
}

// As kubectl prints one: the ports joined by commas ("<unset>" when a slice
// has none), the first three addresses then "+ N more...".
json endpoint_slice_row(const api::EndpointSlice& es, TimePoint now) {
  std::string ports;
  for (const api::EndpointPort& p : es.ports()) {
    if (!ports.empty()) ports += ",";
    ports += std::to_string(p.port());
  }
  std::string cell;
  int shown = 0, total = 0;
  for (const api::Endpoint& e : es.endpoints()) {
    for (const std::string& a : e.addresses()) {
      if (shown < 3) {
        if (!cell.empty()) cell += ",";
        cell += a;
        ++shown;
      }
      ++total;
    }
  }
  if (total > 3) cell += " + " + std::to_string(total - 3) + " more...";
  return json::array({es.metadata().name(), es.address_type(),
                      ports.empty() ? std::string("<unset>") : ports, or_none(cell),
                      age(es.metadata().creation_timestamp(), now)});
}

json node_row(const api::Node& node, TimePoint now) {
  std::string status = "Unknown";
  for (const api::NodeCondition& c : node.status().conditions()) {
    if (c.type() == "Ready") status = c.status() == "True" ? "Ready" : "NotReady";
  }
  if (node.spec().unschedulable()) status += ",SchedulingDisabled";
  std::string roles;
  constexpr std::string_view kRolePrefix = "node-role.kubernetes.io/";
  std::vector<std::string> role_list;
  for (const auto& [k, v] : node.metadata().labels()) {
    if (k.rfind(kRolePrefix, 0) == 0) role_list.push_back(k.substr(kRolePrefix.size()));
  }
  std::sort(role_list.begin(), role_list.end());
  for (const std::string& r : role_list) roles += (roles.empty() ? "" : ",") + r;
  std::string internal, external;
  for (const api::NodeAddress& a : node.status().addresses()) {
    if (a.type() == "InternalIP" && internal.empty()) internal = a.address();
    if (a.type() == "ExternalIP" && external.empty()) external = a.address();
  }
  const api::NodeSystemInfo& info = node.status().node_info();
  return json::array({node.metadata().name(), status, or_none(roles),
                      age(node.metadata().creation_timestamp(), now),
                      info.kubelet_version(), or_none(internal), or_none(external),
                      or_none(info.os_image()), or_none(info.kernel_version()),
                      or_none(info.container_runtime_version())});
}

json namespace_row(const api::Namespace& ns, TimePoint now) {
  return json::array({ns.metadata().name(),
                      ns.status().phase().empty() ? "Active" : ns.status().phase(),
                      age(ns.metadata().creation_timestamp(), now)});
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

json event_row(const api::Event& ev, TimePoint now) {
  const api::Time& last = ev.last_timestamp().nanos() != 0 ? ev.last_timestamp() : ev.event_time();
  const api::Time& first =
      ev.first_timestamp().nanos() != 0 ? ev.first_timestamp() : ev.event_time();
  std::string source = ev.source().component();
  if (!ev.source().host().empty()) source += ", " + ev.source().host();
  if (source.empty()) source = ev.reporting_component();
  return json::array({age(last, now), ev.type(), ev.reason(),
                      lower(ev.involved_object().kind()) + "/" + ev.involved_object().name(),
                      ev.involved_object().field_path(), source, ev.message(), age(first, now),
                      std::to_string(std::max(ev.count(), 1)), ev.metadata().name()});
}

json lease_row(const api::Lease& l, TimePoint now) {
  return json::array({l.metadata().name(), l.spec().holder_identity(),
                      age(l.metadata().creation_timestamp(), now)});
}

}  // namespace

std::string human_duration(Duration d) {
  int64_t seconds = d.count() / 1'000'000'000;
  if (d.count() < -1'000'000'000) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return std::to_string(seconds) + "s";
  int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    return std::to_string(minutes) + "m" + (s == 0 ? "" : std::to_string(s) + "s");
  }
  if (minutes < 60 * 3) return std::to_string(minutes) + "m";
  int64_t hours = minutes / 60;
  if (hours < 8) {
    int64_t m = minutes % 60;
    return std::to_string(hours) + "h" + (m == 0 ? "" : std::to_string(m) + "m");
  }
  if (hours < 48) return std::to_string(hours) + "h";
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    return std::to_string(hours / 24) + "d" + (h == 0 ? "" : std::to_string(h) + "h");
  }
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24) + "d";
  int64_t years = hours / 24 / 365;
  if (years < 8) {
    int64_t days = (hours / 24) % 365;
    return std::to_string(years) + "y" + (days == 0 ? "" : std::to_string(days) + "d");
  }
  return std::to_string(years) + "y";
}

nlohmann::json table_columns(api::Kind kind) {
  json out = json::array();
  for (const Column& c : columns(kind)) {
    json col = {{"name", c.name},
                {"type", c.type},
                {"format", c.name == "Name" ? "name" : ""},
                {"description", c.description},
                {"priority", c.priority}};
    out.push_back(std::move(col));
  }
  return out;
}

nlohmann::json table_row(api::Kind kind, const api::Object& object, TimePoint now,
                         IncludeObject include) {
  json cells;
  switch (kind) {
    case api::Kind::kPod: cells = pod_row(*api::as<api::Pod>(object), now); break;
    case api::Kind::kReplicationController:
      cells = rc_row(*api::as<api::ReplicationController>(object), now);
      break;
    case api::Kind::kService: cells = service_row(*api::as<api::Service>(object), now); break;
    case api::Kind::kEndpoints:
      cells = endpoints_row(*api::as<api::Endpoints>(object), now);
      break;
    case api::Kind::kNode: cells = node_row(*api::as<api::Node>(object), now); break;
    case api::Kind::kNamespace:
      cells = namespace_row(*api::as<api::Namespace>(object), now);
      break;
    case api::Kind::kEvent: cells = event_row(*api::as<api::Event>(object), now); break;
    case api::Kind::kLease: cells = lease_row(*api::as<api::Lease>(object), now); break;
    case api::Kind::kEndpointSlice:
      cells = endpoint_slice_row(*api::as<api::EndpointSlice>(object), now);
      break;
  }
  json row = {{"cells", std::move(cells)}};
  if (include == IncludeObject::kObject) {
    row["object"] = json::parse(wire_json(*object));
  } else if (include == IncludeObject::kMetadata) {
    row["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/v1"},
                     {"metadata", json::parse(api::encode_json(api::meta_of(*object)))}};
  }
  return row;
}

nlohmann::json make_table(api::Kind kind, const std::vector<api::Object>& items, TimePoint now,
                          IncludeObject include, bool with_columns) {
  json rows = json::array();
  for (const api::Object& o : items) rows.push_back(table_row(kind, o, now, include));
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", json::object()},
          {"columnDefinitions", with_columns ? table_columns(kind) : json::array()},
          {"rows", std::move(rows)}};
}

}  // namespace flotilla::apiserver
