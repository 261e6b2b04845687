// Alibaba GPU trace 2023 ("openb") importer. Mapping (docs/replay.md):
//   node  -> capacity cpu = cpu_milli, memory = memory_mib Mi, pods = options,
//            alibaba.com/gpu = gpu, alibaba.com/gpu-milli = gpu * 1000,
//            label alibaba.com/gpu-model = model (GPU nodes only)
//   pod   -> requests cpu, memory; GPU pods request alibaba.com/gpu-milli
//            (num_gpu * 1000 for whole GPUs, gpu_milli for a shared one) and,
//            for whole GPUs, alibaba.com/gpu = num_gpu; gpu_spec -> annotation
//            alibaba.com/gpu-model-allow.
#include <algorithm>
#include <map>

#include "scenarios/replay/csv.h"
#include "scenarios/replay/importers.h"

namespace flotilla::replay {

namespace {

// Column positions by header name; every name in `wanted` must be there.
StatusOr<std::vector<size_t>> header_columns(const LineReader& reader, std::string_view line,
                                             const std::vector<std::string_view>& wanted) {
  CsvRow header(reader, line);
  std::vector<size_t> at;
  for (std::string_view w : wanted) {
    size_t found = header.size();
    for (size_t i = 0; i < header.size(); ++i) {
      if (header.text(i) == w) found = i;
    }
    if (found == header.size()) {
      return header.row_error("header has no column \"" + std::string(w) +
                              "\" (expected a header row naming the columns)");
    }
    at.push_back(found);
  }
  return at;
}

}  // namespace

std::string dns_label(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!ok) c = '-';
    if (c == '-' && (out.empty() || out.back() == '-')) continue;
    out += c;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.size() > 63) out.resize(63);
  while (!out.empty() && out.back() == '-') out.pop_back();
  if (out.empty()) out = "x";
  return out;
}

