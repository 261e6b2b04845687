#include "backends/apiclient/remote_store.h"

#include <google/protobuf/util/message_differencer.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cassert>
#include <utility>

#include "core/api/codec.h"

namespace flotilla::apiclient {

namespace pb = google::protobuf;

namespace {

int64_t parse_rv(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 18) {
    return 0;
  }
  return std::stoll(s);
}

int64_t rv_of(const api::Object& o) { return parse_rv(api::meta_of(*o).resource_version()); }

std::string normal_ns(api::Kind kind, std::string_view ns) {
  if (!api::kind_info(kind).namespaced) return "";
  return ns.empty() ? std::string(api::kDefaultNamespace) : std::string(ns);
}

// The key of a write queue and of the memo: kind-qualified.
std::string qualified_key(api::Kind kind, std::string_view ns, std::string_view name) {
  return std::string(api::kind_info(kind).name) + "|" +
         api::object_key(kind, normal_ns(kind, ns), name);
}

}  // namespace

std::string collection_uri(api::Kind kind, std::string_view ns) {
  const api::KindInfo& k = api::kind_info(kind);
  std::string prefix = k.group.empty() ? "/api/v1/" : "/apis/" + std::string(k.api_version) + "/";
  if (!k.namespaced || ns.empty()) return prefix + std::string(k.resource);
  return prefix + "namespaces/" + query_escape(ns) + "/" + std::string(k.resource);
}

namespace {

std::string collection_path(api::Kind kind, const std::string& ns) {
  return collection_uri(kind, ns);
}

std::string selector_query(const api::LabelSelector& labels, const api::FieldSelector& fields) {
  std::string q;
  std::string l = labels.to_string();
  if (!l.empty()) q += "&labelSelector=" + query_escape(l);
  std::string f = fields.to_string();
  if (!f.empty()) q += "&fieldSelector=" + query_escape(f);
  return q;
}

const pb::FieldDescriptor* status_field(const pb::Message& m) {
  return m.GetDescriptor()->FindFieldByName("status");
}

// Copies `from`'s status into `to` (presence included).
void copy_status(const pb::Message& from, pb::Message* to) {
  const pb::FieldDescriptor* f = status_field(from);
  if (f == nullptr) return;
  const pb::Reflection* r = from.GetReflection();
  if (r->HasField(from, f)) {
    to->GetReflection()->MutableMessage(to, f)->CopyFrom(r->GetMessage(from, f));
  } else {
    to->GetReflection()->ClearField(to, f);
  }
}

bool same_status(const pb::Message& a, const pb::Message& b) {
  const pb::FieldDescriptor* f = status_field(a);
  if (f == nullptr) return true;
  const pb::Reflection* r = a.GetReflection();
  if (r->HasField(a, f) != r->HasField(b, f)) return false;
  return pb::util::MessageDifferencer::Equals(r->GetMessage(a, f), r->GetMessage(b, f));
}

// Equal apart from status and resourceVersion.
bool same_main(const pb::Message& a, const pb::Message& b) {
  std::unique_ptr<pb::Message> x(a.New());
  std::unique_ptr<pb::Message> y(b.New());
  x->CopyFrom(a);
  y->CopyFrom(b);
  for (pb::Message* m : {x.get(), y.get()}) {
    if (const pb::FieldDescriptor* f = status_field(*m)) m->GetReflection()->ClearField(m, f);
    api::mutable_meta_of(*m)->clear_resource_version();
  }
  return pb::util::MessageDifferencer::Equals(*x, *y);
}

std::shared_ptr<pb::Message> clone(const pb::Message& m) {
  std::shared_ptr<pb::Message> c(m.New());
  c->CopyFrom(m);
  return c;
}

StatusOr<api::Object> decode_node(api::Kind kind, YAML::Node node) {
  if (!node.IsMap()) return internal_error("the server sent an object that is not a mapping");
  if (!node["kind"]) node["kind"] = std::string(api::kind_info(kind).name);
  if (!node["apiVersion"]) node["apiVersion"] = std::string(api::kind_info(kind).api_version);
  StatusOr<std::vector<api::DecodedObject>> decoded = api::decode_manifest_node(node, "server");
  if (!decoded.is_ok()) return decoded.status();
  if (decoded->size() != 1 || (*decoded)[0].kind != kind) {
    return internal_error("the server sent a " + std::string(api::kind_info(kind).name) +
                          " that did not decode as one");
  }
  return api::Object((*decoded)[0].object);
}

StatusOr<YAML::Node> parse_json(std::string_view text) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return internal_error(std::string("the server sent JSON that does not parse: ") + e.what());
  }
}

}  // namespace

