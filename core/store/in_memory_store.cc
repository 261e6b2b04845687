// InMemoryStore. Per kind: the objects in a map ordered by (namespace, name);
// posting sets (ordered by the same key) for spec.nodeName and label
// key=value; a history ring of changes for watch resumption; the open
// watchers, with pod watchers pinned to one node kept apart so a pod change
// only visits the watchers of its node(s) plus the unpinned ones.
#include "core/store/in_memory_store.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/api/labels.h"
#include "core/api/names.h"
#include "core/util/flat_index.h"

namespace flotilla::store {

using google::protobuf::Message;

namespace {

constexpr std::string_view kFieldNodeName = "spec.nodeName";
constexpr std::string_view kFieldName = "metadata.name";
constexpr std::string_view kFieldNamespace = "metadata.namespace";
constexpr int kGenerateNameAttempts = 16;
constexpr size_t kMaxGeneratedBaseLength = 58;  // 63 - 5, as Kubernetes truncates

struct ObjKey {
  std::string ns;
  std::string name;
  friend auto operator<=>(const ObjKey&, const ObjKey&) = default;
  friend bool operator==(const ObjKey&, const ObjKey&) = default;
};

// A stored object: parsed (`obj`), or for a packed kind only its
// deterministic serialization (`packed`, obj null), parsed again on each read.
struct Slot {
  api::Object obj;
  std::string packed;
  int64_t rv = 0;
};

using Entry = std::pair<const ObjKey, Slot>;

// Orders entries (and looks them up by key) by (namespace, name).
struct EntryLess {
  using is_transparent = void;
  bool operator()(const Entry* a, const Entry* b) const { return a->first < b->first; }
  bool operator()(const Entry* a, const ObjKey& b) const { return a->first < b; }
  bool operator()(const ObjKey& a, const Entry* b) const { return a < b->first; }
};
using EntrySet = std::set<const Entry*, EntryLess>;

// Point lookups (get, update, remove) by (namespace, name) without building a key.
struct KeyView {
  std::string_view ns;
  std::string_view name;
  friend bool operator==(const KeyView&, const KeyView&) = default;
};
struct KeyHash {
  using is_transparent = void;
  size_t operator()(const KeyView& k) const {
    size_t h = std::hash<std::string_view>()(k.ns);
    return h ^
           (std::hash<std::string_view>()(k.name) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
  size_t operator()(const ObjKey& k) const { return (*this)(KeyView{k.ns, k.name}); }
};
using ObjectMap = std::map<ObjKey, Slot>;
struct KeyOfEntry {
  KeyView operator()(const ObjectMap::iterator& it) const {
    return KeyView{it->first.ns, it->first.name};
  }
};

struct HistoryEntry {
  int64_t rv;
  WatchEventType type;
  api::Object obj;   // the new state; for kDeleted, the last state
  // The state watchers compare with: the state before (null for kAdded), or
  // the new state again when no selector can tell the two apart (see put()).
  api::Object prev;
  TimePoint at{};    // when it was recorded
};

std::string to_decimal(int64_t v) { return std::to_string(v); }

bool parse_int64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

using api::deterministic_bytes;
using api::same_bytes;

// A packed kind's bytes compressed with zstd and a dictionary of bytes like
// its objects' (raw content: serialized samples). Small objects share most
// of their strings with each other, not within themselves, so the dictionary
// is what makes them small. One context each way: the store is
// single-threaded. Bytes that are not a zstd frame are read as plain
// serialized bytes.
class Packer {
 public:
  Packer(const std::string& dictionary, int level)
      : cctx_(ZSTD_createCCtx()),
        dctx_(ZSTD_createDCtx()),
        cdict_(ZSTD_createCDict(dictionary.data(), dictionary.size(), level)),
        ddict_(ZSTD_createDDict(dictionary.data(), dictionary.size())) {}

  bool ok() const { return cctx_ && dctx_ && cdict_ && ddict_; }

  // Compressed deterministically (same bytes, dictionary and level: same
  // output), into a string of exactly its size.
  std::string pack(const Message& m) {
    const std::string raw = deterministic_bytes(m);
    scratch_.resize(ZSTD_compressBound(raw.size()));
    const size_t n = ZSTD_compress_usingCDict(cctx_.get(), scratch_.data(), scratch_.size(),
                                              raw.data(), raw.size(), cdict_.get());
    if (ZSTD_isError(n)) return raw;  // kept as it is; read back as plain bytes
    return std::string(scratch_.data(), n);
  }

  bool unpack(const std::string& bytes, Message* m) {
    const unsigned long long size = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
      return m->ParseFromString(bytes);
    }
    scratch_.resize(size);
    const size_t n = ZSTD_decompress_usingDDict(dctx_.get(), scratch_.data(), scratch_.size(),
                                                bytes.data(), bytes.size(), ddict_.get());
    if (ZSTD_isError(n)) return false;
    return m->ParseFromArray(scratch_.data(), static_cast<int>(n));
  }

 private:
  struct Free {
    void operator()(ZSTD_CCtx* p) const { ZSTD_freeCCtx(p); }
    void operator()(ZSTD_DCtx* p) const { ZSTD_freeDCtx(p); }
    void operator()(ZSTD_CDict* p) const { ZSTD_freeCDict(p); }
    void operator()(ZSTD_DDict* p) const { ZSTD_freeDDict(p); }
  };
  std::unique_ptr<ZSTD_CCtx, Free> cctx_;
  std::unique_ptr<ZSTD_DCtx, Free> dctx_;
  std::unique_ptr<ZSTD_CDict, Free> cdict_;
  std::unique_ptr<ZSTD_DDict, Free> ddict_;
  std::vector<char> scratch_;
};

// Whether two objects of a kind have the same `spec` (kinds without one: yes).
bool same_spec(const Message& a, const Message& b, const api::KindInfo& info) {
  if (info.same_spec != nullptr) return info.same_spec(a, b);
  const Message* x = info.spec(a);
  return x == nullptr || same_bytes(*x, *info.spec(b));
}

// A writable object to store: the caller's own when nobody else holds it
// (the usual `store.update(api::share(std::move(obj)))`: the object is not
// copied again), else a copy.
std::shared_ptr<Message> writable(api::Object in) {
  if (in.use_count() == 1) return std::const_pointer_cast<Message>(std::move(in));
  std::shared_ptr<Message> m(in->New());
  m->CopyFrom(*in);
  return m;
}

std::string quoted(std::string_view s) {
  std::string q = "\"";
  q += s;
  q += "\"";
  return q;
}

// `pods "web-1"`: how Kubernetes names an object in error messages.
std::string resource_name(const api::KindInfo& info, std::string_view name) {
  return std::string(info.resource) + " " + quoted(name);
}

Status not_found(const api::KindInfo& info, std::string_view name) {
  return not_found_error(resource_name(info, name) + " not found");
}

Status invalid_field(const api::KindInfo& info, std::string_view name, const std::string& what) {
  return invalid_error(std::string(info.name) + " " + quoted(name) + " is invalid: " + what);
}

// Continue tokens: hex of "<rv>\n<namespace>\n<name>". Opaque to clients.
std::string encode_continue(int64_t rv, const ObjKey& key) {
  std::string raw = to_decimal(rv) + "\n" + key.ns + "\n" + key.name;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool decode_continue(std::string_view token, int64_t* rv, ObjKey* key) {
  if (token.size() % 2 != 0) return false;
  std::string raw;
  for (size_t i = 0; i < token.size(); i += 2) {
    int v = 0;
    auto [p, ec] = std::from_chars(token.data() + i, token.data() + i + 2, v, 16);
    if (ec != std::errc() || p != token.data() + i + 2) return false;
    raw += static_cast<char>(v);
  }
  size_t a = raw.find('\n');
  if (a == std::string::npos) return false;
  size_t b = raw.find('\n', a + 1);
  if (b == std::string::npos) return false;
  if (!parse_int64(std::string_view(raw).substr(0, a), rv) || *rv <= 0) return false;
  key->ns = raw.substr(a + 1, b - a - 1);
  key->name = raw.substr(b + 1);
  return !key->name.empty();
}

}  // namespace

// ---------------------------------------------------------------- watchers

struct Watcher {
  uint64_t id = 0;
  api::Kind kind = api::Kind::kPod;
  std::string ns;
  api::LabelSelector labels;
  api::FieldSelector fields;
  std::string pinned_node;  // pods watched with spec.nodeName=X
  bool node_pinned = false;
  std::function<void(const WatchEvent&)> on_event;
  bool active = true;
  // The watch stream's buffer: events offered and not yet delivered. One
  // posted drain delivers them, so a burst of changes costs the loop one
  // event per watcher, not one per change and watcher.
  std::vector<WatchEvent> queued;
  bool drain_posted = false;

