// DepthwiseConv1D/2D and SeparableConv1D/2D, channels last (Keras's layouts):
//   depthwise:  d[b, oh, ow, c*M + m] = sum_{i,j} x[b, oh*s - pt + i*dh, ow*s - pl + j*dw, c]
//                                                 * depthwise_kernel[i, j, c, m]
//   DepthwiseConv: y = act(d + bias)              (bias over C*M)
//   SeparableConv: y = act(d . pointwise + bias)  (pointwise (1, 1, C*M, F) as a (C*M, F) GEMM)
// The depthwise part is a direct loop: for each output row and kernel tap, the output cells
// whose tap is inside the input, each one contiguous run of C*M products (the input's channels
// repeated M times first when M > 1), which the compiler vectorises. Forward and dx run in
// parallel over samples (each sample's cells are written by one thread); the depthwise kernel's
// gradient is summed per sample in parallel, then over the samples in order, so every result is
// the same for any thread count. The GEMMs and column sums are the kernels' (deterministic).
#include <algorithm>
#include <climits>
#include <vector>

#include <omp.h>

#include "layers/window.hpp"
#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

class Depthwise final : public Layer {
 public:
  explicit Depthwise(const DepthwiseOptions& o) : o_(o) {}
  const char* type() const override {
    return o_.separable ? (o_.rank == 2 ? "SeparableConv2D" : "SeparableConv1D")
                        : (o_.rank == 2 ? "DepthwiseConv2D" : "DepthwiseConv1D");
  }

