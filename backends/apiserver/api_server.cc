#include "backends/apiserver/api_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <deque>
#include <set>
#include <variant>

#include "backends/apiserver/api_handler.h"
#include "backends/apiserver/patch.h"
#include "backends/live/asio_event_loop.h"

namespace flotilla::apiserver {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {
class Session;
}

struct ApiServer::Impl : std::enable_shared_from_this<ApiServer::Impl> {
  Impl(EventLoop& l, net::io_context& i, Store& s, ApiServerOptions o)
      : loop(l), io(i), store(s), options(std::move(o)), acceptor(i) {}

  void accept();

  EventLoop& loop;
  net::io_context& io;
  Store& store;
  ApiServerOptions options;
  tcp::acceptor acceptor;
  std::unique_ptr<ApiHandler> handler;
  std::set<Session*> sessions;
  size_t watches = 0;
  bool stopped = true;
  uint16_t port = 0;
};

namespace {

std::string chunk(std::string_view data) {
  char size[32];
  int n = std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  std::string out(size, static_cast<size_t>(n));
  out.append(data);
  out += "\r\n";
  return out;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<ApiServer::Impl> server, tcp::socket socket)
      : server_(std::move(server)), socket_(std::move(socket)) {}

  void start() {
    server_->sessions.insert(this);
    read_request();
  }

  // Ends the connection; the session goes away once its handlers finish.
  void close() {
    if (closed_) return;
    closed_ = true;
    if (watch_) {
      watch_.reset();
      --server_->watches;
    }
    log_.reset();
    watch_timer_.reset();
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    server_->sessions.erase(this);
  }

