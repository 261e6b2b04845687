#include "backends/apiclient/api_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <limits>
#include <utility>

namespace flotilla::apiclient {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct ApiClient::Shared {
  asio::io_context& io;
  ApiClientOptions options;
  std::string host;
  std::string port;
};

namespace {

std::chrono::nanoseconds to_chrono(Duration d) { return std::chrono::nanoseconds(to_nanos(d)); }

Status transport_error(const std::string& what, const ApiClient::Shared& s,
                       const beast::error_code& ec) {
  if (ec == beast::error::timeout) {
    return Status(StatusCode::kDeadlineExceeded,
                  what + " " + s.options.server + ": timed out");
  }
  return unavailable_error(what + " " + s.options.server + ": " + ec.message());
}

http::request<http::string_body> make_request(const ApiClient::Shared& s, http::verb verb,
                                              const std::string& target, std::string body) {
  http::request<http::string_body> req{verb, target, 11};
  std::string host_header = s.host.find(':') != std::string::npos ? "[" + s.host + "]" : s.host;
  req.set(http::field::host, host_header + ":" + s.port);
  req.set(http::field::user_agent, "flotilla-agent/0.1");
  req.set(http::field::accept, "application/json");
  if (!s.options.token.empty()) {
    req.set(http::field::authorization, "Bearer " + s.options.token);
  }
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

// One request on its own connection ("Connection: close").
class RequestOp : public std::enable_shared_from_this<RequestOp> {
 public:
  RequestOp(std::shared_ptr<ApiClient::Shared> shared, http::verb verb, std::string target,
            std::string body, Callback<StatusOr<ApiReply>> done)
      : shared_(shared),
        resolver_(shared->io),
        stream_(shared->io),
        req_(make_request(*shared, verb, target, std::move(body))),
        done_(std::move(done)) {
    req_.keep_alive(false);
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  void start() {
    auto self = shared_from_this();
    auto s = shared_.lock();
    if (!s) return;
    resolver_.async_resolve(s->host, s->port,
                            [self](beast::error_code ec, tcp::resolver::results_type results) {
                              self->on_resolve(ec, std::move(results));
                            });
  }

 private:
  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) return fail("cannot resolve", ec);
    auto s = shared_.lock();
    if (!s) return;
    stream_.expires_after(to_chrono(s->options.request_timeout));
    auto self = shared_from_this();
    stream_.async_connect(results, [self](beast::error_code ec2, const tcp::endpoint&) {
      if (ec2) return self->fail("cannot connect to", ec2);
      http::async_write(self->stream_, self->req_, [self](beast::error_code ec3, size_t) {
        if (ec3) return self->fail("cannot send to", ec3);
        http::async_read(self->stream_, self->buf_, self->parser_,
                         [self](beast::error_code ec4, size_t) {
                           if (ec4) return self->fail("no reply from", ec4);
                           ApiReply reply;
                           reply.status = self->parser_.get().result_int();
                           reply.body = std::move(self->parser_.get().body());
                           beast::error_code ignored;
                           self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
                           self->finish(std::move(reply));
                         });
      });
    });
  }

  void fail(const std::string& what, beast::error_code ec) {
    auto s = shared_.lock();
    if (!s) return;
    finish(transport_error(what, *s, ec));
  }

  void finish(StatusOr<ApiReply> r) {
    if (shared_.expired() || !done_) return;
    auto done = std::move(done_);
    done_ = nullptr;
    done(std::move(r));
  }

  std::weak_ptr<ApiClient::Shared> shared_;
  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response_parser<http::string_body> parser_;
  Callback<StatusOr<ApiReply>> done_;
};

// A streaming GET whose body is delivered line by line.
class StreamOp : public std::enable_shared_from_this<StreamOp> {
 public:
  StreamOp(std::shared_ptr<ApiClient::Shared> shared, std::string target,
           std::function<void(std::string)> on_line, std::function<void(Status)> on_end)
      : shared_(shared),
        resolver_(shared->io),
        stream_(shared->io),
        req_(make_request(*shared, http::verb::get, target, {})),
        on_line_(std::move(on_line)),
        on_end_(std::move(on_end)) {
    parser_.body_limit(std::numeric_limits<std::uint64_t>::max());
  }