  bool matches(const Message& obj) const {
    const api::ObjectMeta& meta = api::kind_info(kind).meta(obj);
    if (!ns.empty() && meta.namespace_() != ns) return false;
    return labels.matches(meta.labels()) && fields.matches(obj);
  }
};

using WatcherMap = std::map<uint64_t, std::shared_ptr<Watcher>>;

// ------------------------------------------------------------------- state

struct KindStore {
  ObjectMap objects;
  // The same entries, hashed by (namespace, name) in a flat table, as
  // iterators into `objects`: a lookup reads the table's line and the entry,
  // and a removal needs no walk down the ordered map (750,000 Events expiring
  // in the large scenario's second hour: keys that share long prefixes,
  // compared ~20 times each).
  FlatIndex<ObjectMap::iterator, KeyOfEntry> by_key;
  std::unordered_map<std::string, int64_t> ns_count;
  std::unordered_map<std::string, EntrySet> by_node;  // pods only; "" = unscheduled
  std::unordered_map<std::string, std::unordered_map<std::string, EntrySet>> by_label;
  std::deque<HistoryEntry> history;
  int64_t history_floor = 0;  // every change with rv > floor is in history
  WatcherMap unpinned;
  std::unordered_map<std::string, WatcherMap> pinned;  // by node name
  size_t watchers = 0;
};

class InMemoryStore::State {
 public:
  State(EventLoop& loop, RandomStream& random, StoreOptions options)
      : loop_(loop), random_(random), options_(std::move(options)) {
    if (options_.history_size < 1) options_.history_size = 1;
    for (api::Kind k : options_.packed_kinds) packed_[static_cast<size_t>(k)] = true;
    for (const auto& [k, dictionary] : options_.packed_dictionaries) {
      if (!packed_[static_cast<size_t>(k)] || dictionary.empty()) continue;
      auto packer = std::make_unique<Packer>(dictionary, kPackLevel);
      if (packer->ok()) packers_[static_cast<size_t>(k)] = std::move(packer);
    }
  }

  ~State() {
    for (KindStore& ks : kinds_) {
      for (auto& [id, w] : ks.unpinned) w->active = false;
      for (auto& [node, ws] : ks.pinned) {
        for (auto& [id, w] : ws) w->active = false;
      }
    }
  }

  KindStore& ks(api::Kind k) { return kinds_[static_cast<int>(k)]; }
  const KindStore& ks(api::Kind k) const { return kinds_[static_cast<int>(k)]; }

  ObjKey key_of(const api::KindInfo& info, std::string_view ns, std::string_view name) const {
    if (!info.namespaced) return ObjKey{"", std::string(name)};
    return ObjKey{ns.empty() ? std::string(api::kDefaultNamespace) : std::string(ns),
                  std::string(name)};
  }

  static KeyView view_of(const api::KindInfo& info, std::string_view ns, std::string_view name) {
    if (!info.namespaced) return KeyView{"", name};
    return KeyView{ns.empty() ? api::kDefaultNamespace : ns, name};
  }

  static Entry* find(const KindStore& s, KeyView k) {
    const ObjectMap::iterator* it = s.by_key.find(k, KeyHash()(k));
    return it == nullptr ? nullptr : &**it;
  }

