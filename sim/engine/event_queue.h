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
  std::string_view name() const override {
    return D == 2 ? "binary_heap" : D == 4 ? "quaternary_heap" : "octonary_heap";
  }

 private:
  // data_[1] (the first child group) sits on a kAlign boundary, so every
  // sibling group is aligned to its own size (or to a cache line if smaller).
  static constexpr size_t kAlign = D * sizeof(QueueEntry) > 64 ? D * sizeof(QueueEntry) : 64;
  static constexpr size_t kPad = kAlign / sizeof(QueueEntry) - 1;
  static constexpr QueueEntry kSentinel{INT64_MAX, UINT64_MAX};

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
    size_t hole = 0;
    const size_t n = size_;
    for (;;) {
      size_t first = hole * D + 1;
      if (first >= n) break;
      if constexpr (D >= 4) {
        // The grandchildren groups of this level: fetch while we compare.
        size_t grand = first * D + 1;
        if (grand < n) {
          for (size_t k = 0; k < size_t{D} * D; k += 64 / sizeof(QueueEntry)) {
            __builtin_prefetch(&data_[grand + k]);
          }
        }
      }
      size_t best = least_child(first);
      data_[hole] = data_[best];
      hole = best;
    }
    sift_up(hole, e);
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

enum class QueueKind { kBinaryHeap, kQuaternaryHeap };

std::unique_ptr<EventQueue> make_event_queue(QueueKind kind);

}  // namespace flotilla::sim
