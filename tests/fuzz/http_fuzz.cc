// Fuzzes the API server's request handling: the input is a raw HTTP/1.1
// request, parsed by Beast's request parser with the server's limits (as
// backends/apiserver/api_server.cc reads a socket) and, when it parses,
// dispatched to the ApiHandler over an in-memory store holding a pod, an RC
// and a Service (validation and namespaces on, as `flotilla serve` runs it),
// on simulated time. Properties: nothing crashes or leaks; every reply has an
// HTTP status in 200..599; every JSON error reply is a metav1.Status whose
// code is the HTTP status; a watch opens or fails with a status, and delivers
// well-formed JSON lines.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <variant>

#include "backends/apiserver/api_handler.h"
#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "core/api/validation.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/simulator.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace flotilla;
namespace http = boost::beast::http;
using nlohmann::json;

constexpr const char* kPod =
    R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app":"web"}},)"
    R"("spec":{"containers":[{"name":"c","image":"busybox"}]}})";
constexpr const char* kRc =
    R"({"apiVersion":"v1","kind":"ReplicationController","metadata":{"name":"web"},)"
    R"("spec":{"replicas":1,"selector":{"app":"web"},"template":{"metadata":{"labels":)"
    R"({"app":"web"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}})";
constexpr const char* kService =
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},)"
    R"("spec":{"selector":{"app":"web"},"ports":[{"port":80}]}})";

void check_response(const apiserver::HttpResponse& r, const apiserver::HttpRequest& req) {
  FUZZ_CHECK(r.status >= 200 && r.status <= 599,
             "status " + std::to_string(r.status) + " for " + req.method + " " + req.target);
  if (r.status >= 400 && r.content_type == "application/json") {
    json st = json::parse(r.body, nullptr, false);
    FUZZ_CHECK(st.is_object() && st.value("kind", "") == "Status",
               "an error reply that is not a Status: " + r.body.substr(0, 200));
    FUZZ_CHECK(st.value("code", 0) == r.status,
               "Status code " + std::to_string(st.value("code", 0)) + " in a " +
                   std::to_string(r.status) + " reply");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const apiserver::ApiServerOptions limits;
  http::request_parser<http::string_body> parser;
  parser.body_limit(limits.max_body_bytes);
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.eager(true);
  boost::system::error_code ec;
  size_t used = 0;
  while (used < size && !parser.is_done()) {
    size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more && n == 0) break;
    if (ec && ec != http::error::need_more) return 0;  // the server closes (or 413/431s)
    used += n;
    if (n == 0) break;
  }
  if (!parser.is_done()) {
    // The connection ends here: Beast's read does put_eof only after some
    // bytes (else end_of_stream, and the server closes).
    if (!parser.got_some()) return 0;
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;  // incomplete: the server waits, then closes
  }
  http::request<http::string_body> req = parser.release();
  if (req.target().size() > limits.max_url_bytes) return 0;  // 414 before any handling

  sim::Simulator loop;
  apiserver::SplitMix64Stream random(7);
  store::StoreOptions so;
  so.enforce_namespaces = true;
  so.validator = [](const google::protobuf::Message& obj, const google::protobuf::Message* old) {
    return api::invalid_status(obj, old ? api::validate_update(*old, obj) : api::validate(obj));
  };
  store::InMemoryStore store(loop, random, so);
  api::Namespace ns;
  ns.mutable_metadata()->set_name("default");
  ns.mutable_status()->set_phase("Active");
  FUZZ_CHECK(store.create(api::share(ns)).is_ok(), "namespace");
  apiserver::ApiHandler handler(loop, store, "127.0.0.1:6443");
  for (const auto& [path, body] :
       {std::pair{"/api/v1/namespaces/default/pods", kPod},
        std::pair{"/api/v1/namespaces/default/replicationcontrollers", kRc},
        std::pair{"/api/v1/namespaces/default/services", kService}}) {
    apiserver::HttpRequest seed{"POST", path, "application/json", "", body};
    auto r = handler.handle(seed);
    FUZZ_CHECK(std::holds_alternative<apiserver::HttpResponse>(r) &&
                   std::get<apiserver::HttpResponse>(r).status == 201,
               std::string("seeding ") + path);
  }

  apiserver::HttpRequest r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  r.content_type = std::string(req[http::field::content_type]);
  r.accept = std::string(req[http::field::accept]);
  r.body = std::move(req.body());
  apiserver::HandlerResult result = handler.handle(r);
  if (auto* resp = std::get_if<apiserver::HttpResponse>(&result)) {
    check_response(*resp, r);
  } else if (auto* w = std::get_if<apiserver::WatchRequest>(&result)) {
    std::string lines;
    auto handle = handler.open_watch(*w, [&lines](std::string line) { lines += line; });
    if (handle.is_ok()) {
      // A change for the watch to report, then the events through the loop.
      api::Pod pod;
      pod.mutable_metadata()->set_name("q");
      pod.mutable_metadata()->set_namespace_("default");
      pod.mutable_spec()->add_containers()->set_name("c");
      pod.mutable_spec()->mutable_containers(0)->set_image("busybox");
      (void)store.create(api::share(pod));
      (void)store.remove(api::Kind::kPod, "default", "p");
      loop.run_for(std::chrono::seconds(1));
      size_t start = 0;
      while (start < lines.size()) {
        size_t nl = lines.find('\n', start);
        FUZZ_CHECK(nl != std::string::npos, "a watch line without a newline");
        json ev = json::parse(lines.substr(start, nl - start), nullptr, false);
        FUZZ_CHECK(ev.is_object() && ev.contains("type"),
                   "a watch line that is not an event: " + lines.substr(start, 200));
        start = nl + 1;
      }
    } else {
      FUZZ_CHECK(!handle.status().message().empty(), "a watch error without a message");
    }
  } else {
    const auto& log = std::get<apiserver::LogRequest>(result);
    FUZZ_CHECK(!log.pod.empty(), "a log request without a pod");
  }
  return 0;
}
