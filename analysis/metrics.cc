#include "analysis/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "analysis/stats.h"
#include "analysis/trace_io.h"

namespace flotilla::analysis {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }
double sec(int64_t ns) { return static_cast<double>(ns) / 1e9; }
}  // namespace

void MetricsCollector::Level::set(int64_t now_ns, int64_t v) {
  if (started) time_at[value] += now_ns - since_ns;
  if (!started && v > 0) {
    started = true;
    start_ns = now_ns;
  }
  value = v;
  since_ns = now_ns;
}

void MetricsCollector::ControllerState::set(int64_t now_ns, int64_t d, int64_t r) {
  if (started) {
    if (ready >= desired) ok_ns += now_ns - since_ns;
  } else if (r >= d && d > 0) {
    started = true;
    start_ns = now_ns;
  }
  desired = d;
  ready = r;
  since_ns = now_ns;
}

MetricsCollector::MetricsCollector(TimePoint start, Duration bucket)
    : start_ns_(to_nanos(start)),
      bucket_ns_(std::max<int64_t>(1, bucket.count())),
      bucket_end_ns_(start_ns_ + bucket_ns_) {
  series_.bucket_s = sec(bucket_ns_);
  metrics_.start_s = sec(start_ns_);
  last_ns_ = start_ns_;
}

void MetricsCollector::close_one_bucket() {
  series_.t.push_back(sec(bucket_end_ns_));
  size_t n = series_.t.size();
  for (auto& [name, st] : services_) {
    auto& v = series_.ready_endpoints[name];
    v.resize(n - 1, 0);
    v.push_back(st.ready.value);
  }
  for (auto& [name, st] : controllers_) {
    auto& v = series_.replicas[name];
    v.resize(n - 1, {0, 0});
    v.emplace_back(st.desired, st.ready);
  }
  series_.nodes_up.push_back(nodes_up_);
  series_.requests.push_back(bucket_requests_);
  series_.requests_failed.push_back(bucket_failed_);
  if (bucket_latencies_.empty()) {
    series_.latency_p50_ms.push_back(kNaN);
    series_.latency_p99_ms.push_back(kNaN);
  } else {
    std::sort(bucket_latencies_.begin(), bucket_latencies_.end());
    series_.latency_p50_ms.push_back(percentile_sorted(bucket_latencies_, 0.5));
    series_.latency_p99_ms.push_back(percentile_sorted(bucket_latencies_, 0.99));
  }
  series_.cpu_allocated.push_back(cpu_fraction_);
  series_.memory_allocated.push_back(memory_fraction_);
  bucket_latencies_.clear();
  bucket_requests_ = bucket_failed_ = 0;
  bucket_end_ns_ += bucket_ns_;
}

void MetricsCollector::close_buckets_until(int64_t t_ns) {
  while (t_ns > bucket_end_ns_) close_one_bucket();
}

