// A hash index from keys to values stored elsewhere: open addressing with
// linear probing in one array of (hash, value) pairs, so a lookup reads one
// cache line of the array and then only the value whose full 64-bit hash
// matches, where a node-based std::unordered_map reads its bucket, the node
// before, and the node. The store keys each kind's objects by (namespace,
// name) with one (values: iterators into its ordered map); the node
// lifecycle controller its nodes by name.
//
// Removal shifts later entries of the run back (no tombstones), so lookups
// stay short however many removals there were. The table doubles at half
// full. `Key` is what find() takes; `KeyOf(value)` gives a value's key, and
// keys compare with ==.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flotilla {

template <typename Value, typename KeyOf>
class FlatIndex {
 public:
  explicit FlatIndex(KeyOf key_of = KeyOf()) : key_of_(key_of) {}

  // The value with key `k` (whose hash is `h`), or null.
  template <typename Key>
  const Value* find(const Key& k, uint64_t h) const {
    if (slots_.empty()) return nullptr;
    h = stored(h);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return nullptr;
      if (s.hash == h && key_of_(s.value) == k) return &s.value;
    }
  }

  // Adds `v` (hash `h`); its key must not be in the index.
  void insert(uint64_t h, Value v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    place(stored(h), std::move(v));
    ++size_;
  }

  // Removes the value with key `k` (hash `h`); false when absent.
  template <typename Key>
  bool erase(const Key& k, uint64_t h) {
    if (slots_.empty()) return false;
    h = stored(h);
    size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.hash == 0) return false;
      if (s.hash == h && key_of_(s.value) == k) break;
    }
    // Backward shift: move each later entry of the run into the hole when
    // its home slot does not lie (cyclically) between the hole and it.
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; slots_[j].hash != 0; j = (j + 1) & mask_) {
      size_t home = slots_[j].hash & mask_;
      bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (stays) continue;
      slots_[hole] = std::move(slots_[j]);
      hole = j;
    }
    slots_[hole] = Slot{};
    --size_;
    return true;
  }

  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }
  void clear() {
    slots_.clear();
    mask_ = 0;
    size_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash = 0;  // 0: empty
    Value value{};
  };
  // 0 marks an empty slot, so a hash of 0 is stored as 1.
  static uint64_t stored(uint64_t h) { return h == 0 ? 1 : h; }

  void place(uint64_t h, Value v) {
    size_t i = h & mask_;
    while (slots_[i].hash != 0) i = (i + 1) & mask_;
    slots_[i] = Slot{h, std::move(v)};
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.resize(old.empty() ? 16 : old.size() * 2);
    mask_ = slots_.size() - 1;
    for (Slot& s : old) {
      if (s.hash != 0) place(s.hash, std::move(s.value));
    }
  }

  KeyOf key_of_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace flotilla