  static KeyView view_of(const ObjKey& k) { return KeyView{k.ns, k.name}; }

  // The stored object of a slot (parsed again for a packed kind).
  api::Object object_of(const api::KindInfo& info, const Slot& slot) const {
    if (slot.obj != nullptr) return slot.obj;
    std::unique_ptr<Message> m = info.make();
    // Bytes this store wrote.
    if (Packer* p = packers_[static_cast<size_t>(info.kind)].get()) {
      p->unpack(slot.packed, m.get());
    } else {
      m->ParseFromString(slot.packed);
    }
    return api::Object(std::move(m));
  }

  // What a packed kind keeps of `m`.
  std::string packed_bytes(const api::KindInfo& info, const Message& m) const {
    Packer* p = packers_[static_cast<size_t>(info.kind)].get();
    return p != nullptr ? p->pack(m) : deterministic_bytes(m);
  }

  Slot make_slot(const api::KindInfo& info, const api::Object& obj, int64_t rv) const {
    if (!packed_[static_cast<size_t>(info.kind)]) return Slot{obj, {}, rv};
    return Slot{nullptr, packed_bytes(info, *obj), rv};
  }

  int64_t packed_size(api::Kind kind) const {
    int64_t bytes = 0;
    for (const auto& [key, slot] : ks(kind).objects) bytes += static_cast<int64_t>(slot.packed.size());
    return bytes;
  }

  // ------------------------------------------------------------- reads

  StatusOr<api::Object> get(api::Kind kind, std::string_view ns, std::string_view name) const {
    const api::KindInfo& info = api::kind_info(kind);
    const Entry* e = find(ks(kind), view_of(info, ns, name));
    if (e == nullptr) return not_found(info, name);
    return object_of(info, e->second);
  }

  StatusOr<api::Object> get_if_changed(api::Kind kind, std::string_view ns, std::string_view name,
                                       const api::Object& known) const {
    const api::KindInfo& info = api::kind_info(kind);
    const Entry* e = find(ks(kind), view_of(info, ns, name));
    if (e == nullptr) return not_found(info, name);
    const Slot& slot = e->second;
    if (known != nullptr) {
      int64_t known_rv = 0;
      const bool same = slot.obj != nullptr
                            ? slot.obj == known
                            : parse_int64(info.meta(*known).resource_version(), &known_rv) &&
                                  known_rv == slot.rv;
      if (same) return api::Object();
    }
    return object_of(info, slot);
  }

  StatusOr<ListResult> list(api::Kind kind, const ListOptions& o) const {
    const api::KindInfo& info = api::kind_info(kind);
    const KindStore& s = ks(kind);
    ListResult result;
    result.resource_version = rv_;
    bool continued = false;
    ObjKey after;
    if (!o.continue_token.empty()) {
      int64_t token_rv = 0;
      if (!decode_continue(o.continue_token, &token_rv, &after)) {
        return bad_request_error("continue key is not valid: " + quoted(o.continue_token));
      }
      if (token_rv < s.history_floor || token_rv > rv_) {
        return Status(StatusCode::kGone,
                      "The provided continue parameter is too old to display a consistent list "
                      "result. You can start a new list without the continue parameter.");
      }
      result.resource_version = token_rv;
      continued = true;
    }
    int64_t limit = o.limit > 0 ? o.limit : 0;
    std::string ns = info.namespaced ? o.ns : "";
    const ObjKey* last = nullptr;
    int64_t scanned = 0;
    auto visit = [&](const Entry& e) {
      ++scanned;
      api::Object parsed;
      const api::Object* obj = &e.second.obj;
      if (*obj == nullptr) {
        parsed = object_of(info, e.second);
        obj = &parsed;
      }
      if (!matches(info, *obj, ns, o.labels, o.fields)) return;
      if (limit == 0 || static_cast<int64_t>(result.items.size()) < limit) {
        result.items.push_back(*obj);
        last = &e.first;
      } else {
        ++result.remaining;
      }
    };
    for_each_candidate(info, s, ns, o.labels, o.fields, continued ? &after : nullptr, visit);
    last_list_candidates_ = scanned;
    if (result.remaining > 0 && last != nullptr) {
      result.continue_token = encode_continue(result.resource_version, *last);
    }
    return result;
  }

  // ------------------------------------------------------------ writes

  StatusOr<api::Object> create(api::Object in) {
    std::shared_ptr<Message> m;
    FLOTILLA_RETURN_IF_ERROR(prepare_create(std::move(in), &m));
    int64_t rv = ++rv_;
    return put(std::move(m), rv);
  }

  // Everything create() does before writing: `*out` is the object as it would
  // be stored, without a resourceVersion.
  Status prepare_create(api::Object in, std::shared_ptr<Message>* out) {
    if (in == nullptr) return bad_request_error("create: no object given");
    const api::KindInfo* infop = api::kind_of(*in);
    if (infop == nullptr) return bad_request_error("create: not a kind the store knows");
    const api::KindInfo& info = *infop;
    KindStore& s = ks(info.kind);
    std::shared_ptr<Message> m = writable(std::move(in));
    api::ObjectMeta& meta = *info.mutable_meta(*m);
    if (!meta.resource_version().empty()) {
      return bad_request_error("resourceVersion should not be set on objects to be created");
    }
    FLOTILLA_RETURN_IF_ERROR(check_namespace(info, meta));
    if (meta.name().empty() && meta.generate_name().empty()) {
      return invalid_field(info, "",
                           "metadata.name: Required value: name or generateName is required");
    }
    if (info.namespaced && options_.enforce_namespaces &&
        !ks(api::Kind::kNamespace).objects.contains(ObjKey{"", meta.namespace_()})) {
      return not_found(api::kind_info(api::Kind::kNamespace), meta.namespace_());
    }
    if (meta.name().empty()) {
      std::string base = meta.generate_name().substr(0, kMaxGeneratedBaseLength);
      for (int i = 0; i < kGenerateNameAttempts; ++i) {
        std::string candidate = base + next_suffix();
        if (find(s, KeyView{meta.namespace_(), candidate}) == nullptr) {
          meta.set_name(std::move(candidate));
          break;
        }
      }
      if (meta.name().empty()) {
        return already_exists_error("could not generate a unique name for " +
                                    std::string(info.resource) + " with generateName " +
                                    quoted(meta.generate_name()) + " after " +
                                    std::to_string(kGenerateNameAttempts) + " attempts");
      }
    }
    meta.set_uid(next_uid());
    meta.mutable_creation_timestamp()->set_nanos(to_nanos(loop_.now()));
    meta.set_generation(1);
    info.fill_type_meta(*m);  // apiVersion and kind, where empty
    if (options_.validator) FLOTILLA_RETURN_IF_ERROR(options_.validator(*m, nullptr));
    ObjKey key{meta.namespace_(), meta.name()};
    if (find(s, KeyView{key.ns, key.name}) != nullptr) {
      return already_exists_error(resource_name(info, meta.name()) + " already exists");
    }
    *out = std::move(m);
    return Status::ok();
  }

