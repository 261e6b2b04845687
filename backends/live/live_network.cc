#include "backends/live/live_network.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <cctype>
#include <chrono>
#include <utility>

#include "backends/live/dns_server.h"

namespace flotilla::live {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {


Status connect_error(const NetEndpoint& target, const boost::system::error_code& ec) {
  if (ec == asio::error::connection_refused) {
    return unavailable_error("connection to " + endpoint_string(target) + " refused");
  }
  return unavailable_error("connection to " + endpoint_string(target) + " failed: " + ec.message());
}

// "HTTP/1.1 204 No Content" -> 204; -1 when it is no status line.
int parse_status_line(std::string_view line) {
  if (!line.starts_with("HTTP/")) return -1;
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp + 4 > line.size()) return -1;
  int code = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return -1;
    code = code * 10 + (line[i] - '0');
  }
  if (sp + 4 < line.size() && line[sp + 4] != ' ' && line[sp + 4] != '\r') return -1;
  return code;
}

}  // namespace

std::string normalize_dns_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

// One probe or connect: its socket, deadline and continuation. Shared by the
// Asio handlers; finish() runs once.
struct LiveNetwork::Op {
  Op(asio::io_context& io, ProbeRequest r, Callback<Status> d)
      : socket(io), timer(io), request(std::move(r)), done(std::move(d)), response(8192) {}
  tcp::socket socket;
  asio::steady_timer timer;
  ProbeRequest request;
  Callback<Status> done;
  bool finished = false;
  const char* step = "connecting";
  std::string http_request;
  asio::streambuf response;
};

LiveNetwork::LiveNetwork(AsioEventLoop& loop) : loop_(loop) {}

LiveNetwork::~LiveNetwork() {
  *alive_ = false;
  attach_dns(nullptr);
}

void LiveNetwork::probe(const ProbeRequest& request, Callback<Status> done) {
  start(std::make_shared<Op>(loop_.io_context(), request, std::move(done)));
}

void LiveNetwork::connect(const std::string& from_node, const NetEndpoint& target,
                          Duration timeout, Callback<Status> done) {
  ProbeRequest r;
  r.kind = ProbeRequest::Kind::kTcp;
  r.from_node = from_node;
  r.target = target;
  r.timeout = timeout;
  start(std::make_shared<Op>(loop_.io_context(), std::move(r), std::move(done)));
}

void LiveNetwork::start(std::shared_ptr<Op> op) {
  ++*in_flight_;
  // Ends the operation once: closes the socket and hands the status to the loop.
  auto finish = [this, alive = std::weak_ptr<bool>(alive_), in_flight = in_flight_](
                    const std::shared_ptr<Op>& o, Status s) {
    if (o->finished) return;
    o->finished = true;
    --*in_flight;
    boost::system::error_code ignored;
    o->timer.cancel();
    o->socket.close(ignored);
    if (alive.expired()) return;
    loop_.post([alive, done = std::move(o->done), s = std::move(s)]() mutable {
      if (!alive.expired()) done(std::move(s));
    });
  };

  boost::system::error_code ec;
  auto addr = asio::ip::make_address(op->request.target.ip, ec);
  if (ec || op->request.target.port <= 0 || op->request.target.port > 65535) {
    finish(op, bad_request_error("cannot probe " + endpoint_string(op->request.target) +
                                 ": not an IP address and port"));
    return;
  }
  const auto timeout_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(op->request.timeout).count();
  op->timer.expires_after(std::chrono::nanoseconds(to_nanos(op->request.timeout)));
  op->timer.async_wait([op, finish, timeout_ms](const boost::system::error_code& e) {
    if (e || op->finished) return;
    finish(op, Status(StatusCode::kDeadlineExceeded,
                      "no answer from " + endpoint_string(op->request.target) + " within " +
                          std::to_string(timeout_ms) + "ms (" + op->step + ")"));
  });

  const tcp::endpoint ep(addr, static_cast<unsigned short>(op->request.target.port));
  op->socket.async_connect(ep, [op, finish](const boost::system::error_code& e) {
    if (op->finished) return;
    if (e) {
      finish(op, connect_error(op->request.target, e));
      return;
    }
    if (op->request.kind == ProbeRequest::Kind::kTcp) {
      finish(op, Status::ok());
      return;
    }
    const std::string& path = op->request.http_path.empty() ? "/" : op->request.http_path;
    op->http_request = "GET " + path + " HTTP/1.1\r\nHost: " + op->request.target.ip + ":" +
                       std::to_string(op->request.target.port) +
                       "\r\nUser-Agent: flotilla-probe/1\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    op->step = "sending the HTTP request";
    asio::async_write(op->socket, asio::buffer(op->http_request),
                      [op, finish](const boost::system::error_code& we, size_t) {
      if (op->finished) return;
      if (we) {
        finish(op, connect_error(op->request.target, we));
        return;
      }
      op->step = "waiting for the HTTP status line";
      asio::async_read_until(
          op->socket, op->response, "\r\n",
          [op, finish](const boost::system::error_code& re, size_t n) {
            if (op->finished) return;
            const std::string where = "HTTP probe of " + endpoint_string(op->request.target) +
                                      op->request.http_path;
            if (re) {
              if (re == asio::error::eof) {
                finish(op, unavailable_error(where + ": connection closed before a status line"));
              } else if (re == asio::error::not_found) {
                finish(op, failed_precondition_error(where + ": status line longer than 8 KiB"));
              } else {
                finish(op, unavailable_error(where + ": " + re.message()));
              }
              return;
            }
            std::string line(asio::buffers_begin(op->response.data()),
                             asio::buffers_begin(op->response.data()) + static_cast<long>(n));
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
            const int code = parse_status_line(line);
            if (code < 0) {
              finish(op, failed_precondition_error(where + ": not an HTTP response: \"" +
                                                   line.substr(0, 80) + "\""));
            } else if (code < 200 || code > 399) {
              finish(op, failed_precondition_error(where + " returned status " +
                                                   std::to_string(code)));
            } else {
              finish(op, Status::ok());
            }
          });
    });
  });
}

void LiveNetwork::set_dns_record(const std::string& name, const std::string& ip) {
  std::string key = normalize_dns_name(name);
  if (ip.empty()) {
    records_.erase(key);
  } else {
    records_[key] = ip;
  }
  if (dns_ != nullptr) dns_->set_record(key, ip);
}

void LiveNetwork::attach_dns(DnsServer* dns) {
  dns_ = dns;
  if (dns_ == nullptr) return;
  for (const auto& [name, ip] : records_) dns_->set_record(name, ip);
}

}  // namespace flotilla::live
