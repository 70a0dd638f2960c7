// Ops that move values without arithmetic (one input each):
//   reshape: attr shape (list; one entry may be -1), the per-sample shape of a batched input
//     (the batch axis is never reshaped), the full shape otherwise. Passed through by the model.
//   transpose: attr axes (a permutation of the full axes, negatives allowed; null reverses
//     them). A batched input must keep its batch axis first (axes[0] == 0).
//   slice: attrs begin, end, step (lists over the per-sample axes of a batched input, the full
//     axes otherwise; step defaults to 1s): NumPy's x[b:e:s] per axis with 0 <= b, e <= dim,
//     step >= 1 (normalised by Python, checked here); an empty result is refused.
//   broadcast_to: attr shape, the FULL target shape; a batched input gives -1 for the batch
//     axis (and has the target's rank). NumPy's rules: sizes align on the right, 1s stretch.
//     Its gradient sums dy over the stretched axes (in double, deterministic).
//   repeat: attrs repeats (int >= 1), axis (int, full): each slice along the axis repeated
//     in place (NumPy's repeat); not over the batch axis.
#include <cstring>

#include "ops/op.hpp"
#include "ops/walk.hpp"

namespace shenjing {
namespace {

using walk::strides_of;

// "key": a list of at most `max_len` integers in [lo, hi]; `def` (when given) if absent.
std::vector<int> int_list(const config::Fields& f, const std::string& key, int lo, int hi,
                          size_t max_len, const std::vector<int>* def = nullptr) {
  const json::Value* v = f.get(key);
  if (!v && def) return *def;
  if (!v || v->kind != json::Value::Kind::Array || v->array.size() > max_len)
    f.fail(key, "a list of at most " + std::to_string(max_len) + " integers", v);
  std::vector<int> out;
  for (const json::Value& d : v->array) out.push_back(f.integer_value(key, d, lo, hi));
  return out;
}

void check_arity(const std::string& label, const std::vector<Shape>& inputs) {
  if (inputs.size() != 1)
    throw ValueError(label + " takes 1 input, received " + std::to_string(inputs.size()) + ".");
}

std::string ints_str(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

class ReshapeOp final : public Op {
 public:
  explicit ReshapeOp(std::vector<int> target) : Op("reshape"), target_(std::move(target)) {}
  bool passthrough(const RunContext&) const override { return true; }

  void build_inputs(const std::vector<Shape>& inputs) override {
    check_arity(op_label(), inputs);
    const long long total = shape_size(inputs[0]);
    long long known = 1;
    int unknown = -1;
    for (size_t i = 0; i < target_.size(); ++i) {
      if (target_[i] == -1 && unknown < 0) unknown = (int)i;
      else if (target_[i] <= 0) fail(inputs[0]);
      else known *= target_[i];  // each <= 2^24, at most 8: may pass 2^63 only past 2^31 ...
      if (known > (1LL << 31)) fail(inputs[0]);  // ... which no input has
    }
    Shape out(target_.begin(), target_.end());
    if (unknown >= 0) {
      if (total % known != 0) fail(inputs[0]);
      out[unknown] = (int)(total / known);
    }
    if (shape_size(out) != total) fail(inputs[0]);
    set_op_shapes(inputs, out, batched(0));
  }
  // The model hands the buffer on without calling these; alone they copy.
  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    std::memcpy(y, xs[0], sizeof(float) * out_size(n));
  }
  void backward_inputs(const float* const*, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (dxs[0]) std::memcpy(dxs[0], dy, sizeof(float) * out_size(n));
  }

 private:
  [[noreturn]] void fail(const Shape& in) const {
    throw ValueError(op_label() + ": cannot reshape an input of shape " +
                     walk::tensor_str(in, batched(0)) + " (" + std::to_string(shape_size(in)) +
                     " values" + (batched(0) ? " per sample" : "") + ") to " +
                     ints_str(target_) + (batched(0) ? " (the shape after the batch axis)" : "") +
                     ".");
  }
  std::vector<int> target_;
};

// Transpose and slice: the output is a strided view of the input.
class ViewOp : public Op {
 protected:
  using Op::Op;
  // The view at batch size n: input strides per output axis, and the offset of element 0.
  virtual void view(int n, std::vector<long long>* st, long long* base) const = 0;

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    std::vector<long long> st;
    long long base = 0;
    view(n, &st, &base);
    walk::gather_view(full_out(n), st, base, xs[0], y);
  }
  void backward_inputs(const float* const*, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (!dxs[0]) return;
    std::vector<long long> st;
    long long base = 0;
    view(n, &st, &base);
    walk::scatter_view(full_out(n), st, base, dy, dxs[0], in_size(0, n));
  }
};

class Transpose final : public ViewOp {
 public:
  Transpose(bool reverse, std::vector<int> axes)
      : ViewOp("transpose"), reverse_(reverse), axes_(std::move(axes)) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    check_arity(op_label(), inputs);
    const int b = batched(0) ? 1 : 0, rank = (int)inputs[0].size() + b;
    perm_.clear();
    if (reverse_) {
      for (int d = rank - 1; d >= 0; --d) perm_.push_back(d);
    } else {
      if ((int)axes_.size() != rank)
        throw ValueError(op_label() + ": axes " + ints_str(axes_) + " must list each of the " +
                         std::to_string(rank) + " axes of the input once.");
      std::vector<char> seen(rank, 0);
      for (int a : axes_) {
        const int d = norm_axis(a, rank);
        if (seen[d]++)
          throw ValueError(op_label() + ": axes " + ints_str(axes_) + " repeat axis " +
                           std::to_string(a) + ".");
        perm_.push_back(d);
      }
    }
    if (b && perm_[0] != 0)
      throw ValueError(op_label() + ": the batch axis of an input of shape " +
                       walk::tensor_str(inputs[0], true) + " must stay first (axes[0] == 0), "
                       "received axes " + (reverse_ ? "None (reversed)" : ints_str(axes_)) + ".");
    Shape out;
    for (int d = b; d < rank; ++d) out.push_back(inputs[0][perm_[d] - b]);
    set_op_shapes(inputs, out, b != 0);
  }

