// Dropout inside the recurrent layers (see recurrent_dropout.hpp for Keras's semantics): the
// masks, and the Recurrent methods that run the input projection and the recurrent GEMMs on
// dropped values. The layers call them only when a call has masks, so the path without
// dropout is unchanged.
#include "layers/recurrent_dropout.hpp"

#include <string>

#include "layers/dropout_mask.hpp"
#include "layers/recurrent.hpp"

namespace shenjing {
namespace rnn {

CellDropout::CellDropout(float rate, float recurrent_rate, int gates, uint64_t seed,
                         const char* type)
    : rate_(rate), rec_rate_(recurrent_rate), gates_(gates), seed_(seed), state_(seed) {
  for (float r : {rate, recurrent_rate})
    if (!(r >= 0.0f && r < 1.0f))
      throw ValueError(std::string(type) + ": dropout and recurrent_dropout must be in [0, 1), "
                       "received " + std::to_string(r) + ".");
}

DropoutMasks CellDropout::masks(Saved& sv, int n, int T, int F, int u, bool training,
                                bool draw) {
  DropoutMasks m;
  if (draw) sv.idx.assign(1, training && enabled() ? 1 : 0);
  if (sv.idx.empty() || !sv.idx[0]) return m;
  // Keras: recurrent_dropout switches LSTM and GRU cells to one mask per gate for both.
  m.k_in = rate_ > 0.0f ? (rec_rate_ > 0.0f ? gates_ : 1) : 0;
  m.k_rec = rec_rate_ > 0.0f ? gates_ : 0;
  const std::size_t nin = (std::size_t)m.k_in * n * F, nrec = (std::size_t)m.k_rec * n * u;
  if (sv.a.size() < nin + nrec) sv.a.resize(nin + nrec);
  if (draw) {
    if (nin) fill_dropout_mask(*stream(), rate_, sv.a.data(), nin);
    if (nrec) fill_dropout_mask(*stream(), rec_rate_, sv.a.data() + nin, nrec);
  }
  m.in = nin ? sv.a.data() : nullptr;
  m.rec = nrec ? sv.a.data() + nin : nullptr;
  if (nrec) {
    if (sv.b.size() < nrec * T) sv.b.resize(nrec * T);
    m.hd = sv.b.data();
  }
  return m;
}

void mask_sequence(const float* x, const float* m, float* out, int n, int T, int F, bool add) {
  const std::size_t per = (std::size_t)T * F;
#pragma omp parallel for schedule(static) if ((long long)n * T * F > (1 << 16))
  for (int b = 0; b < n; ++b) {
    const float* mb = m + (std::size_t)b * F;
    for (int t = 0; t < T; ++t) {
      const float* xr = x + b * per + (std::size_t)t * F;
      float* o = out + b * per + (std::size_t)t * F;
      if (add)
        for (int j = 0; j < F; ++j) o[j] += xr[j] * mb[j];
      else
        for (int j = 0; j < F; ++j) o[j] = xr[j] * mb[j];
    }
  }
}

void scale_rows(float* v, std::size_t ld, const float* m, int n, int u) {
  for (int b = 0; b < n; ++b)
    for (int j = 0; j < u; ++j) v[b * ld + j] *= m[(std::size_t)b * u + j];
}

void add_masked(const float* g, const float* m, float* dh, int n, int u) {
  const std::size_t len = (std::size_t)n * u;
  for (std::size_t i = 0; i < len; ++i) dh[i] += g[i] * m[i];
}

DropoutMasks Recurrent::dropout_masks(const Dims& d, const RunContext& ctx, bool draw) {
  Saved& sv = *ctx.saved;  // the cell's buffers are a and b; the masks live one level down
  if (sv.nested.empty()) sv.nested.resize(1);
  return drop_.masks(sv.nested[0], d.n, d.T, d.F, d.u, ctx.training, draw);
}

// Z's gate columns in k_in blocks: block g = (x * input mask g) W_g + b_g.
void Recurrent::project_dropped_inputs(const float* x, const Dims& d, float* Z,
                                       const DropoutMasks& dm) {
  const auto& K = kernels::table();
  const int cols = d.G * d.u, bc = cols / dm.k_in, rows = (int)d.rows;
  float* xd = grow(xd_, d.rows * d.F);
  const float* b = bias();
  for (int g = 0; g < dm.k_in; ++g) {
    mask_sequence(x, dm.in + (std::size_t)g * d.n * d.F, xd, d.n, d.T, d.F, false);
    K.sgemm(false, false, rows, bc, d.F, 1.0f, xd, d.F, kernel() + g * bc, cols, 0.0f,
            Z + g * bc, cols, b ? b + g * bc : nullptr);
  }
}

// dW_g = (x * mask_g)^T dZ_g; dx = sum_g (dZ_g W_g^T) * mask_g.
void Recurrent::dropped_input_grads(const float* x, const Dims& d, const float* dZ, float* dx,
                                    const DropoutMasks& dm) {
  const auto& K = kernels::table();
  const int cols = d.G * d.u, bc = cols / dm.k_in, rows = (int)d.rows;
  float* xd = grow(xd_, d.rows * d.F);
  for (int g = 0; g < dm.k_in; ++g) {
    const float* m = dm.in + (std::size_t)g * d.n * d.F;
    mask_sequence(x, m, xd, d.n, d.T, d.F, false);
    K.sgemm(true, false, d.F, bc, rows, 1.0f, xd, d.F, dZ + g * bc, cols, 0.0f,
            param(0).grad.data() + g * bc, cols, nullptr);
    if (!dx) continue;
    K.sgemm(false, true, rows, d.F, bc, 1.0f, dZ + g * bc, cols, kernel() + g * bc, cols, 0.0f,
            xd, d.F, nullptr);
    mask_sequence(xd, m, dx, d.n, d.T, d.F, g > 0);
  }
  if (opt_.use_bias) K.col_sum(dZ, rows, cols, param(2).grad.data(), false);
}

void Recurrent::drop_state(const Dims& d, const float* Hp, const DropoutMasks& dm,
                           int s) const {
  const int u = d.u, k = dm.k_rec;
  const std::size_t p = (std::size_t)pos(d, s), ldh = d.ldh(), ldhd = (std::size_t)d.T * k * u;
  for (int b = 0; b < d.n; ++b) {
    const float* h = Hp + b * ldh + p * u;
    float* o = dm.hd + b * ldhd + p * k * u;
    for (int g = 0; g < k; ++g) {
      const float* m = dm.rec + ((std::size_t)g * d.n + b) * u;
      for (int j = 0; j < u; ++j) o[g * u + j] = h[j] * m[j];
    }
  }
}

void Recurrent::dropped_recurrence(const Dims& d, const DropoutMasks& dm, int s, int g0,
                                   int g1, float* out, std::size_t ldo, float beta,
                                   const float* bias) const {
  const auto& K = kernels::table();
  const int u = d.u, cols = d.G * u, k = dm.k_rec;
  const float* hd = dm.hd + (std::size_t)pos(d, s) * k * u;
  for (int g = g0; g < g1; ++g)
    K.sgemm(false, false, d.n, u, u, 1.0f, hd + g * u, d.T * k * u, recurrent_kernel() + g * u,
            cols, beta, out + g * u, (int)ldo, bias ? bias + g * u : nullptr);
}

void Recurrent::dropped_recurrence_back(const Dims& d, const DropoutMasks& dm,
                                        const float* dzr, std::size_t ldz, const float* UT,
                                        int g0, int g1, float* dh) {
  const auto& K = kernels::table();
  const int u = d.u;
  float* t = grow(drec_, (std::size_t)d.n * u);
  for (int g = g0; g < g1; ++g) {
    K.sgemm(false, false, d.n, u, u, 1.0f, dzr + g * u, (int)ldz, UT + (std::size_t)g * u * u,
            u, 0.0f, t, u, nullptr);
    add_masked(t, dm.rec + (std::size_t)g * d.n * u, dh, d.n, u);
  }
}

void Recurrent::dropped_recurrent_grad(const Dims& d, const DropoutMasks& dm, const float* dZr,
                                       int g0, int g1) {
  const int u = d.u, cols = d.G * u, k = dm.k_rec;
  for (int g = g0; g < g1; ++g)
    kernels::table().sgemm(true, false, u, u, (int)d.rows, 1.0f, dm.hd + g * u, k * u,
                           dZr + g * u, cols, 0.0f, param(1).grad.data() + g * u, cols,
                           nullptr);
}

}  // namespace rnn
}  // namespace shenjing
