// Alibaba cluster-trace-v2018 importer. No header rows; seconds; CPU 100 = one
// core; memory normalised 0-100 (of ImportOptions::machine_memory_bytes).
//   machine_meta   -> machines (first row: capacity; status USING = up,
//                     anything else = down, over time)
//   batch_task     -> instance_num pods "<job>-<task>-<i>", created at
//                     start_time, deleted at end_time, trace-scheduled at start
//   container_meta -> one long-running pod per container_id (its first row)
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "scenarios/replay/csv.h"
#include "scenarios/replay/importers.h"

namespace flotilla::replay {

namespace {

struct Machine {
  TraceNode node;
  std::vector<std::pair<double, bool>> changes;
};

}  // namespace

StatusOr<ImportedTrace> import_alibaba_2018(const std::string& batch_task,
                                            const std::string& machine_meta,
                                            const std::string& container_meta,
                                            const ImportOptions& options) {
  ImportedTrace out;
  out.format = "alibaba-2018";
  out.speedup = options.speedup;
  out.window_start_s = options.window_start_s.value_or(0);
  const double win_start = options.window_start_s.value_or(0);
  auto in_window = [&](double t) {
    return t >= win_start && (!options.window_end_s || t < *options.window_end_s);
  };
  auto mem_of = [&](double normalised) {
    return std::llround(normalised / 100.0 * static_cast<double>(options.machine_memory_bytes));
  };

  // Machines.
  std::map<std::string, Machine> machines;
  {
    auto files = shard_files(machine_meta);
    if (!files.is_ok()) return files.status();
    for (const std::string& file : *files) {
      auto reader = LineReader::open(file);
      if (!reader.is_ok()) return reader.status();
      LineReader& r = **reader;
      while (true) {
        auto line = r.next();
        if (!line.is_ok()) return line.status();
        if (!*line) break;
        if ((*line)->empty()) continue;
        ++out.stats.rows;
        CsvRow row(r, **line);
        std::string id(row.text(0));
        if (id.empty()) return row.error(0, "machine_id", "empty machine id");
        auto t = row.decimal(1, "time_stamp", 0.0);
        if (!t.is_ok()) return t.status();
        auto it = machines.find(id);
        if (it == machines.end()) {
          auto cpus = row.integer(4, "cpu_num");
          if (!cpus.is_ok()) return cpus.status();
          auto mem = row.decimal(5, "mem_size");
          if (!mem.is_ok()) return mem.status();
          if (*cpus <= 0) return row.error(4, "cpu_num", "must be > 0");
          if (*mem <= 0 || *mem > 100) return row.error(5, "mem_size", "must be in (0, 100] (normalised)");
          Machine m;
          m.node.id = id;
          m.node.capacity.cpu_millis = *cpus * 1000;
          m.node.capacity.memory_bytes = mem_of(*mem);
          m.node.capacity.pods = options.pods_per_node;
          it = machines.emplace(id, std::move(m)).first;
        }
        std::string_view status = row.text(6);
        it->second.changes.emplace_back(*t, status.empty() || status == "USING");
      }
    }
  }
  {
    // Same bookkeeping as google-2011: initial state at the window's start, then changes.
    for (auto& [id, m] : machines) {
      std::stable_sort(m.changes.begin(), m.changes.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      bool present = false;
      size_t i = 0;
      for (; i < m.changes.size() && m.changes[i].first <= win_start; ++i) present = m.changes[i].second;
      bool state = present;
      if (!present) out.node_events.push_back({Duration(0), id, false});
      for (; i < m.changes.size(); ++i) {
        const auto& [t, up] = m.changes[i];
        if (options.window_end_s && t >= *options.window_end_s) break;
        if (up == state) continue;
        state = up;
        out.node_events.push_back({to_replay_time(t, options), id, up});
      }
      out.nodes.push_back(std::move(m.node));
    }
    std::stable_sort(out.node_events.begin(), out.node_events.end(),
                     [](const NodeEvent& a, const NodeEvent& b) { return a.at < b.at; });
  }

  Duration last{};
  // Batch tasks.
  {
    auto files = shard_files(batch_task);
    if (!files.is_ok()) return files.status();
    for (const std::string& file : *files) {
      auto reader = LineReader::open(file);
      if (!reader.is_ok()) return reader.status();
      LineReader& r = **reader;
      while (true) {
        auto line = r.next();
        if (!line.is_ok()) return line.status();
        if (!*line) break;
        if ((*line)->empty()) continue;
        ++out.stats.rows;
        CsvRow row(r, **line);
        std::string_view task = row.text(0), job = row.text(2);
        if (task.empty()) return row.error(0, "task_name", "empty task name");
        if (job.empty()) return row.error(2, "job_name", "empty job name");
        auto instances = row.integer(1, "instance_num", 1);
        if (!instances.is_ok()) return instances.status();
        if (*instances < 0 || *instances > 100000) {
          return row.error(1, "instance_num", "must be in 0..100000");
        }
        auto start = row.decimal(5, "start_time", 0.0);  // missing or 0: before the trace
        if (!start.is_ok()) return start.status();
        auto end = row.decimal(6, "end_time", 0.0);  // missing or 0: not finished
        if (!end.is_ok()) return end.status();
        auto cpu = row.decimal(7, "plan_cpu", 0.0);
        if (!cpu.is_ok()) return cpu.status();
        auto mem = row.decimal(8, "plan_mem", 0.0);
        if (!mem.is_ok()) return mem.status();
        if (*cpu < 0) return row.error(7, "plan_cpu", "must be >= 0");
        if (*mem < 0 || *mem > 100) return row.error(8, "plan_mem", "must be in 0..100 (normalised)");
        if (*end > 0 && *end < *start) return row.error(6, "end_time", "is before start_time");
        for (int64_t i = 0; i < *instances; ++i) {
          std::string name = dns_label(std::string(job) + "-" + std::string(task) + "-" + std::to_string(i));
          if (!in_window(*start)) {
            ++out.stats.pods_outside_window;
            continue;
          }
          if (!sampled(name, options.sample)) {
            ++out.stats.pods_sampled_out;
            continue;
          }
          TracePod p;
          p.name = name;
          p.cpu_millis = std::llround(*cpu * 10.0);
          p.memory_bytes = mem_of(*mem);
          p.created = to_replay_time(*start, options);
          p.scheduled = p.created;
          if (*end > 0 && (!options.window_end_s || *end < *options.window_end_s)) {
            p.deleted = to_replay_time(*end, options);
          }
          p.labels["alibaba.com/job"] = dns_label(job);
          last = std::max(last, p.deleted.value_or(p.created));
          out.pods.push_back(std::move(p));
        }
      }
    }
  }
  // Containers (long-running services).
  if (!container_meta.empty()) {
    std::set<std::string> seen;
    auto files = shard_files(container_meta);
    if (!files.is_ok()) return files.status();
    for (const std::string& file : *files) {
      auto reader = LineReader::open(file);
      if (!reader.is_ok()) return reader.status();
      LineReader& r = **reader;
      while (true) {
        auto line = r.next();
        if (!line.is_ok()) return line.status();
        if (!*line) break;
        if ((*line)->empty()) continue;
        ++out.stats.rows;
        CsvRow row(r, **line);
        std::string id(row.text(0));
        if (id.empty()) return row.error(0, "container_id", "empty container id");
        if (!seen.insert(id).second) {
          ++out.stats.events_ignored;  // later rows of the same container
          continue;
        }
        std::string machine(row.text(1));
        if (!machine.empty() && !machines.count(machine)) {
          ++out.stats.unknown_machines;
          out.warn(row.where() + ": container " + id + " on unknown machine " + machine);
        }
        auto t = row.decimal(2, "time_stamp", 0.0);
        if (!t.is_ok()) return t.status();
        auto cpu = row.decimal(5, "cpu_request", 0.0);
        if (!cpu.is_ok()) return cpu.status();
        auto mem = row.decimal(7, "mem_size", 0.0);
        if (!mem.is_ok()) return mem.status();
        if (*cpu < 0) return row.error(5, "cpu_request", "must be >= 0");
        if (*mem < 0 || *mem > 100) return row.error(7, "mem_size", "must be in 0..100 (normalised)");
        std::string name = dns_label(id);
        if (!in_window(*t)) {
          ++out.stats.pods_outside_window;
          continue;
        }
        if (!sampled(name, options.sample)) {
          ++out.stats.pods_sampled_out;
          continue;
        }
        TracePod p;
        p.name = name;
        p.cpu_millis = std::llround(*cpu * 10.0);
        p.memory_bytes = mem_of(*mem);
        p.created = to_replay_time(*t, options);
        p.scheduled = p.created;
        if (!row.empty(3)) p.labels["alibaba.com/app"] = dns_label(row.text(3));
        last = std::max(last, p.created);
        out.pods.push_back(std::move(p));
      }
    }
  }
  std::stable_sort(out.pods.begin(), out.pods.end(), [](const TracePod& a, const TracePod& b) {
    return std::tie(a.created, a.name) < std::tie(b.created, b.name);
  });
  if (options.window_end_s) {
    out.end = to_replay_time(*options.window_end_s, options);
  } else {
    for (const auto& e : out.node_events) last = std::max(last, e.at);
    out.end = last + std::chrono::seconds(60);
  }
  return out;
}

}  // namespace flotilla::replay
