// GRU (Keras 3), gates z, r, h: z = sig(x W_z + h U_z), r = sig(x W_r + h U_r),
// hh = act(x W_h + r * (h U_h + b_rh)) with reset_after (bias (2, 3u): input and recurrent
// rows) or act(x W_h + (r * h) U_h) without; h_s = z h_{s-1} + (1 - z) hh. Layout in
// recurrent.hpp; the step kernels are kernels/recurrent.inc's gru_step(_back).
#include <cstring>

#include "layers/recurrent.hpp"

namespace shenjing {
namespace rnn {
namespace {

class Gru final : public Recurrent {
 public:
  using Recurrent::Recurrent;

  // Saved: a = the activated gates (n, T, 3u); b = Hp and RH (rh of each step), (n, T, u).
  void run_forward(const float* x, const float* mask, float* y, int n,
                   const RunContext& ctx) override {
    const auto& K = kernels::table();
    const Dims d = dims(n);
    const int u = d.u, cols = 3 * u;
    const std::size_t ldz = d.ldz(), ldh = d.ldh();
    float* Z = grow(ctx.saved->a, d.rows * cols);
    float* Hp = grow(ctx.saved->b, 2 * d.rows * u);
    float* RH = Hp + d.rows * u;
    float* rec = opt_.reset_after ? grow(tmp_, (std::size_t)n * cols) : nullptr;
    const float* U = recurrent_kernel();
    const float* rec_bias = opt_.reset_after && opt_.use_bias ? bias() + cols : nullptr;
    const DropoutMasks dm = dropout_masks(d, ctx, true);
    project_inputs(x, d, Z, dm);
    for (int s = 0; s < d.T; ++s) {
      const std::size_t p = (std::size_t)pos(d, s);
      float* z = Z + p * cols;
      float* hp = Hp + p * u;
      if (s == 0) initial_h(Hp, d);
      // reset_after: rec = h U + b_rec, all three blocks. Otherwise h U_zr goes straight into
      // z's first two blocks (U_zr is U's first 2u columns, row stride 3u). With recurrent
      // dropout each block reads h * its gate's mask (dm.hd, kept for dU).
      if (dm.k_rec) drop_state(d, Hp, dm, s);
      if (dm.k_rec && opt_.reset_after)
        dropped_recurrence(d, dm, s, 0, 3, rec, cols, 0.0f, rec_bias);
      else if (dm.k_rec && (s > 0 || h0_))
        dropped_recurrence(d, dm, s, 0, 2, z, ldz, 1.0f, nullptr);
      else if (opt_.reset_after)
        K.sgemm(false, false, n, cols, u, 1.0f, hp, (int)ldh, U, cols, 0.0f, rec, cols,
                rec_bias);
      else if (s > 0 || h0_)
        K.sgemm(false, false, n, 2 * u, u, 1.0f, hp, (int)ldh, U, cols, 1.0f, z, (int)ldz,
                nullptr);
      std::size_t ldo;
      float* h = state_out(Hp, y, d, s, &ldo);
      const float* ms = mask_at(mask, d, s);
      kernels::RnnStep st{};
      st.units = u;
      st.act = act_;
      st.rec_act = rec_act_;
      st.reset_after = opt_.reset_after;
      st.ldz = ldz;
      st.ldc = ldh;
      st.ldh = ldo;
      st.ldhp = ldh;
      auto step = [&](int phase, int r0, int m) {
        kernels::RnnStep t = st;
        t.rows = m;
        t.z = z + r0 * ldz;
        t.rh = RH + p * u + r0 * ldh;
        t.h = h + r0 * ldo;
        t.h_prev = hp + r0 * ldh;
        t.rec = rec ? rec + (std::size_t)r0 * cols : nullptr;
        t.mask = ms ? ms + (std::size_t)r0 * d.T : nullptr;
        t.ldm = d.T;
        K.gru_step(t, phase);
      };
      if (!opt_.reset_after) {
        for_rows(n, u, [&](int r0, int m) { step(0, r0, m); });
        // Recurrent dropout: rh = r * (h * mask_h), what U_h reads (and dU_h with it).
        if (dm.k_rec) scale_rows(RH + p * u, ldh, dm.rec + 2 * (std::size_t)n * u, n, u);
        // x_h += (r * h) U_h: U_h is U's last u columns.
        K.sgemm(false, false, n, u, u, 1.0f, RH + p * u, (int)ldh, U + 2 * u, cols, 1.0f,
                z + 2 * u, (int)ldz, nullptr);
      }
      for_rows(n, u, [&](int r0, int m) {
        step(1, r0, m);
        copy_output(h, ldo, y, d, s, r0, m, mask);
      });
    }
  }

