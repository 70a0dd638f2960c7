// RandomRotation, RandomZoom and RandomTranslation: in training, each sample is resampled
// through its own affine transform (Keras's ops.image.affine_transform): output cell (y, x)
// reads the input at
//   x_in = a0 x + a1 y + a2,   y_in = b0 x + b1 y + b2
// (the transform maps output to input coordinates, as TF's ImageProjectiveTransform), by
// bilinear interpolation between the four cells around it or the nearest one, cells outside
// the image taken by the fill mode (reflect / wrap / nearest) or fill_value (constant). This is
// Keras's numpy backend (scipy's map_coordinates on the image padded by the fill mode): order 1
// interpolates between fill and image cells, order 0 rounds x_in + 0.5 down.
// The transforms are drawn as Keras draws them (rotation.py, zoom.py, translation.py), in
// float32 as Keras computes them; coordinates are in double (numpy's einsum of int indices and
// a float32 matrix).
// One pass per sample, OpenMP over samples; backward scatters dy through the same taps into
// the sample's dx (one thread per sample: the same sums for any thread count).
#include <cmath>
#include <cstring>
#include <vector>

#include "layers/image.hpp"

namespace shenjing {
namespace {

// The input cell read for index i of an axis of n cells (-1: the fill value).
inline int fill_index(long long i, int n, FillMode mode) {
  if (i >= 0 && i < n) return (int)i;
  switch (mode) {
    case FillMode::Reflect: {  // half-sample symmetric, period 2n
      const long long p = 2LL * n;
      long long m = i % p;
      if (m < 0) m += p;
      return (int)(m < n ? m : p - 1 - m);
    }
    case FillMode::Wrap: {
      long long m = i % n;
      if (m < 0) m += n;
      return (int)m;
    }
    case FillMode::Nearest:
      return i < 0 ? 0 : n - 1;
    case FillMode::Constant:
    default:
      return -1;
  }
}

// floor(v) as an integer. The layers' transforms keep coordinates within a few image sizes
// (zoom <= 2, shifts <= one image); the clamp to +-2^40 (NaN to the low end) only keeps the
// cast defined whatever the matrix.
inline long long floor_index(double v) {
  const double lim = 1099511627776.0;
  if (!(v > -lim)) v = -lim;  // NaN too
  if (v > lim) v = lim;
  return (long long)std::floor(v);
}

struct Tap2 {
  int i[2];
  float w[2];
};

inline Tap2 taps(double v, int n, FillMode mode, Interp interp) {
  Tap2 t;
  if (interp == Interp::Nearest) {
    t.i[0] = t.i[1] = fill_index(floor_index(v + 0.5), n, mode);
    t.w[0] = 1.0f;
    t.w[1] = 0.0f;
    return t;
  }
  const long long lo = floor_index(v);
  const float f = (float)(v - (double)lo);
  t.i[0] = fill_index(lo, n, mode);
  t.i[1] = fill_index(lo + 1, n, mode);
  t.w[0] = 1.0f - f;
  t.w[1] = f;
  return t;
}

class RandomAffine final : public image::RandomImageLayer {
 public:
  explicit RandomAffine(const AffineOptions& opt) : RandomImageLayer(opt.seed), opt_(opt) {
    for (int k = 0; k < 2; ++k)
      if (!std::isfinite(opt.lo[k]) || !std::isfinite(opt.hi[k]) || opt.lo[k] > opt.hi[k])
        throw ValueError(std::string(type()) + ": the factor ranges must be finite (lower, upper) "
                         "pairs.");
  }
  const char* type() const override {
    return opt_.kind == AffineKind::Rotation ? "RandomRotation"
           : opt_.kind == AffineKind::Zoom  ? "RandomZoom"
                                            : "RandomTranslation";
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const size_t len = (size_t)n * H_ * W_ * C_;
    if (!ctx.training) {
      if (x != y) std::memcpy(y, x, len * sizeof(float));
      return;
    }
    std::vector<float>& m = ctx.saved->a;  // the 6 transform entries of each sample
    m.resize((size_t)n * 6);
    const uint64_t key = image::batch_key(state_);
    for (int b = 0; b < n; ++b) transform(key, b, m.data() + (size_t)b * 6);
    const size_t sample = (size_t)H_ * W_ * C_;
#pragma omp parallel for schedule(static) if (len > 16384)
    for (int b = 0; b < n; ++b) sample_forward(m.data() + (size_t)b * 6, x + b * sample, y + b * sample);
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t len = (size_t)n * H_ * W_ * C_, sample = (size_t)H_ * W_ * C_;
    if (!ctx.training) {
      if (dx != dy) std::memcpy(dx, dy, len * sizeof(float));
      return;
    }
    const float* m = ctx.saved->a.data();
#pragma omp parallel for schedule(static) if (len > 16384)
    for (int b = 0; b < n; ++b) sample_backward(m + (size_t)b * 6, dy + b * sample, dx + b * sample);
  }

