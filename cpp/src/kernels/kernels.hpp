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

// Geometry of a 2-D window over NHWC data (convolution or pooling); 1-D layers use H = 1.
// Input (H, W, C) per sample; output (OH, OW, ...). Window KH x KW with strides SH, SW and
// dilations DH, DW; PT and PL cells of zero padding before the first row / column (the padding
// after them is whatever OH, OW imply).
struct WindowGeom {
  int H, W, C;
  int KH, KW;
  int SH, SW;
  int DH, DW;
  int PT, PL;
  int OH, OW;
};

// im2col over n samples: col is (n*OH*OW, KH*KW*C) row-major, row (b, oh, ow), column
// (i, j, c) matching a kernel stored (KH, KW, C, F); padding cells read as zero.
using Im2colFn = void (*)(const WindowGeom& g, const float* x, int n, float* col);
// The adjoint: dx (n, H, W, C) = sum of the col entries that read each cell (dx overwritten).
using Col2imFn = void (*)(const WindowGeom& g, const float* col, int n, float* dx);
// Max pooling (padding cells ignored): y (n, OH, OW, C) and, when arg is not null, the index
// (h*W + w)*C + c inside the sample of the maximum, for backward.
using MaxPoolFn = void (*)(const WindowGeom& g, const float* x, int n, float* y, int* arg);
// dx (n, H, W, C) overwritten: dy routed to the recorded maxima.
using MaxPoolBackFn = void (*)(const WindowGeom& g, const float* dy, const int* arg, int n,
                               float* dx);
// Average pooling over the cells inside the input (padding excluded, as TF/Keras).
using AvgPoolFn = void (*)(const WindowGeom& g, const float* x, int n, float* y);
using AvgPoolBackFn = void (*)(const WindowGeom& g, const float* dy, int n, float* dx);
// dst[j] = sum over r < rows of src[r*cols + j] (+ dst[j] when accumulate); deterministic.
using ColSumFn = void (*)(const float* src, int rows, int cols, float* dst, bool accumulate);
// BatchNormalization sums over x (R, C) in fixed blocks of kBnBlockRows rows, float within a
// block (the caller adds the blocks in double, in order: deterministic for any thread count);
// part holds 3*C floats per block. Without w: [sum v, block mean m, sum (v - m)^2]; with w:
// [sum v, sum v * (w - shift), unused].
constexpr long kBnBlockRows = 256;
using BnBlockSumsFn = void (*)(const float* v, const float* w, const float* shift, long R, int C,
                               float* part);

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
using NadamFn = void (*)(float* w, const float* g, float* m, float* v, std::size_t n, float lr,
                         float c1, float c2, float cm, float cg, float bc2, float eps);
using AdamaxFn = void (*)(float* w, const float* g, float* m, float* u, std::size_t n,
                          float lr_t, float c1, float beta_2, float eps);
using LionFn = void (*)(float* w, const float* g, float* m, std::size_t n, float lr,
                        float beta_1, float beta_2);

// y[i] = f(x[i]) for i < n, float32 exp, log, log1p or expm1 (math.inc): vectorised, within 2
// ulp of the exact value, IEEE special values as libm.
// y may be x; otherwise they must not overlap.
using VecMathFn = void (*)(const float* x, float* y, std::size_t n);

