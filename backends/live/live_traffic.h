// Live request traffic: the scenario's `traffic:` streams (sim::TrafficSpec) as
// real HTTP requests. Arrivals (Poisson, constant, bursts) are drawn from the
// stream "traffic/<name>" and scheduled on the AsioEventLoop; each request opens
// a TCP connection to the Service's host port (the TcpServiceProxy), sends
// `GET /` and reads the answer, with the spec's timeout and retries. Every
// request ends as REQUEST_SERVED (latency, endpoint = the pod that answered) or
// REQUEST_FAILED (reason), exactly as sim::TrafficGenerator records them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/live/asio_event_loop.h"
#include "core/ports/network.h"
#include "core/ports/random.h"
#include "core/ports/trace.h"
#include "sim/traffic/traffic.h"

namespace flotilla::live {

// One answered HTTP request.
struct HttpAnswer {
  int status = 0;    // 200, 503, ...
  std::string body;  // the demo server answers its pod name
};

// GET `path` from `target` over a fresh TCP connection (HTTP/1.1,
// Connection: close), reading until the server closes. `done` runs on the
// loop. Errors: kUnavailable (refused, reset, closed before a status line),
// kDeadlineExceeded (no whole answer within `timeout`). Loop thread only.
void http_get(AsioEventLoop& loop, const NetEndpoint& target, const std::string& path,
              Duration timeout, Callback<StatusOr<HttpAnswer>> done);

// Where a stream's requests go: the host address of the Service port, and the
// Service's "<ns>/<name>" for the trace.
struct LiveTarget {
  NetEndpoint address;
  std::string service;
};
// Resolves a stream's target at each attempt (the Service may appear late).
// Errors are recorded as the request's failure reason.
using LiveTargetResolver = std::function<StatusOr<LiveTarget>(const sim::TrafficSpec& spec)>;

class LiveTrafficGenerator {
 public:
  // Borrows every argument. Loop thread only.
  LiveTrafficGenerator(AsioEventLoop& loop, Random& random, TraceSink& trace,
                       LiveTargetResolver resolve);
  ~LiveTrafficGenerator();
  LiveTrafficGenerator(const LiveTrafficGenerator&) = delete;
  LiveTrafficGenerator& operator=(const LiveTrafficGenerator&) = delete;

  // Starts a client stream at spec.start (relative to now). `node` names the
  // client's node in the trace.
  void add(const sim::TrafficSpec& spec, const std::string& node);
  // No new requests; requests in flight are abandoned without a record.
  void stop();

  const sim::TrafficStats& stats() const { return stats_; }
  // Served requests by the pod that answered (the demo server's body).
  const std::map<std::string, int64_t>& served_by() const { return served_by_; }
  int in_flight() const { return in_flight_; }

 private:
  struct Stream;
  struct Request;
  void schedule_next_arrival(Stream& s);
  void send(const std::shared_ptr<Request>& r);
  void fail(const std::shared_ptr<Request>& r, const std::string& reason,
            const std::string& message);

  AsioEventLoop& loop_;
  Random& random_;
  TraceSink& trace_;
  LiveTargetResolver resolve_;
  std::vector<std::unique_ptr<Stream>> streams_;
  sim::TrafficStats stats_;
  std::map<std::string, int64_t> served_by_;
  int in_flight_ = 0;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace flotilla::live
