// DurableStore. Files in the data directory:
//   LOCK                    flock'd while a process uses the directory
//   snapshot-<rv>.snap      framed records: a header, then every object at <rv>
//   wal-<rv>.log            framed records of every change after <rv>
// Recovery loads the newest snapshot and replays the segments named >= its
// version; older files are leftovers of a compaction and are removed.
#include "backends/storage/durable_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "backends/storage/record_io.h"
#include "backends/storage/wal.pb.h"

namespace flotilla::storage {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSegmentPrefix = "wal-";
constexpr std::string_view kSegmentSuffix = ".log";
constexpr std::string_view kSnapshotPrefix = "snapshot-";
constexpr std::string_view kSnapshotSuffix = ".snap";
constexpr int kFatalExitCode = 70;  // EX_SOFTWARE

std::string numbered(std::string_view prefix, int64_t n, std::string_view suffix) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(n));
  return std::string(prefix) + digits + std::string(suffix);
}

std::string segment_path(const std::string& dir, int64_t n) {
  return dir + "/" + numbered(kSegmentPrefix, n, kSegmentSuffix);
}
std::string snapshot_path(const std::string& dir, int64_t n) {
  return dir + "/" + numbered(kSnapshotPrefix, n, kSnapshotSuffix);
}

// "wal-00000000000000000042.log" -> 42 when the name has that shape.
bool parse_numbered(std::string_view name, std::string_view prefix, std::string_view suffix,
                    int64_t* n) {
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return false;
  }
  std::string_view digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *n);
  return ec == std::errc() && p == digits.data() + digits.size() && *n >= 0;
}

struct DirListing {
  std::vector<int64_t> segments;   // sorted
  std::vector<int64_t> snapshots;  // sorted
  std::vector<std::string> temporaries;
};

StatusOr<DirListing> list_dir(const std::string& dir) {
  DirListing out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    int64_t n = 0;
    if (parse_numbered(name, kSegmentPrefix, kSegmentSuffix, &n)) {
      out.segments.push_back(n);
    } else if (parse_numbered(name, kSnapshotPrefix, kSnapshotSuffix, &n)) {
      out.snapshots.push_back(n);
    } else if (name.ends_with(".tmp")) {
      out.temporaries.push_back(it->path().string());
    }
  }
  if (ec) return unavailable_error("cannot list " + dir + ": " + ec.message());
  std::sort(out.segments.begin(), out.segments.end());
  std::sort(out.snapshots.begin(), out.snapshots.end());
  return out;
}

std::string state_key(std::string_view kind, std::string_view ns, std::string_view name) {
  std::string k(kind);
  k += '\0';
  k += ns;
  k += '\0';
  k += name;
  return k;
}

struct Decoded {
  Record::Op op = Record::OP_UNKNOWN;
  int64_t rv = 0;
  std::string key;
  api::Object obj;
  int64_t object_count = 0;
};

// Parses and checks one record; the error says why it is not acceptable.
StatusOr<Decoded> decode(std::string_view payload) {
  Record r;
  if (!r.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return bad_request_error("the record does not parse");
  }
  Decoded d;
  d.op = r.op();
  d.rv = r.resource_version();
  if (d.rv <= 0) return bad_request_error("resourceVersion " + std::to_string(d.rv));
  if (d.op == Record::OP_SNAPSHOT_HEADER) {
    d.object_count = r.object_count();
    return d;
  }
  if (d.op != Record::OP_CREATE && d.op != Record::OP_UPDATE && d.op != Record::OP_DELETE &&
      d.op != Record::OP_SNAPSHOT_OBJECT) {
    return bad_request_error("unknown operation " + std::to_string(static_cast<int>(d.op)));
  }
  const api::KindInfo* info = api::kind_by_name(r.kind());
  if (info == nullptr) return bad_request_error("unknown kind \"" + r.kind() + "\"");
  std::unique_ptr<google::protobuf::Message> m = info->make();
  if (!m->ParseFromString(r.object())) return bad_request_error("the object does not parse");
  const api::ObjectMeta& meta = info->meta(*m);
  if (meta.name() != r.name() || meta.namespace_() != r.namespace_()) {
    return bad_request_error("the object's name does not match the record's");
  }
  if (d.op != Record::OP_DELETE && meta.resource_version() != std::to_string(d.rv)) {
    return bad_request_error("the object's resourceVersion does not match the record's");
  }
  d.key = state_key(r.kind(), r.namespace_(), r.name());
  d.obj = api::Object(std::move(m));
  return d;
}

