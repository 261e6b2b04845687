// The JSON the API server sends for a stored object: the codec's encoding
// plus what Kubernetes' Go types always write and typed clients rely on
// (zero values without omitempty; metav1.MicroTime with six fractional
// digits). Every object the server returns, in bodies, lists, watch events and
// Table rows, goes through it.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace flotilla::apiserver {

// JSON of one object of a kind from the kind table (any message is encoded
// as the codec does, unchanged).
std::string wire_json(const google::protobuf::Message& object);

}  // namespace flotilla::apiserver
