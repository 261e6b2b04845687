#include "sim/traffic/traffic.h"

#include <cmath>
#include <deque>

namespace flotilla::sim {

namespace {

std::string mark_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return "";
  return " (line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")";
}

Status field_error(const YAML::Node& n, const std::string& path, const std::string& what) {
  return Status(StatusCode::kInvalid, path + mark_of(n) + ": " + what);
}

StatusOr<double> positive_number(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return field_error(n, path, "expected a number");
  auto v = parse_number_with_suffix(n.Scalar());
  if (!v.is_ok() || *v <= 0) return field_error(n, path, "expected a positive number, got \"" + n.Scalar() + "\"");
  return *v;
}

StatusOr<int> non_negative_int(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return field_error(n, path, "expected an integer");
  try {
    size_t used = 0;
    long v = std::stol(n.Scalar(), &used);
    if (used != n.Scalar().size() || v < 0 || v > 1000000000) throw std::out_of_range("");
    return static_cast<int>(v);
  } catch (...) {
    return field_error(n, path, "expected a non-negative integer, got \"" + n.Scalar() + "\"");
  }
}

StatusOr<Duration> duration_field(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) return field_error(n, path, "expected a duration like 30s");
  auto d = parse_duration(n.Scalar());
  if (!d.is_ok()) return field_error(n, path, d.status().message());
  if (*d < Duration(0)) return field_error(n, path, "must not be negative");
  return *d;
}

std::string endpoint_key(const NetEndpoint& e) { return e.ip + ":" + std::to_string(e.port); }

// "web" -> "web.default"; "ns/web" -> "web.ns"; anything with a dot is a DNS
// name or a VIP.
std::string host_of(const std::string& service) {
  if (service.find('.') != std::string::npos) return service;
  if (auto slash = service.find('/'); slash != std::string::npos) {
    return service.substr(slash + 1) + "." + service.substr(0, slash);
  }
  return service + ".default";
}

std::string qualified(const std::string& service) {
  return service.find_first_of("/.") == std::string::npos ? "default/" + service : service;
}

}  // namespace

