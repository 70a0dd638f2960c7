// Dropout: during training zeroes each input with probability `rate` and scales the rest by
// 1 / (1 - rate) (inverted dropout, as Keras); at inference the input passes through.
#include <cstdint>
#include <vector>

#include "layers/dropout_mask.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

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
    fill_dropout_mask(state_, rate_, mask.data(), len);
    for (size_t i = 0; i < len; ++i) y[i] = x[i] * mask[i];
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
