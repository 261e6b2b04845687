// The JSON/YAML codec: reflection-based conversion between YAML node trees
// (JSON is read as YAML) and protobuf messages, so ordinary Kubernetes
// manifests read and write. Field names are each field's json_name; Time is an
// RFC 3339 string, IntOrString a number or a string. Unknown fields are never
// dropped silently: they come back as warnings naming the field path.
#pragma once

#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/api/object.h"
#include "core/util/status.h"

namespace flotilla::api {

// Something the decoder accepted but that the user probably did not mean,
// today always an unknown field.
struct DecodeWarning {
  std::string field;    // "spec.containers[0].imagePullSecretz"
  std::string message;  // "unknown field"
  int line = 0;         // 1-based position of the field in the source; 0 if unknown
  int column = 0;
  // "spec.containers[0].imagePullSecretz: unknown field"
  std::string to_string() const;
};

// One object read from a manifest.
struct DecodedObject {
  Kind kind = Kind::kPod;
  std::shared_ptr<google::protobuf::Message> object;
  std::string source;  // the source name given to the decoder ("web.yaml")
  int line = 0;        // 1-based position of the object in the source
  int column = 0;
  std::vector<DecodeWarning> warnings;
};

// Decodes every object in a YAML stream (multi-document, empty documents
// skipped) or a JSON text. `kind: List` (and PodList, ServiceList, ...)
// contributes its `items`. Core kinds need `apiVersion: v1`. Errors are
// kBadRequest and read "web.yaml:12:7: spec.replicas: expected an integer, got
// \"three\"" (syntax errors: "web.yaml:3:5: <what the parser says>").
StatusOr<std::vector<DecodedObject>> decode_manifests(std::string_view text,
                                                      std::string_view source_name);

// Decodes one manifest node (a mapping with kind and apiVersion), for callers
// that embed manifests in a bigger YAML document. A List yields its items.
StatusOr<std::vector<DecodedObject>> decode_manifest_node(const YAML::Node& node,
                                                          std::string_view source_name);

// Merges a YAML node into any message. `path` prefixes field paths in errors
// and warnings ("" at the root, or e.g. "workload[2]"). Errors read
// "12:7: path.to.field: what is wrong" (no source name: prefix it yourself).
// Unknown fields are appended to `warnings` (may be null to ignore them).
flotilla::Status decode_into(const YAML::Node& node, google::protobuf::Message* message,
                             std::string_view path, std::vector<DecodeWarning>* warnings);

// Parses one YAML/JSON document into any message (e.g. a scenario schema):
// syntax errors, type errors and warnings as above, prefixed by source_name.
flotilla::Status decode_yaml(std::string_view text, std::string_view source_name,
                             google::protobuf::Message* message,
                             std::vector<DecodeWarning>* warnings);

// Kubernetes-style output: unset or default scalars, unset messages and empty
// lists and maps are omitted (a set but empty message, like `emptyDir: {}`,
// is kept); int64 are JSON numbers; map keys are sorted; fields in .proto
// order. Deterministic. decode(encode(x)) == x.
std::string encode_json(const google::protobuf::Message& message, bool pretty = false);
std::string encode_yaml(const google::protobuf::Message& message);

// Sets apiVersion ("v1") and kind on an object of a core kind when unset, as
// the API server does before writing it out. No effect on other messages.
void fill_type_meta(google::protobuf::Message* object);

// "Pod/web-1" (or "Pod" when unnamed), the way the CLI names an object.
std::string object_label(const google::protobuf::Message& object);

}  // namespace flotilla::api
