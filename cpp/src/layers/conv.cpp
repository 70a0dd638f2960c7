// Conv1D / Conv2D, channels last, as im2col + GEMM.
//   x (n, H, W, C); kernel (KH, KW, C, F) seen as a (KH*KW*C, F) matrix; y (n, OH, OW, F).
//   forward:        col = im2col(x)             (n*OH*OW, KH*KW*C)
//                   z   = col . kernel + bias   (n*OH*OW, F),  y = act(z)
//   weight grad:    dK  = col^T . dz,  db = column sums of dz
//   input grad:     dcol = dz . kernel^T,  dx = col2im(dcol)
// A 1x1 stride-1 unpadded convolution is a Dense over the channels: x is its own col.
// The batch is split over the threads by samples; each thread runs its samples in chunks
// (col plus output about kColChunk floats) so that each step reads what the previous one
// wrote while it is still in that core's cache: im2col -> GEMM -> activation; activation
// backward -> bias sum -> im2col -> dK -> dcol -> col2im, with single-threaded kernels and
// per-thread partial weight gradients summed in thread order afterwards (deterministic).
// Backward rebuilds col rather than keeping the batch's from forward: a cache-hot copy costs
// less than writing and re-reading the whole col through memory.
// Implicit forward (stride 1, no dilation, C >= kImplicitMinC, wide enough rows): no col at all.
// Each sample is copied into a zero-padded (Hp, Wp, C) image; then output cell q = oh*Wp + ow of
// the padded-width grid reads, for kernel row i, the KW*C floats at xp + (q + i*Wp)*C: op(A) of
// a GEMM with row stride C (overlapping rows), so z = sum over i of KH GEMMs (K = KW*C each),
// accumulated in a (.., F) buffer whose Wp - OW extra cells a row are dropped when copying to z.
// The weight gradient reads the same rows: dK^T[:, i*KW*C..] += dzp^T . (those rows), dzp being
// dz spread over the padded-width grid with zeros in the extra cells; dx still goes through
// dcol and col2im. Batches smaller than the
// thread count, or samples bigger than a chunk, run on one thread with threaded kernels.
// Workspaces are grow-only members: no allocation in steady state.
// Conv1D is Conv2D with one row.
#include <algorithm>
#include <cctype>
#include <climits>
#include <vector>

#include "layers/batch_split.hpp"
#include "layers/window.hpp"

namespace shenjing {

Padding padding_from_name(const std::string& name, const char* layer_type, bool allow_causal) {
  std::string s;
  for (char c : name) s += (char)std::tolower((unsigned char)c);
  if (s == "valid") return Padding::Valid;
  if (s == "same") return Padding::Same;
  if (s == "causal" && allow_causal) return Padding::Causal;
  throw ValueError(std::string(layer_type) + ": padding must be " +
                   (allow_causal ? "'valid', 'same' or 'causal'" : "'valid' or 'same'") +
                   ", received '" + name + "'.");
}

namespace {

using batch_split::grow;

// Implicit forward only over at least this many channels, and when the padded rows waste at
// most 1/4 of the GEMM rows (Wp <= OW * 5/4: measured a win at 28 and 14 cells a row with a
// 3x3 kernel, a loss at 7).
constexpr int kImplicitMinC = 8;

// Floats of col and output per chunk (512 KB). Backward holds col, dcol, dz and the input
// slice at once, so a chunk of a quarter of a 2 MB L2 keeps them all in cache: measured 13%
// faster on a small ResNet's training step than a whole L2's worth (1 << 19), and flat from
// 1 << 16 to 3 << 16. The test hook below changes it.
constexpr size_t kColChunkDefault = size_t(1) << 17;
size_t kColChunk = kColChunkDefault;

class Conv final : public Layer {
 public:
  explicit Conv(const ConvOptions& opt) : opt_(opt) {
    const char* t = type();
    auto positive = [&](const char* what, const int* v) {
      const int a = opt.rank == 2 ? v[0] : 1, b = v[1];
      if (a <= 0 || b <= 0)
        throw ValueError(std::string(t) + ": " + what + " must be positive integers, received " +
                         (opt.rank == 2 ? window::pair_str(v[0], v[1]) : std::to_string(b)) +
                         ".");
    };
    if (opt.rank != 1 && opt.rank != 2)
      throw ValueError("Conv: rank must be 1 or 2, received " + std::to_string(opt.rank) + ".");
    if (opt.filters <= 0)
      throw ValueError(std::string(t) + ": filters must be a positive integer, received " +
                       std::to_string(opt.filters) + ".");
    positive("kernel_size", opt.kernel);
    positive("strides", opt.strides);
    positive("dilation_rate", opt.dilation);
    if (opt.padding == Padding::Causal && opt.rank != 1)
      throw ValueError(std::string(t) + ": padding='causal' is only available for Conv1D.");
    if (opt_.rank == 1) opt_.kernel[0] = opt_.strides[0] = opt_.dilation[0] = 1;
  }
  const char* type() const override { return opt_.rank == 2 ? "Conv2D" : "Conv1D"; }

