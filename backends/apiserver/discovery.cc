#include "backends/apiserver/discovery.h"

#include <nlohmann/json.hpp>

#include "core/api/object.h"

namespace flotilla::apiserver {
namespace {

using nlohmann::json;

constexpr std::string_view kOpenApiHash = "flotilla-core-v1-1";

json verbs_all() {
  return json::array(
      {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"});
}

}  // namespace

std::string version_json() {
  json v = {{"major", kServedMajor},
            {"minor", kServedMinor},
            {"gitVersion", kServedGitVersion},
            {"gitCommit", "0000000000000000000000000000000000000000"},
            {"gitTreeState", "clean"},
            {"buildDate", "2026-01-01T00:00:00Z"},
            {"goVersion", "go1.22.0"},
            {"compiler", "gc"},
            {"platform", "linux/amd64"}};
  return v.dump();
}

std::string api_versions_json(std::string_view server_address) {
  json v = {{"kind", "APIVersions"},
            {"versions", json::array({"v1"})},
            {"serverAddressByClientCIDRs",
             json::array({{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}})}};
  return v.dump();
}

std::string api_resource_list_json() {
  json resources = json::array();
  for (const api::KindInfo& k : api::all_kinds()) {
    std::string singular(k.name);
    for (char& c : singular) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    json r = {{"name", k.resource},     {"singularName", singular}, {"namespaced", k.namespaced},
              {"kind", k.name},         {"verbs", verbs_all()},
              {"shortNames", json::array({k.short_name})}};
    if (k.kind == api::Kind::kPod || k.kind == api::Kind::kReplicationController ||
        k.kind == api::Kind::kService) {
      r["categories"] = json::array({"all"});
    }
    if (k.kind == api::Kind::kNamespace) {
      r["verbs"] = json::array({"create", "delete", "get", "list", "patch", "update", "watch"});
    }
    resources.push_back(std::move(r));
    if (k.kind == api::Kind::kPod || k.kind == api::Kind::kReplicationController ||
        k.kind == api::Kind::kService || k.kind == api::Kind::kNode ||
        k.kind == api::Kind::kNamespace) {
      resources.push_back({{"name", std::string(k.resource) + "/status"},
                           {"singularName", ""},
                           {"namespaced", k.namespaced},
                           {"kind", k.name},
                           {"verbs", json::array({"get", "patch", "update"})}});
    }
    if (k.kind == api::Kind::kPod) {
      resources.push_back({{"name", "pods/log"},
                           {"singularName", ""},
                           {"namespaced", true},
                           {"kind", "Pod"},
                           {"verbs", json::array({"get"})}});
    }
    if (k.kind == api::Kind::kReplicationController) {
      resources.push_back({{"name", "replicationcontrollers/scale"},
                           {"singularName", ""},
                           {"namespaced", true},
                           {"group", "autoscaling"},
                           {"version", "v1"},
                           {"kind", "Scale"},
                           {"verbs", json::array({"get", "patch", "update"})}});
    }
  }
  json list = {{"kind", "APIResourceList"}, {"groupVersion", "v1"}, {"resources", resources}};
  return list.dump();
}

std::string api_group_list_json() {
  json v = {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", json::array()}};
  return v.dump();
}

std::string openapi_v3_index_json() {
  json v = {{"paths",
             {{"api/v1",
               {{"serverRelativeURL", "/openapi/v3/api/v1?hash=" + std::string(kOpenApiHash)}}}}}};
  return v.dump();
}

// Only what clients look for: each kind's PATCH operation, tagged with its
// group-version-kind, accepting the fieldValidation query parameter (kubectl
// then leaves validation to the server). No requestBody: kubectl computes
// strategic merge patches from its built-in types.
std::string openapi_v3_core_json() {
  json paths = json::object();
  json params = json::array({{{"name", "fieldValidation"}, {"in", "query"},
                              {"schema", {{"type", "string"}}}},
                             {{"name", "fieldManager"}, {"in", "query"},
                              {"schema", {{"type", "string"}}}},
                             {{"name", "dryRun"}, {"in", "query"},
                              {"schema", {{"type", "string"}}}}});
  auto op = [&](std::string_view group, std::string_view version, std::string_view kind) {
    return json{{"x-kubernetes-group-version-kind",
                 {{"group", group}, {"version", version}, {"kind", kind}}},
                {"parameters", params},
                {"responses", {{"200", {{"description", "OK"}}}}}};
  };
  for (const api::KindInfo& k : api::all_kinds()) {
    std::string base = k.namespaced ? "/api/v1/namespaces/{namespace}/" + std::string(k.resource)
                                    : "/api/v1/" + std::string(k.resource);
    paths[base + "/{name}"] = {{"patch", op("", "v1", k.name)}};
    if (k.kind == api::Kind::kReplicationController) {
      paths[base + "/{name}/scale"] = {{"patch", op("autoscaling", "v1", "Scale")}};
    }
  }
  json doc = {{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", kServedGitVersion}}},
              {"paths", paths},
              {"components", {{"schemas", json::object()}}}};
  return doc.dump();
}

}  // namespace flotilla::apiserver
