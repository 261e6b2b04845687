#include "backends/apiserver/api_handler.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "backends/apiserver/discovery.h"
#include "backends/apiserver/patch.h"
#include "backends/apiserver/wire_json.h"
#include "core/api/codec.h"
#include "core/api/labels.h"
#include "core/api/validation.h"
#include "core/controllers/pod_deletion.h"

namespace flotilla::apiserver {

using nlohmann::json;
namespace pb = google::protobuf;

struct ApiHandler::Route {
  const api::KindInfo* kind = nullptr;
  std::string ns;           // empty: cluster-scoped kind or all namespaces
  bool has_ns = false;      // the path named a namespace
  std::string name;         // empty: the collection
  std::string subresource;  // "", "status", "scale"
  std::map<std::string, std::string> query;
  bool table = false;
  IncludeObject include = IncludeObject::kMetadata;

  std::string q(const std::string& key) const {
    auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  }
  std::string resource() const { return kind ? std::string(kind->resource) : std::string(); }
};

namespace {

// A boolean query parameter as Go's strconv.ParseBool reads it (the Python
// client sends "watch=True").
bool query_true(const std::string& v) {
  return v == "1" || v == "t" || v == "T" || v == "true" || v == "True" || v == "TRUE";
}

constexpr int kPatchRetries = 5;

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec == std::errc() && r.ptr == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.push_back(url_decode(path.substr(i, j - i)));
    i = j + 1;
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  while (i < q.size()) {
    size_t j = q.find('&', i);
    if (j == std::string_view::npos) j = q.size();
    std::string_view term = q.substr(i, j - i);
    size_t eq = term.find('=');
    if (!term.empty()) {
      out[url_decode(term.substr(0, eq))] =
          eq == std::string_view::npos ? "" : url_decode(term.substr(eq + 1));
    }
    i = j + 1;
  }
  return out;
}

HttpResponse json_response(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

std::unique_ptr<pb::Message> clone(const pb::Message& m) {
  std::unique_ptr<pb::Message> out(m.New());
  out->CopyFrom(m);
  return out;
}

// Copies the `field` ("status" or "spec") of `from` into `to`, presence included.
void copy_field(const pb::Message& from, pb::Message* to, std::string_view field) {
  const pb::FieldDescriptor* f = to->GetDescriptor()->FindFieldByName(std::string(field));
  if (f == nullptr) return;
  const pb::Reflection* r = to->GetReflection();
  if (from.GetReflection()->HasField(from, f)) {
    r->MutableMessage(to, f)->CopyFrom(from.GetReflection()->GetMessage(from, f));
  } else {
    r->ClearField(to, f);
  }
}

bool has_field(const pb::Message& m, std::string_view field) {
  return m.GetDescriptor()->FindFieldByName(std::string(field)) != nullptr;
}

std::string cause_reason(const std::string& type) {
  if (type == "Required value") return "FieldValueRequired";
  if (type == "Unsupported value") return "FieldValueNotSupported";
  if (type == "Too long") return "FieldValueTooLong";
  if (type == "Duplicate value") return "FieldValueDuplicate";
  if (type == "Forbidden") return "FieldValueForbidden";
  if (type == "Not found") return "FieldValueNotFound";
  return "FieldValueInvalid";
}

// kube-apiserver names a resource of a kind in a group with its group
// ("leases.coordination.k8s.io \"x\" not found", "Lease.coordination.k8s.io
// \"x\" is invalid"); the stores name the resource or kind alone.
Status qualified(const Status& s, const api::KindInfo& k) {
  if (k.group.empty() || s.is_ok()) return s;
  std::string msg = s.message();
  for (std::string_view word : {k.resource, k.name}) {
    std::string from = std::string(word) + " \"";
    size_t at = msg.find(from);
    if (at != std::string::npos && (at == 0 || msg[at - 1] == ' ')) {
      msg.insert(at + word.size(), "." + std::string(k.group));
      return Status(s.code(), msg);
    }
  }
  return s;
}

json status_json(const Status& s, std::string_view resource, std::string_view name) {
  json st = {{"kind", "Status"},
             {"apiVersion", "v1"},
             {"metadata", json::object()},
             {"status", "Failure"},
             {"message", s.message()},
             {"reason", status_code_reason(s.code())},
             {"code", status_code_http(s.code())}};
  if (s.code() == StatusCode::kBadRequest || s.code() == StatusCode::kInternal) {
    if (s.code() == StatusCode::kBadRequest) st["reason"] = "BadRequest";
    return st;
  }
  json details = json::object();
  if (!name.empty()) details["name"] = name;
  if (!resource.empty()) details["kind"] = resource;
  if (!details.empty()) st["details"] = details;
  return st;
}

// One field requirement on an Event's involvedObject.
struct InvolvedRequirement {
  std::string field;  // "name", "namespace", "kind", "uid", "apiVersion", ...
  bool equals = true;
  std::string value;
};

// Splits a field selector into what the store evaluates and the Event-only
// involvedObject.* terms.
Status split_field_selector(std::string_view text, api::Kind kind, std::string* store_part,
                            std::vector<InvolvedRequirement>* involved) {
  std::vector<std::string> terms;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      cur += text[i];
      cur += text[++i];
    } else if (text[i] == ',') {
      terms.push_back(cur);
      cur.clear();
    } else {
      cur += text[i];
    }
  }
  if (!cur.empty()) terms.push_back(cur);
  for (const std::string& t : terms) {
    constexpr std::string_view kPrefix = "involvedObject.";
    std::string_view tv(t);
    while (!tv.empty() && tv.front() == ' ') tv.remove_prefix(1);
    if (tv.substr(0, kPrefix.size()) == kPrefix) {
      if (kind != api::Kind::kEvent) {
        return bad_request_error("field label not supported: " +
                                 std::string(tv.substr(0, tv.find_first_of("=!"))));
      }
      size_t op = tv.find_first_of("=!");
      if (op == std::string_view::npos) {
        return bad_request_error("invalid selector: '" + std::string(tv) +
                                 "'; can't understand '" + std::string(tv) + "'");
      }
      InvolvedRequirement r;
      r.field = std::string(tv.substr(kPrefix.size(), op - kPrefix.size()));
      r.equals = tv[op] == '=';
      size_t vstart = op + 1;
      if (tv.substr(op, 2) == "!=" || tv.substr(op, 2) == "==") vstart = op + 2;
      r.value = std::string(tv.substr(vstart));
      involved->push_back(std::move(r));
    } else {
      if (!store_part->empty()) *store_part += ",";
      *store_part += t;
    }
  }
  return Status::ok();
}