std::vector<InformerSpec> service_informers() {
  InformerSpec services;
  services.kind = api::Kind::kService;
  InformerSpec slices;
  slices.kind = api::Kind::kEndpointSlice;
  return {services, slices};
}

StatusOr<api::Object> decode_object(api::Kind kind, std::string_view json) {
  StatusOr<YAML::Node> node = parse_json(json);
  if (!node.is_ok()) return node.status();
  return decode_node(kind, *node);
}

// ------------------------------------------------------------------ internals

struct RemoteStore::Informer {
  InformerSpec spec;
  std::map<std::string, api::Object> objects;  // by object_key
  int64_t rv = 0;
  bool synced = false;
  bool listing = false;
  bool open = false;  // a watch stream exists
  uint64_t lists = 0;
  uint64_t watches = 0;
  std::unique_ptr<ApiStream> stream;
  TimerHandle retry;
  Duration backoff{0};
};

struct RemoteStore::LocalWatch {
  api::Kind kind;
  WatchOptions options;
  std::function<void(const WatchEvent&)> on_event;

  bool matches(const api::Object& o) const {
    const api::ObjectMeta& m = api::meta_of(*o);
    if (!options.ns.empty() && m.namespace_() != options.ns) return false;
    return options.labels.matches(m.labels()) && options.fields.matches(*o);
  }
};

struct RemoteStore::WriteOp {
  enum class Type { kCreate, kUpdate, kRemove };
  Type type = Type::kUpdate;
  api::Kind kind = api::Kind::kPod;
  std::string ns;
  std::string name;
  api::Object object;        // what to write (create, update)
  std::string base_rv;       // the version the caller built an update on
  DeleteOptions del;
  bool status_phase = false;  // update: the main resource is done, the status is next
  bool status_changed = false;
  int rebases = 0;
};

struct RemoteStore::KeyQueue {
  std::deque<WriteOp> ops;
  bool running = false;
  // The last update that landed: built on last_base_rv, stored as last_result_rv.
  std::string last_base_rv;
  std::string last_result_rv;
};

class RemoteStore::WatchImpl final : public Watch {
 public:
  WatchImpl(std::weak_ptr<std::map<uint64_t, std::shared_ptr<LocalWatch>>> watches, uint64_t id)
      : watches_(std::move(watches)), id_(id) {}
  ~WatchImpl() override {
    if (auto w = watches_.lock()) w->erase(id_);
  }

 private:
  std::weak_ptr<std::map<uint64_t, std::shared_ptr<LocalWatch>>> watches_;
  uint64_t id_;
};

RemoteStore::RemoteStore(EventLoop& loop, ApiClient& client, RemoteStoreOptions options)
    : loop_(loop),
      client_(client),
      options_(std::move(options)),
      watches_(std::make_shared<std::map<uint64_t, std::shared_ptr<LocalWatch>>>()) {
  for (const InformerSpec& spec : options_.informers) {
    assert(informer_for(spec.kind) == nullptr && "one informer per kind");
    auto inf = std::make_unique<Informer>();
    inf->spec = spec;
    inf->backoff = options_.retry_initial;
    informers_.push_back(std::move(inf));
  }
}

RemoteStore::~RemoteStore() {
  alive_.reset();
  for (auto& inf : informers_) inf->stream.reset();
}

RemoteStore::Informer* RemoteStore::informer_for(api::Kind kind) const {
  for (const auto& inf : informers_) {
    if (inf->spec.kind == kind) return inf.get();
  }
  return nullptr;
}

void RemoteStore::start() {
  for (auto& inf : informers_) list_informer(*inf);
}

