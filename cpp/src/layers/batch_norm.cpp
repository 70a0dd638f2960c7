// BatchNormalization over the last axis (C channels); x is (R, C) with R = n * the other
// per-sample dims, so it serves Dense outputs (R = n) and conv outputs (R = n*H*W) alike.
//   training:  mean, var = batch mean and biased variance per channel
//              y = gamma * (x - mean) / sqrt(var + eps) + beta
//              moving = moving * momentum + batch * (1 - momentum)
//   inference: the same with the moving statistics; also in training when the layer is frozen
//              (trainable = False), as Keras does: then dx = dy * gamma / sqrt(moving_var + eps).
//   backward (training), xhat = (x - mean) * inv_std:
//              dbeta = sum dy, dgamma = sum dy * xhat
//              dx = gamma * inv_std * (dy - dbeta / R - xhat * dgamma / R)
// Channel sums run over fixed blocks of rows (kernels::bn_block_sums: float within a block,
// double across blocks, added in block order): deterministic whatever the thread count. The
// batch variance takes one pass through memory: each block's squared deviations from its own
// mean (while the block is in cache), combined exactly as Chan et al.'s parallel variance.
// Data-parallel training (RunContext::allreduce): the statistics are the global batch's (sums
// over the processes; synchronized batch normalization), and backward's dbeta/dgamma terms in
// dx are too. Each process's dy is its own mean loss's, (N / n) times the global loss's for its
// n of the N rows, so the shared sums take each process's weighted by n / N and dx comes out
// (N / n) times the global one, which the gradient averaging (weights n / N) undoes.
#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include <omp.h>

