// Patches as the Kubernetes API server applies them, over JSON documents:
// JSON merge patch (RFC 7386), strategic merge patch for Flotilla's core/v1
// types (lists of containers, ports, volumes, env, ... merged by their keys,
// with the $patch / $retainKeys / $setElementOrder / $deleteFromPrimitiveList
// directives) and JSON patch (RFC 6902).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "core/util/status.h"

namespace flotilla::apiserver {

// JSON text of `j` with invalid UTF-8 in strings replaced by U+FFFD, so a
// request carrying bad bytes (echoed in an error message) cannot make
// nlohmann's dump() throw. Everything the server sends goes through it.
inline std::string safe_dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// RFC 7386: objects merge recursively, null deletes, anything else replaces.
nlohmann::json merge_patch(const nlohmann::json& target, const nlohmann::json& patch);

// Kubernetes' strategic merge patch for core/v1 objects. Lists with a merge
// key (containers/initContainers/volumes/env by name, container ports by
// containerPort, service ports by port, volumeMounts by mountPath, conditions
// by type, ownerReferences by uid, taints by key) merge item by item; other
// lists are replaced. Errors: kBadRequest for a malformed directive.
StatusOr<nlohmann::json> strategic_merge_patch(const nlohmann::json& target,
                                               const nlohmann::json& patch);

// RFC 6902 (add, remove, replace, move, copy, test). Errors: kBadRequest
// naming the failing operation; a failed test is kInvalid as in Kubernetes.
StatusOr<nlohmann::json> json_patch(const nlohmann::json& target, const nlohmann::json& patch);

// Converts a YAML or JSON text to JSON. Plain YAML scalars become numbers,
// booleans or null when they read as one; quoted scalars stay strings.
StatusOr<nlohmann::json> yaml_to_json(std::string_view text);

}  // namespace flotilla::apiserver