std::function<bool(const pb::Message&)> involved_filter(std::vector<InvolvedRequirement> reqs) {
  if (reqs.empty()) return nullptr;
  return [reqs = std::move(reqs)](const pb::Message& m) {
    const auto* ev = dynamic_cast<const api::Event*>(&m);
    if (ev == nullptr) return false;
    const api::ObjectReference& o = ev->involved_object();
    for (const InvolvedRequirement& r : reqs) {
      std::string v;
      if (r.field == "name") v = o.name();
      else if (r.field == "namespace") v = o.namespace_();
      else if (r.field == "kind") v = o.kind();
      else if (r.field == "uid") v = o.uid();
      else if (r.field == "apiVersion") v = o.api_version();
      else if (r.field == "resourceVersion") v = o.resource_version();
      else if (r.field == "fieldPath") v = o.field_path();
      if ((v == r.value) != r.equals) return false;
    }
    return true;
  };
}

StatusOr<int64_t> parse_int(const std::string& s, std::string_view what) {
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    return bad_request_error("invalid " + std::string(what) + ": \"" + s + "\"");
  }
  return v;
}

json scale_json(const api::ReplicationController& rc) {
  const api::ObjectMeta& m = rc.metadata();
  json meta = {{"name", m.name()},
               {"namespace", m.namespace_()},
               {"uid", m.uid()},
               {"resourceVersion", m.resource_version()}};
  if (m.has_creation_timestamp()) {
    meta["creationTimestamp"] = format_rfc3339(time_from_nanos(m.creation_timestamp().nanos()));
  }
  std::vector<std::pair<std::string, std::string>> sel(rc.spec().selector().begin(),
                                                       rc.spec().selector().end());
  std::sort(sel.begin(), sel.end());
  std::string selector;
  for (const auto& [k, v] : sel) selector += (selector.empty() ? "" : ",") + k + "=" + v;
  return {{"kind", "Scale"},
          {"apiVersion", "autoscaling/v1"},
          {"metadata", meta},
          {"spec", {{"replicas", rc.spec().has_replicas() ? rc.spec().replicas() : 1}}},
          {"status", {{"replicas", rc.status().replicas()}, {"selector", selector}}}};
}