  void start() {
    auto self = shared_from_this();
    auto s = shared_.lock();
    if (!s) return;
    resolver_.async_resolve(s->host, s->port,
                            [self](beast::error_code ec, tcp::resolver::results_type results) {
                              if (self->closed_) return;
                              if (ec) return self->fail("cannot resolve", ec);
                              self->connect(std::move(results));
                            });
  }

  void close() {
    closed_ = true;
    beast::error_code ignored;
    resolver_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void connect(tcp::resolver::results_type results) {
    auto s = shared_.lock();
    if (!s) return;
    stream_.expires_after(to_chrono(s->options.stream_open_timeout));
    auto self = shared_from_this();
    stream_.async_connect(results, [self](beast::error_code ec, const tcp::endpoint&) {
      if (self->closed_) return;
      if (ec) return self->fail("cannot connect to", ec);
      beast::error_code ignored;
      self->stream_.socket().set_option(asio::socket_base::keep_alive(true), ignored);
      http::async_write(self->stream_, self->req_, [self](beast::error_code ec2, size_t) {
        if (self->closed_) return;
        if (ec2) return self->fail("cannot send to", ec2);
        http::async_read_header(self->stream_, self->buf_, self->parser_,
                                [self](beast::error_code ec3, size_t) {
                                  if (self->closed_) return;
                                  if (ec3) return self->fail("no reply from", ec3);
                                  self->stream_.expires_never();
                                  self->read_more();
                                });
      });
    });
  }

  void read_more() {
    parser_.get().body().data = chunk_;
    parser_.get().body().size = sizeof chunk_;
    auto self = shared_from_this();
    http::async_read_some(stream_, buf_, parser_, [self](beast::error_code ec, size_t) {
      if (self->closed_) return;
      if (ec == http::error::need_buffer) ec = {};
      size_t got = sizeof self->chunk_ - self->parser_.get().body().size;
      self->consume(std::string_view(self->chunk_, got));
      if (self->closed_) return;  // a line handler closed the stream
      if (ec) return self->fail("stream from", ec);
      if (self->parser_.is_done()) return self->end();
      self->read_more();
    });
  }

  bool ok_status() const {
    unsigned st = parser_.get().result_int();
    return st >= 200 && st < 300;
  }

  void consume(std::string_view data) {
    if (!ok_status()) {
      error_body_.append(data);
      return;
    }
    carry_.append(data);
    size_t start = 0;
    for (;;) {
      size_t nl = carry_.find('\n', start);
      if (nl == std::string::npos) break;
      std::string line = carry_.substr(start, nl - start);
      start = nl + 1;
      if (!line.empty() && on_line_) {
        on_line_(std::move(line));
        if (closed_) return;
      }
    }
    carry_.erase(0, start);
  }

  void end() {
    if (!ok_status()) {
      finish(status_from_reply(parser_.get().result_int(), error_body_));
      return;
    }
    if (!carry_.empty() && on_line_) on_line_(std::move(carry_));
    if (closed_) return;
    finish(Status::ok());
  }

  void fail(const std::string& what, beast::error_code ec) {
    auto s = shared_.lock();
    if (!s) return;
    finish(transport_error(what, *s, ec));
  }

  void finish(Status st) {
    if (closed_ || shared_.expired()) return;
    closed_ = true;
    auto on_end = std::move(on_end_);
    on_line_ = nullptr;
    if (on_end) on_end(std::move(st));
  }

  std::weak_ptr<ApiClient::Shared> shared_;
  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response_parser<http::buffer_body> parser_;
  char chunk_[16384];
  std::string carry_;
  std::string error_body_;
  bool closed_ = false;
  std::function<void(std::string)> on_line_;
  std::function<void(Status)> on_end_;
};

class StreamHandle final : public ApiStream {
 public:
  explicit StreamHandle(std::shared_ptr<StreamOp> op) : op_(std::move(op)) {}
  ~StreamHandle() override { op_->close(); }