#include "kernels/kernels.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class BatchNorm final : public Layer {
 public:
  explicit BatchNorm(const BatchNormOptions& opt) : opt_(opt) {
    if (!(opt.epsilon > 0.0f))
      throw ValueError("BatchNormalization: epsilon must be positive, received " +
                       std::to_string(opt.epsilon) + ".");
    if (!(opt.momentum >= 0.0f && opt.momentum <= 1.0f))
      throw ValueError("BatchNormalization: momentum must be in [0, 1], received " +
                       std::to_string(opt.momentum) + ".");
  }
  const char* type() const override { return "BatchNormalization"; }

  void build(const Shape& input) override {
    if (input.empty())
      throw ValueError("Layer '" + name_ + "' (BatchNormalization) expects an input with at "
                       "least 1 axis besides the batch, received shape " + shape_str(input) + ".");
    in_ = out_ = input;
    const int C = input.back();
    params_.clear();
    auto add = [&](const char* name, float init, bool trainable) {
      Param p{name, {C}, {}, {}};
      p.init = init;
      p.trainable = trainable;
      params_.push_back(std::move(p));
    };
    gamma_ = beta_ = -1;
    if (opt_.scale) {
      gamma_ = (int)params_.size();
      add("gamma", 1.0f, true);
    }
    if (opt_.center) {
      beta_ = (int)params_.size();
      add("beta", 0.0f, true);
    }
    mm_ = (int)params_.size();
    add("moving_mean", 0.0f, false);
    add("moving_variance", 1.0f, false);
    a_.assign(C, 0.0f);
    b_.assign(C, 0.0f);
    k1_.assign(C, 0.0f);
    s0_.assign(C, 0.0);
    s1_.assign(C, 0.0);
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const int C = in_.back();
    const long R = (long)n * (shape_size(in_) / C);
    const float* gamma = gamma_ >= 0 ? params_[gamma_].value.data() : nullptr;
    const float* beta = beta_ >= 0 ? params_[beta_].value.data() : nullptr;
    float* mm = params_[mm_].value.data();
    float* mv = params_[mm_ + 1].value.data();
    if (ctx.training && trainable_) {
      // The batch statistics backward needs, kept per node: mean (C) then 1 / std (C).
      std::vector<float>& saved = ctx.saved->a;
      if (saved.size() < 2 * (size_t)C) saved.resize(2 * (size_t)C);
      float* mean = saved.data();
      float* inv_std = mean + C;
      // Mean and mean squared deviation (biased variance, as Keras), s0 = mean, s1 = R * var.
      moments(x, R, C, s0_.data(), s1_.data());
      long rows = R;  // the global batch's rows (all processes')
      if (ctx.allreduce) rows = global_moments(*ctx.allreduce, R, C);
      ctx.saved->idx.assign(1, (int)std::min<long>(rows, INT_MAX));
      for (int c = 0; c < C; ++c) mean[c] = (float)s0_[c];
      const float m = opt_.momentum;
      for (int c = 0; c < C; ++c) {
        const float var = (float)(s1_[c] / rows);
        inv_std[c] = 1.0f / std::sqrt(var + opt_.epsilon);
        mm[c] = mm[c] * m + mean[c] * (1.0f - m);
        mv[c] = mv[c] * m + var * (1.0f - m);
        a_[c] = (gamma ? gamma[c] : 1.0f) * inv_std[c];
        b_[c] = (beta ? beta[c] : 0.0f) - mean[c] * a_[c];
      }
    } else {
      inference_scale(a_.data());
      for (int c = 0; c < C; ++c) b_[c] = (beta ? beta[c] : 0.0f) - mm[c] * a_[c];
    }
    const float* a = a_.data();
    const float* b = b_.data();
#pragma omp parallel for schedule(static) if (R * C > 65536)
    for (long r = 0; r < R; ++r) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      for (int c = 0; c < C; ++c) yr[c] = xr[c] * a[c] + b[c];
    }
  }

  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const int C = in_.back();
    const long R = (long)n * (shape_size(in_) / C);
    if (!trainable_) {  // frozen: forward was the affine inference map y = a x + b
      for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
      if (!dx) return;
      inference_scale(a_.data());
      const float* a = a_.data();
#pragma omp parallel for schedule(static) if (R * C > 65536)
      for (long r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) dx[r * C + c] = dy[r * C + c] * a[c];
      return;
    }
    // s0 = sum dy, s1 = sum dy * (x - mean).
    const float* mean = ctx.saved->a.data();
    const float* inv_std = mean + C;
    dot_sums(dy, x, mean, R, C, s0_.data(), s1_.data());
    // The sums dx needs: this process's, or the global batch's (see the top of the file).
    const std::vector<double>* g0 = &s0_;
    const std::vector<double>* g1 = &s1_;
    if (ctx.allreduce) {
      const double share = (double)R / ctx.saved->idx[0];
      sync_.resize(2 * (size_t)C);
      for (int c = 0; c < C; ++c) {
        sync_[c] = s0_[c] * share;
        sync_[C + c] = s1_[c] * share;
      }
      (*ctx.allreduce)(sync_.data(), sync_.size());
      g0_.assign(sync_.begin(), sync_.begin() + C);
      g1_.assign(sync_.begin() + C, sync_.end());
      g0 = &g0_;
      g1 = &g1_;
    }
    float* dgamma = gamma_ >= 0 ? params_[gamma_].grad.data() : nullptr;
    float* dbeta = beta_ >= 0 ? params_[beta_].grad.data() : nullptr;
    const float* gamma = gamma_ >= 0 ? params_[gamma_].value.data() : nullptr;
    for (int c = 0; c < C; ++c) {
      const float dg = (float)(s1_[c] * inv_std[c]);
      if (dgamma) dgamma[c] = dg;
      if (dbeta) dbeta[c] = (float)s0_[c];
      // dx = k * dy + k1 * (x - mean) + k0
      const float k = (gamma ? gamma[c] : 1.0f) * inv_std[c];
      a_[c] = k;
      b_[c] = -k * (float)((*g0)[c] / R);                                   // k0
      k1_[c] = (float)(-(double)k * inv_std[c] * ((*g1)[c] * inv_std[c]) / R);  // k1
    }
    // The moving statistics are not trained: their gradient stays zero.
    std::fill(params_[mm_].grad.begin(), params_[mm_].grad.end(), 0.0f);
    std::fill(params_[mm_ + 1].grad.begin(), params_[mm_ + 1].grad.end(), 0.0f);
    if (!dx) return;
    const float* k = a_.data();
    const float* k0 = b_.data();
    const float* k1 = k1_.data();
