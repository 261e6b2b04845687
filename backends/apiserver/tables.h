// Server-side Table output (meta.k8s.io/v1 Table), the columns `kubectl get`
// prints: pods NAME READY STATUS RESTARTS AGE (+ IP, NODE with -o wide),
// replicationcontrollers, services, endpoints, nodes, namespaces, events.
// Cells are computed the way Kubernetes' printers compute them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/api/object.h"
#include "core/util/time.h"

namespace flotilla::apiserver {

// What each row carries in `object` (the includeObject query parameter).
enum class IncludeObject { kNone, kMetadata, kObject };

// Kubernetes' duration.HumanDuration: "45s", "3m20s", "5h", "12d", "2y30d".
std::string human_duration(Duration d);

// The column definitions of `kind` (wide columns have priority 1).
nlohmann::json table_columns(api::Kind kind);
// One row for `object`; ages are measured at `now`.
nlohmann::json table_row(api::Kind kind, const api::Object& object, TimePoint now,
                         IncludeObject include);
// A whole Table. `with_columns` false leaves columnDefinitions empty (watch
// events after the first).
nlohmann::json make_table(api::Kind kind, const std::vector<api::Object>& items, TimePoint now,
                          IncludeObject include, bool with_columns);

}  // namespace flotilla::apiserver
