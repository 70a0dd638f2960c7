// Reductions over a set of axes (Keras's ops.sum, mean, max, min, prod, logsumexp, any, all;
// any/all give 1 or 0: whether some / every input is nonzero, NaN counting as nonzero):
//   attrs axis (null: every axis; an int or a list of ints, counted on the full shape as Keras
//   does, negative from the end) and keepdims (default false: the reduced axes are dropped;
//   true: they stay with size 1).
// A batched input reduced over axis 0 (the batch axis) gives an unbatched output; with keepdims
// its full shape then starts with a 1.
// Sums, products and the sum of logsumexp are accumulated in double, each output over its
// inputs in row-major order (deterministic for any thread count: threads own whole outputs);
// logsumexp sums a contiguous run in blocks of 256, each in 16 lanes (block_sum).
// Gradients follow PyTorch: max/min split dy evenly between tied maxima (torch.amax); prod's is
// prod(others), right with zeros in the input (one zero: only it gets a gradient; two or more:
// none); logsumexp's is dy * exp(x - y). Nothing is kept between forward and backward.
// logsumexp's exp is the vector kernel (kernels/math.inc), a block of a run at a time.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernels.hpp"
#include "ops/op.hpp"
#include "ops/walk.hpp"

namespace shenjing {
namespace {

using walk::make_walk;
using walk::parallel_runs;

enum class Kind { Sum, Mean, Max, Min, Prod, LogSumExp, Any, All };

constexpr long long kExpBlock = 256;

// use(j0, e, c) for blocks j0 .. j0 + c of [0, L) in order, e[j] = exp(x[j0 + j] - sub(j0 + j))
// by the vector kernel.
template <class Sub, class Use>
void exp_blocks(const float* x, long long L, Sub&& sub, Use&& use) {
  const kernels::KernelTable& k = kernels::table();
  float e[kExpBlock];
  for (long long j0 = 0; j0 < L; j0 += kExpBlock) {
    const long long c = std::min(kExpBlock, L - j0);
    for (long long j = 0; j < c; ++j) e[j] = x[j0 + j] - sub(j0 + j);
    k.vexp(e, e, (std::size_t)c);
    use(j0, e, c);
  }
}

// The sum in double of e[0 .. c), c <= kExpBlock, in kLanes interleaved lanes added in lane
// order: one running sum would chain every add on the last (4 cycles a value); the lanes
// vectorise, and the result still depends on c and the values alone.
double block_sum(const float* e, long long c) {
  constexpr int kLanes = 16;
  double l[kLanes] = {};
  long long j = 0;
  for (; j + kLanes <= c; j += kLanes)
    for (int i = 0; i < kLanes; ++i) l[i] += e[j + i];
  for (; j < c; ++j) l[0] += e[j];
  double s = 0.0;
  for (int i = 0; i < kLanes; ++i) s += l[i];
  return s;
}

class Reduce final : public Op {
 public:
  Reduce(const std::string& op, Kind kind, bool all, std::vector<int> axes, bool keepdims)
      : Op(op), kind_(kind), all_(all), axes_(std::move(axes)), keepdims_(keepdims) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 1)
      throw ValueError(op_label() + " takes 1 input, received " +
                       std::to_string(inputs.size()) + ".");
    const bool b = batched(0);
    const int rank = (int)inputs[0].size() + (b ? 1 : 0);
    keep_.assign(rank, all_ ? 0 : 1);
    for (int ax : axes_) {
      const int a = norm_axis(ax, rank);
      if (!keep_[a])
        throw ValueError(op_label() + ": axis " + std::to_string(ax) + " is repeated in the "
                         "reduced axes of an input of rank " + std::to_string(rank) + ".");
      keep_[a] = 0;
    }
    // The output's full shape; the batch axis (full axis 0) stays first when it is kept.
    Shape out;
    for (int d = b ? 1 : 0; d < rank; ++d)
      if (keep_[d] || keepdims_) out.push_back(keep_[d] ? inputs[0][d - (b ? 1 : 0)] : 1);
    const bool out_batched = b && keep_[0];
    if (b && !keep_[0] && keepdims_) out.insert(out.begin(), 1);
    set_op_shapes(inputs, out, out_batched);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const float* x = xs[0];
    const Shape X = full_in(0, n);
    const long long size = out_size(n);
    switch (kind_) {
      case Kind::Sum:
      case Kind::Mean: {
        acc(size);
        walk::sum_axes(X, keep_, x, acc_.data());
        const double div = kind_ == Kind::Mean ? (double)count(n) : 1.0;
        for (long long o = 0; o < size; ++o) y[o] = (float)(acc_[o] / div);
        return;
      }
      case Kind::Max:
      case Kind::Min:
        extreme(X, x, y, size, kind_ == Kind::Max);
        return;
      case Kind::Prod: {
        acc(size);
        std::fill(acc_.begin(), acc_.begin() + size, 1.0);
        runs(X, [&](long long w, long long o, long long L, long long s) {
          if (s == 0) {
            double p = acc_[o];
            for (long long j = 0; j < L; ++j) p *= x[w + j];
            acc_[o] = p;
          } else {
            for (long long j = 0; j < L; ++j) acc_[o + j * s] *= x[w + j];
          }
        });
        for (long long o = 0; o < size; ++o) y[o] = (float)acc_[o];
        return;
      }
      case Kind::Any:
      case Kind::All: {
        const bool any = kind_ == Kind::Any;
        acc(size);
        std::fill(acc_.begin(), acc_.begin() + size, any ? 0.0 : 1.0);
        runs(X, [&](long long w, long long o, long long L, long long s) {
          for (long long j = 0; j < L; ++j) {
            double& a = acc_[o + j * s];
            a = any ? (a != 0.0 || x[w + j] != 0.0f) : (a != 0.0 && x[w + j] != 0.0f);
          }
        });
        for (long long o = 0; o < size; ++o) y[o] = (float)acc_[o];
        return;
      }
      case Kind::LogSumExp: {
        extreme(X, x, y, size, true);  // y = the maxima m, then m + log(sum exp(x - m))
        acc(size);
        std::fill(acc_.begin(), acc_.begin() + size, 0.0);
        runs(X, [&](long long w, long long o, long long L, long long s) {
          if (s == 0) {
            const float m = y[o];
            double t = acc_[o];
            exp_blocks(x + w, L, [m](long long) { return m; },
                       [&t](long long, const float* e, long long c) { t += block_sum(e, c); });
            acc_[o] = t;
          } else {
            exp_blocks(x + w, L, [&](long long j) { return y[o + j * s]; },
                       [&](long long j0, const float* e, long long c) {
                         for (long long j = 0; j < c; ++j) acc_[o + (j0 + j) * s] += e[j];
                       });
          }
        });
        // An infinite maximum (all -inf, or some +inf) is the answer itself.
        for (long long o = 0; o < size; ++o)
          if (std::isfinite(y[o])) y[o] = (float)((double)y[o] + std::log(acc_[o]));
        return;
      }
    }
  }

  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext&) override {
    float* dx = dxs[0];
    if (!dx) return;
    const float* x = xs[0];
    const Shape X = full_in(0, n);
    const long long size = out_size(n);
    switch (kind_) {
      case Kind::Sum:
      case Kind::Mean: {
        const float scale = kind_ == Kind::Mean ? (float)(1.0 / (double)count(n)) : 1.0f;
        spread(X, [&](long long w, long long o, long long L, long long s) {
          for (long long j = 0; j < L; ++j) dx[w + j] = dy[o + j * s] * scale;
        });
        return;
      }
      case Kind::Max:
      case Kind::Min: {
        acc(size);  // how many inputs tie for each extreme
        std::fill(acc_.begin(), acc_.begin() + size, 0.0);
        runs(X, [&](long long w, long long o, long long L, long long s) {
          for (long long j = 0; j < L; ++j) acc_[o + j * s] += x[w + j] == y[o + j * s];
        });
        spread(X, [&](long long w, long long o, long long L, long long s) {
          for (long long j = 0; j < L; ++j) {
            const long long k = o + j * s;
            dx[w + j] = x[w + j] == y[k] ? (float)(dy[k] / acc_[k]) : 0.0f;
          }
        });
        return;
      }
      case Kind::Prod: {
        // Per output: how many zeros, and the product of the other inputs.
        acc(2 * size);
        double *zeros = acc_.data(), *prod = zeros + size;
        std::fill(zeros, zeros + size, 0.0);
        std::fill(prod, prod + size, 1.0);
        runs(X, [&](long long w, long long o, long long L, long long s) {
          for (long long j = 0; j < L; ++j) {
            const float v = x[w + j];
            if (v == 0.0f) zeros[o + j * s] += 1.0;
            else prod[o + j * s] *= v;
          }
        });
        spread(X, [&](long long w, long long o, long long L, long long s) {
          for (long long j = 0; j < L; ++j) {
            const long long k = o + j * s;
            const float v = x[w + j];
            double g = 0.0;
            if (zeros[k] == 0.0) g = prod[k] / v;
            else if (zeros[k] == 1.0 && v == 0.0f) g = prod[k];
            dx[w + j] = (float)(g * dy[k]);
          }
        });
        return;
      }
      case Kind::Any:
      case Kind::All:  // 0/1 results: no gradient
        spread(X, [&](long long w, long long, long long L, long long) {
          for (long long j = 0; j < L; ++j) dx[w + j] = 0.0f;
        });
        return;
      case Kind::LogSumExp:
        spread(X, [&](long long w, long long o, long long L, long long s) {
          exp_blocks(x + w, L, [&](long long j) { return y[o + j * s]; },
                     [&](long long j0, const float* e, long long c) {
                       for (long long j = 0; j < c; ++j) {
                         const long long k = o + (j0 + j) * s;
                         dx[w + j0 + j] = y[k] == -std::numeric_limits<float>::infinity()
                                              ? 0.0f
                                              : dy[k] * e[j];
                       }
                     });
        });
        return;
    }
  }

 private:
  // Inputs per output at batch size n.
  long long count(int n) const {
    const Shape X = full_in(0, n);
    long long c = 1;
    for (size_t d = 0; d < X.size(); ++d)
      if (!keep_[d]) c *= X[d];
    return c;
  }
  void acc(long long size) {
    if ((long long)acc_.size() < size) acc_.resize(size);
  }
  // The input walked with the output's strides (0 on the reduced axes).
  walk::Walk walk_of(const Shape& X) const {
    std::vector<long long> st(X.size(), 0);
    long long step = 1;
    for (size_t d = X.size(); d-- > 0;)
      if (keep_[d]) {
        st[d] = step;
        step *= X[d];
      }
    return make_walk(X, st);
  }
  // f(input offset, output offset, run, output stride) over the input; threads own outputs.
  template <class F>
  void runs(const Shape& X, F&& f) const {
    parallel_runs(walk_of(X), shape_size(X), true, f);
  }
  // The same walk for writing dx: threads own input elements.
  template <class F>
  void spread(const Shape& X, F&& f) const {
    parallel_runs(walk_of(X), shape_size(X), false, f);
  }
  // y = max (or min) over the reduced axes; NaN wins, as in NumPy and torch.
  void extreme(const Shape& X, const float* x, float* y, long long size, bool max) const {
    const float init = (max ? -1.0f : 1.0f) * std::numeric_limits<float>::infinity();
    std::fill(y, y + size, init);
    runs(X, [&](long long w, long long o, long long L, long long s) {
      for (long long j = 0; j < L; ++j) {
        float& m = y[o + j * s];
        const float v = x[w + j];
        if ((max ? v > m : v < m) || v != v) m = v;
      }
    });
  }

  Kind kind_;
  bool all_;
  std::vector<int> axes_;
  bool keepdims_;
  std::vector<char> keep_;    // per full input axis: kept (1) or reduced (0)
  std::vector<double> acc_;   // scratch of one call
};

