#include "backends/live/dns_server.h"

#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <cctype>
#include <chrono>

#include "backends/live/live_network.h"
#include "core/api/object.h"
#include "core/proxy/service_ip.h"

namespace flotilla::live {

namespace asio = boost::asio;

namespace {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxName = 255;

uint16_t read16(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint16_t>((p[at] << 8) | p[at + 1]);
}

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xff));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v & 0xffff));
}

// Reads an uncompressed name at `at` (questions carry no pointers); advances
// `at` past it. Errors name the problem.
Status read_name(std::span<const uint8_t> p, size_t& at, std::string& out) {
  out.clear();
  size_t wire = 0;
  for (;;) {
    if (at >= p.size()) return bad_request_error("DNS name runs past the end of the packet");
    const uint8_t len = p[at];
    if ((len & 0xc0) != 0) return bad_request_error("compressed or extended label in a question");
    ++at;
    wire += 1 + len;
    if (wire > kMaxName) return bad_request_error("DNS name longer than 255 bytes");
    if (len == 0) break;
    if (at + len > p.size()) return bad_request_error("DNS label runs past the end of the packet");
    if (!out.empty()) out += '.';
    for (size_t i = 0; i < len; ++i) {
      out += static_cast<char>(std::tolower(p[at + i]));
    }
    at += len;
  }
  return Status::ok();
}

// Skips a possibly compressed name in an answer.
Status skip_name(std::span<const uint8_t> p, size_t& at) {
  for (int labels = 0; labels < 128; ++labels) {
    if (at >= p.size()) return bad_request_error("DNS name runs past the end of the packet");
    const uint8_t len = p[at];
    if ((len & 0xc0) == 0xc0) {
      if (at + 2 > p.size()) return bad_request_error("truncated name pointer");
      at += 2;
      return Status::ok();
    }
    if ((len & 0xc0) != 0) return bad_request_error("extended label type");
    at += 1 + len;
    if (len == 0) return Status::ok();
  }
  return bad_request_error("too many labels");
}

}  // namespace

StatusOr<DnsQuestion> parse_dns_query(std::span<const uint8_t> p) {
  if (p.size() < kHeaderSize) return bad_request_error("DNS packet shorter than its header");
  DnsQuestion q;
  q.id = read16(p, 0);
  const uint16_t flags = read16(p, 2);
  if (flags & 0x8000) return bad_request_error("DNS packet is a response, not a query");
  if (((flags >> 11) & 0xf) != 0) return bad_request_error("DNS opcode is not QUERY");
  q.recursion_desired = (flags & 0x0100) != 0;
  if (read16(p, 4) != 1) return bad_request_error("DNS query must have exactly one question");
  if (read16(p, 6) != 0 || read16(p, 8) != 0) {
    return bad_request_error("DNS query carries answer or authority records");
  }
  size_t at = kHeaderSize;
  FLOTILLA_RETURN_IF_ERROR(read_name(p, at, q.name));
  if (at + 4 > p.size()) return bad_request_error("DNS question is truncated");
  q.type = read16(p, at);
  q.klass = read16(p, at + 2);
  return q;
}

