// ApiClient: a small client for Flotilla's Kubernetes-compatible REST API
// (backends/apiserver) over plain HTTP/1.1 on TCP, with Boost.Beast. Every call
// is asynchronous on an Asio io_context whose handlers run on the EventLoop's
// thread (live::AsioEventLoop's own io_context), so callbacks come back on the
// loop thread, never re-entrantly. Errors are Status values: transport errors
// are kUnavailable / kDeadlineExceeded, API errors are the metav1.Status the
// server sent, mapped back to our codes (404 kNotFound, 409 kConflict or
// kAlreadyExists, 410 kGone, 422 kInvalid, ...).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/ports/event_loop.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace boost::asio {
class io_context;
}

namespace flotilla::apiclient {

struct ApiClientOptions {
  // "http://HOST:PORT" (an IPv6 host in brackets). https is refused for now:
  // the server has no TLS yet.
  std::string server;
  // Non-empty: every request carries "Authorization: Bearer <token>".
  std::string token;
  // Bounds resolve + connect + write + read of one request (not of streams).
  Duration request_timeout = seconds(10);
  // Bounds resolve + connect + reading the headers of a stream.
  Duration stream_open_timeout = seconds(10);
};

struct ApiReply {
  unsigned status = 0;  // HTTP status
  std::string body;
};

// An open (or opening) stream. Destroying it closes the connection; no
// callback of the stream runs afterwards.
class ApiStream {
 public:
  virtual ~ApiStream() = default;
};

class ApiClient {
 public:
  // Errors: kInvalid for a URL that is not http://HOST:PORT (https names the
  // missing TLS support). `io` must outlive the client.
  static StatusOr<std::unique_ptr<ApiClient>> create(boost::asio::io_context& io,
                                                     ApiClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  const ApiClientOptions& options() const { return options_; }
  const std::string& host() const { return host_; }
  const std::string& port() const { return port_; }

  // One request on its own connection. `done` gets the reply of any HTTP
  // status (see call() for errors as Status), or a transport error. Requests
  // in flight when the client is destroyed never call back.
  void request(std::string method, std::string target, std::string body,
               Callback<StatusOr<ApiReply>> done);

  // request() with a non-2xx reply turned into its Status (see
  // status_from_reply); a 2xx reply's body is handed over.
  void call(std::string method, std::string target, std::string body,
            Callback<StatusOr<std::string>> done);

  // A streaming GET (watch=true): `on_line` gets each newline-terminated line
  // of the body as it arrives (without the "\n"); `on_end` runs once, with OK
  // when the server ended the response, the API error when it answered
  // non-2xx, or the transport error. Nothing runs after on_end.
  std::unique_ptr<ApiStream> stream(std::string target, std::function<void(std::string)> on_line,
                                    std::function<void(Status)> on_end);

  struct Shared;  // what operations in flight share (opaque)

 private:
  ApiClient(boost::asio::io_context& io, ApiClientOptions options, std::string host,
            std::string port);
  boost::asio::io_context& io_;
  ApiClientOptions options_;
  std::string host_;
  std::string port_;
  std::shared_ptr<Shared> shared_;  // ops hold a weak_ptr: gone means "drop the callback"
};

// The Status an API error reply stands for: the metav1.Status body's reason
// and message when there is one ("NotFound", "Conflict", "AlreadyExists",
// "Gone"/"Expired", "Invalid", ...), else the HTTP status alone.
Status status_from_reply(unsigned http_status, std::string_view body);

// Percent-encodes a query parameter value.
std::string query_escape(std::string_view s);

}  // namespace flotilla::apiclient
