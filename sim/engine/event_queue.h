// The simulator's pending-event queue: a priority queue of small fixed-size
// entries ordered by (time, key). The simulator packs an insertion sequence
// number into the high bits of the key, so ties at one instant pop in FIFO
// order, and the index of the event's payload in a side slab into the low bits.
// Implementations are named by mechanism; a calendar or ladder queue can be
// added behind the same interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace flotilla::sim {

// 16 bytes: four entries fill one 64-byte cache line.
struct QueueEntry {
  int64_t time;  // nanoseconds on the world clock
  uint64_t key;  // tie-breaker; unique among pending entries
  friend bool operator==(const QueueEntry&, const QueueEntry&) = default;
};

// Strict weak order of the queue: earlier time first, then smaller key.
// Written as one signed 128-bit comparison (time in the high half) so it
// compiles to cmp + sbb + setl, without branches.
inline bool entry_before(const QueueEntry& a, const QueueEntry& b) {
  __extension__ typedef __int128 I128;
  I128 ka = (I128(a.time) << 64) | I128(a.key);
  I128 kb = (I128(b.time) << 64) | I128(b.key);
  return ka < kb;
}

class EventQueue {
 public:
  virtual ~EventQueue() = default;
  virtual void push(QueueEntry e) = 0;
  // The least entry. Requires !empty().
  virtual const QueueEntry& top() const = 0;
  // Removes the least entry. Requires !empty().
  virtual void pop() = 0;
  // Equivalent to pop() then push(e), usually cheaper. Requires !empty().
  virtual void replace_top(QueueEntry e) = 0;
  virtual size_t size() const = 0;
  bool empty() const { return size() == 0; }
  virtual void clear() = 0;
  virtual void reserve(size_t n) = 0;
  // Removes every entry for which `drop` is true; O(n). Used to purge cancelled
  // events in bulk.
  virtual void remove_if(const std::function<bool(const QueueEntry&)>& drop) = 0;
  // Heap bytes the queue holds (its capacity, not its size).
  virtual size_t memory_bytes() const = 0;
  virtual std::string_view name() const = 0;
};

// A d-ary implicit min-heap in one contiguous buffer. The buffer is aligned so
// that each group of siblings starts on a 64-byte boundary: with d = 4 a node's
// children share one cache line. The slots after the last entry hold
// sentinels (the greatest possible entry), so every sibling group can be
// scanned whole with branch-free selects. pop() uses the bottom-up ("hole to
// leaf, then sift up") variant, which saves about half the comparisons.
template <int D>
class DaryHeapQueue final : public EventQueue {
  static_assert(D == 2 || D == 4 || D == 8, "arity must be 2, 4 or 8");

 public:
  DaryHeapQueue() = default;
  ~DaryHeapQueue() override { std::free(base_); }
  DaryHeapQueue(const DaryHeapQueue&) = delete;
  DaryHeapQueue& operator=(const DaryHeapQueue&) = delete;

  void push(QueueEntry e) override {
    if (size_ == capacity_) grow(capacity_ == 0 ? 64 : capacity_ * 2);
    sift_up(size_++, e);
  }
  const QueueEntry& top() const override { return data_[0]; }
  void pop() override {
    --size_;
    QueueEntry last = data_[size_];
    data_[size_] = kSentinel;
    if (size_ > 0) sift_down_bottom_up(last);
  }
  void replace_top(QueueEntry e) override { sift_down_bottom_up(e); }
  size_t size() const override { return size_; }
  void clear() override {
    for (size_t i = 0; i < size_; ++i) data_[i] = kSentinel;
    size_ = 0;
  }
  void reserve(size_t n) override {
    if (n > capacity_) grow(n);
  }
  void remove_if(const std::function<bool(const QueueEntry&)>& drop) override {
    size_t kept = 0;
    for (size_t i = 0; i < size_; ++i) {
      if (!drop(data_[i])) data_[kept++] = data_[i];
    }
    for (size_t i = kept; i < size_; ++i) data_[i] = kSentinel;
    size_ = kept;
    heapify();
  }
  size_t memory_bytes() const override {
    return capacity_ == 0 ? 0 : (capacity_ + kPad + D) * sizeof(QueueEntry);
  }
  // Replaces the contents with [first, first + count) in O(count).
  void assign(const QueueEntry* first, size_t count) {
    clear();
    reserve(count);
    for (size_t i = 0; i < count; ++i) data_[i] = first[i];
    size_ = count;
    heapify();
  }
  // The entries in heap (not sorted) order.
  const QueueEntry* entries() const { return data_; }
  std::string_view name() const override {
    return D == 2 ? "binary_heap" : D == 4 ? "quaternary_heap" : "octonary_heap";
  }