void MetricsCollector::add(const trace::Record& r) {
  const int64_t t = std::max(r.time_ns(), last_ns_);
  close_buckets_until(t);
  last_ns_ = t;
  ++metrics_.records;
  using trace::EventType;
  switch (r.type()) {
    case trace::NODE_ADDED: {
      auto [it, inserted] = nodes_.try_emplace(r.node());
      if (inserted) {
        ++metrics_.nodes.count;
        ++nodes_up_;
        it->second.up_since = t;
      }
      break;
    }
    case trace::NODE_DOWN: {
      auto it = nodes_.find(r.node());
      if (it == nodes_.end() || !it->second.up) break;
      it->second.up = false;
      it->second.down_since = t;
      up_ns_total_ += t - it->second.up_since;
      --nodes_up_;
      ++metrics_.nodes.failures;
      break;
    }
    case trace::NODE_UP: {
      auto it = nodes_.find(r.node());
      if (it == nodes_.end() || it->second.up) break;
      it->second.up = true;
      it->second.up_since = t;
      down_ns_total_ += t - it->second.down_since;
      repair_ns_total_ += t - it->second.down_since;
      ++repaired_count_;
      ++nodes_up_;
      break;
    }
    case trace::ENDPOINT_ADDED:
    case trace::ENDPOINT_REMOVED: {
      if (r.service().empty()) break;
      ServiceState& s = services_[r.service()];
      s.ready.set(t, std::max<int64_t>(0, s.ready.value + (r.type() == trace::ENDPOINT_ADDED ? 1 : -1)));
      break;
    }
    case trace::REQUEST_SERVED: {
      ServiceState& s = services_[r.service()];
      double l = ms(r.latency_ns());
      s.latencies_ms.push_back(l);
      bucket_latencies_.push_back(l);
      ++bucket_requests_;
      break;
    }
    case trace::REQUEST_FAILED: {
      ServiceState& s = services_[r.service()];
      ++s.failed;
      ++bucket_requests_;
      ++bucket_failed_;
      break;
    }
    case trace::REPLICAS_CHANGED: {
      std::string key = r.namespace_() + "/" + r.name();
      controllers_[key].set(t, r.value(), r.value2());
      break;
    }
    case trace::POD_CREATED:
      ++metrics_.pods.created;
      pending_since_[r.uid()] = t;
      break;
    case trace::POD_SCHEDULED: {
      ++metrics_.pods.scheduled;
      auto it = pending_since_.find(r.uid());
      int64_t waited = r.latency_ns();
      if (it != pending_since_.end()) {
        if (waited == 0) waited = t - it->second;
        pending_since_.erase(it);
      }
      metrics_.scheduling_latencies_ms.push_back(ms(waited));
      metrics_.pods.max_pending_s = std::max(metrics_.pods.max_pending_s, sec(waited));
      break;
    }
    case trace::POD_DELETED:
      pending_since_.erase(r.uid());
      break;
    case trace::CONTAINER_RESTARTED:
      ++metrics_.pods.restarts;
      break;
    case trace::POD_EVICTED:
      ++metrics_.pods.evicted;
      break;
    case trace::CLUSTER_SAMPLE: {
      auto get = [&](const char* k) {
        auto it = r.attrs().find(k);
        return it == r.attrs().end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
      };
      double cpu = get("cpu_allocatable"), mem = get("memory_allocatable");
      cpu_fraction_ = cpu > 0 ? static_cast<double>(r.value()) / cpu : kNaN;
      memory_fraction_ = mem > 0 ? static_cast<double>(r.value2()) / mem : kNaN;
      break;
    }
    default:
      break;
  }
}

