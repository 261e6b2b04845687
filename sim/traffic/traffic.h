// The simulated request traffic of a scenario: clients calling Services. Each
// client stream has an arrival process (Poisson, constant, bursts), requests go
// through the node's ServiceProxy (core/proxy, the same balancer and health
// logic as live mode) to a pod, where a per-pod server with a concurrency limit
// and a FIFO queue serves them for a drawn service time. Client timeouts and
// retries as configured. Every request ends as REQUEST_SERVED (with latency) or
// REQUEST_FAILED (with a reason) in the trace.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ports/trace.h"
#include "core/proxy/service_proxy.h"
#include "sim/engine/distribution.h"
#include "sim/engine/simulator.h"
#include "sim/world/world.h"

namespace flotilla::sim {

struct TrafficSpec {
  std::string name;           // "traffic[0]" or the user's name; names the random stream
  std::string service;        // "web" (namespace default), "ns/name", or a DNS name
  int port = 0;               // Service port; 0: its only port
  enum class Arrival { kPoisson, kConstant, kBursts };
  Arrival arrival = Arrival::kPoisson;
  double rate_per_s = 10;     // Poisson/constant rate; the base rate for bursts
  double burst_rate_per_s = 0;
  Duration burst_every = minutes(10);
  Duration burst_length = seconds(30);
  Distribution service_time = Distribution::constant(5e6);  // ns
  int concurrency = 0;        // per pod; 0: unlimited
  int queue_limit = 1000;     // per pod FIFO queue; a full queue refuses
  Duration timeout = seconds(1);
  int retries = 0;            // client retries after a failure or timeout
  int clients = 100;          // distinct client IPs (matters for ClientIP affinity)
  std::string from_node;      // whose proxy the clients use; "" = the first node
  Duration start = Duration(0);
  Duration end = Duration::max();  // relative to the run start
  // Downstream calls a pod of this service makes, in order, after its own
  // service time and while holding its concurrency slot (a three-tier app:
  // frontend -> backend -> db). Each call's spec uses service, port,
  // service_time, concurrency, queue_limit, timeout, retries and its own calls.
  std::vector<TrafficSpec> calls;
};

// Parses one `traffic:` entry. Errors are kInvalid and name the field path and
// line. Example:
//   {service: web, port: 80, arrival: {poisson: {rate: 50}}, service_time: {exponential:
//    {mean: 20ms}}, concurrency: 1, timeout: 1s, retries: 1}
StatusOr<TrafficSpec> parse_traffic_spec(const YAML::Node& node, std::string_view path,
                                         const DistributionParseOptions& options = {});

struct TrafficStats {
  int64_t sent = 0;
  int64_t served = 0;
  int64_t failed = 0;
  int64_t retries = 0;
};

class TrafficGenerator {
 public:
  // `proxy_for(node)` gives the ServiceProxy of a node (created by the caller).
  TrafficGenerator(Simulator& sim, World& world, Random& random, TraceSink& trace,
                   std::function<proxy::ServiceProxy&(const std::string& node)> proxy_for);
  ~TrafficGenerator();

  // Starts a client stream at spec.start (relative to now).
  void add(const TrafficSpec& spec);
  const TrafficStats& stats() const { return stats_; }

 private:
  struct Stream;
  struct Request;
  struct Server;

  void schedule_next_arrival(Stream& s);
  void send(uint32_t req);
  void on_routed(uint32_t req, uint32_t gen, const proxy::RouteResult& r);
  void start_service(Server& server, const std::string& key, uint32_t req);
  void complete(const std::string& key, uint32_t req, uint32_t gen);
  void next_call(uint32_t req);
  void on_child_done(uint32_t parent, uint32_t parent_gen, bool ok, const std::string& why);
  void on_timeout(uint32_t req, uint32_t gen);
  void served(uint32_t req);
  void fail(uint32_t req, std::string_view reason, const std::string& message);
  void finish(uint32_t req, bool ok, const std::string& why);
  void release_server(uint32_t req);
  uint32_t alloc_request();

  Simulator& sim_;
  World& world_;
  Random& random_;
  TraceSink& trace_;
  std::function<proxy::ServiceProxy&(const std::string&)> proxy_for_;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::vector<Request> requests_;
  std::vector<uint32_t> free_requests_;
  std::unordered_map<std::string, Server> servers_;  // by endpoint "ip:port"
  TrafficStats stats_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flotilla::sim
