// Store: the versioned object store every controller reads and writes. Objects
// are immutable snapshots (api::Object); every write bumps one global
// resourceVersion; watches deliver ordered ADDED/MODIFIED/DELETED events from a
// version. The in-memory store (core/store/) implements it for both worlds;
// remote agents reach the same store through the REST API.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/api/labels.h"
#include "core/api/object.h"
#include "core/util/status.h"

namespace flotilla {

enum class WatchEventType { kAdded, kModified, kDeleted };

struct WatchEvent {
  WatchEventType type;
  api::Object object;  // for kDeleted, the last state before deletion
  int64_t resource_version = 0;
};

struct ListOptions {
  std::string ns;               // empty: all namespaces
  api::LabelSelector labels;    // default: everything
  api::FieldSelector fields;    // default: everything
  int64_t limit = 0;            // 0: no limit
  std::string continue_token;   // from a previous ListResult with a limit
};

struct ListResult {
  std::vector<api::Object> items;  // ordered by key (namespace, then name)
  int64_t resource_version = 0;    // the store's version the list reflects
  std::string continue_token;      // non-empty when more items remain
  int64_t remaining = 0;           // items after this page, when limited
};

struct WatchOptions {
  std::string ns;
  api::LabelSelector labels;
  api::FieldSelector fields;
  // 0: start now; events for every later change. N > 0: every change after
  // version N, replayed from the store's history (kGone when N is older than
  // the history kept).
  int64_t resource_version = 0;
  // Deliver an ADDED event for every matching object first (kubectl's
  // "synthetic" initial events); used with resource_version 0.
  bool send_initial_events = false;
};

struct DeleteOptions {
  std::string uid;               // precondition: delete only this incarnation
  std::string resource_version;  // precondition: delete only this version
};

// A live watch. Destroying it stops delivery; no callback runs afterwards.
class Watch {
 public:
  virtual ~Watch() = default;
};
using WatchHandle = std::unique_ptr<Watch>;

class Store {
 public:
  virtual ~Store() = default;

  // Errors: kNotFound (`pods "web-1" not found`).
  virtual StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                                    std::string_view name) const = 0;

  // A poll of one object: null when the stored version is still `known` (a
  // snapshot this store returned), else what get() returns. For a caller
  // that looks at one object often and rarely finds it changed (the
  // kubelet's Node status check every 10 s); a store holding its objects
  // answers without handing out a new reference. The default compares
  // resourceVersions. Errors as get().
  virtual StatusOr<api::Object> get_if_changed(api::Kind kind, std::string_view ns,
                                               std::string_view name,
                                               const api::Object& known) const {
    StatusOr<api::Object> current = get(kind, ns, name);
    if (current.is_ok() && known != nullptr &&
        (*current == known ||
         api::meta_of(**current).resource_version() == api::meta_of(*known).resource_version())) {
      return api::Object();
    }
    return current;
  }

  // Errors: kBadRequest for a bad continue token, kGone when it expired.
  virtual StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const = 0;

  // Stores a new object and returns it as stored: namespace defaulted to
  // "default", name generated from generateName, uid, resourceVersion,
  // generation 1 and creationTimestamp set. Validated before anything is
  // written. Errors: kAlreadyExists, kInvalid (naming the field), kNotFound
  // when the namespace does not exist (when namespaces are enforced).
  virtual StatusOr<api::Object> create(api::Object object) = 0;

  // Replaces an object. Its metadata.resourceVersion must equal the stored one
  // (empty means "unconditional"); uid and creationTimestamp are kept from the
  // stored object; generation increments when the spec changed. Errors:
  // kNotFound, kConflict (`Operation cannot be fulfilled on pods "x": the object
  // has been modified; please apply your changes to the latest version and try
  // again`), kInvalid.
  virtual StatusOr<api::Object> update(api::Object object) = 0;

  // Removes an object now and returns its last state. Errors: kNotFound,
  // kConflict when a precondition fails.
  virtual StatusOr<api::Object> remove(api::Kind kind, std::string_view ns,
                                       std::string_view name,
                                       const DeleteOptions& options = {}) = 0;

  // Calls `on_event` for each matching change, in resourceVersion order, through
  // the event loop (never from inside create/update/remove). An object that
  // stops matching a selector is delivered as kDeleted, one that starts
  // matching as kAdded. Errors: kGone for a version older than the history.
  virtual StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                                      std::function<void(const WatchEvent&)> on_event) = 0;

  // The current global resourceVersion.
  virtual int64_t resource_version() const = 0;

  // The version of the latest change (creation, update or removal) to an
  // object of `kind`, never earlier than the truth: an unfiltered watch on
  // `kind` that has delivered an event of at least this version has delivered
  // every change so far, so a cache fed by it is current. The default (the
  // global version) is always safe, if rarely equal.
  virtual int64_t kind_resource_version(api::Kind /*kind*/) const { return resource_version(); }
};

}  // namespace flotilla