// Decodes a request body (JSON or YAML) holding exactly one object of `kind`.
StatusOr<std::shared_ptr<pb::Message>> decode_body(std::string_view body,
                                                   const api::KindInfo& kind, bool strict) {
  std::string prefix = std::string(kind.name) + " in version \"" +
                       std::string(kind.api_version.substr(kind.api_version.find('/') + 1)) +
                       "\" cannot be handled as a " + std::string(kind.name) + ": ";
  if (body.empty()) return bad_request_error(prefix + "the request body is empty");
  // Kubernetes takes the kind and version from the path when a JSON body
  // leaves them out (typed clients such as python3-kubernetes do).
  std::string filled;
  if (body.front() == '{') {
    json j = json::parse(body, nullptr, false);
    if (j.is_object() && (!j.contains("kind") || !j.contains("apiVersion"))) {
      if (!j.contains("kind")) j["kind"] = kind.name;
      if (!j.contains("apiVersion")) j["apiVersion"] = kind.api_version;
      filled = safe_dump(j);
      body = filled;
    }
  }
  auto decoded = api::decode_manifests(body, "request body");
  if (!decoded.is_ok()) return bad_request_error(prefix + decoded.status().message());
  if (decoded->size() != 1) {
    return bad_request_error(prefix + "expected one object, got " +
                             std::to_string(decoded->size()));
  }
  api::DecodedObject& d = (*decoded)[0];
  if (d.kind != kind.kind) {
    return bad_request_error(prefix + "the body holds a " +
                             std::string(api::kind_info(d.kind).name));
  }
  if (strict && !d.warnings.empty()) {
    std::string msg;
    for (const api::DecodeWarning& w : d.warnings) {
      msg += (msg.empty() ? "" : ", ") + std::string("unknown field \"") + w.field + "\"";
    }
    return bad_request_error(prefix + "strict decoding error: " + msg);
  }
  return d.object;
}

std::string event_type_name(WatchEventType t) {
  switch (t) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
  }
  return "ERROR";
}

}  // namespace

ApiHandler::ApiHandler(EventLoop& loop, Store& store, std::string server_address)
    : loop_(loop), store_(store), server_address_(std::move(server_address)) {}

const std::string& ApiHandler::encoded(const api::Object& object) {
  constexpr size_t kMaxEntries = 200000;
  auto it = json_cache_.find(object.get());
  if (it != json_cache_.end()) {
    if (it->second.object.lock() == object) return it->second.json;
    json_cache_.erase(it);
  }
  if (json_cache_.size() >= kMaxEntries) {
    std::erase_if(json_cache_, [](const auto& kv) { return kv.second.object.expired(); });
    if (json_cache_.size() >= kMaxEntries) json_cache_.clear();
  }
  CachedJson& entry = json_cache_[object.get()];
  entry.object = object;
  entry.json = wire_json(*object);
  return entry.json;
}

HttpResponse ApiHandler::error_response(const Status& status, std::string_view resource,
                                        std::string_view name) {
  json st = status_json(status, resource, name);
  return json_response(safe_dump(st), status_code_http(status.code()));
}

HttpResponse ApiHandler::route_error(const Route& r, const Status& status) {
  if (r.kind == nullptr) return error_response(status);
  json st = status_json(qualified(status, *r.kind), r.resource(), r.name);
  if (!r.kind->group.empty() && st.contains("details")) st["details"]["group"] = r.kind->group;
  return json_response(safe_dump(st), status_code_http(status.code()));
}

std::string ApiHandler::error_event(const Status& status) {
  json ev = {{"type", "ERROR"}, {"object", status_json(status, "", "")}};
  return safe_dump(ev) + "\n";
}

