// DnsServer: the cluster's DNS for live mode, a small authoritative responder
// (UDP and TCP) for `<service>.<namespace>.svc.cluster.local` A records, fed by
// LiveNetwork::set_dns_record. Anything else is NXDOMAIN (it does not recurse;
// search paths are the client's job). Messages are parsed and built by hand,
// bounds-checked; a malformed packet is dropped, never answered wrongly.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ports/store.h"
#include "core/util/status.h"

namespace flotilla::live {

inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsTypeAAAA = 28;
inline constexpr uint16_t kDnsClassIn = 1;
inline constexpr uint8_t kDnsRcodeNoError = 0;
inline constexpr uint8_t kDnsRcodeNxDomain = 3;
inline constexpr uint8_t kDnsRcodeNotImp = 4;

// The one question of a query, as parsed.
struct DnsQuestion {
  uint16_t id = 0;
  std::string name;  // lower case, no trailing dot ("web.default.svc.cluster.local")
  uint16_t type = 0;
  uint16_t klass = 0;
  bool recursion_desired = false;
};

// Parses a query (QR=0, opcode QUERY, exactly one question; answer and
// authority sections empty; additional records, e.g. EDNS OPT, are ignored).
// Errors: kBadRequest saying what is wrong. Never reads out of bounds.
StatusOr<DnsQuestion> parse_dns_query(std::span<const uint8_t> packet);

// The reply to `packet`: an A answer (TTL `ttl_s`) when `lookup` knows the name
// and the question is IN A, NOERROR without answers for another type of a known
// name, NXDOMAIN otherwise, NOTIMP for another opcode or class. nullopt (the
// packet is dropped) when it is malformed (parse_dns_query fails) or is itself
// a response (so two servers never answer each other in a loop).
using DnsLookup = std::function<std::optional<uint32_t>(const std::string& name)>;
std::optional<std::vector<uint8_t>> answer_dns_query(std::span<const uint8_t> packet,
                                                     const DnsLookup& lookup, uint32_t ttl_s = 5);

// Builds a query for tests and tools: one question, RD set.
std::vector<uint8_t> build_dns_query(uint16_t id, std::string_view name, uint16_t type);

struct DnsAnswer {
  uint16_t id = 0;
  uint8_t rcode = 0;
  bool authoritative = false;
  std::vector<uint32_t> a_records;  // host order
};
// Parses a reply (for tests and tools). Errors: kBadRequest.
StatusOr<DnsAnswer> parse_dns_answer(std::span<const uint8_t> packet);

class DnsServer {
 public:
  struct Stats {
    int64_t queries = 0;    // well-formed queries answered
    int64_t answers = 0;    // of which with an A record
    int64_t nxdomain = 0;   // of which NXDOMAIN
    int64_t malformed = 0;  // packets dropped
  };

  // Runs on `io` (the AsioEventLoop's io_context, so records are read on the
  // loop thread without locks). Nothing listens until listen().
  explicit DnsServer(boost::asio::io_context& io, uint32_t ttl_s = 5);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Listens on UDP and TCP at address:port (port 0: an ephemeral UDP port,
  // then TCP on the same number). Errors: kUnavailable naming the address
  // (in use, not local, no permission for port 53).
  Status listen(const std::string& address, int port);
  // The bound port (0 before listen()).
  int port() const { return port_; }
  // Closes the sockets; pending handlers end.
  void stop();

  // `name` -> IPv4 `ip`; an empty ip removes it. A non-IPv4 ip is ignored
  // (returns false). Loop thread.
  bool set_record(const std::string& name, const std::string& ip);
  std::optional<uint32_t> lookup(const std::string& name) const;
  const Stats& stats() const { return stats_; }

 private:
  struct TcpSession;
  Status bind_both(const boost::asio::ip::address& addr, int port);
  void receive();
  void accept();
  std::optional<std::vector<uint8_t>> answer(std::span<const uint8_t> packet);

  boost::asio::io_context& io_;
  uint32_t ttl_s_;
  boost::asio::ip::udp::socket udp_;
  boost::asio::ip::tcp::acceptor tcp_;
  boost::asio::ip::udp::endpoint peer_;
  std::array<uint8_t, 4096> rx_{};
  int port_ = 0;
  std::unordered_map<std::string, uint32_t> records_;
  Stats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Keeps a DnsServer's records equal to the Services of a Store (watched with
// their current state): `<svc>.<ns>.svc.<domain>` -> spec.clusterIP, removed
// when the Service goes or becomes headless. With it a node's DNS answers from
// whatever Store it is given (the control plane's, or an agent's RemoteStore
// cache), so every node resolves the same names. Loop thread.
class ServiceDnsRecords {
 public:
  // Both borrowed; they must outlive this object.
  ServiceDnsRecords(Store& store, DnsServer& dns, std::string cluster_domain = "cluster.local");
  // Removes the records it set.
  ~ServiceDnsRecords();
  ServiceDnsRecords(const ServiceDnsRecords&) = delete;
  ServiceDnsRecords& operator=(const ServiceDnsRecords&) = delete;

  // Errors: the Store refuses the watch (e.g. a RemoteStore without a
  // Service informer: kFailedPrecondition).
  Status start();
  // The names it serves now -> IP, sorted.
  const std::map<std::string, std::string>& records() const { return records_; }

 private:
  void on_event(const WatchEvent& e);
  Store& store_;
  DnsServer& dns_;
  std::string domain_;
  std::map<std::string, std::string> records_;  // DNS name -> IP
  WatchHandle watch_;
};

}  // namespace flotilla::live
