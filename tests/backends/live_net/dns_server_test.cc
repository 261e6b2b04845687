// DnsServer: the wire format by hand (queries, answers, NXDOMAIN, NODATA,
// malformed input dropped) and the server on 127.0.0.1:<ephemeral> over UDP
// and TCP, queried by a client on a helper thread.
#include "backends/live/dns_server.h"

#include <gtest/gtest.h>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <random>
#include <thread>

#include "backends/live/asio_event_loop.h"
#include "backends/live/live_network.h"

namespace flotilla::live {
namespace {

namespace asio = boost::asio;

std::optional<uint32_t> table(const std::string& name) {
  if (name == "web.default.svc.cluster.local") return 0x0a60000a;  // 10.96.0.10
  return std::nullopt;
}

TEST(DnsWireTest, AnswersAKnownNameWithItsARecord) {
  auto q = build_dns_query(0x1234, "Web.Default.svc.cluster.local", kDnsTypeA);
  auto reply = answer_dns_query(q, table, 7);
  ASSERT_TRUE(reply.has_value());
  auto a = parse_dns_answer(*reply);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->id, 0x1234);
  EXPECT_EQ(a->rcode, kDnsRcodeNoError);
  EXPECT_TRUE(a->authoritative);
  EXPECT_EQ(a->a_records, std::vector<uint32_t>{0x0a60000a});
  // The question is echoed and the TTL is the configured one.
  EXPECT_TRUE(std::equal(q.begin() + 12, q.end(), reply->begin() + 12));
  const size_t ttl_at = q.size() + 2 + 2 + 2;
  EXPECT_EQ((*reply)[ttl_at + 3], 7);
}

TEST(DnsWireTest, UnknownNameIsNxDomainAndOtherTypesAreNoData) {
  auto nx = parse_dns_answer(*answer_dns_query(
      build_dns_query(1, "db.default.svc.cluster.local", kDnsTypeA), table));
  ASSERT_TRUE(nx.is_ok());
  EXPECT_EQ(nx->rcode, kDnsRcodeNxDomain);
  EXPECT_TRUE(nx->a_records.empty());
  auto aaaa = parse_dns_answer(*answer_dns_query(
      build_dns_query(2, "web.default.svc.cluster.local", kDnsTypeAAAA), table));
  ASSERT_TRUE(aaaa.is_ok());
  EXPECT_EQ(aaaa->rcode, kDnsRcodeNoError);
  EXPECT_TRUE(aaaa->a_records.empty());
}

TEST(DnsWireTest, QueriesWithEdnsAdditionalRecordsAreAnswered) {
  auto q = build_dns_query(3, "web.default.svc.cluster.local", kDnsTypeA);
  q[11] = 1;  // ARCOUNT 1: an OPT record
  const uint8_t opt[] = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
  q.insert(q.end(), std::begin(opt), std::end(opt));
  auto a = parse_dns_answer(*answer_dns_query(q, table));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->a_records.size(), 1u);
}

TEST(DnsWireTest, MalformedPacketsAreDropped) {
  auto good = build_dns_query(4, "web.default.svc.cluster.local", kDnsTypeA);
  // Every truncation of a valid query.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(answer_dns_query(std::span(good.data(), n), table).has_value()) << n;
  }
  auto response = good;
  response[2] |= 0x80;  // QR set: a response is never answered
  EXPECT_FALSE(answer_dns_query(response, table).has_value());
  auto two_questions = good;
  two_questions[5] = 2;
  EXPECT_FALSE(answer_dns_query(two_questions, table).has_value());
  auto pointer = good;
  pointer[12] = 0xc0;  // a compression pointer in the question
  EXPECT_FALSE(answer_dns_query(pointer, table).has_value());
  auto long_label = good;
  long_label[12] = 200;  // label longer than the packet
  EXPECT_FALSE(answer_dns_query(long_label, table).has_value());
  // A name of 300 bytes in 63-byte labels.
  std::string huge;
  for (int i = 0; i < 5; ++i) huge += std::string(63, 'a') + ".";
  EXPECT_FALSE(answer_dns_query(build_dns_query(5, huge, kDnsTypeA), table).has_value());
  // Random garbage never crashes (and is answered only when it parses).
  std::mt19937 gen(99);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> junk(gen() % 80);
    for (auto& b : junk) b = static_cast<uint8_t>(gen());
    if (i % 2 == 0 && junk.size() > 4) junk[2] &= 0x07;  // mostly plausible headers
    auto r = answer_dns_query(junk, table);
    if (r) {
      EXPECT_TRUE(parse_dns_answer(*r).is_ok());
    }
  }
}

TEST(DnsWireTest, OtherOpcodesAreNotImplemented) {
  auto q = build_dns_query(6, "web.default.svc.cluster.local", kDnsTypeA);
  q[2] |= 0x10;  // opcode 2 (STATUS)
  auto a = parse_dns_answer(*answer_dns_query(q, table));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->rcode, kDnsRcodeNotImp);
}

class DnsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dns_.listen("127.0.0.1", 0).is_ok());
    ASSERT_GT(dns_.port(), 0);
    net_.attach_dns(&dns_);
    net_.set_dns_record("web.default.svc.cluster.local", "10.96.0.10");
  }
  void TearDown() override { net_.attach_dns(nullptr); }

  // Runs `fn` on a helper thread while the loop serves.
  template <typename Fn>
  auto off_loop(Fn fn) {
    using R = decltype(fn());
    std::atomic<bool> done{false};
    std::optional<R> result;
    std::thread t([&] {
      result.emplace(fn());
      done = true;
      loop_.post([] {});
    });
    EXPECT_TRUE(loop_.run_until([&] { return done.load(); }, seconds(10)));
    t.join();
    return std::move(*result);
  }

  // One UDP exchange; nullopt when no reply came within 300 ms.
  std::optional<std::vector<uint8_t>> udp(std::vector<uint8_t> packet) {
    const int port = dns_.port();
    return off_loop([packet, port]() -> std::optional<std::vector<uint8_t>> {
      // Plain sockets: Asio's blocking receive would poll past SO_RCVTIMEO.
      int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
      struct timeval tv{0, 300000};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(static_cast<uint16_t>(port));
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ::sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
      std::vector<uint8_t> buf(1500);
      ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
      ::close(fd);
      if (got < 0) return std::nullopt;
      const size_t n = static_cast<size_t>(got);
      buf.resize(n);
      return buf;
    });
  }

  AsioEventLoop loop_;
  DnsServer dns_{loop_.io_context()};
  LiveNetwork net_{loop_};
};

TEST_F(DnsServerTest, UdpQueryIsAnsweredFromTheRecordsOfTheNetwork) {
  auto reply = udp(build_dns_query(77, "web.default.svc.cluster.local", kDnsTypeA));
  ASSERT_TRUE(reply.has_value());
  auto a = parse_dns_answer(*reply);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->id, 77);
  EXPECT_EQ(a->a_records, std::vector<uint32_t>{0x0a60000a});

  net_.set_dns_record("web.default.svc.cluster.local", "");  // Service deleted
  auto gone = parse_dns_answer(*udp(build_dns_query(78, "web.default.svc.cluster.local",
                                                    kDnsTypeA)));
  ASSERT_TRUE(gone.is_ok());
  EXPECT_EQ(gone->rcode, kDnsRcodeNxDomain);
  EXPECT_EQ(dns_.stats().queries, 2);
  EXPECT_EQ(dns_.stats().nxdomain, 1);
}

TEST_F(DnsServerTest, MalformedUdpIsDroppedAndTheServerKeepsAnswering) {
  EXPECT_FALSE(udp({1, 2, 3}).has_value());
  EXPECT_FALSE(udp(std::vector<uint8_t>(40, 0xff)).has_value());
  auto a = parse_dns_answer(*udp(build_dns_query(9, "web.default.svc.cluster.local", kDnsTypeA)));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->a_records.size(), 1u);
  EXPECT_EQ(dns_.stats().malformed, 2);
}

TEST_F(DnsServerTest, TcpQueriesAreLengthPrefixedAndPipelined) {
  const int port = dns_.port();
  auto replies = off_loop([port] {
    asio::io_context io;
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
    std::vector<uint8_t> out;
    for (uint16_t id : {10, 11}) {
      auto q = build_dns_query(id, id == 10 ? "web.default.svc.cluster.local" : "x.y", kDnsTypeA);
      out.push_back(static_cast<uint8_t>(q.size() >> 8));
      out.push_back(static_cast<uint8_t>(q.size()));
      out.insert(out.end(), q.begin(), q.end());
    }
    asio::write(s, asio::buffer(out));
    std::vector<std::vector<uint8_t>> got;
    for (int i = 0; i < 2; ++i) {
      uint8_t len[2];
      asio::read(s, asio::buffer(len));
      std::vector<uint8_t> body((len[0] << 8) | len[1]);
      asio::read(s, asio::buffer(body));
      got.push_back(body);
    }
    return got;
  });
  ASSERT_EQ(replies.size(), 2u);
  auto first = parse_dns_answer(replies[0]);
  auto second = parse_dns_answer(replies[1]);
  ASSERT_TRUE(first.is_ok() && second.is_ok());
  EXPECT_EQ(first->id, 10);
  EXPECT_EQ(first->a_records, std::vector<uint32_t>{0x0a60000a});
  EXPECT_EQ(second->id, 11);
  EXPECT_EQ(second->rcode, kDnsRcodeNxDomain);
}

TEST_F(DnsServerTest, ListeningOnATakenPortIsAnError) {
  DnsServer other(loop_.io_context());
  Status s = other.listen("127.0.0.1", dns_.port());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find(std::to_string(dns_.port())), std::string::npos) << s.message();
}

}  // namespace
}  // namespace flotilla::live
