// LiveNetwork against loopback listeners we own: TCP and HTTP probes (OK,
// refused, timeout, bad status), connect(), and DNS records reaching the
// attached DnsServer. Every wait is a condition with a deadline.
#include "backends/live/live_network.h"

#include <gtest/gtest.h>

#include <optional>

#include "backends/live/dns_server.h"
#include "tests/backends/live_net/local_servers.h"

namespace flotilla::live {
namespace {

using testing::FullBacklogListener;
using testing::NameServer;
using testing::SilentServer;

// A port with nothing listening: bound then released.
int free_port(boost::asio::io_context& io) {
  boost::asio::ip::tcp::acceptor a(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

class LiveNetworkTest : public ::testing::Test {
 protected:
  // Runs the probe and waits (deadline 5 s) for its status; checks that the
  // callback came through the loop, not from inside probe().
  Status probe(ProbeRequest r) {
    std::optional<Status> got;
    bool returned = false;
    net_.probe(r, [&](Status s) {
      EXPECT_TRUE(returned) << "callback ran inside probe()";
      got = std::move(s);
    });
    returned = true;
    EXPECT_TRUE(loop_.run_until([&] { return got.has_value(); }, seconds(5)));
    return got.value_or(internal_error("no answer"));
  }
  ProbeRequest tcp(int port, Duration timeout = seconds(1)) {
    ProbeRequest r;
    r.kind = ProbeRequest::Kind::kTcp;
    r.from_node = "node-1";
    r.target = {"127.0.0.1", port};
    r.timeout = timeout;
    return r;
  }
  ProbeRequest http(int port, std::string path = "/healthz", Duration timeout = seconds(1)) {
    ProbeRequest r = tcp(port, timeout);
    r.kind = ProbeRequest::Kind::kHttp;
    r.http_path = std::move(path);
    return r;
  }

  AsioEventLoop loop_;
  LiveNetwork net_{loop_};
};

TEST_F(LiveNetworkTest, TcpProbeOfAListenerIsOk) {
  NameServer server(loop_.io_context(), "a");
  EXPECT_TRUE(probe(tcp(server.port())).is_ok());
  EXPECT_EQ(net_.in_flight(), 0);
}

TEST_F(LiveNetworkTest, TcpProbeOfAClosedPortIsRefused) {
  const int port = free_port(loop_.io_context());
  Status s = probe(tcp(port));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("refused"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);
}

TEST_F(LiveNetworkTest, TcpProbeTimesOutWhenTheListenerDropsSyns) {
  FullBacklogListener blackhole;
  ASSERT_TRUE(blackhole.full()) << "could not fill the accept queue";
  const TimePoint start = loop_.now();
  Status s = probe(tcp(blackhole.port(), milliseconds(300)));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.to_string();
  EXPECT_NE(s.message().find("300ms"), std::string::npos) << s.message();
  EXPECT_GE(loop_.now() - start, milliseconds(290));
}

TEST_F(LiveNetworkTest, HttpProbeSucceedsFor2xxAnd3xx) {
  NameServer ok(loop_.io_context(), "ok", 200);
  NameServer redirect(loop_.io_context(), "moved", 302);
  EXPECT_TRUE(probe(http(ok.port())).is_ok());
  EXPECT_TRUE(probe(http(redirect.port())).is_ok());
  EXPECT_EQ(ok.served(), 1);
  EXPECT_EQ(redirect.served(), 1);
}

TEST_F(LiveNetworkTest, HttpProbeFailsForAnErrorStatusAndSaysWhich) {
  NameServer broken(loop_.io_context(), "broken", 503);
  NameServer missing(loop_.io_context(), "missing", 404);
  Status s = probe(http(broken.port(), "/ready"));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("returned status 503"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("/ready"), std::string::npos) << s.message();
  Status m = probe(http(missing.port()));
  EXPECT_EQ(m.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(m.message().find("404"), std::string::npos) << m.message();
}

TEST_F(LiveNetworkTest, HttpProbeTimesOutWhenTheServerNeverAnswers) {
  SilentServer silent(loop_.io_context());
  Status s = probe(http(silent.port(), "/", milliseconds(200)));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("waiting for the HTTP status line"), std::string::npos)
      << s.message();
}

TEST_F(LiveNetworkTest, HttpProbeOfAClosedPortIsUnavailable) {
  EXPECT_EQ(probe(http(free_port(loop_.io_context()))).code(), StatusCode::kUnavailable);
}

TEST_F(LiveNetworkTest, ProbeOfANonAddressIsABadRequest) {
  ProbeRequest r = tcp(80);
  r.target.ip = "web.default";
  EXPECT_EQ(probe(r).code(), StatusCode::kBadRequest);
}

TEST_F(LiveNetworkTest, ConnectOpensAndClosesAndReportsRefusal) {
  NameServer server(loop_.io_context(), "a");
  std::optional<Status> ok, refused;
  net_.connect("node-1", {"127.0.0.1", server.port()}, seconds(1), [&](Status s) { ok = s; });
  net_.connect("node-1", {"127.0.0.1", free_port(loop_.io_context())}, seconds(1),
               [&](Status s) { refused = s; });
  ASSERT_TRUE(loop_.run_until([&] { return ok && refused; }, seconds(5)));
  EXPECT_TRUE(ok->is_ok()) << ok->to_string();
  EXPECT_EQ(refused->code(), StatusCode::kUnavailable);
  EXPECT_EQ(server.served(), 0);  // a connect sends no request
}

TEST_F(LiveNetworkTest, ManyConcurrentProbesAllAnswer) {
  NameServer server(loop_.io_context(), "a");
  const int closed = free_port(loop_.io_context());
  int ok = 0, failed = 0;
  for (int i = 0; i < 50; ++i) {
    net_.probe(tcp(i % 2 == 0 ? server.port() : closed), [&](Status s) {
      (s.is_ok() ? ok : failed)++;
    });
  }
  ASSERT_TRUE(loop_.run_until([&] { return ok + failed == 50; }, seconds(5)));
  EXPECT_EQ(ok, 25);
  EXPECT_EQ(failed, 25);
}

TEST_F(LiveNetworkTest, DestroyedNetworkNeverCallsBack) {
  SilentServer silent(loop_.io_context());
  bool called = false;
  {
    LiveNetwork net(loop_);
    net.probe(http(silent.port(), "/", milliseconds(50)), [&](Status) { called = true; });
  }
  // A later probe with a longer timeout answering means the first one's
  // deadline has passed too.
  std::optional<Status> later;
  net_.probe(http(silent.port(), "/", milliseconds(100)), [&](Status s) { later = s; });
  ASSERT_TRUE(loop_.run_until([&] { return later.has_value(); }, seconds(5)));
  EXPECT_EQ(later->code(), StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(called);
}

TEST_F(LiveNetworkTest, DnsRecordsReachTheAttachedServer) {
  net_.set_dns_record("Web.Default.svc.cluster.local.", "10.96.0.10");
  DnsServer dns(loop_.io_context());
  net_.attach_dns(&dns);  // existing records are loaded
  EXPECT_EQ(dns.lookup("web.default.svc.cluster.local"), 0x0a60000au);
  net_.set_dns_record("db.default.svc.cluster.local", "10.96.0.11");
  EXPECT_EQ(dns.lookup("db.default.svc.cluster.local"), 0x0a60000bu);
  net_.set_dns_record("web.default.svc.cluster.local", "");
  EXPECT_FALSE(dns.lookup("web.default.svc.cluster.local").has_value());
  EXPECT_EQ(net_.dns_records().size(), 1u);
  net_.attach_dns(nullptr);
}

}  // namespace
}  // namespace flotilla::live
