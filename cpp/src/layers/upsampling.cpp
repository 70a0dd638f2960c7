// UpSampling1D / UpSampling2D, channels last: x (n, H, W, C) -> y (n, H*sh, W*sw, C).
//   nearest:  y[o, p] = x[o / sh, p / sw]                 (Keras: ops.repeat per axis)
//   bilinear: per axis a source position src = (o + 0.5) / s - 0.5 between cells lo and
//             hi = lo + 1 (both clamped to the input) with weight f = src - floor(src);
//             y = top + (bottom - top) * fh, top/bottom interpolated along the columns
//             (Keras: ops.image.resize 'bilinear', half-pixel centres as TF, JAX and torch's
//             align_corners=False; antialiasing only matters when shrinking).
// Both backward passes are gathers: each thread owns rows (b, h) of dx and adds, in a fixed
// order, every dy cell that read them, so results do not depend on the thread count.
// The interpolation tables depend only on the shapes, so they are built once in build().
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "layers/spatial.hpp"

namespace shenjing {
namespace {

constexpr long kParallelFloats = 65536;  // below this many floats per call, one thread

// Source cells and weights of one axis of half-pixel bilinear upsampling by `scale`.
struct Lerp {
  std::vector<int> lo, hi;
  std::vector<float> f;
  std::vector<int> first, last;  // output cells [first[i], last[i]] read input cell i
  void build(int in, int scale) {
    const int out = in * scale;
    lo.assign(out, 0);
    hi.assign(out, 0);
    f.assign(out, 0.0f);
    first.assign(in, INT_MAX);
    last.assign(in, -1);
    for (int o = 0; o < out; ++o) {
      const double src = (o + 0.5) / scale - 0.5;
      const double fl = std::floor(src);
      // TF: lower = max(floor, 0), upper = min(ceil, in - 1), lerp = src - floor.
      lo[o] = std::max((int)fl, 0);
      hi[o] = std::min((int)std::ceil(src), in - 1);
      f[o] = (float)(src - fl);
      for (int i : {lo[o], hi[o]}) {
        first[i] = std::min(first[i], o);
        last[i] = std::max(last[i], o);
      }
    }
  }
};

class UpSampling final : public SpatialLayer {
 public:
  explicit UpSampling(const UpSamplingOptions& opt) : opt_(opt) {
    if (opt.rank != 1 && opt.rank != 2)
      throw ValueError("UpSampling: rank must be 1 or 2, received " + std::to_string(opt.rank));
    if (opt_.rank == 1) opt_.size[0] = 1;
    if (opt_.size[0] <= 0 || opt_.size[1] <= 0)
      throw ValueError(std::string(type()) + ": size must be positive integers, received " +
                       window::arg_str(opt_.rank, opt_.size[0], opt_.size[1]) + ".");
    if (opt_.bilinear && opt_.rank != 2)
      throw ValueError("UpSampling1D has no bilinear interpolation.");
  }
  const char* type() const override { return opt_.rank == 2 ? "UpSampling2D" : "UpSampling1D"; }

  void build(const Shape& input) override {
    const HW in = input_hw(input, opt_.rank);
    const long long oh = (long long)in.H * opt_.size[0], ow = (long long)in.W * opt_.size[1];
    check_axes_fit(oh, ow, "size " + window::arg_str(opt_.rank, opt_.size[0], opt_.size[1]) +
                               " over the input " + shape_str(input));
    set_geometry(input, opt_.rank, in, oh, ow);
    if (opt_.bilinear) {
      rows_.build(H_, opt_.size[0]);
      cols_.build(W_, opt_.size[1]);
    }
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t irow = (size_t)W_ * C_, orow = (size_t)OW_ * C_;
    const long rows = (long)n * OH_;
    const int C = C_, sw = opt_.size[1];
#pragma omp parallel for schedule(static) if (rows * (long)orow > kParallelFloats)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / OH_), oh = (int)(r % OH_);
      float* yr = y + r * orow;
      const float* xb = x + (size_t)b * H_ * irow;
      if (!opt_.bilinear) {
        const float* xr = xb + (size_t)(oh / opt_.size[0]) * irow;
        for (int iw = 0; iw < W_; ++iw)
          for (int q = 0; q < sw; ++q) std::memcpy(yr + ((size_t)iw * sw + q) * C,
                                                   xr + (size_t)iw * C, C * sizeof(float));
        continue;
      }
      const float* top = xb + (size_t)rows_.lo[oh] * irow;
      const float* bot = xb + (size_t)rows_.hi[oh] * irow;
      const float fh = rows_.f[oh];
      for (int ow = 0; ow < OW_; ++ow) {
        const size_t l = (size_t)cols_.lo[ow] * C, h = (size_t)cols_.hi[ow] * C;
        const float fw = cols_.f[ow];
        float* yc = yr + (size_t)ow * C;
        for (int c = 0; c < C; ++c) {
          const float t = top[l + c] + (top[h + c] - top[l + c]) * fw;
          const float u = bot[l + c] + (bot[h + c] - bot[l + c]) * fw;
          yc[c] = t + (u - t) * fh;
        }
      }
    }
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t irow = (size_t)W_ * C_, orow = (size_t)OW_ * C_;
    const long rows = (long)n * H_;
    const int C = C_, sh = opt_.size[0], sw = opt_.size[1];
#pragma omp parallel for schedule(static) if (rows * (long)orow * sh > kParallelFloats)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / H_), ih = (int)(r % H_);
      float* dr = dx + r * irow;
      std::memset(dr, 0, irow * sizeof(float));
      const float* dyb = dy + (size_t)b * OH_ * orow;
      if (!opt_.bilinear) {  // the sh x sw block of dy that repeated each cell
        for (int k = 0; k < sh; ++k) {
          const float* dyr = dyb + ((size_t)ih * sh + k) * orow;
          for (int iw = 0; iw < W_; ++iw)
            for (int q = 0; q < sw; ++q)
              for (int c = 0; c < C; ++c) dr[(size_t)iw * C + c] += dyr[((size_t)iw * sw + q) * C + c];
        }
        continue;
      }
      // Output rows that read input row ih: weight 1 - fh as top, fh as bottom (both at the
      // clamped edges).
      for (int oh = rows_.first[ih]; oh <= rows_.last[ih]; ++oh) {
        const float fh = rows_.f[oh];
        const float wr = (rows_.lo[oh] == ih ? 1.0f - fh : 0.0f) + (rows_.hi[oh] == ih ? fh : 0.0f);
        if (wr == 0.0f) continue;
        const float* dyr = dyb + (size_t)oh * orow;
        for (int ow = 0; ow < OW_; ++ow) {
          const float fw = cols_.f[ow];
          const float a = wr * (1.0f - fw), e = wr * fw;
          float* dl = dr + (size_t)cols_.lo[ow] * C;
          float* dh = dr + (size_t)cols_.hi[ow] * C;
          const float* g = dyr + (size_t)ow * C;
          for (int c = 0; c < C; ++c) {
            dl[c] += a * g[c];
            dh[c] += e * g[c];
          }
        }
      }
    }
  }

 private:
  UpSamplingOptions opt_;
  Lerp rows_, cols_;
};

}  // namespace

std::unique_ptr<Layer> make_upsampling(const UpSamplingOptions& opt) {
  return std::make_unique<UpSampling>(opt);
}

}  // namespace shenjing