 private:
  // data_[1] (the first child group) sits on a kAlign boundary, so every
  // sibling group is aligned to its own size (or to a cache line if smaller).
  static constexpr size_t kAlign = D * sizeof(QueueEntry) > 64 ? D * sizeof(QueueEntry) : 64;
  static constexpr size_t kPad = kAlign / sizeof(QueueEntry) - 1;
  static constexpr QueueEntry kSentinel{INT64_MAX, UINT64_MAX};
  static constexpr size_t kPrefetchFrom = 8192;  // entries: 128 KiB

  // Branch-free: the comparison's result is used arithmetically, so the
  // compiler cannot turn the select into a (badly predicted) jump.
  static size_t lesser(const QueueEntry* d, size_t a, size_t b) {
    return a + ((b - a) & (size_t{0} - size_t{entry_before(d[b], d[a])}));
  }
  // Index of the least of the D children starting at `first` (ties: lowest),
  // as a tournament: log2(D) levels of independent comparisons.
  static size_t least_child(const QueueEntry* d, size_t first) {
    if constexpr (D == 2) {
      return first + size_t{entry_before(d[first + 1], d[first])};
    } else if constexpr (D == 4) {
      size_t x = first + size_t{entry_before(d[first + 1], d[first])};
      size_t y = first + 2 + size_t{entry_before(d[first + 3], d[first + 2])};
      return lesser(d, x, y);
    } else {
      size_t a = first + size_t{entry_before(d[first + 1], d[first])};
      size_t b = first + 2 + size_t{entry_before(d[first + 3], d[first + 2])};
      size_t c = first + 4 + size_t{entry_before(d[first + 5], d[first + 4])};
      size_t e = first + 6 + size_t{entry_before(d[first + 7], d[first + 6])};
      return lesser(d, lesser(d, a, b), lesser(d, c, e));
    }
  }
  size_t least_child(size_t first) const { return least_child(data_, first); }

  void grow(size_t capacity) {
    // D trailing sentinel slots keep the last sibling group complete.
    size_t bytes = (capacity + kPad + D) * sizeof(QueueEntry);
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    auto* base = static_cast<QueueEntry*>(std::aligned_alloc(kAlign, bytes));
    if (base == nullptr) std::abort();
    QueueEntry* data = base + kPad;
    for (size_t i = 0; i < size_; ++i) data[i] = data_[i];
    for (size_t i = size_; i < capacity + D; ++i) data[i] = kSentinel;
    std::free(base_);
    base_ = base;
    data_ = data;
    capacity_ = capacity;
  }

  void sift_up(size_t hole, QueueEntry e) {
    while (hole > 0) {
      size_t parent = (hole - 1) / D;
      if (!entry_before(e, data_[parent])) break;
      data_[hole] = data_[parent];
      hole = parent;
    }
    data_[hole] = e;
  }

  // Moves the hole at the root down along the path of least children to a leaf,
  // then places `e` there and sifts it up. Leaves size_ unchanged; requires
  // the slot at size_ to hold a sentinel.
  void sift_down_bottom_up(QueueEntry e) {
    // Prefetching only pays once the heap outgrows the L1/L2 caches.
    size_t hole = size_ >= kPrefetchFrom ? descend<D >= 4>() : descend<false>();
    sift_up(hole, e);
  }

