#include "backends/live/live_traffic.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <cmath>

namespace flotilla::live {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct GetOp : std::enable_shared_from_this<GetOp> {
  GetOp(AsioEventLoop& l, Callback<StatusOr<HttpAnswer>> d)
      : loop(l), socket(l.io_context()), done(std::move(d)) {}
  AsioEventLoop& loop;
  tcp::socket socket;
  Callback<StatusOr<HttpAnswer>> done;
  TimerHandle timer;
  std::string request;
  std::string response;
  std::array<char, 4096> buf{};
  bool finished = false;
  std::string step = "connect";

  void finish(StatusOr<HttpAnswer> r) {
    if (finished) return;
    finished = true;
    timer = TimerHandle();
    boost::system::error_code ignored;
    socket.close(ignored);
    auto cb = std::move(done);
    cb(std::move(r));
  }

  void read_more() {
    auto self = shared_from_this();
    socket.async_read_some(asio::buffer(buf), [self](boost::system::error_code ec, size_t n) {
      if (self->finished) return;
      self->response.append(self->buf.data(), n);
      if (!ec) {
        self->read_more();
        return;
      }
      if (ec != asio::error::eof && self->response.empty()) {
        self->finish(unavailable_error("reading the answer: " + ec.message()));
        return;
      }
      self->parse();
    });
  }

  void parse() {
    // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
    if (response.rfind("HTTP/", 0) != 0) {
      finish(unavailable_error(response.empty() ? "connection closed without an answer"
                                                : "not an HTTP answer"));
      return;
    }
    HttpAnswer a;
    auto sp = response.find(' ');
    if (sp == std::string::npos || sp + 4 > response.size()) {
      finish(unavailable_error("truncated status line"));
      return;
    }
    a.status = std::atoi(response.c_str() + sp + 1);
    auto body = response.find("\r\n\r\n");
    if (body != std::string::npos) a.body = response.substr(body + 4);
    while (!a.body.empty() && (a.body.back() == '\n' || a.body.back() == '\r')) a.body.pop_back();
    finish(std::move(a));
  }
};

}  // namespace

void http_get(AsioEventLoop& loop, const NetEndpoint& target, const std::string& path,
              Duration timeout, Callback<StatusOr<HttpAnswer>> done) {
  auto op = std::make_shared<GetOp>(loop, std::move(done));
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(target.ip, ec);
  if (ec) {
    loop.post([op, ip = target.ip] { op->finish(bad_request_error("not an IP address: " + ip)); });
    return;
  }
  op->request = "GET " + path + " HTTP/1.1\r\nHost: " + target.ip + "\r\nUser-Agent: flotilla-live\r\n" +
                "Connection: close\r\n\r\n";
  std::weak_ptr<GetOp> weak = op;
  op->timer = loop.run_after(timeout, [weak, timeout] {
    if (auto o = weak.lock()) {
      o->finish(Status(StatusCode::kDeadlineExceeded,
                       "no answer within " + format_duration(timeout) + " (at " + o->step + ")"));
    }
  });
  op->socket.async_connect(
      tcp::endpoint(addr, static_cast<uint16_t>(target.port)), [op](boost::system::error_code e) {
        if (op->finished) return;
        if (e) {
          op->finish(unavailable_error("connect: " + e.message()));
          return;
        }
        op->step = "write";
        asio::async_write(op->socket, asio::buffer(op->request),
                          [op](boost::system::error_code we, size_t) {
                            if (op->finished) return;
                            if (we) {
                              op->finish(unavailable_error("write: " + we.message()));
                              return;
                            }
                            op->step = "read";
                            op->read_more();
                          });
      });
}

struct LiveTrafficGenerator::Stream {
  sim::TrafficSpec spec;
  std::string node;
  std::unique_ptr<RandomStream> rng;
  TimePoint start{}, end{};
  TimerHandle timer;
};

struct LiveTrafficGenerator::Request {
  Stream* stream = nullptr;
  int attempt = 0;
  TimePoint arrival{};
  std::string service;
  std::string endpoint;
};

LiveTrafficGenerator::LiveTrafficGenerator(AsioEventLoop& loop, Random& random, TraceSink& trace,
                                           LiveTargetResolver resolve)
    : loop_(loop), random_(random), trace_(trace), resolve_(std::move(resolve)) {}

LiveTrafficGenerator::~LiveTrafficGenerator() {
  *alive_ = false;
  stop();
}