StatusOr<TrafficSpec> parse_traffic_spec(const YAML::Node& node, std::string_view path_view,
                                         const DistributionParseOptions& options) {
  const std::string path(path_view);
  if (!node.IsMap()) return field_error(node, path, "expected a mapping");
  TrafficSpec spec;
  spec.name = path;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const YAML::Node v = kv.second;
    const std::string p = path + "." + key;
    if (key == "name") {
      spec.name = v.Scalar();
    } else if (key == "service") {
      if (!v.IsScalar() || v.Scalar().empty()) return field_error(v, p, "expected a service name");
      spec.service = v.Scalar();
    } else if (key == "port") {
      auto n = non_negative_int(v, p);
      if (!n.is_ok()) return n.status();
      if (*n > 65535) return field_error(v, p, "must be between 1 and 65535");
      spec.port = *n;
    } else if (key == "arrival") {
      if (!v.IsMap() || v.size() != 1) {
        return field_error(v, p, "expected one of {poisson: {rate: R}}, {constant: {rate: R}}, "
                                 "{bursts: {rate: R, burst_rate: B, every: 10m, for: 30s}}");
      }
      const std::string kind = v.begin()->first.Scalar();
      const YAML::Node a = v.begin()->second;
      const std::string ap = p + "." + kind;
      if (kind == "poisson" || kind == "constant" || kind == "bursts") {
        spec.arrival = kind == "poisson" ? TrafficSpec::Arrival::kPoisson
                       : kind == "constant" ? TrafficSpec::Arrival::kConstant
                                            : TrafficSpec::Arrival::kBursts;
        if (!a.IsMap()) return field_error(a, ap, "expected a mapping with rate");
        if (!a["rate"]) return field_error(a, ap + ".rate", "Required value (requests per second)");
        for (const auto& akv : a) {
          const std::string ak = akv.first.Scalar();
          const std::string akp = ap + "." + ak;
          if (ak == "rate") {
            auto r = positive_number(akv.second, akp);
            if (!r.is_ok()) return r.status();
            spec.rate_per_s = *r;
          } else if (ak == "burst_rate" && kind == "bursts") {
            auto r = positive_number(akv.second, akp);
            if (!r.is_ok()) return r.status();
            spec.burst_rate_per_s = *r;
          } else if (ak == "every" && kind == "bursts") {
            auto d = duration_field(akv.second, akp);
            if (!d.is_ok()) return d.status();
            if (*d <= Duration(0)) return field_error(akv.second, akp, "must be positive");
            spec.burst_every = *d;
          } else if (ak == "for" && kind == "bursts") {
            auto d = duration_field(akv.second, akp);
            if (!d.is_ok()) return d.status();
            spec.burst_length = *d;
          } else {
            return field_error(akv.first, akp, "unknown field");
          }
        }
        if (kind == "bursts" && spec.burst_rate_per_s <= 0) {
          return field_error(a, ap + ".burst_rate", "Required value (requests per second during a burst)");
        }
      } else {
        return field_error(v, ap, "unknown arrival process (use poisson, constant or bursts)");
      }
    } else if (key == "service_time") {
      auto d = parse_duration_distribution(v, p, options);
      if (!d.is_ok()) return d.status();
      spec.service_time = *d;
    } else if (key == "concurrency") {
      auto n = non_negative_int(v, p);
      if (!n.is_ok()) return n.status();
      spec.concurrency = *n;
    } else if (key == "queue_limit") {
      auto n = non_negative_int(v, p);
      if (!n.is_ok()) return n.status();
      spec.queue_limit = *n;
    } else if (key == "timeout") {
      auto d = duration_field(v, p);
      if (!d.is_ok()) return d.status();
      if (*d <= Duration(0)) return field_error(v, p, "must be positive");
      spec.timeout = *d;
    } else if (key == "retries") {
      auto n = non_negative_int(v, p);
      if (!n.is_ok()) return n.status();
      if (*n > 10) return field_error(v, p, "at most 10 retries");
      spec.retries = *n;
    } else if (key == "clients") {
      auto n = non_negative_int(v, p);
      if (!n.is_ok()) return n.status();
      if (*n < 1 || *n > 65536) return field_error(v, p, "must be between 1 and 65536");
      spec.clients = *n;
    } else if (key == "from_node") {
      spec.from_node = v.Scalar();
    } else if (key == "calls") {
      if (!v.IsSequence()) return field_error(v, p, "expected a list of downstream calls");
      for (size_t i = 0; i < v.size(); ++i) {
        auto call = parse_traffic_spec(v[i], p + "[" + std::to_string(i) + "]", options);
        if (!call.is_ok()) return call.status();
        spec.calls.push_back(std::move(call).value());
      }
    } else if (key == "start") {
      auto d = duration_field(v, p);
      if (!d.is_ok()) return d.status();
      spec.start = *d;
    } else if (key == "end") {
      auto d = duration_field(v, p);
      if (!d.is_ok()) return d.status();
      spec.end = *d;
    } else {
      return field_error(kv.first, p, "unknown field (known: name, service, port, arrival, "
                                      "service_time, concurrency, queue_limit, timeout, retries, "
                                      "clients, from_node, start, end, calls)");
    }
  }
  if (spec.service.empty()) return field_error(node, path + ".service", "Required value");
  if (spec.end <= spec.start) return field_error(node, path + ".end", "must be after start");
  return spec;
}

struct TrafficGenerator::Stream {
  TrafficSpec spec;
  std::unique_ptr<RandomStream> rng;
  std::string host;  // what the proxy resolves
  TimePoint start, end;
  std::string node;
  uint32_t index = 0;
};

struct TrafficGenerator::Request {
  uint32_t stream = 0;
  const TrafficSpec* spec = nullptr;  // this tier: the stream's spec or one of its calls
  std::string host;                   // what the proxy resolves for this tier
  uint32_t parent = UINT32_MAX;       // the request waiting on this call, if any
  uint32_t parent_gen = 0;
  size_t next_call = 0;               // downstream calls made so far
  std::string server;                 // endpoint whose slot this request holds ("" none)
  uint32_t gen = 0;  // bumped per attempt and on finish; stale callbacks compare it
  bool in_use = false;
  int attempt = 0;
  int64_t arrival_ns = 0;
  std::string service;  // resolved "<ns>/<name>" once known
  std::string endpoint;
  uint32_t client = 0;
};

struct TrafficGenerator::Server {
  int busy = 0;
  std::deque<std::pair<uint32_t, uint32_t>> queue;  // (request, gen)
};

TrafficGenerator::TrafficGenerator(
    Simulator& sim, World& world, Random& random, TraceSink& trace,
    std::function<proxy::ServiceProxy&(const std::string& node)> proxy_for)
    : sim_(sim), world_(world), random_(random), trace_(trace), proxy_for_(std::move(proxy_for)) {}

TrafficGenerator::~TrafficGenerator() { *alive_ = false; }