  void build(const Shape& input) override {
    kernels::WindowGeom g{};
    window::input_geometry(name_, type(), input, o_.rank, g);
    g.KH = o_.rank == 2 ? o_.kernel[0] : 1;
    g.KW = o_.kernel[1];
    g.SH = o_.rank == 2 ? o_.strides[0] : 1;
    g.SW = o_.strides[1];
    g.DH = o_.rank == 2 ? o_.dilation[0] : 1;
    g.DW = o_.dilation[1];
    window::output_geometry(name_, type(), o_.rank, "kernel_size",
                            o_.rank == 2 ? o_.padding : Padding::Valid, o_.padding, input,
                            "Use padding='same' or a smaller kernel_size.", g);
    const long long cm = (long long)g.C * o_.multiplier;
    if (cm > INT_MAX / 64)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): " + std::to_string(g.C) +
                       " channels times depth_multiplier " + std::to_string(o_.multiplier) +
                       " is too large.");
    g_ = g;
    in_ = input;
    CM_ = (int)cm;
    const int out_c = o_.separable ? o_.filters : CM_;
    out_ = o_.rank == 2 ? Shape{g.OH, g.OW, out_c} : Shape{g.OW, out_c};
    params_.clear();
    Shape dk = o_.rank == 2 ? Shape{g.KH, g.KW, g.C, o_.multiplier}
                            : Shape{g.KW, g.C, o_.multiplier};
    // Keras names it "kernel" in DepthwiseConv, "depthwise_kernel" in SeparableConv.
    params_.push_back(Param{o_.separable ? "depthwise_kernel" : "kernel", dk, {}, {}, o_.depthwise_l1, o_.depthwise_l2});
    if (o_.separable) {
      Shape pk = o_.rank == 2 ? Shape{1, 1, CM_, o_.filters} : Shape{1, CM_, o_.filters};
      params_.push_back(Param{"pointwise_kernel", pk, {}, {}, o_.pointwise_l1, o_.pointwise_l2});
    }
    if (o_.use_bias) params_.push_back(Param{"bias", {out_c}, {}, {}, o_.bias_l1, o_.bias_l2});
  }

  Activation output_activation() const override { return o_.activation; }

  // Saved::a: the depthwise output d (separable); Saved::b: the pre-activation z.
  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const size_t pos = (size_t)g_.OH * g_.OW, out_c = out_.back();
    const bool linear = o_.activation == Activation::Linear;
    std::vector<float>& z = ctx.saved->b;
    float* zp = y;
    if (!linear) {
      if (z.size() < (size_t)n * pos * out_c) z.resize((size_t)n * pos * out_c);
      zp = z.data();
    }
    const float* bias = o_.use_bias ? params_.back().value.data() : nullptr;
    if (o_.separable) {
      std::vector<float>& d = ctx.saved->a;
      if (d.size() < (size_t)n * pos * CM_) d.resize((size_t)n * pos * CM_);
      depthwise_forward(x, d.data(), nullptr, n);
      kernels::table().sgemm(false, false, (int)(n * pos), o_.filters, CM_, 1.0f, d.data(), CM_,
                             params_[1].value.data(), o_.filters, 0.0f, zp, o_.filters, bias);
    } else {
      depthwise_forward(x, zp, bias, n);
    }
    if (!linear)
      window::act_forward((int)o_.activation, o_.activation_alpha, zp, y, (long)(n * pos),
                          (int)out_c);
  }

  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const auto& K = kernels::table();
    const size_t pos = (size_t)g_.OH * g_.OW, out_c = out_.back(), rows = n * pos;
    // dz: the gradient at the pre-activation.
    const float* dz = dy;
    if (o_.activation != Activation::Linear && !ctx.fused) {
      if (dz_.size() < rows * out_c) dz_.resize(rows * out_c);
      window::act_backward((int)o_.activation, o_.activation_alpha, ctx.saved->b.data(), y, dy,
                           dz_.data(), (long)rows, (int)out_c);
      dz = dz_.data();
    }
    if (o_.use_bias) K.col_sum(dz, (int)rows, (int)out_c, params_.back().grad.data(), false);
    const float* dd = dz;  // the gradient at the depthwise output
    if (o_.separable) {
      const float* d = ctx.saved->a.data();
      K.sgemm(true, false, CM_, o_.filters, (int)rows, 1.0f, d, CM_, dz, o_.filters, 0.0f,
              params_[1].grad.data(), o_.filters, nullptr);
      if (dd_.size() < rows * CM_) dd_.resize(rows * CM_);
      K.sgemm(false, true, (int)rows, CM_, o_.filters, 1.0f, dz, o_.filters,
              params_[1].value.data(), o_.filters, 0.0f, dd_.data(), CM_, nullptr);
      dd = dd_.data();
    }
    kernel_grad(x, dd, n);
    if (dx) input_grad(dd, dx, n);
  }

 private:
  // The input row a kernel tap reads for an output row, or -1 in the padding.
  int in_row(int oh, int i) const {
    const int h = oh * g_.SH - g_.PT + i * g_.DH;
    return h >= 0 && h < g_.H ? h : -1;
  }
  // The output columns [*lo, *hi) whose tap column j lies inside the input (the others read
  // padding), so that the loops over them need no bounds checks.
  void col_range(int j, int* lo, int* hi) const {
    const long long off = (long long)j * g_.DW - g_.PL;  // input column of output column 0
    long long a = off >= 0 ? 0 : (-off + g_.SW - 1) / g_.SW;
    long long b = g_.W - 1 - off < 0 ? 0 : (g_.W - 1 - off) / g_.SW + 1;
    *lo = (int)std::min<long long>(a, g_.OW);
    *hi = (int)std::max<long long>(std::min<long long>(b, g_.OW), *lo);
  }
  // Threads for a loop over n samples: one for small batches (a parallel region costs more than
  // it saves there, and far more when a thread of it is descheduled, which the GEMMs' hint
  // reports), else up to one per sample.
  int threads(int n) const {
    const double work = (double)n * g_.OH * g_.OW * CM_ * g_.KH * g_.KW;
    if (omp_in_parallel() || work < 262144.0 || kernels::table().threads_solo()) return 1;
    return std::min(n, omp_get_max_threads());
  }

  // One sample's input with each channel repeated M times ((H, W, C*M), the layout of the
  // kernel and the output), so that every loop below is one contiguous run of C*M products;
  // the sample itself when M is 1. `t`: the calling thread's scratch.
  const float* spread(const float* xs, int t) const {
    const int C = g_.C, M = o_.multiplier;
    if (M == 1) return xs;
    const size_t cells = (size_t)g_.H * g_.W;
    std::vector<float>& r = rep_[t];
    if (r.size() < cells * CM_) r.resize(cells * CM_);
    for (size_t p = 0; p < cells; ++p)
      for (int c = 0; c < C; ++c) std::fill_n(r.data() + (p * C + c) * M, M, xs[p * C + c]);
    return r.data();
  }
  int prepare_threads(int n) const {
    const int nt = threads(n);
    if ((int)rep_.size() < nt) rep_.resize(nt);
    return nt;
  }

  // out (n, OH, OW, C*M) = depthwise(x) (+ bias). Each output row is summed tap by tap (taps
  // in order, the same sum per cell as cell by cell), the row staying in cache.
  void depthwise_forward(const float* x, float* out, const float* bias, int n) const {
    const int CM = CM_;
    const float* k = params_[0].value.data();
    const size_t in_sz = (size_t)g_.H * g_.W * g_.C, out_sz = (size_t)g_.OH * g_.OW * CM;
#pragma omp parallel for schedule(static) num_threads(prepare_threads(n))
    for (int b = 0; b < n; ++b) {
      const float* xs = spread(x + b * in_sz, omp_get_thread_num());
      for (int oh = 0; oh < g_.OH; ++oh) {
        float* orow = out + b * out_sz + (size_t)oh * g_.OW * CM;
        for (int ow = 0; ow < g_.OW; ++ow) {
          if (bias) std::copy(bias, bias + CM, orow + (size_t)ow * CM);
          else std::fill(orow + (size_t)ow * CM, orow + (size_t)(ow + 1) * CM, 0.0f);
        }
        for (int i = 0; i < g_.KH; ++i) {
          const int h = in_row(oh, i);
          if (h < 0) continue;
          for (int j = 0; j < g_.KW; ++j) {
            int lo, hi;
            col_range(j, &lo, &hi);
            const float* kr = k + ((size_t)i * g_.KW + j) * CM;
            for (int ow = lo; ow < hi; ++ow) {
              const int w = ow * g_.SW - g_.PL + j * g_.DW;
              const float* xr = xs + ((size_t)h * g_.W + w) * CM;
              float* acc = orow + (size_t)ow * CM;
              for (int e = 0; e < CM; ++e) acc[e] += xr[e] * kr[e];
            }
          }
        }
      }
    }
  }

  // The depthwise kernel's gradient: each sample's contribution in parallel over samples (one
  // pass over its x and dd, in cache), then the per-sample partials summed in sample order in
  // parallel over the kernel's entries: the same bits for any thread count.
  void kernel_grad(const float* x, const float* dd, int n) {
    const int CM = CM_, taps = g_.KH * g_.KW;
    const size_t kn = (size_t)taps * CM;
    if (part_.size() < (size_t)n * kn) part_.resize((size_t)n * kn);
    const size_t in_sz = (size_t)g_.H * g_.W * g_.C, out_sz = (size_t)g_.OH * g_.OW * CM;
    float* part = part_.data();
#pragma omp parallel for schedule(static) num_threads(prepare_threads(n))
    for (int b = 0; b < n; ++b) {
      const float* xs = spread(x + b * in_sz, omp_get_thread_num());
      float* gb = part + b * kn;
      std::fill(gb, gb + kn, 0.0f);
      for (int oh = 0; oh < g_.OH; ++oh) {
        const float* drow = dd + b * out_sz + (size_t)oh * g_.OW * CM;
        for (int i = 0; i < g_.KH; ++i) {
          const int h = in_row(oh, i);
          if (h < 0) continue;
          for (int j = 0; j < g_.KW; ++j) {
            int lo, hi;
            col_range(j, &lo, &hi);
            float* g = gb + ((size_t)i * g_.KW + j) * CM;
            for (int ow = lo; ow < hi; ++ow) {
              const int w = ow * g_.SW - g_.PL + j * g_.DW;
              const float* xr = xs + ((size_t)h * g_.W + w) * CM;
              const float* dr = drow + (size_t)ow * CM;
              for (int e = 0; e < CM; ++e) g[e] += xr[e] * dr[e];
            }
          }
        }
      }
    }
    float* gk = params_[0].grad.data();
    const int nt = omp_in_parallel() || kn * n < 65536 ? 1 : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(nt)
    for (long long e = 0; e < (long long)kn; ++e) {
      float s = 0.0f;
      for (int b = 0; b < n; ++b) s += part[b * kn + e];
      gk[e] = s;
    }
  }

  // dx (n, H, W, C), overwritten; each sample by one thread. With M > 1 the gradient of the
  // spread input is summed first, then each channel's M copies are added up.
  void input_grad(const float* dd, float* dx, int n) const {
    const int C = g_.C, M = o_.multiplier, CM = CM_;
    const float* k = params_[0].value.data();
    const size_t cells = (size_t)g_.H * g_.W, out_sz = (size_t)g_.OH * g_.OW * CM;
#pragma omp parallel for schedule(static) num_threads(prepare_threads(n))
    for (int b = 0; b < n; ++b) {
      float* dxs = dx + b * cells * C;
      float* acc = dxs;
      if (M > 1) {
        std::vector<float>& r = rep_[omp_get_thread_num()];
        if (r.size() < cells * CM) r.resize(cells * CM);
        acc = r.data();
      }
      std::fill(acc, acc + cells * CM, 0.0f);
      for (int oh = 0; oh < g_.OH; ++oh) {
        const float* drow = dd + b * out_sz + (size_t)oh * g_.OW * CM;
        for (int i = 0; i < g_.KH; ++i) {
          const int h = in_row(oh, i);
          if (h < 0) continue;
          for (int j = 0; j < g_.KW; ++j) {
            int lo, hi;
            col_range(j, &lo, &hi);
            const float* kr = k + ((size_t)i * g_.KW + j) * CM;
            for (int ow = lo; ow < hi; ++ow) {
              const int w = ow * g_.SW - g_.PL + j * g_.DW;
              float* ar = acc + ((size_t)h * g_.W + w) * CM;
              const float* dr = drow + (size_t)ow * CM;
              for (int e = 0; e < CM; ++e) ar[e] += dr[e] * kr[e];
            }
          }
        }
      }
      if (M > 1)
        for (size_t q = 0; q < cells * C; ++q) {
          float s = 0.0f;
          for (int m = 0; m < M; ++m) s += acc[q * M + m];
          dxs[q] = s;
        }
    }
  }

  DepthwiseOptions o_;
  kernels::WindowGeom g_{};
  int CM_ = 0;
  std::vector<float> dz_, dd_, part_;  // backward scratch, grow-only
  mutable std::vector<std::vector<float>> rep_;  // per thread: a spread sample (M > 1)
};

}  // namespace

std::unique_ptr<Layer> make_depthwise(const DepthwiseOptions& o) {
  const char* t = o.separable ? "SeparableConv" : "DepthwiseConv";
  if (o.rank != 1 && o.rank != 2)
    throw ValueError(std::string(t) + ": rank must be 1 or 2, received " +
                     std::to_string(o.rank) + ".");
  if (o.multiplier <= 0 || (o.separable && o.filters <= 0))
    throw ValueError(std::string(t) + ": depth_multiplier and filters must be positive.");
  for (int a = 0; a < 2; ++a)
    if (o.kernel[a] <= 0 || o.strides[a] <= 0 || o.dilation[a] <= 0)
      throw ValueError(std::string(t) + ": kernel_size, strides and dilation_rate must be "
                       "positive.");
  return std::make_unique<Depthwise>(o);
}

}  // namespace shenjing