std::string frame_problem(const Frame& f) {
  return f.status == FrameStatus::kShort ? "the record is cut short by the end of the file"
                                         : "checksum mismatch";
}

// Valid records from `offset` on (skipping over damage): how many and the
// versions they span.
struct Tail {
  int64_t records = 0;
  int64_t first_rv = 0;
  int64_t last_rv = 0;
};
void count_records(std::string_view data, std::optional<size_t> offset, Tail* t) {
  while (offset) {
    Frame f = read_frame(data, *offset);
    if (f.status == FrameStatus::kEnd) return;
    if (f.status != FrameStatus::kOk) {
      offset = next_valid_frame(data, *offset);
      continue;
    }
    Record r;
    if (r.ParseFromArray(f.payload.data(), static_cast<int>(f.payload.size()))) {
      ++t->records;
      if (t->first_rv == 0) t->first_rv = r.resource_version();
      t->last_rv = r.resource_version();
    }
    offset = f.next;
  }
}

Status load_snapshot(const std::string& path, std::unordered_map<std::string, api::Object>* state,
                     RecoveredState* out) {
  StatusOr<std::string> data = read_whole_file(path);
  if (!data.is_ok()) return data.status();
  auto corrupt = [&](size_t offset, const std::string& why) {
    return failed_precondition_error(
        "snapshot " + path + " is corrupt at offset " + std::to_string(offset) + " (" + why +
        "); snapshots are written to a temporary file and renamed, so this is damage to the "
        "file or the disk: restore the data directory from a backup");
  };
  Frame f = read_frame(*data, 0);
  if (f.status != FrameStatus::kOk) return corrupt(0, frame_problem(f));
  StatusOr<Decoded> header = decode(f.payload);
  if (!header.is_ok() || header->op != Record::OP_SNAPSHOT_HEADER) {
    return corrupt(0, "the first record is not a snapshot header");
  }
  size_t offset = f.next;
  for (int64_t i = 0; i < header->object_count; ++i) {
    f = read_frame(*data, offset);
    if (f.status == FrameStatus::kEnd) {
      return corrupt(offset, "it ends after " + std::to_string(i) + " of " +
                                 std::to_string(header->object_count) + " objects");
    }
    if (f.status != FrameStatus::kOk) return corrupt(offset, frame_problem(f));
    StatusOr<Decoded> d = decode(f.payload);
    if (!d.is_ok()) return corrupt(offset, d.status().message());
    if (d->op != Record::OP_SNAPSHOT_OBJECT) return corrupt(offset, "not an object record");
    (*state)[d->key] = std::move(d->obj);
    offset = f.next;
  }
  if (offset != data->size()) return corrupt(offset, "bytes after the last object");
  out->snapshot_objects = header->object_count;
  out->snapshot_version = header->rv;
  out->resource_version = std::max(out->resource_version, header->rv);
  return Status::ok();
}

}  // namespace