bool RemoteStore::synced() const {
  return std::all_of(informers_.begin(), informers_.end(),
                     [](const auto& inf) { return inf->synced; });
}

bool RemoteStore::connected() const {
  return std::all_of(informers_.begin(), informers_.end(),
                     [](const auto& inf) { return inf->open; });
}

size_t RemoteStore::pending_writes() const {
  size_t n = 0;
  for (const auto& [key, q] : queues_) n += q->ops.size();
  return n;
}

// ------------------------------------------------------------------ informers

void RemoteStore::list_informer(Informer& inf) {
  if (inf.listing) return;
  inf.listing = true;
  inf.stream.reset();
  inf.open = false;
  if (inf.lists++ > 0) ++stats_.relists;
  std::string target = collection_path(inf.spec.kind, inf.spec.ns);
  std::string query = selector_query(inf.spec.labels, inf.spec.fields);
  if (!query.empty()) target += "?" + query.substr(1);
  std::weak_ptr<int> alive = alive_;
  client_.call("GET", target, "", [this, alive, &inf](StatusOr<std::string> body) {
    if (alive.expired()) return;
    inf.listing = false;
    if (!body.is_ok()) {
      last_error_ = body.status().with_prefix("list " + std::string(api::kind_info(inf.spec.kind).resource) + ": ");
      return retry_informer(inf, /*relist=*/true);
    }
    StatusOr<YAML::Node> root = parse_json(*body);
    if (!root.is_ok()) {
      last_error_ = root.status();
      return retry_informer(inf, true);
    }
    int64_t list_rv = 0;
    std::map<std::string, api::Object> fresh;
    try {
      list_rv = parse_rv((*root)["metadata"]["resourceVersion"].as<std::string>(""));
      for (YAML::Node item : (*root)["items"]) {
        StatusOr<api::Object> o = decode_node(inf.spec.kind, item);
        if (!o.is_ok()) {
          last_error_ = o.status();
          return retry_informer(inf, true);
        }
        const api::ObjectMeta& m = api::meta_of(**o);
        fresh[api::object_key(inf.spec.kind, m.namespace_(), m.name())] = *o;
      }
    } catch (const YAML::Exception& e) {
      last_error_ = internal_error(std::string("list: unexpected reply: ") + e.what());
      return retry_informer(inf, true);
    }
    // Replace the cache, telling the local watchers the difference.
    std::vector<api::Object> gone;
    for (const auto& [key, o] : inf.objects) {
      if (!fresh.count(key)) gone.push_back(o);
    }
    for (const api::Object& o : gone) apply_event(inf, WatchEventType::kDeleted, o, list_rv);
    for (const auto& [key, o] : fresh) {
      auto it = inf.objects.find(key);
      if (it != inf.objects.end() &&
          api::meta_of(*it->second).resource_version() == api::meta_of(*o).resource_version()) {
        continue;
      }
      apply_event(inf, it == inf.objects.end() ? WatchEventType::kAdded : WatchEventType::kModified,
                  o, rv_of(o));
    }
    inf.rv = list_rv;
    resource_version_ = std::max(resource_version_, list_rv);
    inf.synced = true;
    inf.backoff = options_.retry_initial;
    watch_informer(inf);
  });
}

void RemoteStore::watch_informer(Informer& inf) {
  if (inf.watches++ > 0) ++stats_.watch_restarts;
  int64_t timeout_s = std::max<int64_t>(1, to_nanos(options_.watch_timeout) / 1000000000);
  std::string target = collection_path(inf.spec.kind, inf.spec.ns) +
                       "?watch=true&allowWatchBookmarks=true&resourceVersion=" +
                       std::to_string(inf.rv) + "&timeoutSeconds=" + std::to_string(timeout_s) +
                       selector_query(inf.spec.labels, inf.spec.fields);
  std::weak_ptr<int> alive = alive_;
  inf.open = true;
  inf.stream = client_.stream(
      target,
      [this, alive, &inf](std::string line) {
        if (alive.expired()) return;
        on_watch_line(inf, line);
      },
      [this, alive, &inf](Status end) {
        if (alive.expired()) return;
        inf.open = false;
        if (end.is_ok()) {
          // The server ended the watch (timeoutSeconds, or it stopped): go on
          // from where we were, or re-list when it went away.
          inf.backoff = options_.retry_initial;
          return retry_informer(inf, /*relist=*/false);
        }
        last_error_ = end.with_prefix("watch " + std::string(api::kind_info(inf.spec.kind).resource) + ": ");
        // 410 Gone: the version is older than the server's history. Anything
        // else (the server went away): re-list too, as the server may have
        // restarted with other versions.
        retry_informer(inf, /*relist=*/true);
      });
}