 private:
  std::shared_ptr<StreamOp> op_;
};

StatusCode code_from_reason(std::string_view reason, unsigned http_status) {
  if (reason == "NotFound") return StatusCode::kNotFound;
  if (reason == "AlreadyExists") return StatusCode::kAlreadyExists;
  if (reason == "Conflict") return StatusCode::kConflict;
  if (reason == "Gone" || reason == "Expired") return StatusCode::kGone;
  if (reason == "Invalid") return StatusCode::kInvalid;
  if (reason == "BadRequest") return StatusCode::kBadRequest;
  if (reason == "Unauthorized") return StatusCode::kUnauthorized;
  if (reason == "Forbidden") return StatusCode::kForbidden;
  if (reason == "RequestEntityTooLarge") return StatusCode::kTooLarge;
  if (reason == "TooManyRequests") return StatusCode::kTooManyRequests;
  if (reason == "ServiceUnavailable") return StatusCode::kUnavailable;
  if (reason == "Timeout") return StatusCode::kDeadlineExceeded;
  switch (http_status) {
    case 400: return StatusCode::kBadRequest;
    case 401: return StatusCode::kUnauthorized;
    case 403: return StatusCode::kForbidden;
    case 404: return StatusCode::kNotFound;
    case 409: return StatusCode::kConflict;
    case 410: return StatusCode::kGone;
    case 413: return StatusCode::kTooLarge;
    case 422: return StatusCode::kInvalid;
    case 429: return StatusCode::kTooManyRequests;
    case 503: return StatusCode::kUnavailable;
    case 504: return StatusCode::kDeadlineExceeded;
    default: return StatusCode::kInternal;
  }
}

}  // namespace

Status status_from_reply(unsigned http_status, std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  std::string reason;
  std::string message;
  if (j.is_object()) {
    if (j.contains("reason") && j["reason"].is_string()) reason = j["reason"].get<std::string>();
    if (j.contains("message") && j["message"].is_string()) {
      message = j["message"].get<std::string>();
    }
  }
  if (message.empty()) {
    message = "the server answered HTTP " + std::to_string(http_status);
    if (!body.empty() && body.size() < 200) message += ": " + std::string(body);
  }
  return Status(code_from_reason(reason, http_status), std::move(message));
}

std::string query_escape(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

StatusOr<std::unique_ptr<ApiClient>> ApiClient::create(asio::io_context& io,
                                                       ApiClientOptions options) {
  const std::string& url = options.server;
  if (url.rfind("https://", 0) == 0) {
    return invalid_error("--server " + url +
                         ": https is not supported yet (the API server serves plain HTTP on "
                         "loopback); use http://127.0.0.1:PORT, through an SSH tunnel for "
                         "another machine");
  }
  if (url.rfind("http://", 0) != 0) {
    return invalid_error("--server " + url + ": expected http://HOST:PORT");
  }
  std::string rest = url.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) {
    return invalid_error("--server " + url + ": expected http://HOST:PORT with no path");
  }
  std::string host;
  std::string port = "80";
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return invalid_error("--server " + url + ": unclosed [");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return invalid_error("--server " + url + ": bad port");
      port = rest.substr(close + 2);
    }
  } else {
    size_t colon = rest.rfind(':');
    host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (host.empty() || port.empty() ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return invalid_error("--server " + url + ": expected http://HOST:PORT");
  }
  return std::unique_ptr<ApiClient>(new ApiClient(io, std::move(options), host, port));
}

ApiClient::ApiClient(asio::io_context& io, ApiClientOptions options, std::string host,
                     std::string port)
    : io_(io),
      options_(std::move(options)),
      host_(std::move(host)),
      port_(std::move(port)),
      shared_(std::make_shared<Shared>(Shared{io_, options_, host_, port_})) {}

ApiClient::~ApiClient() = default;

void ApiClient::request(std::string method, std::string target, std::string body,
                        Callback<StatusOr<ApiReply>> done) {
  http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    done(bad_request_error("unknown HTTP method " + method));
    return;
  }
  auto op = std::make_shared<RequestOp>(shared_, verb, std::move(target), std::move(body),
                                        std::move(done));
  op->start();
}

void ApiClient::call(std::string method, std::string target, std::string body,
                     Callback<StatusOr<std::string>> done) {
  request(std::move(method), std::move(target), std::move(body),
          [done = std::move(done)](StatusOr<ApiReply> r) {
            if (!r.is_ok()) return done(r.status());
            if (r->status < 200 || r->status >= 300) {
              return done(status_from_reply(r->status, r->body));
            }
            done(std::move(r->body));
          });
}

std::unique_ptr<ApiStream> ApiClient::stream(std::string target,
                                             std::function<void(std::string)> on_line,
                                             std::function<void(Status)> on_end) {
  auto op = std::make_shared<StreamOp>(shared_, std::move(target), std::move(on_line),
                                       std::move(on_end));
  op->start();
  return std::make_unique<StreamHandle>(std::move(op));
}

}  // namespace flotilla::apiclient
