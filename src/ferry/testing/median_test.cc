#include "ferry/testing/median.h"

#include <gtest/gtest.h>

namespace ferry::testing {
namespace {

TEST(MedianTest, MiddleSampleOfAnUnsortedList) {
  EXPECT_EQ(Median({4.0}), 4.0);
  EXPECT_EQ(Median({3.0, 1.0, 2.0}), 2.0);
  EXPECT_EQ(Median({5.0, 9.0, 1.0, 7.0, 3.0}), 5.0);
}

TEST(MedianTest, UpperMiddleOfAnEvenCount) {
  EXPECT_EQ(Median({2.0, 1.0}), 2.0);
  EXPECT_EQ(Median({10.0, 40.0, 20.0, 30.0}), 30.0)
      << "a measured sample, not the mean of 20 and 30";
}

}  // namespace
}  // namespace ferry::testing
