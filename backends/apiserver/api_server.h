// ApiServer: the Kubernetes core/v1 REST API over HTTP/1.1 (Boost.Beast),
// serving a Store. Sockets run on an Asio io_context whose handlers must run
// on the EventLoop's thread (live::AsioEventLoop's own io_context does), so
// every store call and watch delivery happens on that one thread. Watches
// stream as chunked newline-delimited JSON. Optional bearer-token auth.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/ports/container_runtime.h"
#include "core/ports/event_loop.h"
#include "core/ports/store.h"
#include "core/util/status.h"

namespace boost::asio {
class io_context;
}

namespace flotilla::live {
class AsioEventLoop;
}

namespace flotilla::apiserver {

struct ApiServerOptions {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  uint16_t port = 6443;                // 0: an ephemeral port (see ApiServer::port())
  // Non-empty: every request needs "Authorization: Bearer <token>" (else 401).
  std::string token;
  size_t max_body_bytes = 3 * 1024 * 1024;  // larger bodies get 413
  // The request line and headers together; more gets 431 (Request Header
  // Fields Too Large), or 414 (URI Too Long) when the request line alone does
  // not fit. A request target longer than max_url_bytes gets 414 too.
  size_t max_header_bytes = 64 * 1024;
  size_t max_url_bytes = 32 * 1024;
  // Watch streams open at once, over all connections; one more gets 429 Too
  // Many Requests (a Status body, Retry-After: 1). 0: no cap.
  size_t max_watches = 4096;
  // Set: each reply to a request goes out only when the server calls the
  // argument (on the loop thread). flotilla serve passes the persistent
  // store's when_durable, so no reply reports a write before it is on disk
  // (backends/storage, group commit). Unset: replies go at once.
  std::function<void(std::function<void()> send)> before_reply;
  // pods/{name}/log: opens the output of container `container_id` on `node`
  // (the read_logs of that node's ContainerRuntime), callbacks on the loop.
  // Returns nullptr when no runtime serves `node`. Unset: such requests get
  // 503 (a server over a bare store has no containers).
  std::function<std::unique_ptr<ContainerLogStream>(
      const std::string& node, const std::string& container_id, bool follow,
      std::function<void(std::string)> on_data, Callback<Status> done)>
      logs;
};

class ApiServer {
 public:
  // `io` must run its handlers on `loop`'s thread. All three must outlive
  // the server.
  ApiServer(EventLoop& loop, boost::asio::io_context& io, Store& store,
            ApiServerOptions options);
  // Sockets on the loop's own io_context.
  ApiServer(live::AsioEventLoop& loop, Store& store, ApiServerOptions options);
  // Stops the server (see stop()).
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds and listens. Errors: kInvalid for a bad address, kUnavailable when
  // the port cannot be bound (in use, no permission). Loop thread.
  Status start();
  // Closes the listener and every connection; open watches end. Idempotent.
  // Loop thread.
  void stop();

  // The bound port (after start()).
  uint16_t port() const;
  // "http://127.0.0.1:<port>".
  std::string url() const;
  // Connections open now; watches streaming now.
  size_t connection_count() const;
  size_t watch_count() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_address(const std::string& address);

}  // namespace flotilla::apiserver
