#include "ferry/object/copy_bytes.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace ferry::object {
namespace {

TEST(CopyBytesTest, MatchesMemcpyForSizesAndAlignments) {
  const size_t kMax = 3 * kStreamingCopyThreshold + 1000;
  std::vector<uint8_t> src(kMax + 256), dst(kMax + 256), want(kMax + 256);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 2654435761u >> 13);
  const size_t sizes[] = {0,
                          1,
                          31,
                          32,
                          127,
                          128,
                          129,
                          4096,
                          kStreamingCopyThreshold - 1,
                          kStreamingCopyThreshold,
                          kStreamingCopyThreshold + 77,
                          kMax};
  for (size_t n : sizes) {
    for (size_t so : {0, 1, 16, 64}) {
      for (size_t d : {0, 3, 32, 64, 100}) {
        std::memset(dst.data(), 0xee, dst.size());
        std::memset(want.data(), 0xee, want.size());
        CopyBytes(dst.data() + d, src.data() + so, n);
        std::memcpy(want.data() + d, src.data() + so, n);
        ASSERT_EQ(dst, want) << "n=" << n << " src+" << so << " dst+" << d;
      }
    }
  }
}

}  // namespace
}  // namespace ferry::object
