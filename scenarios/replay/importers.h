// The trace importers. Each reads its files line by line (plain or gzip),
// keeps only what the options select, and returns an ImportedTrace. Bad rows
// are errors naming file:line:column and the column; nothing crashes on input.
//
//   alibaba-gpu-2023 ("openb", clusterdata cluster-trace-gpu-v2023):
//     node list  sn,cpu_milli,memory_mib,gpu,model            (header row)
//     pod list   name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,
//                pod_phase,creation_time,deletion_time,scheduled_time (seconds)
//   google-2011 (clusterdata-2011-2; no header, microseconds, *.csv.gz shards):
//     machine_events  time,machine_id,event_type,platform_id,cpus,memory
//     task_events     time,missing_info,job_id,task_index,machine_id,event_type,
//                     user,scheduling_class,priority,cpu_request,memory_request,
//                     disk_request,different_machines
//   alibaba-2018 (cluster-trace-v2018; no header, seconds):
//     machine_meta    machine_id,time_stamp,failure_domain_1,failure_domain_2,
//                     cpu_num,mem_size,status
//     batch_task      task_name,instance_num,job_name,task_type,status,
//                     start_time,end_time,plan_cpu,plan_mem
//     container_meta  container_id,machine_id,time_stamp,app_du,status,
//                     cpu_request,cpu_limit,mem_size
// docs/replay.md gives each mapping in full.
#pragma once

#include <string>
#include <vector>

#include "scenarios/replay/trace_model.h"

namespace flotilla::replay {

StatusOr<ImportedTrace> import_alibaba_gpu_2023(const std::string& pod_list,
                                                const std::string& node_list,
                                                const ImportOptions& options);

// `task_events` and `machine_events` are files or directories (every
// *.csv / *.csv.gz in them, in name order, as the trace's shards are named).
StatusOr<ImportedTrace> import_google_2011(const std::string& task_events,
                                           const std::string& machine_events,
                                           const ImportOptions& options);

// Each path is a file or a directory of shards; `container_meta` may be empty
// (batch tasks only).
StatusOr<ImportedTrace> import_alibaba_2018(const std::string& batch_task,
                                            const std::string& machine_meta,
                                            const std::string& container_meta,
                                            const ImportOptions& options);

// The files of a path: itself, or a directory's *.csv and *.csv.gz sorted by name.
StatusOr<std::vector<std::string>> shard_files(const std::string& path);

// A DNS-1123 label from any text: lowercase, [a-z0-9-], at most 63 characters.
std::string dns_label(std::string_view text);

}  // namespace flotilla::replay
