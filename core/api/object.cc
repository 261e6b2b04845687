#include "core/api/object.h"

#include <google/protobuf/io/coded_stream.h>

#include <array>
#include <cassert>
#include <cstring>
#include <vector>

namespace flotilla::api {
namespace {

template <typename T>
const ObjectMeta& meta_impl(const google::protobuf::Message& m) {
  return static_cast<const T&>(m).metadata();
}
template <typename T>
ObjectMeta* mutable_meta_impl(google::protobuf::Message& m) {
  return static_cast<T&>(m).mutable_metadata();
}
template <typename T>
std::unique_ptr<google::protobuf::Message> make_impl() {
  return std::make_unique<T>();
}

template <typename T>
const google::protobuf::Message* spec_impl(const google::protobuf::Message& m) {
  if constexpr (requires(const T& t) { t.spec(); }) {
    return &static_cast<const T&>(m).spec();
  } else {
    return nullptr;
  }
}
template <typename T>
void fill_type_meta_impl(google::protobuf::Message& m) {
  const KindInfo& k = kind_info(kind_for<T>());
  T& t = static_cast<T&>(m);
  if (t.api_version().empty()) t.set_api_version(std::string(k.api_version));
  if (t.kind().empty()) t.set_kind(std::string(k.name));
}

template <typename T>
KindInfo info(std::string_view name, std::string_view resource, std::string_view short_name,
              bool namespaced, std::string_view group = "",
              std::string_view api_version = "v1") {
  return KindInfo{kind_for<T>(),   name,          resource,           short_name,
                  std::string_view(), group,      api_version,        namespaced,
                  T::descriptor(), &typeid(T),    &meta_impl<T>,     &mutable_meta_impl<T>,
                  &make_impl<T>,   &spec_impl<T>, &fill_type_meta_impl<T>};
}

const std::array<KindInfo, kKindCount>& table() {
  static const std::array<KindInfo, kKindCount> kinds = [] {
    std::array<KindInfo, kKindCount> t = {
        info<Pod>("Pod", "pods", "po", true),
        info<ReplicationController>("ReplicationController", "replicationcontrollers", "rc",
                                    true),
        info<Service>("Service", "services", "svc", true),
        info<Endpoints>("Endpoints", "endpoints", "ep", true),
        info<Node>("Node", "nodes", "no", false),
        info<Namespace>("Namespace", "namespaces", "ns", false),
        info<Event>("Event", "events", "ev", true),
        info<Lease>("Lease", "leases", "", true, "coordination.k8s.io",
                    "coordination.k8s.io/v1"),
        info<EndpointSlice>("EndpointSlice", "endpointslices", "", true, "discovery.k8s.io",
                            "discovery.k8s.io/v1"),
    };
    static const std::array<std::string_view, kKindCount> list_kinds = {
        "PodList",  "ReplicationControllerList", "ServiceList", "EndpointsList",
        "NodeList", "NamespaceList",             "EventList",   "LeaseList",
        "EndpointSliceList"};
    for (int i = 0; i < kKindCount; ++i) {
      assert(static_cast<int>(t[i].kind) == i);
      t[i].list_kind = list_kinds[i];
    }
    t[static_cast<int>(Kind::kLease)].same_spec = [](const google::protobuf::Message& a,
                                                     const google::protobuf::Message& b) {
      return same_lease_spec(static_cast<const Lease&>(a).spec(),
                             static_cast<const Lease&>(b).spec());
    };
    return t;
  }();
  return kinds;
}

}  // namespace

bool same_lease_spec(const LeaseSpec& a, const LeaseSpec& b) {
  auto same_time = [](bool has_a, const Time& x, bool has_b, const Time& y) {
    return has_a == has_b && x.nanos() == y.nanos();
  };
  return a.holder_identity() == b.holder_identity() &&
         a.has_lease_duration_seconds() == b.has_lease_duration_seconds() &&
         a.lease_duration_seconds() == b.lease_duration_seconds() &&
         same_time(a.has_acquire_time(), a.acquire_time(), b.has_acquire_time(), b.acquire_time()) &&
         same_time(a.has_renew_time(), a.renew_time(), b.has_renew_time(), b.renew_time()) &&
         a.has_lease_transitions() == b.has_lease_transitions() &&
         a.lease_transitions() == b.lease_transitions();
}

const KindInfo& kind_info(Kind kind) { return table()[static_cast<int>(kind)]; }

std::span<const KindInfo> all_kinds() { return table(); }

const KindInfo* kind_by_name(std::string_view kind) {
  for (const KindInfo& k : table()) {
    if (k.name == kind) return &k;
  }
  return nullptr;
}

const KindInfo* kind_by_resource(std::string_view resource) {
  for (const KindInfo& k : table()) {
    if (k.resource == resource || (!k.short_name.empty() && k.short_name == resource)) return &k;
    // Singular: "pods" -> "pod"; "endpoints" is its own singular.
    std::string_view r = k.resource;
    if (r.size() > 1 && r.back() == 's' && r.substr(0, r.size() - 1) == resource) return &k;
  }
  return nullptr;
}

const KindInfo* kind_of(const google::protobuf::Message& m) {
  // By the object's class first: a vtable load, where GetDescriptor() goes
  // through protobuf's once-only descriptor set-up on every call (2.5% of
  // 5,000 idle nodes' instructions went to finding kinds that way).
  const std::type_info* type = &typeid(m);
  for (const KindInfo& k : table()) {
    if (k.type == type) return &k;
  }
  // A dynamic message, or another copy of a class's type_info.
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  for (const KindInfo& k : table()) {
    if (k.descriptor == d) return &k;
  }
  return nullptr;
}

const ObjectMeta& meta_of(const google::protobuf::Message& m) {
  const KindInfo* k = kind_of(m);
  assert(k != nullptr);
  return k->meta(m);
}

ObjectMeta* mutable_meta_of(google::protobuf::Message& m) {
  const KindInfo* k = kind_of(m);
  assert(k != nullptr);
  return k->mutable_meta(m);
}

std::string object_uri(Kind kind, std::string_view ns, std::string_view name) {
  const KindInfo& k = kind_info(kind);
  std::string uri = k.group.empty() ? "/api/v1/" : "/apis/" + std::string(k.api_version) + "/";
  if (k.namespaced) {
    uri += "namespaces/";
    uri += ns.empty() ? kDefaultNamespace : ns;
    uri += "/";
  }
  uri += k.resource;
  uri += "/";
  uri += name;
  return uri;
}

std::string object_key(Kind kind, std::string_view ns, std::string_view name) {
  if (!kind_info(kind).namespaced) return std::string(name);
  std::string key(ns.empty() ? kDefaultNamespace : ns);
  key += "/";
  key += name;
  return key;
}

namespace {

// `m` serialized into `out`, `size` bytes, `size` being its ByteSizeLong()
// just computed (the serialization uses the sizes that cached). Straight into
// the array: no output stream object between.
void write_bytes(const google::protobuf::Message& m, size_t size, uint8_t* out) {
  google::protobuf::io::EpsCopyOutputStream stream(out, static_cast<int>(size),
                                                   /*deterministic=*/true);
  m._InternalSerialize(out, &stream);
}

std::string bytes_of_size(const google::protobuf::Message& m, size_t size) {
  std::string out(size, '\0');
  write_bytes(m, size, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

}  // namespace

std::string deterministic_bytes(const google::protobuf::Message& m) {
  return bytes_of_size(m, m.ByteSizeLong());
}

bool same_bytes(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  const size_t size = a.ByteSizeLong();
  if (size != b.ByteSizeLong()) return false;
  constexpr size_t kOnStack = 256;
  if (size <= kOnStack) {
    std::array<uint8_t, kOnStack> x, y;
    write_bytes(a, size, x.data());
    write_bytes(b, size, y.data());
    return std::memcmp(x.data(), y.data(), size) == 0;
  }
  // Larger objects (a large Service's Endpoints: ~1.5 MB each) are written
  // into a buffer the thread keeps, not into two strings allocated, zeroed
  // and freed on every check. Kept up to 64 MiB.
  constexpr size_t kKeep = size_t{64} << 20;
  thread_local std::vector<uint8_t> scratch;
  if (scratch.size() < 2 * size) scratch.resize(2 * size);
  write_bytes(a, size, scratch.data());
  write_bytes(b, size, scratch.data() + size);
  const bool same = std::memcmp(scratch.data(), scratch.data() + size, size) == 0;
  if (scratch.size() > kKeep) std::vector<uint8_t>().swap(scratch);
  return same;
}

}  // namespace flotilla::api
