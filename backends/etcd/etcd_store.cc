// EtcdStore. The cache is an InMemoryStore whose every change comes from
// etcd's watch on the prefix, applied on the loop thread in revision order at
// etcd's revision (InMemoryStore::apply_put/apply_remove), so its
// resourceVersions are etcd's. A write checks against the cache
// (prepare_create/update/remove), commits with a compare-and-swap, then waits
// until the watch has brought the write back into the cache: a read after a
// write sees it, and the cache never applies changes out of order.
#include "backends/etcd/etcd_store.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <utility>

namespace flotilla::etcd {

namespace {

// Writes whose compare fails because another writer got in first are checked
// and tried again this many times before giving up with kConflict.
constexpr int kWriteAttempts = 16;
constexpr int64_t kLoadPage = 500;

int64_t parse_rv(const std::string& s) {
  int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

}  // namespace

struct EtcdStore::Impl {
  Impl(EventLoop& l, EtcdOptions o) : loop(l), options(std::move(o)) {}

  EventLoop& loop;
  EtcdOptions options;
  std::unique_ptr<store::InMemoryStore> cache;
  std::unique_ptr<EtcdClient> client;
  std::unique_ptr<EtcdWatchStream> watch;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  // Filled by the watch thread, emptied on the loop thread.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<WatchedChange> queue;
  bool drain_posted = false;
  Status fatal = Status::ok();

  void log(const std::string& msg) const {
    if (options.log) options.log(msg);
  }

  std::string key_for(const api::KindInfo& info, std::string_view ns, std::string_view name) const {
    std::string k = options.prefix;
    k += info.resource;
    k += '/';
    if (info.namespaced) {
      k += ns.empty() ? api::kDefaultNamespace : ns;
      k += '/';
    }
    k += name;
    return k;
  }

  struct ParsedKey {
    const api::KindInfo* info = nullptr;
    std::string ns;
    std::string name;
  };

  bool parse_key(std::string_view key, ParsedKey* out) const {
    if (!key.starts_with(options.prefix)) return false;
    key.remove_prefix(options.prefix.size());
    size_t slash = key.find('/');
    if (slash == std::string_view::npos) return false;
    const api::KindInfo* info = api::kind_by_resource(key.substr(0, slash));
    if (info == nullptr || info->resource != key.substr(0, slash)) return false;
    key.remove_prefix(slash + 1);
    out->info = info;
    if (info->namespaced) {
      slash = key.find('/');
      if (slash == std::string_view::npos) return false;
      out->ns = std::string(key.substr(0, slash));
      key.remove_prefix(slash + 1);
    }
    if (key.empty() || key.find('/') != std::string_view::npos) return false;
    out->name = std::string(key);
    return true;
  }

  StatusOr<api::Object> decode(const ParsedKey& k, const std::string& key, const std::string& value,
                               int64_t rev) const {
    std::unique_ptr<google::protobuf::Message> m = k.info->make();
    if (!m->ParseFromString(value)) {
      return bad_request_error("etcd key " + key + " does not hold a " + std::string(k.info->name) +
                               " (the value does not parse)");
    }
    api::ObjectMeta& meta = *k.info->mutable_meta(*m);
    if (meta.name() != k.name || meta.namespace_() != k.ns) {
      return bad_request_error("etcd key " + key + " holds " + std::string(k.info->resource) +
                               " \"" + meta.namespace_() + "/" + meta.name() + "\"");
    }
    meta.set_resource_version(std::to_string(rev));
    return api::Object(std::move(m));
  }

  // ------------------------------------------------------ the watch side

  void on_changes(std::vector<WatchedChange> changes) {  // watch thread
    std::lock_guard<std::mutex> lock(mu);
    for (WatchedChange& c : changes) queue.push_back(std::move(c));
    if (!drain_posted) {
      drain_posted = true;
      loop.post([weak = std::weak_ptr<bool>(alive), this] {
        if (weak.lock()) drain();
      });
    }
    cv.notify_all();
  }

  void on_fatal(Status s) {  // watch thread
    log("etcd: the watch on " + options.prefix + " stopped: " + s.message() +
        "; restart to reload the state from etcd");
    std::lock_guard<std::mutex> lock(mu);
    fatal = unavailable_error("the store lost its watch on etcd (" + s.message() +
                              "); restart flotilla serve to reload its state from etcd");
    cv.notify_all();
  }

