// live::NodeServices on an agent's RemoteStore, against an in-process API
// server over an InMemoryStore, all on one AsioEventLoop (no Docker, no root):
// the RemoteStore caches every Service and EndpointSlice; NodeServices'
// DNS server answers <svc>.<ns>.svc.cluster.local with the ClusterIP; its
// proxy spreads connections round-robin over the ready endpoints (three TCP
// servers on 127.0.0.2-4), follows an endpoint leaving, and after the API
// server was away long enough for the watch history to expire (410 Gone) the
// re-listed cache brings the proxy and the DNS up to date.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/apiclient/api_client.h"
#include "backends/apiclient/remote_store.h"
#include "backends/apiserver/api_server.h"
#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "backends/live/dns_server.h"
#include "backends/live/live_network.h"
#include "backends/live/node_services.h"
#include "backends/live/tcp_proxy.h"
#include "core/api/codec.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"
#include "tests/backends/apiclient/agent_control_plane.h"

namespace flotilla::apiclient {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// A TCP server on `ip`:port that writes its name and closes each connection.
class NameServer {
 public:
  NameServer(asio::io_context& io, const std::string& ip, int port, std::string name)
      : acceptor_(io), name_(std::move(name)) {
    tcp::endpoint at(asio::ip::make_address(ip), static_cast<uint16_t>(port));
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen();
    accept();
  }
  int port() const { return acceptor_.local_endpoint().port(); }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      auto sock = std::make_shared<tcp::socket>(std::move(s));
      asio::async_write(*sock, asio::buffer(name_),
                        [sock](boost::system::error_code, size_t) { sock->close(); });
      accept();
    });
  }
  tcp::acceptor acceptor_;
  std::string name_;
};