  // Stores `m` at version `rv` (>= the store's): a new key is kAdded, an
  // existing one kModified. `stored`, when given, is the stored object as
  // object_of() gave it (so a packed one is not unpacked twice).
  api::Object put(std::shared_ptr<Message> m, int64_t rv, api::Object stored = nullptr) {
    const api::KindInfo& info = *api::kind_of(*m);
    KindStore& s = ks(info.kind);
    api::ObjectMeta& meta = *info.mutable_meta(*m);
    meta.set_resource_version(to_decimal(rv));
    rv_ = std::max(rv_, rv);
    api::Object obj(std::move(m));
    Entry* entry = find(s, KeyView{meta.namespace_(), meta.name()});
    if (entry == nullptr) {
      auto [it, inserted] =
          s.objects.emplace(ObjKey{meta.namespace_(), meta.name()}, make_slot(info, obj, rv));
      (void)inserted;
      s.by_key.insert(KeyHash()(it->first), it);
      ++s.ns_count[it->first.ns];
      index_add(info, s, &*it, *obj);
      record(info, s, HistoryEntry{rv, WatchEventType::kAdded, obj, nullptr});
      return obj;
    }
    api::Object prev = stored != nullptr ? std::move(stored) : object_of(info, entry->second);
    index_update(info, s, entry, *prev, *obj);
    entry->second = make_slot(info, obj, rv);
    // Watchers need the state before only to see the object enter or leave
    // their selection. A change no selector can see (labels and selectable
    // fields as they were: a Lease renewal, most status writes) keeps the new
    // state in its place, so the old version is freed here, while this update
    // has it in cache, and not cold when the history lets go of the entry.
    const bool selected_alike = api::same_labels(info.meta(*prev).labels(), meta.labels()) &&
                                api::FieldSelector::same_fields(*prev, *obj);
    record(info, s, HistoryEntry{rv, WatchEventType::kModified, obj, selected_alike ? obj : prev});
    return obj;
  }

  StatusOr<api::Object> update(api::Object in) {
    std::shared_ptr<Message> m;
    api::Object unchanged, stored;
    FLOTILLA_RETURN_IF_ERROR(prepare_update(std::move(in), &m, &unchanged, &stored));
    if (m == nullptr) return unchanged;
    int64_t rv = ++rv_;
    return put(std::move(m), rv, std::move(stored));
  }

  // Everything update() does before writing: `*out` is the object as it
  // would be stored (no resourceVersion), or null with `*unchanged` the
  // stored object when the update changes nothing. `*stored`, if asked for,
  // is the stored object it replaces.
  Status prepare_update(api::Object in, std::shared_ptr<Message>* out,
                        api::Object* unchanged, api::Object* stored = nullptr) {
    if (in == nullptr) return bad_request_error("update: no object given");
    const api::KindInfo* infop = api::kind_of(*in);
    if (infop == nullptr) return bad_request_error("update: not a kind the store knows");
    const api::KindInfo& info = *infop;
    KindStore& s = ks(info.kind);
    std::shared_ptr<Message> m = writable(std::move(in));
    api::ObjectMeta& meta = *info.mutable_meta(*m);
    FLOTILLA_RETURN_IF_ERROR(check_namespace(info, meta));
    if (meta.name().empty()) return bad_request_error("resource name may not be empty");
    Entry* entry = find(s, KeyView{meta.namespace_(), meta.name()});
    if (entry == nullptr) return not_found(info, meta.name());
    const Slot& slot = entry->second;
    const api::Object old = object_of(info, slot);
    const api::ObjectMeta& old_meta = info.meta(*old);
    if (!meta.resource_version().empty()) {
      int64_t given = 0;
      if (!parse_int64(meta.resource_version(), &given)) {
        return invalid_field(
            info, meta.name(),
            "metadata.resourceVersion: Invalid value: " + quoted(meta.resource_version()) +
                ": must be a resourceVersion the store returned");
      }
      if (given != slot.rv) {
        return conflict_error("Operation cannot be fulfilled on " +
                              resource_name(info, meta.name()) +
                              ": the object has been modified; please apply your changes to the "
                              "latest version and try again");
      }
    }
    if (meta.uid().empty()) {
      meta.set_uid(old_meta.uid());
    } else if (meta.uid() != old_meta.uid()) {
      return invalid_field(
          info, meta.name(),
          "metadata.uid: Invalid value: " + quoted(meta.uid()) + ": field is immutable");
    }
    *meta.mutable_creation_timestamp() = old_meta.creation_timestamp();
    meta.set_generation(old_meta.generation());
    meta.set_resource_version(old_meta.resource_version());
    info.fill_type_meta(*m);  // apiVersion and kind, where empty
    // Nothing changed: nothing to write (the stored object was validated).
    // The spec first: it is smaller than the object, and when it differs (a
    // Lease renewal, a scale) the whole object need not be compared.
    if (!same_spec(*m, *old, info)) {
      meta.set_generation(old_meta.generation() + 1);
    } else if (slot.obj ? same_bytes(*m, *slot.obj) : packed_bytes(info, *m) == slot.packed) {
      *unchanged = old;
      return Status::ok();
    }
    if (options_.validator) FLOTILLA_RETURN_IF_ERROR(options_.validator(*m, old.get()));
    meta.clear_resource_version();
    *out = std::move(m);
    if (stored != nullptr) *stored = old;
    return Status::ok();
  }

  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& o) {
    StatusOr<api::Object> last = prepare_remove(kind, ns, name, o);
    if (!last.is_ok()) return last.status();
    int64_t rv = ++rv_;
    return erase(kind, ns, name, rv, *last);
  }