  void drain() {  // loop thread
    std::deque<WatchedChange> batch;
    {
      std::lock_guard<std::mutex> lock(mu);
      batch.swap(queue);
      drain_posted = false;
    }
    for (const WatchedChange& c : batch) apply(c);
  }

  void apply(const WatchedChange& c) {
    ParsedKey k;
    if (!parse_key(c.key, &k)) {
      log("etcd: ignoring key " + c.key + " (not an object key under " + options.prefix + ")");
      return;
    }
    Status s = Status::ok();
    if (c.deleted) {
      s = cache->apply_remove(k.info->kind, k.ns, k.name, c.mod_revision);
    } else {
      StatusOr<api::Object> obj = decode(k, c.key, c.value, c.mod_revision);
      s = obj.is_ok() ? cache->apply_put(*obj, c.mod_revision) : obj.status();
    }
    if (!s.is_ok()) log("etcd: ignoring the change of " + c.key + ": " + s.message());
  }

  Status status() const {
    std::lock_guard<std::mutex> lock(mu);
    return fatal;
  }

  // Applies what the watch delivers until `done` holds (loop thread).
  template <typename Done>
  Status wait_until(Done&& done, const std::string& what) {
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::nanoseconds(to_nanos(options.timeout));
    for (;;) {
      drain();
      if (done()) return Status::ok();
      std::unique_lock<std::mutex> lock(mu);
      if (!fatal.is_ok()) return fatal;
      if (!cv.wait_until(lock, deadline, [&] { return !queue.empty() || !fatal.is_ok(); })) {
        return unavailable_error("etcd at " + client->endpoint() + ": the watch did not bring " +
                                 what + " within " + std::to_string(to_seconds(options.timeout)) +
                                 " s");
      }
    }
  }

  Status wait_for_revision(int64_t rev) {
    return wait_until([&] { return cache->resource_version() >= rev; },
                      "back revision " + std::to_string(rev));
  }

  // The cached version of an object; 0 when absent.
  int64_t cached_rv(api::Kind kind, std::string_view ns, std::string_view name) const {
    StatusOr<api::Object> o = cache->get(kind, ns, name);
    if (!o.is_ok()) return 0;
    return parse_rv(api::kind_info(kind).meta(**o).resource_version());
  }

  // After a failed compare: waits until the cache holds the key as etcd had
  // it then (so the next check sees what beat us).
  Status catch_up(const TxnResult& r, api::Kind kind, std::string_view ns, std::string_view name) {
    if (!r.current.empty()) {
      int64_t m = r.current.front().mod_revision;
      return wait_until([&] { return cached_rv(kind, ns, name) >= m; },
                        "back revision " + std::to_string(m));
    }
    return wait_until(
        [&] {
          int64_t c = cached_rv(kind, ns, name);
          return c == 0 || c > r.revision;
        },
        "the deletion of " + std::string(name));
  }

  // When the cache's copy of the key is not etcd's (a change still on its
  // way through the watch), waits until it is and returns true; false when
  // they agree. Used before reporting an error that depends on the cache
  // (not found, already exists, conflict), so errors are as of now, not as
  // of the watch's delay.
  StatusOr<bool> refresh(api::Kind kind, std::string_view ns, std::string_view name) {
    StatusOr<RangeResult> r = client->range(key_for(api::kind_info(kind), ns, name), "");
    if (!r.is_ok()) return r.status();
    int64_t actual = r->kvs.empty() ? 0 : r->kvs.front().mod_revision;
    if (cached_rv(kind, ns, name) == actual) return false;
    TxnResult t;
    t.revision = r->revision;
    t.current = std::move(r->kvs);
    FLOTILLA_RETURN_IF_ERROR(catch_up(t, kind, ns, name));
    return true;
  }

  // An error from a check against the cache: retry (true) when the cache was
  // behind etcd for this key, else it stands.
  StatusOr<bool> retry_after(const Status& error, api::Kind kind, std::string_view ns,
                             std::string_view name, std::initializer_list<StatusCode> codes) {
    if (name.empty() || std::find(codes.begin(), codes.end(), error.code()) == codes.end()) {
      return false;
    }
    return refresh(kind, ns, name);
  }

  static api::Object with_version(const api::Object& o, int64_t rev) {
    std::unique_ptr<google::protobuf::Message> m(o->New());
    m->CopyFrom(*o);
    api::kind_of(*m)->mutable_meta(*m)->set_resource_version(std::to_string(rev));
    return api::Object(std::move(m));
  }

