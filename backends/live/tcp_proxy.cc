#include "backends/live/tcp_proxy.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "core/api/pod_util.h"
#include "core/proxy/service_ip.h"

namespace flotilla::live {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {


std::optional<int> parse_port(std::string_view s) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0 || v > 65535) return std::nullopt;
  return v;
}

}  // namespace

struct TcpServiceProxy::Listener {
  explicit Listener(asio::io_context& io) : acceptor(io), retry(io) {}
  tcp::acceptor acceptor;
  asio::steady_timer retry;  // backs off after an accept error (e.g. out of descriptors)
  Target target;
  NetEndpoint at;
  tcp::endpoint peer;  // filled by accept
};

// One proxied connection. Two pumps (client->backend "up", backend->client
// "down"), each a read_some into its own buffer followed by a write of exactly
// what was read. A read EOF half-closes the other side; the connection ends
// when both directions are done or either side fails.
struct TcpServiceProxy::Connection : std::enable_shared_from_this<Connection> {
  Connection(asio::io_context& io, tcp::socket c, size_t buffer_bytes)
      : client(std::move(c)), backend(io), timer(io),
        up(new uint8_t[buffer_bytes]), down(new uint8_t[buffer_bytes]), size(buffer_bytes) {}
  tcp::socket client;
  tcp::socket backend;
  asio::steady_timer timer;  // connect timeout
  std::shared_ptr<Listener> listener;
  std::string client_ip;
  std::optional<proxy::Pick> pick;
  int attempts = 0;
  bool connect_timed_out = false;
  bool connected = false;
  bool up_done = false;
  bool down_done = false;
  bool finished = false;
  // Redispatch (Target::retry_unanswered): what the client sent while the
  // backend has sent nothing back, at most `size` bytes; `gen` counts backends.
  bool keep_replay = false;
  std::string replay;
  int64_t bytes_up = 0;  // read from the client so far
  int64_t bytes_down = 0;
  uint64_t gen = 0;
  std::unique_ptr<uint8_t[]> up;
  std::unique_ptr<uint8_t[]> down;
  size_t size;
};

TcpServiceProxy::TcpServiceProxy(AsioEventLoop& loop, Store& store,
                                 proxy::ServiceProxy& decisions, TcpServiceProxyOptions options)
    : loop_(loop), store_(store), decisions_(decisions), options_(std::move(options)) {}

TcpServiceProxy::~TcpServiceProxy() {
  stop();
  *alive_ = false;
}

Status TcpServiceProxy::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  auto w = store_.watch(api::Kind::kService, wo,
                        [this](const WatchEvent& e) { on_service_event(e); });
  if (!w) return w.status().with_prefix("tcp proxy: watching Services: ");
  watch_ = std::move(*w);
  return Status::ok();
}

void TcpServiceProxy::stop() {
  watch_.reset();
  bind_retries_.clear();  // their timers are cancelled with them
  for (auto& [owner, by_addr] : listeners_) {
    for (auto& [at, l] : by_addr) {
      boost::system::error_code ec;
      l->acceptor.close(ec);
      l->retry.cancel();
    }
  }
  listeners_.clear();
  // finish() erases from the set: iterate over a copy of live connections.
  std::vector<std::shared_ptr<Connection>> open;
  for (Connection* c : connections_) open.push_back(c->shared_from_this());
  for (auto& c : open) finish(c);
}

void TcpServiceProxy::warn(std::string message) { warnings_.push_back(std::move(message)); }

// ------------------------------------------------------------------ listeners

void TcpServiceProxy::on_service_event(const WatchEvent& e) {
  const std::string key = api::namespaced_name(api::meta_of(*e.object));
  sync_service(key, e.type == WatchEventType::kDeleted ? api::Object() : e.object);
}