StatusOr<RecoveredState> recover_directory(const std::string& dir, bool repair) {
  RecoveredState out;
  StatusOr<DirListing> listing = list_dir(dir);
  if (!listing.is_ok()) return listing.status();
  for (const std::string& tmp : listing->temporaries) ::unlink(tmp.c_str());
  std::unordered_map<std::string, api::Object> state;
  int64_t base = 0;
  if (!listing->snapshots.empty()) {
    base = listing->snapshots.back();
    FLOTILLA_RETURN_IF_ERROR(load_snapshot(snapshot_path(dir, base), &state, &out));
    if (out.snapshot_version != base) {
      return failed_precondition_error("snapshot " + snapshot_path(dir, base) +
                                       " says it holds version " +
                                       std::to_string(out.snapshot_version));
    }
  }
  std::vector<int64_t> segments;
  for (int64_t n : listing->segments) {
    if (n >= base) segments.push_back(n);
  }
  int64_t last_rv = base;
  for (size_t i = 0; i < segments.size(); ++i) {
    std::string path = segment_path(dir, segments[i]);
    bool last_segment = i + 1 == segments.size();
    StatusOr<std::string> data = read_whole_file(path);
    if (!data.is_ok()) return data.status();
    size_t offset = 0;
    int64_t count = 0;
    bool cut = false;
    for (;;) {
      Frame f = read_frame(*data, offset);
      if (f.status == FrameStatus::kEnd) break;
      std::string why;
      if (f.status == FrameStatus::kOk) {
        StatusOr<Decoded> d = decode(f.payload);
        if (d.is_ok() && (d->op == Record::OP_CREATE || d->op == Record::OP_UPDATE ||
                          d->op == Record::OP_DELETE)) {
          if (d->rv > last_rv) {
            if (d->op == Record::OP_DELETE) {
              state.erase(d->key);
            } else {
              state[d->key] = std::move(d->obj);
            }
            last_rv = d->rv;
            ++out.records_replayed;
            ++count;
            offset = f.next;
            continue;
          }
          why = "resourceVersion " + std::to_string(d->rv) + " does not follow " +
                std::to_string(last_rv);
        } else {
          why = d.is_ok() ? "not a log record" : d.status().message();
        }
      } else {
        why = frame_problem(f);
      }
      // A bad record at `offset`. Torn when it is the last thing written:
      // at the end of the last segment with nothing valid after it.
      std::optional<size_t> after =
          f.status == FrameStatus::kOk ? std::optional<size_t>(f.next)
                                       : next_valid_frame(*data, offset);
      if (last_segment && !after && f.status != FrameStatus::kOk) {
        out.notes.push_back("warning: " + path + ": dropped a torn last record at offset " +
                            std::to_string(offset) + " (" + why + ", " +
                            std::to_string(data->size() - offset) +
                            " bytes); it was never acknowledged");
        FLOTILLA_RETURN_IF_ERROR(truncate_file(path, offset));
        cut = true;
        break;
      }
      Tail tail;
      count_records(*data, after, &tail);
      std::vector<std::string> later;
      for (size_t j = i + 1; j < segments.size(); ++j) {
        later.push_back(segment_path(dir, segments[j]));
        StatusOr<std::string> more = read_whole_file(later.back());
        if (more.is_ok()) count_records(*more, 0, &tail);
      }
      std::string dropped = std::to_string(data->size() - offset) + " bytes of " + path;
      if (tail.records > 0) {
        dropped += " holding " + std::to_string(tail.records) + " valid records (versions " +
                   std::to_string(tail.first_rv) + ".." + std::to_string(tail.last_rv) + ")";
      }
      if (!later.empty()) dropped += ", and " + std::to_string(later.size()) + " later segments";
      if (!repair) {
        return failed_precondition_error(
            path + ": corrupt record at offset " + std::to_string(offset) + " (" + why +
            ") in the middle of the log; refusing to start rather than lose what follows (" +
            dropped + "). Keep a copy of the data directory, then start with --repair to "
                      "truncate the log at offset " + std::to_string(offset) +
            " and drop those records");
      }
      FLOTILLA_RETURN_IF_ERROR(truncate_file(path, offset));
      for (const std::string& p : later) ::unlink(p.c_str());
      FLOTILLA_RETURN_IF_ERROR(sync_directory(dir));
      out.notes.push_back("repair: " + path + ": corrupt record at offset " +
                          std::to_string(offset) + " (" + why + "); truncated there, dropping " +
                          dropped);
      segments.resize(i + 1);
      cut = true;
      break;
    }
    (void)cut;
    out.active_segment = path;
    out.active_records = count;
  }
  out.resource_version = std::max(out.resource_version, last_rv);
  out.objects.reserve(state.size());
  for (auto& [k, o] : state) out.objects.push_back(std::move(o));
  return out;
}

// ------------------------------------------------------------- the writer

