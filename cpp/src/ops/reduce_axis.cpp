// Ops along one axis (counted on the full shape, negative from the end):
//   argmax, argmin: attrs axis (int, required), keepdims (default false). The index (as a float)
//     of the first maximum / minimum along the axis; NaN counts as the extreme (NumPy). Over
//     axis 0 of a batched input the output is unbatched. No gradient (dx = 0).
//   softmax, log_softmax: attr axis (int, default -1). Stable: exp(x - max) / sum, and
//     x - max - log(sum exp(x - max)), the sums in double. Over the batch axis of a batched
//     input they are refused: the output would mix samples (batches differ between runs).
//     Gradients: softmax dx = y * (dy - sum(dy * y)); log_softmax dx = dy - exp(y) * sum(dy).
// The axis splits a tensor into (outer, len, inner); each (outer, block of inner columns) is
// one unit of work, units run in parallel above kParallelMin values (disjoint outputs).
// exp is the vector kernel (kernels/math.inc), on a row or a block of columns at a time.
#include <algorithm>
#include <cmath>

#include "kernels/kernels.hpp"
#include "ops/op.hpp"
#include "ops/walk.hpp"

namespace shenjing {
namespace {

constexpr long long kBlock = 256;  // inner columns per unit of work (stack scratch)

struct Around {
  long long outer = 1, len = 1, inner = 1;
};

Around around(const Shape& full, int axis) {
  Around g;
  for (int d = 0; d < (int)full.size(); ++d)
    (d < axis ? g.outer : d == axis ? g.len : g.inner) *= full[d];
  return g;
}

// A contiguous row's max and sums run in kLanes interleaved lanes, combined in lane order: one
// running value would chain every step on the last (4 cycles a value), while the inner loops
// below map lanes to lanes (no reduction in them), which the compiler vectorises. The result
// depends on the row alone, not on the threads. The max is exact either way (a NaN in the row
// makes every output NaN through its exp, whichever lane holds it).
constexpr int kLanes = 32;

float row_max(const float* x, long long len) {
  float l[kLanes];
  for (int j = 0; j < kLanes; ++j) l[j] = x[0];
  long long k = 0;
  for (; k + kLanes <= len; k += kLanes) {
    const float* xk = x + k;
    for (int j = 0; j < kLanes; ++j) l[j] = xk[j] > l[j] ? xk[j] : l[j];
  }
  for (; k < len; ++k) l[0] = x[k] > l[0] ? x[k] : l[0];
  float m = l[0];
  for (int j = 1; j < kLanes; ++j) m = l[j] > m ? l[j] : m;
  return m;
}

// The sum of a[k] (b null) or of a[k] * b[k], in double.
double row_sum(const float* a, const float* b, long long len) {
  double l[kLanes] = {};
  long long k = 0;
  for (; k + kLanes <= len; k += kLanes) {
    const float *ak = a + k, *bk = b ? b + k : nullptr;
    if (bk) {
      for (int j = 0; j < kLanes; ++j) l[j] += (double)ak[j] * bk[j];
    } else {
      for (int j = 0; j < kLanes; ++j) l[j] += ak[j];
    }
  }
  for (; k < len; ++k) l[0] += b ? (double)a[k] * b[k] : (double)a[k];
  double s = 0.0;
  for (int j = 0; j < kLanes; ++j) s += l[j];
  return s;
}

// f(outer index, first inner column, columns) over every unit.
template <class F>
void for_units(const Around& g, F&& f) {
  const long long blocks = (g.inner + kBlock - 1) / kBlock, units = g.outer * blocks;
  const bool parallel = g.outer * g.len * g.inner >= walk::kParallelMin && units > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (long long u = 0; u < units; ++u) {
    const long long o = u / blocks, j0 = (u % blocks) * kBlock;
    f(o, j0, std::min(kBlock, g.inner - j0));
  }
}

class ArgReduce final : public Op {
 public:
  ArgReduce(const std::string& op, bool max, int axis, bool keepdims)
      : Op(op), max_(max), axis_(axis), keepdims_(keepdims) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 1)
      throw ValueError(op_label() + " takes 1 input, received " +
                       std::to_string(inputs.size()) + ".");
    const int b = batched(0) ? 1 : 0;
    const int rank = (int)inputs[0].size() + b;
    a_ = norm_axis(axis_, rank);
    Shape out = inputs[0];
    if (b && a_ == 0) {  // over the batch: unbatched, with a leading 1 for keepdims
      if (keepdims_) out.insert(out.begin(), 1);
    } else if (keepdims_) {
      out[a_ - b] = 1;
    } else {
      out.erase(out.begin() + (a_ - b));
    }
    set_op_shapes(inputs, out, b && a_ != 0);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const Around g = around(full_in(0, n), a_);
    for_units(g, [&](long long o, long long j0, long long cols) {
      const float* x = xs[0] + o * g.len * g.inner + j0;
      float* yo = y + o * g.inner + j0;
      for (long long j = 0; j < cols; ++j) yo[j] = 0.0f;
      for (long long k = 1; k < g.len; ++k) {
        const float* xk = x + k * g.inner;
        for (long long j = 0; j < cols; ++j) {
          const float best = x[(long long)yo[j] * g.inner + j], v = xk[j];
          const bool better = max_ ? v > best : v < best;
          if (better || (v != v && best == best)) yo[j] = (float)k;
        }
      }
    });
  }