HandlerResult ApiHandler::handle(const HttpRequest& req) {
  std::string_view target(req.target);
  size_t qpos = target.find('?');
  std::vector<std::string> seg = split_path(target.substr(0, qpos));
  Route r;
  if (qpos != std::string_view::npos) r.query = parse_query(target.substr(qpos + 1));
  const std::string& m = req.method;

  // Discovery and health.
  if (m == "GET") {
    std::string path;
    for (const std::string& s : seg) path += "/" + s;
    if (path == "/version") return json_response(version_json());
    if (path == "/api") return json_response(api_versions_json(server_address_));
    if (path == "/api/v1") return json_response(api_resource_list_json());
    if (path == "/apis") return json_response(api_group_list_json());
    if (path == "/openapi/v3") return json_response(openapi_v3_index_json());
    if (path == "/openapi/v3/api/v1") return json_response(openapi_v3_core_json());
    // /apis/{group}, /apis/{group}/{version}, /openapi/v3/apis/{group}/{version}:
    // empty when the group (version) is not served, then 404 below.
    if (seg.size() == 2 && seg[0] == "apis") {
      if (std::string doc = api_group_json(seg[1]); !doc.empty()) return json_response(doc);
    }
    if (seg.size() == 3 && seg[0] == "apis") {
      std::string doc = api_resource_list_json(seg[1] + "/" + seg[2]);
      if (!doc.empty()) return json_response(doc);
    }
    if (seg.size() == 5 && seg[0] == "openapi" && seg[1] == "v3" && seg[2] == "apis") {
      std::string doc = openapi_v3_group_json(seg[3] + "/" + seg[4]);
      if (!doc.empty()) return json_response(doc);
    }
    if (path == "/healthz" || path == "/readyz" || path == "/livez") {
      HttpResponse ok;
      ok.content_type = "text/plain; charset=utf-8";
      ok.body = "ok";
      return ok;
    }
  }
  auto not_found = [&] {
    return error_response(Status(StatusCode::kNotFound,
                                 "the server could not find the requested resource"));
  };
  // The core group lives under /api/v1, every other group under
  // /apis/{group}/{version}; a kind answers only under its own group version,
  // as kube-apiserver's (leases under /api/v1 are 404, pods under /apis too).
  std::string group_version;
  size_t i = 0;
  if (seg.size() >= 3 && seg[0] == "api" && seg[1] == "v1") {
    group_version = "v1";
    i = 2;
  } else if (seg.size() >= 4 && seg[0] == "apis") {
    group_version = seg[1] + "/" + seg[2];
    i = 3;
  } else {
    return not_found();
  }
  if (seg[i] == "namespaces" && seg.size() >= i + 3 && seg[i + 2] != "status" &&
      seg[i + 2] != "finalize") {
    r.ns = seg[i + 1];
    r.has_ns = true;
    i += 2;
  }
  r.kind = api::kind_by_resource(seg[i]);
  if (r.kind == nullptr || seg[i] != r.kind->resource ||
      r.kind->api_version != group_version) {
    return not_found();
  }
  if (r.has_ns && !r.kind->namespaced) return not_found();
  if (seg.size() > i + 1) r.name = seg[i + 1];
  if (seg.size() > i + 2) r.subresource = seg[i + 2];
  if (seg.size() > i + 3) return not_found();
  if (!r.subresource.empty()) {
    bool has_status = r.kind->descriptor->FindFieldByName("status") != nullptr;
    bool ok = (r.subresource == "status" && has_status) ||
              (r.subresource == "scale" && r.kind->kind == api::Kind::kReplicationController) ||
              (r.subresource == "log" && r.kind->kind == api::Kind::kPod && m == "GET");
    if (!ok) return not_found();
  }
  r.table = req.accept.find("as=Table") != std::string::npos;
  std::string include = r.q("includeObject");
  if (include == "Object") r.include = IncludeObject::kObject;
  if (include == "None") r.include = IncludeObject::kNone;

  if (r.kind->namespaced && !r.has_ns && !(m == "GET" && r.name.empty())) {
    // Namespaced objects are addressed inside a namespace; only lists span them.
    return not_found();
  }
  if (m == "GET") {
    if (r.subresource == "log") return pod_log(r);
    if (r.name.empty()) return list(r);
    return get_object(r);
  }
  if (m == "POST" && r.name.empty()) return create(r, req);
  if (m == "PUT" && !r.name.empty()) return replace(r, req);
  if (m == "PATCH" && !r.name.empty()) return patch(r, req);
  if (m == "DELETE" && !r.name.empty() && r.subresource.empty()) return remove(r, req);
  if (m == "DELETE" && r.name.empty()) return remove_collection(r);
  return error_response(Status(StatusCode::kBadRequest,
                               "the server does not allow this method on the requested resource"));
}

HttpResponse ApiHandler::object_response(const Route& r, const api::Object& obj, int status) {
  if (r.subresource == "scale") {
    return json_response(safe_dump(scale_json(*api::as<api::ReplicationController>(obj))), status);
  }
  if (r.table) {
    json t = make_table(r.kind->kind, {obj}, loop_.now(), r.include, true);
    t["metadata"]["resourceVersion"] = api::meta_of(*obj).resource_version();
    return json_response(safe_dump(t), status);
  }
  return json_response(encoded(obj), status);
}

HttpResponse ApiHandler::store_error(const Route& r, const Status& s, const api::Object& attempted,
                                     const api::Object& old) {
  if (s.code() != StatusCode::kInvalid || attempted == nullptr) {
    return route_error(r, s);
  }
  // Kubernetes' 422: details name the kind and carry one cause per field.
  std::vector<api::FieldError> errors =
      old ? api::validate_update(*old, *attempted) : api::validate(*attempted);
  json st = status_json(qualified(s, *r.kind), "", "");
  json details = {{"name", api::meta_of(*attempted).name()}, {"kind", r.kind->name}};
  if (!r.kind->group.empty()) details["group"] = r.kind->group;
  json causes = json::array();
  for (const api::FieldError& e : errors) {
    std::string msg = e.to_string();
    std::string body = msg.substr(std::min(msg.size(), e.field.size() + 2));
    causes.push_back({{"reason", cause_reason(e.type)}, {"message", body}, {"field", e.field}});
  }
  if (causes.empty()) {
    causes.push_back({{"reason", "FieldValueInvalid"}, {"message", s.message()}, {"field", ""}});
  }
  details["causes"] = causes;
  st["details"] = details;
  return json_response(safe_dump(st), 422);
}

