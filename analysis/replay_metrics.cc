#include "analysis/replay_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "analysis/trace_io.h"

namespace flotilla::analysis {

namespace {

namespace fs = std::filesystem;

QueueingDelay summarize(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  QueueingDelay q;
  q.count = static_cast<int64_t>(v.size());
  if (v.empty()) return q;
  double sum = 0;
  for (double d : v) sum += d;
  q.mean_s = sum / static_cast<double>(v.size());
  auto pct = [&](double p) {
    // Nearest rank.
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  q.p50_s = pct(50);
  q.p99_s = pct(99);
  q.max_s = v.back();
  return q;
}

// Peak of a count that goes +1 at each start and -1 at each end (ends first at equal times).
int64_t peak(std::vector<std::pair<double, int>>& deltas) {
  std::sort(deltas.begin(), deltas.end());
  int64_t cur = 0, best = 0;
  for (const auto& [t, d] : deltas) {
    cur += d;
    best = std::max(best, cur);
  }
  return best;
}

std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "''";
    else out += c;
  }
  return out + "'";
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

StatusOr<ReplayMetrics> compute_replay_metrics(const std::string& trace_path,
                                               const std::vector<ReplayPod>& pods,
                                               const ReplayCapacity& capacity, double end_s,
                                               int buckets) {
  struct Seen {
    double created = -1, scheduled = -1, deleted = -1;
    std::string node;
  };
  std::unordered_map<std::string, size_t> index;
  index.reserve(pods.size() * 2);
  for (size_t i = 0; i < pods.size(); ++i) index.emplace(pods[i].name, i);
  std::vector<Seen> seen(pods.size());
  ReplayMetrics m;
  Status s = read_trace(trace_path, [&](const trace::Record& r) {
    ++m.trace_records;
    if (r.type() != trace::POD_CREATED && r.type() != trace::POD_SCHEDULED &&
        r.type() != trace::POD_DELETED) {
      return true;
    }
    if (r.namespace_() != "default") return true;
    auto it = index.find(r.name());
    if (it == index.end()) return true;
    Seen& p = seen[it->second];
    const double t = static_cast<double>(r.time_ns()) * 1e-9;
    if (r.type() == trace::POD_CREATED) {
      if (p.created < 0) p.created = t;
    } else if (r.type() == trace::POD_SCHEDULED) {
      if (p.scheduled < 0) {
        p.scheduled = t;
        p.node = r.node();
      }
    } else if (p.deleted < 0) {
      p.deleted = t;
    }
    return true;
  });
  if (!s.is_ok()) return s;

  std::vector<std::pair<double, int>> replay_pending, trace_pending;
  for (size_t i = 0; i < pods.size(); ++i) {
    const ReplayPod& pod = pods[i];
    const Seen& p = seen[i];
    if (p.created >= 0) {
      ++m.pods_submitted;
      if (p.scheduled >= 0) {
        ++m.pods_placed;
        m.replay_delays_s.push_back(p.scheduled - p.created);
        m.placements.emplace_back(pod.name, p.node);
      }
      double wait_end = p.scheduled >= 0 ? p.scheduled : p.deleted >= 0 ? p.deleted : end_s;
      replay_pending.emplace_back(p.created, 1);
      replay_pending.emplace_back(wait_end, -1);
    }
    if (pod.trace_scheduled_s) {
      ++m.trace_pods_placed;
      m.trace_delays_s.push_back(*pod.trace_scheduled_s - pod.created_s);
    }
    double trace_wait_end = pod.trace_scheduled_s ? *pod.trace_scheduled_s
                                                  : pod.deleted_s.value_or(end_s);
    trace_pending.emplace_back(pod.created_s, 1);
    trace_pending.emplace_back(trace_wait_end, -1);
  }
  m.pods_never_placed = m.pods_submitted - m.pods_placed;
  m.peak_pending = peak(replay_pending);
  m.trace_peak_pending = peak(trace_pending);
  m.queueing = summarize(m.replay_delays_s);
  m.trace_queueing = summarize(m.trace_delays_s);
  std::sort(m.placements.begin(), m.placements.end());

  // Series: values at each bucket's end, from difference arrays over buckets.
  buckets = std::max(1, buckets);
  const double width = end_s > 0 ? end_s / buckets : 1.0;
  const size_t nb = static_cast<size_t>(buckets);
  // First bucket whose end time is >= t.
  auto bucket_at = [&](double t) -> size_t {
    if (t <= 0) return 0;
    double k = std::ceil(t / width) - 1;
    if (k < 0) k = 0;
    // Bucket k ends at (k+1)*width; an interval starting exactly there counts in it.
    return std::min(nb, static_cast<size_t>(k));
  };
  struct Acc {
    std::vector<double> cpu, mem, gpu;
    std::vector<int64_t> running, pending;
    explicit Acc(size_t n) : cpu(n + 1), mem(n + 1), gpu(n + 1), running(n + 1), pending(n + 1) {}
  };
  Acc tr(nb), rp(nb);
  auto add_interval = [&](Acc& a, double from, double to, const ReplayPod& pod, bool run) {
    size_t b0 = bucket_at(from);
    size_t b1 = to >= end_s + width ? nb : bucket_at(to);
    if (b1 <= b0) return;
    if (run) {
      a.cpu[b0] += static_cast<double>(pod.cpu_millis);
      a.cpu[b1] -= static_cast<double>(pod.cpu_millis);
      a.mem[b0] += static_cast<double>(pod.memory_bytes);
      a.mem[b1] -= static_cast<double>(pod.memory_bytes);
      a.gpu[b0] += static_cast<double>(pod.gpu_milli);
      a.gpu[b1] -= static_cast<double>(pod.gpu_milli);
      a.running[b0] += 1;
      a.running[b1] -= 1;
    } else {
      a.pending[b0] += 1;
      a.pending[b1] -= 1;
    }
  };
  const double forever = end_s + 2 * width;
  for (size_t i = 0; i < pods.size(); ++i) {
    const ReplayPod& pod = pods[i];
    const Seen& p = seen[i];
    double trace_end = pod.deleted_s.value_or(forever);
    if (pod.trace_scheduled_s) {
      add_interval(tr, pod.created_s, *pod.trace_scheduled_s, pod, false);
      add_interval(tr, *pod.trace_scheduled_s, trace_end, pod, true);
    } else {
      add_interval(tr, pod.created_s, trace_end, pod, false);
    }
    if (p.created < 0) continue;
    double replay_end = p.deleted >= 0 ? p.deleted : forever;
    if (p.scheduled >= 0) {
      add_interval(rp, p.created, p.scheduled, pod, false);
      add_interval(rp, p.scheduled, replay_end, pod, true);
    } else {
      add_interval(rp, p.created, replay_end, pod, false);
    }
  }
  auto frac = [](double v, int64_t cap) { return cap > 0 ? v / static_cast<double>(cap) : 0.0; };
  double tc = 0, tm = 0, tg = 0, rc = 0, rm = 0, rg = 0;
  int64_t trn = 0, tpe = 0, rrn = 0, rpe = 0;
  m.series.reserve(nb);
  for (size_t k = 0; k < nb; ++k) {
    tc += tr.cpu[k], tm += tr.mem[k], tg += tr.gpu[k], trn += tr.running[k], tpe += tr.pending[k];
    rc += rp.cpu[k], rm += rp.mem[k], rg += rp.gpu[k], rrn += rp.running[k], rpe += rp.pending[k];
    ReplaySeriesPoint pt;
    pt.t_s = width * static_cast<double>(k + 1);
    pt.trace_cpu = frac(tc, capacity.cpu_millis);
    pt.replay_cpu = frac(rc, capacity.cpu_millis);
    pt.trace_memory = frac(tm, capacity.memory_bytes);
    pt.replay_memory = frac(rm, capacity.memory_bytes);
    pt.trace_gpu = frac(tg, capacity.gpu_milli);
    pt.replay_gpu = frac(rg, capacity.gpu_milli);
    pt.trace_pending = tpe;
    pt.replay_pending = rpe;
    pt.trace_running = trn;
    pt.replay_running = rrn;
    m.series.push_back(pt);
  }
  return m;
}

nlohmann::ordered_json replay_metrics_to_json(const ReplayMetrics& m) {
  auto delay = [](const QueueingDelay& q) {
    return nlohmann::ordered_json{{"mean", q.mean_s}, {"p50", q.p50_s}, {"p99", q.p99_s},
                                  {"max", q.max_s}};
  };
  nlohmann::ordered_json j;
  j["pods_submitted"] = m.pods_submitted;
  j["pods_placed"] = m.pods_placed;
  j["pods_never_placed"] = m.pods_never_placed;
  j["peak_pending"] = m.peak_pending;
  j["queueing_delay_s"] = delay(m.queueing);
  j["trace"] = {{"pods_placed", m.trace_pods_placed},
                {"peak_pending", m.trace_peak_pending},
                {"queueing_delay_s", delay(m.trace_queueing)}};
  return j;
}

StatusOr<ReplayReport> write_replay_report(const ReplayMetrics& m,
                                           const nlohmann::ordered_json& replay_json,
                                           const std::string& dir) {
  ReplayReport result;
  std::error_code ec;
  fs::create_directories(dir + "/plots", ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + dir + "/plots: " + ec.message());
  const std::string csv = dir + "/replay_comparison.csv";
  {
    std::ofstream f(csv, std::ios::trunc);
    f << "t_s,trace_cpu,replay_cpu,trace_memory,replay_memory,trace_gpu,replay_gpu,"
         "trace_running,replay_running,trace_pending,replay_pending\n";
    for (const auto& p : m.series) {
      f << num(p.t_s) << ',' << num(p.trace_cpu) << ',' << num(p.replay_cpu) << ','
        << num(p.trace_memory) << ',' << num(p.replay_memory) << ',' << num(p.trace_gpu) << ','
        << num(p.replay_gpu) << ',' << p.trace_running << ',' << p.replay_running << ','
        << p.trace_pending << ',' << p.replay_pending << '\n';
    }
    if (!f) return Status(StatusCode::kUnavailable, "cannot write " + csv);
  }
  const std::string cdf = dir + "/replay_queueing_cdf.csv";
  {
    std::ofstream f(cdf, std::ios::trunc);
    f << "source,delay_s,fraction\n";
    auto rows = [&](const char* name, const std::vector<double>& v) {
      // At most ~500 points per curve.
      size_t step = std::max<size_t>(1, v.size() / 500);
      for (size_t i = 0; i < v.size(); i += step) {
        f << name << ',' << num(v[i]) << ',' << num(static_cast<double>(i + 1) / static_cast<double>(v.size())) << '\n';
      }
      if (!v.empty()) f << name << ',' << num(v.back()) << ",1\n";
    };
    rows("trace", m.trace_delays_s);
    rows("replay", m.replay_delays_s);
    if (!f) return Status(StatusCode::kUnavailable, "cannot write " + cdf);
  }

  struct Plot {
    std::string name, title, script;
  };
  std::vector<Plot> plots;
  const std::string pdir = dir + "/plots/";
  auto preamble = [&](const std::string& name, const std::string& title, const std::string& ylabel) {
    return "set terminal svg size 900,360 dynamic background '#ffffff'\nset output " +
           gp_quote(pdir + name + ".svg") + "\nset title " + gp_quote(title) +
           "\nset xlabel 'time (h)'\nset ylabel " + gp_quote(ylabel) +
           "\nset grid\nset key outside right\nset datafile separator ','\n";
  };
  {
    std::string s = preamble("replay_allocation", "Allocation over time: trace vs replay", "fraction of capacity") +
                    "set yrange [0:*]\nplot " + gp_quote(csv) +
                    " skip 1 using ($1/3600):2 with steps lw 1.5 dt 2 lc rgb '#1f77b4' title 'cpu (trace)', "
                    "'' skip 1 using ($1/3600):3 with steps lw 2 lc rgb '#1f77b4' title 'cpu (replay)', "
                    "'' skip 1 using ($1/3600):6 with steps lw 1.5 dt 2 lc rgb '#d62728' title 'gpu (trace)', "
                    "'' skip 1 using ($1/3600):7 with steps lw 2 lc rgb '#d62728' title 'gpu (replay)'\n";
    plots.push_back({"replay_allocation", "Allocation over time (CPU and GPU): trace vs replay", s});
  }
  {
    std::string s = preamble("replay_pending", "Pending pods: trace vs replay", "pods") +
                    "set yrange [0:*]\nplot " + gp_quote(csv) +
                    " skip 1 using ($1/3600):10 with steps lw 1.5 dt 2 title 'pending (trace)', "
                    "'' skip 1 using ($1/3600):11 with steps lw 2 title 'pending (replay)', "
                    "'' skip 1 using ($1/3600):8 with steps lw 1 dt 3 title 'running (trace)', "
                    "'' skip 1 using ($1/3600):9 with steps lw 1 title 'running (replay)'\n";
    plots.push_back({"replay_pending", "Pending and running pods: trace vs replay", s});
  }
  if (!m.trace_delays_s.empty() || !m.replay_delays_s.empty()) {
    std::string s = "set terminal svg size 900,360 dynamic background '#ffffff'\nset output " +
                    gp_quote(pdir + "replay_queueing.svg") +
                    "\nset title 'Queueing delay CDF: trace vs replay'\nset xlabel 'delay (s)'\n"
                    "set ylabel 'fraction of placed pods'\nset grid\nset key bottom right\n"
                    "set datafile separator ','\nset yrange [0:1]\nset logscale x\n"
                    "plot " + gp_quote(cdf) +
                    " skip 1 using (strcol(1) eq 'trace' ? ($2 < 0.001 ? 0.001 : $2) : 1/0):3 with steps lw 2 title 'trace', "
                    "'' skip 1 using (strcol(1) eq 'replay' ? ($2 < 0.001 ? 0.001 : $2) : 1/0):3 with steps lw 2 title 'replay'\n";
    plots.push_back({"replay_queueing", "Queueing delay CDF (delays under 1 ms drawn at 1 ms)", s});
  }
  const bool gnuplot = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  std::vector<const Plot*> rendered;
  for (const Plot& p : plots) {
    std::string gp = pdir + p.name + ".gp";
    std::ofstream(gp) << p.script;
    if (!gnuplot) continue;
    std::string cmd = "gnuplot " + gp_quote(gp) + " 2>" + gp_quote(pdir + p.name + ".log");
    if (std::system(cmd.c_str()) == 0 && fs::exists(pdir + p.name + ".svg")) {
      rendered.push_back(&p);
    } else if (result.warning.empty()) {
      result.warning = "gnuplot failed on " + gp;
    }
  }
  if (!gnuplot) result.warning = "gnuplot is not installed: replay.html has tables only";

  std::ostringstream html;
  html << "<!doctype html>\n<html><head><meta charset='utf-8'><title>Replay vs trace</title>\n"
          "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
          "text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
          "</style></head><body>\n<h1>Replay vs the trace</h1>\n<p><a href='report.html'>"
          "Run report</a></p>\n<table><tr><th></th><th>trace</th><th>replay</th></tr>\n";
  auto row = [&](const std::string& what, const std::string& t, const std::string& r) {
    html << "<tr><td>" << what << "</td><td>" << t << "</td><td>" << r << "</td></tr>\n";
  };
  row("pods submitted", std::to_string(m.pods_submitted), std::to_string(m.pods_submitted));
  row("pods placed", std::to_string(m.trace_pods_placed), std::to_string(m.pods_placed));
  row("pods never placed", std::to_string(m.pods_submitted - m.trace_pods_placed),
      std::to_string(m.pods_never_placed));
  row("peak pending", std::to_string(m.trace_peak_pending), std::to_string(m.peak_pending));
  row("queueing delay mean (s)", num(m.trace_queueing.mean_s), num(m.queueing.mean_s));
  row("queueing delay p50 (s)", num(m.trace_queueing.p50_s), num(m.queueing.p50_s));
  row("queueing delay p99 (s)", num(m.trace_queueing.p99_s), num(m.queueing.p99_s));
  row("queueing delay max (s)", num(m.trace_queueing.max_s), num(m.queueing.max_s));
  if (replay_json.contains("pods_never_placeable")) {
    row("never placeable (no node fits)", "", replay_json["pods_never_placeable"].dump());
  }
  html << "</table>\n";
  for (const Plot* p : rendered) {
    html << "<h3>" << p->title << "</h3>\n<img src='plots/" << p->name << ".svg' alt='" << p->title
         << "' style='max-width:100%'>\n";
  }
  if (!result.warning.empty()) html << "<p>" << result.warning << "</p>\n";
  html << "<p>Data: replay_comparison.csv, replay_queueing_cdf.csv, summary.json (replay).</p>"
          "</body></html>\n";
  result.html_path = dir + "/replay.html";
  {
    std::ofstream f(result.html_path, std::ios::trunc);
    f << html.str();
    if (!f) return Status(StatusCode::kUnavailable, "cannot write " + result.html_path);
  }
  result.plots = static_cast<int>(rendered.size());

  // Link it from the run's report.
  const std::string report = dir + "/report.html";
  if (fs::exists(report)) {
    std::ifstream in(report);
    std::stringstream buf;
    buf << in.rdbuf();
    std::string text = buf.str();
    if (text.find("href='replay.html'") == std::string::npos) {
      std::string link =
          "<h2>Replay</h2>\n<p><a href='replay.html'>Replay vs the trace</a>: queueing delay, "
          "allocation over time and pending pods compared with the trace itself.</p>\n";
      size_t at = text.find("<h2>Plots</h2>");
      if (at == std::string::npos) at = text.find("</body>");
      if (at == std::string::npos) at = text.size();
      text.insert(at, link);
      std::ofstream f(report, std::ios::trunc);
      f << text;
    }
  }
  return result;
}

}  // namespace flotilla::analysis
