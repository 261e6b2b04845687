#include "backends/apiserver/wire_json.h"

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "backends/apiserver/patch.h"
#include "core/api/codec.h"
#include "core/api/object.h"

namespace flotilla::apiserver {
namespace {

// Adds the fields Kubernetes always writes (its Go types have no omitempty on
// them) where the codec left out a zero value: typed clients such as
// python3-kubernetes refuse a ContainerStatus without restartCount or a
// NodeSystemInfo without bootID. Pods and Nodes only; others need none.
std::string with_required_fields(std::string encoded, api::Kind kind) {
  if (kind != api::Kind::kPod && kind != api::Kind::kNode) return encoded;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(encoded, nullptr, false);
  if (!j.is_object() || !j.contains("status") || !j["status"].is_object()) return encoded;
  nlohmann::ordered_json& status = j["status"];
  bool changed = false;
  auto require = [&](nlohmann::ordered_json& obj, const char* key, nlohmann::ordered_json value) {
    if (obj.is_object() && !obj.contains(key)) {
      obj[key] = std::move(value);
      changed = true;
    }
  };
  if (kind == api::Kind::kPod) {
    for (const char* list : {"containerStatuses", "initContainerStatuses"}) {
      if (!status.contains(list) || !status[list].is_array()) continue;
      for (auto& cs : status[list]) {
        require(cs, "ready", false);
        require(cs, "restartCount", 0);
        require(cs, "image", "");
        require(cs, "imageID", "");
        for (const char* st : {"state", "lastState"}) {
          if (cs.contains(st) && cs[st].is_object() && cs[st].contains("terminated")) {
            require(cs[st]["terminated"], "exitCode", 0);
          }
        }
      }
    }
  } else if (status.contains("nodeInfo")) {
    for (const char* key : {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                            "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                            "operatingSystem", "architecture"}) {
      require(status["nodeInfo"], key, "");
    }
  }
  return changed ? safe_dump(j) : encoded;
}

// "2026-01-02T03:04:05.12Z" -> "2026-01-02T03:04:05.120000Z": metav1.MicroTime
// is written with exactly six fractional digits, and Go clients parse it with
// that layout (a time with none or with nine does not decode).
std::string micro_time(const std::string& t) {
  constexpr size_t kSeconds = 19;  // "2026-01-02T03:04:05"
  if (t.size() < kSeconds + 1 || t.back() != 'Z') return t;
  std::string frac = t.size() > kSeconds + 2 && t[kSeconds] == '.'
                         ? t.substr(kSeconds + 1, t.size() - kSeconds - 2)
                         : std::string();
  frac.resize(6, '0');
  return t.substr(0, kSeconds) + "." + frac + "Z";
}

// The MicroTime fields of each kind (the codec writes every time alike).
std::string with_micro_times(std::string encoded, api::Kind kind) {
  std::vector<std::vector<const char*>> paths;
  if (kind == api::Kind::kLease) paths = {{"spec", "acquireTime"}, {"spec", "renewTime"}};
  if (kind == api::Kind::kEvent) paths = {{"eventTime"}};
  if (paths.empty()) return encoded;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(encoded, nullptr, false);
  if (!j.is_object()) return encoded;
  bool changed = false;
  for (const auto& path : paths) {
    nlohmann::ordered_json* at = &j;
    for (const char* key : path) {
      if (at == nullptr || !at->is_object() || !at->contains(key)) {
        at = nullptr;
        break;
      }
      at = &(*at)[key];
    }
    if (at == nullptr || !at->is_string()) continue;
    std::string micro = micro_time(at->get<std::string>());
    if (micro != at->get<std::string>()) {
      *at = micro;
      changed = true;
    }
  }
  return changed ? safe_dump(j) : encoded;
}

}  // namespace

std::string wire_json(const google::protobuf::Message& object) {
  std::string encoded = api::encode_json(object);
  const api::KindInfo* kind = api::kind_of(object);
  if (kind == nullptr) return encoded;
  return with_micro_times(with_required_fields(std::move(encoded), kind->kind), kind->kind);
}

}  // namespace flotilla::apiserver
