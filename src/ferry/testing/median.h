// Median of a benchmark's samples (times, rates). For an even count it is
// the upper of the two middle samples: always a figure that was measured,
// never an average of two.
//
// THREAD CONTRACT: a pure function of its argument; thread-safe.
//
//   std::vector<double> seconds;
//   for (int i = 0; i < iterations; ++i) seconds.push_back(TimeOnePull());
//   std::printf("%.2f GB/s\n", bytes / Median(seconds) / 1e9);
#pragma once

#include <algorithm>
#include <vector>

#include "ferry/common/logging.h"

namespace ferry::testing {

// `samples` must not be empty.
inline double Median(std::vector<double> samples) {
  FERRY_CHECK(!samples.empty()) << "Median of no samples";
  const auto middle = samples.begin() + static_cast<std::ptrdiff_t>(samples.size() / 2);
  std::nth_element(samples.begin(), middle, samples.end());
  return *middle;
}

}  // namespace ferry::testing