void MetricsCollector::finish(TimePoint end) {
  const int64_t end_ns = std::max(to_nanos(end), last_ns_);
  close_buckets_until(end_ns);
  if (series_.t.empty() || series_.t.back() < sec(end_ns)) close_one_bucket();
  metrics_.end_s = sec(end_ns);

  for (auto& [name, st] : services_) {
    st.ready.set(end_ns, st.ready.value);
    ServiceMetrics& m = metrics_.services[name];
    int64_t window = st.ready.started ? end_ns - st.ready.start_ns : 0;
    m.first_ready_s = st.ready.started ? sec(st.ready.start_ns) : -1;
    if (window > 0) {
      int64_t zero = 0;
      for (auto& [v, ns] : st.ready.time_at) {
        m.ready_endpoints_time_fraction[static_cast<int>(v)] =
            static_cast<double>(ns) / static_cast<double>(window);
        if (v == 0) zero = ns;
      }
      m.availability = 1.0 - static_cast<double>(zero) / static_cast<double>(window);
    } else {
      m.ready_endpoints_time_fraction[0] = 1.0;
      m.availability = 0;
    }
    m.requests_total = static_cast<int64_t>(st.latencies_ms.size()) + st.failed;
    m.requests_failed = st.failed;
    if (!st.latencies_ms.empty()) {
      std::sort(st.latencies_ms.begin(), st.latencies_ms.end());
      double sum = 0;
      for (double l : st.latencies_ms) sum += l;
      m.latency_mean_ms = sum / static_cast<double>(st.latencies_ms.size());
      m.latency_p50_ms = percentile_sorted(st.latencies_ms, 0.50);
      m.latency_p90_ms = percentile_sorted(st.latencies_ms, 0.90);
      m.latency_p99_ms = percentile_sorted(st.latencies_ms, 0.99);
    }
  }
  for (auto& [name, st] : controllers_) {
    st.set(end_ns, st.desired, st.ready);
    ControllerMetrics& m = metrics_.controllers[name];
    m.desired = st.desired;
    m.ready = st.ready;
    int64_t window = st.started ? end_ns - st.start_ns : 0;
    m.ready_time_fraction =
        window > 0 ? static_cast<double>(st.ok_ns) / static_cast<double>(window) : 0.0;
  }
  int64_t up_total = up_ns_total_, down_total = down_ns_total_;
  for (auto& [name, st] : nodes_) {
    if (st.up) up_total += end_ns - st.up_since;
    else down_total += end_ns - st.down_since;
  }
  NodeMetrics& nm = metrics_.nodes;
  if (up_total + down_total > 0) {
    nm.downtime_fraction =
        static_cast<double>(down_total) / static_cast<double>(up_total + down_total);
  }
  nm.mttf_s = nm.failures > 0 ? sec(up_total) / static_cast<double>(nm.failures) : 0;
  nm.mttr_s = repaired_count_ > 0 ? sec(repair_ns_total_) / static_cast<double>(repaired_count_) : 0;

  PodMetrics& pm = metrics_.pods;
  std::sort(metrics_.scheduling_latencies_ms.begin(), metrics_.scheduling_latencies_ms.end());
  if (!metrics_.scheduling_latencies_ms.empty()) {
    pm.scheduling_latency_p50_ms = percentile_sorted(metrics_.scheduling_latencies_ms, 0.5);
    pm.scheduling_latency_p99_ms = percentile_sorted(metrics_.scheduling_latencies_ms, 0.99);
  }
  pm.pending_at_end = static_cast<int64_t>(pending_since_.size());
  for (auto& [uid, since] : pending_since_) {
    pm.max_pending_s = std::max(pm.max_pending_s, sec(end_ns - since));
  }
}

StatusOr<MetricsCollector> collect_metrics(const std::string& trace_path) {
  int64_t first = -1, last = 0, started = -1, ended = -1;
  Status s = read_trace(trace_path, [&](const trace::Record& r) {
    if (first < 0) first = r.time_ns();
    last = std::max(last, r.time_ns());
    if (r.type() == trace::RUN_STARTED && started < 0) started = r.time_ns();
    if (r.type() == trace::RUN_ENDED) ended = r.time_ns();
    return true;
  });
  if (!s.is_ok()) return s;
  int64_t begin = started >= 0 ? started : std::max<int64_t>(first, 0);
  int64_t end = ended >= 0 ? ended : last;
  int64_t bucket = std::max<int64_t>(1000000, (end - begin) / 720);
  MetricsCollector c(time_from_nanos(begin), Duration(bucket));
  s = read_trace(trace_path, [&](const trace::Record& r) {
    c.add(r);
    return true;
  });
  if (!s.is_ok()) return s;
  c.finish(time_from_nanos(end));
  return c;
}

nlohmann::ordered_json metrics_to_json(const Metrics& m) {
  using nlohmann::ordered_json;
  ordered_json out;
  ordered_json services = ordered_json::object();
  for (const auto& [name, s] : m.services) {
    ordered_json frac = ordered_json::object();
    for (const auto& [k, v] : s.ready_endpoints_time_fraction) frac[std::to_string(k)] = v;
    services[name] = {
        {"availability", s.availability},
        {"ready_endpoints_time_fraction", frac},
        {"requests",
         {{"total", s.requests_total},
          {"failed", s.requests_failed},
          {"latency_ms",
           {{"mean", s.latency_mean_ms},
            {"p50", s.latency_p50_ms},
            {"p90", s.latency_p90_ms},
            {"p99", s.latency_p99_ms}}}}},
    };
  }
  out["services"] = services;
  ordered_json controllers = ordered_json::object();
  for (const auto& [name, c] : m.controllers) {
    controllers[name] = {{"desired", c.desired},
                         {"ready", c.ready},
                         {"ready_time_fraction", c.ready_time_fraction}};
  }
  out["controllers"] = controllers;
  out["nodes"] = {{"count", m.nodes.count},
                  {"failures", m.nodes.failures},
                  {"downtime_fraction", m.nodes.downtime_fraction},
                  {"mttf_s", m.nodes.mttf_s},
                  {"mttr_s", m.nodes.mttr_s}};
  out["pods"] = {{"created", m.pods.created},
                 {"restarts", m.pods.restarts},
                 {"evicted", m.pods.evicted},
                 {"scheduled", m.pods.scheduled},
                 {"pending_at_end", m.pods.pending_at_end},
                 {"max_pending_s", m.pods.max_pending_s},
                 {"scheduling_latency_ms",
                  {{"p50", m.pods.scheduling_latency_p50_ms},
                   {"p99", m.pods.scheduling_latency_p99_ms}}}};
  return out;
}

