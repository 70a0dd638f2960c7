// RandomFlip and RandomContrast (training only; see image.hpp for the random stream).
//   RandomFlip:     per sample one uniform draw u; u <= 0.5 flips the mode's axes (Keras:
//                   flips = uniform() <= 0.5, the same mask for both axes of
//                   horizontal_and_vertical). Backward applies the same flip to dy.
//   RandomContrast: per sample f uniform in [1 - lower, 1 + upper]; per channel the image mean
//                   m; y = clip((x - m) f + m, vmin, vmax). Backward: dz = dy where the clip
//                   let z through (bounds included, as torch's clamp), then
//                   dx = f dz + (1 - f) mean(dz) over the image, per channel.
// Both run one sample per OpenMP iteration, so results do not depend on the thread count.
#include <algorithm>
#include <cstring>
#include <vector>

#include "layers/image.hpp"

namespace shenjing {
namespace {

constexpr size_t kParallelFloats = 16384;

class RandomFlip final : public image::RandomImageLayer {
 public:
  RandomFlip(int mode, uint64_t seed) : RandomImageLayer(seed), mode_(mode) {
    if (mode < 1 || mode > 3) throw ValueError("RandomFlip: unknown mode.");
  }
  const char* type() const override { return "RandomFlip"; }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    std::vector<float>& flips = ctx.saved->a;
    flips.assign(n, 0.0f);
    if (ctx.training) {
      const uint64_t key = image::batch_key(state_);
      for (int b = 0; b < n; ++b) flips[b] = image::uniform(key, b, 0, 0.0f, 1.0f) <= 0.5f;
    }
    flip(flips.data(), x, y, n);
  }
  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (dx) flip(ctx.saved->a.data(), dy, dx, n);
  }

 private:
  // out = in with the mode's axes reversed in the samples whose flag is set (a permutation
  // that is its own inverse: forward and backward alike). in != out.
  void flip(const float* flags, const float* in, float* out, int n) const {
    const size_t row = (size_t)W_ * C_, sample = (size_t)H_ * row;
    const bool hor = mode_ & 1, ver = mode_ & 2;
#pragma omp parallel for schedule(static) if ((size_t)n * sample > kParallelFloats)
    for (int b = 0; b < n; ++b) {
      const float* xb = in + (size_t)b * sample;
      float* yb = out + (size_t)b * sample;
      if (flags[b] == 0.0f) {
        if (xb != yb) std::memcpy(yb, xb, sample * sizeof(float));
        continue;
      }
      for (int h = 0; h < H_; ++h) {
        const float* xr = xb + (size_t)(ver ? H_ - 1 - h : h) * row;
        float* yr = yb + (size_t)h * row;
        if (!hor) {
          std::memcpy(yr, xr, row * sizeof(float));
          continue;
        }
        for (int w = 0; w < W_; ++w)
          std::memcpy(yr + (size_t)w * C_, xr + (size_t)(W_ - 1 - w) * C_, C_ * sizeof(float));
      }
    }
  }

  int mode_;
};

class RandomContrast final : public image::RandomImageLayer {
 public:
  RandomContrast(double lo, double hi, float vmin, float vmax, uint64_t seed)
      : RandomImageLayer(seed), fmin_((float)(1.0 - lo)), fmax_((float)(1.0 + hi)),
        vmin_(vmin), vmax_(vmax) {
    if (!(vmin <= vmax))
      throw ValueError("RandomContrast: value_range must be (min, max) with min <= max.");
  }
  const char* type() const override { return "RandomContrast"; }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const size_t sample = (size_t)H_ * W_ * C_;
    if (!ctx.training) {
      if (x != y) std::memcpy(y, x, (size_t)n * sample * sizeof(float));
      return;
    }
    // Per sample: f, then the C channel means.
    std::vector<float>& s = ctx.saved->a;
    const size_t per = 1 + (size_t)C_;
    s.assign((size_t)n * per, 0.0f);
    const uint64_t key = image::batch_key(state_);
    for (int b = 0; b < n; ++b) s[b * per] = image::uniform(key, b, 0, fmin_, fmax_);
#pragma omp parallel for schedule(static) if ((size_t)n * sample > kParallelFloats)
    for (int b = 0; b < n; ++b) {
      float* st = s.data() + b * per;
      channel_means(x + (size_t)b * sample, st + 1);
      const float f = st[0];
      const float* xb = x + (size_t)b * sample;
      float* yb = y + (size_t)b * sample;
      for (size_t i = 0; i < sample; ++i) {
        const float m = st[1 + i % C_];
        yb[i] = std::min(std::max((xb[i] - m) * f + m, vmin_), vmax_);
      }
    }
  }

  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t sample = (size_t)H_ * W_ * C_;
    if (!ctx.training) {
      if (dx != dy) std::memcpy(dx, dy, (size_t)n * sample * sizeof(float));
      return;
    }
    const size_t per = 1 + (size_t)C_;
    const float* s = ctx.saved->a.data();
#pragma omp parallel for schedule(static) if ((size_t)n * sample > kParallelFloats)
    for (int b = 0; b < n; ++b) {
      const float* st = s + b * per;
      const float f = st[0];
      const float* xb = x + (size_t)b * sample;
      const float* gb = dy + (size_t)b * sample;
      float* db = dx + (size_t)b * sample;
      std::vector<double> sums(C_, 0.0);
      for (size_t i = 0; i < sample; ++i) {  // dz (kept in dx) and its sums per channel
        const float m = st[1 + i % C_];
        const float z = (xb[i] - m) * f + m;
        db[i] = z >= vmin_ && z <= vmax_ ? gb[i] : 0.0f;
        sums[i % C_] += db[i];
      }
      const double cells = (double)H_ * W_;
      for (size_t i = 0; i < sample; ++i)
        db[i] = f * db[i] + (float)((1.0 - f) * sums[i % C_] / cells);
    }
  }

 private:
  void channel_means(const float* xb, float* means) const {
    std::vector<double> sums(C_, 0.0);
    const size_t cells = (size_t)H_ * W_;
    for (size_t p = 0; p < cells; ++p)
      for (int c = 0; c < C_; ++c) sums[c] += xb[p * C_ + c];
    for (int c = 0; c < C_; ++c) means[c] = (float)(sums[c] / (double)cells);
  }

  float fmin_, fmax_, vmin_, vmax_;
};

}  // namespace

std::unique_ptr<Layer> make_random_flip(int mode, uint64_t seed) {
  return std::make_unique<RandomFlip>(mode, seed);
}

std::unique_ptr<Layer> make_random_contrast(double lo, double hi, float vmin, float vmax,
                                            uint64_t seed) {
  return std::make_unique<RandomContrast>(lo, hi, vmin, vmax, seed);
}

}  // namespace shenjing
