// RepeatVector(n): x (batch, F) -> y (batch, n, F), each sample's vector repeated n times;
// backward sums the n copies of dy (in order: deterministic). Parallel over samples.
#include <climits>
#include <cstring>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class RepeatVector final : public Layer {
 public:
  explicit RepeatVector(int n) : n_(n) {
    if (n <= 0)
      throw ValueError("RepeatVector: n must be a positive integer, received " +
                       std::to_string(n) + ".");
  }
  const char* type() const override { return "RepeatVector"; }

  void build(const Shape& input) override {
    if (input.size() != 1)
      throw ValueError("Layer '" + name_ + "' (RepeatVector) expects input of rank 2 "
                       "(batch, features), received input with shape " + shape_str(input) +
                       ".");
    // The model caps the output's size per sample; n * F must at least fit 64 bits, and does.
    F_ = input[0];
    in_ = input;
    out_ = {n_, F_};
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t F = F_, out = (size_t)n_ * F;
#pragma omp parallel for schedule(static) if ((long)n * (long)out > 65536)
    for (long b = 0; b < n; ++b)
      for (int k = 0; k < n_; ++k) std::memcpy(y + b * out + k * F, x + b * F, F * sizeof(float));
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t F = F_, out = (size_t)n_ * F;
#pragma omp parallel for schedule(static) if ((long)n * (long)out > 65536)
    for (long b = 0; b < n; ++b) {
      float* d = dx + b * F;
      const float* g = dy + b * out;
      std::memcpy(d, g, F * sizeof(float));
      for (int k = 1; k < n_; ++k)
        for (size_t f = 0; f < F; ++f) d[f] += g[k * F + f];
    }
  }

 private:
  int n_;
  int F_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_repeat_vector(int n) { return std::make_unique<RepeatVector>(n); }

}  // namespace shenjing
