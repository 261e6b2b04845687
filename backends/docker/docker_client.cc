#include "backends/docker/docker_client.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstdio>

namespace flotilla::docker {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using local_socket = asio::local::stream_protocol::socket;

void StreamCancel::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_.store(true);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes the blocked read
}

bool StreamCancel::attach(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_.load()) return false;
  fd_ = fd;
  return true;
}

void StreamCancel::detach() {
  std::lock_guard<std::mutex> lock(mu_);
  fd_ = -1;
}

DockerClient::DockerClient(std::string socket_path) : socket_path_(std::move(socket_path)) {}

Status DockerClient::unreachable(std::string_view what) const {
  return unavailable_error("cannot reach the Docker daemon at " + socket_path_ + ": " +
                           std::string(what) + " (start it with: dockerd &)");
}

namespace {

http::verb verb_of(std::string_view method) {
  http::verb v = http::string_to_verb(boost::beast::string_view(method.data(), method.size()));
  assert(v != http::verb::unknown);
  return v;
}

}  // namespace

StatusOr<HttpReply> DockerClient::request(std::string_view method, std::string_view target,
                                          std::string body, Duration timeout,
                                          std::string_view content_type) const {
  asio::io_context ioc;
  local_socket sock(ioc);
  asio::steady_timer deadline(ioc);
  bool timed_out = false;
  deadline.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
  deadline.async_wait([&](const boost::system::error_code& ec) {
    if (ec) return;
    timed_out = true;
    boost::system::error_code ignored;
    sock.close(ignored);
  });

  http::request<http::string_body> req{verb_of(method), std::string(target), 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "flotilla");
  if (!body.empty()) req.set(http::field::content_type, std::string(content_type));
  req.body() = std::move(body);
  req.prepare_payload();

  boost::beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  boost::system::error_code result;
  const char* stage = "connect";

  sock.async_connect(asio::local::stream_protocol::endpoint(socket_path_),
                     [&](const boost::system::error_code& ec) {
                       if (ec) {
                         result = ec;
                         deadline.cancel();
                         return;
                       }
                       stage = "write";
                       http::async_write(sock, req, [&](const boost::system::error_code& ec2,
                                                        size_t) {
                         if (ec2) {
                           result = ec2;
                           deadline.cancel();
                           return;
                         }
                         stage = "read";
                         http::async_read(sock, buf, parser,
                                          [&](const boost::system::error_code& ec3, size_t) {
                                            result = ec3;
                                            deadline.cancel();
                                          });
                       });
                     });
  ioc.run();

  const std::string what = std::string(method) + " " + std::string(target);
  if (timed_out) {
    return Status(StatusCode::kDeadlineExceeded, "Docker API " + what + " got no reply within " +
                                                     format_duration(timeout));
  }
  if (result) {
    if (std::string_view(stage) == "connect") return unreachable(result.message());
    return unavailable_error("Docker API " + what + ": " + stage + " failed: " + result.message());
  }
  HttpReply reply;
  reply.status = parser.get().result_int();
  reply.body = std::move(parser.get().body());
  return reply;
}

StatusOr<nlohmann::json> DockerClient::call(std::string_view method, std::string_view target,
                                            const nlohmann::json& body, Duration timeout) const {
  auto reply = request(method, target, body.is_null() ? std::string() : body.dump(), timeout);
  if (!reply.is_ok()) return reply.status();
  const unsigned code = reply->status;
  if ((code >= 200 && code < 300) || code == 304) {
    if (reply->body.empty()) return nlohmann::json();
    auto j = nlohmann::json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      // Some endpoints (import/pull progress) answer with a stream of JSON lines.
      return nlohmann::json(reply->body);
    }
    return j;
  }
  std::string message;
  auto j = nlohmann::json::parse(reply->body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("message") && j["message"].is_string()) {
    message = j["message"].get<std::string>();
  } else {
    message = reply->body;
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
      message.pop_back();
    }
  }
  StatusCode sc = StatusCode::kInternal;
  switch (code) {
    case 400: sc = StatusCode::kBadRequest; break;
    case 401: sc = StatusCode::kUnauthorized; break;
    case 403: sc = StatusCode::kForbidden; break;
    case 404: sc = StatusCode::kNotFound; break;
    case 409: sc = StatusCode::kConflict; break;
    default: sc = code >= 500 ? StatusCode::kInternal : StatusCode::kBadRequest; break;
  }
  return Status(sc, "Docker: " + message);
}

