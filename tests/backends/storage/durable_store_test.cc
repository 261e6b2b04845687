// The persistent store: framing, recovery that keeps versions, uids and
// timestamps exactly, torn tails, corruption in the middle, repair, snapshots
// with compaction, the directory lock, and group commit.
#include "backends/storage/durable_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backends/apiserver/splitmix_random.h"
#include "backends/live/asio_event_loop.h"
#include "backends/storage/crc32c.h"
#include "backends/storage/record_io.h"
#include "tests/backends/storage/storage_test_util.h"

namespace flotilla::storage {
namespace {

using testing::TempDir;
using ::testing::HasSubstr;

TEST(Crc32c, MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  std::string long_input(1000, 'x');
  EXPECT_EQ(crc32c_extend(crc32c(long_input.substr(0, 333)), long_input.data() + 333, 667),
            crc32c(long_input));
}

TEST(Framing, RoundTripsAndDetectsShortAndCorruptRecords) {
  std::string data;
  append_frame("first", &data);
  append_frame("second record", &data);
  Frame a = read_frame(data, 0);
  ASSERT_EQ(a.status, FrameStatus::kOk);
  EXPECT_EQ(a.payload, "first");
  Frame b = read_frame(data, a.next);
  ASSERT_EQ(b.status, FrameStatus::kOk);
  EXPECT_EQ(b.payload, "second record");
  EXPECT_EQ(read_frame(data, b.next).status, FrameStatus::kEnd);

  std::string cut = data.substr(0, data.size() - 3);
  EXPECT_EQ(read_frame(cut, a.next).status, FrameStatus::kShort);
  EXPECT_EQ(read_frame(data.substr(0, 5), 0).status, FrameStatus::kShort);

  std::string flipped = data;
  flipped[kFrameHeaderBytes + 1] ^= 0x20;  // inside "first"
  EXPECT_EQ(read_frame(flipped, 0).status, FrameStatus::kBadChecksum);
  // A valid record follows the damaged one: it is found by scanning.
  EXPECT_EQ(next_valid_frame(flipped, 0), std::optional<size_t>(a.next));
  EXPECT_EQ(next_valid_frame(data, a.next), std::nullopt);
}

class DurableStoreTest : public ::testing::Test {
 protected:
  StatusOr<std::unique_ptr<DurableStore>> open(DurableOptions o = {}) {
    if (o.dir.empty()) o.dir = dir_.path();
    if (!use_group_) o.sync = SyncMode::kPerWrite;
    o.log = [this](const std::string& m) { log_.push_back(m); };
    return DurableStore::open(loop_, random_, {}, std::move(o));
  }

  std::unique_ptr<DurableStore> must_open(DurableOptions o = {}) {
    auto s = open(std::move(o));
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    return s.is_ok() ? std::move(*s) : nullptr;
  }

  std::string segment() {
    auto segs = testing::files_with_prefix(dir_.path(), "wal-");
    return segs.empty() ? "" : segs.back();
  }

  static std::string bytes(const api::Object& o) { return o->SerializeAsString(); }
  // Every pod, serialized, in key order.
  static std::vector<std::string> pod_bytes(const Store& s) {
    std::vector<std::string> out;
    StatusOr<ListResult> all = s.list(api::Kind::kPod, {});
    for (const auto& o : all->items) out.push_back(bytes(o));
    return out;
  }

  TempDir dir_;
  live::AsioEventLoop loop_;
  apiserver::SplitMix64Stream random_{7};
  std::vector<std::string> log_;
  bool use_group_ = false;
};

TEST_F(DurableStoreTest, RecoveryKeepsObjectsExactlyAndVersionsContinue) {
  std::vector<std::string> before;
  int64_t rv = 0;
  {
    auto s = must_open();
    ASSERT_TRUE(s);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->create(testing::make_pod("web-" + std::to_string(i))).is_ok());
    auto web1 = s->get(api::Kind::kPod, "default", "web-1");
    ASSERT_TRUE(web1.is_ok());
    api::Pod changed = *api::as<api::Pod>(*web1);
    changed.mutable_spec()->mutable_containers(0)->set_image("nginx:1.27");
    ASSERT_TRUE(s->update(api::share(changed)).is_ok());
    ASSERT_TRUE(s->remove(api::Kind::kPod, "default", "web-3").is_ok());
    // An update that changes nothing writes nothing.
    int64_t records = s->records_written();
    ASSERT_TRUE(s->update(*s->get(api::Kind::kPod, "default", "web-0")).is_ok());
    EXPECT_EQ(s->records_written(), records);
    EXPECT_EQ(records, 7);
    auto all = s->list(api::Kind::kPod, {});
    for (const auto& o : all->items) before.push_back(bytes(o));
    rv = s->resource_version();
  }
  auto s = must_open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->resource_version(), rv);  // the delete's version included
  EXPECT_EQ(s->recovery().records_replayed, 7);
  auto all = s->list(api::Kind::kPod, {});
  std::vector<std::string> after;
  for (const auto& o : all->items) after.push_back(bytes(o));
  EXPECT_EQ(after, before);  // uid, creationTimestamp, resourceVersion, generation: all the same
  EXPECT_FALSE(s->get(api::Kind::kPod, "default", "web-3").is_ok());
  EXPECT_EQ(api::as<api::Pod>(*s->get(api::Kind::kPod, "default", "web-1"))->metadata().generation(), 2);
  auto next = s->create(testing::make_pod("web-9"));
  ASSERT_TRUE(next.is_ok());
  EXPECT_EQ(api::meta_of(**next).resource_version(), std::to_string(rv + 1));
  // Old versions cannot be watched from (their history is gone), the current one can.
  EXPECT_EQ(s->watch(api::Kind::kPod, {.resource_version = rv - 2}, [](const WatchEvent&) {})
                .status()
                .code(),
            StatusCode::kGone);
  EXPECT_TRUE(s->watch(api::Kind::kPod, {.resource_version = rv}, [](const WatchEvent&) {}).is_ok());
}