  // Moves the hole at the root to a leaf along the least children; returns
  // the leaf. Works on byte offsets so that every step is a handful of
  // loads, compares and adds.
  template <bool kPrefetch>
  size_t descend() {
    char* const base = reinterpret_cast<char*>(data_);
    const size_t end = size_ * sizeof(QueueEntry);
    auto at = [base](size_t off) -> QueueEntry& {
      return *reinterpret_cast<QueueEntry*>(base + off);
    };
    constexpr size_t kE = sizeof(QueueEntry);
    size_t hole = 0;
    size_t first = kE;  // offset of the hole's first child
    while (first < end) {
      if constexpr (kPrefetch) {
        // The grandchildren groups: fetch them while this level compares.
        size_t grand = first * D + kE;
        for (size_t k = 0; k < size_t{D} * D * kE; k += 64) __builtin_prefetch(base + grand + k);
      }
      size_t best;
      if constexpr (D == 2) {
        best = first + kE * size_t{entry_before(at(first + kE), at(first))};
      } else {
        size_t x = first + kE * size_t{entry_before(at(first + kE), at(first))};
        size_t y =
            first + 2 * kE + kE * size_t{entry_before(at(first + 3 * kE), at(first + 2 * kE))};
        if constexpr (D == 8) {
          size_t u =
              first + 4 * kE + kE * size_t{entry_before(at(first + 5 * kE), at(first + 4 * kE))};
          size_t v =
              first + 6 * kE + kE * size_t{entry_before(at(first + 7 * kE), at(first + 6 * kE))};
          x = x + ((y - x) & (size_t{0} - size_t{entry_before(at(y), at(x))}));
          y = u + ((v - u) & (size_t{0} - size_t{entry_before(at(v), at(u))}));
        }
        best = x + ((y - x) & (size_t{0} - size_t{entry_before(at(y), at(x))}));
      }
      at(hole) = at(best);
      hole = best;
      first = best * D + kE;
    }
    return hole / kE;
  }

  void heapify() {
    if (size_ < 2) return;
    for (size_t i = (size_ - 2) / D + 1; i-- > 0;) {
      QueueEntry e = data_[i];
      size_t hole = i;
      for (;;) {
        size_t first = hole * D + 1;
        if (first >= size_) break;
        size_t best = least_child(first);
        if (!entry_before(data_[best], e)) break;
        data_[hole] = data_[best];
        hole = best;
      }
      data_[hole] = e;
    }
  }

  QueueEntry* base_ = nullptr;
  QueueEntry* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

using BinaryHeapQueue = DaryHeapQueue<2>;
using QuaternaryHeapQueue = DaryHeapQueue<4>;
using OctonaryHeapQueue = DaryHeapQueue<8>;

// A one-rung ladder queue (after Tang, Goh and Thng's ladder queue): a small
// 4-ary heap holds the earliest entries ("bottom"); later entries wait
// unsorted in a rung of equal-width time buckets, and entries beyond the rung
// in an unsorted "top" list. When the bottom empties, the next non-empty
// bucket is heapified into it; when the rung is used up it is rebuilt from the
// top list, with about two entries per bucket and a power-of-two width. Push
// is O(1) (a shift and an append), pop is a pop from a heap of a few dozen
// entries, and each entry is moved O(1) times amortized, so hold time stays
// flat up to millions of pending events where a heap's random root-to-leaf
// path misses the cache at every level. Entries with equal times always share
// a bucket, so (time, key) order is exact. With very skewed times (say one
// entry at kTimeMax among short timers) most entries end up in one bucket and
// the queue degrades gracefully to the 4-ary heap it contains.
class LadderQueue final : public EventQueue {
 public:
  LadderQueue() = default;

  void push(QueueEntry e) override {
    ++size_;
    if (!place_above(e)) {
      bottom_.push(e);
      if (bottom_.size() > bottom_limit_) rebuild();
    } else if (bottom_.empty()) {
      refill();
    }
    if (size_ > grow_limit_) rebuild();
  }
  const QueueEntry& top() const override { return bottom_.top(); }
  void pop() override {
    --size_;
    bottom_.pop();
    if (bottom_.empty() && size_ > 0) refill();
  }
  void replace_top(QueueEntry e) override {
    if (!place_above(e)) {
      bottom_.replace_top(e);
      return;
    }
    bottom_.pop();
    if (bottom_.empty()) refill();
  }
  size_t size() const override { return size_; }
  void clear() override {
    bottom_.clear();
    std::vector<Bucket>().swap(buckets_);
    Bucket().swap(top_);
    reset_rung();
    size_ = 0;
    bottom_limit_ = kMinBottomLimit;
    grow_limit_ = kMinBottomLimit;
  }
  void reserve(size_t n) override { bottom_.reserve(n < kMinBottomLimit ? n : kMinBottomLimit); }
  void remove_if(const std::function<bool(const QueueEntry&)>& drop) override {
    bottom_.remove_if(drop);
    size_t n = bottom_.size();
    for (size_t i = cur_; i < buckets_.size(); ++i) {
      std::erase_if(buckets_[i], drop);
      n += buckets_[i].size();
    }
    std::erase_if(top_, drop);
    size_ = n + top_.size();
    if (bottom_.empty() && size_ > 0) refill();
  }
  size_t memory_bytes() const override {
    size_t bytes = bottom_.memory_bytes() + buckets_.capacity() * sizeof(Bucket) +
                   top_.capacity() * sizeof(QueueEntry);
    for (const Bucket& b : buckets_) bytes += b.capacity() * sizeof(QueueEntry);
    return bytes;
  }
  std::string_view name() const override { return "ladder"; }

