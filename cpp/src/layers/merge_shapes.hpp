// What the merge layers (merge.cpp, concatenate.cpp, dot.cpp) share: their base class and
// their input-shape checks.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {

// "[(None, 3), (None, 4)]": the input shapes as an error message lists them.
inline std::string shapes_str(const std::vector<Shape>& inputs) {
  std::string s = "[";
  for (size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + shape_str(inputs[i]);
  return s + "]";
}

// Every input has positive dims and at most 8 axes besides the batch (the models' limit; the
// merge kernels keep per-axis state in fixed arrays), and at most 2^28 values per sample.
inline void check_merge_inputs(const std::string& label, const std::vector<Shape>& inputs) {
  for (const Shape& s : inputs) {
    bool ok = s.size() <= 8 && shape_size(s) <= (1LL << 28);
    for (int d : s) ok = ok && d > 0;
    if (!ok)
      throw ValueError(label + ": every input needs positive dimensions, at most 8 axes besides "
                       "the batch and at most 2^28 values per sample. Received: input_shape=" +
                       shapes_str(inputs) + ".");
  }
}

// Base of the layers that take a list of inputs. The model calls only the *_inputs functions
// on them; forward/backward on one tensor run them on a list of that one.
class MultiInputLayer : public Layer {
 public:
  bool multi_input() const override { return true; }
  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    forward_inputs(&x, y, n, ctx);
  }
  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    backward_inputs(&x, y, dy, &dx, n, ctx);
  }

 protected:
  // "Layer 'name' (Type)": how the build errors name the layer.
  std::string layer_label() const { return "Layer '" + name_ + "' (" + type() + ")"; }
  // Records the checked input shapes (in_ is the first) and the output shape.
  void set_shapes(const std::vector<Shape>& inputs, Shape out) {
    ins_ = inputs;
    in_ = inputs[0];
    out_ = std::move(out);
  }
};

}  // namespace shenjing