HttpResponse ApiHandler::get_object(const Route& r) {
  auto obj = store_.get(r.kind->kind, r.ns, r.name);
  if (!obj.is_ok()) return route_error(r, obj.status());
  return object_response(r, *obj, 200);
}

HandlerResult ApiHandler::pod_log(const Route& r) {
  auto obj = store_.get(api::Kind::kPod, r.ns, r.name);
  if (!obj.is_ok()) return route_error(r, obj.status());
  const auto& pod = *api::as<api::Pod>(*obj);
  LogRequest lr;
  lr.ns = r.ns;
  lr.pod = r.name;
  lr.node = pod.spec().node_name();
  lr.container = r.q("container");
  // Kubernetes' wording for each refusal (pkg/registry/core/pod/strategy.go).
  if (lr.container.empty()) {
    if (pod.spec().containers_size() == 1) {
      lr.container = pod.spec().containers(0).name();
    } else {
      std::string names;
      for (const auto& c : pod.spec().containers()) names += (names.empty() ? "" : " ") + c.name();
      return error_response(bad_request_error("a container name must be specified for pod " +
                                              r.name + ", choose one of: [" + names + "]"));
    }
  }
  bool known = false;
  for (const auto& c : pod.spec().containers()) known = known || c.name() == lr.container;
  if (!known) {
    return error_response(
        bad_request_error("container " + lr.container + " is not valid for pod " + r.name));
  }
  const api::ContainerStatus* status = nullptr;
  for (const auto& cs : pod.status().container_statuses()) {
    if (cs.name() == lr.container) status = &cs;
  }
  const std::string previous = r.q("previous");
  if (query_true(previous)) {
    // The runtime removes a container when the agent replaces it.
    return error_response(bad_request_error("previous terminated container \"" + lr.container +
                                            "\" in pod \"" + r.name + "\" not found"));
  }
  if (status == nullptr || status->container_id().empty()) {
    std::string reason = "ContainerCreating";
    if (status != nullptr && !status->state().waiting().reason().empty()) {
      reason = status->state().waiting().reason();
    }
    return error_response(bad_request_error("container \"" + lr.container + "\" in pod \"" +
                                            r.name + "\" is waiting to start: " + reason));
  }
  lr.container_id = status->container_id();
  if (auto scheme = lr.container_id.find("://"); scheme != std::string::npos) {
    lr.container_id = lr.container_id.substr(scheme + 3);
  }
  const std::string follow = r.q("follow");
  lr.follow = query_true(follow);
  if (!r.q("tailLines").empty()) {
    auto t = parse_int(r.q("tailLines"), "tailLines");
    if (!t.is_ok()) return error_response(t.status());
    lr.tail_lines = std::max<int64_t>(*t, 0);
  }
  if (!r.q("limitBytes").empty()) {
    auto l = parse_int(r.q("limitBytes"), "limitBytes");
    if (!l.is_ok()) return error_response(l.status());
    if (*l <= 0) return error_response(bad_request_error("limitBytes must be a positive integer"));
    lr.limit_bytes = *l;
  }
  return lr;
}

