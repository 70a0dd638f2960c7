// Keras's elementwise merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum.
//   xs[i] (n, *S_i) -> y (n, *S), S the broadcast of the S_i, combined left to right as Keras
//   does: shapes are aligned on their last axes (a lower-rank input gets leading 1s, which is
//   what Keras's expand_dims(x, axis=1) does once the batch axis is counted), and an axis of
//   size 1 broadcasts against any size.
//   Add: x0 + x1 + ...; Subtract: x0 - x1 (exactly 2); Multiply: x0 * x1 * ...;
//   Average: (x0 + x1 + ...) / k; Maximum / Minimum: elementwise max / min.
// Backward: dxs[i] is dy (times the product of the others for Multiply, / k for Average) summed
// over the axes input i was broadcast along. Maximum/Minimum send each dy to the first input that
// holds the winning value, as TF's gradient of max(max(x0, x1), x2) does (ties go to the first
// argument: x >= y); JAX and PyTorch split ties evenly instead.
// Nothing is kept between forward and backward: backward recomputes what it needs from xs and y.
#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

#include "layers/merge_shapes.hpp"

namespace shenjing {
namespace {

constexpr long long kParallelMin = 1 << 16;  // values per call below which one thread is faster

// One input seen through the output of a block of samples: runs[] of the output from outer to
// inner with the input's stride along each (0 where it is broadcast). Adjacent axes that step
// through both arrays alike are merged, so an input of the output's own shape is a single run
// over the whole block and the innermost stride is 0 or 1.
struct Geom {
  int rank = 0;
  long long len[10], st[10];
};

Geom geometry(const Shape& out, const std::vector<long long>& in_strides, long long in_size,
              long long samples) {
  Geom g;
  auto push = [&](long long len, long long st) {
    if (len == 1) return;
    if (g.rank > 0 && g.st[g.rank - 1] == st * len) {  // merges with the axis before
      g.len[g.rank - 1] *= len;
      g.st[g.rank - 1] = st;
      return;
    }
    g.len[g.rank] = len;
    g.st[g.rank++] = st;
  };
  push(samples, in_size);  // the batch axis: never broadcast
  for (size_t d = 0; d < out.size(); ++d) push(out[d], in_strides[d]);
  if (g.rank == 0) {
    g.len[0] = 1;
    g.st[0] = 1;
    g.rank = 1;
  }
  return g;
}

// Calls f(out_offset, in_offset, len, in_stride) for each innermost run, in output order.
template <class F>
void for_runs(const Geom& g, F&& f) {
  const int r = g.rank;
  const long long L = g.len[r - 1], st = g.st[r - 1];
  long long outer = 1;
  for (int d = 0; d + 1 < r; ++d) outer *= g.len[d];
  long long idx[10] = {0}, in_off = 0, out_off = 0;
  for (long long o = 0; o < outer; ++o) {
    f(out_off, in_off, L, st);
    out_off += L;
    for (int d = r - 2; d >= 0; --d) {  // odometer over the outer axes
      in_off += g.st[d];
      if (++idx[d] < g.len[d]) break;
      in_off -= g.st[d] * g.len[d];
      idx[d] = 0;
    }
  }
}

enum Op { kCopy, kAdd, kSub, kMul, kMax, kMin };

template <Op op>
inline float combine(float a, float b) {
  if constexpr (op == kCopy) return b;
  else if constexpr (op == kAdd) return a + b;
  else if constexpr (op == kSub) return a - b;
  else if constexpr (op == kMul) return a * b;
  else if constexpr (op == kMax) return b > a ? b : a;  // keeps the earlier value on ties
  else return b < a ? b : a;
}

// y[j] = op(a[j], b[j]): the first two inputs when both have the output's shape, in one pass.
template <Op op>
inline void combine_two(float* y, const float* a, const float* b, long long L) {
  for (long long j = 0; j < L; ++j) y[j] = combine<op>(a[j], b[j]);
}

// Whether g is one stride-1 run of len values: an input of the output's own shape.
inline bool whole_run(const Geom& g, long long len) {
  return g.rank == 1 && g.st[0] == 1 && g.len[0] == len;
}

// y[j] = op(y[j], x[j * st]) over one run; st is 0 or 1, both loops vectorise.
template <Op op>
inline void combine_run(float* y, const float* x, long long L, long long st) {
  auto f = [](float a, float b) { return combine<op>(a, b); };
  if (st) {
    for (long long j = 0; j < L; ++j) y[j] = f(y[j], x[j]);
  } else {
    const float v = x[0];
    for (long long j = 0; j < L; ++j) y[j] = f(y[j], v);
  }
}

class Merge final : public MultiInputLayer {
 public:
  explicit Merge(MergeOp op) : op_(op) {}