 private:
  void view(int n, std::vector<long long>* st, long long* base) const override {
    const std::vector<long long> in = strides_of(full_in(0, n));
    for (int p : perm_) st->push_back(in[p]);
    *base = 0;
  }
  bool reverse_;
  std::vector<int> axes_, perm_;
};

class Slice final : public ViewOp {
 public:
  Slice(std::vector<int> begin, std::vector<int> end, std::vector<int> step)
      : ViewOp("slice"), begin_(std::move(begin)), end_(std::move(end)), step_(std::move(step)) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    check_arity(op_label(), inputs);
    const Shape& s = inputs[0];
    const size_t r = s.size();
    if (step_.empty()) step_.assign(r, 1);
    if (begin_.size() != r || end_.size() != r || step_.size() != r)
      fail(s, "begin, end and step need one entry per axis" +
                  std::string(batched(0) ? " after the batch axis" : ""));
    Shape out;
    for (size_t d = 0; d < r; ++d) {
      if (begin_[d] < 0 || end_[d] > s[d] || step_[d] < 1)
        fail(s, "axis " + std::to_string(d) + " needs 0 <= begin, end <= " +
                    std::to_string(s[d]) + " and step >= 1");
      if (end_[d] <= begin_[d]) fail(s, "the result would be empty along axis " + std::to_string(d));
      out.push_back((end_[d] - begin_[d] + step_[d] - 1) / step_[d]);
    }
    set_op_shapes(inputs, out, batched(0));
  }

 private:
  void view(int n, std::vector<long long>* st, long long* base) const override {
    const std::vector<long long> in = strides_of(full_in(0, n));
    const size_t b = batched(0) ? 1 : 0;
    if (b) st->push_back(in[0]);
    *base = 0;
    for (size_t d = 0; d < begin_.size(); ++d) {
      st->push_back(in[d + b] * step_[d]);
      *base += in[d + b] * begin_[d];
    }
  }
  [[noreturn]] void fail(const Shape& s, const std::string& why) const {
    throw ValueError(op_label() + ": cannot slice an input of shape " +
                     walk::tensor_str(s, batched(0)) + " with begin " + ints_str(begin_) +
                     ", end " + ints_str(end_) + ", step " + ints_str(step_) + ": " + why + ".");
  }
  std::vector<int> begin_, end_, step_;
};