Status DockerClient::stream(std::string_view target, const std::function<void()>& on_open,
                            const std::function<void(std::string_view)>& on_data,
                            StreamCancel& cancel) const {
  asio::io_context ioc;
  local_socket sock(ioc);
  boost::system::error_code ec;
  sock.connect(asio::local::stream_protocol::endpoint(socket_path_), ec);
  if (ec) return unreachable(ec.message());
  if (!cancel.attach(sock.native_handle())) return Status::ok();
  struct Detach {
    StreamCancel& c;
    ~Detach() { c.detach(); }
  } detach{cancel};

  http::request<http::empty_body> req{http::verb::get, std::string(target), 11};
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "flotilla");
  http::write(sock, req, ec);
  if (ec) return cancel.cancelled() ? Status::ok() : unreachable(ec.message());

  boost::beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  http::read_header(sock, buf, parser, ec);
  if (ec) return cancel.cancelled() ? Status::ok() : unreachable(ec.message());
  const unsigned code = parser.get().result_int();
  if (code < 200 || code >= 300) {
    std::string body;
    char tmp[4096];
    while (!parser.is_done()) {
      parser.get().body().data = tmp;
      parser.get().body().size = sizeof tmp;
      http::read(sock, buf, parser, ec);
      body.append(tmp, sizeof tmp - parser.get().body().size);
      if (ec && ec != http::error::need_buffer) break;
    }
    auto j = nlohmann::json::parse(body, nullptr, false);
    std::string message = (!j.is_discarded() && j.contains("message")) ? j["message"].dump() : body;
    return Status(code == 404 ? StatusCode::kNotFound : StatusCode::kInternal,
                  "Docker: GET " + std::string(target) + ": " + message);
  }
  if (on_open) on_open();
  char tmp[16384];
  while (!parser.is_done()) {
    parser.get().body().data = tmp;
    parser.get().body().size = sizeof tmp;
    // read_some: hand over what arrived instead of waiting for a full buffer.
    http::read_some(sock, buf, parser, ec);
    const size_t n = sizeof tmp - parser.get().body().size;
    if (n > 0) on_data(std::string_view(tmp, n));
    if (ec == http::error::need_buffer) continue;
    if (ec) {
      if (cancel.cancelled() || ec == http::error::end_of_stream) return Status::ok();
      return unavailable_error("Docker stream " + std::string(target) + " broke: " + ec.message());
    }
  }
  return Status::ok();
}

Status DockerClient::ping() const {
  auto reply = request("GET", "/_ping", {}, std::chrono::seconds(5));
  if (!reply.is_ok()) return reply.status();
  if (reply->status != 200) {
    return unavailable_error("the Docker daemon at " + socket_path_ + " answered /_ping with " +
                             std::to_string(reply->status));
  }
  return Status::ok();
}

std::string url_encode(std::string_view s) {
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string encode_filters(const nlohmann::json& filters) { return url_encode(filters.dump()); }

std::string demux_stream(std::string_view data, std::string& carry) {
  carry.append(data);
  std::string out;
  size_t pos = 0;
  while (true) {
    if (carry.size() - pos < 8) break;
    const auto* h = reinterpret_cast<const unsigned char*>(carry.data() + pos);
    if (h[0] > 2 || h[1] != 0 || h[2] != 0 || h[3] != 0) {
      // Not multiplexed (a TTY stream): pass everything through.
      out.append(carry, pos, std::string::npos);
      carry.clear();
      return out;
    }
    const size_t len = (size_t{h[4]} << 24) | (size_t{h[5]} << 16) | (size_t{h[6]} << 8) | h[7];
    if (carry.size() - pos - 8 < len) break;
    out.append(carry, pos + 8, len);
    pos += 8 + len;
  }
  carry.erase(0, pos);
  return out;
}

}  // namespace flotilla::docker