  void build(const Shape& input) override {
    kernels::WindowGeom g{};  // into g_ only once the build succeeds
    window::input_geometry(name_, type(), input, opt_.rank, g);
    g.KH = opt_.kernel[0];
    g.KW = opt_.kernel[1];
    g.SH = opt_.strides[0];
    g.SW = opt_.strides[1];
    g.DH = opt_.dilation[0];
    g.DW = opt_.dilation[1];
    const Padding ph = opt_.rank == 2 ? opt_.padding : Padding::Valid;
    window::output_geometry(name_, type(), opt_.rank, "kernel_size", ph, opt_.padding, input,
                            "Use padding='same', a smaller kernel, or a larger input.", g);
    // The GEMMs index the (KH*KW*C, F) kernel matrix with int.
    const long long kc = (long long)g.KH * g.KW * g.C;
    if (kc > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): kernel_size " +
                       window::arg_str(opt_.rank, g.KH, g.KW) + " over " + std::to_string(g.C) +
                       " input channels (input " + shape_str(input) + ") makes " +
                       std::to_string(kc) + " kernel rows, more than 2^31 - 1.");
    g_ = g;
    in_ = input;
    const int F = opt_.filters;
    out_ = opt_.rank == 2 ? Shape{g.OH, g.OW, F} : Shape{g.OW, F};
    pointwise_ = g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 && g.PL == 0;
    const int wp = g.OW + g.KW - 1, hp = g.OH + g.KH - 1;
    implicit_ = !pointwise_ && g.SH == 1 && g.SW == 1 && g.DH == 1 && g.DW == 1 &&
                g.C >= kImplicitMinC && wp >= g.PL + g.W && hp >= g.PT + g.H &&
                (long long)wp * 4 <= (long long)g.OW * 5;
    params_.clear();
    Shape ks = opt_.rank == 2 ? Shape{g.KH, g.KW, g.C, F} : Shape{g.KW, g.C, F};
    params_.push_back(Param{"kernel", ks, {}, {}, opt_.kernel_l1, opt_.kernel_l2});
    if (opt_.use_bias) params_.push_back(Param{"bias", {F}, {}, {}, opt_.bias_l1, opt_.bias_l2});
  }

  Activation output_activation() const override { return opt_.activation; }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const int nt = batch_threads(n);
    if (ws_.size() < (size_t)nt) ws_.resize(nt);
    const Activation act = opt_.activation;
    std::vector<float>& z = ctx.saved->a;
    if (act != Activation::Linear && act != Activation::Relu &&
        z.size() < (size_t)n * g_.OH * g_.OW * opt_.filters)
      z.resize((size_t)n * g_.OH * g_.OW * opt_.filters);
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
    // Sum the per-thread partial gradients in thread order (deterministic), transposing
    // dK^T (F x Kc) into the kernel's (Kc, F) layout.
    const int F = opt_.filters, Kc = g_.KH * g_.KW * g_.C;
    batch_split::sum_transposed(nt, Kc, F, [&](int t) { return ws_[t].dwt.data(); },
                                params_[0].grad.data());
    if (opt_.use_bias)
      batch_split::sum(nt, F, [&](int t) { return ws_[t].db.data(); }, params_[1].grad.data());
  }

