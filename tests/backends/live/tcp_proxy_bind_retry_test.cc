// TcpServiceProxy when a Service's host port is taken by another program, on
// loopback (no Docker): the proxy warns, keeps retrying the bind on a backoff
// timer (no Service or EndpointSlice change needed), and serves the port once the
// occupier is gone; a deleted Service stops its retries. Fixed host ports
// 28431-28432 (below Linux's ephemeral range; no other test uses 28xxx).
// Waits are conditions with deadlines.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/live/tcp_proxy.h"
#include "tests/backends/live/proxy_test_support.h"
#include "tests/backends/live_net/local_servers.h"

namespace flotilla::live {
namespace {

using testing::CancelGuard;
using testing::create_slices;
using testing::http_get;
using testing::NameServer;
using testing::service_object;

constexpr int kRecoverPort = 28431;
constexpr int kDeletePort = 28432;

// Another program's listener on 127.0.0.1:<port>: a plain socket, nothing on
// the loop. The kernel completes connects into its backlog; accept_within
// tells whether one arrived.
class PortOccupier {
 public:
  explicit PortOccupier(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // past TIME_WAIT only
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    listening_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                 ::listen(fd_, 16) == 0;
  }
  ~PortOccupier() { close(); }
  bool listening() const { return listening_; }
  // True when a connection is accepted within `ms`.
  bool accept_within(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return false;
    const int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return false;
    ::close(c);
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool listening_ = false;
};

// A blocking connect to 127.0.0.1:port (for a helper thread): true if it
// completed.
bool connects(int port) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  CancelGuard guard(s);
  boost::system::error_code ec;
  s.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, ec);
  return !ec;
}

class TcpProxyBindRetryTest : public testing::ProxyTest {
 protected:
  TcpProxyBindRetryTest() : ProxyTest(5) {
    TcpServiceProxyOptions to;
    to.bind_retry_initial = milliseconds(100);
    to.bind_retry_max = milliseconds(400);
    make_proxies(decision_options(), to);
  }

  // Creates Service "web" on `host_port` with one backend, starts both proxies.
  void start_web_on(int host_port) {
    ASSERT_TRUE(store_
                    .create(service_object("web", 80, {{std::string(kHostPortAnnotation),
                                                        std::to_string(host_port)}}))
                    .is_ok());
    ASSERT_TRUE(create_slices(store_, "web", {backend_.port()}));
    ASSERT_TRUE(decisions_->start().is_ok());
    ASSERT_TRUE(proxy_->start().is_ok());
  }
  // The bind warnings so far that name `port`.
  std::vector<std::string> bind_warnings(int port) const {
    std::vector<std::string> out;
    for (const auto& w : proxy_->warnings()) {
      if (w.find("127.0.0.1:" + std::to_string(port)) != std::string::npos) out.push_back(w);
    }
    return out;
  }

  NameServer backend_{loop_.io_context(), "web-a"};
};

TEST_F(TcpProxyBindRetryTest, AHostPortFreedLaterIsBoundWithoutAnyServiceChange) {
  PortOccupier occupier(kRecoverPort);
  ASSERT_TRUE(occupier.listening()) << "port " << kRecoverPort << " is in use on this host";
  start_web_on(kRecoverPort);
  ASSERT_TRUE(loop_.run_until([&] { return !bind_warnings(kRecoverPort).empty(); }, seconds(5)));
  EXPECT_EQ(proxy_->host_port("default/web", 80).status().code(), StatusCode::kUnavailable);

  // Meanwhile the port is the occupier's: a client reaches it, not the proxy.
  EXPECT_TRUE(off_loop([] { return connects(kRecoverPort); }));
  EXPECT_TRUE(occupier.accept_within(2000));
  EXPECT_EQ(proxy_->stats().accepted, 0);

  // Retries back off 100ms, 200ms, 400ms, then stay at the 400ms cap: one
  // warning per attempt.
  ASSERT_TRUE(loop_.run_until([&] { return bind_warnings(kRecoverPort).size() >= 5; },
                              seconds(10)));
  const auto warned = bind_warnings(kRecoverPort);
  const std::vector<std::string> steps = {"(retrying in 100ms)", "(retrying in 200ms)",
                                          "(retrying in 400ms)", "(retrying in 400ms)",
                                          "(retrying in 400ms)"};
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_NE(warned[i].find(steps[i]), std::string::npos) << i << ": " << warned[i];
  }
  EXPECT_EQ(proxy_->pending_bind_retries(),
            (std::map<std::string, Duration>{{"default/web", milliseconds(400)}}));

  // The occupier goes: with no Service or EndpointSlice change, a later retry
  // binds and a client through the port reaches the backend.
  occupier.close();
  ASSERT_TRUE(loop_.run_until([&] { return proxy_->host_port("default/web", 80).is_ok(); },
                              seconds(5)));
  EXPECT_EQ(*proxy_->host_port("default/web", 80), kRecoverPort);
  EXPECT_EQ(proxy_->listening(), (std::vector<NetEndpoint>{{"127.0.0.1", kRecoverPort}}));
  EXPECT_TRUE(proxy_->pending_bind_retries().empty());
  auto body = off_loop([] { return http_get(kRecoverPort); });
  ASSERT_TRUE(body.has_value());
  EXPECT_EQ(*body, "web-a");
  EXPECT_EQ(backend_.served(), 1);
  EXPECT_EQ(proxy_->stats().forwarded, 1);
}

TEST_F(TcpProxyBindRetryTest, ADeletedServiceStopsRetrying) {
  PortOccupier occupier(kDeletePort);
  ASSERT_TRUE(occupier.listening()) << "port " << kDeletePort << " is in use on this host";
  start_web_on(kDeletePort);
  ASSERT_TRUE(loop_.run_until([&] { return bind_warnings(kDeletePort).size() >= 2; },
                              seconds(5)));
  EXPECT_EQ(proxy_->pending_bind_retries().count("default/web"), 1u);

  ASSERT_TRUE(store_.remove(api::Kind::kService, "default", "web").is_ok());
  ASSERT_TRUE(loop_.run_until([&] { return proxy_->pending_bind_retries().empty(); },
                              seconds(5)));
  // Its retry timer went with it: the freed port stays unbound.
  occupier.close();
  EXPECT_TRUE(proxy_->listening().empty());
  EXPECT_EQ(proxy_->host_port("default/web", 80).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace flotilla::live
