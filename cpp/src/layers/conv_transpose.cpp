// Conv1DTranspose / Conv2DTranspose, channels last: the input gradient of a convolution, so it
// runs on the convolution's own kernels with the roles of x and y swapped.
//   x (n, H, W, C); kernel (KH, KW, F, C) seen as a (KH*KW*F, C) matrix; y (n, OH, OW, F).
//   The "conv view" g is the convolution whose input is y and whose output is x: g.H, g.W =
//   OH, OW, g.C = F, g.OH, g.OW = H, W; its col has rows (b, h, w) and columns (i, j, f),
//   exactly the rows of the kernel matrix above.
//   forward:        col = x . kernel^T          (n*H*W, KH*KW*F)
//                   z   = col2im(col) + bias    (n, OH, OW, F),  y = act(z)
//   input grad:     col = im2col(dz),  dx = col . kernel         (a plain convolution)
//   weight grad:    dK^T = x^T col             (C, KH*KW*F), transposed when summed
//   bias grad:      column sums of dz
// Output cell o along an axis receives input cell i through kernel tap k when
// o = i * s + k * d - P, P the conv view's padding before; P and the output length follow
// Keras (JAX's conv_transpose padding, which TF's conv2d_transpose agrees with).
// Batches are split over the threads by samples and run in cache-sized chunks, as Conv does
// (see conv.cpp); per-thread partial weight gradients are summed in thread order
// (deterministic). A 1x1 stride-1 kernel is a Dense over the channels: col2im is the identity.
#include <algorithm>
#include <climits>
#include <vector>

#include "layers/batch_split.hpp"
#include "layers/window.hpp"

namespace shenjing {
namespace {

using batch_split::grow;

constexpr size_t kChunkFloats = size_t(1) << 19;  // col + output per chunk: 2 MB, as Conv
constexpr long long kMaxColFloats = 1LL << 28;     // col per sample, as the activation cap

// One axis of a transposed convolution, in 64 bits (sizes come from configs and files).
struct TAxis {
  long long out, pad;  // output length; the conv view's padding before (>= 0)
};
TAxis t_axis(long long in, long long k, long long s, long long d, Padding p, bool has_op,
             long long op) {
  const long long eff = (k - 1) * d + 1;
  long long out, left;  // left: JAX's padding before the stride-dilated input
  if (p == Padding::Valid) {
    if (!has_op) op = std::max(eff, s) - eff;
    left = eff - 1;
    out = (in - 1) * s + eff + op;
  } else {
    const long long pad_len = has_op ? eff + eff % 2 - 2 + op : s + eff - 2;
    left = std::min(pad_len / 2 + pad_len % 2, eff - 1);
    out = has_op ? (in - 1) * s + eff % 2 + op : in * s;
  }
  return {out, eff - 1 - left};
}

class ConvTranspose final : public Layer {
 public:
  explicit ConvTranspose(const ConvTransposeOptions& opt) : opt_(opt) {
    const std::string t = type();
    if (opt.rank != 1 && opt.rank != 2)
      throw ValueError("ConvTranspose: rank must be 1 or 2, received " +
                       std::to_string(opt.rank) + ".");
    if (opt_.rank == 1) {
      opt_.kernel[0] = opt_.strides[0] = opt_.dilation[0] = 1;
      opt_.output_padding[0] = 0;
    }
    const int r0 = opt_.rank == 2 ? 0 : 1;
    auto arg = [&](const int* v) { return window::arg_str(opt_.rank, v[0], v[1]); };
    if (opt.filters <= 0)
      throw ValueError(t + ": filters must be a positive integer, received " +
                       std::to_string(opt.filters) + ".");
    for (auto [what, v] : {std::pair{"kernel_size", opt_.kernel}, {"strides", opt_.strides},
                           {"dilation_rate", opt_.dilation}})
      for (int a = r0; a < 2; ++a)
        if (v[a] <= 0)
          throw ValueError(t + ": " + what + " must be positive integers, received " + arg(v) +
                           ".");
    if (opt.padding != Padding::Valid && opt.padding != Padding::Same)
      throw ValueError(t + ": padding must be 'valid' or 'same'.");
    // Keras's checks (BaseConvTranspose.__init__).
    for (int a = r0; a < 2 && opt_.has_output_padding; ++a)
      if (opt_.output_padding[a] < 0 || opt_.output_padding[a] >= opt_.strides[a])
        throw ValueError(t + ": output_padding must be non-negative and strictly less than "
                         "strides along each axis, received output_padding=" +
                         arg(opt_.output_padding) + " with strides=" + arg(opt_.strides) + ".");
    const bool strided = opt_.strides[0] > 1 || opt_.strides[1] > 1;
    const bool dilated = opt_.dilation[0] > 1 || opt_.dilation[1] > 1;
    if (strided && dilated)
      throw ValueError(t + ": strides > 1 is not supported together with dilation_rate > 1, "
                       "received strides=" + arg(opt_.strides) + " and dilation_rate=" +
                       arg(opt_.dilation) + ".");
  }
  const char* type() const override {
    return opt_.rank == 2 ? "Conv2DTranspose" : "Conv1DTranspose";
  }
  Activation output_activation() const override { return opt_.activation; }

