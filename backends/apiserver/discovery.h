// Discovery documents in the legacy (plain JSON) form: /version, /api,
// /api/v1 (APIResourceList with verbs, short names and the scale/status
// subresources), /apis, /apis/{group}[/{version}] for the kinds in a named
// group (coordination.k8s.io), and the OpenAPI v3 index and per group
// version documents that tell kubectl the server validates fields itself
// (fieldValidation), so plain `kubectl apply -f` works without
// --validate=false.
#pragma once

#include <string>
#include <string_view>

namespace flotilla::apiserver {

// The Kubernetes version the server speaks ("v1.31.0-flotilla").
inline constexpr std::string_view kServedMajor = "1";
inline constexpr std::string_view kServedMinor = "31";
inline constexpr std::string_view kServedGitVersion = "v1.31.0-flotilla";

std::string version_json();
// `server_address` is host:port as clients reach the server.
std::string api_versions_json(std::string_view server_address);
// /api/v1: the core group's resources (kinds with an empty KindInfo::group).
std::string api_resource_list_json();
// /apis/{group}/{version} ("coordination.k8s.io/v1"); "" when not served.
std::string api_resource_list_json(std::string_view group_version);
// /apis: every named group of the kind table, each with its one version.
std::string api_group_list_json();
// /apis/{group}; "" when not served.
std::string api_group_json(std::string_view group);
std::string openapi_v3_index_json();
std::string openapi_v3_core_json();
// /openapi/v3/apis/{group}/{version}; "" when not served.
std::string openapi_v3_group_json(std::string_view group_version);

}  // namespace flotilla::apiserver
