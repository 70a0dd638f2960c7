// matmul (2 inputs, no attrs): NumPy's matmul. a (..., M, K) @ b (..., K, N) -> (..., M, N) with
// the leading (batch-of-matrices) axes broadcast; a 1-D a is a row (K,) whose M axis is then
// dropped from the output, a 1-D b a column (K,) whose N axis is dropped.
// The output is batched iff an input is, and the batch axis must be the output's axis 0:
//   - never contracted: a batched a needs rank >= 2, a batched b rank >= 3 (its axis 0 is K
//     otherwise);
//   - a batched a of rank 2 is (n, K): n is M, so b must add no batch-of-matrices axes (b of
//     rank <= 2);
//   - otherwise the batch axis is a leading axis; it must be the output's first, so a batched
//     input has the most leading axes, and an unbatched input with as many has size 1 there.
// Run time: per output matrix p, C_p = A_p B_p with A_p, B_p picked through the broadcast.
// When b has one matrix and a is not broadcast (x (n, ..., K) @ w (K, N), Dense's case) the
// whole product is one GEMM of n * ... rows, and backward two: dA = dC B^T, dB = A^T dC (the
// sum over every row). Otherwise one GEMM per matrix, spread over threads when they are small;
// a broadcast input's gradient sums its matrices' products in output order (deterministic).
#include <algorithm>
#include <climits>

#include "kernels/kernels.hpp"
#include "ops/op.hpp"
#include "ops/walk.hpp"

namespace shenjing {
namespace {

constexpr long long kBatch = -1;  // the batch axis's size at build time (n is unknown)
// Multiply-adds per GEMM below which matrices are spread over threads (each GEMM on one).
constexpr long long kSmallGemm = 1 << 18;

class MatMul final : public Op {
 public:
  MatMul() : Op("matmul", 2) {}

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 2)
      throw ValueError(op_label() + " takes 2 inputs, received " +
                       std::to_string(inputs.size()) + ".");
    std::vector<long long> f[2];  // full shapes, kBatch for the batch axis
    for (int i = 0; i < 2; ++i) {
      if (batched(i)) f[i].push_back(kBatch);
      f[i].insert(f[i].end(), inputs[i].begin(), inputs[i].end());
      if (f[i].empty()) fail(inputs, "matmul needs inputs of rank >= 1, not scalars");
    }
    const int ra = (int)f[0].size(), rb = (int)f[1].size();
    const long long ka = f[0][ra - 1], kb = f[1][rb >= 2 ? rb - 2 : 0];
    if ((batched(0) && ra == 1) || (batched(1) && rb <= 2))
      fail(inputs, "the batch axis would be the contracted axis");
    if (ka != kb)
      fail(inputs, "the contracted axes differ (" + std::to_string(ka) + " and " +
                       std::to_string(kb) + ")");
    // Leading (batch-of-matrices) axes, right-aligned and broadcast.
    const int la = std::max(ra - 2, 0), lb = std::max(rb - 2, 0), L = std::max(la, lb);
    if (batched(0) && ra == 2 && L > 0)
      fail(inputs, "the batch axis (the rows of the first input) would not be the output's "
                   "first axis");
    if ((batched(0) && ra > 2 && la != L) || (batched(1) && lb != L))
      fail(inputs, "the batch axis would not be the output's first axis");
    lead_[0].assign(L, 1);
    lead_[1].assign(L, 1);
    Shape out;
    std::vector<long long> full;
    for (int p = 0; p < L; ++p) {
      const long long a = p >= L - la ? f[0][p - (L - la)] : 1;
      const long long b = p >= L - lb ? f[1][p - (L - lb)] : 1;
      if (a != b && a != 1 && b != 1)
        fail(inputs, "their leading axes cannot be broadcast together (" +
                         (a == kBatch || b == kBatch ? std::string("the batch axis against ") +
                                                           std::to_string(a == kBatch ? b : a)
                                                     : std::to_string(a) + " against " +
                                                           std::to_string(b)) + ")");
      lead_[0][p] = a;
      lead_[1][p] = b;
      full.push_back(a == 1 ? b : a);
    }
    M_ = ra >= 2 ? (int)f[0][ra - 2] : 1;  // kBatch for a batched a of rank 2 (then L == 0)
    K_ = (int)ka;
    N_ = rb >= 2 ? (int)f[1][rb - 1] : 1;
    if (ra >= 2) full.push_back(M_);
    if (rb >= 2) full.push_back(N_);
    const bool out_batched = batched(0) || batched(1);
    for (size_t d = out_batched ? 1 : 0; d < full.size(); ++d) out.push_back((int)full[d]);
    set_op_shapes(inputs, out, out_batched);
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const auto& K = kernels::table();
    const Plan pl = plan(n);
    if (pl.folded) {
      for_row_blocks(pl.P * rows(n), [&](long long r0, int m) {
        K.sgemm(false, false, m, N_, K_, 1.0f, xs[0] + r0 * K_, K_, xs[1], N_, 0.0f,
                y + r0 * N_, N_, nullptr);
      });
      return;
    }
    for_items(pl.P, [&](long long p) {
      K.sgemm(false, false, M_, N_, K_, 1.0f, xs[0] + pl.a[p] * M_ * K_, K_,
              xs[1] + pl.b[p] * K_ * N_, N_, 0.0f, y + p * M_ * N_, N_, nullptr);
    });
  }