HandlerResult ApiHandler::list(const Route& r) {
  std::string label_text = r.q("labelSelector");
  auto labels = api::LabelSelector::parse(label_text);
  if (!labels.is_ok()) return error_response(labels.status());
  std::string field_text;
  std::vector<InvolvedRequirement> involved;
  Status split = split_field_selector(r.q("fieldSelector"), r.kind->kind, &field_text, &involved);
  if (!split.is_ok()) return error_response(split);
  auto fields = api::FieldSelector::parse(field_text);
  if (!fields.is_ok()) return error_response(fields.status());
  auto filter = involved_filter(std::move(involved));

  std::string watch = r.q("watch");
  if (query_true(watch)) {
    WatchRequest w;
    w.kind = r.kind->kind;
    w.options.ns = r.ns;
    w.options.labels = *labels;
    w.options.fields = *fields;
    std::string rv = r.q("resourceVersion");
    if (rv.empty() || rv == "0") {
      w.options.send_initial_events = true;
    } else {
      auto v = parse_int(rv, "resourceVersion");
      if (!v.is_ok()) return error_response(v.status());
      w.options.resource_version = *v;
    }
    if (r.q("sendInitialEvents") == "false") w.options.send_initial_events = false;
    w.extra_filter = std::move(filter);
    w.table = r.table;
    w.include = r.include;
    if (!r.q("timeoutSeconds").empty()) {
      auto t = parse_int(r.q("timeoutSeconds"), "timeoutSeconds");
      if (!t.is_ok()) return error_response(t.status());
      w.timeout = seconds(*t);
    }
    return w;
  }

  ListOptions opts;
  opts.ns = r.ns;
  opts.labels = *labels;
  opts.fields = *fields;
  opts.continue_token = r.q("continue");
  if (!r.q("limit").empty()) {
    auto l = parse_int(r.q("limit"), "limit");
    if (!l.is_ok()) return error_response(l.status());
    opts.limit = filter ? 0 : *l;
  }
  auto result = store_.list(r.kind->kind, opts);
  if (!result.is_ok()) return error_response(result.status());
  if (filter) {
    std::erase_if(result->items, [&](const api::Object& o) { return !filter(*o); });
  }
  json meta = {{"resourceVersion", std::to_string(result->resource_version)}};
  if (!result->continue_token.empty()) {
    meta["continue"] = result->continue_token;
    meta["remainingItemCount"] = result->remaining;
  }
  if (r.table) {
    json t = make_table(r.kind->kind, result->items, loop_.now(), r.include, true);
    t["metadata"] = meta;
    return json_response(safe_dump(t));
  }
  std::string body = "{\"kind\":\"" + std::string(r.kind->list_kind) + "\",\"apiVersion\":\"" +
                     std::string(r.kind->api_version) + "\",\"metadata\":" + safe_dump(meta) +
                     ",\"items\":[";
  bool first = true;
  for (const api::Object& o : result->items) {
    if (!first) body += ',';
    first = false;
    body += encoded(o);
  }
  body += "]}";
  return json_response(std::move(body));
}

HttpResponse ApiHandler::create(const Route& r, const HttpRequest& req) {
  if (!r.subresource.empty()) return error_response(bad_request_error("cannot create a " + r.subresource));
  bool strict = r.q("fieldValidation") == "Strict";
  auto body = decode_body(req.body, *r.kind, strict);
  if (!body.is_ok()) return error_response(body.status());
  pb::Message& obj = **body;
  api::ObjectMeta* meta = api::mutable_meta_of(obj);
  if (r.kind->namespaced) {
    if (meta->namespace_().empty()) meta->set_namespace_(r.ns);
    if (meta->namespace_() != r.ns) {
      return error_response(bad_request_error(
          "the namespace of the provided object does not match the namespace sent on the request"));
    }
  }
  if (auto* pod = dynamic_cast<api::Pod*>(&obj)) {
    // Kubernetes' pod strategy on create: the status is the server's, and a
    // new pod starts Pending (typed clients read status.phase at once).
    pod->clear_status();
    pod->mutable_status()->set_phase("Pending");
  }
  api::Object attempted = *body;
  if (r.q("dryRun") == "All") {
    std::vector<api::FieldError> errors = api::validate(obj);
    if (!errors.empty()) {
      return store_error(r, api::invalid_status(obj, errors), attempted, nullptr);
    }
    return object_response(r, attempted, 201);
  }
  auto created = store_.create(attempted);
  if (!created.is_ok()) {
    Route named = r;
    named.name = meta->name();
    return store_error(named, created.status(), attempted, nullptr);
  }
  return object_response(r, *created, 201);
}

HttpResponse ApiHandler::replace(const Route& r, const HttpRequest& req) {
  auto current = store_.get(r.kind->kind, r.ns, r.name);
  if (!current.is_ok()) return route_error(r, current.status());
  std::unique_ptr<pb::Message> updated;
  if (r.subresource == "scale") {
    auto body = yaml_to_json(req.body);
    if (!body.is_ok()) return error_response(body.status());
    if (!body->is_object()) {  // found by http_fuzz: value() on null threw
      return error_response(bad_request_error("Scale: the body must be an object"));
    }
    const json& spec = (*body).value("spec", json::object());
    if (!spec.contains("replicas") || !spec["replicas"].is_number_integer()) {
      return error_response(bad_request_error("Scale: spec.replicas must be an integer"));
    }
    auto rc = clone(**current);
    static_cast<api::ReplicationController*>(rc.get())
        ->mutable_spec()
        ->set_replicas(spec["replicas"].get<int32_t>());
    std::string rv = (*body).value("metadata", json::object()).value("resourceVersion", "");
    api::mutable_meta_of(*rc)->set_resource_version(rv);
    updated = std::move(rc);
  } else {
    auto body = decode_body(req.body, *r.kind, r.q("fieldValidation") == "Strict");
    if (!body.is_ok()) return error_response(body.status());
    api::ObjectMeta* meta = api::mutable_meta_of(**body);
    if (r.kind->namespaced && meta->namespace_().empty()) meta->set_namespace_(r.ns);
    if (meta->name() != r.name) {
      return error_response(bad_request_error("the name of the object (" + meta->name() +
                                              ") does not match the name on the URL (" + r.name +
                                              ")"));
    }
    if (r.kind->namespaced && meta->namespace_() != r.ns) {
      return error_response(bad_request_error(
          "the namespace of the provided object does not match the namespace sent on the request"));
    }
    if (r.subresource == "status") {
      updated = clone(**current);
      copy_field(**body, updated.get(), "status");
      api::mutable_meta_of(*updated)->set_resource_version(meta->resource_version());
    } else {
      updated = clone(**body);
      if (has_field(*updated, "status")) copy_field(**current, updated.get(), "status");
    }
  }
  api::Object attempted(std::move(updated));
  auto stored = store_.update(attempted);
  if (!stored.is_ok()) return store_error(r, stored.status(), attempted, *current);
  return object_response(r, *stored, 200);
}