  Status contention(const api::KindInfo& info, std::string_view name) const {
    return conflict_error("Operation cannot be fulfilled on " + std::string(info.resource) + " \"" +
                          std::string(name) + "\": the object kept changing in etcd (" +
                          std::to_string(kWriteAttempts) + " attempts); please try again");
  }

  // ------------------------------------------------------------ writes

  StatusOr<api::Object> create(const api::Object& object) {
    for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
      FLOTILLA_RETURN_IF_ERROR(status());
      drain();
      StatusOr<api::Object> prepared = cache->prepare_create(object);
      if (!prepared.is_ok()) {
        const api::ObjectMeta& in = api::meta_of(*object);
        StatusOr<bool> again =
            retry_after(prepared.status(), api::kind_of(*object)->kind, in.namespace_(), in.name(),
                        {StatusCode::kAlreadyExists});
        if (again.is_ok() && *again) continue;
        return again.is_ok() ? prepared.status() : again.status();
      }
      const api::KindInfo& info = *api::kind_of(**prepared);
      const api::ObjectMeta& meta = info.meta(**prepared);
      std::string value;
      (*prepared)->SerializeToString(&value);
      StatusOr<TxnResult> r =
          client->put_if(key_for(info, meta.namespace_(), meta.name()), value, 0);
      if (!r.is_ok()) return r.status();
      if (r->succeeded) {
        FLOTILLA_RETURN_IF_ERROR(wait_for_revision(r->revision));
        return with_version(*prepared, r->revision);
      }
      FLOTILLA_RETURN_IF_ERROR(catch_up(*r, info.kind, meta.namespace_(), meta.name()));
    }
    return contention(*api::kind_of(*object), api::meta_of(*object).name());
  }

  StatusOr<api::Object> update(const api::Object& object) {
    for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
      FLOTILLA_RETURN_IF_ERROR(status());
      drain();
      StatusOr<api::Object> prepared = cache->prepare_update(object);
      if (!prepared.is_ok()) {
        const api::ObjectMeta& in = api::meta_of(*object);
        StatusOr<bool> again =
            retry_after(prepared.status(), api::kind_of(*object)->kind, in.namespace_(), in.name(),
                        {StatusCode::kNotFound, StatusCode::kConflict});
        if (again.is_ok() && *again) continue;
        return again.is_ok() ? prepared.status() : again.status();
      }
      const api::KindInfo& info = *api::kind_of(**prepared);
      const api::ObjectMeta& meta = info.meta(**prepared);
      if (!meta.resource_version().empty()) return prepared;  // nothing changes
      int64_t expected = cached_rv(info.kind, meta.namespace_(), meta.name());
      std::string value;
      (*prepared)->SerializeToString(&value);
      StatusOr<TxnResult> r =
          client->put_if(key_for(info, meta.namespace_(), meta.name()), value, expected);
      if (!r.is_ok()) return r.status();
      if (r->succeeded) {
        FLOTILLA_RETURN_IF_ERROR(wait_for_revision(r->revision));
        return with_version(*prepared, r->revision);
      }
      FLOTILLA_RETURN_IF_ERROR(catch_up(*r, info.kind, meta.namespace_(), meta.name()));
    }
    return contention(*api::kind_of(*object), api::meta_of(*object).name());
  }

  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& o) {
    const api::KindInfo& info = api::kind_info(kind);
    for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
      FLOTILLA_RETURN_IF_ERROR(status());
      drain();
      StatusOr<api::Object> last = cache->prepare_remove(kind, ns, name, o);
      if (!last.is_ok()) {
        StatusOr<bool> again = retry_after(last.status(), kind, ns, name,
                                           {StatusCode::kNotFound, StatusCode::kConflict});
        if (again.is_ok() && *again) continue;
        return again.is_ok() ? last.status() : again.status();
      }
      const api::ObjectMeta& meta = info.meta(**last);
      int64_t expected = parse_rv(meta.resource_version());
      StatusOr<TxnResult> r =
          client->delete_if(key_for(info, meta.namespace_(), meta.name()), expected);
      if (!r.is_ok()) return r.status();
      if (r->succeeded) {
        FLOTILLA_RETURN_IF_ERROR(wait_for_revision(r->revision));
        return *last;
      }
      FLOTILLA_RETURN_IF_ERROR(catch_up(*r, kind, meta.namespace_(), meta.name()));
    }
    return contention(info, name);
  }
};

// ------------------------------------------------------------------ open

StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::open(EventLoop& loop, RandomStream& random,
                                                     store::StoreOptions store_options,
                                                     EtcdOptions options) {
  if (options.endpoints.empty()) return invalid_error("etcd: no endpoints given");
  if (options.prefix.empty() || options.prefix.back() != '/') options.prefix += '/';
  auto impl = std::make_unique<Impl>(loop, std::move(options));
  Impl& s = *impl;
  s.cache = std::make_unique<store::InMemoryStore>(loop, random, std::move(store_options));
  s.client = std::make_unique<EtcdClient>(s.options.endpoints, s.options.timeout);
  // Everything under the prefix at one revision, in pages.
  std::string start = s.options.prefix;
  const std::string end = prefix_end(s.options.prefix);
  int64_t revision = 0;
  std::vector<api::Object> objects;
  for (;;) {
    StatusOr<RangeResult> r = s.client->range(start, end, revision, kLoadPage);
    if (!r.is_ok()) return r.status();
    if (revision == 0) revision = r->revision;
    for (const KeyValue& kv : r->kvs) {
      Impl::ParsedKey k;
      if (!s.parse_key(kv.key, &k)) {
        s.log("etcd: ignoring key " + kv.key + " (not an object key under " + s.options.prefix +
              ")");
        continue;
      }
      StatusOr<api::Object> obj = s.decode(k, kv.key, kv.value, kv.mod_revision);
      if (!obj.is_ok()) return obj.status();
      objects.push_back(std::move(*obj));
    }
    if (!r->more || r->kvs.empty()) break;
    start = r->kvs.back().key + '\0';
  }
  FLOTILLA_RETURN_IF_ERROR(s.cache->restore(objects, revision));
  EtcdWatchStream::Callbacks cb;
  cb.on_changes = [&s](std::vector<WatchedChange> c) { s.on_changes(std::move(c)); };
  cb.on_fatal = [&s](Status st) { s.on_fatal(std::move(st)); };
  cb.on_retry = [&s](const std::string& why) { s.log("etcd: watch reconnecting: " + why); };
  s.watch = std::make_unique<EtcdWatchStream>(s.options.endpoints, s.options.prefix, end,
                                              revision + 1, std::move(cb));
  return std::unique_ptr<EtcdStore>(new EtcdStore(std::move(impl)));
}

EtcdStore::EtcdStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EtcdStore::~EtcdStore() {
  impl_->watch.reset();  // joins the thread: no more posts
  impl_->alive.reset();  // drains already posted do nothing
}

StatusOr<api::Object> EtcdStore::get(api::Kind kind, std::string_view ns,
                                     std::string_view name) const {
  return impl_->cache->get(kind, ns, name);
}

StatusOr<ListResult> EtcdStore::list(api::Kind kind, const ListOptions& options) const {
  return impl_->cache->list(kind, options);
}

StatusOr<api::Object> EtcdStore::create(api::Object object) {
  if (object == nullptr || api::kind_of(*object) == nullptr) return impl_->cache->create(object);
  return impl_->create(object);
}

StatusOr<api::Object> EtcdStore::update(api::Object object) {
  if (object == nullptr || api::kind_of(*object) == nullptr) return impl_->cache->update(object);
  return impl_->update(object);
}

StatusOr<api::Object> EtcdStore::remove(api::Kind kind, std::string_view ns, std::string_view name,
                                        const DeleteOptions& options) {
  return impl_->remove(kind, ns, name, options);
}

StatusOr<WatchHandle> EtcdStore::watch(api::Kind kind, const WatchOptions& options,
                                       std::function<void(const WatchEvent&)> on_event) {
  impl_->drain();
  return impl_->cache->watch(kind, options, std::move(on_event));
}

int64_t EtcdStore::resource_version() const { return impl_->cache->resource_version(); }

int64_t EtcdStore::kind_resource_version(api::Kind kind) const {
  return impl_->cache->kind_resource_version(kind);
}

std::string EtcdStore::key_for(api::Kind kind, std::string_view ns, std::string_view name) const {
  return impl_->key_for(api::kind_info(kind), ns, name);
}

std::string EtcdStore::endpoint() const { return impl_->client->endpoint(); }
int64_t EtcdStore::requests() const { return impl_->client->requests(); }
Status EtcdStore::health() const { return impl_->status(); }
store::InMemoryStore& EtcdStore::cache() { return *impl_->cache; }

}  // namespace flotilla::etcd