void RemoteStore::retry_informer(Informer& inf, bool relist) {
  inf.stream.reset();
  inf.open = false;
  Duration delay = inf.backoff;
  inf.backoff = std::min(inf.backoff * 2, options_.retry_max);
  std::weak_ptr<int> alive = alive_;
  inf.retry = loop_.run_after(delay, [this, alive, &inf, relist] {
    if (alive.expired()) return;
    if (relist) {
      list_informer(inf);
    } else {
      watch_informer(inf);
    }
  });
}

void RemoteStore::on_watch_line(Informer& inf, const std::string& line) {
  StatusOr<YAML::Node> root = parse_json(line);
  std::string type;
  try {
    if (root.is_ok()) type = (*root)["type"].as<std::string>("");
  } catch (const YAML::Exception&) {
  }
  if (type.empty()) {
    last_error_ = internal_error("watch: an event line that does not parse: " + line.substr(0, 200));
    return retry_informer(inf, true);
  }
  YAML::Node object = (*root)["object"];
  if (type == "ERROR") {
    int code = 0;
    std::string message;
    try {
      code = object["code"].as<int>(0);
      message = object["message"].as<std::string>("");
    } catch (const YAML::Exception&) {
    }
    last_error_ = Status(code == 410 ? StatusCode::kGone : StatusCode::kInternal,
                         "watch: " + message);
    return retry_informer(inf, /*relist=*/true);
  }
  if (type == "BOOKMARK") {
    try {
      int64_t rv = parse_rv(object["metadata"]["resourceVersion"].as<std::string>(""));
      inf.rv = std::max(inf.rv, rv);
      resource_version_ = std::max(resource_version_, rv);
    } catch (const YAML::Exception&) {
    }
    return;
  }
  WatchEventType t;
  if (type == "ADDED") {
    t = WatchEventType::kAdded;
  } else if (type == "MODIFIED") {
    t = WatchEventType::kModified;
  } else if (type == "DELETED") {
    t = WatchEventType::kDeleted;
  } else {
    return;  // a type this client does not know: ignore
  }
  StatusOr<api::Object> o = decode_node(inf.spec.kind, object);
  if (!o.is_ok()) {
    last_error_ = o.status().with_prefix("watch: ");
    return retry_informer(inf, true);
  }
  inf.backoff = options_.retry_initial;
  apply_event(inf, t, *o, rv_of(*o));
}

void RemoteStore::apply_event(Informer& inf, WatchEventType type, api::Object object,
                              int64_t rv) {
  const api::ObjectMeta& m = api::meta_of(*object);
  std::string key = api::object_key(inf.spec.kind, m.namespace_(), m.name());
  api::Object old;
  auto it = inf.objects.find(key);
  if (it != inf.objects.end()) old = it->second;
  if (type == WatchEventType::kDeleted) {
    if (it != inf.objects.end()) inf.objects.erase(it);
  } else {
    inf.objects[key] = object;
  }
  inf.rv = std::max(inf.rv, rv);
  resource_version_ = std::max(resource_version_, rv);
  notify(inf.spec.kind, old, object, type, rv);
}