  void backward_inputs(const float* const* xs, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    const auto& K = kernels::table();
    const Plan pl = plan(n);
    const long long mk = (long long)M_ * K_, kn = (long long)K_ * N_, mn = (long long)M_ * N_;
    if (pl.folded) {
      if (dxs[0])  // dA = dC B^T
        for_row_blocks(pl.P * rows(n), [&](long long r0, int m) {
          K.sgemm(false, true, m, K_, N_, 1.0f, dy + r0 * N_, N_, xs[1], N_, 0.0f,
                  dxs[0] + r0 * K_, K_, nullptr);
        });
      if (dxs[1])  // dB = A^T dC over every row
        for_row_blocks(pl.P * rows(n), [&](long long r0, int m) {
          K.sgemm(true, false, K_, N_, m, 1.0f, xs[0] + r0 * K_, K_, dy + r0 * N_, N_,
                  r0 == 0 ? 0.0f : 1.0f, dxs[1], N_, nullptr);
        });
      return;
    }
    if (dxs[0]) {  // dA_i = sum over the p reading A_i of dC_p B_p^T
      const Groups g = groups(pl.a, pl.Pa);
      for_items(pl.Pa, [&](long long i) {
        for (long long k = g.start[i]; k < g.start[i + 1]; ++k) {
          const long long p = g.items[k];
          K.sgemm(false, true, M_, K_, N_, 1.0f, dy + p * mn, N_, xs[1] + pl.b[p] * kn, N_,
                  k == g.start[i] ? 0.0f : 1.0f, dxs[0] + i * mk, K_, nullptr);
        }
      });
    }
    if (dxs[1]) {  // dB_i = sum over the p reading B_i of A_p^T dC_p
      const Groups g = groups(pl.b, pl.Pb);
      for_items(pl.Pb, [&](long long i) {
        for (long long k = g.start[i]; k < g.start[i + 1]; ++k) {
          const long long p = g.items[k];
          K.sgemm(true, false, K_, N_, M_, 1.0f, xs[0] + pl.a[p] * mk, K_, dy + p * mn, N_,
                  k == g.start[i] ? 0.0f : 1.0f, dxs[1] + i * kn, N_, nullptr);
        }
      });
    }
  }

 private:
  // Rows of a's matrices: n when they are a batched a's rows, a folded case (no leading axes).
  long long rows(int n) const { return M_ == kBatch ? n : M_; }

