// Dense: y = act(x W + b) over the last axis. x is (rows, in), W is (in, units), rows = n *
// (product of the leading per-sample dims), as Keras applies Dense to the last axis.
#include <algorithm>
#include <climits>
#include <vector>

#include "kernels/kernels.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class Dense final : public Layer {
 public:
  explicit Dense(const DenseOptions& opt) : opt_(opt) {
    if (opt.units <= 0)
      throw ValueError("Dense: units must be a positive integer, received " +
                       std::to_string(opt.units) + ".");
  }
  const char* type() const override { return "Dense"; }

  void build(const Shape& input) override {
    if (input.empty())
      throw ValueError("Layer '" + name_ + "' (Dense) expects an input with at least 1 axis "
                       "besides the batch, received shape " + shape_str(input) + ".");
    // Rows of the GEMM per sample; at most 2^31 - 1 so that a block of whole rows always fits
    // the GEMM's int M (the model caps a sample at 2^28 values, a C++ caller may not).
    const long long per_sample = shape_size(input) / input.back();
    if (per_sample > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (Dense): input shape " + shape_str(input) +
                       " has " + std::to_string(per_sample) + " rows per sample, more than "
                       "2^31 - 1.");
    rows_per_sample_ = (size_t)per_sample;
    in_ = input;
    out_ = input;
    out_.back() = opt_.units;
    const int fan_in = input.back();
    params_.clear();
    params_.push_back(Param{"kernel", {fan_in, opt_.units}, {}, {}, opt_.kernel_l1,
                            opt_.kernel_l2});
    if (opt_.use_bias) params_.push_back(Param{"bias", {opt_.units}, {}, {}});
  }

  Activation output_activation() const override { return opt_.activation; }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const auto& K = kernels::table();
    const size_t rows = (size_t)n * rows_per_sample_;
    const int fin = in_.back(), units = opt_.units;
    const float* w = params_[0].value.data();
    const float* bias = opt_.use_bias ? params_[1].value.data() : nullptr;
    // Linear writes y directly; otherwise keep the pre-activation z for backward, y = act(z).
    const bool linear = opt_.activation == Activation::Linear;
    std::vector<float>& zs = ctx.saved->a;
    if (!linear && zs.size() < rows * units) zs.resize(rows * units);
    float* z = linear ? y : zs.data();
    for_row_blocks(rows, [&](size_t r0, int m) {
      K.sgemm(false, false, m, units, fin, 1.0f, x + r0 * fin, fin, w, units, 0.0f,
              z + r0 * units, units, bias);
    });
    if (!linear) K.act_forward((int)opt_.activation, opt_.activation_alpha, z, y, rows, units);
  }

  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const auto& K = kernels::table();
    const size_t rows = (size_t)n * rows_per_sample_;
    const int fin = in_.back(), units = opt_.units;
    const float* dz = dy;
    if (opt_.activation != Activation::Linear && !ctx.fused) {
      if (dz_.size() < rows * units) dz_.resize(rows * units);
      K.act_backward((int)opt_.activation, opt_.activation_alpha, ctx.saved->a.data(), y, dy, dz_.data(),
                     rows, units);
      dz = dz_.data();
    }
    // dW = x^T dz (summed over the row blocks); db = column sums of dz; dx = dz W^T.
    float* dw = params_[0].grad.data();
    for_row_blocks(rows, [&](size_t r0, int m) {
      K.sgemm(true, false, fin, units, m, 1.0f, x + r0 * fin, fin, dz + r0 * units, units,
              r0 == 0 ? 0.0f : 1.0f, dw, units, nullptr);
    });
    if (opt_.use_bias) {
      float* db = params_[1].grad.data();
      for (int j = 0; j < units; ++j) db[j] = 0.0f;
      for (size_t r = 0; r < rows; ++r) {
        const float* d = dz + r * units;
        for (int j = 0; j < units; ++j) db[j] += d[j];
      }
    }
    if (dx)
      for_row_blocks(rows, [&](size_t r0, int m) {
        K.sgemm(false, true, m, fin, units, 1.0f, dz + r0 * units, units,
                params_[0].value.data(), units, 0.0f, dx + r0 * fin, fin, nullptr);
      });
  }

 private:
  // fn(first row, row count) over [0, rows) in blocks the GEMM's int M can hold: n samples of
  // rows_per_sample_ rows pass 2^31 for large batches of sequences or images.
  template <class Fn>
  static void for_row_blocks(size_t rows, Fn fn) {
    constexpr size_t kMaxRows = INT_MAX;
    size_t r0 = 0;
    do {  // once even for no rows: the GEMM then still sets dW to 0 (beta 0, K = 0)
      fn(r0, (int)std::min(kMaxRows, rows - r0));
      r0 += kMaxRows;
    } while (r0 < rows);
  }

  DenseOptions opt_;
  size_t rows_per_sample_ = 0;
  std::vector<float> dz_;  // scratch of one backward
};

}  // namespace

std::unique_ptr<Layer> make_dense(const DenseOptions& opt) { return std::make_unique<Dense>(opt); }

}  // namespace shenjing
