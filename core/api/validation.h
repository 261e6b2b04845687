// Validation of API objects with Kubernetes' rules and wording. Every error
// names the field path ("spec.template.spec.containers[0].image: Required
// value"); invalid_status turns a list into the API's 422 message
// (`ReplicationController "web" is invalid: [a, b]`).
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "core/util/status.h"

namespace flotilla::api {

// One problem with one field, as Kubernetes' field.Error.
struct FieldError {
  std::string field;  // "spec.containers[0].image"
  // "Required value", "Invalid value", "Unsupported value", "Too long",
  // "Duplicate value", "Forbidden", "Not found"
  std::string type;
  // The offending value as Kubernetes prints it ("\"Web\"", "70000"); shown
  // only for Invalid/Unsupported/Duplicate/Not found.
  std::string value;
  std::string detail;
  // "spec.template.spec.containers[0].image: Required value",
  // "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
  std::string to_string() const;
  friend bool operator==(const FieldError&, const FieldError&) = default;
};

// Validates an object of any kind in types.proto (objects of other types give
// no errors). Returns every problem found, in field order.
std::vector<FieldError> validate(const google::protobuf::Message& object);

// Validates an update: `updated` must be valid, and fields Kubernetes treats as
// immutable must not change (metadata.name/namespace/uid/creationTimestamp; a
// Pod's spec except containers' images and activeDeadlineSeconds, which may
// only be set or lowered; a Service's clusterIP once set). Both objects must be
// of the same kind. `old_object` is taken as valid (the stored version, checked
// when written): what the update keeps of its names, labels, annotations and a
// Node's capacity and allocatable is not checked again.
std::vector<FieldError> validate_update(const google::protobuf::Message& old_object,
                                        const google::protobuf::Message& updated);

// kInvalid with Kubernetes' message: `Pod "web-1" is invalid: spec.containers:
// Required value`; several errors are joined as `[a, b]`. OK when `errors` is
// empty.
flotilla::Status invalid_status(const google::protobuf::Message& object,
                                const std::vector<FieldError>& errors);

// Label keys and annotation keys (qualified names: optional DNS subdomain
// prefix + '/' + name of at most 63 characters): Kubernetes' reasons, empty
// when valid.
std::vector<std::string> qualified_name_errors(std::string_view key);
// Label values: at most 63 characters, may be empty.
std::vector<std::string> label_value_errors(std::string_view value);

}  // namespace flotilla::api