  void run_backward(const float* x, const float* mask, const float*, const float* dy,
                    float* dx, int n, const RunContext& ctx) override {
    const auto& K = kernels::table();
    const Dims d = dims(n);
    const int u = d.u, cols = 3 * u;
    const std::size_t ldz = d.ldz(), ldh = d.ldh();
    const float* Z = ctx.saved->a.data();
    const float* Hp = ctx.saved->b.data();
    const float* RH = Hp + d.rows * u;
    const DropoutMasks dm = dropout_masks(d, ctx, false);
    float* dZ = grow(dz_, d.rows * cols);
    float* dZr = opt_.reset_after ? grow(dzr_, d.rows * cols) : nullptr;
    float* dh = grow(dh_, (std::size_t)n * u);
    float* drh = opt_.reset_after ? nullptr : grow(tmp_, (std::size_t)n * u);
    initial_grads(dy, dh, nullptr, d);
    const float* UT = transposed_recurrent_kernel(d);  // (3u, u): rows of U_z, U_r, U_h
    for (int s = d.T - 1; s >= 0; --s) {
      const std::size_t p = (std::size_t)pos(d, s);
      const float* g = output_grad(dy, d, s);
      const float* ms = mask_at(mask, d, s);
      kernels::RnnStepBack st{};
      st.units = u;
      st.act = act_;
      st.rec_act = rec_act_;
      st.reset_after = opt_.reset_after;
      st.ldz = ldz;
      st.ldc = ldh;
      st.lddy = output_ld(d);
      st.ldhp = ldh;
      auto step = [&](int phase, int r0, int m) {
        kernels::RnnStepBack t = st;
        t.rows = m;
        t.z = Z + p * cols + r0 * ldz;
        t.rh = RH + p * u + r0 * ldh;
        t.h_prev = Hp + p * u + r0 * ldh;
        t.dy = g ? g + r0 * st.lddy : nullptr;
        t.dh = dh + (std::size_t)r0 * u;
        t.dz = dZ + p * cols + r0 * ldz;
        t.dzr = dZr ? dZr + p * cols + r0 * ldz : nullptr;
        t.drh = drh ? drh + (std::size_t)r0 * u : nullptr;
        t.mask = ms ? ms + (std::size_t)r0 * d.T : nullptr;
        t.ldm = d.T;
        t.zero_output = opt_.zero_output_for_mask;
        K.gru_step_back(t, phase);
      };
      for_rows(n, u, [&](int r0, int m) { step(0, r0, m); });
      if (opt_.reset_after) {
        // dh (now dh * z) += dZr U^T, all three blocks.
        if ((s > 0 || dh0_) && dm.k_rec)
          dropped_recurrence_back(d, dm, dZr + p * cols, ldz, UT, 0, 3, dh);
        else if (s > 0 || dh0_)
          K.sgemm(false, false, n, u, cols, 1.0f, dZr + p * cols, (int)ldz, UT, u, 1.0f, dh, u,
                  nullptr);
        continue;
      }
      // d(r * h) = dz_h U_h^T, then dz_r and dh += d(r * h) * r; then dh += dz_zr U_zr^T.
      K.sgemm(false, false, n, u, u, 1.0f, dZ + p * cols + 2 * u, (int)ldz, UT + 2 * u * u, u,
              0.0f, drh, u, nullptr);
      // rh = r * (h * mask_h): dr and dh both take d(rh) * mask_h where they took d(rh).
      if (dm.k_rec) scale_rows(drh, u, dm.rec + 2 * (std::size_t)n * u, n, u);
      for_rows(n, u, [&](int r0, int m) { step(1, r0, m); });
      if ((s > 0 || dh0_) && dm.k_rec)
        dropped_recurrence_back(d, dm, dZ + p * cols, ldz, UT, 0, 2, dh);
      else if (s > 0 || dh0_)
        K.sgemm(false, false, n, u, 2 * u, 1.0f, dZ + p * cols, (int)ldz, UT, u, 1.0f, dh, u,
                nullptr);
    }
    if (dh0_) std::memcpy(dh0_, dh, (std::size_t)n * u * sizeof(float));
    input_grads(x, d, dZ, dx, dm);
    if (opt_.reset_after) {
      if (dm.k_rec) dropped_recurrent_grad(d, dm, dZr, 0, 3);
      else recurrent_grad(Hp, d, dZr, 0, cols);
      if (opt_.use_bias) K.col_sum(dZr, (int)d.rows, cols, param(2).grad.data() + cols, false);
    } else {
      if (dm.k_rec) dropped_recurrent_grad(d, dm, dZ, 0, 2);
      else recurrent_grad(Hp, d, dZ, 0, 2 * u);
      recurrent_grad(RH, d, dZ, 2 * u, cols);  // rh already holds the dropped state
    }
  }
};

}  // namespace

std::unique_ptr<Layer> make_gru(const RecurrentOptions& opt) {
  return std::make_unique<Gru>(opt);
}

}  // namespace rnn
}  // namespace shenjing
