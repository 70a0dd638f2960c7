// LayerNormalization over the trailing per-sample axes (Keras 3). x is (R, D): R = n * the
// dims before the normalized axes, D = the normalized axes' size; a row is one sample's block.
//   mean, var = the row's mean and biased variance; rstd = 1 / sqrt(var + eps)
//   standard:      y = (x - mean) * rstd * gamma + beta
//   rms_scaling:   y = x * rstd * gamma (Keras's deprecated variant: it divides x by the
//                  centred standard deviation, not by the root mean square; no beta)
//   backward, u = what multiplies gamma ((x - mean) * rstd, or x * rstd), g = gamma * dy:
//   standard:      dx = rstd * (g - mean(g) - xhat * mean(g * u))
//   rms_scaling:   dx = rstd * (g - xhat * mean(g * u)), xhat = (x - mean) * rstd
//                  dgamma = sum over rows of dy * u, dbeta = sum over rows of dy
// Row statistics, in float: a first mean m0, then the deviations d = x - m0 (exact for x near
// m0) whose sum refines the mean and corrects the variance (the corrected two-pass
// algorithm); x - mean is then taken as (x - hi) - lo with the mean split into two floats.
// So a row with a large mean and a small spread keeps its precision: at mean 1e4 and std 1
// the output is within 2e-6 of the exact result, where torch's float kernel is 6e-3 off.
// Every row sum is in a fixed order for a given build (no atomics, nothing per thread).
// Parameter gradients sum fixed blocks of rows (their size depends on R only, never on the
// thread count) into float partials, then add the blocks in order in double: the same bits
// for any number of threads.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