#pragma omp parallel for schedule(static) if (R * C > 65536)
    for (long r = 0; r < R; ++r) {
      const float* xr = x + r * C;
      const float* gr = dy + r * C;
      float* dr = dx + r * C;
      for (int c = 0; c < C; ++c) dr[c] = k[c] * gr[c] + k1[c] * (xr[c] - mean[c]) + k0[c];
    }
  }

 private:
  // a = gamma / sqrt(moving_variance + epsilon): the inference scale (per channel).
  void inference_scale(float* a) const {
    const float* gamma = gamma_ >= 0 ? params_[gamma_].value.data() : nullptr;
    const float* mv = params_[mm_ + 1].value.data();
    for (int c = 0; c < in_.back(); ++c)
      a[c] = (gamma ? gamma[c] : 1.0f) / std::sqrt(mv[c] + opt_.epsilon);
  }

  // The blocks' partial sums (kernels::bn_block_sums), 3*C floats a block.
  float* block_sums(const float* v, const float* w, const float* shift, long R, int C) {
    const long nb = (R + kernels::kBnBlockRows - 1) / kernels::kBnBlockRows;
    if ((long)part_.size() < nb * 3 * C) part_.resize(nb * 3 * C);
    kernels::table().bn_block_sums(v, w, shift, R, C, part_.data());
    return part_.data();
  }

  // mean[c] and m2[c] = sum_r (x[r, c] - mean[c])^2 over the R rows of x, combining the blocks'
  // sums s, means mb and squared deviations q in double, in block order:
  //   m2 = sum_b q_b + 2 (mb_b - mean)(s_b - n_b mb_b) + n_b (mb_b - mean)^2.
  void moments(const float* x, long R, int C, double* mean, double* m2) {
    const float* part = block_sums(x, nullptr, nullptr, R, C);
    const long bs = kernels::kBnBlockRows, nb = (R + bs - 1) / bs;
    for (int c = 0; c < C; ++c) mean[c] = m2[c] = 0.0;
    for (long blk = 0; blk < nb; ++blk)
      for (int c = 0; c < C; ++c) mean[c] += part[blk * 3 * C + c];
    for (int c = 0; c < C; ++c) mean[c] /= (double)R;
    for (long blk = 0; blk < nb; ++blk) {
      const float* p = part + blk * 3 * C;
      const double n = (double)std::min(bs, R - blk * bs);
      for (int c = 0; c < C; ++c) {
        const double d = (double)p[C + c] - mean[c];
        m2[c] += (double)p[2 * C + c] + 2.0 * d * ((double)p[c] - n * p[C + c]) + n * d * d;
      }
    }
  }

  // Turns this process's mean (s0_) and squared deviations (s1_) over R rows into the global
  // batch's, summing [sums, squared deviations about 0, rows] over the processes (double);
  // returns the global row count.
  long global_moments(const AllreduceFn& allreduce, long R, int C) {
    sync_.resize(2 * (size_t)C + 1);
    for (int c = 0; c < C; ++c) {
      sync_[c] = s0_[c] * R;
      sync_[C + c] = s1_[c] + R * s0_[c] * s0_[c];
    }
    sync_[2 * C] = (double)R;
    allreduce(sync_.data(), sync_.size());
    const double N = sync_[2 * C];
    for (int c = 0; c < C; ++c) {
      s0_[c] = sync_[c] / N;
      s1_[c] = std::max(0.0, sync_[C + c] - N * s0_[c] * s0_[c]);
    }
    return (long)N;
  }

  // out0[c] = sum_r v[r, c] and out1[c] = sum_r v[r, c] * (w[r, c] - shift[c]).
  void dot_sums(const float* v, const float* w, const float* shift, long R, int C,
                double* out0, double* out1) {
    const float* part = block_sums(v, w, shift, R, C);
    const long nb = (R + kernels::kBnBlockRows - 1) / kernels::kBnBlockRows;
    for (int c = 0; c < C; ++c) out0[c] = out1[c] = 0.0;
    for (long blk = 0; blk < nb; ++blk) {
      const float* p = part + blk * 3 * C;
      for (int c = 0; c < C; ++c) {
        out0[c] += p[c];
        out1[c] += p[C + c];
      }
    }
  }

  BatchNormOptions opt_;
  int gamma_ = -1, beta_ = -1, mm_ = 0;
  std::vector<float> a_, b_, k1_, part_;  // scratch of one call
  std::vector<double> s0_, s1_, sync_, g0_, g1_;
};

}  // namespace

std::unique_ptr<Layer> make_batch_norm(const BatchNormOptions& opt) {
  return std::make_unique<BatchNorm>(opt);
}

}  // namespace shenjing