TEST_F(DurableStoreTest, TornLastRecordIsDroppedWithAWarningNamingFileAndOffset) {
  {
    auto s = must_open();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->create(testing::make_pod("p" + std::to_string(i))).is_ok());
  }
  std::string seg = segment();
  auto size = std::filesystem::file_size(seg);
  // Half of a fourth record, as a crash in the middle of write() leaves it.
  std::string frame;
  append_frame(std::string(200, 'z'), &frame);
  {
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    f << frame.substr(0, 100);
  }
  auto s = must_open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->memory().object_count(api::Kind::kPod), 3u);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_THAT(log_[0], HasSubstr(seg));
  EXPECT_THAT(log_[0], HasSubstr("torn last record at offset " + std::to_string(size)));
  EXPECT_EQ(std::filesystem::file_size(seg), size);  // truncated, so appends follow valid data
  ASSERT_TRUE(s->create(testing::make_pod("p3")).is_ok());
  s.reset();
  log_.clear();
  s = must_open();
  EXPECT_EQ(s->memory().object_count(api::Kind::kPod), 4u);
  EXPECT_TRUE(log_.empty());
}

TEST_F(DurableStoreTest, LastRecordWithBadChecksumIsTornNotCorruption) {
  {
    auto s = must_open();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->create(testing::make_pod("p" + std::to_string(i))).is_ok());
  }
  std::string seg = segment();
  auto recs = testing::records_of(seg);
  ASSERT_EQ(recs.size(), 3u);
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(seg) - 1));
    f.put('\x7f');
  }
  auto s = must_open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->memory().object_count(api::Kind::kPod), 2u);
  EXPECT_FALSE(s->get(api::Kind::kPod, "default", "p2").is_ok());
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_THAT(log_[0], HasSubstr("offset " + std::to_string(recs[2].offset)));
  EXPECT_THAT(log_[0], HasSubstr("checksum mismatch"));
}

class CorruptionTest : public DurableStoreTest {
 protected:
  // Five pods; the second record's payload gets one flipped bit.
  void SetUp() override {
    {
      auto s = must_open();
      for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->create(testing::make_pod("p" + std::to_string(i))).is_ok());
    }
    seg_ = segment();
    auto recs = testing::records_of(seg_);
    ASSERT_EQ(recs.size(), 5u);
    bad_offset_ = recs[1].offset;
    std::fstream f(seg_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(bad_offset_ + kFrameHeaderBytes + 10));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(bad_offset_ + kFrameHeaderBytes + 10));
    f.put(static_cast<char>(c ^ 0x04));
  }
  std::string seg_;
  size_t bad_offset_ = 0;
};

TEST_F(CorruptionTest, CorruptRecordInTheMiddleStopsStartUpNamingFileAndOffset) {
  auto size = std::filesystem::file_size(seg_);
  auto s = open();
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr(seg_ + ": corrupt record at offset " +
                                              std::to_string(bad_offset_)));
  EXPECT_THAT(s.status().message(), HasSubstr("3 valid records (versions 3..5)"));
  EXPECT_THAT(s.status().message(), HasSubstr("--repair"));
  EXPECT_EQ(std::filesystem::file_size(seg_), size);  // nothing was changed
  // Still refused the second time: no silent loss.
  EXPECT_FALSE(open().is_ok());
}

TEST_F(CorruptionTest, RepairTruncatesAtTheCorruptRecordAndSaysWhatWasDropped) {
  auto s = must_open({.repair = true});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->memory().object_count(api::Kind::kPod), 1u);
  EXPECT_TRUE(s->get(api::Kind::kPod, "default", "p0").is_ok());
  EXPECT_EQ(s->resource_version(), 1);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_THAT(log_[0], HasSubstr("repair: " + seg_ + ": corrupt record at offset " +
                                 std::to_string(bad_offset_)));
  EXPECT_THAT(log_[0], HasSubstr("3 valid records (versions 3..5)"));
  EXPECT_EQ(std::filesystem::file_size(seg_), bad_offset_);
  s.reset();
  log_.clear();
  s = must_open();  // repaired for good: opens without --repair
  ASSERT_TRUE(s);
  EXPECT_TRUE(log_.empty());
}

