#include "ferry/common/id.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace ferry {
namespace {

TEST(IdTest, RandomIdsAreDistinctAndRoundTrip) {
  std::unordered_set<ObjectId> seen;
  for (int i = 0; i < 1000; ++i) {
    ObjectId id = ObjectId::Random();
    EXPECT_FALSE(id.IsNil());
    EXPECT_TRUE(seen.insert(id).second);
    EXPECT_EQ(ObjectId::FromBinary(id.Binary()).value(), id);
    EXPECT_EQ(ObjectId::FromHex(id.Hex()).value(), id);
  }
}

TEST(IdTest, RejectsMalformedInput) {
  EXPECT_EQ(ActorId::FromBinary("short").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ActorId::FromHex(std::string(32, 'z')).ok());
  EXPECT_TRUE(ActorId::Nil().IsNil());
}

}  // namespace
}  // namespace ferry
