// Resizing and CenterCrop, channels last: x (n, H, W, C) -> y (n, height, width, C).
// Both are "take a window of the input, resize it": the window is the whole image (plain
// Resizing), Keras's centred crop to the target's aspect ratio (crop_to_aspect_ratio, and
// CenterCrop on an image smaller than the target: smart_resize), the image padded with
// fill_value on both sides of one axis (pad_to_aspect_ratio), or a centred crop of the target
// size (CenterCrop). Each output axis then reads at most two cells of the window per output
// cell (Taps), so one loop serves all of them:
//   bilinear: src = (o + 0.5) * S / O - 0.5, cells floor(src) and floor(src) + 1 clamped to the
//             window, weights 1 - f and f (Keras's resize without antialias, TF's half-pixel
//             centres, torch's interpolate(align_corners=False, antialias=False));
//   nearest:  cell floor((o + 0.5) * S / O) (Keras / JAX, torch's 'nearest-exact').
// A window cell outside the input (padding) reads fill_value. Backward scatters dy through the
// same taps: parallel over samples, each sample's dx written by one thread in a fixed order.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "layers/image.hpp"

namespace shenjing {
namespace {

constexpr long kParallelFloats = 65536;  // below this many output floats per call, one thread

// Per output cell along one axis: two input cells (-1: the fill value) and their weights.
struct Taps {
  std::vector<int> i0, i1;
  std::vector<float> w0, w1;
  // out cells from a window of S cells starting at input cell `off` (negative: padding) of
  // an input axis of `in` cells.
  void build(int out, int S, int off, int in, Interp interp) {
    i0.assign(out, 0);
    i1.assign(out, 0);
    w0.assign(out, 1.0f);
    w1.assign(out, 0.0f);
    auto cell = [&](long long s) { return s + off >= 0 && s + off < in ? (int)(s + off) : -1; };
    for (int o = 0; o < out; ++o) {
      if (interp == Interp::Nearest) {
        const long long s = std::min((long long)std::floor((o + 0.5) * S / out), (long long)S - 1);
        i0[o] = i1[o] = cell(s);
        continue;
      }
      const double src = (o + 0.5) * S / out - 0.5, fl = std::floor(src);
      const long long lo = std::max((long long)fl, 0LL);
      const long long hi = std::min((long long)std::ceil(src), (long long)S - 1);
      const float f = lo == hi ? 0.0f : (float)(src - fl);
      i0[o] = cell(lo);
      i1[o] = cell(hi);
      w0[o] = 1.0f - f;
      w1[o] = f;
    }
  }
};

class Resize final : public Layer {
 public:
  explicit Resize(const ResizeOptions& opt) : opt_(opt) {
    if (opt.height <= 0 || opt.width <= 0)
      throw ValueError(std::string(type()) + ": height and width must be positive integers, "
                       "received (" + std::to_string(opt.height) + ", " +
                       std::to_string(opt.width) + ").");
    if (opt.crop_to_aspect && opt.pad_to_aspect)
      throw ValueError("Resizing: only one of pad_to_aspect_ratio and crop_to_aspect_ratio can "
                       "be True.");
  }
  const char* type() const override { return opt_.center_crop ? "CenterCrop" : "Resizing"; }