void RemoteStore::notify(api::Kind kind, const api::Object& old_obj, const api::Object& new_obj,
                         WatchEventType type, int64_t rv) {
  for (const auto& [id, w] : *watches_) {
    if (w->kind != kind) continue;
    bool was = old_obj != nullptr && w->matches(old_obj);
    bool is = new_obj != nullptr && w->matches(new_obj);
    WatchEventType deliver;
    if (type == WatchEventType::kDeleted) {
      if (!was && !is) continue;
      deliver = WatchEventType::kDeleted;
    } else if (is) {
      deliver = was ? WatchEventType::kModified : WatchEventType::kAdded;
    } else if (was) {
      deliver = WatchEventType::kDeleted;
    } else {
      continue;
    }
    WatchEvent ev{deliver, new_obj, rv};
    std::weak_ptr<std::map<uint64_t, std::shared_ptr<LocalWatch>>> watches = watches_;
    loop_.post([watches, id = id, ev = std::move(ev)] {
      auto map = watches.lock();
      if (!map) return;
      auto it = map->find(id);
      if (it == map->end()) return;
      std::shared_ptr<LocalWatch> keep = it->second;  // the callback may end the watch
      keep->on_event(ev);
    });
  }
}

// ---------------------------------------------------------------------- reads

StatusOr<api::Object> RemoteStore::get(api::Kind kind, std::string_view ns,
                                       std::string_view name) const {
  std::string key = qualified_key(kind, ns, name);
  api::Object o = known(kind, key);
  if (o == nullptr) {
    return not_found_error(std::string(api::kind_info(kind).resource) + " \"" +
                           std::string(name) + "\" not found");
  }
  return o;
}

api::Object RemoteStore::known(api::Kind kind, const std::string& qkey) const {
  if (Informer* inf = informer_for(kind)) {
    std::string key = qkey.substr(qkey.find('|') + 1);
    auto it = inf->objects.find(key);
    return it == inf->objects.end() ? nullptr : it->second;
  }
  auto it = memo_.find(qkey);
  return it == memo_.end() ? nullptr : it->second;
}

StatusOr<ListResult> RemoteStore::list(api::Kind kind, const ListOptions& options) const {
  Informer* inf = informer_for(kind);
  if (inf == nullptr) {
    return failed_precondition_error("this remote store caches no " +
                                     std::string(api::kind_info(kind).resource));
  }
  ListResult result;
  result.resource_version = inf->rv;
  for (const auto& [key, o] : inf->objects) {
    const api::ObjectMeta& m = api::meta_of(*o);
    if (!options.ns.empty() && m.namespace_() != options.ns) continue;
    if (!options.labels.matches(m.labels()) || !options.fields.matches(*o)) continue;
    result.items.push_back(o);
  }
  return result;
}

StatusOr<WatchHandle> RemoteStore::watch(api::Kind kind, const WatchOptions& options,
                                         std::function<void(const WatchEvent&)> on_event) {
  Informer* inf = informer_for(kind);
  if (inf == nullptr) {
    return failed_precondition_error("this remote store caches no " +
                                     std::string(api::kind_info(kind).resource));
  }
  if (options.resource_version != 0 && options.resource_version < inf->rv) {
    return Status(StatusCode::kGone, "too old resource version: " +
                                         std::to_string(options.resource_version) + " (" +
                                         std::to_string(inf->rv) + ")");
  }
  auto w = std::make_shared<LocalWatch>();
  w->kind = kind;
  w->options = options;
  w->on_event = std::move(on_event);
  uint64_t id = next_watch_id_++;
  (*watches_)[id] = w;
  if (options.send_initial_events) {
    for (const auto& [key, o] : inf->objects) {
      if (!w->matches(o)) continue;
      WatchEvent ev{WatchEventType::kAdded, o, inf->rv};
      std::weak_ptr<std::map<uint64_t, std::shared_ptr<LocalWatch>>> watches = watches_;
      loop_.post([watches, id, ev = std::move(ev)] {
        auto map = watches.lock();
        if (!map) return;
        auto it = map->find(id);
        if (it == map->end()) return;
        std::shared_ptr<LocalWatch> keep = it->second;
        keep->on_event(ev);
      });
    }
  }
  return WatchHandle(std::make_unique<WatchImpl>(watches_, id));
}

// --------------------------------------------------------------------- writes

