// Dropout: during training zeroes each input with probability `rate` and scales the rest by
// 1 / (1 - rate) (inverted dropout, as Keras); at inference the input passes through.
#include <cstdint>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

// splitmix64: small, fast, and reproducible from the seed on every platform.
inline uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class Dropout final : public Layer {
 public:
  Dropout(float rate, unsigned long long seed) : rate_(rate), state_(seed) {
    if (!(rate >= 0.0f && rate < 1.0f))
      throw ValueError("Dropout: rate must be in [0, 1), received " + std::to_string(rate) + ".");
  }
  const char* type() const override { return "Dropout"; }
  void build(const Shape& input) override { in_ = out_ = input; }
  bool passthrough(const RunContext& ctx) const override { return !ctx.training || rate_ == 0; }
  uint64_t* random_state() override { return &state_; }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const size_t len = (size_t)n * shape_size(in_);
    std::vector<float>& mask = ctx.saved->a;
    if (mask.size() < len) mask.resize(len);
    const float scale = 1.0f / (1.0f - rate_);
    // Keep with probability 1 - rate: compare 24 random bits at a time against the threshold.
    const uint32_t threshold = (uint32_t)(rate_ * 16777216.0f);
    size_t i = 0;
    while (i < len) {
      uint64_t r = splitmix64(state_);
      for (int k = 0; k < 2 && i < len; ++k, ++i) {
        const uint32_t bits = (uint32_t)(r >> (32 * k)) & 0xFFFFFFu;
        mask[i] = bits >= threshold ? scale : 0.0f;
        y[i] = x[i] * mask[i];
      }
    }
  }
  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t len = (size_t)n * shape_size(in_);
    const float* mask = ctx.saved->a.data();
    for (size_t i = 0; i < len; ++i) dx[i] = dy[i] * mask[i];
  }

 private:
  float rate_;
  uint64_t state_;
};

}  // namespace

std::unique_ptr<Layer> make_dropout(float rate, unsigned long long seed) {
  return std::make_unique<Dropout>(rate, seed);
}

}  // namespace shenjing