 private:
  using Bucket = std::vector<QueueEntry>;
  static constexpr size_t kMinBottomLimit = 4096;

  // Appends `e` to its bucket or to the top list and returns true, or returns
  // false when `e` belongs in the bottom heap (before the next bucket).
  bool place_above(const QueueEntry& e) {
    if (e.time < rung_start_) return false;
    uint64_t index = (uint64_t(e.time) - uint64_t(rung_start_)) >> shift_;
    if (index < cur_) return false;
    if (index < buckets_.size()) {
      buckets_[index].push_back(e);
    } else {
      top_.push_back(e);
    }
    return true;
  }

  void reset_rung() {
    rung_start_ = INT64_MAX;
    shift_ = 0;
    cur_ = 0;
  }

  // Requires an empty bottom and size_ > 0: moves the next bucket into it.
  void refill() {
    while (cur_ < buckets_.size() && buckets_[cur_].empty()) ++cur_;
    if (cur_ == buckets_.size()) {
      rebuild();
      return;
    }
    Bucket& b = buckets_[cur_++];
    bottom_.assign(b.data(), b.size());
    Bucket().swap(b);  // bucket sizes vary along the rung: keep no capacity
  }

  // Gathers every entry and spreads them over a fresh rung.
  void rebuild() {
    Bucket all;
    all.swap(top_);
    all.reserve(size_);
    all.insert(all.end(), bottom_.entries(), bottom_.entries() + bottom_.size());
    bottom_.clear();
    for (size_t i = cur_; i < buckets_.size(); ++i) {
      all.insert(all.end(), buckets_[i].begin(), buckets_[i].end());
    }
    std::vector<Bucket>().swap(buckets_);
    reset_rung();
    grow_limit_ = 2 * all.size() > kMinBottomLimit ? 2 * all.size() : kMinBottomLimit;
    if (all.empty()) return;
    int64_t lo = all[0].time;
    int64_t hi = all[0].time;
    for (const QueueEntry& e : all) {
      lo = e.time < lo ? e.time : lo;
      hi = e.time > hi ? e.time : hi;
    }
    size_t count = 2;
    while (count * 4 <= all.size()) count *= 2;  // about two entries per bucket
    const uint64_t span = uint64_t(hi) - uint64_t(lo);
    int shift = 0;
    while ((span >> shift) >= count) ++shift;
    rung_start_ = lo;
    shift_ = shift;
    buckets_.resize(count);
    std::vector<uint32_t> sizes(count, 0);
    for (const QueueEntry& e : all) ++sizes[(uint64_t(e.time) - uint64_t(lo)) >> shift];
    for (size_t i = 0; i < count; ++i) buckets_[i].reserve(sizes[i]);
    for (const QueueEntry& e : all)
      buckets_[(uint64_t(e.time) - uint64_t(lo)) >> shift].push_back(e);
    Bucket().swap(all);
    refill();
    size_t b = 2 * bottom_.size();
    bottom_limit_ = b > kMinBottomLimit ? b : kMinBottomLimit;
  }

  QuaternaryHeapQueue bottom_;
  std::vector<Bucket> buckets_;
  Bucket top_;
  int64_t rung_start_ = INT64_MAX;
  int shift_ = 0;
  size_t cur_ = 0;  // buckets before cur_ have been moved to the bottom
  size_t size_ = 0;
  size_t bottom_limit_ = kMinBottomLimit;
  size_t grow_limit_ = kMinBottomLimit;
};

enum class QueueKind { kBinaryHeap, kQuaternaryHeap, kOctonaryHeap, kLadder };

std::unique_ptr<EventQueue> make_event_queue(QueueKind kind);

}  // namespace flotilla::sim