void TrafficGenerator::add(const TrafficSpec& spec) {
  auto s = std::make_unique<Stream>();
  s->spec = spec;
  s->rng = random_.stream("traffic/" + spec.name);
  s->host = host_of(spec.service);
  s->node = spec.from_node.empty() && world_.node_count() > 0 ? world_.node(0).name : spec.from_node;
  s->start = sim_.now() + spec.start;
  s->end = spec.end == Duration::max() ? kTimeMax : sim_.now() + spec.end;
  s->index = static_cast<uint32_t>(streams_.size());
  Stream& ref = *s;
  streams_.push_back(std::move(s));
  std::weak_ptr<bool> alive = alive_;
  sim_.schedule_at(ref.start, [this, alive, &ref] {
    if (alive.expired()) return;
    schedule_next_arrival(ref);
  });
}

void TrafficGenerator::schedule_next_arrival(Stream& s) {
  const TrafficSpec& spec = s.spec;
  double rate = spec.rate_per_s;
  if (spec.arrival == TrafficSpec::Arrival::kBursts) {
    int64_t phase = (sim_.now() - s.start).count() % spec.burst_every.count();
    if (phase < spec.burst_length.count()) rate = spec.burst_rate_per_s;
  }
  Duration gap = spec.arrival == TrafficSpec::Arrival::kConstant
                     ? duration_from_seconds(1.0 / rate)
                     : duration_from_seconds(-std::log1p(-s.rng->next_double()) / rate);
  if (gap <= Duration(0)) gap = Duration(1);
  TimePoint next = sim_.now() + gap;
  if (next >= s.end) return;
  const uint32_t index = s.index;
  std::weak_ptr<bool> alive = alive_;
  sim_.schedule_at(next, [this, alive, &s, index] {
    if (alive.expired()) return;
    uint32_t r = alloc_request();
    Request& req = requests_[r];
    req.stream = index;
    req.spec = &s.spec;
    req.host = s.host;
    req.arrival_ns = to_nanos(sim_.now());
    req.attempt = 0;
    req.client = static_cast<uint32_t>(s.rng->next_below(static_cast<uint64_t>(s.spec.clients)));
    ++stats_.sent;
    send(r);
    schedule_next_arrival(s);
  });
}

uint32_t TrafficGenerator::alloc_request() {
  uint32_t r;
  if (!free_requests_.empty()) {
    r = free_requests_.back();
    free_requests_.pop_back();
  } else {
    r = static_cast<uint32_t>(requests_.size());
    requests_.emplace_back();
  }
  Request& req = requests_[r];
  req.in_use = true;
  ++req.gen;
  req.service.clear();
  req.endpoint.clear();
  req.server.clear();
  req.parent = UINT32_MAX;
  req.next_call = 0;
  req.attempt = 0;
  return r;
}

void TrafficGenerator::send(uint32_t r) {
  Request& req = requests_[r];
  Stream& s = *streams_[req.stream];
  const uint32_t gen = ++req.gen;
  req.next_call = 0;
  std::weak_ptr<bool> alive = alive_;
  sim_.schedule_after(req.spec->timeout, [this, alive, r, gen] {
    if (!alive.expired()) on_timeout(r, gen);
  });
  proxy::RouteRequest route;
  route.host = req.host;
  route.port = req.spec->port;
  route.client_ip = "172.31." + std::to_string(req.client / 256) + "." + std::to_string(req.client % 256);
  proxy_for_(s.node).route(route, [this, alive, r, gen](proxy::RouteResult result) {
    if (!alive.expired()) on_routed(r, gen, result);
  });
}

void TrafficGenerator::on_routed(uint32_t r, uint32_t gen, const proxy::RouteResult& result) {
  Request& req = requests_[r];
  if (!req.in_use || req.gen != gen) return;  // timed out meanwhile
  if (!result.service.empty()) req.service = result.service;
  if (!result.status.is_ok()) {
    fail(r, status_code_reason(result.status.code()), result.status.message());
    return;
  }
  const TrafficSpec& spec = *req.spec;
  std::string key = endpoint_key(result.endpoint);
  req.endpoint = key;
  Server& server = servers_[key];
  if (spec.concurrency == 0 || server.busy < spec.concurrency) {
    start_service(server, key, r);
  } else if (static_cast<int>(server.queue.size()) < spec.queue_limit) {
    server.queue.emplace_back(r, gen);
  } else {
    fail(r, "QueueFull", "pod " + key + " queue is full (" + std::to_string(spec.queue_limit) + ")");
  }
}

void TrafficGenerator::start_service(Server& server, const std::string& key, uint32_t r) {
  Request& req = requests_[r];
  ++server.busy;
  req.server = key;
  Duration d = req.spec->service_time.sample_duration(*streams_[req.stream]->rng);
  const uint32_t gen = req.gen;
  std::weak_ptr<bool> alive = alive_;
  sim_.schedule_after(d, [this, alive, key, r, gen] {
    if (!alive.expired()) complete(key, r, gen);
  });
}