// One time step of a recurrent cell over `rows` rows (recurrent.inc). Row b of a matrix X is
// X + b * ldX; matrices of `units` (or 3 * units) columns without an ld are contiguous.
// act / rec_act are kLinear, kRelu, kSigmoid or kTanh (the cell's activation and
// recurrent_activation). z: the gates' pre-activations, replaced by their activations.
// LSTM: c_prev (null: zeros), c, tc = act(c) (all ldc), h (ldh). GRU: h_prev (ldhp), h (ldh),
// rh (ldc): rec_h kept for backward (reset_after; rec: h_prev U + recurrent bias) or
// r * h_prev (otherwise).
struct RnnStep {
  int rows, units, act, rec_act;
  bool reset_after;
  float* z;
  std::size_t ldz;
  const float* c_prev;
  float* c;
  float* tc;
  float* rh;
  std::size_t ldc, ldcp;  // ldcp: c_prev's row stride
  float* h;
  std::size_t ldh;
  const float* h_prev;
  std::size_t ldhp;
  const float* rec;
  // Row b's step is masked (keeps h_prev, c_prev) when mask && mask[b * ldm] == 0.
  const float* mask;
  std::size_t ldm;
};
// Backward of one step: dh (+ dy when not null) is dL/dh of the step's output; z, tc, c_prev,
// rh, h_prev as saved by the forward step; dz gets the pre-activation gradients (ldz), dzr the
// recurrent ones of a reset_after GRU; dc (LSTM carry) and dh are updated in place to what
// flows to the previous step (dh before the GEMM with U^T); drh: dL/d(r * h_prev) (GRU).
struct RnnStepBack {
  int rows, units, act, rec_act;
  bool reset_after;
  const float* z;
  std::size_t ldz;
  const float* tc;
  const float* c_prev;
  const float* rh;
  std::size_t ldc, ldcp;
  const float* dy;
  std::size_t lddy;
  float* dh;
  float* dc;
  float* dz;
  float* dzr;
  const float* drh;
  const float* h_prev;
  std::size_t ldhp;
  // Masked rows (see RnnStep) get dz = 0 and pass dh (+ dy unless zero_output) and dc on.
  // Unmasked rows leave dh = 0 (LSTM) or dh * z (GRU) for the GEMM that adds dz U^T.
  const float* mask;
  std::size_t ldm;
  bool zero_output;
};
using RnnActRowsFn = void (*)(int act, float* z, int rows, int cols, std::size_t ldz);
// SimpleRNN backward: dz = (dh + dy) act'(h) and dh = 0 for the GEMM, or for masked rows
// (mask[b * ldm] == 0) dz = 0 and dh += dy unless zero_output.
using RnnActRowsBackFn = void (*)(int act, const float* h, std::size_t ldh, float* dh,
                                  const float* dy, std::size_t lddy, float* dz, std::size_t ldz,
                                  int rows, int cols, const float* mask, std::size_t ldm,
                                  bool zero_output);
using LstmStepFn = void (*)(const RnnStep& s);
using LstmStepBackFn = void (*)(const RnnStepBack& s);
using GruStepFn = void (*)(const RnnStep& s, int phase);
using GruStepBackFn = void (*)(const RnnStepBack& s, int phase);

// Whether parallel GEMMs are currently held on one thread because a recent parallel region
// stalled on a descheduled thread (another process on the cores, gemm.inc): other small
// parallel loops follow the same hint.
using ThreadsSoloFn = bool (*)();

struct KernelTable {
  const char* isa;
  SgdFn sgd;
  AdamFn adam;
  RmspropFn rmsprop;
  AdagradFn adagrad;
  NadamFn nadam;
  AdamaxFn adamax;
  LionFn lion;
  SgemmFn sgemm;
  ActForwardFn act_forward;
  ActBackwardFn act_backward;
  Im2colFn im2col;
  Col2imFn col2im;
  MaxPoolFn max_pool;
  MaxPoolBackFn max_pool_backward;
  AvgPoolFn avg_pool;
  AvgPoolBackFn avg_pool_backward;
  ColSumFn col_sum;
  BnBlockSumsFn bn_block_sums;
  VecMathFn vexp;
  VecMathFn vlog;
  VecMathFn vlog1p;
  VecMathFn vexpm1;
  RnnActRowsFn rnn_act_rows;
  RnnActRowsBackFn rnn_act_rows_back;
  LstmStepFn lstm_step;
  LstmStepBackFn lstm_step_back;
  GruStepFn gru_step;
  GruStepBackFn gru_step_back;
  ThreadsSoloFn threads_solo;
};

// The table in use (chosen on first call; SHENJING_ISA=generic|avx2|avx512 forces one).
const KernelTable& table();
// Every table this build and CPU can run, for tests that compare ISAs. Returns the count.
int available_tables(const KernelTable** out, int max);

}  // namespace kernels
}  // namespace shenjing