StatusOr<api::Object> RemoteStore::create(api::Object object) {
  const api::KindInfo* info = api::kind_of(*object);
  if (info == nullptr) return invalid_error("create: not an object of a known kind");
  std::shared_ptr<pb::Message> copy = clone(*object);
  api::ObjectMeta* m = api::mutable_meta_of(*copy);
  if (info->namespaced && m->namespace_().empty()) {
    m->set_namespace_(std::string(api::kDefaultNamespace));
  }
  if (!info->namespaced) m->clear_namespace_();
  api::fill_type_meta(copy.get());
  api::Object sent = copy;
  WriteOp op;
  op.type = WriteOp::Type::kCreate;
  op.kind = info->kind;
  op.ns = m->namespace_();
  op.name = m->name();
  op.object = sent;
  if (!op.name.empty()) {
    std::string key = qualified_key(info->kind, op.ns, op.name);
    if (informer_for(info->kind) != nullptr && known(info->kind, key) != nullptr) {
      return already_exists_error(std::string(info->resource) + " \"" + op.name +
                                  "\" already exists");
    }
    if (informer_for(info->kind) == nullptr) memo(sent);
  }
  enqueue(std::move(op));
  return sent;
}

StatusOr<api::Object> RemoteStore::update(api::Object object) {
  const api::KindInfo* info = api::kind_of(*object);
  if (info == nullptr) return invalid_error("update: not an object of a known kind");
  std::shared_ptr<pb::Message> copy = clone(*object);
  api::ObjectMeta* m = api::mutable_meta_of(*copy);
  if (info->namespaced && m->namespace_().empty()) {
    m->set_namespace_(std::string(api::kDefaultNamespace));
  }
  api::fill_type_meta(copy.get());
  std::string key = qualified_key(info->kind, m->namespace_(), m->name());
  if (informer_for(info->kind) != nullptr) {
    api::Object cached = known(info->kind, key);
    if (cached == nullptr) {
      return not_found_error(std::string(info->resource) + " \"" + m->name() + "\" not found");
    }
    const std::string& cached_rv = api::meta_of(*cached).resource_version();
    if (!m->resource_version().empty() && m->resource_version() != cached_rv) {
      return conflict_error("Operation cannot be fulfilled on " + std::string(info->resource) +
                            " \"" + m->name() +
                            "\": the object has been modified; please apply your changes to "
                            "the latest version and try again");
    }
  }
  WriteOp op;
  op.type = WriteOp::Type::kUpdate;
  op.kind = info->kind;
  op.ns = m->namespace_();
  op.name = m->name();
  op.object = copy;
  op.base_rv = m->resource_version();
  enqueue(std::move(op));
  return api::Object(copy);
}

StatusOr<api::Object> RemoteStore::remove(api::Kind kind, std::string_view ns,
                                          std::string_view name, const DeleteOptions& options) {
  std::string key = qualified_key(kind, ns, name);
  api::Object cached = known(kind, key);
  if (cached == nullptr) {
    return not_found_error(std::string(api::kind_info(kind).resource) + " \"" +
                           std::string(name) + "\" not found");
  }
  const api::ObjectMeta& m = api::meta_of(*cached);
  if ((!options.uid.empty() && options.uid != m.uid()) ||
      (!options.resource_version.empty() && options.resource_version != m.resource_version())) {
    return conflict_error("Operation cannot be fulfilled on " +
                          std::string(api::kind_info(kind).resource) + " \"" + std::string(name) +
                          "\": precondition failed");
  }
  WriteOp op;
  op.type = WriteOp::Type::kRemove;
  op.kind = kind;
  op.ns = normal_ns(kind, ns);
  op.name = std::string(name);
  op.del = options;
  enqueue(std::move(op));
  return cached;
}

void RemoteStore::memo(api::Object object) {
  const api::ObjectMeta& m = api::meta_of(*object);
  const api::KindInfo* info = api::kind_of(*object);
  std::string key = qualified_key(info->kind, m.namespace_(), m.name());
  if (memo_.emplace(key, object).second) {
    memo_order_.push_back(key);
  } else {
    memo_[key] = object;
  }
  while (memo_order_.size() > options_.written_memo_size) {
    memo_.erase(memo_order_.front());
    memo_order_.pop_front();
  }
}