class BroadcastTo final : public Op {
 public:
  explicit BroadcastTo(std::vector<int> target) : Op("broadcast_to"), target_(std::move(target)) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    check_arity(op_label(), inputs);
    const Shape& s = inputs[0];
    const int b = batched(0) ? 1 : 0, rank = (int)s.size() + b, tr = (int)target_.size();
    if (b && (tr != rank || target_[0] != -1))
      fail(s, "a batched input needs a target of its own rank with -1 for the batch axis");
    for (int d = b; d < tr; ++d)
      if (target_[d] < 1) fail(s, "sizes must be positive (-1 only for the batch axis)");
    if (rank > tr) fail(s, "the target has fewer axes than the input");
    if (tr - b > config::kMaxRank) fail(s, "at most 8 axes besides the batch");
    keep_.assign(tr, 1);
    for (int d = b; d < tr; ++d) {
      const int k = d - (tr - rank);  // the input's full axis aligned with target axis d
      const int dim = k >= 0 ? s[k - b] : 1;
      if (dim != target_[d] && dim != 1) fail(s, "sizes differ and are not 1 at axis " +
                                                     std::to_string(d));
      keep_[d] = k >= 0 && dim == target_[d];
    }
    set_op_shapes(inputs, Shape(target_.begin() + b, target_.end()), b != 0);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const Shape out = full_out(n);
    const std::vector<long long> in = strides_of(full_in(0, n));
    std::vector<long long> st(out.size(), 0);
    for (size_t d = 0, off = out.size() - in.size(); d < out.size(); ++d)
      if (keep_[d]) st[d] = in[d - off];
    walk::gather_view(out, st, 0, xs[0], y);
  }

  void backward_inputs(const float* const*, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (!dxs[0]) return;
    const long long size = in_size(0, n);
    if ((long long)acc_.size() < size) acc_.resize(size);
    walk::sum_axes(full_out(n), keep_, dy, acc_.data());
    for (long long i = 0; i < size; ++i) dxs[0][i] = (float)acc_[i];
  }

 private:
  [[noreturn]] void fail(const Shape& s, const std::string& why) const {
    throw ValueError(op_label() + ": cannot broadcast an input of shape " +
                     walk::tensor_str(s, batched(0)) + " to " + ints_str(target_) + ": " + why +
                     ".");
  }
  std::vector<int> target_;
  std::vector<char> keep_;    // per output axis: the input has it unstretched
  std::vector<double> acc_;   // scratch of one backward
};

class Repeat final : public Op {
 public:
  Repeat(int repeats, int axis) : Op("repeat"), repeats_(repeats), axis_(axis) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    check_arity(op_label(), inputs);
    const int b = batched(0) ? 1 : 0;
    a_ = norm_axis(axis_, (int)inputs[0].size() + b);
    if (b && a_ == 0)
      throw ValueError(op_label() + ": cannot repeat along the batch axis of an input of "
                       "shape " + walk::tensor_str(inputs[0], true) + ".");
    Shape out = inputs[0];
    if ((long long)out[a_ - b] * repeats_ > config::kMaxDim)
      throw ValueError(op_label() + ": " + std::to_string(out[a_ - b]) + " x " +
                       std::to_string(repeats_) + " repeats is too large an axis.");
    out[a_ - b] *= repeats_;
    set_op_shapes(inputs, out, b != 0);
  }

  // The output, seen as the input with an axis of r copies after axis a (stride 0 in the
  // input), reads a broadcast view; dx sums dy's r copies of each slice, in order.
  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    Shape shape;
    std::vector<long long> st;
    expanded(n, &shape, &st);
    walk::gather_view(shape, st, 0, xs[0], y);
  }
  void backward_inputs(const float* const*, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (!dxs[0]) return;
    Shape shape;
    std::vector<long long> st;
    expanded(n, &shape, &st);
    std::vector<char> keep(shape.size(), 1);
    keep[a_ + 1] = 0;
    const long long size = in_size(0, n);
    if ((long long)acc_.size() < size) acc_.resize(size);
    walk::sum_axes(shape, keep, dy, acc_.data());
    for (long long i = 0; i < size; ++i) dxs[0][i] = (float)acc_[i];
  }

 private:
  void expanded(int n, Shape* shape, std::vector<long long>* st) const {
    *shape = full_in(0, n);
    *st = strides_of(*shape);
    shape->insert(shape->begin() + a_ + 1, repeats_);
    st->insert(st->begin() + a_ + 1, 0);
  }
  int repeats_, axis_, a_ = 0;
  std::vector<double> acc_;  // scratch of one backward
};

}  // namespace

std::unique_ptr<Layer> shape_op_from_config(const std::string& op, const config::Fields& f) {
  const int R = config::kMaxRank, D = config::kMaxDim;
  if (op == "reshape") return std::make_unique<ReshapeOp>(int_list(f, "shape", -1, D, R));
  if (op == "transpose") {
    const bool reverse = !f.get("axes");
    std::vector<int> axes;
    if (!reverse) axes = int_list(f, "axes", -R - 1, R, R + 1);
    return std::make_unique<Transpose>(reverse, std::move(axes));
  }
  if (op == "slice") {
    const std::vector<int> none;
    std::vector<int> begin = int_list(f, "begin", 0, D, R + 1);
    std::vector<int> end = int_list(f, "end", 0, D, R + 1);
    std::vector<int> step = int_list(f, "step", 1, D, R + 1, &none);
    return std::make_unique<Slice>(std::move(begin), std::move(end), std::move(step));
  }
  if (op == "broadcast_to") return std::make_unique<BroadcastTo>(int_list(f, "shape", -1, D, R + 1));
  if (op == "repeat")
    return std::make_unique<Repeat>(f.integer("repeats", 1, D),
                                    f.integer("axis", -R - 1, R));
  return nullptr;
}

}  // namespace shenjing