  // The checks remove() makes; returns the object it would remove.
  StatusOr<api::Object> prepare_remove(api::Kind kind, std::string_view ns,
                                       std::string_view name, const DeleteOptions& o) const {
    const api::KindInfo& info = api::kind_info(kind);
    const KindStore& s = ks(kind);
    const Entry* entry = find(s, view_of(info, ns, name));
    if (entry == nullptr) return not_found(info, name);
    const api::Object obj = object_of(info, entry->second);
    const api::ObjectMeta& meta = info.meta(*obj);
    if (!o.uid.empty() && o.uid != meta.uid()) {
      return conflict_error("Precondition failed: UID in precondition: " + o.uid +
                            ", UID in object meta: " + meta.uid());
    }
    if (!o.resource_version.empty() && o.resource_version != meta.resource_version()) {
      return conflict_error(
          "Precondition failed: ResourceVersion in precondition: " + o.resource_version +
          ", ResourceVersion in object meta: " + meta.resource_version());
    }
    return obj;
  }

  // Removes the object at version `rv` (>= the store's); null when absent.
  // `stored`, when given, is the stored object as object_of() gave it (so a
  // packed one is not unpacked twice).
  api::Object erase(api::Kind kind, std::string_view ns, std::string_view name, int64_t rv,
                    api::Object stored = nullptr) {
    const api::KindInfo& info = api::kind_info(kind);
    KindStore& s = ks(kind);
    const KeyView k = view_of(info, ns, name);
    const uint64_t h = KeyHash()(k);
    const ObjectMap::iterator* found = s.by_key.find(k, h);
    if (found == nullptr) return nullptr;
    const auto at = *found;
    Entry* entry = &*at;
    rv_ = std::max(rv_, rv);
    api::Object last = stored != nullptr ? std::move(stored) : object_of(info, entry->second);
    index_remove(info, s, entry, *last);
    if (--s.ns_count[entry->first.ns] == 0) s.ns_count.erase(entry->first.ns);
    s.by_key.erase(k, h);
    s.objects.erase(at);
    record(info, s, HistoryEntry{rv, WatchEventType::kDeleted, last, last});
    return last;
  }

  // ----------------------------------------------------------- watches

  StatusOr<std::shared_ptr<Watcher>> watch(api::Kind kind, const WatchOptions& o,
                                           std::function<void(const WatchEvent&)> on_event) {
    const api::KindInfo& info = api::kind_info(kind);
    KindStore& s = ks(kind);
    if (o.send_initial_events && o.resource_version > 0) {
      return bad_request_error("sendInitialEvents is only supported from resourceVersion 0");
    }
    if (o.resource_version < 0) {
      return bad_request_error("resourceVersion must not be negative: " +
                               std::to_string(o.resource_version));
    }
    if (o.resource_version > rv_) {
      return bad_request_error("Too large resource version: " + std::to_string(o.resource_version) +
                               ", current: " + std::to_string(rv_));
    }
    if (o.resource_version > 0 && o.resource_version < s.history_floor) {
      return Status(StatusCode::kGone,
                    "too old resource version: " + std::to_string(o.resource_version) + " (" +
                        std::to_string(s.history_floor) + ")");
    }
    auto w = std::make_shared<Watcher>();
    w->id = next_watcher_id_++;
    w->kind = kind;
    w->ns = info.namespaced ? o.ns : "";
    w->labels = o.labels;
    w->fields = o.fields;
    w->on_event = std::move(on_event);
    if (kind == api::Kind::kPod) {
      if (const std::string* node = o.fields.exact_value(kFieldNodeName)) {
        w->node_pinned = true;
        w->pinned_node = *node;
      }
    }
    if (o.send_initial_events) {
      for_each_candidate(info, s, w->ns, o.labels, o.fields, nullptr, [&](const Entry& e) {
        api::Object obj = object_of(info, e.second);
        if (w->matches(*obj)) {
          deliver(w, WatchEvent{WatchEventType::kAdded, std::move(obj), e.second.rv});
        }
      });
    } else if (o.resource_version > 0) {
      auto from = std::upper_bound(s.history.begin(), s.history.end(), o.resource_version,
                                   [](int64_t v, const HistoryEntry& h) { return v < h.rv; });
      for (auto h = from; h != s.history.end(); ++h) offer(w, *h);
    }
    (w->node_pinned ? s.pinned[w->pinned_node] : s.unpinned).emplace(w->id, w);
    ++s.watchers;
    return w;
  }

  void unregister(const Watcher& w) {
    KindStore& s = ks(w.kind);
    if (w.node_pinned) {
      auto it = s.pinned.find(w.pinned_node);
      if (it != s.pinned.end() && it->second.erase(w.id) > 0) {
        --s.watchers;
        if (it->second.empty()) s.pinned.erase(it);
      }
    } else if (s.unpinned.erase(w.id) > 0) {
      --s.watchers;
    }
  }

