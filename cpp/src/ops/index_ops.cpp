// Ops that pick or place values by index:
//   take (inputs x, indices): attr axis (int, full; default 0). NumPy's take: the output is
//     x.shape[:axis] + indices.shape + x.shape[axis+1:]. Indices are floats holding integers;
//     a negative one counts from the end once, then any index is clipped to [0, dim - 1]
//     (jnp.take's 'clip' mode). Batch axes allowed: x unbatched with batched indices over axis
//     0 (an embedding lookup: (V, D) and (n, T) -> (n, T, D)); x batched with unbatched indices
//     over an axis >= 1; both unbatched. dx scatter-adds dy in index order (deterministic);
//     the indices get no gradient.
//   one_hot: attrs num_classes (int >= 1), axis (int, of the OUTPUT, default -1). 1 where the
//     class equals the input's value, so an out-of-range or non-integer value gives a row of
//     zeros. Not over the batch axis (axis 0 of a batched input). No gradient.
//   concatenate (1 or more inputs): attr axis (int, full; default -1). All inputs batched or all
//     unbatched; not along the batch axis; other sizes equal.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/op.hpp"
#include "ops/walk.hpp"

namespace shenjing {
namespace {

// (outer, len, inner) of a full shape around axis a.
void around(const Shape& full, int a, long long* outer, long long* len, long long* inner) {
  *outer = *len = *inner = 1;
  for (int d = 0; d < (int)full.size(); ++d) (d < a ? *outer : d == a ? *len : *inner) *= full[d];
}

class Take final : public Op {
 public:
  explicit Take(int axis) : Op("take", 2), axis_(axis) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 2)
      throw ValueError(op_label() + " takes 2 inputs (x, indices), received " +
                       std::to_string(inputs.size()) + ".");
    const bool bx = batched(0), bi = batched(1);
    const int rank = (int)inputs[0].size() + (bx ? 1 : 0);
    if (rank == 0) fail(inputs, "x must have at least one axis");
    a_ = norm_axis(axis_, rank);
    if (bx && bi) fail(inputs, "x and the indices cannot both have the batch axis");
    if (bx && a_ == 0) fail(inputs, "cannot take along the batch axis of x");
    if (bi && a_ != 0) fail(inputs, "batched indices need axis 0 (the batch axis would not be "
                                    "the output's first)");
    Shape out;
    const int ox = bx ? 1 : 0;  // x's full axis d is inputs[0][d - ox]
    for (int d = ox; d < a_; ++d) out.push_back(inputs[0][d - ox]);
    out.insert(out.end(), inputs[1].begin(), inputs[1].end());
    for (int d = a_ + 1; d < rank; ++d) out.push_back(inputs[0][d - ox]);
    if (out.size() > (size_t)config::kMaxRank)
      fail(inputs, "the output would have more than 8 axes besides the batch");
    set_op_shapes(inputs, out, bx || bi);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    long long outer, D, inner;
    around(full_in(0, n), a_, &outer, &D, &inner);
    const long long I = in_size(1, n);
    const float *x = xs[0], *ids = xs[1];
    const bool parallel = outer * I * inner >= walk::kParallelMin;
#pragma omp parallel for schedule(static) if (parallel)
    for (long long u = 0; u < outer * I; ++u) {
      const long long o = u / I, j = u % I;
      std::memcpy(y + u * inner, x + (o * D + index(ids[j], D)) * inner, sizeof(float) * inner);
    }
  }

  void backward_inputs(const float* const* xs, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (dxs[1]) std::fill(dxs[1], dxs[1] + in_size(1, n), 0.0f);
    float* dx = dxs[0];
    if (!dx) return;
    long long outer, D, inner;
    around(full_in(0, n), a_, &outer, &D, &inner);
    const long long I = in_size(1, n);
    const float* ids = xs[1];
    std::fill(dx, dx + outer * D * inner, 0.0f);
    // Units of (outer index, column range): each owns its dx cells and adds dy in index order.
    const bool parallel = outer * I * inner >= walk::kParallelMin;
    const int threads = parallel ? omp_get_max_threads() : 1;
    const long long cols = outer >= threads ? inner : std::max<long long>(64, inner / threads);
    const long long blocks = (inner + cols - 1) / cols;
#pragma omp parallel for schedule(static) if (parallel)
    for (long long u = 0; u < outer * blocks; ++u) {
      const long long o = u / blocks, c0 = (u % blocks) * cols, c1 = std::min(inner, c0 + cols);
      for (long long j = 0; j < I; ++j) {
        float* d = dx + (o * D + index(ids[j], D)) * inner;
        const float* g = dy + (o * I + j) * inner;
        for (long long c = c0; c < c1; ++c) d[c] += g[c];
      }
    }
  }

 private:
  static long long index(float v, long long dim) {
    if (!(v == v)) return 0;
    long long k = (long long)std::max(-1e15f, std::min(1e15f, v));
    if (k < 0) k += dim;
    return std::min(std::max(k, 0LL), dim - 1);
  }
  [[noreturn]] void fail(const std::vector<Shape>& in, const std::string& why) const {
    throw ValueError(op_label() + ": x " + walk::tensor_str(in[0], batched(0)) + ", indices " +
                     walk::tensor_str(in[1], batched(1)) + ", axis " + std::to_string(axis_) +
                     ": " + why + ".");
  }
  int axis_, a_ = 0;
};

