// TcpServiceProxy on loopback: three real backend servers answering their
// names, a Service and EndpointSlices in a real InMemoryStore, the core ServiceProxy
// deciding, LiveNetwork doing its health checks. Clients are blocking HTTP GETs
// on helper threads while the loop runs; waits are conditions with deadlines.
#include "backends/live/tcp_proxy.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/live/live_network.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "tests/backends/live/proxy_test_support.h"
#include "tests/backends/live_net/local_servers.h"

namespace flotilla::live {
namespace {

using testing::create_slices;
using testing::http_get;
using testing::NameServer;
using testing::service_object;

class TcpProxyTest : public testing::ProxyTest {
 protected:
  TcpProxyTest() : ProxyTest(7) {
    proxy::ServiceProxyOptions o = decision_options();
    o.health.interval = milliseconds(50);
    o.health.timeout = milliseconds(200);
    o.health.fall = 3;
    o.health.rise = 2;
    o.health.passive_cooldown = seconds(30);
    TcpServiceProxyOptions to;
    to.host_port_offset = 0;  // overridden by the host-port annotation
    make_proxies(o, to);
    for (const char* name : {"web-a", "web-b", "web-c"}) {
      servers_.push_back(std::make_unique<NameServer>(loop_.io_context(), name));
    }
  }

  // Service "web" over the three name servers; its host port.
  int start_web() {
    std::vector<int> ports;
    for (auto& s : servers_) ports.push_back(s->port());
    return ProxyTest::start_web(ports);
  }
  // One GET through the proxy.
  std::optional<std::string> get(int port) {
    return off_loop([port] { return http_get(port); });
  }

  std::vector<std::unique_ptr<NameServer>> servers_;
};

TEST_F(TcpProxyTest, ThirtyRequestsReachAllThreeBackendsRoundRobin) {
  const int port = start_web();
  ASSERT_GT(port, 0);
  std::map<std::string, int> seen;
  for (int i = 0; i < 30; ++i) {
    auto body = get(port);
    ASSERT_TRUE(body.has_value()) << "request " << i << " failed";
    ++seen[*body];
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{{"web-a", 10}, {"web-b", 10}, {"web-c", 10}}));
  for (auto& s : servers_) EXPECT_EQ(s->served(), 10) << s->name();
  // Every connection was released: no active count is left on any endpoint.
  ASSERT_TRUE(loop_.run_until([&] { return proxy_->stats().active == 0; }, seconds(5)));
  EXPECT_EQ(proxy_->stats().forwarded, 30);
  EXPECT_EQ(proxy_->stats().no_backend, 0);
}

TEST_F(TcpProxyTest, AKilledBackendIsRetriedPastAndMarkedDown) {
  const int port = start_web();
  ASSERT_GT(port, 0);
  const NetEndpoint dead{"127.0.0.1", servers_[1]->port()};
  servers_[1]->close();  // web-b now refuses connections
  std::map<std::string, int> seen;
  for (int i = 0; i < 12; ++i) {
    auto body = get(port);
    ASSERT_TRUE(body.has_value()) << "request " << i << " failed";
    ++seen[*body];
  }
  EXPECT_EQ(seen.count("web-b"), 0u);
  EXPECT_EQ(seen["web-a"] + seen["web-c"], 12);
  EXPECT_GE(seen["web-a"], 5);
  EXPECT_GE(seen["web-c"], 5);
  // Active checks (TCP, every 50 ms, fall 3) take it down.
  ASSERT_TRUE(loop_.run_until(
      [&] {
        const proxy::EndpointHealth* h = decisions_->health().health(dead);
        return h != nullptr && h->state == proxy::EndpointHealth::State::kDown;
      },
      seconds(5)));
  EXPECT_GE(proxy_->stats().connect_failures, 1);
  EXPECT_EQ(proxy_->stats().no_backend, 0);
}

TEST_F(TcpProxyTest, AllBackendsDeadClosesTheClientAfterBoundedRetries) {
  const int port = start_web();
  ASSERT_GT(port, 0);
  for (auto& s : servers_) s->close();
  EXPECT_FALSE(get(port).has_value());
  EXPECT_EQ(proxy_->stats().connect_failures, 3);  // 1 + max_retries
  EXPECT_EQ(proxy_->stats().no_backend, 1);
}

TEST_F(TcpProxyTest, SliceChangeSendsTrafficToTheNewBackend) {
  const int port = start_web();
  ASSERT_GT(port, 0);
  servers_.push_back(std::make_unique<NameServer>(loop_.io_context(), "web-d"));
  // web-a is replaced by web-d: web-d's slice added, web-a's removed.
  ASSERT_TRUE(create_slices(store_, "web", {servers_[3]->port()}));
  ASSERT_TRUE(store_
                  .remove(api::Kind::kEndpointSlice, "default",
                          "web-" + std::to_string(servers_[0]->port()))
                  .is_ok());
  const NetEndpoint d{"127.0.0.1", servers_[3]->port()};
  ASSERT_TRUE(loop_.run_until(
      [&] {
        auto eps = decisions_->endpoints("default/web", 80);
        return std::find(eps.begin(), eps.end(), d) != eps.end();
      },
      seconds(5)));
  const int a_before = servers_[0]->served();
  std::map<std::string, int> seen;
  for (int i = 0; i < 9; ++i) {
    auto body = get(port);
    ASSERT_TRUE(body.has_value());
    ++seen[*body];
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{{"web-b", 3}, {"web-c", 3}, {"web-d", 3}}));
  EXPECT_EQ(servers_[0]->served(), a_before);
}