  void build(const Shape& input) override {
    image::check_image(name_, type(), input);
    H_ = input[0];
    W_ = input[1];
    C_ = input[2];
    const long long th = opt_.height, tw = opt_.width;
    // Before the taps are allocated (the model checks activation sizes only after build).
    if (th * tw * C_ > (1LL << 28))
      throw ValueError("Layer '" + name_ + "' (" + type() + "): the output (" +
                       std::to_string(th) + ", " + std::to_string(tw) + ", " +
                       std::to_string(C_) + ") has more than 2^28 values per sample.");
    // The window: S cells from `off` along each axis (Keras's integer arithmetic, in doubles
    // as Python's float()).
    long long sh = H_, sw = W_, oh = 0, ow = 0;
    Interp interp = opt_.interp;
    const bool crop = opt_.center_crop ? !(H_ >= th && W_ >= tw) : opt_.crop_to_aspect;
    if (opt_.center_crop && !crop) {
      sh = th;
      sw = tw;
      oh = (H_ - th) / 2;
      ow = (W_ - tw) / 2;
    } else if (crop) {  // smart_resize / crop_to_aspect_ratio
      if (opt_.center_crop) interp = Interp::Bilinear;
      sh = std::max(std::min((long long)H_, (long long)((double)W_ * th / tw)), 1LL);
      sw = std::max(std::min((long long)W_, (long long)((double)H_ * tw / th)), 1LL);
      oh = (long long)((double)(H_ - sh) / 2);
      ow = (long long)((double)(W_ - sw) / 2);
    } else if (opt_.pad_to_aspect) {
      const long long ph = std::max((long long)H_, (long long)((double)W_ * th / tw));
      const long long pw = std::max((long long)W_, (long long)((double)H_ * tw / th));
      const long long hs = (long long)((double)(ph - H_) / 2);
      const long long ws = (long long)((double)(pw - W_) / 2);
      if (hs > 0) {  // Keras pads one axis only: rows first
        sh = H_ + 2 * hs;
        oh = -hs;
      } else if (ws > 0) {
        sw = W_ + 2 * ws;
        ow = -ws;
      }
    }
    if (sh > INT_MAX || sw > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): padding the input " +
                       shape_str(input) + " to the aspect ratio of (" + std::to_string(th) +
                       ", " + std::to_string(tw) + ") makes an axis of more than 2^31 - 1 cells.");
    rows_.build(opt_.height, (int)sh, (int)oh, H_, interp);
    cols_.build(opt_.width, (int)sw, (int)ow, W_, interp);
    in_ = input;
    out_ = {opt_.height, opt_.width, C_};
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const int OH = opt_.height, OW = opt_.width, C = C_;
    const size_t irow = (size_t)W_ * C, orow = (size_t)OW * C;
    const long rows = (long)n * OH;
    const float fill = opt_.fill_value;
#pragma omp parallel for schedule(static) if (rows * (long)orow > kParallelFloats)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / OH), o = (int)(r % OH);
      const float* xb = x + (size_t)b * H_ * irow;
      float* yr = y + r * orow;
      const int ri[2] = {rows_.i0[o], rows_.i1[o]};
      const float rw[2] = {rows_.w0[o], rows_.w1[o]};
      for (int p = 0; p < OW; ++p) {
        const int ci[2] = {cols_.i0[p], cols_.i1[p]};
        const float cw[2] = {cols_.w0[p], cols_.w1[p]};
        float* yc = yr + (size_t)p * C;
        for (int c = 0; c < C; ++c) yc[c] = 0.0f;
        for (int a = 0; a < 2; ++a) {
          if (rw[a] == 0.0f) continue;
          for (int k = 0; k < 2; ++k) {
            const float w = rw[a] * cw[k];
            if (w == 0.0f) continue;
            if (ri[a] < 0 || ci[k] < 0) {
              for (int c = 0; c < C; ++c) yc[c] += w * fill;
              continue;
            }
            const float* xc = xb + (size_t)ri[a] * irow + (size_t)ci[k] * C;
            for (int c = 0; c < C; ++c) yc[c] += w * xc[c];
          }
        }
      }
    }
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const int OH = opt_.height, OW = opt_.width, C = C_;
    const size_t irow = (size_t)W_ * C, orow = (size_t)OW * C;
    const size_t isample = (size_t)H_ * irow, osample = (size_t)OH * orow;
#pragma omp parallel for schedule(static) if ((long)n * (long)osample > kParallelFloats)
    for (int b = 0; b < n; ++b) {
      float* db = dx + (size_t)b * isample;
      std::memset(db, 0, isample * sizeof(float));
      const float* gb = dy + (size_t)b * osample;
      for (int o = 0; o < OH; ++o) {
        const int ri[2] = {rows_.i0[o], rows_.i1[o]};
        const float rw[2] = {rows_.w0[o], rows_.w1[o]};
        for (int p = 0; p < OW; ++p) {
          const int ci[2] = {cols_.i0[p], cols_.i1[p]};
          const float cw[2] = {cols_.w0[p], cols_.w1[p]};
          const float* g = gb + (size_t)o * orow + (size_t)p * C;
          for (int a = 0; a < 2; ++a)
            for (int k = 0; k < 2; ++k) {
              const float w = rw[a] * cw[k];
              if (w == 0.0f || ri[a] < 0 || ci[k] < 0) continue;  // fill cells: no input
              float* d = db + (size_t)ri[a] * irow + (size_t)ci[k] * C;
              for (int c = 0; c < C; ++c) d[c] += w * g[c];
            }
        }
      }
    }
  }

 private:
  ResizeOptions opt_;
  int H_ = 0, W_ = 0, C_ = 0;
  Taps rows_, cols_;
};

}  // namespace

std::unique_ptr<Layer> make_resizing(const ResizeOptions& opt) {
  return std::make_unique<Resize>(opt);
}

}  // namespace shenjing
