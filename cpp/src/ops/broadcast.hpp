// NumPy broadcasting for the elementwise ops with several inputs (binary.cpp: add ... where).
// Shapes broadcast on their FULL shapes, aligned on their last axes; an axis of size 1
// stretches to any size. A batched input's batch axis must stay output axis 0: every batched
// input has the output's full rank (a higher-rank unbatched input would put axes in front of
// the batch axis), and an unbatched input as long as the output has size 1 on that axis (n is
// unknown at build, so nothing else can be checked against it).
//
// At run time the output's full shape and each input's strides through it (0 where broadcast)
// make a Geom; the kernels walk it in blocks of runs of the innermost axis (for_range).
// Gradients of broadcast inputs are sums over the broadcast axes (grad_into), parallel without
// atomics and with a summation order that depends on the shapes only, never on the thread count.
#pragma once
#include <algorithm>
#include <vector>

#include <omp.h>

#include "ops/op.hpp"

namespace shenjing {
namespace bcast {

constexpr long long kParallelMin = 1 << 16;  // values per call below which one thread is faster
constexpr int kMaxArrays = 4;                // the output and up to 3 inputs
constexpr int kMaxAxes = 9;                  // the batch axis and 8 more

// The output's full shape as axes from outer to inner: len[d], and st[a][d], array a's stride
// along axis d (a = 0 the output, contiguous; a = 1 + i input i; 0 where it is broadcast).
// base[a] is the offset of array a's first value. Axes of length 1 are dropped and adjacent
// axes along which every array steps alike are merged: same-shape inputs make one axis, a
// batched (n, ..., C) with an unbatched (C,) makes two, and every innermost stride is 0 or 1.
struct Geom {
  int rank = 0, arrays = 0;
  long long len[kMaxAxes];
  long long st[kMaxArrays][kMaxAxes];
  long long base[kMaxArrays] = {0, 0, 0, 0};
  long long size() const {
    long long s = 1;
    for (int d = 0; d < rank; ++d) s *= len[d];
    return s;
  }
  // The same walk with axis k cut to [lo, hi).
  Geom restrict(int k, long long lo, long long hi) const {
    Geom g = *this;
    g.len[k] = hi - lo;
    for (int a = 0; a < arrays; ++a) g.base[a] += lo * st[a][k];
    return g;
  }
};

// Calls f(off, rows, L) over the positions [b, e) of g's walk, in order, as blocks of `rows`
// runs of the innermost axis, each L long, one step of axis rank-2 apart (rows > 1 only for
// whole runs): off[a] is array a's offset at the block's start; row_stride(g, a) its step
// between rows. Blocks cut the per-run bookkeeping when the innermost axis is short.
template <class F>
void for_range(const Geom& g, long long b, long long e, F&& f) {
  if (b >= e) return;
  const int r = g.rank, A = g.arrays;
  const long long inner = g.len[r - 1];
  long long idx[kMaxAxes], off[kMaxArrays];
  long long rem = b;
  for (int d = r - 1; d >= 0; --d) {
    idx[d] = rem % g.len[d];
    rem /= g.len[d];
  }
  for (int a = 0; a < A; ++a) {
    off[a] = g.base[a];
    for (int d = 0; d < r; ++d) off[a] += idx[d] * g.st[a][d];
  }
  auto step = [&](int d) {  // one step along axis d, carried into the outer axes
    for (; d >= 0; --d) {
      for (int a = 0; a < A; ++a) off[a] += g.st[a][d];
      if (++idx[d] < g.len[d]) return;
      for (int a = 0; a < A; ++a) off[a] -= g.st[a][d] * g.len[d];
      idx[d] = 0;
    }
  };
  for (long long pos = b;;) {
    if (r == 1 || idx[r - 1] != 0 || e - pos < inner) {  // part of one run
      const long long L = std::min(inner - idx[r - 1], e - pos);
      f(static_cast<const long long*>(off), 1LL, L);
      pos += L;
      if (pos >= e) return;
      for (int a = 0; a < A; ++a) off[a] -= idx[r - 1] * g.st[a][r - 1];
      idx[r - 1] = 0;
    } else {  // whole runs, up to the end of axis rank-2 or of the range
      const long long rows = std::min(g.len[r - 2] - idx[r - 2], (e - pos) / inner);
      f(static_cast<const long long*>(off), rows, inner);
      pos += rows * inner;
      if (pos >= e) return;
      for (int a = 0; a < A; ++a) off[a] += (rows - 1) * g.st[a][r - 2];
      idx[r - 2] += rows - 1;
    }
    step(r - 2);
  }
}

// Array a's step between the rows of a block (for_range), and along its innermost axis (0 or 1).
inline long long row_stride(const Geom& g, int a) { return g.rank >= 2 ? g.st[a][g.rank - 2] : 0; }
inline long long inner_stride(const Geom& g, int a) { return g.st[a][g.rank - 1]; }

// Threads for a call over `total` values (1 below the threshold or inside a parallel region).
inline int threads_for(long long total) {
  return total >= kParallelMin && !omp_in_parallel() ? omp_get_max_threads() : 1;
}

// f(off, rows, L) over all of g, the positions split evenly over the threads: for kernels that
// write each output position once (forward; the gradient of an input of the output's shape).
template <class F>
void parallel_runs(const Geom& g, F&& f) {
  const long long N = g.size();
  const int T = (int)std::min<long long>(threads_for(N), N);
#pragma omp parallel for schedule(static) if (T > 1)
  for (int t = 0; t < T; ++t) for_range(g, N * t / T, N * (t + 1) / T, f);
}

// dx (D values) = the sum over g's positions of the run function's values, for input `in`
// (array 1 + in). run(d, off, rows, L, acc) handles one block: d[off[1 + in] ...] is where its
// gradient goes, written (acc false: only for an input of the output's own shape, each value
// visited once) or added (acc true). `partials` is scratch. Each value of dx sums its terms in
// the walk's order, or, when the batch-like outer axis is summed away and dx is small, in fixed
// blocks of that axis added in block order. Either way the result depends on the shapes alone:
// the threads' parts never cut a run that run() sums along, nor the rows it sums down, and a
// part of the innermost axis is 16 values or more, as the whole axis is (run() picks its order
// by the run length: under 16 or not).
template <class Run>
void grad_into(const Geom& g, int in, float* dx, long long D, std::vector<float>& partials,
               Run&& run) {
  const int a = 1 + in;
  const long long N = g.size();
  if (D == N) {  // not broadcast: one value per position
    parallel_runs(g, [&](const long long* off, long long rows, long long L) {
      run(dx, off, rows, L, false);
    });
    return;
  }
  constexpr long long kBlockValues = 1 << 15, kMaxBlocks = 256, kSmallDx = 1024;
  if (N >= kParallelMin && g.st[a][0] == 0 && D <= kSmallDx) {
    // Summed over axis 0 (the batch axis of an unbatched bias): blocks of rows into partial
    // sums, one buffer each, added in order.
    const long long len0 = g.len[0], inner = N / len0;
    long long per = std::max(1LL, kBlockValues / inner);
    per = std::max(per, (len0 + kMaxBlocks - 1) / kMaxBlocks);
    const long long blocks = (len0 + per - 1) / per;
    if (blocks > 1) {
      partials.assign((size_t)(blocks * D), 0.0f);
      const int T = (int)std::min<long long>(threads_for(N), blocks);
#pragma omp parallel for schedule(static) if (T > 1) num_threads(T)
      for (long long blk = 0; blk < blocks; ++blk) {
        const Geom gb = g.restrict(0, blk * per, std::min(len0, (blk + 1) * per));
        float* p = partials.data() + blk * D;
        for_range(gb, 0, gb.size(), [&](const long long* off, long long rows, long long L) {
          run(p, off, rows, L, true);
        });
      }
      std::copy(partials.begin(), partials.begin() + D, dx);
      for (long long blk = 1; blk < blocks; ++blk) {
        const float* p = partials.data() + blk * D;
        for (long long j = 0; j < D; ++j) dx[j] += p[j];
      }
      return;
    }
  }
  // Split the longest axis that dx keeps between the threads: each value of dx belongs to one
  // thread, which adds its terms in the walk's order.
  std::fill(dx, dx + D, 0.0f);
  int k = -1;
  for (int d = 0; d < g.rank; ++d)
    if (g.st[a][d] != 0 && (k < 0 || g.len[d] > g.len[k])) k = d;
  long long T = k < 0 ? 1 : std::min<long long>(threads_for(N), g.len[k]);
  if (k == g.rank - 1) T = std::max(1LL, std::min(T, g.len[k] / 16));  // runs of >= 16 values
#pragma omp parallel for schedule(static) if (T > 1)
  for (long long t = 0; t < T; ++t) {
    const Geom gt = k < 0 ? g : g.restrict(k, g.len[k] * t / T, g.len[k] * (t + 1) / T);
    for_range(gt, 0, gt.size(), [&](const long long* off, long long rows, long long L) {
      run(dx, off, rows, L, true);
    });
  }
}

// Base of the ops with `arity` inputs broadcast together: checks and records the shapes and
// each input's strides through the output; geom(n) is the walk at batch size n.
class BroadcastOp : public Op {
 protected:
  BroadcastOp(std::string op, int arity) : Op(std::move(op), arity), arity_(arity) {}

  void build_inputs(const std::vector<Shape>& inputs) override;
  Geom geom(int n) const;
  // "(None, 3)" for a batched input, "(3,)" for an unbatched one.
  std::string input_str(size_t i) const;

  int arity_;
  Shape full_;                                  // the output's full shape, batch axis as 1
  std::vector<std::vector<long long>> stride_;  // per input, per full output axis
};

}  // namespace bcast

// The ops of binary.cpp (two inputs, and `where`'s three), or nullptr.
std::unique_ptr<Layer> broadcast_op_from_config(const std::string& op, const config::Fields& f);

}  // namespace shenjing