void TcpServiceProxy::sync_service(const std::string& key, const api::Object& service) {
  const std::shared_ptr<const api::Service> svc_ref =
      service ? api::as<api::Service>(service) : nullptr;
  const api::Service* svc = svc_ref.get();
  std::map<NetEndpoint, Target> want;
  std::map<int, StatusOr<int>> ports;  // service port -> host port or why none
  if (svc != nullptr && !proxy::is_headless(*svc)) {
    // Host ports from the annotation, by port name or number.
    std::map<std::string, int> annotated;
    int first_port = -1;
    const auto& ann = svc->metadata().annotations();
    if (auto it = ann.find(std::string(kHostPortAnnotation)); it != ann.end()) {
      std::string_view rest = it->second;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        size_t eq = item.find('=');
        auto port = parse_port(eq == std::string_view::npos ? item : item.substr(eq + 1));
        if (!port) {
          warn("service " + key + ": ignoring bad " + std::string(kHostPortAnnotation) + " \"" +
               it->second + "\"");
          annotated.clear();
          first_port = -1;
          break;
        }
        if (eq == std::string_view::npos) {
          first_port = *port;
        } else {
          annotated[std::string(item.substr(0, eq))] = *port;
        }
      }
    }
    const std::string dns = proxy::service_dns_name(svc->metadata().name(),
                                                    svc->metadata().namespace_());
    bool retry_unanswered = options_.retry_unanswered;
    if (auto it = ann.find(std::string(kRetryUnansweredAnnotation)); it != ann.end()) {
      if (it->second == "true" || it->second == "false") {
        retry_unanswered = it->second == "true";
      } else {
        warn("service " + key + ": ignoring bad " + std::string(kRetryUnansweredAnnotation) +
             " \"" + it->second + "\" (want true or false)");
      }
    }
    for (int i = 0; i < svc->spec().ports_size(); ++i) {
      const auto& sp = svc->spec().ports(i);
      if (!sp.protocol().empty() && sp.protocol() != "TCP") continue;
      int hp = sp.port() + options_.host_port_offset;
      if (i == 0 && first_port > 0) hp = first_port;
      if (auto a = annotated.find(sp.name()); !sp.name().empty() && a != annotated.end()) {
        hp = a->second;
      } else if (auto b = annotated.find(std::to_string(sp.port())); b != annotated.end()) {
        hp = b->second;
      }
      if (hp <= 0 || hp > 65535) {
        ports.insert_or_assign(sp.port(), unavailable_error("host port " + std::to_string(hp) +
                                                            " is out of range"));
        continue;
      }
      Target t{key, dns, sp.port(), {}, retry_unanswered};
      want[NetEndpoint{options_.host_address, hp}] = t;
      for (const auto& extra : options_.extra_addresses) want[NetEndpoint{extra, hp}] = t;
      ports.insert_or_assign(sp.port(), hp);
      const std::string& vip = svc->spec().cluster_ip();
      if (options_.listen_on_vip && !vip.empty()) {
        Target vt = t;
        vt.vip = NetEndpoint{vip, sp.port()};
        want[vt.vip] = vt;
      }
    }
  }

  auto& have = listeners_[key];
  for (auto it = have.begin(); it != have.end();) {
    auto w = want.find(it->first);
    const bool keep = w != want.end() && w->second.service_port == it->second->target.service_port &&
                      w->second.vip == it->second->target.vip;
    if (keep) {
      it->second->target.retry_unanswered = w->second.retry_unanswered;
      ++it;
      continue;
    }
    boost::system::error_code ec;
    it->second->acceptor.close(ec);
    it->second->retry.cancel();
    it = have.erase(it);
  }
  std::vector<std::string> failures;
  for (const auto& [at, target] : want) {
    if (have.count(at) != 0) continue;
    Status s = open(key, target, at, nullptr);
    if (!s.is_ok()) {
      failures.push_back(s.message());
      if (at.ip == options_.host_address && target.vip.ip.empty()) {
        ports.insert_or_assign(target.service_port, s);
      }
    }
  }
  if (have.empty()) listeners_.erase(key);
  note_bind_result(key, svc != nullptr ? service : api::Object(), failures);

  for (auto it = host_ports_.lower_bound({key, 0});
       it != host_ports_.end() && it->first.first == key;) {
    it = host_ports_.erase(it);
  }
  for (auto& [port, hp] : ports) host_ports_.insert_or_assign({key, port}, std::move(hp));
}

