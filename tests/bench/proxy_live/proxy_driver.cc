// flotilla-proxy-driver: the live TCP service proxy standalone, for
// scripts/bench-proxy.sh. It builds a one-Service cluster state in an
// in-memory store (Service default/bench, EndpointSlices = the --backend list), runs
// the core ServiceProxy for the decisions (round-robin, active TCP health
// checks through LiveNetwork) and TcpServiceProxy for the bytes, on one
// AsioEventLoop thread, until SIGINT/SIGTERM.
//   proxy_driver --listen 127.0.0.1:18080 --backend 127.0.0.1:19101 [--backend ...]
//                [--buffer BYTES] [--balancer round-robin|random|least-connections]
// With --respond ADDR:PORT [--name NAME] it is instead a tiny HTTP/1.1
// keep-alive responder on one thread (the benchmark's backend): every request
// gets 200 and "NAME\n".
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/write.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/live/asio_event_loop.h"
#include "backends/live/live_network.h"
#include "backends/live/tcp_proxy.h"
#include "core/proxy/service_proxy.h"
#include "core/store/in_memory_store.h"
#include "sim/engine/random.h"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace flotilla;

bool split_host_port(const std::string& s, std::string& host, int& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  host = s.substr(0, colon);
  port = std::atoi(s.c_str() + colon + 1);
  return !host.empty() && port > 0 && port < 65536;
}

// The responder: per connection one 16 KiB buffer; answers each complete
// request head in the buffer (pipelining works), never parses bodies.
struct Responder : std::enable_shared_from_this<Responder> {
  Responder(tcp::socket s, const std::string& reply, const std::string& close_reply)
      : socket(std::move(s)), response(reply), close_response(close_reply) {}
  tcp::socket socket;
  const std::string& response;
  const std::string& close_response;
  std::string in;
  std::string out;
  char buf[16384];

  void read() {
    auto self = shared_from_this();
    socket.async_read_some(asio::buffer(buf), [self](const boost::system::error_code& e, size_t n) {
      if (e) return;
      self->in.append(self->buf, n);
      size_t pos;
      bool close = false;
      self->out.clear();
      while (!close && (pos = self->in.find("\r\n\r\n")) != std::string::npos) {
        // "Connection: close" (as wrk -H sends it): answer so, then close.
        close = self->in.find("onnection: close") < pos;
        self->in.erase(0, pos + 4);
        self->out += close ? self->close_response : self->response;
      }
      if (self->in.size() > 65536) return;
      if (self->out.empty()) return self->read();
      asio::async_write(self->socket, asio::buffer(self->out),
                        [self, close](const boost::system::error_code& we, size_t) {
                          if (we) return;
                          if (!close) return self->read();
                          boost::system::error_code ignored;
                          self->socket.shutdown(tcp::socket::shutdown_send, ignored);
                        });
    });
  }
};

void accept_responders(tcp::acceptor& acceptor, const std::string& reply,
                       const std::string& close_reply) {
  acceptor.async_accept([&](const boost::system::error_code& e, tcp::socket s) {
    if (e) return;
    boost::system::error_code ignored;
    s.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Responder>(std::move(s), reply, close_reply)->read();
    accept_responders(acceptor, reply, close_reply);
  });
}