namespace {

[[noreturn]] void fatal(const std::function<void(const std::string&)>& log, const Status& s) {
  std::string msg = "fatal: the write-ahead log failed (" + s.message() +
                    "); exiting without acknowledging more writes; restart to recover";
  if (log) log(msg);
  std::cerr << "flotilla: " << msg << std::endl;
  std::_Exit(kFatalExitCode);
}

// The segment being appended to, plus compaction. Used by one thread at a time.
class SegmentWriter {
 public:
  SegmentWriter() = default;
  ~SegmentWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status open(const std::string& dir, const std::string& path) {
    dir_ = dir;
    bool existed = fs::exists(path);
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return errno_status("cannot open", path);
    if (!existed) {
      Status s = sync_directory(dir);
      if (!s.is_ok()) {
        ::close(fd);
        return s;
      }
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    path_ = path;
    return Status::ok();
  }

  Status append(std::string_view bytes) { return write_all(fd_, bytes, path_); }

  Status sync() {
    if (::fdatasync(fd_) != 0) return errno_status("cannot fdatasync", path_);
    return Status::ok();
  }

  // Writes the snapshot at `rv` (temp file, fsync, rename, fsync dir), starts
  // segment wal-<rv>.log, removes older files. An error before the rename
  // leaves everything as it was (the caller may go on); after it, it is fatal.
  Status rotate(int64_t rv, std::string_view snapshot,
                const std::function<void(const std::string&)>& log) {
    std::string final_path = snapshot_path(dir_, rv);
    std::string tmp = final_path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errno_status("cannot create", tmp);
    Status s = write_all(fd, snapshot, tmp);
    if (s.is_ok() && ::fsync(fd) != 0) s = errno_status("cannot fsync", tmp);
    ::close(fd);
    if (s.is_ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
      s = errno_status("cannot rename", tmp);
    }
    if (!s.is_ok()) {
      ::unlink(tmp.c_str());
      return s;
    }
    // From here the snapshot is what recovery starts from: the new segment
    // must exist before any later record is written.
    s = sync_directory(dir_);
    if (s.is_ok()) s = open(dir_, segment_path(dir_, rv));
    if (!s.is_ok()) fatal(log, s);
    StatusOr<DirListing> listing = list_dir(dir_);
    if (listing.is_ok()) {
      for (int64_t n : listing->segments) {
        if (n < rv) ::unlink(segment_path(dir_, n).c_str());
      }
      for (int64_t n : listing->snapshots) {
        if (n < rv) ::unlink(snapshot_path(dir_, n).c_str());
      }
      (void)sync_directory(dir_);
    }
    return Status::ok();
  }

 private:
  std::string dir_;
  std::string path_;
  int fd_ = -1;
};

struct Job {
  std::string bytes;  // framed records
  uint64_t seq = 0;   // of the last record in `bytes`
  int64_t rv = 0;     // of the last record in `bytes`
  bool snapshot = false;
  int64_t snapshot_rv = 0;
  std::shared_ptr<std::promise<Status>> done;  // compact() waits on it
};

struct WatchState {
  std::function<void(const WatchEvent&)> on_event;
  bool active = true;
};

class DeferredWatch final : public Watch {
 public:
  DeferredWatch(WatchHandle inner, std::shared_ptr<WatchState> state)
      : inner_(std::move(inner)), state_(std::move(state)) {}
  ~DeferredWatch() override { state_->active = false; }

 private:
  WatchHandle inner_;
  std::shared_ptr<WatchState> state_;
};

}  // namespace

// -------------------------------------------------------------- the store

struct DurableStore::Impl {
  Impl(EventLoop& l, DurableOptions o) : loop(l), options(std::move(o)) {}

  EventLoop& loop;
  DurableOptions options;
  std::unique_ptr<store::InMemoryStore> mem;
  RecoveredState recovered;
  int lock_fd = -1;
  SegmentWriter writer;
  int64_t segment_records = 0;  // loop side, queued included
  std::atomic<int64_t> records{0};
  std::atomic<int64_t> syncs{0};
  std::atomic<int64_t> snapshots{0};

