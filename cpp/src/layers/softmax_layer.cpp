// Softmax(axis): Keras's softmax over one block of adjacent axes of each sample.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.hpp"
#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

std::string label(const std::string& name, const char* type) {
  return "Layer '" + name + "' (" + type + ")";
}

// Softmax over one block of consecutive axes (Keras's axis: an int or a list of them).
class Softmax final : public Layer {
 public:
  explicit Softmax(std::vector<int> axes) : axes_(std::move(axes)) {}
  const char* type() const override { return "Softmax"; }
  void build(const Shape& input) override {
    const int rank = (int)input.size(), ndim = rank + 1;
    std::vector<int> ax;
    for (int a : axes_) {
      if (a < -ndim || a >= ndim)
        throw ValueError(label(name_, "Softmax") + ": axis " + std::to_string(a) +
                         " is out of range for an input of rank " + std::to_string(ndim) + ".");
      const int p = a < 0 ? a + ndim : a;
      if (p == 0)
        throw ValueError(label(name_, "Softmax") + ": a softmax over the batch axis (axis 0) "
                         "is not supported.");
      if (std::find(ax.begin(), ax.end(), p - 1) == ax.end()) ax.push_back(p - 1);
    }
    std::sort(ax.begin(), ax.end());
    for (size_t i = 1; i < ax.size(); ++i)
      if (ax[i] != ax[i - 1] + 1)
        throw ValueError(label(name_, "Softmax") + ": the axes must be adjacent (a softmax over "
                         "separated axes is not supported).");
    in_ = out_ = input;
    outer_ = inner_ = len_ = 1;
    for (int d = 0; d < rank; ++d) {
      if (d < ax.front()) outer_ *= input[d];
      else if (d > ax.back()) inner_ *= input[d];
      else len_ *= input[d];
    }
  }
  // Over the last axis alone it is the softmax the cross-entropy loss fuses with.
  Activation output_activation() const override {
    return inner_ == 1 ? Activation::Softmax : Activation::Linear;
  }
  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t blocks = (size_t)n * outer_;
    if (inner_ == 1)  // rows of the last axes: the Activation layer's softmax kernel
      return kernels::table().act_forward((int)Activation::Softmax, 0.0f, x, y, blocks, len_);
    // Over a middle axis: a block is len_ rows of inner_ contiguous values, each column
    // (fixed j) one softmax; rows are walked whole so that the loops are contiguous and exp
    // runs on the kernels' vector exp.
    const auto& K = kernels::table();
    mx_.resize(inner_);
    sum_.resize(inner_);
    for (size_t b = 0; b < blocks; ++b) {
      const float* xs = x + b * len_ * inner_;
      float* ys = y + b * len_ * inner_;
      std::copy(xs, xs + inner_, mx_.begin());
      for (size_t k = 1; k < len_; ++k)
        for (size_t j = 0; j < inner_; ++j) mx_[j] = std::max(mx_[j], xs[k * inner_ + j]);
      std::fill(sum_.begin(), sum_.end(), 0.0);
      for (size_t k = 0; k < len_; ++k) {
        float* yr = ys + k * inner_;
        for (size_t j = 0; j < inner_; ++j) yr[j] = xs[k * inner_ + j] - mx_[j];
        K.vexp(yr, yr, inner_);
        for (size_t j = 0; j < inner_; ++j) sum_[j] += yr[j];
      }
      for (size_t j = 0; j < inner_; ++j) mx_[j] = (float)(1.0 / sum_[j]);
      for (size_t k = 0; k < len_; ++k)
        for (size_t j = 0; j < inner_; ++j) ys[k * inner_ + j] *= mx_[j];
    }
  }
  void backward(const float*, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t blocks = (size_t)n * outer_;
    if (ctx.fused) {  // the loss handed back dL/dz
      std::memcpy(dx, dy, blocks * len_ * inner_ * sizeof(float));
      return;
    }
    if (inner_ == 1)
      return kernels::table().act_backward((int)Activation::Softmax, 0.0f, nullptr, y, dy, dx,
                                           blocks, len_);
    sum_.resize(inner_);
    for (size_t b = 0; b < blocks; ++b) {
      const size_t o = b * len_ * inner_;
      std::fill(sum_.begin(), sum_.end(), 0.0);
      for (size_t k = 0; k < len_; ++k)
        for (size_t j = 0; j < inner_; ++j)
          sum_[j] += (double)dy[o + k * inner_ + j] * y[o + k * inner_ + j];
      for (size_t k = 0; k < len_; ++k)
        for (size_t j = 0; j < inner_; ++j) {
          const size_t e = o + k * inner_ + j;
          dx[e] = y[e] * (dy[e] - (float)sum_[j]);
        }
    }
  }

 private:
  std::vector<int> axes_;
  size_t outer_ = 1, len_ = 1, inner_ = 1;
  std::vector<float> mx_;  // scratch of one call: column maxima, then 1 / sums
  std::vector<double> sum_;
};

}  // namespace

std::unique_ptr<Layer> make_softmax(const std::vector<int>& axes) {
  return std::make_unique<Softmax>(axes);
}

}  // namespace shenjing