  // The output's matrices at batch size n: P of them, and for each the matrix of a and of b it
  // reads (a, b); Pa, Pb: how many matrices a and b hold. folded: one GEMM does it all.
  struct Plan {
    long long P = 1, Pa = 1, Pb = 1;
    bool folded = false;
    std::vector<long long> a, b;
  };
  Plan plan(int n) const {
    Plan pl;
    const int L = (int)lead_[0].size();
    std::vector<long long> len(L, 1), st[2];  // the output's leading axes; strides in a, b
    for (int i = 0; i < 2; ++i) {
      st[i].assign(L, 0);
      long long step = 1;
      for (int p = L - 1; p >= 0; --p) {
        const long long d = lead_[i][p] == kBatch ? n : lead_[i][p];
        len[p] = std::max(len[p], d);  // build checked that the sizes broadcast
        if (d != 1) st[i][p] = step;
        step *= d;
      }
      (i == 0 ? pl.Pa : pl.Pb) = step;
    }
    bool a_whole = true, b_single = true;
    for (int p = 0; p < L; ++p) {
      pl.P *= len[p];
      a_whole = a_whole && (st[0][p] != 0 || len[p] == 1);
      b_single = b_single && st[1][p] == 0;
    }
    pl.folded = a_whole && b_single;
    if (pl.folded) return pl;
    pl.a.resize(pl.P);
    pl.b.resize(pl.P);
    Shape shape(len.begin(), len.end());
    for (int i = 0; i < 2; ++i) {
      std::vector<long long>& idx = i == 0 ? pl.a : pl.b;
      walk::for_runs(walk::make_walk(shape, st[i]), [&](long long w, long long o, long long l,
                                                      long long s) {
        for (long long j = 0; j < l; ++j) idx[w + j] = o + j * s;
      });
    }
    return pl;
  }

  // The output matrices that read each input matrix, in output order.
  struct Groups {
    std::vector<long long> start, items;
  };
  static Groups groups(const std::vector<long long>& of, long long count) {
    Groups g;
    g.start.assign(count + 1, 0);
    for (long long i : of) ++g.start[i + 1];
    for (long long i = 0; i < count; ++i) g.start[i + 1] += g.start[i];
    g.items.resize(of.size());
    std::vector<long long> next(g.start.begin(), g.start.end() - 1);
    for (long long p = 0; p < (long long)of.size(); ++p) g.items[next[of[p]]++] = p;
    return g;
  }

  // f(i) for i < count: over threads (one GEMM each) when the GEMMs are small and many; in
  // order otherwise, each GEMM then threading itself.
  template <class F>
  void for_items(long long count, F&& f) const {
    const long long work = (long long)M_ * N_ * K_;
    const bool spread = count > 1 && work < kSmallGemm && count * work >= walk::kParallelMin;
#pragma omp parallel for schedule(static) if (spread)
    for (long long i = 0; i < count; ++i) f(i);
  }

  // fn(first row, rows) over [0, rows) in blocks that the GEMM's int M can hold.
  template <class Fn>
  static void for_row_blocks(long long rows, Fn fn) {
    constexpr long long kMaxRows = INT_MAX;
    long long r0 = 0;
    do {
      fn(r0, (int)std::min(kMaxRows, rows - r0));
      r0 += kMaxRows;
    } while (r0 < rows);
  }

  [[noreturn]] void fail(const std::vector<Shape>& inputs, const std::string& why) const {
    const std::string s = walk::tensor_str(inputs[0], batched(0)) + " and " +
                          walk::tensor_str(inputs[1], batched(1));
    throw ValueError(op_label() + ": cannot multiply inputs of shapes " + s + ": " + why + ".");
  }

  std::vector<long long> lead_[2];  // leading axes of a and b, right-aligned to the output's
  int M_ = 1, K_ = 1, N_ = 1;
};

}  // namespace

std::unique_ptr<Layer> matmul_op_from_config(const std::string& op, const config::Fields&) {
  if (op == "matmul") return std::make_unique<MatMul>();
  return nullptr;
}

}  // namespace shenjing