StatusOr<ImportedTrace> import_alibaba_gpu_2023(const std::string& pod_list,
                                                const std::string& node_list,
                                                const ImportOptions& options) {
  ImportedTrace out;
  out.format = "alibaba-gpu-2023";
  out.speedup = options.speedup;
  out.window_start_s = options.window_start_s.value_or(0);

  // Nodes.
  {
    auto reader = LineReader::open(node_list);
    if (!reader.is_ok()) return reader.status();
    LineReader& r = **reader;
    auto first = r.next();
    if (!first.is_ok()) return first.status();
    if (!*first) return Status(StatusCode::kBadRequest, r.name() + ": empty file, expected a header row");
    auto cols = header_columns(r, **first, {"sn", "cpu_milli", "memory_mib", "gpu", "model"});
    if (!cols.is_ok()) return cols.status();
    const auto& c = *cols;
    std::map<std::string, int64_t> seen;
    while (true) {
      auto line = r.next();
      if (!line.is_ok()) return line.status();
      if (!*line) break;
      if ((*line)->empty()) continue;
      ++out.stats.rows;
      CsvRow row(r, **line);
      TraceNode n;
      n.id = std::string(row.text(c[0]));
      if (n.id.empty()) return row.error(c[0], "sn", "empty node name");
      if (auto [it, inserted] = seen.emplace(n.id, r.line_number()); !inserted) {
        return row.error(c[0], "sn", "node \"" + n.id + "\" already listed on line " +
                                         std::to_string(it->second));
      }
      auto cpu = row.integer(c[1], "cpu_milli");
      if (!cpu.is_ok()) return cpu.status();
      auto mem = row.integer(c[2], "memory_mib");
      if (!mem.is_ok()) return mem.status();
      auto gpu = row.integer(c[3], "gpu", 0);
      if (!gpu.is_ok()) return gpu.status();
      if (*cpu <= 0) return row.error(c[1], "cpu_milli", "must be > 0");
      if (*mem <= 0) return row.error(c[2], "memory_mib", "must be > 0");
      if (*gpu < 0) return row.error(c[3], "gpu", "must be >= 0");
      n.capacity.cpu_millis = *cpu;
      n.capacity.memory_bytes = *mem << 20;
      n.capacity.pods = options.pods_per_node;
      std::string model(row.text(c[4]));
      if (*gpu > 0) {
        n.capacity.extended[kGpuResource] = *gpu;
        n.capacity.extended[kGpuMilliResource] = *gpu * 1000;
        if (!model.empty()) n.labels[kGpuModelLabel] = model;
      }
      out.nodes.push_back(std::move(n));
    }
    if (out.nodes.empty()) return Status(StatusCode::kBadRequest, r.name() + ": no nodes");
  }

  // Pods, streamed.
  auto reader = LineReader::open(pod_list);
  if (!reader.is_ok()) return reader.status();
  LineReader& r = **reader;
  auto first = r.next();
  if (!first.is_ok()) return first.status();
  if (!*first) return Status(StatusCode::kBadRequest, r.name() + ": empty file, expected a header row");
  static const std::vector<std::string_view> kCols = {
      "name",     "cpu_milli", "memory_mib", "num_gpu",       "gpu_milli",     "gpu_spec",
      "qos",      "pod_phase", "creation_time", "deletion_time", "scheduled_time"};
  auto cols = header_columns(r, **first, kCols);
  if (!cols.is_ok()) return cols.status();
  const auto& c = *cols;
  const double win_start = options.window_start_s.value_or(0);
  Duration last{};
  while (true) {
    auto line = r.next();
    if (!line.is_ok()) return line.status();
    if (!*line) break;
    if ((*line)->empty()) continue;
    ++out.stats.rows;
    CsvRow row(r, **line);
    std::string_view name = row.text(c[0]);
    if (name.empty()) return row.error(c[0], "name", "empty pod name");
    auto created = row.decimal(c[8], "creation_time");
    if (!created.is_ok()) return created.status();
    if (*created < 0) return row.error(c[8], "creation_time", "must be >= 0");
    if (*created < win_start || (options.window_end_s && *created >= *options.window_end_s)) {
      ++out.stats.pods_outside_window;
      continue;
    }
    if (!sampled(name, options.sample)) {
      ++out.stats.pods_sampled_out;
      continue;
    }
    auto cpu = row.integer(c[1], "cpu_milli");
    if (!cpu.is_ok()) return cpu.status();
    auto mem = row.integer(c[2], "memory_mib");
    if (!mem.is_ok()) return mem.status();
    auto num_gpu = row.integer(c[3], "num_gpu", 0);
    if (!num_gpu.is_ok()) return num_gpu.status();
    auto gpu_milli = row.integer(c[4], "gpu_milli", 0);
    if (!gpu_milli.is_ok()) return gpu_milli.status();
    if (*cpu < 0) return row.error(c[1], "cpu_milli", "must be >= 0");
    if (*mem < 0) return row.error(c[2], "memory_mib", "must be >= 0");
    if (*num_gpu < 0) return row.error(c[3], "num_gpu", "must be >= 0");
    if (*gpu_milli < 0 || *gpu_milli > 1000) {
      return row.error(c[4], "gpu_milli", "must be in 0..1000");
    }
    if (*num_gpu > 1 && *gpu_milli != 1000 && *gpu_milli != 0) {
      return row.error(c[4], "gpu_milli",
                       "a pod of " + std::to_string(*num_gpu) +
                           " GPUs must use whole GPUs (1000), got " + std::to_string(*gpu_milli));
    }
    auto deleted = row.decimal(c[9], "deletion_time", -1.0);
    if (!deleted.is_ok()) return deleted.status();
    auto scheduled = row.decimal(c[10], "scheduled_time", -1.0);
    if (!scheduled.is_ok()) return scheduled.status();
    if (*deleted >= 0 && *deleted < *created) {
      return row.error(c[9], "deletion_time", "is before creation_time");
    }
    if (*scheduled >= 0 && *scheduled < *created) {
      return row.error(c[10], "scheduled_time", "is before creation_time");
    }

    TracePod p;
    p.name = dns_label(name);
    p.cpu_millis = *cpu;
    p.memory_bytes = *mem << 20;
    if (*num_gpu > 0) {
      bool shared = *num_gpu == 1 && *gpu_milli > 0 && *gpu_milli < 1000;
      if (shared) {
        p.extended.emplace_back(kGpuMilliResource, *gpu_milli);
      } else {
        p.extended.emplace_back(kGpuResource, *num_gpu);
        p.extended.emplace_back(kGpuMilliResource, *num_gpu * 1000);
      }
      std::sort(p.extended.begin(), p.extended.end());
    }
    p.gpu_model_allow = std::string(row.text(c[5]));
    std::string qos(row.text(c[6]));
    if (!qos.empty()) p.labels["alibaba.com/qos"] = dns_label(qos);
    p.created = to_replay_time(*created, options);
    if (*deleted >= 0 && (!options.window_end_s || *deleted < *options.window_end_s)) {
      p.deleted = to_replay_time(*deleted, options);
    }
    if (*scheduled >= 0) p.scheduled = to_replay_time(*scheduled, options);
    last = std::max(last, p.deleted.value_or(p.created));
    out.pods.push_back(std::move(p));
  }
  std::stable_sort(out.pods.begin(), out.pods.end(),
                   [](const TracePod& a, const TracePod& b) { return a.created < b.created; });
  if (options.window_end_s) {
    out.end = to_replay_time(*options.window_end_s, options);
  } else {
    out.end = last + std::chrono::seconds(60);
  }
  return out;
}

}  // namespace flotilla::replay
