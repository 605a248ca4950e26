// Tiny result checks shared by the C++ examples: a failed check prints what
// differed and makes main return non-zero (ctest runs every example).
#pragma once

#include <cmath>
#include <cstdio>
#include <random>

#include "ferry/ferry.h"

namespace example {

inline int failures = 0;

inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "CHECK FAILED: %s\n", what);
    ++failures;
  }
}

inline bool Close(double a, double b) {
  return std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b));
}

// torch.randn's stand-in: a rows x cols float32 tensor of N(0, 1) samples.
inline ferry::Tensor RandomTensor(int64_t rows, int64_t cols, unsigned seed) {
  ferry::Tensor t = ferry::Tensor::Zeros(ferry::DType::kFloat32, {rows, cols});
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = normal(gen);
  return t;
}

inline double Sum(const ferry::Tensor& t) {
  double s = 0;
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) s += p[i];
  return s;
}

}  // namespace example