  // Group commit: the loop thread queues, the writer thread drains.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stopping = false;
  std::thread thread;
  // Loop side.
  uint64_t write_seq = 0;
  uint64_t durable_seq = 0;
  int64_t durable_rv = 0;
  std::deque<std::pair<uint64_t, std::function<void()>>> waiters;
  std::deque<std::pair<std::shared_ptr<WatchState>, WatchEvent>> events;
  std::shared_ptr<int> alive = std::make_shared<int>(0);

  bool group() const { return options.sync == SyncMode::kGroupCommit; }

  void log_write(Record::Op op, const api::Object& obj, int64_t rv) {
    const api::KindInfo& info = *api::kind_of(*obj);
    const api::ObjectMeta& meta = info.meta(*obj);
    Record r;
    r.set_op(op);
    r.set_kind(std::string(info.name));
    r.set_namespace_(meta.namespace_());
    r.set_name(meta.name());
    r.set_resource_version(rv);
    obj->SerializeToString(r.mutable_object());
    std::string payload = r.SerializeAsString();
    ++write_seq;
    ++records;
    ++segment_records;
    if (group()) {
      {
        std::lock_guard<std::mutex> lk(mu);
        if (jobs.empty() || jobs.back().snapshot) jobs.emplace_back();
        Job& j = jobs.back();
        append_frame(payload, &j.bytes);
        j.seq = write_seq;
        j.rv = rv;
      }
      cv.notify_one();
    } else {
      std::string framed;
      append_frame(payload, &framed);
      Status s = writer.append(framed);
      if (s.is_ok()) s = writer.sync();
      if (!s.is_ok()) fatal(options.log, s);
      ++syncs;
      durable_seq = write_seq;
      durable_rv = rv;
    }
    maybe_snapshot();
  }

  int64_t object_count() const {
    int64_t n = 0;
    for (const api::KindInfo& k : api::all_kinds()) {
      n += static_cast<int64_t>(mem->object_count(k.kind));
    }
    return n;
  }

  void maybe_snapshot() {
    if (options.snapshot_every <= 0 || segment_records < options.snapshot_every) return;
    if (segment_records < object_count()) return;
    Status s = snapshot(nullptr);
    if (!s.is_ok() && options.log) {
      options.log("warning: snapshot failed, the log keeps growing: " + s.message());
    }
  }

  std::string encode_snapshot(int64_t rv) const {
    std::string out;
    Record header;
    header.set_op(Record::OP_SNAPSHOT_HEADER);
    header.set_resource_version(rv);
    header.set_object_count(object_count());
    append_frame(header.SerializeAsString(), &out);
    Record r;
    for (const api::KindInfo& k : api::all_kinds()) {
      StatusOr<ListResult> all = mem->list(k.kind, ListOptions{});
      if (!all.is_ok()) continue;
      for (const api::Object& o : all->items) {
        const api::ObjectMeta& meta = k.meta(*o);
        r.Clear();
        r.set_op(Record::OP_SNAPSHOT_OBJECT);
        r.set_kind(std::string(k.name));
        r.set_namespace_(meta.namespace_());
        r.set_name(meta.name());
        r.set_resource_version(std::stoll(meta.resource_version()));
        o->SerializeToString(r.mutable_object());
        append_frame(r.SerializeAsString(), &out);
      }
    }
    return out;
  }

  // Snapshot of the current state; in group mode queued behind the records it
  // covers. `done` (optional) receives the outcome.
  Status snapshot(std::shared_ptr<std::promise<Status>> done) {
    int64_t rv = mem->resource_version();
    std::string bytes = encode_snapshot(rv);
    segment_records = 0;
    if (!group()) {
      Status s = writer.rotate(rv, bytes, options.log);
      if (s.is_ok()) ++snapshots;
      if (done) done->set_value(s);
      return s;
    }
    {
      std::lock_guard<std::mutex> lk(mu);
      Job j;
      j.snapshot = true;
      j.snapshot_rv = rv;
      j.bytes = std::move(bytes);
      j.done = std::move(done);
      jobs.push_back(std::move(j));
    }
    cv.notify_one();
    return Status::ok();
  }