  void build(const Shape& input) override {
    window::check_input_rank(name_, type(), input, opt_.rank);
    const int r0 = opt_.rank == 2 ? 0 : 1;
    const long long in[2] = {opt_.rank == 2 ? input[0] : 1, input[opt_.rank - 1]};
    TAxis ax[2];
    for (int a = 0; a < 2; ++a) {
      const long long eff = (long long)(opt_.kernel[a] - 1) * opt_.dilation[a] + 1;
      ax[a] = t_axis(in[a], opt_.kernel[a], opt_.strides[a], opt_.dilation[a],
                     a < r0 ? Padding::Valid : opt_.padding, opt_.has_output_padding,
                     opt_.output_padding[a]);
      // Every index the conv kernels form stays below max(in * s, out) + 2 * eff + s.
      const long long span = std::max(in[a] * opt_.strides[a], ax[a].out) + 2 * eff +
                             opt_.strides[a];
      if (ax[a].out < 1 || span > INT_MAX) {
        const std::string op = opt_.has_output_padding
                                   ? ", output_padding " + window::arg_str(
                                         opt_.rank, opt_.output_padding[0], opt_.output_padding[1])
                                   : std::string();
        throw ValueError(
            "Layer '" + name_ + "' (" + type() + "): kernel_size " +
            window::arg_str(opt_.rank, opt_.kernel[0], opt_.kernel[1]) + ", strides " +
            window::arg_str(opt_.rank, opt_.strides[0], opt_.strides[1]) + ", dilation_rate " +
            window::arg_str(opt_.rank, opt_.dilation[0], opt_.dilation[1]) + op +
            " and padding='" + window::padding_name(opt_.padding) + "' over the input " +
            shape_str(input) + " give an output axis of " + std::to_string(ax[a].out) +
            " cells" + (ax[a].out < 1 ? ": it must be at least 1." : ", too large to compute."));
      }
    }
    const int C = input.back(), F = opt_.filters;
    const long long kc = (long long)opt_.kernel[0] * opt_.kernel[1] * F;
    if (kc > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): kernel_size " +
                       window::arg_str(opt_.rank, opt_.kernel[0], opt_.kernel[1]) + " with " +
                       std::to_string(F) + " filters makes " + std::to_string(kc) +
                       " kernel rows, more than 2^31 - 1.");
    // col holds H*W*Kc floats per sample (the GEMM's output before col2im); capped like the
    // model caps activations, so a large kernel on a large input cannot ask for absurd memory.
    const long long col = in[0] * in[1] * kc;
    if (col > kMaxColFloats)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): kernel_size " +
                       window::arg_str(opt_.rank, opt_.kernel[0], opt_.kernel[1]) + " with " +
                       std::to_string(F) + " filters over the input " + shape_str(input) +
                       " needs " + std::to_string(col) + " floats of workspace per sample, "
                       "more than 2^28: too large to compute.");
    kernels::WindowGeom g{};
    g.H = (int)ax[0].out;
    g.W = (int)ax[1].out;
    g.C = F;
    g.KH = opt_.kernel[0];
    g.KW = opt_.kernel[1];
    g.SH = opt_.strides[0];
    g.SW = opt_.strides[1];
    g.DH = opt_.dilation[0];
    g.DW = opt_.dilation[1];
    g.PT = (int)ax[0].pad;
    g.PL = (int)ax[1].pad;
    g.OH = (int)in[0];
    g.OW = (int)in[1];
    g_ = g;
    C_ = C;
    in_ = input;
    out_ = opt_.rank == 2 ? Shape{g.H, g.W, F} : Shape{g.W, F};
    pointwise_ = g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0 &&
                 g.H == g.OH && g.W == g.OW;
    params_.clear();
    Shape ks = opt_.rank == 2 ? Shape{g.KH, g.KW, F, C} : Shape{g.KW, F, C};
    params_.push_back(Param{"kernel", ks, {}, {}, opt_.kernel_l1, opt_.kernel_l2});
    if (opt_.use_bias) params_.push_back(Param{"bias", {F}, {}, {}, opt_.bias_l1, opt_.bias_l2});
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const int nt = batch_threads(n);
    if (ws_.size() < (size_t)nt) ws_.resize(nt);
    std::vector<float>& z = ctx.saved->a;
    const size_t out_sz = (size_t)g_.H * g_.W * g_.C;
    if (!in_place() && z.size() < (size_t)n * out_sz) z.resize((size_t)n * out_sz);
    batch_split::run(n, nt, [&](int t, int b0, int b1) {
      forward_range(x, y, z.data(), b0, b1, ws_[t]);
    });
  }

  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const int nt = batch_threads(n);
    if (ws_.size() < (size_t)nt) ws_.resize(nt);
    const float* z = ctx.saved->a.data();
    batch_split::run(n, nt, [&](int t, int b0, int b1) {
      backward_range(x, y, z, ctx.fused, dy, dx, b0, b1, ws_[t]);
    });
    // Per-thread dK^T (C x Kc) summed in thread order into the kernel's (Kc, C) layout.
    batch_split::sum_transposed(nt, kc(), C_, [&](int t) { return ws_[t].dwt.data(); },
                                params_[0].grad.data());
    if (opt_.use_bias)
      batch_split::sum(nt, opt_.filters, [&](int t) { return ws_[t].db.data(); },
                       params_[1].grad.data());
  }

 private:
  struct Workspace {
    std::vector<float> col, dz, dwt, db;
  };
  int kc() const { return g_.KH * g_.KW * g_.C; }
  // relu and linear run in place on y (relu's backward reads y > 0 as z > 0).
  bool in_place() const {
    return opt_.activation == Activation::Linear || opt_.activation == Activation::Relu;
  }
  // Floats of col and output per sample; samples per chunk; threads over the batch: as Conv.
  size_t sample_floats() const {
    return (size_t)g_.OH * g_.OW * kc() + (size_t)g_.H * g_.W * g_.C;
  }
  int chunk_samples(int n) const {
    return batch_split::chunk_samples(n, sample_floats(), kChunkFloats);
  }
  int batch_threads(int n) const {
    return batch_split::threads(n, sample_floats(), kChunkFloats);
  }

  // Samples [b0, b1): chunk by chunk GEMM, col2im, bias, activation, all in cache.
  void forward_range(const float* x, float* y, float* z, int b0, int b1, Workspace& ws) {
    const auto& K = kernels::table();
    const int F = opt_.filters, C = C_, Kc = kc();
    const size_t in_pos = (size_t)g_.OH * g_.OW, out_pos = (size_t)g_.H * g_.W;
    const float* w = params_[0].value.data();
    const float* bias = opt_.use_bias ? params_[1].value.data() : nullptr;
    const int chunk = chunk_samples(b1 - b0);
    if (!pointwise_) grow(ws.col, (size_t)chunk * in_pos * Kc);
    for (int s = b0; s < b1; s += chunk) {
      const int nb = std::min(chunk, b1 - s);
      const float* xc = x + (size_t)s * in_pos * C;
      float* yc = y + (size_t)s * out_pos * F;
      float* zc = in_place() ? yc : z + (size_t)s * out_pos * F;
      const long m_in = (long)nb * in_pos, m_out = (long)nb * out_pos;
      if (pointwise_) {
        // The kernel is (F, C): y = x . kernel^T + bias in one GEMM.
        K.sgemm(false, true, (int)m_in, F, C, 1.0f, xc, C, w, C, 0.0f, zc, F, bias);
      } else {
        K.sgemm(false, true, (int)m_in, Kc, C, 1.0f, xc, C, w, C, 0.0f, ws.col.data(), Kc,
                nullptr);
        K.col2im(g_, ws.col.data(), nb, zc);
        if (bias)
          for (long r = 0; r < m_out; ++r) {
            float* zr = zc + r * F;
            for (int f = 0; f < F; ++f) zr[f] += bias[f];
          }
      }
      if (opt_.activation != Activation::Linear)
        window::act_forward((int)opt_.activation, opt_.activation_alpha, zc, yc, m_out, F);
    }
  }

  // Samples [b0, b1): dx for them (a convolution of dz), and their dK^T and bias gradient.
  void backward_range(const float* x, const float* y, const float* z, bool fused,
                      const float* dy, float* dx, int b0, int b1, Workspace& ws) {
    const auto& K = kernels::table();
    const int F = opt_.filters, C = C_, Kc = kc();
    const size_t in_pos = (size_t)g_.OH * g_.OW, out_pos = (size_t)g_.H * g_.W;
    const Activation act = opt_.activation;
    const bool act_backward = act != Activation::Linear && !fused;
    const float* w = params_[0].value.data();
    const int chunk = chunk_samples(b1 - b0);
    if (act_backward) grow(ws.dz, (size_t)chunk * out_pos * F);
    if (!pointwise_) grow(ws.col, (size_t)chunk * in_pos * Kc);
    grow(ws.dwt, (size_t)C * Kc);
    grow(ws.db, F);
    std::fill(ws.dwt.begin(), ws.dwt.begin() + (size_t)C * Kc, 0.0f);
    std::fill(ws.db.begin(), ws.db.begin() + F, 0.0f);
    for (int s = b0; s < b1; s += chunk) {
      const int nb = std::min(chunk, b1 - s);
      const long m_in = (long)nb * in_pos, m_out = (long)nb * out_pos;
      const size_t o = (size_t)s * out_pos * F;
      const float* dz = dy + o;
      if (act_backward) {
        const float* zc = act == Activation::Relu ? y + o : z + o;
        window::act_backward((int)act, opt_.activation_alpha, zc, y + o, dy + o, ws.dz.data(),
                             m_out, F);
        dz = ws.dz.data();
      }
      if (opt_.use_bias) K.col_sum(dz, (int)m_out, F, ws.db.data(), true);
      const float* col = dz;  // pointwise: dz is its own col
      if (!pointwise_) {
        K.im2col(g_, dz, nb, ws.col.data());
        col = ws.col.data();
      }
      const float* xc = x + (size_t)s * in_pos * C;
      K.sgemm(true, false, C, Kc, (int)m_in, 1.0f, xc, C, col, Kc, 1.0f, ws.dwt.data(), Kc,
              nullptr);
      if (dx)
        K.sgemm(false, false, (int)m_in, C, Kc, 1.0f, col, Kc, w, C, 0.0f,
                dx + (size_t)s * in_pos * C, C, nullptr);
    }
  }

  ConvTransposeOptions opt_;
  kernels::WindowGeom g_{};
  int C_ = 0;
  bool pointwise_ = false;
  std::vector<Workspace> ws_;
};

}  // namespace

std::unique_ptr<Layer> make_conv_transpose(const ConvTransposeOptions& opt) {
  return std::make_unique<ConvTranspose>(opt);
}

}  // namespace shenjing
