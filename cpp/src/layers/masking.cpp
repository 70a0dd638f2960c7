// The core layers of Keras masks (python/shenjing/layers/_masking.py: a mask is a (steps)
// tensor of 0/1 made by ops; layers that read one take it as a second input).
// Masking: y = x where some feature of the step differs from mask_value, else 0 (Keras's
// inputs * any(inputs != mask_value, axis=-1)); the mask itself is the ops' job.
// GlobalAveragePooling1D, which honours a mask: with a second input m (steps) of 0/1 the
// output is sum_t x[t] m[t] / sum_t m[t] per channel, as Keras computes it (a sequence with
// every step masked gives 0/0 = NaN there too). Without a mask it is the plain global pool.
#include <cstring>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class Masking final : public Layer {
 public:
  explicit Masking(float value) : value_(value) {}
  const char* type() const override { return "Masking"; }

  void build(const Shape& input) override {
    if (input.empty())
      throw ValueError("Layer '" + name_ + "' (Masking) expects input of rank 2 or more, "
                       "received input with shape " + shape_str(input) + ".");
    in_ = out_ = input;
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    apply(x, x, y, n);
  }
  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (dx) apply(x, dy, dx, n);
  }

 private:
  // out = v where the step of x is kept, else 0 (rows of the last axis are the steps).
  void apply(const float* x, const float* v, float* out, int n) const {
    const size_t F = (size_t)in_.back(), rows = (size_t)n * (shape_size(in_) / in_.back());
    for (size_t r = 0; r < rows; ++r) {
      const float* xr = x + r * F;
      bool keep = false;
      for (size_t f = 0; f < F && !keep; ++f) keep = xr[f] != value_;
      if (keep) std::memcpy(out + r * F, v + r * F, F * sizeof(float));
      else std::memset(out + r * F, 0, F * sizeof(float));
    }
  }

  float value_;
};

class GlobalAverage1D final : public Layer {
 public:
  explicit GlobalAverage1D(bool keepdims) {
    PoolOptions o;
    o.rank = 1;
    o.max = false;
    o.global = true;
    o.keepdims = keepdims;
    plain_ = make_pool(o);
  }
  const char* type() const override { return "GlobalAveragePooling1D"; }
  bool multi_input() const override { return true; }
  bool optional_mask() const override { return true; }
  int min_inputs() const override { return 1; }

  void build(const Shape& input) override {
    plain_->set_name(name_);
    plain_->build(input);
    in_ = input;
    out_ = plain_->output_shape();
  }

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.empty() || inputs.size() > 2)
      throw ValueError("Layer '" + name_ + "' (GlobalAveragePooling1D) takes a sequence and "
                       "optionally its mask, received " + std::to_string(inputs.size()) +
                       " inputs.");
    build(inputs[0]);
    if (inputs.size() == 2 && inputs[1] != Shape{inputs[0][0]})
      throw ValueError("Layer '" + name_ + "' (GlobalAveragePooling1D): the mask must have "
                       "shape (None, " + std::to_string(inputs[0][0]) + ") for input of shape " +
                       shape_str(inputs[0]) + ", received " + shape_str(inputs[1]) + ".");
    ins_ = inputs;
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    plain_->forward(x, y, n, ctx);
  }
  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    plain_->backward(x, y, dy, dx, n, ctx);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext& ctx) override {
    if (ins_.size() == 1) return forward(xs[0], y, n, ctx);
    const int T = in_[0], C = in_[1];
    for (int b = 0; b < n; ++b) {
      const float* x = xs[0] + (size_t)b * T * C;
      const float* m = xs[1] + (size_t)b * T;
      float* yb = y + (size_t)b * C;
      float count = 0.0f;
      std::memset(yb, 0, C * sizeof(float));
      for (int t = 0; t < T; ++t) {
        count += m[t];
        for (int c = 0; c < C; ++c) yb[c] += x[(size_t)t * C + c] * m[t];
      }
      for (int c = 0; c < C; ++c) yb[c] /= count;
    }
  }

  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext& ctx) override {
    if (ins_.size() == 1) return backward(xs[0], y, dy, dxs[0], n, ctx);
    const int T = in_[0], C = in_[1];
    if (dxs[1]) std::memset(dxs[1], 0, (size_t)n * T * sizeof(float));
    if (!dxs[0]) return;
    for (int b = 0; b < n; ++b) {
      const float* m = xs[1] + (size_t)b * T;
      float count = 0.0f;
      for (int t = 0; t < T; ++t) count += m[t];
      const float* g = dy + (size_t)b * C;
      float* dx = dxs[0] + (size_t)b * T * C;
      for (int t = 0; t < T; ++t)
        for (int c = 0; c < C; ++c) dx[(size_t)t * C + c] = g[c] * m[t] / count;
    }
  }

 private:
  std::unique_ptr<Layer> plain_;
};

}  // namespace

std::unique_ptr<Layer> make_masking(float mask_value) {
  return std::make_unique<Masking>(mask_value);
}

std::unique_ptr<Layer> make_global_average_1d(bool keepdims) {
  return std::make_unique<GlobalAverage1D>(keepdims);
}

}  // namespace shenjing
