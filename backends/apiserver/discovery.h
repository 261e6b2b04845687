// Discovery documents in the legacy (plain JSON) form: /version, /api,
// /api/v1 (APIResourceList with verbs, short names and the scale/status
// subresources), /apis, and the OpenAPI v3 index and core/v1 document that
// tell kubectl the server validates fields itself (fieldValidation), so plain
// `kubectl apply -f` works without --validate=false.
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
std::string api_resource_list_json();
std::string api_group_list_json();
std::string openapi_v3_index_json();
std::string openapi_v3_core_json();

}  // namespace flotilla::apiserver
