#include "backends/apiserver/discovery.h"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

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

namespace {

// The resources of one group version ("v1", "coordination.k8s.io/v1").
json resources_of(std::string_view group_version) {
  json resources = json::array();
  for (const api::KindInfo& k : api::all_kinds()) {
    if (k.api_version != group_version) continue;
    std::string singular(k.name);
    for (char& c : singular) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    json r = {{"name", k.resource},     {"singularName", singular}, {"namespaced", k.namespaced},
              {"kind", k.name},         {"verbs", verbs_all()}};
    if (!k.short_name.empty()) r["shortNames"] = json::array({k.short_name});
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
  return resources;
}

// The named groups in kind-table order, each with its one version.
std::vector<std::pair<std::string_view, std::string_view>> served_groups() {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const api::KindInfo& k : api::all_kinds()) {
    if (k.group.empty()) continue;
    bool seen = false;
    for (const auto& g : out) seen = seen || g.second == k.api_version;
    if (!seen) out.emplace_back(k.group, k.api_version);
  }
  return out;
}

json group_json(std::string_view group, std::string_view group_version) {
  json version = {{"groupVersion", group_version},
                  {"version", group_version.substr(group_version.find('/') + 1)}};
  return {{"name", group}, {"versions", json::array({version})}, {"preferredVersion", version}};
}

}  // namespace

std::string api_resource_list_json() {
  json list = {
      {"kind", "APIResourceList"}, {"groupVersion", "v1"}, {"resources", resources_of("v1")}};
  return list.dump();
}

std::string api_resource_list_json(std::string_view group_version) {
  if (group_version.find('/') == std::string_view::npos) return "";
  json resources = resources_of(group_version);
  if (resources.empty()) return "";
  json list = {{"kind", "APIResourceList"},
               {"apiVersion", "v1"},
               {"groupVersion", group_version},
               {"resources", std::move(resources)}};
  return list.dump();
}

std::string api_group_list_json() {
  json groups = json::array();
  for (const auto& [group, gv] : served_groups()) groups.push_back(group_json(group, gv));
  json v = {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", std::move(groups)}};
  return v.dump();
}

std::string api_group_json(std::string_view group) {
  for (const auto& [g, gv] : served_groups()) {
    if (g != group) continue;
    json v = group_json(g, gv);
    v["kind"] = "APIGroup";
    v["apiVersion"] = "v1";
    return v.dump();
  }
  return "";
}

std::string openapi_v3_index_json() {
  json paths = {{"api/v1",
                 {{"serverRelativeURL", "/openapi/v3/api/v1?hash=" + std::string(kOpenApiHash)}}}};
  for (const auto& [group, gv] : served_groups()) {
    (void)group;
    paths["apis/" + std::string(gv)] = {
        {"serverRelativeURL",
         "/openapi/v3/apis/" + std::string(gv) + "?hash=" + std::string(kOpenApiHash)}};
  }
  json v = {{"paths", std::move(paths)}};
  return v.dump();
}

// Only what clients look for: each kind's PATCH operation, tagged with its
// group-version-kind, accepting the fieldValidation query parameter (kubectl
// then leaves validation to the server). No requestBody: kubectl computes
// strategic merge patches from its built-in types.
std::string openapi_v3_core_json() { return openapi_v3_group_json("v1"); }

std::string openapi_v3_group_json(std::string_view group_version) {
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
    if (k.api_version != group_version) continue;
    std::string prefix = k.group.empty() ? "/api/v1/" : "/apis/" + std::string(k.api_version) + "/";
    std::string base = k.namespaced ? prefix + "namespaces/{namespace}/" + std::string(k.resource)
                                    : prefix + std::string(k.resource);
    std::string_view version = k.api_version.substr(k.api_version.find('/') + 1);
    paths[base + "/{name}"] = {{"patch", op(k.group, version, k.name)}};
    if (k.kind == api::Kind::kReplicationController) {
      paths[base + "/{name}/scale"] = {{"patch", op("autoscaling", "v1", "Scale")}};
    }
  }
  if (paths.empty()) return "";
  json doc = {{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", kServedGitVersion}}},
              {"paths", paths},
              {"components", {{"schemas", json::object()}}}};
  return doc.dump();
}

}  // namespace flotilla::apiserver