std::optional<std::vector<uint8_t>> answer_dns_query(std::span<const uint8_t> p,
                                                     const DnsLookup& lookup, uint32_t ttl_s) {
  if (p.size() < kHeaderSize) return std::nullopt;
  const uint16_t id = read16(p, 0);
  const uint16_t in_flags = read16(p, 2);
  if (in_flags & 0x8000) return std::nullopt;  // a response: never answer (no loops)
  const uint16_t opcode = (in_flags >> 11) & 0xf;

  // Header of the reply: QR, the query's opcode and RD, AA; RA clear.
  auto reply = [&](uint8_t rcode, std::span<const uint8_t> question, uint16_t qdcount,
                   std::optional<uint32_t> a) {
    std::vector<uint8_t> out;
    out.reserve(kHeaderSize + question.size() + 16);
    put16(out, id);
    put16(out, static_cast<uint16_t>(0x8000 | (opcode << 11) | 0x0400 | (in_flags & 0x0100) |
                                      rcode));
    put16(out, qdcount);
    put16(out, a ? 1 : 0);
    put16(out, 0);
    put16(out, 0);
    out.insert(out.end(), question.begin(), question.end());
    if (a) {
      put16(out, 0xc00c);  // the question's name
      put16(out, kDnsTypeA);
      put16(out, kDnsClassIn);
      put32(out, ttl_s);
      put16(out, 4);
      put32(out, *a);
    }
    return out;
  };

  if (opcode != 0) return reply(kDnsRcodeNotImp, {}, 0, std::nullopt);
  auto q = parse_dns_query(p);
  if (!q) return std::nullopt;  // malformed: dropped
  size_t end = kHeaderSize;
  std::string ignored;
  (void)read_name(p, end, ignored);
  end += 4;
  const auto question = p.subspan(kHeaderSize, end - kHeaderSize);
  if (q->klass != kDnsClassIn && q->klass != 255) {
    return reply(kDnsRcodeNotImp, question, 1, std::nullopt);
  }
  auto ip = lookup(q->name);
  if (!ip) return reply(kDnsRcodeNxDomain, question, 1, std::nullopt);
  if (q->type == kDnsTypeA || q->type == 255) return reply(kDnsRcodeNoError, question, 1, ip);
  return reply(kDnsRcodeNoError, question, 1, std::nullopt);  // NODATA
}

std::vector<uint8_t> build_dns_query(uint16_t id, std::string_view name, uint16_t type) {
  std::vector<uint8_t> out;
  put16(out, id);
  put16(out, 0x0100);
  put16(out, 1);
  put16(out, 0);
  put16(out, 0);
  put16(out, 0);
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const size_t len = dot - start;
    if (len > 0) {
      out.push_back(static_cast<uint8_t>(len & 0x3f));
      out.insert(out.end(), name.begin() + static_cast<long>(start),
                 name.begin() + static_cast<long>(start + (len & 0x3f)));
    }
    start = dot + 1;
  }
  out.push_back(0);
  put16(out, type);
  put16(out, kDnsClassIn);
  return out;
}

StatusOr<DnsAnswer> parse_dns_answer(std::span<const uint8_t> p) {
  if (p.size() < kHeaderSize) return bad_request_error("DNS packet shorter than its header");
  DnsAnswer a;
  a.id = read16(p, 0);
  const uint16_t flags = read16(p, 2);
  if (!(flags & 0x8000)) return bad_request_error("not a response");
  a.rcode = flags & 0xf;
  a.authoritative = (flags & 0x0400) != 0;
  const uint16_t qd = read16(p, 4);
  const uint16_t an = read16(p, 6);
  size_t at = kHeaderSize;
  for (int i = 0; i < qd; ++i) {
    FLOTILLA_RETURN_IF_ERROR(skip_name(p, at));
    at += 4;
  }
  for (int i = 0; i < an; ++i) {
    FLOTILLA_RETURN_IF_ERROR(skip_name(p, at));
    if (at + 10 > p.size()) return bad_request_error("truncated resource record");
    const uint16_t type = read16(p, at);
    const uint16_t rdlen = read16(p, at + 8);
    at += 10;
    if (at + rdlen > p.size()) return bad_request_error("truncated record data");
    if (type == kDnsTypeA && rdlen == 4) {
      a.a_records.push_back((uint32_t{p[at]} << 24) | (uint32_t{p[at + 1]} << 16) |
                            (uint32_t{p[at + 2]} << 8) | p[at + 3]);
    }
    at += rdlen;
  }
  return a;
}

// ------------------------------------------------------------------ server

