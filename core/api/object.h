// What every stored object has in common: a kind, ObjectMeta, and a place in the
// API's URI space. Objects are protobuf messages from types.proto, passed around
// as immutable shared snapshots (api::Object); a kind table maps between kinds,
// resources ("pods"), short names ("po") and descriptors.
#pragma once

#include <google/protobuf/arena.h>
#include <google/protobuf/message.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <typeinfo>

#include "core/api/types.pb.h"

namespace flotilla::api {

enum class Kind {
  kPod,
  kReplicationController,
  kService,
  kEndpoints,
  kNode,
  kNamespace,
  kEvent,
  kLease,
  kEndpointSlice,
};
inline constexpr int kKindCount = 9;

// An immutable snapshot of a stored object. Never mutate through a cast: copy,
// change the copy, and write it back.
using Object = std::shared_ptr<const google::protobuf::Message>;

struct KindInfo {
  Kind kind;
  std::string_view name;       // "Pod"
  std::string_view resource;   // "pods"
  std::string_view short_name; // "po"
  std::string_view list_kind;  // "PodList"
  std::string_view group;      // "" for the core group, "coordination.k8s.io"
  std::string_view api_version;  // "v1", "coordination.k8s.io/v1"
  bool namespaced;
  const google::protobuf::Descriptor* descriptor;
  const std::type_info* type;  // of the generated class
  const ObjectMeta& (*meta)(const google::protobuf::Message&);
  ObjectMeta* (*mutable_meta)(google::protobuf::Message&);
  std::unique_ptr<google::protobuf::Message> (*make)();
  // The `spec` message; null for kinds without one (Endpoints, Event,
  // EndpointSlice).
  const google::protobuf::Message* (*spec)(const google::protobuf::Message&);
  // Sets apiVersion and kind to this kind's where they are empty.
  void (*fill_type_meta)(google::protobuf::Message&);
  // Whether two objects of this kind have the same `spec`, field by field,
  // for a kind written often enough that it matters (a Lease renewal every
  // 10 s per node). Null: compare the specs' serializations.
  bool (*same_spec)(const google::protobuf::Message&, const google::protobuf::Message&) = nullptr;
};

const KindInfo& kind_info(Kind kind);
std::span<const KindInfo> all_kinds();
// By kind name ("Pod"), case-sensitive; nullptr when unknown.
const KindInfo* kind_by_name(std::string_view kind);
// By resource ("pods"), singular ("pod") or short name ("po"); nullptr when unknown.
const KindInfo* kind_by_resource(std::string_view resource);
// The kind of a message from types.proto; nullptr for other messages.
const KindInfo* kind_of(const google::protobuf::Message& m);

template <typename T> constexpr Kind kind_for();
template <> constexpr Kind kind_for<Pod>() { return Kind::kPod; }
template <> constexpr Kind kind_for<ReplicationController>() { return Kind::kReplicationController; }
template <> constexpr Kind kind_for<Service>() { return Kind::kService; }
template <> constexpr Kind kind_for<Endpoints>() { return Kind::kEndpoints; }
template <> constexpr Kind kind_for<Node>() { return Kind::kNode; }
template <> constexpr Kind kind_for<Namespace>() { return Kind::kNamespace; }
template <> constexpr Kind kind_for<Event>() { return Kind::kEvent; }
template <> constexpr Kind kind_for<Lease>() { return Kind::kLease; }
template <> constexpr Kind kind_for<EndpointSlice>() { return Kind::kEndpointSlice; }

// ObjectMeta of any kind's message. The message must be one of the kinds.
const ObjectMeta& meta_of(const google::protobuf::Message& m);
ObjectMeta* mutable_meta_of(google::protobuf::Message& m);

// Whether two LeaseSpecs are alike, field by field (presence included), as
// their serializations would be: the store compares a Lease's spec on every
// renewal, most of a large cluster's writes. A test sets each field of
// LeaseSpec's descriptor in turn, so a field added to it must be added here.
bool same_lease_spec(const LeaseSpec& a, const LeaseSpec& b);

inline constexpr std::string_view kDefaultNamespace = "default";

// "/api/v1/namespaces/{ns}/{resource}/{name}", or "/api/v1/{resource}/{name}"
// for cluster-scoped kinds ("/apis/{group}/v1/..." for a kind in a group). An empty namespace means "default".
std::string object_uri(Kind kind, std::string_view ns, std::string_view name);
// "<ns>/<name>" (or "<name>" for cluster-scoped kinds): the store's key.
std::string object_key(Kind kind, std::string_view ns, std::string_view name);

// Downcasts a snapshot to its concrete type; the caller knows the kind.
template <typename T>
std::shared_ptr<const T> as(const Object& o) {
  return std::static_pointer_cast<const T>(o);
}
// Wraps a concrete message as a snapshot.
template <typename T>
Object share(T message) {
  return std::make_shared<const T>(std::move(message));
}

// `m`'s deterministic serialization (map entries in key order), into a
// string of exactly its size: a string grown by doubling as it is written
// keeps up to twice the bytes, and the store keeps these strings for packed
// kinds (750,000 Events at the start of the large scenario).
std::string deterministic_bytes(const google::protobuf::Message& m);

// Whether two messages serialize alike (deterministically), so are equal.
// Their sizes first: a change that adds or drops anything (an Endpoints
// address, a pod condition) is found without writing out either. Small ones
// (a Lease's spec, compared on each renewal) are written on the stack. The
// generated serializers make this far cheaper than a reflective comparison.
bool same_bytes(const google::protobuf::Message& a, const google::protobuf::Message& b);

// A new, empty message whose fields and strings are all allocated from one
// block of `kBlock` bytes allocated with it (a protobuf Arena started in
// that block; more blocks only if it outgrows it). Filled and shared as a
// snapshot, it costs one allocation and one free instead of one for every
// submessage and string (~24 for a Lease), and whoever copies it later reads
// one stretch of memory. For small objects written often: each node's Lease,
// renewed every 10 s (a Lease copied into one takes ~1 KB of a 1.5 KB block).
template <typename T, size_t kBlock = 1536>
std::shared_ptr<T> make_compact() {
  struct Holder {
    alignas(std::max_align_t) char block[kBlock];
    google::protobuf::Arena arena;
    Holder() : arena(options(block)) {}
    static google::protobuf::ArenaOptions options(char* b) {
      google::protobuf::ArenaOptions o;
      o.initial_block = b;
      o.initial_block_size = kBlock;
      return o;
    }
  };
  auto holder = std::make_shared<Holder>();
  T* message = google::protobuf::Arena::CreateMessage<T>(&holder->arena);
  return std::shared_ptr<T>(std::move(holder), message);
}

}  // namespace flotilla::api