std::string axes_str(const std::vector<int>& axes) {
  std::string s = "[";
  for (size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
  return s + "]";
}

// The sum of x[0, D) in kLanes independent float accumulators: the loop vectorises without
// waiting on one chain of dependent adds, and the order of the additions is fixed here, not
// by the vector width the compiler picks. (GCC compiles loops with two such accumulator
// arrays badly; those are `omp simd` reductions.)
constexpr long kLanes = 16;
inline float lane_sum(const float* x, long D) {
  float a[kLanes] = {};
  long c = 0;
  for (; c + kLanes <= D; c += kLanes)
    for (long j = 0; j < kLanes; ++j) a[j] += x[c + j];
  for (long j = 0; c + j < D; ++j) a[j] += x[c + j];
  for (long w = kLanes / 2; w > 0; w /= 2)  // pairwise: ((a0 + a8) + (a4 + a12)) + ...
    for (long j = 0; j < w; ++j) a[j] += a[j + w];
  return a[0];
}

class LayerNorm final : public Layer {
 public:
  explicit LayerNorm(const LayerNormOptions& opt) : opt_(opt) {
    if (!(opt.epsilon > 0.0f) || !std::isfinite(opt.epsilon))
      throw ValueError("LayerNormalization: epsilon must be a positive number, received " +
                       std::to_string(opt.epsilon) + ".");
    if (opt.axes.empty() || opt.axes.size() > 8)
      throw ValueError("LayerNormalization: axis must be an integer or a list of 1 to 8 "
                       "integers, received " + axes_str(opt.axes) + ".");
  }
  const char* type() const override { return "LayerNormalization"; }

  void build(const Shape& input) override {
    const int rank = (int)input.size();  // per-sample rank; Keras's axes count the batch too
    const std::string who = "Layer '" + name_ + "' (LayerNormalization)";
    if (rank == 0)
      throw ValueError(who + " expects an input with at least 1 axis besides the batch, "
                       "received shape " + shape_str(input) + ".");
    const std::string given = "axis=" + axes_str(opt_.axes) + " for input shape " +
                              shape_str(input);
    // Keras sorts the axes as written and gives gamma/beta the dims in that order; they must
    // also be in input order (no [1, -1]) so that the weights are laid out as the rows are.
    std::vector<int> sorted = opt_.axes;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> canon;
    for (int a : sorted) {
      const int c = a < 0 ? a + rank + 1 : a;
      if (c < 0 || c > rank)
        throw ValueError(who + ": axis " + std::to_string(a) + " is out of bounds, received " +
                         given + ".");
      if (c == 0)
        throw ValueError(who + ": the batch axis (0) cannot be normalized, received " + given +
                         ".");
      if (std::find(canon.begin(), canon.end(), c) != canon.end())
        throw ValueError(who + ": duplicate axes are not allowed, received " + given + ".");
      if (!canon.empty() && c < canon.back())
        throw ValueError(who + ": axes mixing negative and positive numbers must be in the "
                         "input's order once sorted (write them all positive or all negative), "
                         "received " + given + ".");
      canon.push_back(c);
    }
    const int k = (int)canon.size();
    if (canon.front() != rank - k + 1)  // increasing and distinct: trailing iff it starts there
      throw ValueError(who + ": only trailing axes can be normalized (the last axis, or the "
                       "last few axes together, e.g. axis=-1 or [-2, -1]), received " + given +
                       ".");
    in_ = out_ = input;
    Shape wshape(input.end() - k, input.end());
    D_ = shape_size(wshape);
    rows_per_sample_ = shape_size(input) / D_;
    params_.clear();
    gamma_ = beta_ = -1;
    if (opt_.scale || opt_.rms_scaling) {  // Keras's rule: rms_scaling always has gamma
      gamma_ = (int)params_.size();
      Param p{"gamma", wshape, {}, {}, opt_.gamma_l1, opt_.gamma_l2};
      p.init = 1.0f;
      params_.push_back(std::move(p));
    }
    if (opt_.center && !opt_.rms_scaling) {
      beta_ = (int)params_.size();
      params_.push_back(Param{"beta", wshape, {}, {}, opt_.beta_l1, opt_.beta_l2});
    }
    ones_.assign(D_, 1.0f);
    zeros_.assign(D_, 0.0f);
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const long R = (long)n * rows_per_sample_, D = D_;
    // Kept per node for backward, R floats each: each row's mean as hi + lo, and its rstd.
    std::vector<float>& st = ctx.saved->a;
    if ((long)st.size() < 3 * R) st.resize(3 * R);
    float* mean = st.data();
    float* mean_lo = mean + R;
    float* rstd = mean + 2 * R;
    const float* g = gamma_ >= 0 ? params_[gamma_].value.data() : ones_.data();
    const float* b = beta_ >= 0 ? params_[beta_].value.data() : zeros_.data();
    const bool rms = opt_.rms_scaling;
    const float eps = opt_.epsilon;
    const double inv_d = 1.0 / (double)D;
#pragma omp parallel for schedule(static) if (R * D > 65536)
    for (long r = 0; r < R; ++r) {
      const float* xr = x + r * D;
      float* yr = y + r * D;
      // A first mean m0, then the deviations d = x - m0 (exact for x near m0, Sterbenz):
      // their sum e refines the mean to m0 + e / D and corrects the variance (the corrected
      // two-pass algorithm), so float sums of values of the row's spread keep the precision
      // whatever the mean.
      const float m0 = lane_sum(xr, D) / (float)D;
      float q = 0.0f, e = 0.0f;  // sum d^2, sum d
#pragma omp simd reduction(+ : q, e)
      for (long c = 0; c < D; ++c) {
        const float d = xr[c] - m0;
        q += d * d;
        e += d;
      }
      const double mu = (double)m0 + (double)e * inv_d;
      const float var = (float)std::max(0.0, ((double)q - (double)e * e * inv_d) * inv_d);
      const float m = (float)mu, ml = (float)(mu - m), rs = 1.0f / std::sqrt(var + eps);
      mean[r] = m;
      mean_lo[r] = ml;
      rstd[r] = rs;
      // u = (x - um) - uml, times rstd: centred, or x itself for rms_scaling (b is zeros then).
      const float um = rms ? 0.0f : m, uml = rms ? 0.0f : ml;
#pragma omp simd
      for (long c = 0; c < D; ++c) yr[c] = ((xr[c] - um) - uml) * rs * g[c] + b[c];
    }
  }

  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const long R = (long)n * rows_per_sample_, D = D_;
    const bool grads = trainable_ && !params_.empty();
    if (!grads)  // frozen or weightless: the optimizer reads no gradient, keep it defined
      for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    if (!grads && !dx) return;
    const float* mean = ctx.saved->a.data();
    const float* mean_lo = mean + R;
    const float* rstd = mean + 2 * R;
    const float* g = gamma_ >= 0 ? params_[gamma_].value.data() : ones_.data();
    const bool rms = opt_.rms_scaling;
    // Fixed blocks of rows: about 64 of them (parallel work), at most 256 rows each (float
    // partial sums stay short). Partials take 2 * D floats a block: at most 128 * D, or
    // 1/128 of the activation once there are more than 64 blocks.
    const long bs = std::min(256L, std::max(1L, (R + 63) / 64));
    const long nb = (R + bs - 1) / bs;
    if (grads && (long)part_.size() < nb * 2 * D) part_.resize(nb * 2 * D);
    float* part = part_.data();
#pragma omp parallel for schedule(static) if (R * D > 65536)
    for (long blk = 0; blk < nb; ++blk) {
      float* pg = grads ? part + blk * 2 * D : nullptr;  // sum dy * u over the block's rows
      float* pb = grads ? pg + D : nullptr;              // sum dy
      if (grads)
        for (long c = 0; c < 2 * D; ++c) pg[c] = 0.0f;
      const long r1 = std::min(R, (blk + 1) * bs);
      for (long r = blk * bs; r < r1; ++r) {
        const float* xr = x + r * D;
        const float* gr = dy + r * D;
        const float m = mean[r], ml = mean_lo[r], rs = rstd[r];
        const float um = rms ? 0.0f : m, uml = rms ? 0.0f : ml;  // u as forward took it
        float s1 = 0.0f, s2 = 0.0f;  // sum gamma*dy, sum gamma*dy*u
        if (grads) {  // one pass: the row sums and the block's partial dgamma, dbeta
#pragma omp simd reduction(+ : s1, s2)
          for (long c = 0; c < D; ++c) {
            const float u = ((xr[c] - um) - uml) * rs, gd = g[c] * gr[c];
            s1 += gd;
            s2 += gd * u;
            pg[c] += gr[c] * u;
            pb[c] += gr[c];
          }
        } else {
#pragma omp simd reduction(+ : s1, s2)
          for (long c = 0; c < D; ++c) {
            const float gd = g[c] * gr[c];
            s1 += gd;
            s2 += gd * (((xr[c] - um) - uml) * rs);
          }
        }
        if (!dx) continue;
        float* dr = dx + r * D;
        const float k1 = rms ? 0.0f : s1 / (float)D, k2 = s2 / (float)D;
#pragma omp simd
        for (long c = 0; c < D; ++c)
          dr[c] = rs * (g[c] * gr[c] - k1 - ((xr[c] - m) - ml) * rs * k2);
      }
    }
    if (!grads) return;
    // The blocks' partials, added in block order in double.
    acc_.assign(2 * D, 0.0);
    double* acc = acc_.data();
    for (long blk = 0; blk < nb; ++blk) {
      const float* p = part + blk * 2 * D;
#pragma omp simd
      for (long c = 0; c < 2 * D; ++c) acc[c] += p[c];
    }
    if (gamma_ >= 0) {
      float* dg = params_[gamma_].grad.data();
      for (long c = 0; c < D; ++c) dg[c] = (float)acc[c];
    }
    if (beta_ >= 0) {
      float* db = params_[beta_].grad.data();
      for (long c = 0; c < D; ++c) db[c] = (float)acc[D + c];
    }
  }

 private:
  LayerNormOptions opt_;
  long D_ = 0, rows_per_sample_ = 0;
  int gamma_ = -1, beta_ = -1;
  std::vector<float> ones_, zeros_;  // gamma / beta when the layer has none
  std::vector<float> part_;  // scratch of one backward
  std::vector<double> acc_;
};

}  // namespace

std::unique_ptr<Layer> make_layer_norm(const LayerNormOptions& opt) {
  return std::make_unique<LayerNorm>(opt);
}

}  // namespace shenjing