  Status restore(const std::vector<api::Object>& objects, int64_t resource_version) {
    for (const KindStore& s : kinds_) {
      if (!s.objects.empty()) {
        return failed_precondition_error("restore: the store already holds objects");
      }
    }
    int64_t top = resource_version;
    for (const api::Object& o : objects) {
      const api::KindInfo* info = o == nullptr ? nullptr : api::kind_of(*o);
      if (info == nullptr) return bad_request_error("restore: not a kind the store knows");
      const api::ObjectMeta& meta = info->meta(*o);
      int64_t rv = 0;
      if (!parse_int64(meta.resource_version(), &rv) || rv <= 0) {
        return bad_request_error("restore: " + resource_name(*info, meta.name()) +
                                 " has resourceVersion " + quoted(meta.resource_version()));
      }
      KindStore& s = ks(info->kind);
      ObjKey key = key_of(*info, meta.namespace_(), meta.name());
      auto [it, inserted] = s.objects.emplace(std::move(key), make_slot(*info, o, rv));
      if (!inserted) {
        return bad_request_error("restore: " + resource_name(*info, meta.name()) +
                                 " appears twice");
      }
      s.by_key.insert(KeyHash()(it->first), it);
      ++s.ns_count[it->first.ns];
      index_add(*info, s, &*it, *o);
      top = std::max(top, rv);
    }
    rv_ = std::max(rv_, top);
    for (KindStore& s : kinds_) s.history_floor = rv_;
    return Status::ok();
  }

  int64_t rv() const { return rv_; }
  int64_t last_list_candidates() const { return last_list_candidates_; }

 private:
  Status check_namespace(const api::KindInfo& info, api::ObjectMeta& meta) const {
    if (info.namespaced) {
      if (meta.namespace_().empty()) meta.set_namespace_(std::string(api::kDefaultNamespace));
    } else if (!meta.namespace_().empty()) {
      return invalid_field(info, meta.name(),
                           "metadata.namespace: Forbidden: not allowed on this type");
    }
    return Status::ok();
  }

  std::string next_uid() { return options_.new_uid ? options_.new_uid() : api::new_uid(random_); }
  std::string next_suffix() {
    return options_.new_name_suffix ? options_.new_name_suffix()
                                    : api::generate_name_suffix(random_);
  }

  static bool matches(const api::KindInfo& info, const api::Object& obj, const std::string& ns,
                      const api::LabelSelector& labels, const api::FieldSelector& fields) {
    const api::ObjectMeta& meta = info.meta(*obj);
    if (!ns.empty() && meta.namespace_() != ns) return false;
    return labels.matches(meta.labels()) && fields.matches(*obj);
  }

  // Calls `fn` for every candidate entry in key order, strictly after `after`
  // when given, drawn from the smallest index that covers the selectors. The
  // caller still applies the full filter.
  template <typename Fn>
  void for_each_candidate(const api::KindInfo& info, const KindStore& s, const std::string& ns,
                          const api::LabelSelector& labels, const api::FieldSelector& fields,
                          const ObjKey* after, Fn&& fn) const {
    static const EntrySet kEmpty;
    enum class Source { kAll, kNamespace, kSet, kUnion, kPoint };
    Source source = Source::kAll;
    size_t best = s.objects.size();
    const EntrySet* set = nullptr;
    const api::LabelRequirement* union_req = nullptr;
    std::string scope_ns = ns;
    if (info.namespaced) {
      if (const std::string* fns = fields.exact_value(kFieldNamespace)) {
        if (scope_ns.empty()) scope_ns = *fns;
      }
    }
    if (info.namespaced && !scope_ns.empty()) {
      auto it = s.ns_count.find(scope_ns);
      size_t n = it == s.ns_count.end() ? 0 : static_cast<size_t>(it->second);
      if (n < best) {
        best = n;
        source = Source::kNamespace;
      }
    }
    if (info.kind == api::Kind::kPod) {
      if (const std::string* node = fields.exact_value(kFieldNodeName)) {
        auto it = s.by_node.find(*node);
        const EntrySet* cand = it == s.by_node.end() ? &kEmpty : &it->second;
        if (cand->size() < best) {
          best = cand->size();
          source = Source::kSet;
          set = cand;
        }
      }
    }
    for (const api::LabelRequirement& r : labels.requirements()) {
      if (r.op != api::LabelRequirement::Op::kEquals && r.op != api::LabelRequirement::Op::kIn) {
        continue;
      }
      auto kit = s.by_label.find(r.key);
      size_t n = 0;
      const EntrySet* only = &kEmpty;
      if (kit != s.by_label.end()) {
        for (const std::string& v : r.values) {
          auto vit = kit->second.find(v);
          if (vit == kit->second.end()) continue;
          n += vit->second.size();
          only = &vit->second;
        }
      }
      if (n < best) {
        best = n;
        if (r.values.size() == 1 || n == 0 || n == only->size()) {
          source = Source::kSet;
          set = n == 0 ? &kEmpty : only;
        } else {
          source = Source::kUnion;
          union_req = &r;
        }
      }
    }
    const std::string* name = fields.exact_value(kFieldName);
    if (name != nullptr && best > 1 && (!info.namespaced || !scope_ns.empty())) {
      source = Source::kPoint;
    }
    switch (source) {
      case Source::kAll: {
        auto it = after ? s.objects.upper_bound(*after) : s.objects.begin();
        for (; it != s.objects.end(); ++it) fn(*it);
        break;
      }
      case Source::kNamespace: {
        ObjKey start{scope_ns, ""};
        auto it =
            after && start < *after ? s.objects.upper_bound(*after) : s.objects.lower_bound(start);
        for (; it != s.objects.end() && it->first.ns == scope_ns; ++it) fn(*it);
        break;
      }
      case Source::kSet: {
        auto it = after ? set->upper_bound(*after) : set->begin();
        for (; it != set->end(); ++it) fn(**it);
        break;
      }
      case Source::kUnion: {
        std::vector<const Entry*> all;
        const auto& values = s.by_label.at(union_req->key);
        for (const std::string& v : union_req->values) {
          auto vit = values.find(v);
          if (vit == values.end()) continue;
          auto it = after ? vit->second.upper_bound(*after) : vit->second.begin();
          all.insert(all.end(), it, vit->second.end());
        }
        std::sort(all.begin(), all.end(), EntryLess());
        for (const Entry* e : all) fn(*e);
        break;
      }
      case Source::kPoint: {
        ObjKey k = key_of(info, scope_ns, *name);
        if (after && !(*after < k)) break;
        auto it = s.objects.find(k);
        if (it != s.objects.end()) fn(*it);
        break;
      }
    }
  }

