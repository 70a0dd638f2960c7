// The kernel dispatch table: every hot loop of the core goes through it.
// Each ISA (generic, avx2, avx512) compiles isa_body.inc once with its own flags into its own
// namespace and fills one KernelTable; dispatch.cpp picks the best the CPU supports, once.
#pragma once
#include <cstddef>

namespace shenjing {
namespace kernels {

// Activation codes shared by the kernels and the layers (see shenjing/activations.hpp).
enum Act : int {
  kLinear = 0, kRelu, kSigmoid, kTanh, kSoftmax, kLeakyRelu, kElu, kGelu, kSoftplus, kSwish
};

// Row-major single-precision GEMM:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C  (+ bias[N] added to every row if bias)
// op(A) is A (M x K, row stride lda) or, when ta, A^T with A stored K x M (row stride lda).
// op(B) likewise: B (K x N, ldb) or, when tb, B^T with B stored N x K.
// When beta == 0, C is never read (it may hold NaN). K == 0 gives beta*C (+ bias).
using SgemmFn = void (*)(bool ta, bool tb, int M, int N, int K, float alpha, const float* A,
                         int lda, const float* B, int ldb, float beta, float* C, int ldc,
                         const float* bias);

// y = act(x) over `rows` rows of `cols` (softmax is per row; the others elementwise).
using ActForwardFn = void (*)(int act, float alpha, const float* x, float* y, std::size_t rows,
                              std::size_t cols);
// dx = dy * act'(x) given x (pre-activation) and y = act(x); softmax uses the row Jacobian.
// dx may alias dy.
using ActBackwardFn = void (*)(int act, float alpha, const float* x, const float* y,
                               const float* dy, float* dx, std::size_t rows, std::size_t cols);

// Optimizer updates of n values of one parameter, Keras 3 rules (optimizers.cpp computes the
// step-dependent scalars). State buffers hold n values; a null buffer means "not used".
using SgdFn = void (*)(float* w, const float* g, float* m, std::size_t n, float lr, float mu,
                       bool nesterov);
// Adam/AdamW: w *= decay (1 for Adam), then m, v (and vhat when amsgrad) and
// w -= alpha * m / (sqrt(v or vhat) + eps).
using AdamFn = void (*)(float* w, const float* g, float* m, float* v, float* vhat, std::size_t n,
                        float alpha, float c1, float c2, float eps, float decay);
using RmspropFn = void (*)(float* w, const float* g, float* v, float* mom, float* avg,
                           std::size_t n, float lr, float rho, float momentum, float eps);
using AdagradFn = void (*)(float* w, const float* g, float* acc, std::size_t n, float lr,
                           float eps);

struct KernelTable {
  const char* isa;
  SgdFn sgd;
  AdamFn adam;
  RmspropFn rmsprop;
  AdagradFn adagrad;
  SgemmFn sgemm;
  ActForwardFn act_forward;
  ActBackwardFn act_backward;
};

// The table in use (chosen on first call; SHENJING_ISA=generic|avx2|avx512 forces one).
const KernelTable& table();
// Every table this build and CPU can run, for tests that compare ISAs. Returns the count.
int available_tables(const KernelTable** out, int max);

}  // namespace kernels
}  // namespace shenjing