// One TCP client: 2-byte length-prefixed messages, answered in order; closed
// on a malformed message, an error or 10 s of idleness.
struct DnsServer::TcpSession : std::enable_shared_from_this<TcpSession> {
  TcpSession(DnsServer& s, asio::ip::tcp::socket sock)
      : server(s), socket(std::move(sock)), idle(socket.get_executor()) {}
  DnsServer& server;
  asio::ip::tcp::socket socket;
  asio::steady_timer idle;
  std::weak_ptr<bool> alive;
  std::array<uint8_t, 2> len{};
  std::vector<uint8_t> body;
  std::vector<uint8_t> out;

  void close() {
    boost::system::error_code ec;
    socket.close(ec);
    idle.cancel();
  }
  void read_next() {
    auto self = shared_from_this();
    idle.expires_after(std::chrono::seconds(10));
    idle.async_wait([self](const boost::system::error_code& e) {
      if (!e) self->close();
    });
    asio::async_read(socket, asio::buffer(len), [self](const boost::system::error_code& e, size_t) {
      if (e || self->alive.expired()) return self->close();
      const size_t n = (size_t{self->len[0]} << 8) | self->len[1];
      if (n < kHeaderSize) {
        ++self->server.stats_.malformed;
        return self->close();
      }
      self->body.resize(n);
      asio::async_read(self->socket, asio::buffer(self->body),
                       [self](const boost::system::error_code& e2, size_t) {
        if (e2 || self->alive.expired()) return self->close();
        auto reply = self->server.answer(self->body);
        if (!reply) return self->close();
        self->out.clear();
        put16(self->out, static_cast<uint16_t>(reply->size()));
        self->out.insert(self->out.end(), reply->begin(), reply->end());
        asio::async_write(self->socket, asio::buffer(self->out),
                          [self](const boost::system::error_code& e3, size_t) {
          if (e3) return self->close();
          self->read_next();
        });
      });
    });
  }
};

DnsServer::DnsServer(asio::io_context& io, uint32_t ttl_s)
    : io_(io), ttl_s_(ttl_s), udp_(io), tcp_(io) {}

DnsServer::~DnsServer() {
  *alive_ = false;
  stop();
}

Status DnsServer::listen(const std::string& address, int port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return bad_request_error("DNS server: \"" + address + "\" is not an IP address");
  // With port 0 the UDP port is the kernel's choice and TCP must get the same
  // number; when that one is taken for TCP, try another ephemeral port.
  Status last;
  for (int attempt = 0; attempt < (port == 0 ? 16 : 1); ++attempt) {
    last = bind_both(addr, port);
    if (last.is_ok()) {
      receive();
      accept();
      return last;
    }
  }
  return last;
}

Status DnsServer::bind_both(const asio::ip::address& addr, int port) {
  boost::system::error_code ec;
  const std::string address = addr.to_string();
  asio::ip::udp::endpoint uep(addr, static_cast<unsigned short>(port));
  udp_.open(uep.protocol(), ec);
  if (!ec) udp_.bind(uep, ec);
  if (ec) {
    udp_.close();
    return unavailable_error("DNS server: cannot listen on udp " + address + ":" +
                             std::to_string(port) + ": " + ec.message());
  }
  udp_.non_blocking(true, ec);
  port_ = udp_.local_endpoint().port();
  asio::ip::tcp::endpoint tep(addr, static_cast<unsigned short>(port_));
  tcp_.open(tep.protocol(), ec);
  if (!ec) tcp_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) tcp_.bind(tep, ec);
  if (!ec) tcp_.listen(64, ec);
  if (ec) {
    udp_.close();
    tcp_.close();
    port_ = 0;
    return unavailable_error("DNS server: cannot listen on tcp " + address + ":" +
                             std::to_string(tep.port()) + ": " + ec.message());
  }
  return Status::ok();
}

void DnsServer::stop() {
  boost::system::error_code ec;
  udp_.close(ec);
  tcp_.close(ec);
}