  // ----------------------------------------------------------- indexes

  static void set_erase(std::unordered_map<std::string, EntrySet>& m, const std::string& k,
                        const Entry* e) {
    auto it = m.find(k);
    if (it == m.end()) return;
    it->second.erase(e);
    if (it->second.empty()) m.erase(it);
  }

  void index_add(const api::KindInfo& info, KindStore& s, const Entry* e, const Message& obj) {
    if (info.kind == api::Kind::kPod) {
      s.by_node[static_cast<const api::Pod&>(obj).spec().node_name()].insert(e);
    }
    for (const auto& [k, v] : info.meta(obj).labels()) s.by_label[k][v].insert(e);
  }

  void index_remove(const api::KindInfo& info, KindStore& s, const Entry* e,
                    const Message& obj) {
    if (info.kind == api::Kind::kPod) {
      set_erase(s.by_node, static_cast<const api::Pod&>(obj).spec().node_name(), e);
    }
    for (const auto& [k, v] : info.meta(obj).labels()) remove_label(s, k, v, e);
  }

  static void remove_label(KindStore& s, const std::string& k, const std::string& v,
                           const Entry* e) {
    auto kit = s.by_label.find(k);
    if (kit == s.by_label.end()) return;
    set_erase(kit->second, v, e);
    if (kit->second.empty()) s.by_label.erase(kit);
  }

  void index_update(const api::KindInfo& info, KindStore& s, const Entry* e, const Message& prev,
                    const Message& next) {
    if (info.kind == api::Kind::kPod) {
      const std::string& a = static_cast<const api::Pod&>(prev).spec().node_name();
      const std::string& b = static_cast<const api::Pod&>(next).spec().node_name();
      if (a != b) {
        set_erase(s.by_node, a, e);
        s.by_node[b].insert(e);
      }
    }
    const api::Labels& la = info.meta(prev).labels();
    const api::Labels& lb = info.meta(next).labels();
    if (api::same_labels(la, lb)) return;
    for (const auto& [k, v] : la) {
      auto it = lb.find(k);
      if (it == lb.end() || it->second != v) remove_label(s, k, v, e);
    }
    for (const auto& [k, v] : lb) {
      auto it = la.find(k);
      if (it == la.end() || it->second != v) s.by_label[k][v].insert(e);
    }
  }

  // ----------------------------------------------------------- fan-out

  void record(const api::KindInfo& info, KindStore& s, HistoryEntry h) {
    h.at = loop_.now();
    s.history.push_back(std::move(h));
    const HistoryEntry& e = s.history.back();
    if (s.watchers > 0) {
      if (info.kind == api::Kind::kPod && !s.pinned.empty()) {
        // The unpinned watchers plus those pinned to the pod's old or new node,
        // visited in watch-creation order.
        std::vector<const std::shared_ptr<Watcher>*> targets;
        targets.reserve(s.unpinned.size() + 4);
        for (const auto& [id, w] : s.unpinned) targets.push_back(&w);
        auto add_node = [&](const Message* m) {
          if (m == nullptr) return;
          auto it = s.pinned.find(static_cast<const api::Pod&>(*m).spec().node_name());
          if (it == s.pinned.end()) return;
          for (const auto& [id, w] : it->second) targets.push_back(&w);
        };
        add_node(e.obj.get());
        if (e.prev != nullptr && e.prev != e.obj) {
          const std::string& a = static_cast<const api::Pod&>(*e.prev).spec().node_name();
          const std::string& b = static_cast<const api::Pod&>(*e.obj).spec().node_name();
          if (a != b) add_node(e.prev.get());
        }
        std::sort(targets.begin(), targets.end(),
                  [](const auto* a, const auto* b) { return (*a)->id < (*b)->id; });
        for (const auto* w : targets) offer(*w, e);
      } else {
        for (const auto& [id, w] : s.unpinned) offer(w, e);
      }
    }
    if (static_cast<int64_t>(s.history.size()) > options_.history_size) {
      s.history_floor = s.history.front().rv;
      s.history.pop_front();
    }
    if (options_.history_retention > Duration(0)) {
      const TimePoint oldest = e.at - options_.history_retention;
      while (s.history.size() > 1 && s.history.front().at < oldest) {
        s.history_floor = s.history.front().rv;
        s.history.pop_front();
      }
    }
  }

  // Turns a change into the event this watcher sees, if any (Kubernetes'
  // watch-cache filtering: leaving the selector is a deletion, entering it an
  // addition).
  void offer(const std::shared_ptr<Watcher>& w, const HistoryEntry& h) {
    bool cur = h.type != WatchEventType::kDeleted && w->matches(*h.obj);
    bool old = h.prev != nullptr && w->matches(*h.prev);
    if (cur && !old) {
      deliver(w, WatchEvent{WatchEventType::kAdded, h.obj, h.rv});
    } else if (cur && old) {
      deliver(w, WatchEvent{WatchEventType::kModified, h.obj, h.rv});
    } else if (!cur && old) {
      deliver(w, WatchEvent{WatchEventType::kDeleted, h.prev, h.rv});
    }
  }

  void deliver(const std::shared_ptr<Watcher>& w, WatchEvent ev) {
    w->queued.push_back(std::move(ev));
    if (w->drain_posted) return;
    w->drain_posted = true;
    loop_.post([w] { drain(*w); });
  }

  // Delivers the events queued before this drain ran; those its handlers
  // cause come in a drain posted behind everything posted so far, as a
  // post per event would order them.
  static void drain(Watcher& w) {
    w.drain_posted = false;
    const size_t end = w.queued.size();
    size_t next = 0;
    while (next < end && w.active) {
      // Moved out: the handler may queue more and so move the buffer.
      WatchEvent ev = std::move(w.queued[next++]);
      w.on_event(ev);
    }
    if (!w.active) {
      std::vector<WatchEvent>().swap(w.queued);
      return;
    }
    w.queued.erase(w.queued.begin(), w.queued.begin() + static_cast<std::ptrdiff_t>(next));
    // A burst's buffer is not kept for the quiet that follows.
    if (w.queued.empty() && w.queued.capacity() > kKeptBufferCapacity) {
      std::vector<WatchEvent>().swap(w.queued);
    }
  }
  static constexpr size_t kKeptBufferCapacity = 64;

