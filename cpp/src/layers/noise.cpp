// The training-only noise layers: GaussianNoise, GaussianDropout and SpatialDropout1D/2D/3D.
// Each draws from its own splitmix64 stream (dropout_mask.hpp), seeded from the config and
// saved with the model (random_state), one value after the other on one thread: the same
// seed gives the same noise for any thread count. At inference they pass the input through.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernels.hpp"
#include "layers/dropout_mask.hpp"
#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

// out[0, len) = N(0, 1) by Marsaglia's polar method: points (u, v) uniform in the unit disc
// (two 24-bit uniforms from one draw, rejected outside it), then u * f and v * f with
// f = sqrt(-2 log(s) / s), s = u^2 + v^2. The accepted points are gathered a chunk at a time
// so that the logs run on the kernels' vector log (within 2 ulp); the draws stay in order, so
// the same seed gives the same values on every machine and thread count.
void fill_normal(uint64_t& state, float* out, size_t len) {
  constexpr size_t kPairs = 1024;
  float u[kPairs], v[kPairs], s[kPairs], l[kPairs];
  const float scale = 2.0f / 16777216.0f;
  const auto& K = kernels::table();
  size_t i = 0;
  while (i < len) {
    const size_t pairs = std::min(kPairs, (len - i + 1) / 2);
    for (size_t k = 0; k < pairs;) {
      const uint64_t r = splitmix64(state);
      const float a = ((float)(r >> 40) + 0.5f) * scale - 1.0f;
      const float b = ((float)((r >> 16) & 0xFFFFFFu) + 0.5f) * scale - 1.0f;
      const float q = a * a + b * b;
      if (q >= 1.0f || q == 0.0f) continue;
      u[k] = a;
      v[k] = b;
      s[k] = q;
      ++k;
    }
    K.vlog(s, l, pairs);
    for (size_t k = 0; k < pairs; ++k) {
      const float f = std::sqrt(-2.0f * l[k] / s[k]);
      out[i + 2 * k] = u[k] * f;
      if (i + 2 * k + 1 < len) out[i + 2 * k + 1] = v[k] * f;
    }
    i += 2 * pairs;
  }
}

class Noise final : public Layer {
 public:
  Noise(const NoiseOptions& o, const char* type) : o_(o), type_(type), state_(o.seed) {}
  const char* type() const override { return type_; }
  void build(const Shape& input) override {
    if (o_.kind == NoiseKind::SpatialDropout && (int)input.size() != o_.spatial_rank + 1)
      throw ValueError("Layer '" + name_ + "' (" + type_ + ") expects an input of rank " +
                       std::to_string(o_.spatial_rank + 2) + " (batch, " +
                       std::to_string(o_.spatial_rank) + " spatial axes and channels), "
                       "received shape " + shape_str(input) + ".");
    in_ = out_ = input;
  }
  bool passthrough(const RunContext& ctx) const override {
    return !ctx.training || o_.amount == 0.0f;
  }
  uint64_t* random_state() override { return &state_; }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const size_t per = shape_size(in_), len = (size_t)n * per;
    std::vector<float>& m = ctx.saved->a;
    switch (o_.kind) {
      case NoiseKind::GaussianNoise:  // y = x + stddev * N(0, 1); nothing kept for backward
        if (m.size() < len) m.resize(len);
        fill_normal(state_, m.data(), len);
        for (size_t i = 0; i < len; ++i) y[i] = x[i] + o_.amount * m[i];
        break;
      case NoiseKind::GaussianDropout: {  // y = x * N(1, rate / (1 - rate))
        if (m.size() < len) m.resize(len);
        fill_normal(state_, m.data(), len);
        const float sd = (float)std::sqrt((double)o_.amount / (1.0 - o_.amount));
        for (size_t i = 0; i < len; ++i) {
          m[i] = 1.0f + sd * m[i];
          y[i] = x[i] * m[i];
        }
        break;
      }
      case NoiseKind::SpatialDropout: {  // one inverted-dropout value per (sample, channel)
        const size_t c = channels(), cells = per / c;
        if (m.size() < (size_t)n * c) m.resize((size_t)n * c);
        fill_dropout_mask(state_, o_.amount, m.data(), (size_t)n * c);
        apply_spatial(x, y, m.data(), n, c, cells);
        break;
      }
    }
  }
  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t per = shape_size(in_), len = (size_t)n * per;
    const float* m = ctx.saved->a.data();
    switch (o_.kind) {
      case NoiseKind::GaussianNoise:
        for (size_t i = 0; i < len; ++i) dx[i] = dy[i];
        break;
      case NoiseKind::GaussianDropout:
        for (size_t i = 0; i < len; ++i) dx[i] = dy[i] * m[i];
        break;
      case NoiseKind::SpatialDropout: {
        const size_t c = channels();
        apply_spatial(dy, dx, m, n, c, per / c);
        break;
      }
    }
  }

 private:
  size_t channels() const { return o_.channels_first ? in_.front() : in_.back(); }
  void apply_spatial(const float* x, float* y, const float* m, int n, size_t c,
                     size_t cells) const {
    for (int s = 0; s < n; ++s) {
      const float* ms = m + (size_t)s * c;
      const float* xs = x + (size_t)s * c * cells;
      float* ys = y + (size_t)s * c * cells;
      if (o_.channels_first) {
        for (size_t ch = 0; ch < c; ++ch)
          for (size_t p = 0; p < cells; ++p) ys[ch * cells + p] = xs[ch * cells + p] * ms[ch];
      } else {
        for (size_t p = 0; p < cells; ++p)
          for (size_t ch = 0; ch < c; ++ch) ys[p * c + ch] = xs[p * c + ch] * ms[ch];
      }
    }
  }

  NoiseOptions o_;
  const char* type_;
  uint64_t state_;
};

}  // namespace

std::unique_ptr<Layer> make_noise(const NoiseOptions& o, const char* type) {
  const bool ok = o.kind == NoiseKind::GaussianNoise ? o.amount >= 0.0f && o.amount <= 1.0f
                                                     : o.amount >= 0.0f && o.amount < 1.0f;
  if (!ok)
    throw ValueError(std::string(type) + ": " +
                     (o.kind == NoiseKind::GaussianNoise ? "stddev must be in [0, 1]"
                                                         : "rate must be in [0, 1)") +
                     ", received " + std::to_string(o.amount) + ".");
  return std::make_unique<Noise>(o, type);
}

}  // namespace shenjing