 private:
  // Sample b's transform [a0, a1, a2, b0, b1, b2], Keras's formulas in float32.
  void transform(uint64_t key, int b, float* t) const {
    const float fw = (float)W_, fh = (float)H_;
    if (opt_.kind == AffineKind::Rotation) {
      // random_rotation.py: angle in degrees, _compute_affine_matrix about the centre
      // ((W - 1) / 2, (H - 1) / 2), no scale, shear or translation.
      const float deg = image::uniform(key, b, 0, (float)(opt_.lo[0] * 360.0),
                                         (float)(opt_.hi[0] * 360.0));
      const float rad = deg * (float)(M_PI / 180.0);
      const float c = std::cos(rad), s = std::sin(rad);
      const float cx = 0.5f * (fw - 1.0f), cy = 0.5f * (fh - 1.0f);
      t[0] = c;
      t[1] = -s;
      t[2] = cx - cx * t[0] - cy * t[1];
      t[3] = s;
      t[4] = c;
      t[5] = cy - cx * t[3] - cy * t[4];
    } else if (opt_.kind == AffineKind::Zoom) {
      // random_zoom.py: zooms 1 + factor, about the centre.
      const float zy = image::uniform(key, b, 0, (float)(1.0 + opt_.lo[0]),
                                      (float)(1.0 + opt_.hi[0]));
      const float zx = opt_.width_follows
                           ? zy
                           : image::uniform(key, b, 1, (float)(1.0 + opt_.lo[1]),
                                           (float)(1.0 + opt_.hi[1]));
      t[0] = zx;
      t[1] = 0.0f;
      t[2] = ((fw - 1.0f) / 2.0f) * (1.0f - zx);
      t[3] = 0.0f;
      t[4] = zy;
      t[5] = ((fh - 1.0f) / 2.0f) * (1.0f - zy);
    } else {
      // random_translation.py: shifts of factor * size, the matrix holds their negatives.
      const float dy = image::uniform(key, b, 0, (float)opt_.lo[0], (float)opt_.hi[0]) * fh;
      const float dx = image::uniform(key, b, 1, (float)opt_.lo[1], (float)opt_.hi[1]) * fw;
      t[0] = 1.0f;
      t[1] = 0.0f;
      t[2] = -dx;
      t[3] = 0.0f;
      t[4] = 1.0f;
      t[5] = -dy;
    }
  }

  // Calls f(output cell, row taps, col taps) for every cell of one sample.
  template <class F>
  void each_cell(const float* t, F&& f) const {
    for (int yo = 0; yo < H_; ++yo)
      for (int xo = 0; xo < W_; ++xo) {
        const double xi = (double)t[0] * xo + (double)t[1] * yo + (double)t[2];
        const double yi = (double)t[3] * xo + (double)t[4] * yo + (double)t[5];
        f((size_t)yo * W_ + xo, taps(yi, H_, opt_.fill, opt_.interp),
          taps(xi, W_, opt_.fill, opt_.interp));
      }
  }

  void sample_forward(const float* t, const float* x, float* y) const {
    const int C = C_, W = W_;
    const float fill = opt_.fill_value;
    each_cell(t, [&](size_t cell, const Tap2& r, const Tap2& c) {
      float* yc = y + cell * C;
      if (r.i[0] >= 0 && r.i[1] >= 0 && c.i[0] >= 0 && c.i[1] >= 0) {
        // Every tap inside the image (most cells): no per-tap branches. A zero weight adds
        // an exact 0 (the data is finite: fit checks it), the sum in the same order as below.
        const float* p[4] = {x + ((size_t)r.i[0] * W + c.i[0]) * C,
                             x + ((size_t)r.i[0] * W + c.i[1]) * C,
                             x + ((size_t)r.i[1] * W + c.i[0]) * C,
                             x + ((size_t)r.i[1] * W + c.i[1]) * C};
        const float w[4] = {r.w[0] * c.w[0], r.w[0] * c.w[1], r.w[1] * c.w[0], r.w[1] * c.w[1]};
        for (int k = 0; k < C; ++k)
          yc[k] = ((w[0] * p[0][k] + w[1] * p[1][k]) + w[2] * p[2][k]) + w[3] * p[3][k];
        return;
      }
      for (int k = 0; k < C; ++k) yc[k] = 0.0f;
      for (int a = 0; a < 2; ++a)
        for (int e = 0; e < 2; ++e) {
          const float w = r.w[a] * c.w[e];
          if (w == 0.0f) continue;
          if (r.i[a] < 0 || c.i[e] < 0) {
            for (int k = 0; k < C; ++k) yc[k] += w * fill;
            continue;
          }
          const float* xc = x + ((size_t)r.i[a] * W + c.i[e]) * C;
          for (int k = 0; k < C; ++k) yc[k] += w * xc[k];
        }
    });
  }

  void sample_backward(const float* t, const float* dy, float* dx) const {
    const int C = C_, W = W_;
    std::memset(dx, 0, (size_t)H_ * W_ * C_ * sizeof(float));
    each_cell(t, [&](size_t cell, const Tap2& r, const Tap2& c) {
      const float* g = dy + cell * C;
      for (int a = 0; a < 2; ++a)
        for (int e = 0; e < 2; ++e) {
          const float w = r.w[a] * c.w[e];
          if (w == 0.0f || r.i[a] < 0 || c.i[e] < 0) continue;
          float* d = dx + ((size_t)r.i[a] * W + c.i[e]) * C;
          for (int k = 0; k < C; ++k) d[k] += w * g[k];
        }
    });
  }

  AffineOptions opt_;
};

}  // namespace

std::unique_ptr<Layer> make_random_affine(const AffineOptions& opt) {
  return std::make_unique<RandomAffine>(opt);
}

}  // namespace shenjing