HttpResponse ApiHandler::patch(const Route& r, const HttpRequest& req) {
  std::string type = req.content_type.substr(0, req.content_type.find(';'));
  bool apply = type == "application/apply-patch+yaml";
  StatusOr<json> patch_doc = apply ? yaml_to_json(req.body) : StatusOr<json>(json());
  if (!apply) {
    json parsed = json::parse(req.body, nullptr, false);
    if (parsed.is_discarded()) {
      return error_response(bad_request_error("error decoding patch: invalid JSON"));
    }
    patch_doc = std::move(parsed);
  }
  if (!patch_doc.is_ok()) return error_response(patch_doc.status());
  bool strict = r.q("fieldValidation") == "Strict";
  for (int attempt = 0;; ++attempt) {
    auto current = store_.get(r.kind->kind, r.ns, r.name);
    if (!current.is_ok()) {
      if (apply && current.status().code() == StatusCode::kNotFound && r.subresource.empty()) {
        HttpRequest create_req = req;
        create_req.body = safe_dump(*patch_doc);
        HttpResponse resp = create(r, create_req);
        return resp;
      }
      return route_error(r, current.status());
    }
    json doc = r.subresource == "scale"
                   ? scale_json(*api::as<api::ReplicationController>(*current))
                   : json::parse(api::encode_json(**current));
    StatusOr<json> patched = json();
    if (type == "application/merge-patch+json" || type == "application/json") {
      patched = merge_patch(doc, *patch_doc);
    } else if (type == "application/strategic-merge-patch+json" || apply) {
      if (r.subresource == "scale") {
        patched = merge_patch(doc, *patch_doc);
      } else {
        patched = strategic_merge_patch(doc, *patch_doc);
      }
    } else if (type == "application/json-patch+json") {
      patched = json_patch(doc, *patch_doc);
    } else {
      // Kubernetes: 415 UnsupportedMediaType, with the same code in the Status
      // (found by tests/fuzz/http_fuzz.cc: the body said 400).
      json st = status_json(
          Status(StatusCode::kBadRequest, "the body of the request was in an unknown format - "
                                          "accepted media types include: application/json-patch+json, "
                                          "application/merge-patch+json, "
                                          "application/apply-patch+yaml, "
                                          "application/strategic-merge-patch+json"),
          "", "");
      st["code"] = 415;
      st["reason"] = "UnsupportedMediaType";
      return json_response(safe_dump(st), 415);
    }
    if (!patched.is_ok()) return route_error(r, patched.status());
    std::string pinned_rv;
    if (patched->contains("metadata") && (*patched)["metadata"].is_object()) {
      pinned_rv = (*patched)["metadata"].value("resourceVersion", "");
    }
    // A patch that names a resourceVersion is a precondition; otherwise the
    // patch applies to whatever is current (retried on a concurrent write).
    bool rv_pinned = patch_doc->is_object() && patch_doc->contains("metadata") &&
                     (*patch_doc)["metadata"].is_object() &&
                     (*patch_doc)["metadata"].contains("resourceVersion");
    std::unique_ptr<pb::Message> updated;
    if (r.subresource == "scale") {
      const json& spec = patched->value("spec", json::object());
      if (!spec.contains("replicas") || !spec["replicas"].is_number_integer()) {
        return error_response(bad_request_error("Scale: spec.replicas must be an integer"));
      }
      updated = clone(**current);
      static_cast<api::ReplicationController*>(updated.get())
          ->mutable_spec()
          ->set_replicas(spec["replicas"].get<int32_t>());
    } else {
      auto decoded = decode_body(safe_dump(*patched), *r.kind, strict);
      if (!decoded.is_ok()) return error_response(decoded.status());
      if (r.subresource == "status") {
        updated = clone(**current);
        copy_field(**decoded, updated.get(), "status");
      } else {
        updated = clone(**decoded);
        if (has_field(*updated, "status")) copy_field(**current, updated.get(), "status");
      }
    }
    api::mutable_meta_of(*updated)->set_resource_version(
        rv_pinned ? pinned_rv : api::meta_of(**current).resource_version());
    api::Object attempted(std::move(updated));
    if (r.q("dryRun") == "All") return object_response(r, attempted, 200);
    auto stored = store_.update(attempted);
    if (stored.is_ok()) return object_response(r, *stored, 200);
    if (stored.status().code() == StatusCode::kConflict && !rv_pinned &&
        attempt < kPatchRetries) {
      continue;
    }
    return store_error(r, stored.status(), attempted, *current);
  }
}

