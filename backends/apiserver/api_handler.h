// The REST semantics of the Kubernetes API over a Store, free of any socket: a
// request (method, target, headers, body) becomes a response, or a watch for
// the server to stream. Routing (core/v1 under /api/v1, a kind in a group
// such as coordination.k8s.io/v1 under /apis/{group}/{version}), selectors,
// paging, CRUD with optimistic concurrency, PATCH (merge, strategic, JSON
// patch, server-side apply), the status and scale subresources, Table output
// and metav1.Status errors with Kubernetes' reasons and wording. Loop thread
// only.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>
#include <unordered_map>
#include <variant>

#include "backends/apiserver/tables.h"
#include "core/api/object.h"
#include "core/ports/event_loop.h"
#include "core/ports/store.h"
#include "core/util/status.h"

namespace flotilla::apiserver {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query: "/api/v1/namespaces/default/pods?limit=5"
  std::string content_type;
  std::string accept;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones (Retry-After)
};

// A watch the server streams as newline-delimited JSON events.
struct WatchRequest {
  api::Kind kind = api::Kind::kPod;
  WatchOptions options;
  // Field requirements the store cannot evaluate (an Event's involvedObject.*).
  std::function<bool(const google::protobuf::Message&)> extra_filter;
  bool table = false;  // events carry Tables (kubectl get -w)
  IncludeObject include = IncludeObject::kMetadata;
  Duration timeout{0};  // timeoutSeconds; zero: none
};

// A pods/{name}/log read the server runs against the runtime of the pod's
// node (ApiServerOptions::logs), the pod and container already checked.
struct LogRequest {
  std::string ns;
  std::string pod;
  std::string container;     // the container's name
  std::string node;          // spec.nodeName
  std::string container_id;  // the runtime's id (containerID without "scheme://")
  bool follow = false;
  int64_t tail_lines = -1;   // tailLines; -1: every line
  int64_t limit_bytes = 0;   // limitBytes; 0: no limit
};

using HandlerResult = std::variant<HttpResponse, WatchRequest, LogRequest>;

class ApiHandler {
 public:
  // `server_address` (host:port) is what /api advertises. Both references
  // must outlive the handler.
  ApiHandler(EventLoop& loop, Store& store, std::string server_address);

  HandlerResult handle(const HttpRequest& request);

  // Starts `watch`; each event arrives at `emit` as one line of JSON ending in
  // "\n" ({"type":"ADDED","object":{...}}), through the loop. Errors: kGone
  // for an expired resourceVersion (see expired_event), or the store's error.
  StatusOr<WatchHandle> open_watch(const WatchRequest& watch,
                                   std::function<void(std::string line)> emit);

  // The ERROR event a watch from an expired version gets (code 410, Expired).
  static std::string error_event(const Status& status);
  // A metav1.Status response for an error. `resource` and `name` fill
  // details (kind is the resource, as Kubernetes does for NotFound).
  static HttpResponse error_response(const Status& status, std::string_view resource = "",
                                     std::string_view name = "");

 private:
  struct Route;
  HttpResponse get_object(const Route& r);
  HandlerResult pod_log(const Route& r);
  HandlerResult list(const Route& r);
  HttpResponse create(const Route& r, const HttpRequest& req);
  HttpResponse replace(const Route& r, const HttpRequest& req);
  HttpResponse patch(const Route& r, const HttpRequest& req);
  HttpResponse remove(const Route& r, const HttpRequest& req);
  HttpResponse remove_collection(const Route& r);
  HttpResponse object_response(const Route& r, const api::Object& obj, int status);
  // error_response for the route's kind: a group kind's resource is named
  // with its group in the message and details, as kube-apiserver does.
  HttpResponse route_error(const Route& r, const Status& status);
  HttpResponse store_error(const Route& r, const Status& s, const api::Object& attempted,
                           const api::Object& old);

  // JSON of a stored snapshot, memoised: snapshots are immutable, so lists
  // and watch fan-out encode each object once. Entries whose snapshot is gone
  // are dropped when the cache fills.
  const std::string& encoded(const api::Object& object);

  EventLoop& loop_;
  Store& store_;
  std::string server_address_;
  struct CachedJson {
    std::weak_ptr<const google::protobuf::Message> object;
    std::string json;
  };
  std::unordered_map<const google::protobuf::Message*, CachedJson> json_cache_;
};

}  // namespace flotilla::apiserver