 private:
  // Scratch of one thread, grow-only: col, dcol and dz of a chunk; partial dK^T and bias grad.
  struct Workspace {
    std::vector<float> col, dcol, dz, dwt, db, xp, zt;
  };

  // The zero-padded (Hp, Wp, C) copy of one sample xs (implicit path).
  void pad_sample(const float* xs, float* xp) const {
    const kernels::WindowGeom& g = g_;
    const int C = g.C, Wp = g.OW + g.KW - 1, Hp = g.OH + g.KH - 1;
    for (int hp = 0; hp < Hp; ++hp) {
      float* row = xp + (size_t)hp * Wp * C;
      const int ih = hp - g.PT;
      if (ih < 0 || ih >= g.H) {
        std::fill(row, row + (size_t)Wp * C, 0.0f);
        continue;
      }
      std::fill(row, row + (size_t)g.PL * C, 0.0f);
      std::copy(xs + (size_t)ih * g.W * C, xs + (size_t)(ih + 1) * g.W * C,
                row + (size_t)g.PL * C);
      std::fill(row + (size_t)(g.PL + g.W) * C, row + (size_t)Wp * C, 0.0f);
    }
  }

  // dK^T (F x Kc, in ws.dwt) += the implicit path's weight gradient of one sample xs whose
  // output gradient is dzs (OH*OW, F).
  void weight_grad_implicit(const float* xs, const float* dzs, Workspace& ws) const {
    const auto& K = kernels::table();
    const kernels::WindowGeom& g = g_;
    const int F = opt_.filters, C = g.C, Wp = g.OW + g.KW - 1, Hp = g.OH + g.KH - 1;
    const int KWC = g.KW * C, Kc = g.KH * KWC, M = (g.OH - 1) * Wp + g.OW;
    grow(ws.xp, (size_t)Hp * Wp * C);
    grow(ws.zt, (size_t)M * F);
    float* xp = ws.xp.data();
    float* dzp = ws.zt.data();
    pad_sample(xs, xp);
    for (int oh = 0; oh < g.OH; ++oh) {
      float* d = dzp + (size_t)oh * Wp * F;
      std::copy(dzs + (size_t)oh * g.OW * F, dzs + (size_t)(oh + 1) * g.OW * F, d);
      if (oh + 1 < g.OH) std::fill(d + (size_t)g.OW * F, d + (size_t)Wp * F, 0.0f);
    }
    for (int i = 0; i < g.KH; ++i)
      K.sgemm(true, false, F, KWC, M, 1.0f, dzp, F, xp + (size_t)i * Wp * C, C, 1.0f,
              ws.dwt.data() + (size_t)i * KWC, Kc, nullptr);
  }