  const char* type() const override {
    static const char* const names[] = {"Add", "Subtract", "Multiply", "Average", "Maximum",
                                        "Minimum"};
    return names[static_cast<int>(op_)];
  }
  // Keras 3 merges accept a list of one input (it passes through); Subtract needs exactly 2.
  int min_inputs() const override { return op_ == MergeOp::Subtract ? 2 : 1; }

  // Keras refuses a merge called on one tensor rather than a list of them.
  void build(const Shape& input) override {
    throw ValueError(layer_label() + ": a merge layer should be called on a list of inputs. "
                     "Received: input_shape=" + shape_str(input) + ".");
  }

  void build_inputs(const std::vector<Shape>& inputs) override {
    const std::string label = layer_label();
    auto all = [&] { return shapes_str(inputs); };
    if (inputs.empty() || (op_ == MergeOp::Subtract && inputs.size() != 2))
      throw ValueError(label + ": a `" + type() + "` layer should be called on " +
                       (op_ == MergeOp::Subtract ? "exactly 2 inputs" : "a list of at least 1 input") +
                       ". Received: input_shape=" + all() + ".");
    check_merge_inputs(label, inputs);
    // Keras's _compute_elemwise_op_output_shape, folded over the inputs left to right.
    Shape out = inputs[0];
    for (size_t i = 1; i < inputs.size(); ++i) {
      const Shape& a = out.size() >= inputs[i].size() ? out : inputs[i];
      const Shape& b = out.size() >= inputs[i].size() ? inputs[i] : out;
      Shape o(a.begin(), a.end() - b.size());
      for (size_t k = 0; k < b.size(); ++k) {
        const int p = a[a.size() - b.size() + k], q = b[k];
        if (p != q && p != 1 && q != 1)
          throw ValueError(label + ": Inputs have incompatible shapes. Received shapes " +
                           shape_str(a) + " and " + shape_str(b) + " (all input shapes: " +
                           all() + ").");
        o.push_back(p == 1 ? q : p);
      }
      out = std::move(o);
    }
    // Each input's strides through the output: leading 1s for missing axes, 0 where broadcast.
    std::vector<std::vector<long long>> strides;
    for (const Shape& s : inputs) {
      std::vector<long long> st(out.size(), 0);
      long long step = 1;
      for (size_t k = 0; k < s.size(); ++k) {
        const size_t d = out.size() - 1 - k, e = s.size() - 1 - k;
        st[d] = s[e] == 1 ? 0 : step;
        step *= s[e];
      }
      strides.push_back(std::move(st));
    }
    set_shapes(inputs, out);
    strides_ = std::move(strides);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const int k = (int)ins_.size();
    for_blocks(n, [&](long long b0, long long nb) {
      float* yb = y + b0 * S();
      int first = 0;  // inputs before it are already combined into yb
      if (k >= 2 && whole_run(geom(0, nb), nb * S()) && whole_run(geom(1, nb), nb * S())) {
        const float* a = xs[0] + b0 * S();
        const float* b = xs[1] + b0 * S();
        const long long len = nb * S();
        switch (op_) {
          case MergeOp::Add: case MergeOp::Average: combine_two<kAdd>(yb, a, b, len); break;
          case MergeOp::Subtract: combine_two<kSub>(yb, a, b, len); break;
          case MergeOp::Multiply: combine_two<kMul>(yb, a, b, len); break;
          case MergeOp::Maximum: combine_two<kMax>(yb, a, b, len); break;
          case MergeOp::Minimum: combine_two<kMin>(yb, a, b, len); break;
        }
        first = 2;
      }
      for (int i = first; i < k; ++i) {
        const Geom g = geom(i, nb);
        const float* x = xs[i] + b0 * shape_size(ins_[i]);
        for_runs(g, [&](long long o, long long in, long long L, long long st) {
          float* yo = yb + o;
          const float* xi = x + in;
          if (i == 0) return combine_run<kCopy>(yo, xi, L, st);
          switch (op_) {
            case MergeOp::Add: case MergeOp::Average: return combine_run<kAdd>(yo, xi, L, st);
            case MergeOp::Subtract: return combine_run<kSub>(yo, xi, L, st);
            case MergeOp::Multiply: return combine_run<kMul>(yo, xi, L, st);
            case MergeOp::Maximum: return combine_run<kMax>(yo, xi, L, st);
            case MergeOp::Minimum: return combine_run<kMin>(yo, xi, L, st);
          }
        });
      }
      if (op_ == MergeOp::Average) {  // a division, as Keras's `output / len(inputs)`
        const float kf = (float)k;
        const long long len = nb * S();
        for (long long j = 0; j < len; ++j) yb[j] /= kf;
      }
    });
  }

  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext&) override {
    const int k = (int)ins_.size();
    const bool select = op_ == MergeOp::Maximum || op_ == MergeOp::Minimum;
    // Per-call scratch of the output's size: the products of the other inputs (Multiply) or
    // the part of dy no earlier input has claimed (Maximum/Minimum).
    if (op_ == MergeOp::Multiply || select) {
      const size_t need = (size_t)n * S();
      if (scratch_.size() < need) scratch_.resize(need);
    }
    for_blocks(n, [&](long long b0, long long nb) {
      const long long len = nb * S();
      const float* dyb = dy + b0 * S();
      float* tmp = scratch_.empty() ? nullptr : scratch_.data() + b0 * S();
      if (select) std::memcpy(tmp, dyb, sizeof(float) * len);
      for (int i = 0; i < k; ++i) {
        float* dx = dxs[i] ? dxs[i] + b0 * shape_size(ins_[i]) : nullptr;
        const Geom g = geom(i, nb);
        if (select) {
          const float* x = xs[i] + b0 * shape_size(ins_[i]);
          claim(g, x, y + b0 * S(), tmp, dx, nb * shape_size(ins_[i]));
          continue;
        }
        if (!dx) continue;
        const float* src = dyb;
        if (op_ == MergeOp::Multiply) {  // dy * prod of the others, in input order
          std::memcpy(tmp, dyb, sizeof(float) * len);
          for (int j = 0; j < k; ++j) {
            if (j == i) continue;
            const float* xj = xs[j] + b0 * shape_size(ins_[j]);
            for_runs(geom(j, nb), [&](long long o, long long in, long long L, long long st) {
              combine_run<kMul>(tmp + o, xj + in, L, st);
            });
          }
          src = tmp;
        }
        const float scale = op_ == MergeOp::Subtract && i == 1 ? -1.0f : 1.0f;
        const float div = op_ == MergeOp::Average ? (float)k : 1.0f;
        reduce(g, src, scale, div, dx, nb * shape_size(ins_[i]));
      }
    });
  }