void RemoteStore::enqueue(WriteOp op) {
  std::string key = op.name.empty() ? "generated|" + std::to_string(stats_.writes_sent) + "|" +
                                          std::to_string(queues_.size())
                                    : qualified_key(op.kind, op.ns, op.name);
  auto& q = queues_[key];
  if (!q) q = std::make_unique<KeyQueue>();
  q->ops.push_back(std::move(op));
  if (!q->running) run_next(key);
}

void RemoteStore::run_next(const std::string& key) {
  auto it = queues_.find(key);
  if (it == queues_.end()) return;
  KeyQueue& q = *it->second;
  if (q.ops.empty()) {
    queues_.erase(it);
    return;
  }
  q.running = true;
  WriteOp& op = q.ops.front();
  if (op.type == WriteOp::Type::kUpdate) {
    // Built on the version the previous write replaced: send it on that
    // write's result instead (the caller had not seen the echo yet).
    if (!q.last_base_rv.empty() && op.base_rv == q.last_base_rv && !q.last_result_rv.empty()) {
      std::shared_ptr<pb::Message> c = clone(*op.object);
      api::mutable_meta_of(*c)->set_resource_version(q.last_result_rv);
      op.object = c;
    }
    api::Object base = known(op.kind, key);
    bool has_status = status_field(*op.object) != nullptr;
    op.status_changed = has_status && (base == nullptr || !same_status(*base, *op.object));
    bool main_changed = base == nullptr || !same_main(*base, *op.object) || !has_status;
    if (!main_changed && !op.status_changed) {
      op_done(key, op.object);  // nothing to send
      return;
    }
    op.status_phase = !main_changed;
  }
  run_op(key);
}

void RemoteStore::run_op(const std::string& key) {
  KeyQueue& q = *queues_.at(key);
  WriteOp& op = q.ops.front();
  std::weak_ptr<int> alive = alive_;
  ++stats_.writes_sent;
  std::string uri = api::object_uri(op.kind, op.ns, op.name);
  auto on_object = [this, alive, key](StatusOr<std::string> body) {
    if (alive.expired()) return;
    if (!body.is_ok()) return op_done(key, body.status());
    KeyQueue& q2 = *queues_.at(key);
    StatusOr<api::Object> o = decode_object(q2.ops.front().kind, *body);
    op_done(key, std::move(o));
  };
  switch (op.type) {
    case WriteOp::Type::kCreate:
      client_.call("POST", collection_path(op.kind, op.ns), api::encode_json(*op.object),
                   std::move(on_object));
      return;
    case WriteOp::Type::kRemove: {
      nlohmann::json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
      if (!op.del.uid.empty()) body["preconditions"]["uid"] = op.del.uid;
      if (!op.del.resource_version.empty()) {
        body["preconditions"]["resourceVersion"] = op.del.resource_version;
      }
      client_.call("DELETE", uri, body.dump(), std::move(on_object));
      return;
    }
    case WriteOp::Type::kUpdate:
      put(key, op.status_phase, op.object);
      return;
  }
}

void RemoteStore::put(const std::string& key, bool status, api::Object object) {
  KeyQueue& q = *queues_.at(key);
  const WriteOp& op = q.ops.front();
  std::string uri = api::object_uri(op.kind, op.ns, op.name) + (status ? "/status" : "");
  std::weak_ptr<int> alive = alive_;
  client_.call("PUT", uri, api::encode_json(*object),
               [this, alive, key, status](StatusOr<std::string> body) {
                 if (alive.expired()) return;
                 KeyQueue& q2 = *queues_.at(key);
                 WriteOp& op2 = q2.ops.front();
                 if (!body.is_ok()) {
                   if (body.status().code() == StatusCode::kConflict &&
                       op2.rebases < options_.max_rebases) {
                     return rebase(key);
                   }
                   return op_done(key, body.status());
                 }
                 StatusOr<api::Object> o = decode_object(op2.kind, *body);
                 if (!o.is_ok()) return op_done(key, o.status());
                 if (!status && op2.status_changed) {
                   // The main resource landed (the server kept its status):
                   // now the status, on the version just written.
                   std::shared_ptr<pb::Message> c = clone(*op2.object);
                   api::mutable_meta_of(*c)->set_resource_version(
                       api::meta_of(**o).resource_version());
                   op2.object = c;
                   op2.status_phase = true;
                   ++stats_.writes_sent;
                   return put(key, true, op2.object);
                 }
                 op_done(key, std::move(o));
               });
}

