// Dense: y = act(x W + b) over the last axis. x is (rows, in), W is (in, units), rows = n *
// (product of the leading per-sample dims), as Keras applies Dense to the last axis.
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
  void set_activation_fused(bool fused) override { fused_ = fused; }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const auto& K = kernels::table();
    const int rows = n * (int)(shape_size(in_) / in_.back());
    const int fin = in_.back(), units = opt_.units;
    const float* bias = opt_.use_bias ? params_[1].value.data() : nullptr;
    if (opt_.activation == Activation::Linear) {
      K.sgemm(false, false, rows, units, fin, 1.0f, x, fin, params_[0].value.data(), units, 0.0f,
              y, units, bias);
      return;
    }
    // Keep the pre-activation z for backward; y = act(z).
    if (z_.size() < (size_t)rows * units) z_.resize((size_t)rows * units);
    K.sgemm(false, false, rows, units, fin, 1.0f, x, fin, params_[0].value.data(), units, 0.0f,
            z_.data(), units, bias);
    K.act_forward((int)opt_.activation, opt_.activation_alpha, z_.data(), y, rows, units);
  }

  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext&) override {
    const auto& K = kernels::table();
    const int rows = n * (int)(shape_size(in_) / in_.back());
    const int fin = in_.back(), units = opt_.units;
    const float* dz = dy;
    if (opt_.activation != Activation::Linear && !fused_) {
      if (dz_.size() < (size_t)rows * units) dz_.resize((size_t)rows * units);
      K.act_backward((int)opt_.activation, opt_.activation_alpha, z_.data(), y, dy, dz_.data(),
                     rows, units);
      dz = dz_.data();
    }
    // dW = x^T dz; db = column sums of dz; dx = dz W^T.
    K.sgemm(true, false, fin, units, rows, 1.0f, x, fin, dz, units, 0.0f,
            params_[0].grad.data(), units, nullptr);
    if (opt_.use_bias) {
      float* db = params_[1].grad.data();
      for (int j = 0; j < units; ++j) db[j] = 0.0f;
      for (int r = 0; r < rows; ++r) {
        const float* d = dz + (size_t)r * units;
        for (int j = 0; j < units; ++j) db[j] += d[j];
      }
    }
    if (dx)
      K.sgemm(false, true, rows, fin, units, 1.0f, dz, units, params_[0].value.data(), units,
              0.0f, dx, fin, nullptr);
  }

 private:
  DenseOptions opt_;
  bool fused_ = false;
  std::vector<float> z_, dz_;
};

}  // namespace

std::unique_ptr<Layer> make_dense(const DenseOptions& opt) { return std::make_unique<Dense>(opt); }

}  // namespace shenjing
