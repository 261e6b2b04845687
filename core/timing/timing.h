// Timing profiles: every period, grace period, timeout and backoff the control
// plane uses, in one place, so a scenario can pick `kubernetes` (upstream
// defaults) or `fast` (live demos and tests) and override any single value.
#pragma once

#include <string>
#include <string_view>

#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla {

struct TimingProfile {
  std::string name = "kubernetes";

  // Node agent (kubelet).
  // The kubelet's node heartbeats: the Lease is renewed every quarter of its
  // duration; the Node's status is checked every update period and written
  // when it changed or when the report period has passed since the last write.
  Duration node_lease_duration = seconds(40);
  Duration node_status_update_period = seconds(10);
  Duration node_status_report_period = minutes(5);
  Duration agent_sync_period = seconds(10);           // full resync of the node's pods
  Duration container_backoff_initial = seconds(10);   // first restart is immediate
  Duration container_backoff_max = seconds(300);
  Duration container_backoff_reset = minutes(10);     // clean running resets the backoff
  Duration image_pull_backoff_initial = seconds(10);
  Duration image_pull_backoff_max = seconds(300);
  Duration default_termination_grace = seconds(30);   // pods without a grace period

  // Node lifecycle controller.
  Duration node_monitor_period = seconds(5);
  Duration node_monitor_grace_period = seconds(40);   // missing heartbeats -> NotReady/Unknown
  Duration pod_eviction_timeout = seconds(300);       // NotReady -> pods deleted
  double eviction_rate_per_second = 0.1;              // nodes evicted per second

  // Scheduler.
  Duration scheduler_backoff_initial = seconds(1);
  Duration scheduler_backoff_max = seconds(10);

  // Controllers' work queues (client-go's default rate limiter).
  Duration controller_backoff_initial = milliseconds(5);
  Duration controller_backoff_max = seconds(1000);
  // Pod events reaching the endpoints controller are coalesced per Service
  // for this long (kube-controller-manager --endpoint-updates-batch-period;
  // upstream default 0: every event syncs). Large clusters set it.
  Duration endpoint_updates_batch_period = Duration(0);
  // The same for the replication manager's pod events per controller.
  // Upstream has no flag: there the sync's own cost coalesces events; in
  // virtual time a sync costs nothing, so a large simulated cluster sets it.
  Duration replication_updates_batch_period = Duration(0);

  // API server: an Event lives this long after its last write (kube-apiserver
  // --event-ttl); 0 keeps Events forever.
  Duration event_ttl = hours(1);

  // Service proxy.
  Duration proxy_min_sync_period = seconds(1);        // endpoint updates coalesced
  Duration proxy_health_check_interval = seconds(2);  // active checks; 0: passive only
  int proxy_health_rise = 2;
  int proxy_health_fall = 3;
  int proxy_max_retries = 2;                          // passive: next endpoint

  // Profiles.
  static TimingProfile kubernetes();
  static TimingProfile fast();
  // "kubernetes" or "fast"; kNotFound otherwise, listing the known names.
  static StatusOr<TimingProfile> named(std::string_view name);
  // Overrides one value by its snake_case name ("pod_eviction_timeout", "10s").
  Status set(std::string_view field, std::string_view value);
};

}  // namespace flotilla