TEST_F(TcpProxyTest, ListenersFollowServicesAndHostPortsDefaultToAnOffset) {
  // A free port F, reached as service port 1234 + offset (F - 1234).
  const int free = free_port();
  TcpServiceProxyOptions to;
  to.host_port_offset = free - 1234;
  TcpServiceProxy offset_proxy(loop_, store_, *decisions_, to);
  ASSERT_TRUE(offset_proxy.start().is_ok());
  ASSERT_TRUE(store_.create(service_object("api", 1234)).is_ok());
  ASSERT_TRUE(loop_.run_until([&] { return offset_proxy.host_port("default/api", 1234).is_ok(); },
                              seconds(5)));
  EXPECT_EQ(*offset_proxy.host_port("default/api", 1234), free);
  EXPECT_EQ(offset_proxy.listening(), (std::vector<NetEndpoint>{{"127.0.0.1", free}}));
  EXPECT_EQ(offset_proxy.host_port("default/nope", 80).status().code(), StatusCode::kNotFound);
  // No endpoints yet: the client is closed, nothing is forwarded.
  EXPECT_FALSE(get(free).has_value());
  EXPECT_EQ(offset_proxy.stats().no_backend, 1);
  ASSERT_TRUE(store_.remove(api::Kind::kService, "default", "api").is_ok());
  ASSERT_TRUE(loop_.run_until([&] { return offset_proxy.listening().empty(); }, seconds(5)));
  EXPECT_EQ(offset_proxy.host_port("default/api", 1234).status().code(), StatusCode::kNotFound);
}

TEST_F(TcpProxyTest, APortInUseIsAWarningNotACrash) {
  boost::asio::ip::tcp::acceptor taken(
      loop_.io_context(),
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const int port = taken.local_endpoint().port();
  ASSERT_TRUE(proxy_->start().is_ok());
  ASSERT_TRUE(store_
                  .create(service_object("busy", 80, {{std::string(kHostPortAnnotation),
                                                     std::to_string(port)}}))
                  .is_ok());
  ASSERT_TRUE(loop_.run_until([&] { return !proxy_->warnings().empty(); }, seconds(5)));
  auto hp = proxy_->host_port("default/busy", 80);
  EXPECT_EQ(hp.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(hp.status().message().find(std::to_string(port)), std::string::npos)
      << hp.status().message();
}

TEST_F(TcpProxyTest, LargeTransfersAreSplicedBothWaysWithHalfClose) {
  // An echo backend: reads until EOF, then writes everything back and closes.
  boost::asio::ip::tcp::acceptor echo(
      loop_.io_context(),
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  struct Echo {
    boost::asio::ip::tcp::socket s;
    std::string data;
    std::array<char, 65536> buf{};
  };
  std::function<void(std::shared_ptr<Echo>)> pump = [&](std::shared_ptr<Echo> e) {
    e->s.async_read_some(boost::asio::buffer(e->buf),
                         [&, e](const boost::system::error_code& ec, size_t n) {
      e->data.append(e->buf.data(), n);
      if (!ec) return pump(e);
      boost::asio::async_write(e->s, boost::asio::buffer(e->data),
                               [e](const boost::system::error_code&, size_t) {
                                 boost::system::error_code ignored;
                                 e->s.shutdown(boost::asio::socket_base::shutdown_send, ignored);
                               });
    });
  };
  // Keeps accepting: the proxy's active health checks (TCP connects every
  // 50 ms) also land here, and the client's connection must be served even
  // when a check's connection is accepted first. A check closes without
  // sending, so its session reads EOF, writes nothing and ends.
  std::function<void()> accept_next = [&] {
    echo.async_accept([&](const boost::system::error_code& ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      pump(std::make_shared<Echo>(Echo{std::move(s), {}, {}}));
      accept_next();
    });
  };
  accept_next();
  ASSERT_TRUE(decisions_->start().is_ok());
  ASSERT_TRUE(store_.create(service_object("echo", 7)).is_ok());
  ASSERT_TRUE(create_slices(store_, "echo", {echo.local_endpoint().port()}));
  ASSERT_TRUE(loop_.run_until(
      [&] { return decisions_->endpoints("default/echo", 7).size() == 1; }, seconds(5)));
  auto bound = proxy_->add_listener("default/echo", 7, "127.0.0.1", 0);
  ASSERT_TRUE(bound.is_ok()) << bound.status().to_string();
  const int port = *bound;

  std::string payload(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 % 251);
  std::string back = off_loop(
      [port, &payload] {
        boost::asio::io_context io;
        boost::asio::ip::tcp::socket s(io);
        testing::CancelGuard guard(s);
        boost::system::error_code ec;
        s.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)},
                  ec);
        if (ec) return std::string();
        boost::asio::write(s, boost::asio::buffer(payload), ec);
        if (ec) return std::string();
        s.shutdown(boost::asio::socket_base::shutdown_send, ec);  // half-close: the echo answers
        std::string got;
        std::array<char, 65536> buf;
        while (!ec) got.append(buf.data(), s.read_some(boost::asio::buffer(buf), ec));
        return got;
      },
      seconds(20));
  EXPECT_TRUE(back == payload) << "got " << back.size() << " of " << payload.size() << " bytes";
  ASSERT_TRUE(loop_.run_until([&] { return proxy_->stats().active == 0; }, seconds(5)));
  EXPECT_EQ(proxy_->stats().bytes_up, static_cast<int64_t>(payload.size()));
  EXPECT_EQ(proxy_->stats().bytes_down, static_cast<int64_t>(payload.size()));
}