  EventLoop& loop_;
  RandomStream& random_;
  StoreOptions options_;
  std::array<KindStore, api::kKindCount> kinds_;
  std::array<bool, api::kKindCount> packed_{};
  // Compressors of the packed kinds given a dictionary; const reads use
  // them too (their contexts and scratch buffer change on every use).
  std::array<std::unique_ptr<Packer>, api::kKindCount> packers_;
  static constexpr int kPackLevel = 3;
  int64_t rv_ = 0;
  uint64_t next_watcher_id_ = 1;
  mutable int64_t last_list_candidates_ = 0;
};

// ------------------------------------------------------------------ handle

namespace {

class WatchImpl final : public Watch {
 public:
  WatchImpl(std::weak_ptr<InMemoryStore::State> state, std::shared_ptr<Watcher> w)
      : state_(std::move(state)), w_(std::move(w)) {}
  ~WatchImpl() override {
    w_->active = false;
    if (auto s = state_.lock()) s->unregister(*w_);
  }

 private:
  std::weak_ptr<InMemoryStore::State> state_;
  std::shared_ptr<Watcher> w_;
};

}  // namespace

// ------------------------------------------------------------------- store

InMemoryStore::InMemoryStore(EventLoop& loop, RandomStream& random, StoreOptions options)
    : state_(std::make_shared<State>(loop, random, std::move(options))) {}

InMemoryStore::~InMemoryStore() = default;

StatusOr<api::Object> InMemoryStore::get(api::Kind kind, std::string_view ns,
                                         std::string_view name) const {
  return state_->get(kind, ns, name);
}

StatusOr<api::Object> InMemoryStore::get_if_changed(api::Kind kind, std::string_view ns,
                                                    std::string_view name,
                                                    const api::Object& known) const {
  return state_->get_if_changed(kind, ns, name, known);
}

StatusOr<ListResult> InMemoryStore::list(api::Kind kind, const ListOptions& options) const {
  return state_->list(kind, options);
}

StatusOr<api::Object> InMemoryStore::create(api::Object object) {
  return state_->create(std::move(object));
}

StatusOr<api::Object> InMemoryStore::update(api::Object object) {
  return state_->update(std::move(object));
}

StatusOr<api::Object> InMemoryStore::remove(api::Kind kind, std::string_view ns,
                                            std::string_view name, const DeleteOptions& options) {
  return state_->remove(kind, ns, name, options);
}

StatusOr<WatchHandle> InMemoryStore::watch(api::Kind kind, const WatchOptions& options,
                                           std::function<void(const WatchEvent&)> on_event) {
  StatusOr<std::shared_ptr<Watcher>> w = state_->watch(kind, options, std::move(on_event));
  if (!w.is_ok()) return w.status();
  return WatchHandle(std::make_unique<WatchImpl>(state_, std::move(*w)));
}

int64_t InMemoryStore::resource_version() const { return state_->rv(); }

int64_t InMemoryStore::kind_resource_version(api::Kind kind) const {
  const KindStore& s = state_->ks(kind);
  return s.history.empty() ? s.history_floor : s.history.back().rv;
}

StatusOr<api::Object> InMemoryStore::prepare_create(api::Object object) {
  std::shared_ptr<Message> m;
  FLOTILLA_RETURN_IF_ERROR(state_->prepare_create(std::move(object), &m));
  return api::Object(std::move(m));
}

StatusOr<api::Object> InMemoryStore::prepare_update(api::Object object) {
  std::shared_ptr<Message> m;
  api::Object unchanged;
  FLOTILLA_RETURN_IF_ERROR(state_->prepare_update(std::move(object), &m, &unchanged));
  if (m == nullptr) return unchanged;
  return api::Object(std::move(m));
}

StatusOr<api::Object> InMemoryStore::prepare_remove(api::Kind kind, std::string_view ns,
                                                    std::string_view name,
                                                    const DeleteOptions& options) const {
  return state_->prepare_remove(kind, ns, name, options);
}

Status InMemoryStore::apply_put(const api::Object& object, int64_t resource_version) {
  const api::KindInfo* info = object == nullptr ? nullptr : api::kind_of(*object);
  if (info == nullptr) return bad_request_error("apply_put: not a kind the store knows");
  if (resource_version < state_->rv()) {
    return bad_request_error("apply_put: version " + std::to_string(resource_version) +
                             " is older than the store's " + std::to_string(state_->rv()));
  }
  state_->put(writable(object), resource_version);
  return Status::ok();
}

Status InMemoryStore::apply_remove(api::Kind kind, std::string_view ns, std::string_view name,
                                   int64_t resource_version) {
  if (resource_version < state_->rv()) {
    return bad_request_error("apply_remove: version " + std::to_string(resource_version) +
                             " is older than the store's " + std::to_string(state_->rv()));
  }
  state_->erase(kind, ns, name, resource_version);
  return Status::ok();
}

Status InMemoryStore::restore(const std::vector<api::Object>& objects, int64_t resource_version) {
  return state_->restore(objects, resource_version);
}

size_t InMemoryStore::object_count(api::Kind kind) const { return state_->ks(kind).objects.size(); }

int64_t InMemoryStore::packed_size(api::Kind kind) const { return state_->packed_size(kind); }

size_t InMemoryStore::watch_count(api::Kind kind) const { return state_->ks(kind).watchers; }

int64_t InMemoryStore::oldest_watchable_version(api::Kind kind) const {
  return state_->ks(kind).history_floor;
}

int64_t InMemoryStore::last_list_candidates() const { return state_->last_list_candidates(); }

}  // namespace flotilla::store