void TcpServiceProxy::note_bind_result(const std::string& key, const api::Object& service,
                                       const std::vector<std::string>& failures) {
  if (service == nullptr || failures.empty()) {
    bind_retries_.erase(key);  // gone, or every listener is open: the backoff starts over
    return;
  }
  auto [it, fresh] = bind_retries_.try_emplace(key);
  BindRetry& r = it->second;
  r.service = service;
  if (fresh) r.delay = options_.bind_retry_initial;
  // A sync between two retries (the Service was updated) keeps
  // the step: it warns only about failures this step has not reported yet.
  const bool new_step = r.timer == nullptr || !r.timer->pending();
  if (new_step) r.warned.clear();
  for (const auto& f : failures) {
    if (!r.warned.insert(f).second) continue;
    warn("service " + key + ": " + f + " (retrying in " + format_duration(r.delay) + ")");
  }
  if (!new_step) return;
  std::weak_ptr<bool> alive = alive_;
  r.timer = loop_.run_after(r.delay, [this, alive, key] {
    if (alive.expired()) return;
    auto found = bind_retries_.find(key);
    if (found == bind_retries_.end()) return;
    // The step's delay is used up: the next failure waits twice as long.
    found->second.delay = std::min(found->second.delay * 2, options_.bind_retry_max);
    const api::Object latest = found->second.service;
    sync_service(key, latest);
  });
}

std::map<std::string, Duration> TcpServiceProxy::pending_bind_retries() const {
  std::map<std::string, Duration> out;
  for (const auto& [key, r] : bind_retries_) out[key] = r.delay;
  return out;
}

StatusOr<int> TcpServiceProxy::add_listener(const std::string& service_key, int service_port,
                                            const std::string& address, int port) {
  auto slash = service_key.find('/');
  if (slash == std::string::npos) {
    return invalid_error("service key \"" + service_key + "\" is not <namespace>/<name>");
  }
  Target t{service_key,
           proxy::service_dns_name(service_key.substr(slash + 1), service_key.substr(0, slash)),
           service_port,
           {},
           options_.retry_unanswered};
  int bound = 0;
  FLOTILLA_RETURN_IF_ERROR(open("", t, NetEndpoint{address, port}, &bound));
  host_ports_.insert_or_assign({service_key, service_port}, bound);
  return bound;
}

Status TcpServiceProxy::open(const std::string& owner, const Target& target,
                             const NetEndpoint& at, int* bound_port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(at.ip, ec);
  const std::string where = endpoint_string(at);
  if (ec) return invalid_error("cannot listen on " + where + ": not an IP address");
  auto l = std::make_shared<Listener>(loop_.io_context());
  l->target = target;
  tcp::endpoint ep(addr, static_cast<unsigned short>(at.port));
  l->acceptor.open(ep.protocol(), ec);
  if (!ec) l->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && !target.vip.ip.empty() && !options_.vip_device.empty()) {
    const int fd = l->acceptor.native_handle();
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, options_.vip_device.c_str(),
                     static_cast<socklen_t>(options_.vip_device.size())) != 0 ||
        ::setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one)) != 0) {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
  }
  if (!ec) l->acceptor.bind(ep, ec);
  if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return unavailable_error("cannot listen on " + where + " for service " + target.service_key +
                             " port " + std::to_string(target.service_port) + ": " +
                             ec.message());
  }
  l->acceptor.non_blocking(true, ec);  // for the batched accepts after a wake-up
  l->at = NetEndpoint{at.ip, l->acceptor.local_endpoint().port()};
  if (bound_port != nullptr) *bound_port = l->at.port;
  listeners_[owner][l->at] = l;
  accept(l);
  return Status::ok();
}