 private:
  long long S() const { return shape_size(out_); }
  Geom geom(int i, long long samples) const {
    return geometry(out_, strides_[i], shape_size(ins_[i]), samples);
  }

  // Runs f(first sample, samples) over blocks of whole samples, in parallel when large: each
  // block writes only its own samples of y and of every dx, so no two threads share an output.
  template <class F>
  void for_blocks(int n, F&& f) const {
    const long long total = (long long)n * S();
    const int blocks = total >= kParallelMin ? std::min(n, omp_get_max_threads()) : 1;
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (int t = 0; t < blocks; ++t) {
      const long long b0 = (long long)n * t / blocks, b1 = (long long)n * (t + 1) / blocks;
      if (b1 > b0) f(b0, b1 - b0);
    }
  }

  // dx = (sum over the broadcast axes of src) * scale / div; dx holds dx_len values.
  static void reduce(const Geom& g, const float* src, float scale, float div, float* dx,
                     long long dx_len) {
    if (whole_run(g, dx_len)) {  // nothing broadcast: one pass, a copy for Add
      if (scale == 1.0f && div == 1.0f) std::memcpy(dx, src, sizeof(float) * dx_len);
      else for (long long j = 0; j < dx_len; ++j) dx[j] = src[j] * scale / div;
      return;
    }
    std::fill(dx, dx + dx_len, 0.0f);
    for_runs(g, [&](long long o, long long in, long long L, long long st) {
      const float* s = src + o;
      float* d = dx + in;
      if (st) {
        for (long long j = 0; j < L; ++j) d[j] += s[j] * scale / div;
      } else {
        float acc = 0.0f;
        for (long long j = 0; j < L; ++j) acc += s[j] * scale / div;
        d[0] += acc;
      }
    });
  }

  // Maximum/Minimum: where input i holds the winning value y, it takes what is left of dy
  // there (rem), and rem becomes 0 so that later inputs with the same value get nothing.
  static void claim(const Geom& g, const float* x, const float* y, float* rem, float* dx,
                    long long dx_len) {
    if (dx) std::fill(dx, dx + dx_len, 0.0f);
    for_runs(g, [&](long long o, long long in, long long L, long long st) {
      const float* yo = y + o;
      float* r = rem + o;
      if (st) {
        const float* xi = x + in;
        float* d = dx ? dx + in : nullptr;
        for (long long j = 0; j < L; ++j) {
          const bool win = xi[j] == yo[j];
          if (d) d[j] += win ? r[j] : 0.0f;
          r[j] = win ? 0.0f : r[j];
        }
      } else {
        const float v = x[in];
        float acc = 0.0f;
        for (long long j = 0; j < L; ++j) {
          const bool win = v == yo[j];
          acc += win ? r[j] : 0.0f;
          r[j] = win ? 0.0f : r[j];
        }
        if (dx) dx[in] += acc;
      }
    });
  }

  MergeOp op_;
  std::vector<std::vector<long long>> strides_;  // per input, per output axis
  std::vector<float> scratch_;                   // backward only; never outlives a call
};

}  // namespace

std::unique_ptr<Layer> make_merge(MergeOp op) { return std::make_unique<Merge>(op); }

}  // namespace shenjing