  // Implicit forward of samples [b0, b1) (see the file comment): z rows of each sample into zc.
  void forward_implicit(const float* x, float* y, float* z, int b0, int b1, Workspace& ws) {
    const auto& K = kernels::table();
    const kernels::WindowGeom& g = g_;
    const int F = opt_.filters, C = g.C, Wp = g.OW + g.KW - 1, Hp = g.OH + g.KH - 1;
    const int KWC = g.KW * C;
    const int M = (g.OH - 1) * Wp + g.OW;  // last row read: (M - 1 + (KH-1)*Wp)*C + KWC <= Hp*Wp*C
    const size_t in_sz = (size_t)g.H * g.W * C, pos = (size_t)g.OH * g.OW;
    const Activation act = opt_.activation;
    const bool in_place = act == Activation::Linear || act == Activation::Relu;
    const float* w = params_[0].value.data();
    const float* bias = opt_.use_bias ? params_[1].value.data() : nullptr;
    grow(ws.xp, (size_t)Hp * Wp * C);
    grow(ws.zt, (size_t)M * F);
    float* xp = ws.xp.data();
    float* zt = ws.zt.data();
    for (int s = b0; s < b1; ++s) {
      pad_sample(x + s * in_sz, xp);
      for (int i = 0; i < g.KH; ++i)
        K.sgemm(false, false, M, F, KWC, 1.0f, xp + (size_t)i * Wp * C, C,
                w + (size_t)i * KWC * F, F, i == 0 ? 0.0f : 1.0f, zt, F,
                i == g.KH - 1 ? bias : nullptr);
      float* yc = y + (size_t)s * pos * F;
      float* zc = in_place ? yc : z + (size_t)s * pos * F;
      for (int oh = 0; oh < g.OH; ++oh)
        std::copy(zt + (size_t)oh * Wp * F, zt + ((size_t)oh * Wp + g.OW) * F,
                  zc + (size_t)oh * g.OW * F);
      if (act != Activation::Linear)
        window::act_forward((int)act, opt_.activation_alpha, zc, yc, (long)pos, F);
    }
  }

  // Floats of col and output per sample, and samples per chunk: enough rows for an efficient
  // GEMM, few enough that the chunk's col and output (kColChunk floats) stay in cache.
  size_t sample_floats() const {
    return (size_t)g_.OH * g_.OW * (g_.KH * g_.KW * g_.C + opt_.filters);
  }
  int chunk_samples(int n) const {
    return batch_split::chunk_samples(n, sample_floats(), kColChunk);
  }
  // Batches are split over the threads by samples, each thread running im2col, a
  // single-threaded GEMM and col2im on its own samples: no barrier inside the layer and each
  // core's chunk stays in its own cache. One thread (whose kernels then use all threads) when
  // there are fewer samples than threads or a sample does not fit a whole L2 (4 chunks: the
  // chunk is a quarter of it for backward's working set, but splitting by samples still pays
  // up to an L2's worth: 1.5x faster than threaded GEMMs for 28x28, 32 -> 64 channels).
  int batch_threads(int n) const {
    return batch_split::threads(n, sample_floats(), 4 * kColChunk);
  }

  // Samples [b0, b1): chunk by chunk im2col, GEMM (+ bias), activation, all in cache.
  // z: the node's saved pre-activations (written unless relu/linear).
  void forward_range(const float* x, float* y, float* z, int b0, int b1, Workspace& ws) {
    if (implicit_) return forward_implicit(x, y, z, b0, b1, ws);
    const auto& K = kernels::table();
    const int F = opt_.filters, Kc = g_.KH * g_.KW * g_.C;
    const size_t in_sz = (size_t)g_.H * g_.W * g_.C, pos = (size_t)g_.OH * g_.OW;
    const Activation act = opt_.activation;
    // relu and linear run in place on y (relu's backward reads y > 0 as z > 0); the others
    // keep z for backward.
    const bool in_place = act == Activation::Linear || act == Activation::Relu;
    const float* w = params_[0].value.data();
    const float* bias = opt_.use_bias ? params_[1].value.data() : nullptr;
    const int chunk = chunk_samples(b1 - b0);
    if (!pointwise_) grow(ws.col, (size_t)chunk * pos * Kc);
    for (int s = b0; s < b1; s += chunk) {
      const int nb = std::min(chunk, b1 - s);
      const long m = (long)nb * pos;
      const float* col = x + s * in_sz;
      if (!pointwise_) {
        K.im2col(g_, x + s * in_sz, nb, ws.col.data());
        col = ws.col.data();
      }
      float* yc = y + (size_t)s * pos * F;
      float* zc = in_place ? yc : z + (size_t)s * pos * F;
      K.sgemm(false, false, (int)m, F, Kc, 1.0f, col, Kc, w, F, 0.0f, zc, F, bias);
      if (act != Activation::Linear)
        window::act_forward((int)act, opt_.activation_alpha, zc, yc, m, F);
    }
  }

