#include "core/timing/timing.h"

#include <charconv>
#include <string>

namespace flotilla {

TimingProfile TimingProfile::kubernetes() { return TimingProfile{}; }

TimingProfile TimingProfile::fast() {
  TimingProfile t;
  t.name = "fast";
  t.node_lease_duration = seconds(4);
  t.node_status_update_period = seconds(1);
  t.node_status_report_period = minutes(1);
  t.agent_sync_period = seconds(1);
  t.container_backoff_initial = seconds(1);
  t.container_backoff_max = seconds(30);
  t.container_backoff_reset = minutes(1);
  t.image_pull_backoff_initial = seconds(1);
  t.image_pull_backoff_max = seconds(30);
  t.node_monitor_period = milliseconds(500);
  t.node_monitor_grace_period = seconds(4);
  t.pod_eviction_timeout = seconds(2);
  t.eviction_rate_per_second = 10;
  t.scheduler_backoff_initial = milliseconds(100);
  t.scheduler_backoff_max = seconds(1);
  t.proxy_min_sync_period = milliseconds(100);
  t.proxy_health_check_interval = milliseconds(500);
  return t;
}

StatusOr<TimingProfile> TimingProfile::named(std::string_view name) {
  if (name == "kubernetes") return kubernetes();
  if (name == "fast") return fast();
  return Status(StatusCode::kNotFound, "unknown timing profile \"" + std::string(name) +
                                           "\" (known: kubernetes, fast)");
}

Status TimingProfile::set(std::string_view field, std::string_view value) {
  struct DurationField {
    std::string_view name;
    Duration TimingProfile::*member;
  };
  static constexpr DurationField kDurations[] = {
      {"node_lease_duration", &TimingProfile::node_lease_duration},
      {"node_status_update_period", &TimingProfile::node_status_update_period},
      {"node_status_report_period", &TimingProfile::node_status_report_period},
      {"agent_sync_period", &TimingProfile::agent_sync_period},
      {"container_backoff_initial", &TimingProfile::container_backoff_initial},
      {"container_backoff_max", &TimingProfile::container_backoff_max},
      {"container_backoff_reset", &TimingProfile::container_backoff_reset},
      {"image_pull_backoff_initial", &TimingProfile::image_pull_backoff_initial},
      {"image_pull_backoff_max", &TimingProfile::image_pull_backoff_max},
      {"default_termination_grace", &TimingProfile::default_termination_grace},
      {"node_monitor_period", &TimingProfile::node_monitor_period},
      {"node_monitor_grace_period", &TimingProfile::node_monitor_grace_period},
      {"pod_eviction_timeout", &TimingProfile::pod_eviction_timeout},
      {"scheduler_backoff_initial", &TimingProfile::scheduler_backoff_initial},
      {"scheduler_backoff_max", &TimingProfile::scheduler_backoff_max},
      {"controller_backoff_initial", &TimingProfile::controller_backoff_initial},
      {"controller_backoff_max", &TimingProfile::controller_backoff_max},
      {"endpoint_updates_batch_period", &TimingProfile::endpoint_updates_batch_period},
      {"replication_updates_batch_period", &TimingProfile::replication_updates_batch_period},
      {"event_ttl", &TimingProfile::event_ttl},
      {"proxy_min_sync_period", &TimingProfile::proxy_min_sync_period},
      {"proxy_health_check_interval", &TimingProfile::proxy_health_check_interval},
  };
  struct IntField {
    std::string_view name;
    int TimingProfile::*member;
  };
  static constexpr IntField kInts[] = {
      {"proxy_health_rise", &TimingProfile::proxy_health_rise},
      {"proxy_health_fall", &TimingProfile::proxy_health_fall},
      {"proxy_max_retries", &TimingProfile::proxy_max_retries},
  };
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kBadRequest,
                  "timing." + std::string(field) + ": " + why);
  };
  for (const auto& f : kDurations) {
    if (f.name != field) continue;
    StatusOr<Duration> d = parse_duration(value);
    if (!d.is_ok()) return bad(d.status().message());
    if (*d < Duration(0)) return bad("must not be negative");
    this->*f.member = *d;
    return Status::ok();
  }
  for (const auto& f : kInts) {
    if (f.name != field) continue;
    int v = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || p != value.data() + value.size() || v < 0) {
      return bad("expected a non-negative integer, got \"" + std::string(value) + "\"");
    }
    this->*f.member = v;
    return Status::ok();
  }
  if (field == "eviction_rate_per_second") {
    try {
      size_t used = 0;
      double v = std::stod(std::string(value), &used);
      if (used != value.size() || v <= 0) return bad("expected a positive number");
      eviction_rate_per_second = v;
      return Status::ok();
    } catch (...) {
      return bad("expected a positive number, got \"" + std::string(value) + "\"");
    }
  }
  return bad("unknown timing field");
}

}  // namespace flotilla
