// Activation layer: y = act(x), elementwise (softmax over the last axis).
#include <vector>

#include "kernels/kernels.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class ActivationLayer final : public Layer {
 public:
  ActivationLayer(Activation act, float alpha) : act_(act), alpha_(alpha) {}
  const char* type() const override { return "Activation"; }
  void build(const Shape& input) override {
    if (input.empty())
      throw ValueError("Layer '" + name_ + "' (Activation) needs at least 1 axis besides the "
                       "batch, received shape " + shape_str(input) + ".");
    in_ = out_ = input;
  }
  Activation output_activation() const override { return act_; }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t cols = in_.back(), rows = (size_t)n * shape_size(in_) / cols;
    kernels::table().act_forward((int)act_, alpha_, x, y, rows, cols);
  }
  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t cols = in_.back(), rows = (size_t)n * shape_size(in_) / cols;
    if (ctx.fused) {
      std::copy(dy, dy + rows * cols, dx);
      return;
    }
    kernels::table().act_backward((int)act_, alpha_, x, y, dy, dx, rows, cols);
  }

 private:
  Activation act_;
  float alpha_;
};

}  // namespace

std::unique_ptr<Layer> make_activation(Activation act, float alpha) {
  return std::make_unique<ActivationLayer>(act, alpha);
}

}  // namespace shenjing