  // Samples [b0, b1): dx for them, and this range's dK^T and bias gradient into ws.
  void backward_range(const float* x, const float* y, const float* z, bool fused,
                      const float* dy, float* dx, int b0, int b1, Workspace& ws) {
    const auto& K = kernels::table();
    const int F = opt_.filters, Kc = g_.KH * g_.KW * g_.C;
    const size_t in_sz = (size_t)g_.H * g_.W * g_.C, pos = (size_t)g_.OH * g_.OW;
    const Activation act = opt_.activation;
    const bool act_backward = act != Activation::Linear && !fused;
    const float* w = params_[0].value.data();
    const int chunk = chunk_samples(b1 - b0);
    if (act_backward) grow(ws.dz, (size_t)chunk * pos * F);
    if (!pointwise_ && !implicit_) grow(ws.col, (size_t)chunk * pos * Kc);
    if (!pointwise_ && dx) grow(ws.dcol, (size_t)chunk * pos * Kc);
    grow(ws.dwt, (size_t)Kc * F);
    grow(ws.db, F);
    std::fill(ws.dwt.begin(), ws.dwt.begin() + (size_t)Kc * F, 0.0f);
    std::fill(ws.db.begin(), ws.db.begin() + F, 0.0f);
    for (int s = b0; s < b1; s += chunk) {
      const int nb = std::min(chunk, b1 - s);
      const long m = (long)nb * pos;
      const size_t o = (size_t)s * pos * F;
      const float* dz = dy + o;
      if (act_backward) {
        const float* zc = act == Activation::Relu ? y + o : z + o;
        window::act_backward((int)act, opt_.activation_alpha, zc, y + o, dy + o, ws.dz.data(), m,
                             F);
        dz = ws.dz.data();
      }
      if (opt_.use_bias) K.col_sum(dz, (int)m, F, ws.db.data(), true);
      if (implicit_) {
        for (int b = 0; b < nb; ++b)
          weight_grad_implicit(x + (s + b) * in_sz, dz + (size_t)b * pos * F, ws);
      } else {
        const float* col = x + s * in_sz;
        if (!pointwise_) {  // rebuilt: cheaper than keeping the batch's col through memory
          K.im2col(g_, x + s * in_sz, nb, ws.col.data());
          col = ws.col.data();
        }
        // dK^T (F x Kc) += dz^T col: measured faster than dK += col^T dz with this SGEMM.
        K.sgemm(true, false, F, Kc, (int)m, 1.0f, dz, F, col, Kc, 1.0f, ws.dwt.data(), Kc,
                nullptr);
      }
      if (!dx) continue;
      if (pointwise_) {
        K.sgemm(false, true, (int)m, Kc, F, 1.0f, dz, F, w, F, 0.0f, dx + s * in_sz, Kc,
                nullptr);
      } else {
        K.sgemm(false, true, (int)m, Kc, F, 1.0f, dz, F, w, F, 0.0f, ws.dcol.data(), Kc,
                nullptr);
        K.col2im(g_, ws.dcol.data(), nb, dx + s * in_sz);
      }
    }
  }

  ConvOptions opt_;
  kernels::WindowGeom g_{};
  bool pointwise_ = false;
  bool implicit_ = false;  // forward without im2col (see the file comment)
  std::vector<Workspace> ws_;
};

}  // namespace

std::unique_ptr<Layer> make_conv(const ConvOptions& opt) { return std::make_unique<Conv>(opt); }

void set_conv_chunk_floats(size_t floats) { kColChunk = floats ? floats : kColChunkDefault; }

}  // namespace shenjing