TEST_F(DurableStoreTest, SnapshotsCompactTheLogAndRecoveryStartsFromThem) {
  std::vector<std::string> before;
  {
    auto s = must_open({.snapshot_every = 10});
    ASSERT_TRUE(s);
    for (int i = 0; i < 35; ++i) ASSERT_TRUE(s->create(testing::make_pod("p" + std::to_string(i))).is_ok());
    for (int i = 0; i < 30; i += 2) ASSERT_TRUE(s->remove(api::Kind::kPod, "default", "p" + std::to_string(i)).is_ok());
    EXPECT_GE(s->snapshots(), 2);
    before = pod_bytes(*s);
  }
  // One snapshot and the one segment after it are left; nothing temporary.
  auto snaps = testing::files_with_prefix(dir_.path(), "snapshot-");
  auto segs = testing::files_with_prefix(dir_.path(), "wal-");
  ASSERT_EQ(snaps.size(), 1u);
  ASSERT_EQ(segs.size(), 1u);
  std::string snap_rv = std::filesystem::path(snaps[0]).stem().string().substr(9);
  EXPECT_EQ(std::filesystem::path(segs[0]).stem().string().substr(4), snap_rv);
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_FALSE(e.path().string().ends_with(".tmp")) << e.path();
  }
  auto s = must_open({.snapshot_every = 10});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->recovery().snapshot_version, std::stoll(snap_rv));
  EXPECT_LT(s->recovery().records_replayed, 35 + 15);
  EXPECT_EQ(s->resource_version(), 50);
  EXPECT_EQ(pod_bytes(*s), before);
}

TEST_F(DurableStoreTest, ACorruptSnapshotStopsStartUp) {
  {
    auto s = must_open();
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->create(testing::make_pod("p" + std::to_string(i))).is_ok());
    ASSERT_TRUE(s->compact().is_ok());
  }
  auto snaps = testing::files_with_prefix(dir_.path(), "snapshot-");
  ASSERT_EQ(snaps.size(), 1u);
  std::filesystem::resize_file(snaps[0], std::filesystem::file_size(snaps[0]) - 20);
  auto s = open();
  ASSERT_FALSE(s.is_ok());
  EXPECT_THAT(s.status().message(), HasSubstr("snapshot " + snaps[0] + " is corrupt at offset"));
}

TEST_F(DurableStoreTest, ASecondProcessOnTheSameDirectoryIsRefused) {
  auto first = must_open();
  ASSERT_TRUE(first);
  auto second = open();
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use by another flotilla process (pid " +
                                                   std::to_string(::getpid()) + ")"));
  first.reset();
  EXPECT_TRUE(open().is_ok());  // released with the store
}

TEST_F(DurableStoreTest, GroupCommitBatchesFsyncsAndHoldsAcksAndEventsUntilDurable) {
  use_group_ = true;
  auto s = must_open();
  ASSERT_TRUE(s);
  int events = 0;
  bool event_was_on_disk = true;
  std::string seg = segment();
  auto w = s->watch(api::Kind::kPod, {}, [&](const WatchEvent& ev) {
    ++events;
    // The reported change is already in the log file.
    bool found = false;
    for (const auto& r : testing::records_of(seg)) {
      found = found || r.record.resource_version() == ev.resource_version;
    }
    event_was_on_disk = event_was_on_disk && found;
  });
  ASSERT_TRUE(w.is_ok());
  constexpr int kWrites = 200;
  int acked = 0;
  int64_t acked_on_disk = 0;
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(s->create(testing::make_pod("p" + std::to_string(i))).is_ok());
    s->when_durable([&, i] {
      ++acked;
      bool found = false;
      for (const auto& r : testing::records_of(seg)) found = found || r.record.name() == "p" + std::to_string(i);
      acked_on_disk += found ? 1 : 0;
    });
  }
  EXPECT_LT(acked, kWrites);  // nothing waits inline for the disk
  ASSERT_TRUE(loop_.run_until([&] { return acked == kWrites && events == kWrites; },
                              std::chrono::seconds(30)));
  EXPECT_EQ(acked_on_disk, kWrites);
  EXPECT_TRUE(event_was_on_disk);
  EXPECT_EQ(s->records_written(), kWrites);
  EXPECT_LT(s->syncs(), kWrites / 2) << "one fsync covers many writes";
  // With nothing pending, when_durable runs at once.
  bool now = false;
  s->when_durable([&] { now = true; });
  EXPECT_TRUE(now);
  s.reset();
  s = must_open();
  EXPECT_EQ(s->memory().object_count(api::Kind::kPod), static_cast<size_t>(kWrites));
}

}  // namespace
}  // namespace flotilla::storage