std::vector<NetEndpoint> TcpServiceProxy::listening() const {
  std::vector<NetEndpoint> out;
  for (const auto& [owner, by_addr] : listeners_) {
    for (const auto& [at, l] : by_addr) out.push_back(at);
  }
  std::sort(out.begin(), out.end());
  return out;
}

StatusOr<int> TcpServiceProxy::host_port(std::string_view service_key, int service_port) const {
  auto it = host_ports_.find({std::string(service_key), service_port});
  if (it == host_ports_.end()) {
    return not_found_error("no TCP port " + std::to_string(service_port) + " of service " +
                           std::string(service_key) + " is known to the proxy");
  }
  return it->second;
}

// ------------------------------------------------------------------ connections

void TcpServiceProxy::accept(const std::shared_ptr<Listener>& l) {
  std::weak_ptr<bool> alive = alive_;
  l->acceptor.async_accept(l->peer, [this, alive, l](const boost::system::error_code& e,
                                                       tcp::socket s) {
    if (alive.expired() || !l->acceptor.is_open()) return;
    if (e) {
      if (e == asio::error::operation_aborted) return;
      // Out of descriptors or similar: try again shortly rather than spin.
      l->retry.expires_after(std::chrono::milliseconds(50));
      l->retry.async_wait([this, alive, l](const boost::system::error_code& te) {
        if (!te && !alive.expired() && l->acceptor.is_open()) accept(l);
      });
      return;
    }
    on_accept(l, std::move(s), l->peer);
    // Take what else is already queued without another trip through epoll
    // (HAProxy's maxaccept), bounded so one busy port cannot starve the rest.
    for (int i = 0; i < 16 && l->acceptor.is_open(); ++i) {
      boost::system::error_code ae;
      tcp::socket more(loop_.io_context());
      l->acceptor.accept(more, l->peer, ae);
      if (ae) break;
      on_accept(l, std::move(more), l->peer);
    }
    accept(l);
  });
}

void TcpServiceProxy::on_accept(const std::shared_ptr<Listener>& l, tcp::socket s,
                                const tcp::endpoint& peer) {
  ++stats_.accepted;
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  auto c = std::make_shared<Connection>(loop_.io_context(), std::move(s), options_.buffer_bytes);
  c->listener = l;
  c->client_ip = peer.address().to_string();
  c->keep_replay = l->target.retry_unanswered;
  connections_.insert(c.get());
  ++stats_.active;
  connect_next(c);
}

void TcpServiceProxy::connect_next(const std::shared_ptr<Connection>& c) {
  const Target& t = c->listener->target;
  auto pick = t.vip.ip.empty() ? decisions_.pick(t.dns_name, t.service_port, c->client_ip)
                               : decisions_.pick(t.vip, c->client_ip);
  if (!pick) {
    ++stats_.no_backend;
    finish(c);
    return;
  }
  c->pick = std::move(*pick);
  ++c->attempts;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(c->pick->endpoint.ip, ec);
  if (ec) {
    decisions_.report_result(c->pick->endpoint, false, "not an IP address");
    decisions_.release(*c->pick);
    c->pick.reset();
    ++stats_.no_backend;
    finish(c);
    return;
  }
  const tcp::endpoint ep(addr, static_cast<unsigned short>(c->pick->endpoint.port));
  c->connect_timed_out = false;
  c->timer.expires_after(std::chrono::nanoseconds(to_nanos(options_.connect_timeout)));
  c->timer.async_wait([c, attempt = c->attempts](const boost::system::error_code& e) {
    // A timer that fired while the connect's handler was already queued must
    // not touch a later attempt or an established connection.
    if (e || c->finished || c->connected || c->attempts != attempt) return;
    c->connect_timed_out = true;
    boost::system::error_code ignored;
    c->backend.close(ignored);
  });
  std::weak_ptr<bool> alive = alive_;
  c->backend.async_connect(ep, [this, alive, c](const boost::system::error_code& e) {
    if (alive.expired() || c->finished) return;
    c->timer.cancel();
    if (e) {
      std::string why = c->connect_timed_out ? "connect timed out"
                        : e == asio::error::connection_refused ? "connection refused"
                                                                 : e.message();
      ++stats_.connect_failures;
      decisions_.report_result(c->pick->endpoint, false, why);
      decisions_.release(*c->pick);
      c->pick.reset();
      boost::system::error_code ignored;
      c->backend.close(ignored);
      c->backend = tcp::socket(loop_.io_context());
      if (c->attempts > options_.max_retries) {
        ++stats_.no_backend;
        finish(c);
      } else {
        connect_next(c);
      }
      return;
    }
    ++stats_.forwarded;
    c->connected = true;
    boost::system::error_code ignored;
    c->backend.set_option(tcp::no_delay(true), ignored);
    if (c->replay.empty()) {
      start_pumps(c);
      return;
    }
    // A redispatched connection: the new backend first gets what the client
    // sent the one that failed.
    asio::async_write(c->backend, asio::buffer(c->replay),
                      [this, alive, c, gen = c->gen](const boost::system::error_code& we, size_t) {
                        if (alive.expired() || c->finished || gen != c->gen) return;
                        if (we) {
                          backend_failed(c, we.message());
                          return;
                        }
                        start_pumps(c);
                      });
  });
}

