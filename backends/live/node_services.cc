#include "backends/live/node_services.h"

#include <utility>

#include "backends/live/dns_server.h"
#include "backends/live/tcp_proxy.h"
#include "backends/live/vip_addresses.h"

namespace flotilla::live {

namespace {

TcpServiceProxyOptions data_path_options(const NodeServicesOptions& o) {
  TcpServiceProxyOptions to;
  to.host_address = o.host_address;
  to.host_port_offset = o.host_port_offset;
  to.max_retries = o.max_retries;
  if (!o.gateway.empty() && o.gateway != o.host_address) to.extra_addresses = {o.gateway};
  if (!o.bridge.empty()) {
    to.listen_on_vip = true;
    to.vip_device = o.bridge;
  }
  return to;
}

}  // namespace

NodeServices::NodeServices(AsioEventLoop& loop, Store& store, Network& network, Random& random,
                           NodeServicesOptions options, TraceSink* trace)
    : loop_(loop),
      store_(store),
      network_(network),
      random_(random),
      options_(std::move(options)),
      trace_(trace),
      decisions_(std::make_unique<proxy::ServiceProxy>(loop_, store_, network_, random_,
                                                       options_.proxy, trace_)),
      tcp_(std::make_unique<TcpServiceProxy>(loop_, store_, *decisions_,
                                             data_path_options(options_))) {}

NodeServices::~NodeServices() { stop(); }

Status NodeServices::start() {
  if (started_) return Status::ok();
  started_ = true;
  // DNS first, so a pod started next finds its resolver answering.
  if (options_.dns && !options_.gateway.empty()) {
    dns_ = std::make_unique<DnsServer>(loop_.io_context());
    Status ds = dns_->listen(options_.gateway, options_.dns_port);
    if (ds.is_ok()) {
      dns_address_ = options_.gateway + ":" + std::to_string(dns_->port());
      dns_records_ =
          std::make_unique<ServiceDnsRecords>(store_, *dns_, options_.proxy.cluster_domain);
      FLOTILLA_RETURN_IF_ERROR(dns_records_->start());
    } else {
      warnings_.push_back("pods cannot resolve Service names: " + ds.message());
      dns_.reset();
    }
  }
  if (!options_.bridge.empty()) {
    vip_addresses_ = std::make_unique<InterfaceAddresses>(options_.bridge);
    vip_sync_ = std::make_unique<ServiceVipAddresses>(store_, *vip_addresses_);
    FLOTILLA_RETURN_IF_ERROR(vip_sync_->start());
  }
  FLOTILLA_RETURN_IF_ERROR(decisions_->start());
  return tcp_->start();
}

void NodeServices::stop() {
  if (!started_) return;
  started_ = false;
  // Keep what the parts saw before they go.
  warnings_.insert(warnings_.end(), tcp_->warnings().begin(), tcp_->warnings().end());
  tcp_->stop();
  if (vip_sync_) {
    warnings_.insert(warnings_.end(), vip_sync_->warnings().begin(), vip_sync_->warnings().end());
    vip_sync_.reset();
  }
  if (vip_addresses_) {
    Status s = vip_addresses_->remove_all();
    if (!s.is_ok()) warnings_.push_back(s.message());
    vip_addresses_.reset();
  }
  dns_records_.reset();
  if (dns_) dns_->stop();
  dns_.reset();
  dns_address_.clear();
}

StatusOr<NetEndpoint> NodeServices::host_endpoint(const std::string& service_key,
                                                  int port) const {
  auto hp = tcp_->host_port(service_key, port);
  if (!hp.is_ok()) return hp.status();
  return NetEndpoint{options_.host_address, *hp};
}

std::vector<std::string> NodeServices::warnings() const {
  std::vector<std::string> out = warnings_;
  if (started_) {
    out.insert(out.end(), tcp_->warnings().begin(), tcp_->warnings().end());
    if (vip_sync_) out.insert(out.end(), vip_sync_->warnings().begin(), vip_sync_->warnings().end());
  }
  return out;
}

}  // namespace flotilla::live
