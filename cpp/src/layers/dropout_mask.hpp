// The random stream behind dropout masks, shared by Dropout and the recurrent layers' dropout
// (recurrent_dropout.cpp), so that both draw the same way: a splitmix64 stream (small, fast,
// reproducible from the seed on every platform), one uint64_t of state that a saved model
// stores (Layer::random_state) to resume the stream.
#pragma once
#include <cstddef>
#include <cstdint>

namespace shenjing {

inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// mask[0, len) = 1 / (1 - rate) with probability 1 - rate, else 0 (inverted dropout, as
// Keras). Each value compares 24 random bits against rate * 2^24: two values per draw, the
// low 32 bits first; a call starts on a fresh draw. rate must be in [0, 1).
inline void fill_dropout_mask(uint64_t& state, float rate, float* mask, std::size_t len) {
  const float scale = 1.0f / (1.0f - rate);
  const uint32_t threshold = (uint32_t)(rate * 16777216.0f);
  std::size_t i = 0;
  while (i < len) {
    const uint64_t r = splitmix64(state);
    for (int k = 0; k < 2 && i < len; ++k, ++i) {
      const uint32_t bits = (uint32_t)(r >> (32 * k)) & 0xFFFFFFu;
      mask[i] = bits >= threshold ? scale : 0.0f;
    }
  }
}

}  // namespace shenjing