  void writer_main() {
    for (;;) {
      std::deque<Job> batch;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;  // stopping, all written
        batch.swap(jobs);
      }
      bool dirty = false;
      uint64_t seq = 0;
      int64_t rv = 0;
      auto sync = [&] {
        Status s = writer.sync();
        if (!s.is_ok()) fatal(options.log, s);
        ++syncs;
        dirty = false;
      };
      for (Job& j : batch) {
        if (!j.snapshot) {
          Status s = writer.append(j.bytes);
          if (!s.is_ok()) fatal(options.log, s);
          dirty = true;
          seq = j.seq;
          rv = j.rv;
          continue;
        }
        if (dirty) sync();
        Status s = writer.rotate(j.snapshot_rv, j.bytes, options.log);
        if (s.is_ok()) ++snapshots;
        if (!s.is_ok() && options.log) {
          options.log("warning: snapshot failed, the log keeps growing: " + s.message());
        }
        if (j.done) j.done->set_value(s);
      }
      if (dirty) sync();
      if (seq > 0) {
        loop.post([this, weak = std::weak_ptr<int>(alive), seq, rv] {
          if (weak.lock()) on_durable(seq, rv);
        });
      }
    }
  }

  // Loop thread: writes up to `seq` (version `rv`) are on disk.
  void on_durable(uint64_t seq, int64_t rv) {
    durable_seq = std::max(durable_seq, seq);
    durable_rv = std::max(durable_rv, rv);
    while (!events.empty() && events.front().second.resource_version <= durable_rv) {
      auto [state, ev] = std::move(events.front());
      events.pop_front();
      if (state->active) state->on_event(ev);
    }
    while (!waiters.empty() && waiters.front().first <= durable_seq) {
      std::function<void()> fn = std::move(waiters.front().second);
      waiters.pop_front();
      fn();
    }
  }

  void stop_writer() {
    if (!thread.joinable()) return;
    {
      std::lock_guard<std::mutex> lk(mu);
      stopping = true;
    }
    cv.notify_one();
    thread.join();
  }
};

namespace {

// Takes the directory's lock. The LOCK file holds the owner's pid, for the
// message a second process prints.
StatusOr<int> lock_directory(const std::string& dir) {
  std::string path = dir + "/LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status("cannot open", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    StatusOr<std::string> owner = read_whole_file(path);
    ::close(fd);
    if (e == EWOULDBLOCK) {
      std::string pid = owner.is_ok() ? *owner : "";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      return failed_precondition_error(
          "data directory " + dir + " is in use by another flotilla process" +
          (pid.empty() ? "" : " (pid " + pid + ")") + ": " + path +
          " is locked; stop it first or choose another --data-dir");
    }
    errno = e;
    return errno_status("cannot lock", path);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) == 0) (void)write_all(fd, pid, path);
  return fd;
}

}  // namespace

std::string default_data_dir() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') return std::string(state) + "/flotilla/serve";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] != '\0') return std::string(home) + "/.local/state/flotilla/serve";
  return "";
}