// "axis": null (every axis: *all), an int, or a list of ints.
std::vector<int> axes_field(const config::Fields& f, bool* all) {
  const json::Value* v = f.get("axis");
  *all = !v;
  std::vector<int> axes;
  if (!v) return axes;
  if (v->kind == json::Value::Kind::Number) {
    axes.push_back(f.integer_value("axis", *v, -config::kMaxRank - 1, config::kMaxRank));
  } else if (v->kind == json::Value::Kind::Array && v->array.size() <= 16) {
    for (const json::Value& a : v->array)
      axes.push_back(f.integer_value("axis", a, -config::kMaxRank - 1, config::kMaxRank));
  } else {
    f.fail("axis", "null, an integer or a list of integers", v);
  }
  return axes;
}

}  // namespace

std::unique_ptr<Layer> reduce_op_from_config(const std::string& op, const config::Fields& f) {
  Kind kind;
  if (op == "sum") kind = Kind::Sum;
  else if (op == "mean") kind = Kind::Mean;
  else if (op == "max") kind = Kind::Max;
  else if (op == "min") kind = Kind::Min;
  else if (op == "prod") kind = Kind::Prod;
  else if (op == "logsumexp") kind = Kind::LogSumExp;
  else if (op == "any") kind = Kind::Any;
  else if (op == "all") kind = Kind::All;
  else return nullptr;
  bool all = false;
  std::vector<int> axes = axes_field(f, &all);
  return std::make_unique<Reduce>(op, kind, all, std::move(axes), f.boolean("keepdims", false));
}

}  // namespace shenjing
