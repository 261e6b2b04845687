#include "backends/apiserver/patch.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <string>

namespace flotilla::apiserver {
namespace {

using nlohmann::json;

constexpr std::string_view kSetElementOrder = "$setElementOrder/";
constexpr std::string_view kDeleteFromPrimitiveList = "$deleteFromPrimitiveList/";

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// The patchMergeKey Kubernetes declares for a list field of core/v1, or "" for
// lists that are replaced whole.
std::string merge_key(std::string_view field, const json& a, const json& b) {
  if (field == "containers" || field == "initContainers" || field == "volumes" ||
      field == "env" || field == "imagePullSecrets") {
    return "name";
  }
  if (field == "ports") {
    for (const json* list : {&a, &b}) {
      if (!list->is_array()) continue;
      for (const json& item : *list) {
        if (item.is_object() && item.contains("containerPort")) return "containerPort";
        if (item.is_object() && item.contains("port")) return "port";
      }
    }
    return "port";
  }
  if (field == "volumeMounts") return "mountPath";
  if (field == "conditions" || field == "addresses") return "type";
  if (field == "ownerReferences") return "uid";
  if (field == "taints") return "key";
  return "";
}

bool is_directive_item(const json& item) { return item.is_object() && item.contains("$patch"); }

StatusOr<json> smp(const json& target, const json& patch);

StatusOr<json> merge_list(std::string_view field, const json& target, const json& patch) {
  std::string key = merge_key(field, target, patch);
  if (key.empty() || !target.is_array()) {
    json out = json::array();
    for (const json& item : patch) {
      if (!is_directive_item(item)) out.push_back(item);
    }
    return out;
  }
  // A {"$patch": "replace"} item replaces the whole list with the other items.
  for (const json& item : patch) {
    if (is_directive_item(item) && item["$patch"] == "replace") {
      json out = json::array();
      for (const json& other : patch) {
        if (!is_directive_item(other)) out.push_back(other);
      }
      return out;
    }
  }
  json out = target;
  for (const json& item : patch) {
    if (!item.is_object() || !item.contains(key)) {
      return Status(StatusCode::kBadRequest,
                    "map: " + safe_dump(item) + " does not contain declared merge key: " + key);
    }
    auto it = std::find_if(out.begin(), out.end(), [&](const json& t) {
      return t.is_object() && t.contains(key) && t[key] == item[key];
    });
    if (is_directive_item(item)) {
      if (item["$patch"] == "delete") {
        if (it != out.end()) out.erase(it);
        continue;
      }
      if (item["$patch"] != "merge") {
        return Status(StatusCode::kBadRequest,
                      "unknown patch type: " + safe_dump(item["$patch"]) + " in list " +
                          std::string(field));
      }
    }
    if (it == out.end()) {
      StatusOr<json> merged = smp(json::object(), item);
      if (!merged.is_ok()) return merged.status();
      out.push_back(std::move(*merged));
    } else {
      StatusOr<json> merged = smp(*it, item);
      if (!merged.is_ok()) return merged.status();
      *it = std::move(*merged);
    }
  }
  return out;
}

// Orders `list` like `order` (by merge key); items not named keep their
// relative order after the named ones.
json apply_element_order(const json& list, const json& order, const std::string& key) {
  if (!list.is_array() || !order.is_array() || key.empty()) return list;
  json out = json::array();
  std::vector<bool> used(list.size(), false);
  for (const json& o : order) {
    if (!o.is_object() || !o.contains(key)) continue;
    for (size_t i = 0; i < list.size(); ++i) {
      if (!used[i] && list[i].is_object() && list[i].contains(key) && list[i][key] == o[key]) {
        used[i] = true;
        out.push_back(list[i]);
        break;
      }
    }
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (!used[i]) out.push_back(list[i]);
  }
  return out;
}

StatusOr<json> smp(const json& target, const json& patch) {
  if (!patch.is_object()) return patch;
  if (patch.contains("$patch")) {
    if (patch["$patch"] == "replace") {
      json out = patch;
      out.erase("$patch");
      return out;
    }
    if (patch["$patch"] == "delete") return json();
  }
  json out = target.is_object() ? target : json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "$patch" || k == "$retainKeys" || starts_with(k, kSetElementOrder)) continue;
    if (starts_with(k, kDeleteFromPrimitiveList)) {
      std::string field = k.substr(kDeleteFromPrimitiveList.size());
      if (out.contains(field) && out[field].is_array() && v.is_array()) {
        json kept = json::array();
        for (const json& x : out[field]) {
          if (std::find(v.begin(), v.end(), x) == v.end()) kept.push_back(x);
        }
        out[field] = kept;
      }
      continue;
    }
    if (v.is_null()) {
      out.erase(k);
    } else if (v.is_object()) {
      StatusOr<json> merged = smp(out.contains(k) ? out[k] : json::object(), v);
      if (!merged.is_ok()) return merged.status();
      if (merged->is_null()) {
        out.erase(k);
      } else {
        out[k] = std::move(*merged);
      }
    } else if (v.is_array()) {
      StatusOr<json> merged = merge_list(k, out.contains(k) ? out[k] : json(), v);
      if (!merged.is_ok()) return merged.status();
      out[k] = std::move(*merged);
    } else {
      out[k] = v;
    }
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (!starts_with(it.key(), kSetElementOrder)) continue;
    std::string field = it.key().substr(kSetElementOrder.size());
    if (!out.contains(field)) continue;
    out[field] = apply_element_order(out[field], it.value(),
                                     merge_key(field, out[field], it.value()));
  }
  if (patch.contains("$retainKeys") && patch["$retainKeys"].is_array()) {
    const json& keep = patch["$retainKeys"];
    json kept = json::object();
    for (auto it = out.begin(); it != out.end(); ++it) {
      if (std::find(keep.begin(), keep.end(), json(it.key())) != keep.end()) {
        kept[it.key()] = it.value();
      }
    }
    out = std::move(kept);
  }
  return out;
}