namespace {

std::string num(double v) {
  if (std::isnan(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return Status(StatusCode::kUnavailable, "cannot write " + path);
  return Status::ok();
}

}  // namespace

Status write_time_series_csv(const MetricsCollector& c, const std::string& dir) {
  const TimeSeries& ts = c.series();
  const size_t n = ts.t.size();
  {
    std::string out = "t_s,service,ready_endpoints\n";
    for (const auto& [name, v] : ts.ready_endpoints) {
      for (size_t i = 0; i < n; ++i) {
        out += num(ts.t[i]) + "," + csv_field(name) + "," + std::to_string(i < v.size() ? v[i] : 0) + "\n";
      }
    }
    FLOTILLA_RETURN_IF_ERROR(write_file(dir + "/services.csv", out));
  }
  {
    std::string out = "t_s,controller,desired,ready\n";
    for (const auto& [name, v] : ts.replicas) {
      for (size_t i = 0; i < n; ++i) {
        auto dr = i < v.size() ? v[i] : std::pair<int64_t, int64_t>{0, 0};
        out += num(ts.t[i]) + "," + csv_field(name) + "," + std::to_string(dr.first) + "," +
               std::to_string(dr.second) + "\n";
      }
    }
    FLOTILLA_RETURN_IF_ERROR(write_file(dir + "/controllers.csv", out));
  }
  {
    std::string out = "t_s,nodes_up\n";
    for (size_t i = 0; i < n; ++i) out += num(ts.t[i]) + "," + std::to_string(ts.nodes_up[i]) + "\n";
    FLOTILLA_RETURN_IF_ERROR(write_file(dir + "/nodes.csv", out));
  }
  {
    std::string out = "t_s,requests,failed,error_rate,latency_p50_ms,latency_p99_ms\n";
    for (size_t i = 0; i < n; ++i) {
      double err = ts.requests[i] > 0 ? static_cast<double>(ts.requests_failed[i]) /
                                            static_cast<double>(ts.requests[i])
                                      : kNaN;
      out += num(ts.t[i]) + "," + std::to_string(ts.requests[i]) + "," +
             std::to_string(ts.requests_failed[i]) + "," + num(err) + "," +
             num(ts.latency_p50_ms[i]) + "," + num(ts.latency_p99_ms[i]) + "\n";
    }
    FLOTILLA_RETURN_IF_ERROR(write_file(dir + "/requests.csv", out));
  }
  {
    std::string out = "t_s,cpu_allocated,memory_allocated\n";
    for (size_t i = 0; i < n; ++i) {
      out += num(ts.t[i]) + "," + num(ts.cpu_allocated[i]) + "," + num(ts.memory_allocated[i]) + "\n";
    }
    FLOTILLA_RETURN_IF_ERROR(write_file(dir + "/allocation.csv", out));
  }
  {
    const auto& lat = c.metrics().scheduling_latencies_ms;
    std::string out = "latency_ms,cdf\n";
    const size_t step = std::max<size_t>(1, lat.size() / 2000);
    for (size_t i = 0; i < lat.size(); i += step) {
      out += num(lat[i]) + "," + num(static_cast<double>(i + 1) / static_cast<double>(lat.size())) + "\n";
    }
    if (!lat.empty()) out += num(lat.back()) + ",1\n";
    FLOTILLA_RETURN_IF_ERROR(write_file(dir + "/scheduling_latency_cdf.csv", out));
  }
  return Status::ok();
}

}  // namespace flotilla::analysis
