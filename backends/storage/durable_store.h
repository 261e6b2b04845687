// DurableStore: the Store port with a write-ahead log. It decorates the
// in-memory store (core/store): every successful create/update/delete is
// appended to a log segment as a CRC-framed protobuf record and fsync'd before
// the caller is told (see when_durable for group commit); every N records a
// snapshot is written atomically and a new segment begun (compaction). Opening
// a data directory recovers its state exactly (uid, creationTimestamp,
// resourceVersion). Format and guarantees: docs/durability.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/ports/event_loop.h"
#include "core/ports/random.h"
#include "core/ports/store.h"
#include "core/store/in_memory_store.h"
#include "core/util/status.h"

namespace flotilla::storage {

enum class SyncMode {
  // Writes are applied in memory and queued; a writer thread appends the queue
  // and fsyncs once per batch. A write counts as acknowledged only when
  // when_durable() says so; watch events wait for it too.
  kGroupCommit,
  // Each write is appended and fsync'd inside create/update/remove, on the
  // caller's thread; durable when the call returns.
  kPerWrite,
};

struct DurableOptions {
  std::string dir;  // created (0700) when missing
  SyncMode sync = SyncMode::kGroupCommit;
  // Snapshot and start a new segment once the current segment holds this many
  // records and at least as many as the store holds objects (so compaction
  // costs O(1) per write, amortised). 0: never.
  int64_t snapshot_every = 10000;
  // A corrupt record in the middle of the log: false stops open() with an
  // error naming file and offset; true truncates the log there (reported).
  bool repair = false;
  // Warnings and notes (torn tail dropped, what a repair removed). Empty: none.
  std::function<void(const std::string&)> log;
};

// What recovery found in a data directory.
struct RecoveredState {
  std::vector<api::Object> objects;   // the final state, in no particular order
  int64_t resource_version = 0;       // the highest version recovered
  int64_t snapshot_version = 0;       // 0: no snapshot
  int64_t snapshot_objects = 0;
  int64_t records_replayed = 0;       // log records applied after the snapshot
  std::string active_segment;         // path of the segment to append to ("" : none)
  int64_t active_records = 0;         // valid records in it
  std::vector<std::string> notes;     // warnings: torn tail dropped, repair
};

// Reads `dir` (snapshot, then the log segments after it) without changing it,
// except that a torn last record is truncated away, leftover *.tmp files are
// removed and, with `repair`, the log is cut at a corrupt record. Errors:
// kFailedPrecondition naming file and offset for corruption.
StatusOr<RecoveredState> recover_directory(const std::string& dir, bool repair);

// flotilla serve's default data directory: $XDG_STATE_HOME/flotilla/serve, else
// $HOME/.local/state/flotilla/serve (XDG Base Directory: state that persists
// between restarts but is not worth backing up as a document); "" when
// neither variable is set.
std::string default_data_dir();

class DurableStore final : public Store {
 public:
  // Locks `options.dir` (flock on DIR/LOCK; kFailedPrecondition when another
  // process holds it), recovers its state into a new InMemoryStore built from
  // `loop`, `random` and `store_options`, and opens the log for appending.
  // `loop` and `random` must outlive the store.
  static StatusOr<std::unique_ptr<DurableStore>> open(EventLoop& loop, RandomStream& random,
                                                      store::StoreOptions store_options,
                                                      DurableOptions options);
  // Writes what is queued, fsyncs, stops the writer thread, unlocks.
  ~DurableStore() override;
  DurableStore(const DurableStore&) = delete;
  DurableStore& operator=(const DurableStore&) = delete;

  // --- Store (loop thread only) ---
  // Reads see every applied write, including ones not yet durable in group
  // commit mode. A failed write to the log (disk full, I/O error) is fatal:
  // the process exits (status 70) without acknowledging anything more, as
  // after an fsync error nothing can be promised; a restart recovers.
  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override;
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override;
  StatusOr<api::Object> create(api::Object object) override;
  StatusOr<api::Object> update(api::Object object) override;
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options = {}) override;
  // Events are delivered only once the change they report is durable.
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override;
  int64_t resource_version() const override;
  int64_t kind_resource_version(api::Kind kind) const override;

  // Runs `fn` once every write made so far is on disk: at once (inline) when
  // it already is, else on the loop after the fsync that covers it. The API
  // server replies through this, so no reply reports a write before it is
  // durable. Loop thread only.
  void when_durable(std::function<void()> fn);
  // Writes a snapshot now and starts a new segment (waits for it). Loop thread.
  Status compact();

  const RecoveredState& recovery() const;  // objects cleared after open
  // Log records appended, fsyncs done, snapshots written since open.
  int64_t records_written() const;
  int64_t syncs() const;
  int64_t snapshots() const;
  store::InMemoryStore& memory();

  struct Impl;

 private:
  explicit DurableStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flotilla::storage