json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  errno = 0;
  char* end = nullptr;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end != nullptr && *end == '\0' && (std::isdigit(s.back()) != 0)) {
    return static_cast<int64_t>(i);
  }
  if (s.find_first_of("0123456789") != std::string::npos &&
      s.find_first_not_of("0123456789.eE+-") == std::string::npos) {
    errno = 0;
    double d = std::strtod(s.c_str(), &end);
    if (errno == 0 && end != nullptr && *end == '\0') return d;
  }
  return s;
}

json node_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : n) out[kv.first.Scalar()] = node_to_json(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : n) out.push_back(node_to_json(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return scalar_to_json(n);
    default:
      return nullptr;
  }
}

}  // namespace

nlohmann::json merge_patch(const nlohmann::json& target, const nlohmann::json& patch) {
  if (!patch.is_object()) return patch;
  json out = target.is_object() ? target : json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it.value().is_null()) {
      out.erase(it.key());
    } else {
      out[it.key()] = merge_patch(out.contains(it.key()) ? out[it.key()] : json(), it.value());
    }
  }
  return out;
}

StatusOr<nlohmann::json> strategic_merge_patch(const nlohmann::json& target,
                                               const nlohmann::json& patch) {
  if (!patch.is_object()) {
    return Status(StatusCode::kBadRequest, "a strategic merge patch must be a JSON object");
  }
  return smp(target, patch);
}

StatusOr<nlohmann::json> json_patch(const nlohmann::json& target, const nlohmann::json& patch) {
  if (!patch.is_array()) {
    return Status(StatusCode::kBadRequest, "a JSON patch must be an array of operations");
  }
  for (const json& op : patch) {
    if (op.is_object() && op.value("op", "") == "test") {
      try {
        if (target.at(json::json_pointer(op.value("path", ""))) != op.value("value", json())) {
          return Status(StatusCode::kInvalid,
                        "the server rejected our request due to an error in our request: "
                        "testing value " + op.value("path", "") + " failed");
        }
      } catch (const std::exception& e) {
        return Status(StatusCode::kInvalid, std::string("test operation failed: ") + e.what());
      }
    }
  }
  try {
    return target.patch(patch);
  } catch (const std::exception& e) {
    return Status(StatusCode::kBadRequest, std::string("the JSON patch failed: ") + e.what());
  }
}

StatusOr<nlohmann::json> yaml_to_json(std::string_view text) {
  try {
    YAML::Node node = YAML::Load(std::string(text));
    return node_to_json(node);
  } catch (const YAML::Exception& e) {
    return Status(StatusCode::kBadRequest, std::string("error parsing the body: ") + e.what());
  }
}

}  // namespace flotilla::apiserver