void RemoteStore::rebase(const std::string& key) {
  KeyQueue& q = *queues_.at(key);
  WriteOp& op = q.ops.front();
  ++op.rebases;
  ++stats_.rebased;
  std::weak_ptr<int> alive = alive_;
  client_.call("GET", api::object_uri(op.kind, op.ns, op.name), "",
               [this, alive, key](StatusOr<std::string> body) {
                 if (alive.expired()) return;
                 KeyQueue& q2 = *queues_.at(key);
                 WriteOp& op2 = q2.ops.front();
                 if (!body.is_ok()) return op_done(key, body.status());
                 StatusOr<api::Object> fresh = decode_object(op2.kind, *body);
                 if (!fresh.is_ok()) return op_done(key, fresh.status());
                 const api::ObjectMeta& fm = api::meta_of(**fresh);
                 const api::ObjectMeta& om = api::meta_of(*op2.object);
                 if (!om.uid().empty() && fm.uid() != om.uid()) {
                   // Another incarnation of the name: this write was for the old one.
                   return op_done(key, conflict_error("the object was replaced"));
                 }
                 std::shared_ptr<pb::Message> c = clone(**fresh);
                 api::ObjectMeta* cm = api::mutable_meta_of(*c);
                 for (const auto& [k, v] : om.labels()) (*cm->mutable_labels())[k] = v;
                 copy_status(*op2.object, c.get());
                 op2.object = c;
                 ++stats_.writes_sent;
                 if (!op2.status_phase && same_main(**fresh, *c)) op2.status_phase = true;
                 put(key, op2.status_phase, op2.object);
               });
}

void RemoteStore::op_done(const std::string& key, StatusOr<api::Object> result) {
  auto it = queues_.find(key);
  if (it == queues_.end()) return;
  KeyQueue& q = *it->second;
  WriteOp op = std::move(q.ops.front());
  q.ops.pop_front();
  q.running = false;
  if (result.is_ok()) {
    if (op.type == WriteOp::Type::kUpdate) {
      q.last_base_rv = op.base_rv;
      q.last_result_rv = api::meta_of(**result).resource_version();
    }
    if (op.type != WriteOp::Type::kRemove && informer_for(op.kind) == nullptr) memo(*result);
  } else {
    StatusCode code = result.status().code();
    bool harmless = (op.type == WriteOp::Type::kRemove &&
                     (code == StatusCode::kNotFound || code == StatusCode::kConflict)) ||
                    (op.type == WriteOp::Type::kCreate && code == StatusCode::kAlreadyExists);
    if (!harmless) {
      ++stats_.writes_failed;
      const char* verb = op.type == WriteOp::Type::kCreate   ? "create "
                         : op.type == WriteOp::Type::kRemove ? "delete "
                                                             : "update ";
      last_error_ = result.status().with_prefix(
          std::string(verb) + std::string(api::kind_info(op.kind).resource) + "/" + op.name +
          ": ");
      if (informer_for(op.kind) != nullptr) redeliver(op.kind, key);
    }
    q.last_base_rv.clear();
    q.last_result_rv.clear();
  }
  run_next(key);
}

void RemoteStore::redeliver(api::Kind kind, const std::string& key) {
  if (redeliveries_.count(key)) return;
  std::weak_ptr<int> alive = alive_;
  redeliveries_[key] = loop_.run_after(options_.redeliver_after, [this, alive, kind, key] {
    if (alive.expired()) return;
    auto node = redeliveries_.extract(key);  // keeps the running timer alive until we return
    if (queues_.count(key)) return;          // a newer write is on its way
    api::Object o = known(kind, key);
    if (o == nullptr) return;
    notify(kind, o, o, WatchEventType::kModified, rv_of(o));
  });
}

}  // namespace flotilla::apiclient