 private:
  void read_request() {
    parser_.emplace();
    parser_->body_limit(server_->options.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(server_->options.max_header_bytes, UINT32_MAX)));
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](boost::system::error_code ec, size_t) {
                       self->on_request(ec);
                     });
  }

  void on_request(boost::system::error_code ec) {
    if (closed_ || server_->stopped) return close();
    if (ec == http::error::body_limit) {
      Status s(StatusCode::kTooLarge, "Request entity too large: limit is " +
                                          std::to_string(server_->options.max_body_bytes));
      write_response(ApiHandler::error_response(s), 11, false);
      return;
    }
    if (ec == http::error::header_limit) {
      // The header is still unparsed in the buffer: no line end yet means the
      // request line alone is over the limit.
      auto data = buffer_.cdata();
      std::string_view seen(static_cast<const char*>(data.data()), data.size());
      bool line_too_long = seen.find("\r\n") == std::string_view::npos;
      const std::string limit = std::to_string(server_->options.max_header_bytes);
      write_response(
          line_too_long
              ? limit_response(414, "URI Too Long: the request line is over " + limit + " bytes")
              : limit_response(431, "Request Header Fields Too Large: the request line and "
                                    "headers are over " + limit + " bytes"),
          11, false);
      return;
    }
    if (ec) return close();
    http::request<http::string_body> req = parser_->release();
    if (server_->options.max_url_bytes > 0 &&
        req.target().size() > server_->options.max_url_bytes) {
      write_response(limit_response(414, "URI Too Long: the request target has " +
                                             std::to_string(req.target().size()) +
                                             " bytes, the limit is " +
                                             std::to_string(server_->options.max_url_bytes)),
                     req.version(), false);
      return;
    }
    if (!server_->options.token.empty()) {
      auto auth = req.find(http::field::authorization);
      if (auth == req.end() || auth->value() != "Bearer " + server_->options.token) {
        write_response(
            ApiHandler::error_response(Status(StatusCode::kUnauthorized, "Unauthorized")),
            req.version(), req.keep_alive());
        return;
      }
    }
    HttpRequest r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.content_type = std::string(req[http::field::content_type]);
    r.accept = std::string(req[http::field::accept]);
    r.body = std::move(req.body());
    HandlerResult result = server_->handler->handle(r);
    if (auto* resp = std::get_if<HttpResponse>(&result)) {
      if (server_->options.before_reply) {
        server_->options.before_reply([self = shared_from_this(), resp = std::move(*resp),
                                       version = req.version(), keep_alive = req.keep_alive()] {
          if (!self->closed_) self->write_response(resp, version, keep_alive);
        });
        return;
      }
      write_response(*resp, req.version(), req.keep_alive());
      return;
    }
    if (auto* log = std::get_if<LogRequest>(&result)) {
      start_log(*log, req.version(), req.keep_alive());
      return;
    }
    if (server_->options.max_watches > 0 &&
        server_->watches >= server_->options.max_watches) {
      HttpResponse busy = ApiHandler::error_response(Status(
          StatusCode::kTooManyRequests,
          "Too many requests: " + std::to_string(server_->watches) +
              " watches are open, the server's limit (--max-watches) is " +
              std::to_string(server_->options.max_watches) + "; please try again later"));
      busy.headers.emplace_back("Retry-After", "1");
      write_response(busy, req.version(), req.keep_alive());
      return;
    }
    start_watch(std::get<WatchRequest>(result), req.version());
  }

  // A metav1.Status for an HTTP-level limit (414, 431): no StatusCode of ours
  // maps to these, so the code is set here.
  static HttpResponse limit_response(int code, const std::string& message) {
    HttpResponse r = ApiHandler::error_response(Status(StatusCode::kBadRequest, message));
    nlohmann::json st = nlohmann::json::parse(r.body, nullptr, false);
    if (st.is_object()) {
      st["code"] = code;
      st["reason"] = code == 414 ? "RequestURITooLong" : "RequestHeaderFieldsTooLarge";
      r.body = safe_dump(st);
    }
    r.status = code;
    return r;
  }

  // pods/{name}/log. Without follow: the whole output (tailLines and
  // limitBytes applied) as one text/plain reply. With follow: a chunked
  // stream that ends when the container does or the client goes away; with
  // tailLines, a plain read picks the tail first, then a follow read skips
  // the bytes already accounted for (both start at the container's start).
  void start_log(const LogRequest& lr, unsigned version, bool keep_alive) {
    if (!server_->options.logs) {
      write_response(ApiHandler::error_response(Status(
                         StatusCode::kUnavailable,
                         "this server runs no containers (flotilla serve --backend none)")),
                     version, keep_alive);
      return;
    }
    auto collected = std::make_shared<std::string>();
    const bool plain_first = !lr.follow || lr.tail_lines >= 0;
    auto on_data = [collected](std::string data) { *collected += data; };
    // The pending read keeps the session alive (no socket operation is
    // pending meanwhile); close() drops the read and so the cycle.
    auto on_done = [self = shared_from_this(), collected, lr, version, keep_alive](Status s) {
      if (self->closed_) return;
      if (!s.is_ok()) {
        self->write_response(ApiHandler::error_response(s, "pods", lr.pod), version, keep_alive);
        return;
      }
      std::string text = tail_of(*collected, lr.tail_lines);
      if (lr.limit_bytes > 0 && static_cast<int64_t>(text.size()) > lr.limit_bytes) {
        text.resize(static_cast<size_t>(lr.limit_bytes));
      }
      if (!lr.follow) {
        HttpResponse r;
        r.content_type = "text/plain";
        r.body = std::move(text);
        self->write_response(r, version, keep_alive);
        return;
      }
      self->follow_log(lr, version, collected->size(), std::move(text));
    };
    if (plain_first) {
      log_ = server_->options.logs(lr.node, lr.container_id, false, on_data, on_done);
    } else {
      follow_log(lr, version, 0, "");
      return;
    }
    if (!log_) no_runtime(lr, version, keep_alive);
  }

  void no_runtime(const LogRequest& lr, unsigned version, bool keep_alive) {
    write_response(ApiHandler::error_response(Status(
                       StatusCode::kNotFound, "no container runtime serves node \"" + lr.node +
                                                  "\" of pod \"" + lr.pod + "\"")),
                   version, keep_alive);
  }

  void follow_log(const LogRequest& lr, unsigned version, size_t skip, std::string first) {
    std::string header = (version == 10 ? "HTTP/1.0" : "HTTP/1.1");
    header +=
        " 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-cache, private\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    std::weak_ptr<Session> weak = weak_from_this();
    auto state = std::make_shared<std::pair<size_t, int64_t>>(skip, lr.limit_bytes);
    auto end = [weak] {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      self->send("0\r\n\r\n");
      self->end_after_writes_ = true;
    };
    // Sends what is left of the byte budget; false once it is spent.
    auto emit = [weak, state](std::string data) {
      auto self = weak.lock();
      if (!self || self->closed_) return false;
      if (state->second > 0) {
        if (static_cast<int64_t>(data.size()) >= state->second) {
          data.resize(static_cast<size_t>(state->second));
          state->second = -1;
        } else {
          state->second -= static_cast<int64_t>(data.size());
        }
      } else if (state->second < 0) {
        return false;
      }
      if (!data.empty()) self->send(chunk(data));
      return state->second >= 0;
    };
    auto on_data = [state, emit, end](std::string data) {
      if (state->first >= data.size()) {
        state->first -= data.size();
        return;
      }
      data.erase(0, state->first);
      state->first = 0;
      if (!emit(std::move(data))) end();
    };
    auto on_done = [end](Status) { end(); };
    auto stream = server_->options.logs(lr.node, lr.container_id, true, on_data, on_done);
    if (!stream) return no_runtime(lr, version, false);
    log_ = std::move(stream);
    send(header);
    if (!first.empty() && !emit(std::move(first))) return end();
    // A read completes only when the client goes away.
    socket_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](boost::system::error_code, size_t) {
                              self->close();
                            });
  }

  static std::string tail_of(const std::string& text, int64_t lines) {
    if (lines < 0) return text;
    if (lines == 0) return "";
    size_t pos = text.size();
    if (pos > 0 && text[pos - 1] == '\n') --pos;
    for (int64_t n = 0; n < lines; ++n) {
      size_t nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
      if (nl == std::string::npos) return text;
      pos = nl;
    }
    return text.substr(pos + 1);
  }

  void write_response(const HttpResponse& r, unsigned version, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version);
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-cache, private");
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(keep_alive);
    res->body() = r.body;
    res->prepare_payload();
    http::async_write(socket_, *res,
                      [self = shared_from_this(), res, keep_alive](boost::system::error_code ec,
                                                                   size_t) {
                        if (ec || !keep_alive || self->closed_) return self->drain_and_close();
                        self->read_request();
                      });
  }

  // Half-closes and discards what the client still sends, so the response is
  // not lost to a reset (e.g. after a 413 with the body unread).
  void drain_and_close() {
    if (closed_) return;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    socket_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](boost::system::error_code e, size_t) {
                              if (e || self->server_->stopped) return self->close();
                              self->drain_and_close_more();
                            });
  }
  void drain_and_close_more() {
    socket_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](boost::system::error_code e, size_t) {
                              if (e || self->server_->stopped) return self->close();
                              self->drain_and_close_more();
                            });
  }

  void start_watch(const WatchRequest& w, unsigned version) {
    std::string header = (version == 10 ? "HTTP/1.0" : "HTTP/1.1");
    header +=
        " 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    std::weak_ptr<Session> weak = weak_from_this();
    auto handle = server_->handler->open_watch(w, [weak](std::string line) {
      if (auto self = weak.lock()) self->send(chunk(line));
    });
    if (!handle.is_ok()) {
      if (handle.status().code() == StatusCode::kGone) {
        send(header);
        send(chunk(ApiHandler::error_event(handle.status())));
        send("0\r\n\r\n");
        end_after_writes_ = true;
        return;
      }
      write_response(ApiHandler::error_response(handle.status()), version, false);
      return;
    }
    watch_ = std::move(*handle);
    ++server_->watches;
    send(header);
    if (w.timeout > Duration::zero()) {
      watch_timer_ = server_->loop.run_after(w.timeout, [weak] {
        if (auto self = weak.lock()) {
          self->watch_.reset();
          --self->server_->watches;
          self->send("0\r\n\r\n");
          self->end_after_writes_ = true;
        }
      });
    }
    // A read completes only when the client goes away (or misbehaves).
    socket_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](boost::system::error_code, size_t) {
                              self->close();
                            });
  }

  void send(std::string data) {
    if (closed_) return;
    out_.push_back(std::move(data));
    if (!writing_) write_next();
  }

  void write_next() {
    if (out_.empty() || closed_) {
      writing_ = false;
      if (end_after_writes_ && !closed_) close();
      return;
    }
    writing_ = true;
    net::async_write(socket_, net::buffer(out_.front()),
                     [self = shared_from_this()](boost::system::error_code ec, size_t) {
                       if (ec) return self->close();
                       self->out_.pop_front();
                       self->write_next();
                     });
  }

  std::shared_ptr<ApiServer::Impl> server_;
  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::array<char, 4096> drain_{};
  WatchHandle watch_;
  TimerHandle watch_timer_;
  std::unique_ptr<ContainerLogStream> log_;
  std::deque<std::string> out_;
  bool writing_ = false;
  bool closed_ = false;
  bool end_after_writes_ = false;
};

}  // namespace

