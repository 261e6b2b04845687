// InMemoryStore: the Store port for both worlds. Objects are immutable shared
// snapshots under one global resourceVersion; lists use indexes (namespace,
// spec.nodeName of pods, label key=value) and page with continue tokens;
// watches deliver filtered, rv-ordered events through the EventLoop, replayed
// from a per-kind history window when they resume from an older version.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/ports/event_loop.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/util/status.h"

namespace flotilla::store {

struct StoreOptions {
  // Called on every create (old == nullptr) and update, after defaulting and
  // before anything is written; a non-OK status is returned to the caller
  // unchanged and nothing is stored. Empty: no validation.
  std::function<Status(const google::protobuf::Message& obj, const google::protobuf::Message* old)>
      validator;
  // When true, creating a namespaced object in a namespace that has no
  // Namespace object fails with kNotFound (`namespaces "x" not found`).
  bool enforce_namespaces = false;
  // Watch history kept per kind, in events. A watch (or a list continue token)
  // from a version older than the window is kGone.
  int64_t history_size = 10000;
  // And only for this long (0: by count alone): an event older than this
  // leaves the history at the kind's next write, so a watch or continue token
  // from before it is kGone, as kube-apiserver's after etcd compacts (every
  // 5 minutes by default). Without it a kind of few, large objects (a
  // Service's Endpoints of thousands of addresses) keeps up to history_size
  // old copies of them.
  Duration history_retention{0};
  // Sources of uids ("0b5e...-4d1c-...") and of generateName suffixes (5
  // characters). Empty: drawn from the RandomStream given to the store.
  std::function<std::string()> new_uid;
  std::function<std::string()> new_name_suffix;
  // Kinds kept serialized between reads (parsed again by every get, list and
  // watch start) instead of as parsed objects: several times smaller, for
  // kinds that are many, written once and seldom read (Events). Watch
  // history keeps its objects parsed; reads of a packed kind return equal
  // objects, not the stored snapshot itself.
  std::vector<api::Kind> packed_kinds;
  // zstd dictionaries for packed kinds: raw content, bytes like the kind's
  // serialized objects (samples, the most common last). A packed kind given
  // one keeps its objects compressed with it (the large scenario's Events:
  // ~150 B less each). Same objects and dictionary: same stored bytes.
  std::vector<std::pair<api::Kind, std::string>> packed_dictionaries;
};

class InMemoryStore final : public Store {
 public:
  using Options = StoreOptions;

  // `loop` delivers watch events (via post, never re-entrantly) and tells the
  // creation time; `random` gives uids and generated names. Both must outlive
  // the store. Single-threaded: call only on the loop's thread.
  InMemoryStore(EventLoop& loop, RandomStream& random, StoreOptions options = {});
  // Watches still open stop delivering (queued events included).
  ~InMemoryStore() override;
  InMemoryStore(const InMemoryStore&) = delete;
  InMemoryStore& operator=(const InMemoryStore&) = delete;

  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override;
  // Compares the stored object with `known` without taking a reference to
  // it (by identity; by version for a packed kind).
  StatusOr<api::Object> get_if_changed(api::Kind kind, std::string_view ns, std::string_view name,
                                       const api::Object& known) const override;
  // Candidates come from the smallest applicable index: a namespace, the pods
  // bound to a node (field selector spec.nodeName=X, including X empty), a
  // label key=value (or `key in (...)`), or a single name. A page continued
  // with a token reads the current state after the token's last key and
  // reports the token's resourceVersion, so a watch from it misses nothing;
  // the token is kGone once that version leaves the history window.
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override;
  // An update that changes nothing (byte-identical apart from the version) is
  // not written: it returns the stored object and sends no event, as
  // Kubernetes does. Generation increments when the `spec` field changes;
  // kinds without one (Endpoints, Event) keep generation 1.
  StatusOr<api::Object> create(api::Object object) override;
  StatusOr<api::Object> update(api::Object object) override;
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options = {}) override;
  // A kDeleted event caused by an object leaving the selector carries the
  // previous state of the object; every event's resource_version is the
  // version of the change (synthetic initial events: the object's version).
  // A version ahead of the store is kBadRequest; send_initial_events with a
  // version > 0 is kBadRequest.
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override;
  int64_t resource_version() const override;
  // The version of the kind's newest history entry (after restore(), the
  // restored version until the next change).
  int64_t kind_resource_version(api::Kind kind) const override;

  // Loads objects exactly as recorded (uid, creationTimestamp, generation and
  // metadata.resourceVersion kept, no validation, no watch events) into an
  // empty store, for recovery from a persistent log (backends/storage). The
  // global resourceVersion becomes max(`resource_version`, the largest object
  // version); watches and continue tokens from earlier versions are kGone
  // (the history is not recovered). Errors: kFailedPrecondition when the
  // store already holds objects, kBadRequest for an object of an unknown kind,
  // an unparsable resourceVersion or a repeated key.
  Status restore(const std::vector<api::Object>& objects, int64_t resource_version);

  // --- Mirroring, for a store whose truth lives elsewhere (backends/etcd keeps
  // an InMemoryStore as a cache of etcd). The prepare_* calls make exactly the
  // checks of create/update/remove against the current state (defaulting,
  // generated name, uid, creationTimestamp, generation, validation,
  // preconditions) and write nothing.
  // The object as create() would store it, without a resourceVersion.
  StatusOr<api::Object> prepare_create(api::Object object);
  // The object as update() would store it, without a resourceVersion; or the
  // stored object itself (with its resourceVersion) when nothing changes.
  StatusOr<api::Object> prepare_update(api::Object object);
  // The object remove() would remove.
  StatusOr<api::Object> prepare_remove(api::Kind kind, std::string_view ns,
                                       std::string_view name,
                                       const DeleteOptions& options = {}) const;
  // Applies a change made elsewhere at `resource_version` (not older than the
  // store's, which becomes it): stores `object` as given (kAdded or
  // kModified; its metadata.resourceVersion is set to the version), or
  // removes the object (nothing when absent). Watches see the change as usual.
  // Errors: kBadRequest for an older version or an unknown kind.
  Status apply_put(const api::Object& object, int64_t resource_version);
  Status apply_remove(api::Kind kind, std::string_view ns, std::string_view name,
                      int64_t resource_version);

  // --- Introspection, for tests and metrics ---
  size_t object_count(api::Kind kind) const;
  // Bytes a packed kind keeps of its stored objects (0 for other kinds).
  int64_t packed_size(api::Kind kind) const;
  // Watches currently open on `kind`.
  size_t watch_count(api::Kind kind) const;
  // Watches from a version >= this are served from history (per kind).
  int64_t oldest_watchable_version(api::Kind kind) const;
  // How many stored objects the last list() examined (the index's candidates).
  int64_t last_list_candidates() const;

  class State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace flotilla::store
