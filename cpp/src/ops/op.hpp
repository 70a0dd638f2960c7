// Primitive ops (shenjing.ops traced into the graph): the nodes custom layers, models, losses
// and metrics are made of. Unlike layers, an op's tensors may lack the batch axis: weights
// (`variable`), constants, and reductions over the batch axis are "unbatched". The model tells
// an op which inputs are batched (set_batched) before build_inputs; the op works out its
// output's shape and whether it is batched.
//
// Shapes: ins_[i] is input i's shape without the batch axis when it is batched, its full shape
// otherwise; out_ likewise. An op's attributes count axes as Keras does, on the full shape
// (axis 0 is the batch axis of a batched tensor). At run time a batched tensor holds n * size
// floats, an unbatched one size floats.
//
// Backward: dxs[i] (null: not needed) is overwritten with dL/dx_i, of input i's full size;
// gradients of inputs that were broadcast are summed over the broadcast axes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/config_fields.hpp"
#include "layers/merge_shapes.hpp"

namespace shenjing {

class Op : public MultiInputLayer {
 public:
  const char* type() const override { return "Op"; }
  const std::string& op() const { return op_; }
  bool accepts_unbatched() const override { return true; }
  void set_batched(const std::vector<char>& batched) override { in_batched_ = batched; }
  bool output_batched() const override { return out_batched_; }
  int min_inputs() const override { return arity_min_; }
  void build(const Shape& input) override { build_inputs({input}); }

 protected:
  explicit Op(std::string op, int min_inputs = 1) : op_(std::move(op)), arity_min_(min_inputs) {}
  // "Op 'name' (add)": how errors name the node.
  std::string op_label() const { return "Op '" + name_ + "' (" + op_ + ")"; }
  bool batched(size_t i) const { return i < in_batched_.size() && in_batched_[i]; }
  // Input i's full shape at batch size n (the batch axis first when it has one).
  Shape full_in(size_t i, int n) const {
    Shape s = ins_[i];
    if (batched(i)) s.insert(s.begin(), n);
    return s;
  }
  Shape full_out(int n) const {
    Shape s = out_;
    if (out_batched_) s.insert(s.begin(), n);
    return s;
  }
  // Floats of input i / of the output at batch size n.
  long long in_size(size_t i, int n) const {
    return shape_size(ins_[i]) * (batched(i) ? n : 1);
  }
  long long out_size(int n) const { return shape_size(out_) * (out_batched_ ? n : 1); }
  // Keras axis `axis` (negative from the end) of a tensor of full rank `rank`, or ValueError.
  int norm_axis(int axis, int rank) const {
    if (axis < -rank || axis >= rank)
      throw ValueError(op_label() + ": axis " + std::to_string(axis) + " is out of bounds for "
                       "a tensor of rank " + std::to_string(rank) + ".");
    return axis < 0 ? axis + rank : axis;
  }
  // Records the input shapes and the output (shape without the batch axis when batched).
  void set_op_shapes(const std::vector<Shape>& inputs, Shape out, bool out_batched) {
    ins_ = inputs;
    in_ = inputs.empty() ? Shape{} : inputs[0];
    out_ = std::move(out);
    out_batched_ = out_batched;
  }

  std::string op_;
  std::vector<char> in_batched_;
  bool out_batched_ = true;
  int arity_min_ = 1;
};

// The op named by config field "op", with its attributes read from the same config (checked:
// ValueError naming the node and the field); nullptr when the name is none of this family's.
// One decoder per file of ops; op_from_config (op_config.cpp) asks each in turn.
std::unique_ptr<Layer> elementwise_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> reduce_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> axis_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> matmul_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> index_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> shape_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> source_op_from_config(const std::string& op, const config::Fields& f);
std::unique_ptr<Layer> conv_op_from_config(const std::string& op, const config::Fields& f);
// {"class_name": "Op", "config": {"name": ..., "op": "add", ...}} -> the op, or ValueError.
std::unique_ptr<Layer> op_from_config(const config::Fields& f);

}  // namespace shenjing
