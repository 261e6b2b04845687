// DockerClient: a small Docker Engine API client over the daemon's unix socket
// (HTTP/1.1 with Boost.Beast; JSON with nlohmann). Every call blocks the calling
// thread (DockerContainerRuntime calls it from worker threads and posts results
// back to its EventLoop) and is safe to make from several threads at once: each
// request opens its own connection. Errors are Status values carrying the
// daemon's own message.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::docker {

inline constexpr std::string_view kDefaultSocket = "/var/run/docker.sock";

struct HttpReply {
  unsigned status = 0;
  std::string body;
};

// Cancels a streaming call from another thread (the stream then ends with OK).
class StreamCancel {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class DockerClient;
  // Records the socket of the stream; false when already cancelled.
  bool attach(int fd);
  void detach();
  std::mutex mu_;
  int fd_ = -1;
  std::atomic<bool> cancelled_{false};
};

class DockerClient {
 public:
  explicit DockerClient(std::string socket_path = std::string(kDefaultSocket));

  const std::string& socket_path() const { return socket_path_; }

  // One request; the whole reply body is read (chunked or until EOF). `timeout`
  // bounds connect + write + read. Transport errors: kUnavailable (daemon not
  // reachable, with how to start it), kDeadlineExceeded. HTTP errors are NOT
  // turned into a Status here: see call().
  StatusOr<HttpReply> request(std::string_view method, std::string_view target,
                              std::string body = {}, Duration timeout = std::chrono::seconds(60),
                              std::string_view content_type = "application/json") const;

  // request() plus the daemon's error mapped to a Status: 404 kNotFound,
  // 409 kConflict, 400 kBadRequest, 5xx kInternal, with the daemon's "message".
  // A 2xx/304 reply's body is parsed as JSON (null when empty).
  StatusOr<nlohmann::json> call(std::string_view method, std::string_view target,
                                const nlohmann::json& body = nullptr,
                                Duration timeout = std::chrono::seconds(60)) const;

  // A streaming GET (/events, logs with follow): `on_data` gets the body's
  // bytes as they arrive (chunk framing removed) until the daemon ends the
  // response, an error happens, or `cancel` is cancelled (then OK). `on_open`
  // runs once the reply's headers arrived with a 2xx status.
  Status stream(std::string_view target, const std::function<void()>& on_open,
                const std::function<void(std::string_view)>& on_data,
                StreamCancel& cancel) const;

  // GET /_ping: OK when the daemon answers.
  Status ping() const;

 private:
  Status unreachable(std::string_view what) const;
  std::string socket_path_;
};

// Percent-encodes a query parameter value.
std::string url_encode(std::string_view s);
// A Docker "filters" query parameter value: {"label":["a=b",...],...} encoded.
std::string encode_filters(const nlohmann::json& filters);
// Splits a Docker multiplexed stdout/stderr stream (8-byte frame headers) into
// its payload; passes raw (TTY) streams through. Keeps partial frames in `carry`.
std::string demux_stream(std::string_view data, std::string& carry);

}  // namespace flotilla::docker
