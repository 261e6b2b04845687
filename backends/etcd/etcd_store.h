// EtcdStore: the Store port on etcd, for control planes whose state must
// outlive (and be shared beyond) one process. Objects live under a key prefix
// (default /registry/<resource>/<namespace>/<name>, as Kubernetes lays them
// out) as their protobuf bytes; resourceVersion is etcd's mod_revision.
// Reads, lists and watches are served by an InMemoryStore kept in step with
// etcd by one watch on the prefix; writes are compare-and-swap transactions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/etcd/etcd_client.h"
#include "core/ports/event_loop.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/store/in_memory_store.h"
#include "core/util/status.h"

namespace flotilla::etcd {

struct EtcdOptions {
  std::vector<Endpoint> endpoints;  // at least one
  // Every key starts with it; two control planes on one etcd need two.
  std::string prefix = "/registry/";
  // Bounds each request to etcd and the wait for a write to come back
  // through the watch.
  Duration timeout = std::chrono::seconds(10);
  // Notes: reconnections of the watch, a compaction that stopped it.
  std::function<void(const std::string&)> log;
};

class EtcdStore final : public Store {
 public:
  // Loads every object under the prefix into the cache (at one revision),
  // then watches the prefix from the next revision. `loop` and `random` must
  // outlive the store; `store_options` are the cache's (validation,
  // namespaces, watch history). Errors: kUnavailable naming the endpoints
  // when etcd does not answer; kBadRequest for a value under the prefix that
  // is not an object of the kind its key names.
  static StatusOr<std::unique_ptr<EtcdStore>> open(EventLoop& loop, RandomStream& random,
                                                   store::StoreOptions store_options,
                                                   EtcdOptions options);
  // Stops the watch thread.
  ~EtcdStore() override;
  EtcdStore(const EtcdStore&) = delete;
  EtcdStore& operator=(const EtcdStore&) = delete;

  // --- Store (loop thread only) ---
  // Reads come from the cache, which holds every change this store made
  // (a write returns only once etcd's watch has brought it back) and every
  // other writer's change as soon as the watch delivers it.
  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override;
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override;
  // Checked against the cache exactly as the in-memory store checks (same
  // errors and messages), then written with a transaction that holds only if
  // etcd's copy is the one checked (create: absent; update and delete: the
  // same mod_revision). When another writer got there first, the cache
  // catches up and the checks run again, so a stale precondition is
  // kConflict and a taken name kAlreadyExists, as with the other stores.
  // kUnavailable when etcd cannot be reached (the write may or may not have
  // happened, as with any etcd client).
  StatusOr<api::Object> create(api::Object object) override;
  StatusOr<api::Object> update(api::Object object) override;
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options = {}) override;
  // The cache's watches: history from when this store opened (history_size
  // events per kind); an older version is kGone (410), as with Kubernetes'
  // watch cache.
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override;
  int64_t resource_version() const override;
  // The cache's: the etcd revision of the kind's newest change it has
  // applied (the replication manager compares it with its pod watch).
  int64_t kind_resource_version(api::Kind kind) const override;

  // The key an object is stored under.
  std::string key_for(api::Kind kind, std::string_view ns, std::string_view name) const;
  // "host:port" of the endpoint in use.
  std::string endpoint() const;
  // Requests made to etcd (ranges, transactions).
  int64_t requests() const;
  // Non-OK once the watch has stopped for good (its history was compacted
  // while it was disconnected): writes then fail with this status.
  Status health() const;
  store::InMemoryStore& cache();

  struct Impl;

 private:
  explicit EtcdStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flotilla::etcd