void ApiServer::Impl::accept() {
  acceptor.async_accept([self = shared_from_this()](boost::system::error_code ec,
                                                    tcp::socket socket) {
    if (self->stopped) return;
    if (!ec) {
      boost::system::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      std::make_shared<Session>(self, std::move(socket))->start();
    }
    self->accept();
  });
}

ApiServer::ApiServer(EventLoop& loop, net::io_context& io, Store& store,
                     ApiServerOptions options)
    : impl_(std::make_shared<Impl>(loop, io, store, std::move(options))) {}

ApiServer::ApiServer(live::AsioEventLoop& loop, Store& store, ApiServerOptions options)
    : ApiServer(loop, loop.io_context(), store, std::move(options)) {}

ApiServer::~ApiServer() { stop(); }

Status ApiServer::start() {
  if (!impl_->stopped) return failed_precondition_error("the API server is already running");
  std::string address = impl_->options.address == "localhost" ? "127.0.0.1"
                                                               : impl_->options.address;
  boost::system::error_code ec;
  net::ip::address addr = net::ip::make_address(address, ec);
  if (ec) return invalid_error("invalid listen address \"" + impl_->options.address + "\"");
  tcp::endpoint ep(addr, impl_->options.port);
  tcp::acceptor& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    a.close(ignored);
    return unavailable_error("cannot listen on " + address + ":" +
                             std::to_string(impl_->options.port) + ": " + ec.message());
  }
  impl_->port = a.local_endpoint().port();
  std::string host = addr.is_v6() ? "[" + address + "]" : address;
  impl_->handler = std::make_unique<ApiHandler>(impl_->loop, impl_->store,
                                                host + ":" + std::to_string(impl_->port));
  impl_->stopped = false;
  impl_->accept();
  return Status::ok();
}

void ApiServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  std::vector<Session*> sessions(impl_->sessions.begin(), impl_->sessions.end());
  for (Session* s : sessions) s->close();
  impl_->sessions.clear();
}

uint16_t ApiServer::port() const { return impl_->port; }

std::string ApiServer::url() const {
  std::string a = impl_->options.address;
  if (a.find(':') != std::string::npos) a = "[" + a + "]";
  return "http://" + a + ":" + std::to_string(impl_->port);
}

size_t ApiServer::connection_count() const { return impl_->sessions.size(); }
size_t ApiServer::watch_count() const { return impl_->watches; }

bool is_loopback_address(const std::string& address) {
  if (address == "localhost") return true;
  boost::system::error_code ec;
  net::ip::address a = net::ip::make_address(address, ec);
  return !ec && a.is_loopback();
}

}  // namespace flotilla::apiserver
