#include "ferry/cluster/kv_store.h"

#include <gtest/gtest.h>

namespace ferry::cluster {
namespace {

TEST(KvStoreTest, PutGetOverwriteDelete) {
  KvStore kv;
  EXPECT_TRUE(kv.Put("a/1", "x", false));
  EXPECT_FALSE(kv.Put("a/1", "y", false));
  EXPECT_EQ(*kv.Get("a/1"), "x");
  EXPECT_TRUE(kv.Put("a/1", "y", true));
  EXPECT_EQ(*kv.Get("a/1"), "y");
  kv.Put("a/2", "z", false);
  kv.Put("b/1", "w", false);
  EXPECT_EQ(kv.Delete("a/", true), 2u);
  EXPECT_FALSE(kv.Get("a/2").has_value());
  EXPECT_TRUE(kv.Get("b/1").has_value());
}

TEST(KvStoreTest, WaiterFiresOnPutOrCancelExactlyOnce) {
  KvStore kv;
  std::vector<std::optional<std::string>> seen;
  uint64_t t1 = kv.GetOrWait("k", [&](std::optional<std::string> v) { seen.push_back(v); });
  uint64_t t2 = kv.GetOrWait("other", [&](std::optional<std::string> v) { seen.push_back(v); });
  EXPECT_NE(t1, 0u);
  kv.Put("k", "v", false);
  kv.Cancel(t1);  // already fired: no second call
  kv.Cancel(t2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::optional<std::string>("v"));
  EXPECT_EQ(seen[1], std::nullopt);
  // Present key: answered at once, no token.
  EXPECT_EQ(kv.GetOrWait("k", [&](std::optional<std::string> v) { seen.push_back(v); }), 0u);
  EXPECT_EQ(seen.size(), 3u);
}

}  // namespace
}  // namespace ferry::cluster
