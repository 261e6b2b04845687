// TcpServiceProxy when a backend fails after the connect, on loopback (no
// Docker): a "crashing" backend reads the request and resets the connection
// without answering, as a killed server does to connections still in its
// accept queue. The proxy reports it failed (passive health) and, for a
// Service annotated flotilla.io/proxy-retry-unanswered=true, replays the
// request on another endpoint; it never replays once a byte was answered.
// Clients are blocking sockets on helper threads while the loop runs; waits
// are conditions with deadlines.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/live/live_network.h"
#include "backends/live/tcp_proxy.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "tests/backends/live/proxy_test_support.h"
#include "tests/backends/live_net/local_servers.h"

namespace flotilla::live {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using testing::http_get;
using testing::NameServer;

// Reads each request head, then answers the first `answer_first` requests of a
// connection ("ok", keep-alive) and resets the connection (SO_LINGER 0) on the
// next one without a byte of answer.
class CrashingServer {
 public:
  CrashingServer(asio::io_context& io, int answer_first)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        answer_first_(answer_first) {
    accept();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  int requests() const { return *requests_; }

 private:
  struct Session {
    explicit Session(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    asio::streambuf in;
    int answered = 0;
    const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
  };
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& e, tcp::socket s) {
      if (e) return;
      serve(std::make_shared<Session>(std::move(s)));
      accept();
    });
  }
  void serve(const std::shared_ptr<Session>& session) {
    asio::async_read_until(session->socket, session->in, "\r\n\r\n",
                           [this, session](const boost::system::error_code& re, size_t n) {
      if (re) return;  // a TCP health check: connected and closed
      session->in.consume(n);
      ++*requests_;
      if (session->answered < answer_first_) {
        ++session->answered;
        asio::async_write(session->socket, asio::buffer(session->ok),
                          [this, session](const boost::system::error_code& we, size_t) {
                            if (!we) serve(session);
                          });
        return;
      }
      boost::system::error_code ignored;
      session->socket.set_option(asio::socket_base::linger(true, 0), ignored);
      session->socket.close(ignored);  // RST, no answer
    });
  }
  tcp::acceptor acceptor_;
  int answer_first_;
  std::shared_ptr<int> requests_ = std::make_shared<int>(0);
};

class TcpProxyRedispatchTest : public testing::ProxyTest {
 protected:
  TcpProxyRedispatchTest() : ProxyTest(11) {
    proxy::ServiceProxyOptions o = decision_options();
    // Passive health only in effect: an active TCP check would pass on the
    // crashing server (it accepts) and bring it back mid-test.
    o.health.interval = seconds(60);
    o.health.passive_cooldown = seconds(60);
    make_proxies(o, TcpServiceProxyOptions{});
  }

  // Service "web" over `backend_ports`, with the redispatch annotation when
  // set; its host port.
  int start_web(const std::vector<int>& backend_ports, std::optional<bool> retry_unanswered) {
    std::map<std::string, std::string> annotations;
    if (retry_unanswered) {
      annotations[std::string(kRetryUnansweredAnnotation)] = *retry_unanswered ? "true" : "false";
    }
    return ProxyTest::start_web(backend_ports, annotations);
  }

  // `n` GETs one after another: how many got a 200.
  int gets(int port, int n) {
    return off_loop([port, n] {
      int ok = 0;
      for (int i = 0; i < n; ++i) ok += http_get(port).has_value() ? 1 : 0;
      return ok;
    });
  }
};

TEST_F(TcpProxyRedispatchTest, ARequestAResetBackendLeftUnansweredIsReplayedElsewhere) {
  NameServer a(loop_.io_context(), "web-a");
  CrashingServer crash(loop_.io_context(), 0);
  NameServer c(loop_.io_context(), "web-c");
  const int port = start_web({a.port(), crash.port(), c.port()}, true);
  ASSERT_GT(port, 0);
  EXPECT_EQ(gets(port, 9), 9);
  // The crashing backend got exactly one request (then passive health skips it).
  EXPECT_EQ(crash.requests(), 1);
  EXPECT_EQ(a.served() + c.served(), 9);
  EXPECT_EQ(proxy_->stats().backend_failures, 1);
  EXPECT_EQ(proxy_->stats().redispatched, 1);
  const proxy::EndpointHealth* h =
      decisions_->health().health(NetEndpoint{"127.0.0.1", crash.port()});
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->state, proxy::EndpointHealth::State::kSuspect);
  ASSERT_TRUE(loop_.run_until([&] { return proxy_->stats().active == 0; }, seconds(5)));
}

TEST_F(TcpProxyRedispatchTest, WithoutTheAnnotationTheResetReachesTheClientOnce) {
  NameServer a(loop_.io_context(), "web-a");
  CrashingServer crash(loop_.io_context(), 0);
  NameServer c(loop_.io_context(), "web-c");
  const int port = start_web({a.port(), crash.port(), c.port()}, std::nullopt);
  ASSERT_GT(port, 0);
  // One request is lost with the crash; passive health then avoids the backend.
  EXPECT_EQ(gets(port, 9), 8);
  EXPECT_EQ(crash.requests(), 1);
  EXPECT_EQ(proxy_->stats().backend_failures, 1);
  EXPECT_EQ(proxy_->stats().redispatched, 0);
}

TEST_F(TcpProxyRedispatchTest, AConnectionThatWasAnsweredIsNeverReplayed) {
  // The flaky backend answers a connection's first request, then resets on
  // its second; a healthy one stands by.
  CrashingServer flaky(loop_.io_context(), 1);
  NameServer b(loop_.io_context(), "web-b");
  const int port = start_web({flaky.port(), b.port()}, true);
  ASSERT_GT(port, 0);
  // Keep-alive connections until one lands on the flaky backend: its first
  // answer is "ok"; the second request on it must fail, not move to web-b.
  auto outcome = off_loop([port] {
    for (int attempt = 0; attempt < 4; ++attempt) {
      asio::io_context io;
      tcp::socket s(io);
      boost::system::error_code ec;
      s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
                ec);
      if (ec) return std::string("connect failed");
      const std::string req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
      asio::write(s, asio::buffer(req), ec);
      std::string first;
      char buf[512];
      while (first.find("\r\n\r\n") == std::string::npos || first.back() != '\n') {
        size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        first.append(buf, n);
      }
      if (first.find("\r\n\r\nok\n") == std::string::npos) continue;  // web-b (it closes)
      asio::write(s, asio::buffer(req), ec);
      std::string second;
      for (;;) {
        size_t n = s.read_some(asio::buffer(buf), ec);
        second.append(buf, n);
        if (ec) break;
      }
      return second.empty() ? std::string("closed") : "answered: " + second;
    }
    return std::string("never reached the flaky backend");
  });
  EXPECT_EQ(outcome, "closed");
  EXPECT_EQ(flaky.requests(), 2);
  EXPECT_EQ(proxy_->stats().redispatched, 0);
  EXPECT_EQ(proxy_->stats().backend_failures, 0);  // it had answered: not a backend failure
}

}  // namespace
}  // namespace flotilla::live