void LiveTrafficGenerator::add(const sim::TrafficSpec& spec, const std::string& node) {
  auto s = std::make_unique<Stream>();
  s->spec = spec;
  s->node = node;
  s->rng = random_.stream("traffic/" + spec.name);
  s->start = loop_.now() + spec.start;
  s->end = spec.end == Duration::max() ? kTimeMax : loop_.now() + spec.end;
  Stream& ref = *s;
  streams_.push_back(std::move(s));
  ref.timer = loop_.run_after(spec.start, [this, &ref] { schedule_next_arrival(ref); });
}

void LiveTrafficGenerator::stop() {
  stopped_ = true;
  for (auto& s : streams_) s->timer = TimerHandle();
}

void LiveTrafficGenerator::schedule_next_arrival(Stream& s) {
  if (stopped_) return;
  const sim::TrafficSpec& spec = s.spec;
  double rate = spec.rate_per_s;
  if (spec.arrival == sim::TrafficSpec::Arrival::kBursts) {
    int64_t phase = (loop_.now() - s.start).count() % spec.burst_every.count();
    if (phase < spec.burst_length.count()) rate = spec.burst_rate_per_s;
  }
  Duration gap = spec.arrival == sim::TrafficSpec::Arrival::kConstant
                     ? duration_from_seconds(1.0 / rate)
                     : duration_from_seconds(-std::log1p(-s.rng->next_double()) / rate);
  if (gap <= Duration(0)) gap = Duration(1);
  if (loop_.now() + gap >= s.end) return;
  s.timer = loop_.run_after(gap, [this, &s] {
    if (stopped_) return;
    auto r = std::make_shared<Request>();
    r->stream = &s;
    r->arrival = loop_.now();
    ++stats_.sent;
    send(r);
    schedule_next_arrival(s);
  });
}

void LiveTrafficGenerator::send(const std::shared_ptr<Request>& r) {
  const sim::TrafficSpec& spec = r->stream->spec;
  auto target = resolve_(spec);
  if (!target.is_ok()) {
    // Like the simulator's proxy refusing an unknown or empty Service.
    fail(r, std::string(status_code_reason(target.status().code())), target.status().message());
    return;
  }
  r->service = target->service;
  r->endpoint.clear();
  ++in_flight_;
  std::weak_ptr<bool> alive = alive_;
  http_get(loop_, target->address, "/", spec.timeout,
           [this, alive, r](StatusOr<HttpAnswer> a) {
             if (alive.expired()) return;
             --in_flight_;
             if (stopped_) return;
             if (!a.is_ok()) {
               const bool timeout = a.status().code() == StatusCode::kDeadlineExceeded;
               fail(r, timeout ? "Timeout" : "ConnectionFailed", a.status().message());
               return;
             }
             if (a->status < 200 || a->status >= 400) {
               fail(r, "HttpError", "HTTP status " + std::to_string(a->status));
               return;
             }
             r->endpoint = a->body;
             trace::Record rec;
             rec.set_time_ns(to_nanos(loop_.now()));
             rec.set_type(trace::REQUEST_SERVED);
             rec.set_service(r->service);
             rec.set_endpoint(r->endpoint);
             rec.set_node(r->stream->node);
             rec.set_latency_ns((loop_.now() - r->arrival).count());
             rec.set_value(r->attempt + 1);
             trace_.record(rec);
             ++stats_.served;
             ++served_by_[a->body];
           });
}

void LiveTrafficGenerator::fail(const std::shared_ptr<Request>& r, const std::string& reason,
                                const std::string& message) {
  const sim::TrafficSpec& spec = r->stream->spec;
  if (r->attempt < spec.retries) {
    ++r->attempt;
    ++stats_.retries;
    send(r);
    return;
  }
  trace::Record rec;
  rec.set_time_ns(to_nanos(loop_.now()));
  rec.set_type(trace::REQUEST_FAILED);
  std::string service = r->service;
  if (service.empty()) {
    service = spec.service.find_first_of("/.") == std::string::npos ? "default/" + spec.service
                                                                    : spec.service;
  }
  rec.set_service(service);
  rec.set_endpoint(r->endpoint);
  rec.set_node(r->stream->node);
  rec.set_reason(reason);
  rec.set_message(message);
  rec.set_latency_ns((loop_.now() - r->arrival).count());
  rec.set_value(r->attempt + 1);
  trace_.record(rec);
  ++stats_.failed;
}

}  // namespace flotilla::live
