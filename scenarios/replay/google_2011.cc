// Google cluster-data 2011 (clusterdata-2011-2) importer. No header rows;
// times in microseconds (0: before the trace started, INT64_MAX: after it
// ended); CPU and memory normalised to the largest machine (1.0), scaled here
// by ImportOptions::machine_cpu_millis / machine_memory_bytes.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "scenarios/replay/csv.h"
#include "scenarios/replay/importers.h"

namespace flotilla::replay {

namespace {

constexpr int64_t kAfterEnd = std::numeric_limits<int64_t>::max();

enum TaskEvent { kSubmit = 0, kSchedule = 1, kEvict = 2, kFail = 3, kFinish = 4, kKill = 5, kLost = 6,
                 kUpdatePending = 7, kUpdateRunning = 8 };
enum MachineEvent { kAdd = 0, kRemove = 1, kUpdate = 2 };

struct Machine {
  TraceNode node;
  std::vector<std::pair<double, bool>> changes;  // (trace seconds, present)
};

// Initial machine state at the window's start, then each change in it.
void finish_machines(std::map<std::string, Machine>& machines, const ImportOptions& options,
                     ImportedTrace& out);
void finish_pods(ImportedTrace& out, const ImportOptions& options, Duration last);

}  // namespace

StatusOr<std::vector<std::string>> shard_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return std::vector<std::string>{path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    std::string name = e.path().filename().string();
    auto ends = [&](const std::string& s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (e.is_regular_file() && (ends(".csv") || ends(".csv.gz"))) files.push_back(e.path().string());
  }
  if (ec) return Status(StatusCode::kUnavailable, path + ": " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) return Status(StatusCode::kNotFound, path + ": no *.csv or *.csv.gz files");
  return files;
}

namespace {

void finish_machines(std::map<std::string, Machine>& machines, const ImportOptions& options,
                     ImportedTrace& out) {
  const double start = options.window_start_s.value_or(0);
  for (auto& [id, m] : machines) {
    std::stable_sort(m.changes.begin(), m.changes.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    bool present = false;
    size_t i = 0;
    for (; i < m.changes.size() && m.changes[i].first <= start; ++i) present = m.changes[i].second;
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

void finish_pods(ImportedTrace& out, const ImportOptions& options, Duration last) {
  std::stable_sort(out.pods.begin(), out.pods.end(), [](const TracePod& a, const TracePod& b) {
    return std::tie(a.created, a.name) < std::tie(b.created, b.name);
  });
  if (options.window_end_s) {
    out.end = to_replay_time(*options.window_end_s, options);
  } else {
    for (const auto& e : out.node_events) last = std::max(last, e.at);
    out.end = last + std::chrono::seconds(60);
  }
}

}  // namespace

StatusOr<ImportedTrace> import_google_2011(const std::string& task_events,
                                           const std::string& machine_events,
                                           const ImportOptions& options) {
  ImportedTrace out;
  out.format = "google-2011";
  out.speedup = options.speedup;
  out.window_start_s = options.window_start_s.value_or(0);

  std::map<std::string, Machine> machines;
  auto mfiles = shard_files(machine_events);
  if (!mfiles.is_ok()) return mfiles.status();
  for (const std::string& file : *mfiles) {
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
      auto time = row.integer(0, "time");
      if (!time.is_ok()) return time.status();
      std::string id(row.text(1));
      if (id.empty()) return row.error(1, "machine_id", "empty machine id");
      auto type = row.integer(2, "event_type");
      if (!type.is_ok()) return type.status();
      if (*time == kAfterEnd) {
        ++out.stats.events_ignored;
        continue;
      }
      const double t = static_cast<double>(*time) * 1e-6;
      auto it = machines.find(id);
      if (*type == kAdd) {
        if (it == machines.end()) {
          if (row.empty(4) || row.empty(5)) {
            out.warn(row.where() + ": machine " + id + " has no CPU or memory capacity; skipped");
            continue;
          }
          auto cpus = row.decimal(4, "cpus");
          if (!cpus.is_ok()) return cpus.status();
          auto mem = row.decimal(5, "memory");
          if (!mem.is_ok()) return mem.status();
          if (*cpus <= 0 || *cpus > 1) return row.error(4, "cpus", "must be in (0, 1] (normalised)");
          if (*mem <= 0 || *mem > 1) return row.error(5, "memory", "must be in (0, 1] (normalised)");
          Machine m;
          m.node.id = id;
          m.node.capacity.cpu_millis =
              std::llround(*cpus * static_cast<double>(options.machine_cpu_millis));
          m.node.capacity.memory_bytes =
              std::llround(*mem * static_cast<double>(options.machine_memory_bytes));
          m.node.capacity.pods = options.pods_per_node;
          if (!row.empty(3)) m.node.labels["google.com/platform"] = dns_label(row.text(3));
          it = machines.emplace(id, std::move(m)).first;
        }
        it->second.changes.emplace_back(t, true);
      } else if (*type == kRemove) {
        if (it == machines.end()) {
          ++out.stats.unknown_machines;
          out.warn(row.where() + ": REMOVE of unknown machine " + id + "; ignored");
          continue;
        }
        it->second.changes.emplace_back(t, false);
      } else if (*type == kUpdate) {
        ++out.stats.events_ignored;  // capacity changes are not modelled
        if (it == machines.end()) ++out.stats.unknown_machines;
      } else {
        return row.error(2, "event_type", "expected 0 (ADD), 1 (REMOVE) or 2 (UPDATE), got " +
                                              std::to_string(*type));
      }
    }
  }
  finish_machines(machines, options, out);

  struct Task {
    int64_t pod = -1;  // index into out.pods of the live incarnation; -1: none
    int incarnations = 0;
    bool dropped = false;  // live incarnation outside the window or sampled out
  };
  std::map<std::pair<int64_t, int64_t>, Task> tasks;
  Duration last{};
  const double win_start = options.window_start_s.value_or(0);
  auto tfiles = shard_files(task_events);
  if (!tfiles.is_ok()) return tfiles.status();
  for (const std::string& file : *tfiles) {
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
      auto time = row.integer(0, "time");
      if (!time.is_ok()) return time.status();
      auto job = row.integer(2, "job_id");
      if (!job.is_ok()) return job.status();
      auto index = row.integer(3, "task_index");
      if (!index.is_ok()) return index.status();
      auto type = row.integer(5, "event_type");
      if (!type.is_ok()) return type.status();
      if (*type < kSubmit || *type > kUpdateRunning) {
        return row.error(5, "event_type", "expected 0..8, got " + std::to_string(*type));
      }
      if (*time == kAfterEnd) {
        ++out.stats.events_ignored;
        continue;
      }
      const double t = static_cast<double>(*time) * 1e-6;  // 0: before the trace started
      Task& task = tasks[{*job, *index}];
      if (*type == kSubmit) {
        if (task.pod >= 0 || task.dropped) {
          // Resubmitted while live (the trace omits the end): the old one ends now.
          if (task.pod >= 0) out.pods[static_cast<size_t>(task.pod)].deleted = to_replay_time(t, options);
        }
        std::string name = "job-" + std::to_string(*job) + "-" + std::to_string(*index);
        if (task.incarnations > 0) name += "-r" + std::to_string(task.incarnations);
        ++task.incarnations;
        task.pod = -1;
        task.dropped = true;
        if (t < win_start || (options.window_end_s && t >= *options.window_end_s)) {
          ++out.stats.pods_outside_window;
          continue;
        }
        if (!sampled(name, options.sample)) {
          ++out.stats.pods_sampled_out;
          continue;
        }
        auto cpu = row.decimal(9, "cpu_request", 0.0);
        if (!cpu.is_ok()) return cpu.status();
        auto mem = row.decimal(10, "memory_request", 0.0);
        if (!mem.is_ok()) return mem.status();
        if (*cpu < 0 || *mem < 0) return row.error(*cpu < 0 ? 9 : 10, *cpu < 0 ? "cpu_request" : "memory_request", "must be >= 0");
        TracePod p;
        p.name = name;
        p.cpu_millis = std::llround(*cpu * static_cast<double>(options.machine_cpu_millis));
        p.memory_bytes = std::llround(*mem * static_cast<double>(options.machine_memory_bytes));
        p.created = to_replay_time(t, options);
        if (!row.empty(7)) p.labels["google.com/scheduling-class"] = std::string(row.text(7));
        if (!row.empty(8)) p.labels["google.com/priority"] = std::string(row.text(8));
        last = std::max(last, p.created);
        task.pod = static_cast<int64_t>(out.pods.size());
        task.dropped = false;
        out.pods.push_back(std::move(p));
        continue;
      }
      if (task.pod < 0) {
        if (!task.dropped && task.incarnations == 0) ++out.stats.events_ignored;  // never submitted in the trace
        continue;
      }
      TracePod& p = out.pods[static_cast<size_t>(task.pod)];
      if (options.window_end_s && t >= *options.window_end_s) continue;
      const Duration at = to_replay_time(t, options);
      if (*type == kSchedule) {
        if (!p.scheduled) p.scheduled = std::max(at, p.created);
        std::string machine(row.text(4));
        if (!machine.empty() && !machines.count(machine)) {
          ++out.stats.unknown_machines;
          out.warn(row.where() + ": task scheduled on unknown machine " + machine);
        }
      } else if (*type >= kEvict && *type <= kLost) {
        p.deleted = std::max(at, p.created);
        last = std::max(last, *p.deleted);
        task.pod = -1;
      } else {
        ++out.stats.events_ignored;  // UPDATE_PENDING / UPDATE_RUNNING
      }
    }
  }
  finish_pods(out, options, last);
  return out;
}

}  // namespace flotilla::replay