// Blocking client helpers, run on a thread while the loop runs.
std::string fetch(const std::string& ip, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The A record the DNS server at 127.0.0.1:port gives `name` ("" for none,
// "NXDOMAIN" for that answer).
std::string resolve(int port, const std::string& name) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  auto q = live::build_dns_query(77, name, live::kDnsTypeA);
  ::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  uint8_t buf[512];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
  if (n <= 0) return "timeout";
  auto a = live::parse_dns_answer(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
  if (!a.is_ok()) return "malformed";
  if (a->rcode == live::kDnsRcodeNxDomain) return "NXDOMAIN";
  if (a->a_records.empty()) return "";
  in_addr ia{htonl(a->a_records[0])};
  return ::inet_ntoa(ia);
}

int free_port() {
  asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

class NodeServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StoreOptions so;
    so.enforce_namespaces = true;
    so.history_size = 8;  // so a short outage expires a watch (410 Gone)
    server_store_ = std::make_unique<store::InMemoryStore>(loop_, uid_random_, so);
    for (const char* ns : {"default", "shop"}) {
      api::Namespace n;
      n.mutable_metadata()->set_name(ns);
      ASSERT_TRUE(server_store_->create(api::share(n)).is_ok());
    }
    start_server(0);
    auto c = ApiClient::create(loop_.io_context(), {.server = server_->url()});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    client_ = std::move(*c);
    // Three backends on one port, at three loopback addresses.
    backends_.push_back(
        std::make_unique<NameServer>(loop_.io_context(), "127.0.0.2", 0, "pod-a"));
    backend_port_ = backends_[0]->port();
    backends_.push_back(
        std::make_unique<NameServer>(loop_.io_context(), "127.0.0.3", backend_port_, "pod-b"));
    backends_.push_back(
        std::make_unique<NameServer>(loop_.io_context(), "127.0.0.4", backend_port_, "pod-c"));
    host_port_ = free_port();
    other_host_port_ = free_port();
  }

  void start_server(uint16_t port) {
    apiserver::ApiServerOptions o;
    o.address = "127.0.0.1";
    o.port = port;
    server_ = std::make_unique<apiserver::ApiServer>(loop_, *server_store_, o);
    Status s = server_->start();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    server_port_ = server_->port();
  }

  void apply(const std::string& yaml) {
    auto d = api::decode_manifests(yaml, "test.yaml");
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    for (const auto& obj : *d) {
      const auto& m = api::meta_of(*obj.object);
      auto old = server_store_->get(obj.kind, m.namespace_(), m.name());
      auto r = old.is_ok() ? server_store_->update(obj.object) : server_store_->create(obj.object);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    }
  }

  // Each namespace's Service on its own free host port.
  std::string service(const std::string& ns, const std::string& vip) {
    int hp = ns == "default" ? host_port_ : other_host_port_;
    return "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: " + ns +
           ", annotations: {flotilla.io/host-port: \"" + std::to_string(hp) +
           "\"}}\nspec: {clusterIP: " + vip + ", clusterIPs: [" + vip +
           "], ports: [{port: 80}]}\n";
  }
  // Service "web"'s EndpointSlice: the ready endpoints `ips`.
  std::string endpoints(const std::string& ns, const std::vector<std::string>& ips) {
    std::string eps;
    for (const auto& ip : ips) eps += (eps.empty() ? "" : ", ") + ("{addresses: [" + ip + "]}");
    return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, "
           "namespace: " + ns + ", labels: {kubernetes.io/service-name: web}}\n"
           "addressType: IPv4\nendpoints: [" + eps + "]\nports: [{port: " +
           std::to_string(backend_port_) + "}]\n";
  }

  // The remote agent's side: a RemoteStore caching Services and EndpointSlices,
  // and NodeServices on it (DNS on 127.0.0.1, no bridge, no VIPs).
  void start_node(RemoteStoreOptions o = {}) {
    o.informers = service_informers();
    remote_ = std::make_unique<RemoteStore>(loop_, *client_, o);
    remote_->start();
    ASSERT_TRUE(loop_.run_until([&] { return remote_->synced(); }, seconds(10)))
        << remote_->last_error().to_string();
    live::NodeServicesOptions no;
    no.proxy.node_name = "remote-1";
    no.proxy.min_sync_period = milliseconds(20);
    no.gateway = "127.0.0.1";
    no.dns_port = 0;
    services_ = std::make_unique<live::NodeServices>(loop_, *remote_, network_, random_, no);
    Status s = services_->start();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    ASSERT_NE(services_->dns(), nullptr) << services_->warnings().front();
  }

  // Which backend served each of n connections to the Service's host port.
  std::map<std::string, int> spread(int n) {
    return off_loop(loop_, [port = host_port_, n] {
      std::map<std::string, int> seen;
      for (int i = 0; i < n; ++i) ++seen[fetch("127.0.0.1", port)];
      return seen;
    });
  }

  std::string dns(const std::string& name) {
    int port = services_->dns()->port();
    return off_loop(loop_, [port, name] { return resolve(port, name); });
  }

  // The DNS server has a record for `name` (set from the watch, through the loop).
  bool dns_knows(const std::string& name) {
    return loop_.run_until([&] { return services_->dns()->lookup(name).has_value(); },
                           seconds(10));
  }

  bool proxy_has(int n) {
    return loop_.run_until(
        [&] { return services_->decisions().endpoints("default/web", 80).size() == size_t(n); },
        seconds(10));
  }

  live::AsioEventLoop loop_;
  apiserver::SplitMix64Stream uid_random_{11};
  sim::SimRandom random_{3};
  live::LiveNetwork network_{loop_};
  std::unique_ptr<store::InMemoryStore> server_store_;
  std::unique_ptr<apiserver::ApiServer> server_;
  std::unique_ptr<ApiClient> client_;
  std::vector<std::unique_ptr<NameServer>> backends_;
  uint16_t server_port_ = 0;
  int backend_port_ = 0;
  int host_port_ = 0;
  int other_host_port_ = 0;
  std::unique_ptr<RemoteStore> remote_;
  std::unique_ptr<live::NodeServices> services_;
};

TEST_F(NodeServicesTest, DnsAndRoundRobinProxyFollowTheRemoteServicesAndEndpoints) {
  apply(service("default", "10.96.7.7"));
  apply(endpoints("default", {"127.0.0.2", "127.0.0.3", "127.0.0.4"}));
  apply(service("shop", "10.96.7.8"));
  start_node();

  // Every namespace is cached.
  auto listed = remote_->list(api::Kind::kService, {});
  ASSERT_TRUE(listed.is_ok()) << listed.status().to_string();
  EXPECT_EQ(listed->items.size(), 2u);
  EXPECT_TRUE(remote_->get(api::Kind::kEndpointSlice, "default", "web-1").is_ok());

  // DNS: the Service's name in each namespace, its ClusterIP.
  ASSERT_TRUE(dns_knows("web.default.svc.cluster.local"));
  ASSERT_TRUE(dns_knows("web.shop.svc.cluster.local"));
  EXPECT_EQ(dns("web.default.svc.cluster.local"), "10.96.7.7");
  EXPECT_EQ(dns("web.shop.svc.cluster.local"), "10.96.7.8");
  EXPECT_EQ(dns("nope.default.svc.cluster.local"), "NXDOMAIN");

  // The proxy: 30 connections, round-robin over the 3 endpoints.
  ASSERT_TRUE(proxy_has(3));
  auto seen = spread(30);
  EXPECT_EQ(seen, (std::map<std::string, int>{{"pod-a", 10}, {"pod-b", 10}, {"pod-c", 10}}));

  // An endpoint leaves (its pod was deleted): no more traffic to it.
  apply(endpoints("default", {"127.0.0.2", "127.0.0.4"}));
  ASSERT_TRUE(proxy_has(2));
  seen = spread(10);
  EXPECT_EQ(seen, (std::map<std::string, int>{{"pod-a", 5}, {"pod-c", 5}}));

  // A Service deleted: its name goes from DNS.
  ASSERT_TRUE(server_store_->remove(api::Kind::kService, "shop", "web").is_ok());
  ASSERT_TRUE(loop_.run_until([&] { return services_->dns()->lookup("web.shop.svc.cluster.local") ==
                                           std::nullopt; },
                              seconds(10)));
  EXPECT_EQ(dns("web.shop.svc.cluster.local"), "NXDOMAIN");
  EXPECT_TRUE(services_->warnings().empty()) << services_->warnings().front();
}

TEST_F(NodeServicesTest, AfterTheWatchHistoryExpiredTheRelistBringsProxyAndDnsUpToDate) {
  apply(service("default", "10.96.7.7"));
  apply(endpoints("default", {"127.0.0.2", "127.0.0.3", "127.0.0.4"}));
  RemoteStoreOptions o;
  o.retry_initial = milliseconds(50);
  o.retry_max = milliseconds(200);
  start_node(o);
  ASSERT_TRUE(proxy_has(3));
  const uint64_t relists = remote_->stats().relists;

  // The API server goes away; meanwhile more changes than the watch history
  // holds, among them an endpoint leaving and a new Service.
  server_->stop();
  server_.reset();
  ASSERT_TRUE(loop_.run_until([&] { return !remote_->connected(); }, seconds(10)));
  apply(endpoints("default", {"127.0.0.3"}));
  apply(service("shop", "10.96.7.9"));
  for (int i = 0; i < 10; ++i) {
    apply("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: filler, "
          "namespace: shop, labels: {kubernetes.io/service-name: filler}}\naddressType: IPv4\n"
          "endpoints: [{addresses: [127.0.0." +
          std::to_string(10 + i) + "]}]\nports: [{port: 1}]\n");
  }
  start_server(server_port_);

  // Re-listed (the old version is gone), the cache and so the proxy and DNS
  // catch up.
  ASSERT_TRUE(proxy_has(1)) << remote_->last_error().to_string();
  EXPECT_GT(remote_->stats().relists, relists);
  EXPECT_EQ(spread(6), (std::map<std::string, int>{{"pod-b", 6}}));
  ASSERT_TRUE(dns_knows("web.shop.svc.cluster.local"));
  EXPECT_EQ(dns("web.shop.svc.cluster.local"), "10.96.7.9");
}

}  // namespace
}  // namespace flotilla::apiclient
