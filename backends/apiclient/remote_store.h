// RemoteStore: the Store port over the REST API, so a NodeAgent on another
// host runs unchanged against a remote control plane. Informer style: reads
// (get, list, watch) are answered from local caches fed by list + watch
// streams (with reconnects, and a re-list on 410 Gone); writes return at once
// with the object as sent and go to the server in the background, one at a
// time per object, status through the status subresource. The server's echo
// on the watch brings the cache up to date. Loop thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/apiclient/api_client.h"
#include "core/api/labels.h"
#include "core/ports/event_loop.h"
#include "core/ports/store.h"

namespace flotilla::apiclient {

// What one informer caches: every object of `kind` in `ns` (empty: all)
// matching the selectors. At most one informer per kind.
struct InformerSpec {
  api::Kind kind = api::Kind::kPod;
  std::string ns;
  api::LabelSelector labels;
  api::FieldSelector fields;
};

// The informers a node's Service plumbing (live::NodeServices) reads: every
// Service and every EndpointSlice, in all namespaces.
std::vector<InformerSpec> service_informers();

struct RemoteStoreOptions {
  std::vector<InformerSpec> informers;
  // Reconnect backoff of the list/watch streams (doubles up to the max).
  Duration retry_initial = milliseconds(200);
  Duration retry_max = seconds(5);
  // The server ends each watch after about this long (timeoutSeconds); the
  // informer then watches again from where it was.
  Duration watch_timeout = minutes(5);
  // After a write that failed for good, the cached object is delivered again
  // as MODIFIED to local watchers after this delay, so a level-triggered
  // client (the agent) recomputes and writes again.
  Duration redeliver_after = seconds(1);
  // A write that conflicts on the server is rebased on the server's fresh
  // object and retried this many times (see update()).
  int max_rebases = 5;
  // Objects of kinds no informer caches that this client wrote (Events) are
  // remembered, the last ones, so get() finds them.
  size_t written_memo_size = 4096;
};

struct RemoteStoreStats {
  uint64_t writes_sent = 0;      // HTTP writes (POST, PUT, DELETE) sent
  uint64_t writes_failed = 0;    // writes given up (the error is in last_write_error)
  uint64_t rebased = 0;          // 409 Conflicts rebased on the fresh object and retried
  uint64_t relists = 0;          // lists after the first (410 Gone, reconnect)
  uint64_t watch_restarts = 0;   // watch streams opened after the first
};

class RemoteStore final : public Store {
 public:
  // Borrows both; they must outlive the store.
  RemoteStore(EventLoop& loop, ApiClient& client, RemoteStoreOptions options);
  ~RemoteStore() override;
  RemoteStore(const RemoteStore&) = delete;
  RemoteStore& operator=(const RemoteStore&) = delete;

  // Starts every informer (list, then watch). Returns at once; see synced().
  void start();
  // Every informer has listed at least once (reads are meaningful).
  bool synced() const;
  // Every informer's watch stream is open now.
  bool connected() const;
  // The last error of a list, watch or write ("" when none yet).
  const Status& last_error() const { return last_error_; }
  RemoteStoreStats stats() const { return stats_; }
  // Writes queued or in flight.
  size_t pending_writes() const;

  // --- Store ---
  // From the cache of the kind's informer (kNotFound when absent there); for
  // other kinds, only objects this client wrote.
  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override;
  // From the cache; limit and continue are ignored (one page). Errors:
  // kFailedPrecondition for a kind no informer caches.
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override;
  // Returns the object as sent (namespace defaulted) and POSTs it. kAlreadyExists
  // at once when the cache has it.
  StatusOr<api::Object> create(api::Object object) override;
  // Returns the object as sent and PUTs it: the main resource when metadata or
  // spec changed, then the status subresource when the status changed.
  // kNotFound / kConflict at once against the cache (missing; stale
  // resourceVersion). A 409 from the server (someone wrote in between) is
  // rebased: the fresh object gets this write's status (the agent owns
  // status) and labels, and is written again. Writes queued for one object go
  // in order; one built on the version an earlier write replaced is sent on
  // that write's result.
  StatusOr<api::Object> update(api::Object object) override;
  // Returns the cached object and DELETEs it with the preconditions.
  // kNotFound / kConflict (uid precondition) at once against the cache.
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options = {}) override;
  // From the kind's informer: events after the cache's version, in order,
  // through the loop; a re-list delivers the difference as events. Errors:
  // kFailedPrecondition for a kind no informer caches, kGone for a
  // resource_version older than the cache.
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override;
  // The highest resourceVersion any informer has seen.
  int64_t resource_version() const override { return resource_version_; }

 private:
  struct Informer;
  struct LocalWatch;
  struct WriteOp;
  struct KeyQueue;
  class WatchImpl;

  Informer* informer_for(api::Kind kind) const;
  void list_informer(Informer& inf);
  void watch_informer(Informer& inf);
  void retry_informer(Informer& inf, bool relist);
  void on_watch_line(Informer& inf, const std::string& line);
  // Applies one change to the cache and tells the local watchers.
  void apply_event(Informer& inf, WatchEventType type, api::Object object, int64_t rv);
  void notify(api::Kind kind, const api::Object& old_obj, const api::Object& new_obj,
              WatchEventType type, int64_t rv);

  void enqueue(WriteOp op);
  void run_next(const std::string& key);
  void run_op(const std::string& key);
  void op_done(const std::string& key, StatusOr<api::Object> result);
  void put(const std::string& key, bool status, api::Object object);
  void rebase(const std::string& key);
  void memo(api::Object object);
  api::Object known(api::Kind kind, const std::string& key) const;
  void redeliver(api::Kind kind, const std::string& key);

  EventLoop& loop_;
  ApiClient& client_;
  RemoteStoreOptions options_;
  std::vector<std::unique_ptr<Informer>> informers_;
  std::shared_ptr<std::map<uint64_t, std::shared_ptr<LocalWatch>>> watches_;
  uint64_t next_watch_id_ = 1;
  std::map<std::string, std::unique_ptr<KeyQueue>> queues_;  // by kind-qualified key
  std::map<std::string, api::Object> memo_;
  std::deque<std::string> memo_order_;
  std::map<std::string, TimerHandle> redeliveries_;
  int64_t resource_version_ = 0;
  Status last_error_;
  RemoteStoreStats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// The collection URI of `kind` in `ns` (all namespaces when empty, or for a
// cluster-scoped kind): "/api/v1/namespaces/{ns}/pods", or under the kind's
// group version, "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases".
std::string collection_uri(api::Kind kind, std::string_view ns);

// Decodes one object of `kind` from the server's JSON (kind and apiVersion
// filled in when a list item lacks them).
StatusOr<api::Object> decode_object(api::Kind kind, std::string_view json);

}  // namespace flotilla::apiclient