void TrafficGenerator::release_server(uint32_t r) {
  Request& req = requests_[r];
  if (req.server.empty()) return;
  const std::string key = std::move(req.server);
  req.server.clear();
  Server& server = servers_[key];
  --server.busy;
  // The next queued request whose client is still waiting.
  while (!server.queue.empty()) {
    auto [next, next_gen] = server.queue.front();
    server.queue.pop_front();
    if (requests_[next].in_use && requests_[next].gen == next_gen) {
      start_service(server, key, next);
      break;
    }
  }
}

void TrafficGenerator::complete(const std::string& key, uint32_t r, uint32_t gen) {
  Request& req = requests_[r];
  if (!req.in_use || req.gen != gen || req.server != key) return;  // gave up meanwhile
  auto colon = key.rfind(':');
  NetEndpoint ep{key.substr(0, colon), std::stoi(key.substr(colon + 1))};
  if (world_.endpoint_state(ep) != EndpointState::kOk) {
    fail(r, "ConnectionReset", "pod " + key + " went away while serving the request");
    return;
  }
  next_call(r);
}

void TrafficGenerator::next_call(uint32_t r) {
  Request& req = requests_[r];
  if (req.next_call >= req.spec->calls.size()) {
    served(r);
    return;
  }
  // A downstream call, made from this pod while it holds its slot.
  const TrafficSpec* call = &req.spec->calls[req.next_call++];
  const uint32_t parent_gen = req.gen;
  const uint32_t stream = req.stream, client = req.client;
  uint32_t c = alloc_request();  // may move requests_: no references held across
  Request& child = requests_[c];
  child.stream = stream;
  child.spec = call;
  child.host = host_of(call->service);
  child.parent = r;
  child.parent_gen = parent_gen;
  child.arrival_ns = to_nanos(sim_.now());
  child.client = client;
  send(c);
}

void TrafficGenerator::on_child_done(uint32_t parent, uint32_t parent_gen, bool ok,
                                     const std::string& why) {
  Request& p = requests_[parent];
  if (!p.in_use || p.gen != parent_gen) return;  // the caller gave up meanwhile
  if (!ok) {
    fail(parent, "DownstreamFailed", why);
    return;
  }
  next_call(parent);
}

void TrafficGenerator::served(uint32_t r) {
  Request& req = requests_[r];
  trace::Record rec;
  rec.set_time_ns(to_nanos(sim_.now()));
  rec.set_type(trace::REQUEST_SERVED);
  rec.set_service(req.service.empty() ? qualified(req.spec->service) : req.service);
  rec.set_endpoint(req.endpoint);
  rec.set_node(streams_[req.stream]->node);
  rec.set_latency_ns(to_nanos(sim_.now()) - req.arrival_ns);
  rec.set_value(req.attempt + 1);
  trace_.record(rec);
  if (req.parent == UINT32_MAX) ++stats_.served;
  finish(r, true, "");
}

void TrafficGenerator::on_timeout(uint32_t r, uint32_t gen) {
  Request& req = requests_[r];
  if (!req.in_use || req.gen != gen) return;
  fail(r, "Timeout", "no answer within " + format_duration(req.spec->timeout));
}

void TrafficGenerator::fail(uint32_t r, std::string_view reason, const std::string& message) {
  release_server(r);
  Request& req = requests_[r];
  if (req.attempt < req.spec->retries) {
    ++req.attempt;
    ++stats_.retries;
    send(r);
    return;
  }
  const std::string service = req.service.empty() ? qualified(req.spec->service) : req.service;
  trace::Record rec;
  rec.set_time_ns(to_nanos(sim_.now()));
  rec.set_type(trace::REQUEST_FAILED);
  rec.set_service(service);
  rec.set_endpoint(req.endpoint);
  rec.set_node(streams_[req.stream]->node);
  rec.set_reason(std::string(reason));
  rec.set_message(message);
  rec.set_latency_ns(to_nanos(sim_.now()) - req.arrival_ns);
  rec.set_value(req.attempt + 1);
  trace_.record(rec);
  if (req.parent == UINT32_MAX) ++stats_.failed;
  finish(r, false, service + ": " + std::string(reason));
}

void TrafficGenerator::finish(uint32_t r, bool ok, const std::string& why) {
  release_server(r);
  Request& req = requests_[r];
  req.in_use = false;
  ++req.gen;
  free_requests_.push_back(r);
  if (req.parent != UINT32_MAX) {
    uint32_t parent = req.parent, parent_gen = req.parent_gen;
    req.parent = UINT32_MAX;
    on_child_done(parent, parent_gen, ok, why);
  }
}

}  // namespace flotilla::sim
