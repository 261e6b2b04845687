// FlatIndex: through random inserts and removals (removals shift runs back,
// including runs that wrap around the table's end) it finds exactly what a
// std::unordered_map reference holds.
#include "core/util/flat_index.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace flotilla {
namespace {

struct Item {
  std::string key;
  int value = 0;
};
struct KeyOfItem {
  const std::string& operator()(const Item* it) const { return it->key; }
};

// Few distinct hashes, so runs are long, collide and wrap.
uint64_t weak_hash(const std::string& k) { return std::hash<std::string>()(k) % 37; }

TEST(FlatIndexTest, FindsWhatAReferenceMapHoldsThroughChurn) {
  for (uint64_t (*hash)(const std::string&) :
       {weak_hash, +[](const std::string& k) -> uint64_t { return std::hash<std::string>()(k); }}) {
    std::mt19937 rng(7);
    std::vector<std::unique_ptr<Item>> items;
    for (int i = 0; i < 400; ++i) items.push_back(std::make_unique<Item>(Item{"k" + std::to_string(i), i}));
    FlatIndex<const Item*, KeyOfItem> index;
    std::unordered_map<std::string, const Item*> ref;
    for (int step = 0; step < 20000; ++step) {
      const Item* it = items[rng() % items.size()].get();
      uint64_t h = hash(it->key);
      if (ref.count(it->key) == 0) {
        index.insert(h, it);
        ref[it->key] = it;
      } else if (rng() % 3 != 0) {
        ASSERT_TRUE(index.erase(it->key, h));
        ref.erase(it->key);
      }
      ASSERT_EQ(index.size(), ref.size());
      if (step % 97 == 0) {
        for (const auto& item : items) {
          const Item* const* found = index.find(item->key, hash(item->key));
          auto want = ref.find(item->key);
          if (want == ref.end()) {
            ASSERT_EQ(found, nullptr) << item->key << " at step " << step;
          } else {
            ASSERT_NE(found, nullptr) << item->key << " at step " << step;
            ASSERT_EQ(*found, want->second);
          }
        }
      }
    }
    EXPECT_FALSE(index.erase(std::string("absent"), hash("absent")));
    EXPECT_LE(index.size() * 2, index.capacity());
  }
}

TEST(FlatIndexTest, AHashOfZeroIsAKeyLikeAnyOther) {
  Item a{"a", 1}, b{"b", 2};
  FlatIndex<const Item*, KeyOfItem> index;
  EXPECT_EQ(index.find(std::string("a"), 0), nullptr);  // empty table
  index.insert(0, &a);
  index.insert(0, &b);
  ASSERT_NE(index.find(std::string("a"), 0), nullptr);
  EXPECT_EQ(*index.find(std::string("b"), 0), &b);
  EXPECT_TRUE(index.erase(std::string("a"), 0));
  EXPECT_EQ(index.find(std::string("a"), 0), nullptr);
  EXPECT_EQ(*index.find(std::string("b"), 0), &b);
}

}  // namespace
}  // namespace flotilla