int usage() {
  std::fprintf(stderr,
               "usage: proxy_driver --listen ADDR:PORT --backend ADDR:PORT [--backend ...]\n"
               "                    [--buffer BYTES] [--balancer NAME]\n"
               "       proxy_driver --respond ADDR:PORT [--name NAME]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen, respond, name = "backend", balancer = "round-robin";
  std::vector<std::string> backends;
  size_t buffer = 32 * 1024;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--listen") listen = next();
    else if (a == "--backend") backends.push_back(next());
    else if (a == "--respond") respond = next();
    else if (a == "--name") name = next();
    else if (a == "--balancer") balancer = next();
    else if (a == "--buffer") buffer = static_cast<size_t>(std::atol(next().c_str()));
    else return usage();
  }

  live::AsioEventLoop loop;
  asio::signal_set signals(loop.io_context(), SIGINT, SIGTERM);
  signals.async_wait([&loop](const boost::system::error_code&, int) { loop.stop(); });

  if (!respond.empty()) {
    std::string host;
    int port = 0;
    if (!split_host_port(respond, host, port)) return usage();
    const std::string body = name + "\n";
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n";
    const std::string reply = head + "\r\n" + body;
    const std::string close_reply = head + "Connection: close\r\n\r\n" + body;
    tcp::acceptor acceptor(loop.io_context());
    boost::system::error_code ec;
    tcp::endpoint ep(asio::ip::make_address(host, ec), static_cast<unsigned short>(port));
    if (!ec) acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::fprintf(stderr, "responder: cannot listen on %s: %s\n", respond.c_str(),
                   ec.message().c_str());
      return 1;
    }
    accept_responders(acceptor, reply, close_reply);
    std::printf("responding on %s as %s\n", respond.c_str(), name.c_str());
    std::fflush(stdout);
    loop.run();
    return 0;
  }

  std::string listen_host;
  int listen_port = 0;
  if (!split_host_port(listen, listen_host, listen_port) || backends.empty()) return usage();

  sim::SimRandom random(1);
  auto store_rng = random.stream("store");
  store::InMemoryStore store(loop, *store_rng);
  live::LiveNetwork network(loop);

  api::Service svc;
  svc.set_api_version("v1");
  svc.set_kind("Service");
  svc.mutable_metadata()->set_name("bench");
  svc.mutable_metadata()->set_namespace_("default");
  (*svc.mutable_metadata()->mutable_annotations())["flotilla.io/balancer"] = balancer;
  auto* sp = svc.mutable_spec()->add_ports();
  sp->set_port(80);
  sp->set_protocol("TCP");
  api::EndpointSlice slice;
  slice.set_api_version("discovery.k8s.io/v1");
  slice.set_kind("EndpointSlice");
  slice.mutable_metadata()->set_namespace_("default");
  (*slice.mutable_metadata()->mutable_labels())["kubernetes.io/service-name"] = "bench";
  slice.set_address_type("IPv4");
  std::vector<api::EndpointSlice> slices;  // one a backend: each its own port
  for (const auto& b : backends) {
    std::string host;
    int port = 0;
    if (!split_host_port(b, host, port)) return usage();
    api::EndpointSlice& one = slices.emplace_back(slice);
    one.mutable_metadata()->set_name("bench-" + std::to_string(slices.size()));
    one.add_endpoints()->add_addresses(host);
    one.add_ports()->set_port(port);
  }
  if (auto s = store.create(std::make_shared<api::Service>(svc)); !s) {
    std::fprintf(stderr, "%s\n", s.status().to_string().c_str());
    return 1;
  }
  for (const api::EndpointSlice& one : slices) {
    if (auto s = store.create(std::make_shared<api::EndpointSlice>(one)); !s) {
      std::fprintf(stderr, "%s\n", s.status().to_string().c_str());
      return 1;
    }
  }

  proxy::ServiceProxyOptions options;
  options.node_name = "bench-node";
  proxy::ServiceProxy decisions(loop, store, network, random, options);
  if (Status s = decisions.start(); !s) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  live::TcpServiceProxyOptions to;
  to.buffer_bytes = buffer;
  live::TcpServiceProxy proxy(loop, store, decisions, to);
  auto bound = proxy.add_listener("default/bench", 80, listen_host, listen_port);
  if (!bound) {
    std::fprintf(stderr, "%s\n", bound.status().to_string().c_str());
    return 1;
  }
  loop.run_until([&] { return decisions.endpoints("default/bench", 80).size() == backends.size(); },
                 seconds(5));
  std::printf("flotilla proxy on %s:%d -> %zu backends\n", listen_host.c_str(), *bound,
              backends.size());
  std::fflush(stdout);
  loop.run();
  const auto& st = proxy.stats();
  std::printf("accepted %lld forwarded %lld no_backend %lld connect_failures %lld up %lld B down %lld B\n",
              static_cast<long long>(st.accepted), static_cast<long long>(st.forwarded),
              static_cast<long long>(st.no_backend), static_cast<long long>(st.connect_failures),
              static_cast<long long>(st.bytes_up), static_cast<long long>(st.bytes_down));
  return 0;
}