DurableStore::DurableStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StatusOr<std::unique_ptr<DurableStore>> DurableStore::open(EventLoop& loop, RandomStream& random,
                                                           store::StoreOptions store_options,
                                                           DurableOptions options) {
  if (options.dir.empty()) return invalid_error("the data directory is empty");
  std::error_code ec;
  bool created = fs::create_directories(options.dir, ec);
  if (ec) return unavailable_error("cannot create " + options.dir + ": " + ec.message());
  if (created) fs::permissions(options.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  auto impl = std::make_unique<Impl>(loop, std::move(options));
  const std::string& dir = impl->options.dir;
  StatusOr<int> lock = lock_directory(dir);
  if (!lock.is_ok()) return lock.status();
  impl->lock_fd = *lock;
  std::unique_ptr<DurableStore> store(new DurableStore(std::move(impl)));
  Impl& im = *store->impl_;

  StatusOr<RecoveredState> rec = recover_directory(dir, im.options.repair);
  if (!rec.is_ok()) return rec.status();
  im.recovered = std::move(*rec);
  for (const std::string& note : im.recovered.notes) {
    if (im.options.log) im.options.log(note);
  }
  im.mem = std::make_unique<store::InMemoryStore>(loop, random, std::move(store_options));
  Status restored = im.mem->restore(im.recovered.objects, im.recovered.resource_version);
  if (!restored.is_ok()) return restored.with_prefix("recovering " + dir + ": ");
  im.recovered.objects.clear();
  im.recovered.objects.shrink_to_fit();
  im.durable_rv = im.recovered.resource_version;

  std::string active = im.recovered.active_segment;
  if (active.empty()) active = segment_path(dir, im.recovered.snapshot_version);
  FLOTILLA_RETURN_IF_ERROR(im.writer.open(dir, active));
  im.segment_records = im.recovered.active_records;
  if (im.group()) im.thread = std::thread([&im] { im.writer_main(); });
  return store;
}

DurableStore::~DurableStore() {
  impl_->stop_writer();
  impl_->alive.reset();
  if (impl_->lock_fd >= 0) ::close(impl_->lock_fd);
}

StatusOr<api::Object> DurableStore::get(api::Kind kind, std::string_view ns,
                                        std::string_view name) const {
  return impl_->mem->get(kind, ns, name);
}

StatusOr<ListResult> DurableStore::list(api::Kind kind, const ListOptions& options) const {
  return impl_->mem->list(kind, options);
}

StatusOr<api::Object> DurableStore::create(api::Object object) {
  StatusOr<api::Object> r = impl_->mem->create(std::move(object));
  if (r.is_ok()) impl_->log_write(Record::OP_CREATE, *r, impl_->mem->resource_version());
  return r;
}

StatusOr<api::Object> DurableStore::update(api::Object object) {
  int64_t before = impl_->mem->resource_version();
  StatusOr<api::Object> r = impl_->mem->update(std::move(object));
  if (r.is_ok() && impl_->mem->resource_version() != before) {
    impl_->log_write(Record::OP_UPDATE, *r, impl_->mem->resource_version());
  }
  return r;
}

StatusOr<api::Object> DurableStore::remove(api::Kind kind, std::string_view ns,
                                           std::string_view name, const DeleteOptions& options) {
  StatusOr<api::Object> r = impl_->mem->remove(kind, ns, name, options);
  if (r.is_ok()) impl_->log_write(Record::OP_DELETE, *r, impl_->mem->resource_version());
  return r;
}

StatusOr<WatchHandle> DurableStore::watch(api::Kind kind, const WatchOptions& options,
                                          std::function<void(const WatchEvent&)> on_event) {
  if (!impl_->group()) return impl_->mem->watch(kind, options, std::move(on_event));
  auto state = std::make_shared<WatchState>();
  state->on_event = std::move(on_event);
  Impl* im = impl_.get();
  StatusOr<WatchHandle> inner = im->mem->watch(
      kind, options, [im, state, weak = std::weak_ptr<int>(im->alive)](const WatchEvent& ev) {
        if (!weak.lock() || !state->active) return;
        if (im->events.empty() && ev.resource_version <= im->durable_rv) {
          state->on_event(ev);
        } else {
          im->events.emplace_back(state, ev);
        }
      });
  if (!inner.is_ok()) return inner.status();
  return WatchHandle(std::make_unique<DeferredWatch>(std::move(*inner), std::move(state)));
}

int64_t DurableStore::resource_version() const { return impl_->mem->resource_version(); }

int64_t DurableStore::kind_resource_version(api::Kind kind) const {
  return impl_->mem->kind_resource_version(kind);
}

void DurableStore::when_durable(std::function<void()> fn) {
  if (impl_->durable_seq >= impl_->write_seq) {
    fn();
    return;
  }
  impl_->waiters.emplace_back(impl_->write_seq, std::move(fn));
}

Status DurableStore::compact() {
  auto done = std::make_shared<std::promise<Status>>();
  std::future<Status> result = done->get_future();
  Status queued = impl_->snapshot(done);
  if (!impl_->group()) return queued;
  return result.get();
}

const RecoveredState& DurableStore::recovery() const { return impl_->recovered; }
int64_t DurableStore::records_written() const { return impl_->records; }
int64_t DurableStore::syncs() const { return impl_->syncs; }
int64_t DurableStore::snapshots() const { return impl_->snapshots; }
store::InMemoryStore& DurableStore::memory() { return *impl_->mem; }

}  // namespace flotilla::storage
