#include "ferry/testing/pattern.h"

#include <gtest/gtest.h>

#include <cstring>

namespace ferry::testing {
namespace {

TEST(PatternTest, FilledBytesMatchAtEverySize) {
  for (uint64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 4096, (1 << 20) + 3}) {
    std::vector<uint8_t> buf(n + 1, 0xee);
    FillPattern(buf.data(), n, 5);
    EXPECT_EQ(FirstMismatch(buf.data(), n, 5), -1) << n;
    EXPECT_EQ(buf[n], 0xee) << "wrote past " << n << " bytes";
  }
  FillPattern(nullptr, 0, 1);
  EXPECT_EQ(FirstMismatch(nullptr, 0, 1), -1);
}

TEST(PatternTest, FirstMismatchNamesTheFirstWrongByte) {
  constexpr uint64_t kN = 1000;
  for (uint64_t at :
       {uint64_t{0}, uint64_t{7}, uint64_t{8}, uint64_t{500}, uint64_t{995}, kN - 1}) {
    std::vector<uint8_t> buf = Pattern(kN, 3);
    buf[at] ^= 0x10;
    if (at + 3 < kN) buf[at + 3] ^= 0x01;  // a later difference does not hide the first
    EXPECT_EQ(FirstMismatch(buf.data(), kN, 3), static_cast<int64_t>(at));
  }
}

TEST(PatternTest, SeedsAndPositionsDiffer) {
  const std::vector<uint8_t> a = Pattern(64, 1), b = Pattern(64, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(FirstMismatch(b.data(), b.size(), 1), 0)
      << "another seed differs from the first byte on";
  // No two 8-byte words of one pattern are equal (a shifted copy is caught).
  for (size_t i = 0; i + 8 <= a.size(); i += 8) {
    for (size_t j = i + 8; j + 8 <= a.size(); j += 8) {
      EXPECT_NE(std::memcmp(&a[i], &a[j], 8), 0) << i << " " << j;
    }
  }
}

TEST(PatternTest, PrefixOfThePatternIsThePatternOfThePrefix) {
  const std::vector<uint8_t> whole = Pattern(4096 + 5, 9);
  for (uint64_t k : {0, 1, 8, 13, 4096, 4099}) {
    EXPECT_EQ(std::vector<uint8_t>(whole.begin(), whole.begin() + k), Pattern(k, 9)) << k;
    EXPECT_EQ(FirstMismatch(whole.data(), k, 9), -1) << k;
  }
}

}  // namespace
}  // namespace ferry::testing