bool DnsServer::set_record(const std::string& name, const std::string& ip) {
  std::string key = normalize_dns_name(name);
  if (ip.empty()) {
    records_.erase(key);
    return true;
  }
  boost::system::error_code ec;
  auto a = asio::ip::make_address_v4(ip, ec);
  if (ec) return false;
  records_[key] = a.to_uint();
  return true;
}

std::optional<uint32_t> DnsServer::lookup(const std::string& name) const {
  auto it = records_.find(name);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::vector<uint8_t>> DnsServer::answer(std::span<const uint8_t> packet) {
  auto reply = answer_dns_query(packet, [this](const std::string& n) { return lookup(n); },
                                ttl_s_);
  if (!reply || reply->size() < 4) {
    ++stats_.malformed;
    return reply;
  }
  const uint8_t rcode = (*reply)[3] & 0xf;
  ++stats_.queries;
  if (rcode == kDnsRcodeNxDomain) ++stats_.nxdomain;
  if (reply->size() > 7 && (*reply)[7] != 0) ++stats_.answers;
  return reply;
}

void DnsServer::receive() {
  std::weak_ptr<bool> alive = alive_;
  udp_.async_receive_from(asio::buffer(rx_), peer_,
                          [this, alive](const boost::system::error_code& e, size_t n) {
    if (alive.expired() || e == asio::error::operation_aborted || !udp_.is_open()) return;
    if (!e) {
      auto reply = answer(std::span<const uint8_t>(rx_.data(), n));
      if (reply) {
        boost::system::error_code ignored;  // a full send buffer drops the reply, as UDP may
        udp_.send_to(asio::buffer(*reply), peer_, 0, ignored);
      }
    }
    receive();
  });
}

void DnsServer::accept() {
  std::weak_ptr<bool> alive = alive_;
  tcp_.async_accept([this, alive](const boost::system::error_code& e, asio::ip::tcp::socket s) {
    if (alive.expired() || e == asio::error::operation_aborted || !tcp_.is_open()) return;
    if (!e) {
      auto session = std::make_shared<TcpSession>(*this, std::move(s));
      session->alive = alive;
      session->read_next();
    }
    accept();
  });
}

// ------------------------------------------------------------ ServiceDnsRecords

ServiceDnsRecords::ServiceDnsRecords(Store& store, DnsServer& dns, std::string cluster_domain)
    : store_(store), dns_(dns), domain_(std::move(cluster_domain)) {}

ServiceDnsRecords::~ServiceDnsRecords() {
  watch_.reset();
  for (const auto& [name, ip] : records_) dns_.set_record(name, "");
}

Status ServiceDnsRecords::start() {
  WatchOptions wo;
  wo.send_initial_events = true;
  auto w = store_.watch(api::Kind::kService, wo, [this](const WatchEvent& e) { on_event(e); });
  if (!w) return w.status().with_prefix("service DNS: watching Services: ");
  watch_ = std::move(*w);
  return Status::ok();
}

void ServiceDnsRecords::on_event(const WatchEvent& e) {
  const auto& meta = api::meta_of(*e.object);
  const std::string name = proxy::service_dns_name(meta.name(), meta.namespace_(), domain_);
  std::string ip;
  if (e.type != WatchEventType::kDeleted) {
    const auto svc = api::as<api::Service>(e.object);
    if (!proxy::is_headless(*svc)) ip = svc->spec().cluster_ip();
  }
  auto it = records_.find(name);
  if (ip.empty()) {
    if (it == records_.end()) return;
    records_.erase(it);
    dns_.set_record(name, "");
    return;
  }
  if (it != records_.end() && it->second == ip) return;
  if (dns_.set_record(name, ip)) {
    records_[name] = ip;
  } else if (it != records_.end()) {
    records_.erase(it);
    dns_.set_record(name, "");
  }
}

}  // namespace flotilla::live