// The VIP path: when the Service's clusterIP is a local address (here one of
// 127.0.0.0/8, which Linux routes to lo; on a node, a VIP added to the bridge),
// the proxy also listens on VIP:port and picks by VIP. Extra addresses listen
// on the host port.
TEST_F(TcpProxyTest, ListensOnTheVipAndOnExtraAddressesWhenAsked) {
  TcpServiceProxyOptions to;
  to.host_port_offset = 0;
  to.listen_on_vip = true;
  to.extra_addresses = {"127.0.0.2"};
  TcpServiceProxy vip_proxy(loop_, store_, *decisions_, to);
  const int port = free_port();
  ASSERT_TRUE(store_.create(service_object("web", port, {}, "127.0.77.1")).is_ok());
  ASSERT_TRUE(create_slices(store_, "web",
                            {servers_[0]->port(), servers_[1]->port(), servers_[2]->port()}));
  ASSERT_TRUE(decisions_->start().is_ok());
  ASSERT_TRUE(vip_proxy.start().is_ok());
  ASSERT_TRUE(loop_.run_until(
      [&] {
        return vip_proxy.listening().size() == 3 &&
               decisions_->endpoints("default/web", port).size() == 3;
      },
      seconds(5)));
  EXPECT_EQ(vip_proxy.listening(),
            (std::vector<NetEndpoint>{{"127.0.0.1", port}, {"127.0.0.2", port},
                                      {"127.0.77.1", port}}));
  std::map<std::string, int> seen;
  for (const char* ip : {"127.0.77.1", "127.0.0.2", "127.0.77.1"}) {
    auto body = off_loop([ip, port]() -> std::optional<std::string> {
      boost::asio::io_context io;
      boost::asio::ip::tcp::socket s(io);
      testing::CancelGuard guard(s);
      boost::system::error_code ec;
      s.connect({boost::asio::ip::make_address(ip), static_cast<unsigned short>(port)}, ec);
      if (ec) return std::nullopt;
      boost::asio::write(s, boost::asio::buffer(std::string("GET / HTTP/1.1\r\n\r\n")), ec);
      std::string all;
      char buf[1024];
      while (!ec) all.append(buf, s.read_some(boost::asio::buffer(buf), ec));
      auto at = all.find("\r\n\r\n");
      if (at == std::string::npos) return std::nullopt;
      return all.substr(at + 4, all.size() - at - 5);
    });
    ASSERT_TRUE(body.has_value()) << ip;
    ++seen[*body];
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{{"web-a", 1}, {"web-b", 1}, {"web-c", 1}}));
}

}  // namespace
}  // namespace flotilla::live