// The two pumps. `from`/`to` and the buffer are fixed per direction. After a
// read that filled the buffer more data is likely queued, so the next read is
// attempted at once (speculative); otherwise the pump first waits for
// readiness, which saves the recv() that would fail with EAGAIN on every
// request/response turn. Every callback carries the backend generation it was
// started for and does nothing once the connection was redispatched.
struct TcpServiceProxy::Pump {
  static void run(TcpServiceProxy* self, std::weak_ptr<bool> alive, std::shared_ptr<Connection> c,
                  bool upstream, bool speculative) {
    tcp::socket& from = upstream ? c->client : c->backend;
    uint8_t* buf = upstream ? c->up.get() : c->down.get();
    const uint64_t gen = c->gen;
    if (speculative) {
      from.async_read_some(asio::buffer(buf, c->size),
                           [self, alive, c, upstream, gen](const boost::system::error_code& re,
                                                           size_t n) {
                             if (alive.expired() || c->finished || gen != c->gen) return;
                             on_read(self, alive, c, upstream, re, n);
                           });
      return;
    }
    from.async_wait(tcp::socket::wait_read,
                    [self, alive, c, upstream, buf, gen](const boost::system::error_code& we) {
      if (alive.expired() || c->finished || gen != c->gen) return;
      if (we) return on_read(self, alive, c, upstream, we, 0);
      // MSG_DONTWAIT: never blocks the loop, without an ioctl per socket.
      tcp::socket& src = upstream ? c->client : c->backend;
      const ssize_t got = ::recv(src.native_handle(), buf, c->size, MSG_DONTWAIT);
      boost::system::error_code re;
      if (got == 0) {
        re = asio::error::eof;
      } else if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
          return run(self, alive, c, upstream, false);  // spurious wake-up
        }
        re = boost::system::error_code(errno, boost::system::system_category());
      }
      on_read(self, alive, c, upstream, re, got > 0 ? static_cast<size_t>(got) : 0);
    });
  }

  static void on_read(TcpServiceProxy* self, const std::weak_ptr<bool>& alive,
                      const std::shared_ptr<Connection>& c, bool upstream,
                      const boost::system::error_code& re, size_t n) {
    tcp::socket& to = upstream ? c->backend : c->client;
    if (re) {
      // The backend ended (reset or closed) before it sent a single byte:
      // a failure of that endpoint, and maybe a connection to redispatch.
      // A clean close counts when nothing was exchanged yet (e.g. a connection
      // idle before its first request when the backend died: the client has
      // lost nothing and is moved on) or where the Service declared
      // request/response (retry_unanswered): elsewhere a backend may well
      // never answer.
      const bool unanswered_close =
          re == asio::error::eof &&
          ((c->bytes_up == 0 && !c->up_done) || (c->keep_replay && !c->replay.empty()));
      if (!upstream && c->bytes_down == 0 &&
          (unanswered_close || (re != asio::error::eof && re != asio::error::operation_aborted))) {
        self->backend_failed(c, re == asio::error::eof ? "closed by the backend before answering"
                                                       : re.message() + " before answering");
        return;
      }
      if (re == asio::error::eof) {
        (upstream ? c->up_done : c->down_done) = true;
        if (c->up_done && c->down_done) {
          self->finish(c);  // close() sends the FIN; no separate shutdown
          return;
        }
        boost::system::error_code ignored;
        to.shutdown(tcp::socket::shutdown_send, ignored);
      } else {
        self->finish(c);
      }
      return;
    }
    (upstream ? self->stats_.bytes_up : self->stats_.bytes_down) += static_cast<int64_t>(n);
    uint8_t* buf = upstream ? c->up.get() : c->down.get();
    if (upstream) {
      if (c->keep_replay && c->replay.size() + n <= c->size) {
        c->replay.append(reinterpret_cast<const char*>(buf), n);
      } else {
        c->keep_replay = false;  // too much to replay: never redispatched
        std::string().swap(c->replay);
      }
    } else if (c->bytes_down == 0) {
      c->keep_replay = false;  // answered: from now on a plain spliced stream
      std::string().swap(c->replay);
    }
    (upstream ? c->bytes_up : c->bytes_down) += static_cast<int64_t>(n);
    asio::async_write(to, asio::buffer(buf, n),
                      [self, alive, c, upstream, full = n == c->size, gen = c->gen](
                          const boost::system::error_code& we, size_t) {
      if (alive.expired() || c->finished || gen != c->gen) return;
      if (we) {
        if (upstream && c->bytes_down == 0) {
          self->backend_failed(c, "writing to the backend: " + we.message());
        } else {
          self->finish(c);
        }
        return;
      }
      run(self, alive, c, upstream, full);
    });
  }
};

