// Concatenate: xs[i] (n, ..., A_i, ...) -> y (n, ..., sum A_i, ...) along one non-batch axis.
// Every sample is a (P, A_i * Q) matrix for input i (P: the product of the axes before the
// concatenation axis, Q: after it), and the output's rows are those rows side by side, so both
// directions are row copies over the n * P rows of the batch. Keras counts the batch axis in
// `axis` (-1 is the last axis, 1 the first after the batch); axis 0 would concatenate along the
// batch, which a layer of a model cannot do here (every input has the same n), so it is refused.
#include <climits>
#include <cstring>
#include <vector>

#include "layers/merge_shapes.hpp"

namespace shenjing {
namespace {

constexpr long long kParallelMin = 1 << 16;  // values per call below which one thread is faster

class Concatenate final : public MultiInputLayer {
 public:
  explicit Concatenate(int axis) : axis_(axis) {
    if (axis == 0)
      throw ValueError("Concatenate: axis=0 is the batch axis; concatenate along another axis "
                       "(axis=-1 is the last one).");
  }
  const char* type() const override { return "Concatenate"; }

  void build(const Shape& input) override {
    throw ValueError(layer_label() + ": a `Concatenate` layer should be called on a list of "
                     "inputs. Received: input_shape=" + shape_str(input) + ".");
  }

  void build_inputs(const std::vector<Shape>& inputs) override {
    const std::string label = layer_label();
    if (inputs.empty())
      throw ValueError(label + ": a `Concatenate` layer should be called on a list of at least 1 "
                       "input. Received: input_shape=[].");
    check_merge_inputs(label, inputs);
    const int rank = (int)inputs[0].size();
    const int a = axis_ > 0 ? axis_ - 1 : rank + axis_;  // per-sample axis
    if (a < 0 || a >= rank)
      throw ValueError(label + ": axis=" + std::to_string(axis_) + " is out of range for inputs " +
                       "of rank " + std::to_string(rank + 1) + " (the batch axis counted). " +
                       "Received: input_shape=" + shapes_str(inputs) + ".");
    long long total = 0;
    for (const Shape& s : inputs) {
      bool match = s.size() == inputs[0].size();
      for (int d = 0; match && d < rank; ++d) match = d == a || s[d] == inputs[0][d];
      if (!match)
        throw ValueError(label + ": a `Concatenate` layer requires inputs with matching shapes "
                         "except for the concatenation axis. Received: input_shape=" +
                         shapes_str(inputs) + ".");
      total += s[a];
    }
    if (total > INT_MAX)
      throw ValueError(label + ": the concatenated axis would have " + std::to_string(total) +
                       " entries, more than 2^31 - 1. Received: input_shape=" +
                       shapes_str(inputs) + ".");
    Shape out = inputs[0];
    out[a] = (int)total;
    long long P = 1;
    for (int d = 0; d < a; ++d) P *= out[d];
    set_shapes(inputs, out);
    rows_ = P;
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    copy_rows(n, [&](long long r, long long col, long long w, int i) {
      std::memcpy(y + r * width() + col, xs[i] + r * w, sizeof(float) * w);
    });
  }

  void backward_inputs(const float* const*, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    copy_rows(n, [&](long long r, long long col, long long w, int i) {
      if (dxs[i]) std::memcpy(dxs[i] + r * w, dy + r * width() + col, sizeof(float) * w);
    });
  }

 private:
  long long width() const { return shape_size(out_) / rows_; }  // values per output row

  // f(row, column offset in the output row, row width of input i, i) for every row of the batch
  // and every input; rows in parallel when the batch is large (each row is one thread's).
  template <class F>
  void copy_rows(int n, F&& f) const {
    const long long rows = (long long)n * rows_, W = width();
    const int k = (int)ins_.size();
    std::vector<long long> w(k), col(k);
    long long c = 0;
    for (int i = 0; i < k; ++i) {
      w[i] = shape_size(ins_[i]) / rows_;
      col[i] = c;
      c += w[i];
    }
#pragma omp parallel for schedule(static) if (rows * W >= kParallelMin)
    for (long long r = 0; r < rows; ++r)
      for (int i = 0; i < k; ++i) f(r, col[i], w[i], i);
  }

  int axis_;
  long long rows_ = 1;  // P: output rows per sample
};

}  // namespace

std::unique_ptr<Layer> make_concatenate(int axis) { return std::make_unique<Concatenate>(axis); }

}  // namespace shenjing
