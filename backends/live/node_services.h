// NodeServices: everything one node does for Services, driven by a Store it
// watches (the control plane's in-process store, or an agent's RemoteStore
// cache of Services and EndpointSlices): the service proxy (the core decisions of
// proxy::ServiceProxy plus the TcpServiceProxy data path, listening on each
// Service's VIP:port and host port and forwarding round-robin to ready
// endpoints wherever they run), the VIPs as /32 addresses on the node's pod
// bridge, and a DNS server on the bridge's gateway answering
// <svc>.<ns>.svc.cluster.local with the ClusterIP. `flotilla live` runs one
// for the host, `flotilla agent` one per node.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/live/asio_event_loop.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "core/proxy/service_proxy.h"
#include "core/util/status.h"

namespace flotilla::live {

class DnsServer;
class InterfaceAddresses;
class ServiceDnsRecords;
class ServiceVipAddresses;
class TcpServiceProxy;

struct NodeServicesOptions {
  // The decisions' options: node name, cluster domain, health, sync period
  // (see ServiceProxyOptions::from_timing).
  proxy::ServiceProxyOptions proxy;
  // The pod network's bridge device: each Service's ClusterIP is added to it
  // and the proxy listens on VIP:port there. Empty: no VIPs (host ports only).
  std::string bridge;
  // The bridge's IPv4 address (the pods' gateway): the DNS server listens
  // here, and host ports are opened here too so pods reach them. Empty: no
  // DNS server.
  std::string gateway;
  // Serve DNS on gateway:dns_port (0: an ephemeral port, for tests).
  bool dns = true;
  int dns_port = 53;
  // Every Service port P is reachable on host_address:<P + host_port_offset>
  // (or its flotilla.io/host-port annotation).
  std::string host_address = "127.0.0.1";
  int host_port_offset = 30000;
  // Extra endpoints tried after a failed backend connect.
  int max_retries = 2;
};

class NodeServices {
 public:
  // Borrows everything; all must outlive this object. `trace` may be null.
  // Nothing happens until start().
  NodeServices(AsioEventLoop& loop, Store& store, Network& network, Random& random,
               NodeServicesOptions options, TraceSink* trace = nullptr);
  // stop().
  ~NodeServices();
  NodeServices(const NodeServices&) = delete;
  NodeServices& operator=(const NodeServices&) = delete;

  // Starts the DNS server, the VIP sync, the decisions and the data path.
  // Errors: the Store refuses a watch of Services or EndpointSlices (a RemoteStore
  // without those informers: kFailedPrecondition). What the host refuses (DNS
  // port taken, no CAP_NET_ADMIN for VIPs, a listener that cannot bind) is a
  // warning, not an error: Services stay reachable by host port. Call once.
  Status start();
  // Closes every listener and connection, stops the DNS server and removes
  // the VIPs this object added (the decisions stay, unused). Idempotent; not
  // followed by another start().
  void stop();

  proxy::ServiceProxy& decisions() { return *decisions_; }
  TcpServiceProxy& data_path() { return *tcp_; }
  // Null when DNS is off or could not listen.
  DnsServer* dns() { return dns_.get(); }
  // "gateway:port" of the DNS server ("" when none).
  std::string dns_address() const { return dns_address_; }
  // host_address:<port> of a Service port ("<ns>/<name>"). Errors as
  // TcpServiceProxy::host_port.
  StatusOr<NetEndpoint> host_endpoint(const std::string& service_key, int port) const;
  // Problems so far: DNS, VIPs, listeners; oldest first per part.
  std::vector<std::string> warnings() const;

 private:
  AsioEventLoop& loop_;
  Store& store_;
  Network& network_;
  Random& random_;
  NodeServicesOptions options_;
  TraceSink* trace_;
  std::vector<std::string> warnings_;
  std::string dns_address_;
  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<ServiceDnsRecords> dns_records_;
  std::unique_ptr<InterfaceAddresses> vip_addresses_;
  std::unique_ptr<ServiceVipAddresses> vip_sync_;
  std::unique_ptr<proxy::ServiceProxy> decisions_;
  std::unique_ptr<TcpServiceProxy> tcp_;
  bool started_ = false;
};

}  // namespace flotilla::live