void TcpServiceProxy::start_pumps(const std::shared_ptr<Connection>& c) {
  std::weak_ptr<bool> alive = alive_;
  if (c->up_done) {
    // The client had half-closed before a redispatch: pass that on too.
    boost::system::error_code ignored;
    c->backend.shutdown(tcp::socket::shutdown_send, ignored);
  } else {
    Pump::run(this, alive, c, true, true);  // the request may be here already
  }
  Pump::run(this, alive, c, false, false);
}

void TcpServiceProxy::backend_failed(const std::shared_ptr<Connection>& c, const std::string& why) {
  if (c->pick) decisions_.report_result(c->pick->endpoint, false, why);
  ++stats_.backend_failures;
  // Nothing exchanged yet: as safe as a failed connect. Else only a replay
  // the Service asked for.
  const bool fresh = c->bytes_up == 0 && !c->up_done;
  const bool replayable = c->listener->target.retry_unanswered && c->keep_replay &&
                          !c->replay.empty();
  const bool redispatch =
      c->bytes_down == 0 && (fresh || replayable) && c->attempts <= options_.max_retries;
  if (!redispatch) {
    finish(c);
    return;
  }
  ++stats_.redispatched;
  if (c->pick) {
    decisions_.release(*c->pick);
    c->pick.reset();
  }
  // Everything still pending on the old backend (and the client's read) is
  // cancelled; its callbacks see a newer generation and do nothing.
  ++c->gen;
  c->connected = false;
  boost::system::error_code ignored;
  c->backend.close(ignored);
  c->backend = tcp::socket(loop_.io_context());
  c->client.cancel(ignored);
  connect_next(c);
}

void TcpServiceProxy::finish(const std::shared_ptr<Connection>& c) {
  if (c->finished) return;
  c->finished = true;
  if (c->pick) {
    decisions_.release(*c->pick);
    c->pick.reset();
  }
  boost::system::error_code ignored;
  c->timer.cancel();
  c->client.close(ignored);
  c->backend.close(ignored);
  connections_.erase(c.get());
  --stats_.active;
}

}  // namespace flotilla::live