  void backward_inputs(const float* const*, const float*, const float*, float* const* dxs,
                       int n, const RunContext&) override {
    if (dxs[0]) std::fill(dxs[0], dxs[0] + in_size(0, n), 0.0f);
  }

 private:
  bool max_;
  int axis_, a_ = 0;
  bool keepdims_;
};

class Softmax final : public Op {
 public:
  Softmax(const std::string& op, bool log, int axis) : Op(op), log_(log), axis_(axis) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 1)
      throw ValueError(op_label() + " takes 1 input, received " +
                       std::to_string(inputs.size()) + ".");
    const int b = batched(0) ? 1 : 0;
    a_ = norm_axis(axis_, (int)inputs[0].size() + b);
    if (b && a_ == 0)
      throw ValueError(op_label() + ": axis " + std::to_string(axis_) + " is the batch axis "
                       "of the input " + walk::tensor_str(inputs[0], true) + "; a softmax "
                       "over it would mix the samples of a batch.");
    set_op_shapes(inputs, inputs[0], b != 0);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const Around g = around(full_in(0, n), a_);
    const kernels::KernelTable& kt = kernels::table();
    if (g.inner == 1) {  // the last axis: contiguous rows
      for_units(g, [&](long long o, long long, long long) {
        row(xs[0] + o * g.len, y + o * g.len, g.len);
      });
      return;
    }
    for_units(g, [&](long long o, long long j0, long long cols) {
      const long long off = o * g.len * g.inner + j0;
      const float* x = xs[0] + off;
      float* yo = y + off;
      float m[kBlock];
      double s[kBlock];
      for (long long j = 0; j < cols; ++j) {
        m[j] = x[j];
        s[j] = 0.0;
      }
      for (long long k = 1; k < g.len; ++k)
        for (long long j = 0; j < cols; ++j) m[j] = std::max(m[j], x[k * g.inner + j]);
      for (long long k = 0; k < g.len; ++k) {
        float* e = yo + k * g.inner;
        for (long long j = 0; j < cols; ++j) e[j] = x[k * g.inner + j] - m[j];
        kt.vexp(e, e, (std::size_t)cols);
        for (long long j = 0; j < cols; ++j) s[j] += e[j];
      }
      for (long long j = 0; j < cols; ++j) {
        if (log_) m[j] += (float)std::log(s[j]);  // log_softmax: x - (max + log sum)
        else s[j] = 1.0 / s[j];
      }
      for (long long k = 0; k < g.len; ++k)
        for (long long j = 0; j < cols; ++j) {
          float& v = yo[k * g.inner + j];
          v = log_ ? x[k * g.inner + j] - m[j] : (float)(v * s[j]);
        }
    });
  }

  void backward_inputs(const float* const*, const float* y, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (!dxs[0]) return;
    const Around g = around(full_in(0, n), a_);
    const kernels::KernelTable& kt = kernels::table();
    if (g.inner == 1) {
      for_units(g, [&](long long o, long long, long long) {
        row_grad(y + o * g.len, dy + o * g.len, dxs[0] + o * g.len, g.len);
      });
      return;
    }
    for_units(g, [&](long long o, long long j0, long long cols) {
      const long long off = o * g.len * g.inner + j0;
      const float *yo = y + off, *d = dy + off;
      float* dx = dxs[0] + off;
      double t[kBlock];
      float e[kBlock];
      for (long long j = 0; j < cols; ++j) t[j] = 0.0;
      for (long long k = 0; k < g.len; ++k)
        for (long long j = 0; j < cols; ++j) {
          const long long i = k * g.inner + j;
          t[j] += log_ ? (double)d[i] : (double)d[i] * yo[i];
        }
      for (long long k = 0; k < g.len; ++k) {
        const long long i = k * g.inner;
        if (log_) {
          kt.vexp(yo + i, e, (std::size_t)cols);
          for (long long j = 0; j < cols; ++j) dx[i + j] = (float)(d[i + j] - e[j] * t[j]);
        } else {
          for (long long j = 0; j < cols; ++j) dx[i + j] = (float)(yo[i + j] * (d[i + j] - t[j]));
        }
      }
    });
  }

 private:
  // One contiguous row of len values.
  void row(const float* x, float* y, long long len) const {
    const float m = row_max(x, len);
    for (long long k = 0; k < len; ++k) y[k] = x[k] - m;
    kernels::table().vexp(y, y, (std::size_t)len);
    const double s = row_sum(y, nullptr, len);
    if (log_) {
      const float c = m + (float)std::log(s);
      for (long long k = 0; k < len; ++k) y[k] = x[k] - c;
    } else {
      const double inv = 1.0 / s;
      for (long long k = 0; k < len; ++k) y[k] = (float)(y[k] * inv);
    }
  }

  void row_grad(const float* y, const float* dy, float* dx, long long len) const {
    if (log_) {
      const float tf = (float)row_sum(dy, nullptr, len);
      float e[kBlock];  // exp(y) a block at a time: dx may be dy
      for (long long k0 = 0; k0 < len; k0 += kBlock) {
        const long long c = std::min(kBlock, len - k0);
        kernels::table().vexp(y + k0, e, (std::size_t)c);
        for (long long k = 0; k < c; ++k) dx[k0 + k] = dy[k0 + k] - e[k] * tf;
      }
    } else {
      const float tf = (float)row_sum(dy, y, len);
      for (long long k = 0; k < len; ++k) dx[k] = y[k] * (dy[k] - tf);
    }
  }

  bool log_;
  int axis_, a_ = 0;
};

int axis_field(const config::Fields& f, const int* def) {
  return f.integer("axis", -config::kMaxRank - 1, config::kMaxRank, def);
}

}  // namespace

std::unique_ptr<Layer> axis_op_from_config(const std::string& op, const config::Fields& f) {
  if (op == "argmax" || op == "argmin")
    return std::make_unique<ArgReduce>(op, op == "argmax", axis_field(f, nullptr),
                                       f.boolean("keepdims", false));
  if (op == "softmax" || op == "log_softmax") {
    const int last = -1;
    return std::make_unique<Softmax>(op, op == "log_softmax", axis_field(f, &last));
  }
  return nullptr;
}

}  // namespace shenjing
