// conv: Keras's ops.conv(inputs, kernel) with the kernel a tensor of the graph (a Variable of
// a custom layer), channels last: inputs (n, W, C) or (n, H, W, C) batched, kernel (KW, C, F) or
// (KH, KW, C, F) unbatched. It runs the Conv1D/Conv2D layer's kernels (im2col + GEMM or the
// implicit path) on an internal layer without bias: forward copies the kernel tensor into that
// layer's param (a kernel is small next to the activations), backward hands the layer's kernel
// gradient to the kernel input.
// Attrs: strides (int or [s, s]), padding ("valid"/"same"), dilation_rate (int or [d, d]).
#include <cstring>

#include "ops/op.hpp"

namespace shenjing {
namespace {

class ConvOp final : public Op {
 public:
  ConvOp(int strides[2], int dilation[2], Padding padding) : Op("conv", 2), padding_(padding) {
    for (int i = 0; i < 2; ++i) strides_[i] = strides[i], dilation_[i] = dilation[i];
  }

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 2)
      throw ValueError(op_label() + " takes 2 inputs (inputs, kernel), received " +
                       std::to_string(inputs.size()) + ".");
    const Shape& x = inputs[0];
    const Shape& k = inputs[1];
    if (!batched(0) || batched(1))
      throw ValueError(op_label() + ": the inputs need the batch axis and the kernel must not "
                       "have it (a weight); received shapes " + shapes_str(inputs) + ".");
    const int rank = (int)k.size() - 2;
    if ((rank != 1 && rank != 2) || (int)x.size() != rank + 1 || x.back() != k[k.size() - 2])
      throw ValueError(op_label() + ": expected inputs (batch, [rows,] cols, channels) and a "
                       "kernel ([rows,] cols, channels, filters) with matching channels; "
                       "received input " + shape_str(x) + " (batch axis left out) and kernel " +
                       shape_str(k) + ".");
    ConvOptions o;
    o.rank = rank;
    o.filters = k.back();
    o.kernel[0] = rank == 2 ? k[0] : 1;
    o.kernel[1] = k[rank - 1];
    for (int i = 0; i < 2; ++i) o.strides[i] = strides_[i], o.dilation[i] = dilation_[i];
    if (rank == 1) o.strides[0] = o.dilation[0] = 1;
    o.padding = padding_;
    o.use_bias = false;
    conv_ = make_conv(o);
    conv_->set_name(name_);
    conv_->build(x);
    Param& kernel = conv_->params().at(0);
    kernel.value.assign((size_t)shape_size(kernel.shape), 0.0f);
    kernel.grad.assign(kernel.value.size(), 0.0f);
    set_op_shapes(inputs, conv_->output_shape(), true);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext& ctx) override {
    Param& kernel = conv_->params()[0];
    std::memcpy(kernel.value.data(), xs[1], kernel.value.size() * sizeof(float));
    conv_->forward(xs[0], y, n, ctx);
  }

  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext& ctx) override {
    Param& kernel = conv_->params()[0];
    std::memcpy(kernel.value.data(), xs[1], kernel.value.size() * sizeof(float));
    conv_->backward(xs[0], y, dy, dxs[0], n, ctx);
    if (dxs[1]) std::memcpy(dxs[1], kernel.grad.data(), kernel.grad.size() * sizeof(float));
  }

 private:
  int strides_[2], dilation_[2];
  Padding padding_;
  std::unique_ptr<Layer> conv_;
};

// An int or a list of 1 or 2 positive ints, as [rows, cols] (a single value for both).
void pair_field(const config::Fields& f, const char* key, int out[2]) {
  const json::Value* v = f.get(key);
  out[0] = out[1] = 1;
  if (!v) return;
  if (v->kind == json::Value::Kind::Number) {
    out[0] = out[1] = f.integer_value(key, *v, 1, config::kMaxDim);
    return;
  }
  if (v->kind != json::Value::Kind::Array || v->array.empty() || v->array.size() > 2)
    f.fail(key, "a positive integer or a list of 1 or 2", v);
  for (size_t i = 0; i < 2; ++i)
    out[i] = f.integer_value(key, v->array[std::min(i, v->array.size() - 1)], 1, config::kMaxDim);
}

}  // namespace

std::unique_ptr<Layer> conv_op_from_config(const std::string& op, const config::Fields& f) {
  if (op != "conv") return nullptr;
  int strides[2], dilation[2];
  pair_field(f, "strides", strides);
  pair_field(f, "dilation_rate", dilation);
  if ((strides[0] > 1 || strides[1] > 1) && (dilation[0] > 1 || dilation[1] > 1))
    throw ValueError("Op '" + f.name() + "' (conv): strides > 1 together with "
                     "dilation_rate > 1 is not supported.");
  const Padding padding = f.padding("conv", false);
  return std::make_unique<ConvOp>(strides, dilation, padding);
}

}  // namespace shenjing
