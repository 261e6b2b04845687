#include "analysis/report.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

namespace flotilla::analysis {

namespace {

namespace fs = std::filesystem;

struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

StatusOr<Csv> read_csv(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status(StatusCode::kNotFound, "cannot read " + path);
  Csv csv;
  std::string line;
  if (!std::getline(f, line)) return Status(StatusCode::kBadRequest, path + ": empty file");
  csv.header = split_csv_line(line);
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto row = split_csv_line(line);
    if (row.size() != csv.header.size()) {
      return Status(StatusCode::kBadRequest, path + ": line " + std::to_string(csv.rows.size() + 2) +
                                                 ": expected " + std::to_string(csv.header.size()) +
                                                 " fields");
    }
    csv.rows.push_back(std::move(row));
  }
  return csv;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string gp_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Groups a long-format CSV (t, key, values...) into per-key inline data blocks.
struct Grouped {
  std::vector<std::string> keys;
  std::map<std::string, std::string> blocks;  // key -> "t v1 v2\n..."
};

Grouped group(const Csv& csv, size_t key_col, const std::vector<size_t>& value_cols,
              size_t max_keys) {
  Grouped g;
  for (const auto& row : csv.rows) {
    const std::string& key = row[key_col];
    auto it = g.blocks.find(key);
    if (it == g.blocks.end()) {
      if (g.keys.size() >= max_keys) continue;
      g.keys.push_back(key);
      it = g.blocks.emplace(key, "").first;
    }
    std::string line = row[0];
    for (size_t c : value_cols) line += " " + (row[c].empty() ? std::string("NaN") : row[c]);
    it->second += line + "\n";
  }
  return g;
}

std::string preamble(const std::string& svg, const std::string& title, const std::string& ylabel) {
  std::ostringstream gp;
  gp << "set terminal svg size 900,360 dynamic noenhanced font 'sans,11'\n"
     << "set output " << gp_quote(svg) << "\n"
     << "set title " << gp_quote(title) << "\n"
     << "set xlabel 'simulated time (h)'\n"
     << "set ylabel " << gp_quote(ylabel) << "\n"
     << "set grid\nset key outside right top\nset datafile missing 'NaN'\n";
  return gp.str();
}

struct Plot {
  std::string name;   // file stem
  std::string title;
  std::string script;
};

std::vector<Plot> make_plots(const std::string& dir, std::vector<std::string>* warnings) {
  std::vector<Plot> plots;
  auto load = [&](const char* file) -> std::optional<Csv> {
    auto csv = read_csv(dir + "/" + file);
    if (!csv.is_ok()) {
      warnings->push_back(csv.status().message());
      return std::nullopt;
    }
    return std::move(csv).value();
  };
  const std::string pdir = dir + "/plots/";
  if (auto csv = load("controllers.csv"); csv && !csv->rows.empty()) {
    Grouped g = group(*csv, 1, {2, 3}, 8);
    std::ostringstream gp;
    gp << preamble(pdir + "replicas.svg", "Desired vs ready replicas per controller", "replicas");
    for (size_t i = 0; i < g.keys.size(); ++i) gp << "$d" << i << " << EOD\n" << g.blocks[g.keys[i]] << "EOD\n";
    gp << "plot ";
    for (size_t i = 0; i < g.keys.size(); ++i) {
      if (i) gp << ", ";
      gp << "$d" << i << " using ($1/3600):2 with steps dt 2 lw 1.5 title " << gp_quote(g.keys[i] + " desired")
         << ", $d" << i << " using ($1/3600):3 with steps lw 2 title " << gp_quote(g.keys[i] + " ready");
    }
    gp << "\n";
    plots.push_back({"replicas", "Desired vs ready replicas", gp.str()});
  }
  if (auto csv = load("services.csv"); csv && !csv->rows.empty()) {
    Grouped g = group(*csv, 1, {2}, 8);
    std::ostringstream gp;
    gp << preamble(pdir + "endpoints.svg", "Ready endpoints per service", "ready endpoints");
    for (size_t i = 0; i < g.keys.size(); ++i) gp << "$d" << i << " << EOD\n" << g.blocks[g.keys[i]] << "EOD\n";
    gp << "plot ";
    for (size_t i = 0; i < g.keys.size(); ++i) {
      if (i) gp << ", ";
      gp << "$d" << i << " using ($1/3600):2 with steps lw 2 title " << gp_quote(g.keys[i]);
    }
    gp << "\n";
    plots.push_back({"endpoints", "Ready endpoints", gp.str()});
  }
  if (auto csv = load("nodes.csv"); csv && !csv->rows.empty()) {
    std::ostringstream gp;
    gp << preamble(pdir + "nodes.svg", "Nodes up", "nodes up") << "set datafile separator ','\n"
       << "plot " << gp_quote(dir + "/nodes.csv") << " skip 1 using ($1/3600):2 with steps lw 2 title 'nodes up'\n";
    plots.push_back({"nodes", "Node up/down timeline", gp.str()});
  }
  if (auto csv = load("requests.csv"); csv && !csv->rows.empty()) {
    std::ostringstream gp;
    gp << preamble(pdir + "requests.svg", "Request latency and error rate", "latency (ms)")
       << "set datafile separator ','\nset y2label 'error rate'\nset y2tics\nset ytics nomirror\n"
       << "plot " << gp_quote(dir + "/requests.csv")
       << " skip 1 using ($1/3600):5 with lines lw 1.5 title 'p50 latency', '' skip 1 using ($1/3600):6 with lines lw 1.5 title 'p99 latency', '' skip 1 using ($1/3600):4 axes x1y2 with impulses lw 1 title 'error rate'\n";
    plots.push_back({"requests", "Request latency percentiles and error rate", gp.str()});
  }
  if (auto csv = load("allocation.csv"); csv && !csv->rows.empty()) {
    std::ostringstream gp;
    gp << preamble(pdir + "allocation.svg", "Cluster allocation (requested / allocatable)", "fraction")
       << "set datafile separator ','\nset yrange [0:*]\n"
       << "plot " << gp_quote(dir + "/allocation.csv")
       << " skip 1 using ($1/3600):2 with lines lw 2 title 'cpu', '' skip 1 using ($1/3600):3 with lines lw 2 title 'memory'\n";
    plots.push_back({"allocation", "Cluster CPU and memory allocation", gp.str()});
  }
  if (auto csv = load("scheduling_latency_cdf.csv"); csv && !csv->rows.empty()) {
    std::ostringstream gp;
    gp << preamble(pdir + "scheduling.svg", "Scheduling latency CDF", "fraction of pods")
       << "set xlabel 'scheduling latency (ms)'\nset datafile separator ','\nset yrange [0:1]\n"
       << "plot " << gp_quote(dir + "/scheduling_latency_cdf.csv")
       << " skip 1 using 1:2 with steps lw 2 title 'CDF'\n";
    plots.push_back({"scheduling", "Scheduling latency CDF", gp.str()});
  }
  return plots;
}

std::string fmt(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

}  // namespace

StatusOr<ReportResult> write_report(const std::string& dir) {
  nlohmann::json summary;
  {
    std::ifstream f(dir + "/summary.json");
    if (!f) return Status(StatusCode::kNotFound, "cannot read " + dir + "/summary.json");
    summary = nlohmann::json::parse(f, nullptr, false);
    if (summary.is_discarded()) {
      return Status(StatusCode::kBadRequest, dir + "/summary.json: not valid JSON");
    }
  }
  ReportResult result;
  std::vector<std::string> warnings;
  std::error_code ec;
  fs::create_directories(dir + "/plots", ec);
  if (ec) return Status(StatusCode::kUnavailable, "cannot create " + dir + "/plots: " + ec.message());
  std::vector<Plot> plots = make_plots(dir, &warnings);
  const bool gnuplot = have_gnuplot();
  std::vector<Plot> rendered;
  for (const Plot& p : plots) {
    std::string gp_path = dir + "/plots/" + p.name + ".gp";
    std::ofstream(gp_path) << p.script;
    if (!gnuplot) continue;
    std::string cmd = "gnuplot " + gp_quote(gp_path) + " 2>" + gp_quote(dir + "/plots/" + p.name + ".log");
    if (std::system(cmd.c_str()) == 0 && fs::exists(dir + "/plots/" + p.name + ".svg")) {
      rendered.push_back(p);
    } else {
      warnings.push_back("gnuplot failed on " + gp_path + " (see " + p.name + ".log)");
    }
  }
  if (!gnuplot) warnings.push_back("gnuplot is not installed: the report has tables only");

  std::ostringstream html;
  std::string title = "Flotilla run: " + fmt(summary.value("scenario", nlohmann::json("?")));
  html << "<!doctype html>\n<html><head><meta charset='utf-8'><title>" << html_escape(title)
       << "</title>\n<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
          "text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
          ".fail{color:#b00;font-weight:bold}.pass{color:#070}</style></head><body>\n";
  html << "<h1>" << html_escape(title) << "</h1>\n<table>";
  for (const char* k : {"backend", "seed", "sim_seconds", "wall_seconds", "events", "trace_sha256"}) {
    if (summary.contains(k)) html << "<tr><th>" << k << "</th><td>" << html_escape(fmt(summary[k])) << "</td></tr>";
  }
  html << "</table>\n";
  if (summary.contains("assertions") && !summary["assertions"].empty()) {
    html << "<h2>Assertions</h2><table><tr><th>assertion</th><th>value</th><th>result</th></tr>";
    for (const auto& a : summary["assertions"]) {
      bool ok = a.value("passed", false);
      html << "<tr><td>" << html_escape(fmt(a.value("name", nlohmann::json("")))) << "</td><td>"
           << html_escape(fmt(a.value("value", nlohmann::json(0)))) << "</td><td class='"
           << (ok ? "pass'>passed" : "fail'>FAILED") << "</td></tr>";
    }
    html << "</table>\n";
  }
  if (summary.contains("services") && !summary["services"].empty()) {
    html << "<h2>Services</h2><table><tr><th>service</th><th>availability</th><th>requests</th>"
            "<th>failed</th><th>p50 ms</th><th>p99 ms</th></tr>";
    for (const auto& [name, s] : summary["services"].items()) {
      const auto& r = s["requests"];
      html << "<tr><td>" << html_escape(name) << "</td><td>" << fmt(s["availability"]) << "</td><td>"
           << fmt(r["total"]) << "</td><td>" << fmt(r["failed"]) << "</td><td>"
           << fmt(r["latency_ms"]["p50"]) << "</td><td>" << fmt(r["latency_ms"]["p99"]) << "</td></tr>";
    }
    html << "</table>\n";
  }
  if (summary.contains("controllers") && !summary["controllers"].empty()) {
    html << "<h2>Controllers</h2><table><tr><th>controller</th><th>desired</th><th>ready time fraction</th></tr>";
    for (const auto& [name, c] : summary["controllers"].items()) {
      html << "<tr><td>" << html_escape(name) << "</td><td>" << fmt(c["desired"]) << "</td><td>"
           << fmt(c["ready_time_fraction"]) << "</td></tr>";
    }
    html << "</table>\n";
  }
  for (const char* section : {"nodes", "pods"}) {
    if (!summary.contains(section)) continue;
    html << "<h2>" << section << "</h2><table>";
    for (const auto& [k, v] : summary[section].items()) {
      html << "<tr><th>" << html_escape(k) << "</th><td>" << html_escape(fmt(v)) << "</td></tr>";
    }
    html << "</table>\n";
  }
  html << "<h2>Plots</h2>\n";
  for (const Plot& p : rendered) {
    html << "<h3>" << html_escape(p.title) << "</h3>\n<img src='plots/" << p.name
         << ".svg' alt='" << html_escape(p.title) << "' style='max-width:100%'>\n";
  }
  for (const auto& w : warnings) html << "<p class='fail'>" << html_escape(w) << "</p>\n";
  html << "<p>Data: summary.json, trace.pb (<code>flotilla trace DIR</code>), *.csv.</p></body></html>\n";

  result.html_path = dir + "/report.html";
  std::ofstream out(result.html_path, std::ios::trunc);
  out << html.str();
  out.close();
  if (!out) return Status(StatusCode::kUnavailable, "cannot write " + result.html_path);
  result.plots = static_cast<int>(rendered.size());
  if (!warnings.empty()) result.warning = warnings.front();
  return result;
}

}  // namespace flotilla::analysis
