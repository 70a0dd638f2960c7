// Walking one tensor in memory order while stepping through a second one with other strides:
// what the reductions (input walked, output stepped with stride 0 on the reduced axes) and the
// strided views (transpose, slice, broadcast_to: output walked, input stepped with permuted,
// scaled or zero strides) share. Adjacent axes that step both tensors alike are merged and
// size-1 axes dropped, so the innermost run is as long as it can be.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include <omp.h>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace walk {

constexpr long long kParallelMin = 1 << 16;  // values per call below which one thread is faster
constexpr int kMaxWalkAxes = 20;             // full ranks stay below 10; merging only shrinks

struct Walk {
  int rank = 0;
  long long len[kMaxWalkAxes];
  long long wst[kMaxWalkAxes];  // stride in the walked tensor (row-major over len)
  long long st[kMaxWalkAxes];   // stride in the other tensor (0: broadcast / reduced)
  long long wbase = 0, base = 0;
};

// The walked tensor has full shape `shape` (row-major); `other[d]` is the other tensor's
// stride along axis d; `base` its offset of element 0.
inline Walk make_walk(const Shape& shape, const std::vector<long long>& other, long long base = 0) {
  Walk g;
  g.base = base;
  long long lens[kMaxWalkAxes], sts[kMaxWalkAxes];
  int r = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    const long long len = shape[d], st = other[d];
    if (len == 1) continue;
    if (r > 0 && sts[r - 1] == st * len) {  // merges with the axis before
      lens[r - 1] *= len;
      sts[r - 1] = st;
      continue;
    }
    lens[r] = len;
    sts[r++] = st;
  }
  if (r == 0) {
    lens[0] = 1;
    sts[0] = 0;
    r = 1;
  }
  g.rank = r;
  long long w = 1;
  for (int d = r - 1; d >= 0; --d) {
    g.len[d] = lens[d];
    g.st[d] = sts[d];
    g.wst[d] = w;
    w *= lens[d];
  }
  return g;
}

// Calls f(walk_offset, other_offset, len, other_stride) for each innermost run, in the walked
// tensor's order; the innermost walked stride is always 1.
template <class F>
void for_runs(const Walk& g, F&& f) {
  const int r = g.rank;
  const long long L = g.len[r - 1], st = g.st[r - 1];
  long long outer = 1;
  for (int d = 0; d + 1 < r; ++d) outer *= g.len[d];
  long long idx[kMaxWalkAxes] = {0}, w = g.wbase, o = g.base;
  for (long long k = 0; k < outer; ++k) {
    f(w, o, L, st);
    for (int d = r - 2; d >= 0; --d) {  // odometer over the outer axes
      w += g.wst[d];
      o += g.st[d];
      if (++idx[d] < g.len[d]) break;
      w -= g.wst[d] * g.len[d];
      o -= g.st[d] * g.len[d];
      idx[d] = 0;
    }
  }
}

// Runs for_runs over g split into parts along one axis, in parallel when total >= kParallelMin.
// Each part covers a range of that axis: with `disjoint_other` the axis must also step the other
// tensor (st != 0), so that parts never touch the same element of it (a reduction's outputs);
// otherwise any axis will do (the walked tensor's elements are disjoint). Each element of the
// other tensor still sees its walked elements in the same order, whatever the thread count.
template <class F>
void parallel_runs(const Walk& g, long long total, bool disjoint_other, F&& f) {
  const int threads = total >= kParallelMin ? omp_get_max_threads() : 1;
  int axis = -1;
  for (int d = 0; d < g.rank && threads > 1; ++d) {
    if (disjoint_other && g.st[d] == 0) continue;
    if (axis < 0 || g.len[d] > g.len[axis]) axis = d;
    if (g.len[d] >= 4 * threads) {
      axis = d;
      break;
    }
  }
  if (axis < 0 || g.len[axis] < 2) return for_runs(g, f);
  const long long parts = std::min<long long>(g.len[axis], threads);
#pragma omp parallel for schedule(static) num_threads((int)parts)
  for (long long t = 0; t < parts; ++t) {
    const long long a = g.len[axis] * t / parts, b = g.len[axis] * (t + 1) / parts;
    Walk p = g;
    p.len[axis] = b - a;
    p.wbase += a * g.wst[axis];
    p.base += a * g.st[axis];
    for_runs(p, f);
  }
}

// How errors show an op's input: "(None, 3, 4)" when batched, "(3, 4)" / "(3,)" otherwise.
inline std::string tensor_str(const Shape& s, bool batched) {
  if (batched) return shape_str(s);
  std::string out = "(";
  for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// Row-major strides of a full shape.
inline std::vector<long long> strides_of(const Shape& s) {
  std::vector<long long> st(s.size());
  long long step = 1;
  for (size_t d = s.size(); d-- > 0;) {
    st[d] = step;
    step *= s[d];
  }
  return st;
}

// y (shape `out`, walked) = x stepped with `in_st` from `base`: transpose, slice, broadcast.
inline void gather_view(const Shape& out, const std::vector<long long>& in_st, long long base,
                        const float* x, float* y) {
  const Walk g = make_walk(out, in_st, base);
  parallel_runs(g, shape_size(out), false, [&](long long w, long long o, long long L,
                                               long long st) {
    if (st == 1) std::copy(x + o, x + o + L, y + w);
    else for (long long j = 0; j < L; ++j) y[w + j] = x[o + j * st];
  });
}

// The adjoint of gather_view when the view touches each element of x at most once (transpose,
// slice): dx (overwritten; elements outside the view get 0) from dy.
inline void scatter_view(const Shape& out, const std::vector<long long>& in_st, long long base,
                         const float* dy, float* dx, long long dx_size) {
  if (shape_size(out) != dx_size) std::fill(dx, dx + dx_size, 0.0f);
  const Walk g = make_walk(out, in_st, base);
  parallel_runs(g, shape_size(out), false, [&](long long w, long long o, long long L,
                                               long long st) {
    if (st == 1) std::copy(dy + w, dy + w + L, dx + o);
    else for (long long j = 0; j < L; ++j) dx[o + j * st] = dy[w + j];
  });
}

// Sums of x (full shape `shape`) over the axes where keep[d] is false, in double, each output in
// row-major order of the summed axes (deterministic for any thread count). acc holds the output
// (the kept axes in order) and is overwritten.
inline void sum_axes(const Shape& shape, const std::vector<char>& keep, const float* x,
                     double* acc) {
  std::vector<long long> st(shape.size(), 0);
  long long step = 1, out_size = 1;
  for (size_t d = shape.size(); d-- > 0;)
    if (keep[d]) {
      st[d] = step;
      step *= shape[d];
    }
  out_size = step;
  std::fill(acc, acc + out_size, 0.0);
  const Walk g = make_walk(shape, st);
  parallel_runs(g, shape_size(shape), true, [&](long long w, long long o, long long L,
                                                long long s) {
    const float* xs = x + w;
    if (s == 0) {
      double t = 0.0;
#pragma omp simd reduction(+ : t)
      for (long long j = 0; j < L; ++j) t += xs[j];
      acc[o] += t;
    } else {
      for (long long j = 0; j < L; ++j) acc[o + j * s] += xs[j];
    }
  });
}

}  // namespace walk
}  // namespace shenjing
