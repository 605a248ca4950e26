#include "ferry/testing/pattern.h"

#include <cstring>

namespace ferry::testing {
namespace {

// Word `i` of the pattern: a multiplicative hash of its index, mixed with the
// seed, so neighbouring words, and the same word under two seeds, differ.
uint64_t Word(uint64_t i, uint64_t seed) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xD1B54A32D192ED03ull);
  x ^= x >> 29;
  return x;
}

}  // namespace

void FillPattern(void* data, uint64_t n, uint64_t seed) {
  if (n == 0) return;
  uint8_t* p = static_cast<uint8_t*>(data);
  const uint64_t words = n / 8;
  for (uint64_t i = 0; i < words; ++i) {
    const uint64_t w = Word(i, seed);
    std::memcpy(p + 8 * i, &w, 8);
  }
  const uint64_t tail = Word(words, seed);
  std::memcpy(p + 8 * words, &tail, n - 8 * words);
}

int64_t FirstMismatch(const void* data, uint64_t n, uint64_t seed) {
  if (n == 0) return -1;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint64_t words = n / 8;
  // One compare per word; bytes are looked at only in the word that differs.
  auto first_in_word = [&](uint64_t i, uint64_t bytes) -> int64_t {
    const uint64_t w = Word(i, seed);
    if (std::memcmp(p + 8 * i, &w, bytes) == 0) return -1;
    for (uint64_t b = 0; b < bytes; ++b) {
      if (p[8 * i + b] != reinterpret_cast<const uint8_t*>(&w)[b])
        return static_cast<int64_t>(8 * i + b);
    }
    return -1;
  };
  for (uint64_t i = 0; i < words; ++i) {
    const int64_t at = first_in_word(i, 8);
    if (at >= 0) return at;
  }
  return first_in_word(words, n - 8 * words);
}

std::vector<uint8_t> Pattern(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  FillPattern(v.data(), n, seed);
  return v;
}

}  // namespace ferry::testing