HttpResponse ApiHandler::remove(const Route& r, const HttpRequest& req) {
  DeleteOptions opts;
  std::optional<Duration> grace;
  if (!req.body.empty()) {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return error_response(bad_request_error("invalid DeleteOptions in the request body"));
    }
    if (body.contains("preconditions") && body["preconditions"].is_object()) {
      opts.uid = body["preconditions"].value("uid", "");
      opts.resource_version = body["preconditions"].value("resourceVersion", "");
    }
    if (body.contains("gracePeriodSeconds") && body["gracePeriodSeconds"].is_number_integer()) {
      grace = seconds(body["gracePeriodSeconds"].get<int64_t>());
    }
  }
  if (!r.q("gracePeriodSeconds").empty()) {
    auto g = parse_int(r.q("gracePeriodSeconds"), "gracePeriodSeconds");
    if (!g.is_ok()) return error_response(g.status());
    grace = seconds(*g);
  }
  if (r.kind->kind == api::Kind::kPod && opts.uid.empty() && opts.resource_version.empty()) {
    auto deleted = ctrl::delete_pod(store_, r.ns, r.name, loop_.now(), grace);
    if (!deleted.is_ok()) return route_error(r, deleted.status());
    return object_response(r, deleted->pod, 200);
  }
  if (r.kind->kind == api::Kind::kNamespace) {
    auto ns = store_.get(r.kind->kind, "", r.name);
    if (!ns.is_ok()) return route_error(r, ns.status());
    // No namespace controller: the namespace's objects go with it at once.
    for (const api::KindInfo& k : api::all_kinds()) {
      if (!k.namespaced) continue;
      ListOptions lo;
      lo.ns = r.name;
      auto items = store_.list(k.kind, lo);
      if (!items.is_ok()) continue;
      for (const api::Object& o : items->items) {
        (void)store_.remove(k.kind, r.name, api::meta_of(*o).name());
      }
    }
  }
  auto removed = store_.remove(r.kind->kind, r.ns, r.name, opts);
  if (!removed.is_ok()) return route_error(r, removed.status());
  return object_response(r, *removed, 200);
}

HttpResponse ApiHandler::remove_collection(const Route& r) {
  ListOptions opts;
  opts.ns = r.ns;
  auto labels = api::LabelSelector::parse(r.q("labelSelector"));
  auto fields = api::FieldSelector::parse(r.q("fieldSelector"));
  if (!labels.is_ok()) return error_response(labels.status());
  if (!fields.is_ok()) return error_response(fields.status());
  opts.labels = *labels;
  opts.fields = *fields;
  auto items = store_.list(r.kind->kind, opts);
  if (!items.is_ok()) return error_response(items.status());
  for (const api::Object& o : items->items) {
    const api::ObjectMeta& m = api::meta_of(*o);
    (void)store_.remove(r.kind->kind, m.namespace_(), m.name());
  }
  json st = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
             {"status", "Success"}};
  return json_response(safe_dump(st));
}

StatusOr<WatchHandle> ApiHandler::open_watch(const WatchRequest& w,
                                             std::function<void(std::string)> emit) {
  auto first = std::make_shared<bool>(true);
  EventLoop* loop = &loop_;
  return store_.watch(
      w.kind, w.options,
      [this, w, emit = std::move(emit), first, loop](const WatchEvent& ev) {
        if (w.extra_filter && !w.extra_filter(*ev.object)) return;
        std::string line = "{\"type\":\"" + event_type_name(ev.type) + "\",\"object\":";
        if (w.table) {
          json t = make_table(w.kind, {ev.object}, loop->now(), w.include, *first);
          t["metadata"]["resourceVersion"] = std::to_string(ev.resource_version);
          line += safe_dump(t);
        } else {
          line += encoded(ev.object);
        }
        *first = false;
        line += "}\n";
        emit(std::move(line));
      });
}

}  // namespace flotilla::apiserver