class OneHot final : public Op {
 public:
  OneHot(int classes, int axis) : Op("one_hot"), classes_(classes), axis_(axis) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 1)
      throw ValueError(op_label() + " takes 1 input, received " +
                       std::to_string(inputs.size()) + ".");
    const int b = batched(0) ? 1 : 0;
    a_ = norm_axis(axis_, (int)inputs[0].size() + b + 1);
    if (b && a_ == 0)
      throw ValueError(op_label() + ": axis " + std::to_string(axis_) + " would put the "
                       "classes before the batch axis of the input " +
                       walk::tensor_str(inputs[0], true) + ".");
    Shape out = inputs[0];
    if (out.size() >= (size_t)config::kMaxRank)
      throw ValueError(op_label() + ": the output would have more than 8 axes besides the "
                       "batch.");
    out.insert(out.begin() + (a_ - b), classes_);
    set_op_shapes(inputs, out, b != 0);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const Shape X = full_in(0, n);
    long long outer = 1, inner = 1;  // the input split where the class axis goes
    for (int d = 0; d < (int)X.size(); ++d) (d < a_ ? outer : inner) *= X[d];
    const long long C = classes_;
    std::fill(y, y + outer * C * inner, 0.0f);
    for (long long o = 0; o < outer; ++o)
      for (long long i = 0; i < inner; ++i) {
        const float v = xs[0][o * inner + i];
        if (v >= 0.0f && v < (float)C && v == std::floor(v))
          y[(o * C + (long long)v) * inner + i] = 1.0f;
      }
  }

  void backward_inputs(const float* const*, const float*, const float*, float* const* dxs, int n,
                       const RunContext&) override {
    if (dxs[0]) std::fill(dxs[0], dxs[0] + in_size(0, n), 0.0f);
  }

 private:
  int classes_, axis_, a_ = 0;
};

class ConcatenateOp final : public Op {
 public:
  explicit ConcatenateOp(int axis) : Op("concatenate", 1), axis_(axis) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.empty())
      throw ValueError(op_label() + " takes 1 or more inputs, received none.");
    const bool b = batched(0);
    std::string all;
    for (size_t i = 0; i < inputs.size(); ++i)
      all += (i ? ", " : "") + walk::tensor_str(inputs[i], batched(i));
    for (size_t i = 1; i < inputs.size(); ++i)
      if (batched(i) != b)
        throw ValueError(op_label() + ": inputs " + all + " mix tensors with and without the "
                         "batch axis.");
    const int r = (int)inputs[0].size(), o = b ? 1 : 0;
    a_ = norm_axis(axis_, r + o);
    if (b && a_ == 0)
      throw ValueError(op_label() + ": cannot concatenate along the batch axis (inputs " +
                       all + ").");
    Shape out = inputs[0];
    for (size_t i = 1; i < inputs.size(); ++i) {
      bool ok = (int)inputs[i].size() == r;
      for (int d = 0; ok && d < r; ++d) ok = d == a_ - o || inputs[i][d] == out[d];
      if (!ok)
        throw ValueError(op_label() + ": inputs " + all + " must match in every axis but axis " +
                         std::to_string(axis_) + ".");
      out[a_ - o] += inputs[i][a_ - o];
    }
    if (out[a_ - o] > config::kMaxDim)
      throw ValueError(op_label() + ": the concatenated axis would be too large.");
    set_op_shapes(inputs, out, b);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    copy(n, xs, y, nullptr, nullptr);
  }
  void backward_inputs(const float* const*, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    copy(n, nullptr, nullptr, dxs, dy);
  }

 private:
  // For each outer index (in parallel when large) and each input, its chunk of the output:
  // forward (xs given) copies the inputs into y, backward dy's chunks into the dxs.
  void copy(int n, const float* const* xs, float* y, float* const* dxs, const float* dy) const {
    long long outer, len, inner;
    around(full_out(n), a_, &outer, &len, &inner);
    const long long row = len * inner;
    std::vector<long long> chunk(ins_.size());
    for (size_t i = 0; i < ins_.size(); ++i) chunk[i] = in_size(i, n) / outer;
    const bool parallel = outer > 1 && outer * row >= walk::kParallelMin;
#pragma omp parallel for schedule(static) if (parallel)
    for (long long o = 0; o < outer; ++o) {
      long long off = o * row;
      for (size_t i = 0; i < ins_.size(); ++i) {
        const size_t bytes = sizeof(float) * chunk[i];
        if (xs) std::memcpy(y + off, xs[i] + o * chunk[i], bytes);
        else if (dxs[i]) std::memcpy(dxs[i] + o * chunk[i], dy + off, bytes);
        off += chunk[i];
      }
    }
  }
  int axis_, a_ = 0;
};

}  // namespace

std::unique_ptr<Layer> index_op_from_config(const std::string& op, const config::Fields& f) {
  const int R = config::kMaxRank;
  const int zero = 0, last = -1;
  if (op == "take") return std::make_unique<Take>(f.integer("axis", -R - 1, R, &zero));
  if (op == "one_hot")
    return std::make_unique<OneHot>(f.integer("num_classes", 1, config::kMaxDim),
                                    f.integer("axis", -R - 2, R + 1, &last));
  if (op == "concatenate") return std::make_unique<ConcatenateOp>(f.integer("axis", -R - 1, R, &last));
  return nullptr;
}

}  // namespace shenjing
