// Source ops: nodes with no inputs whose output has no batch axis.
//   variable: a weight made by `Layer.add_weight` (one Param named after the weight); the
//     model reads the param in place (source_output), backward hands dL/dy to its gradient.
//   constant: values fixed in the graph (NumPy arrays and Python numbers in traced code),
//     stored in the config so that a saved model needs no Python to run.
#include <cstring>

#include "ops/op.hpp"

namespace shenjing {
namespace {

class Variable final : public Op {
 public:
  Variable(Shape shape, std::string weight, bool trainable, float l1, float l2)
      : Op("variable", 0), shape_(std::move(shape)) {
    Param p;
    p.name = std::move(weight);
    p.shape = shape_;
    p.trainable = trainable;
    p.l1 = l1;
    p.l2 = l2;
    params_.push_back(std::move(p));
  }
  void build_inputs(const std::vector<Shape>& inputs) override {
    if (!inputs.empty()) throw ValueError(op_label() + " takes no inputs.");
    set_op_shapes(inputs, shape_, false);
  }
  const float* source_output() const override { return params_[0].value.data(); }
  void forward_inputs(const float* const*, float* y, int, const RunContext&) override {
    std::memcpy(y, params_[0].value.data(), params_[0].value.size() * sizeof(float));
  }
  void backward_inputs(const float* const*, const float*, const float* dy, float* const*, int,
                       const RunContext&) override {
    std::memcpy(params_[0].grad.data(), dy, params_[0].grad.size() * sizeof(float));
  }

 private:
  Shape shape_;
};

class Constant final : public Op {
 public:
  Constant(Shape shape, std::vector<float> values)
      : Op("constant", 0), shape_(std::move(shape)), values_(std::move(values)) {}
  void build_inputs(const std::vector<Shape>& inputs) override {
    if (!inputs.empty()) throw ValueError(op_label() + " takes no inputs.");
    set_op_shapes(inputs, shape_, false);
  }
  const float* source_output() const override { return values_.data(); }
  void forward_inputs(const float* const*, float* y, int, const RunContext&) override {
    std::memcpy(y, values_.data(), values_.size() * sizeof(float));
  }
  void backward_inputs(const float* const*, const float*, const float*, float* const*, int,
                       const RunContext&) override {}

 private:
  Shape shape_;
  std::vector<float> values_;
};

// "shape": a list of 0 to 8 positive sizes (a scalar is []).
Shape shape_field(const config::Fields& f) {
  const json::Value* v = f.get("shape");
  if (!v || v->kind != json::Value::Kind::Array || v->array.size() > (size_t)config::kMaxRank)
    f.fail("shape", "a list of 0 to 8 positive integers", v);
  Shape s;
  long long size = 1;
  for (const json::Value& d : v->array) {
    s.push_back(f.integer_value("shape", d, 1, config::kMaxDim));
    size *= s.back();  // at most 2^31 * 2^24 before the check below stops it
    if (size > (1LL << 31)) f.fail("shape", "at most 2^31 values in all", v);
  }
  return s;
}

}  // namespace

std::unique_ptr<Layer> source_op_from_config(const std::string& op, const config::Fields& f) {
  if (op == "variable") {
    const Shape shape = shape_field(f);
    const std::string weight = f.string("weight", "weight");
    if (weight.empty() || weight.size() > 256)
      f.fail("weight", "a name of 1 to 256 characters", f.get("weight"));
    float l1 = 0.0f, l2 = 0.0f;
    f.regularizer("regularizer", &l1, &l2);
    return std::make_unique<Variable>(shape, weight, f.boolean("trainable", true), l1, l2);
  }
  if (op == "constant") {
    const Shape shape = shape_field(f);
    const json::Value* v = f.get("values");
    const long long size = shape_size(shape);
    if (!v || v->kind != json::Value::Kind::Array || (long long)v->array.size() != size)
      f.fail("values", "a list of " + std::to_string(size) + " numbers (the shape's size)", v);
    std::vector<float> values;
    values.reserve(size);
    for (const json::Value& x : v->array) {
      if (x.kind != json::Value::Kind::Number) f.fail("values", "numbers", &x);
      values.push_back((float)x.number);
    }
    return std::make_unique<Constant>(shape, std::move(values));
  }
  return nullptr;
}

}  // namespace shenjing
