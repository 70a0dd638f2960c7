// LSTM (Keras 3): z = x W + h_{s-1} U + b split into i, f, c, o; c_s = f c_{s-1} + i act(z_c),
// h_s = o act(c_s); i, f, o use recurrent_activation. Layout in recurrent.hpp.
#include <cstring>

#include "layers/recurrent.hpp"

namespace shenjing {
namespace rnn {
namespace {

class Lstm final : public Recurrent {
 public:
  using Recurrent::Recurrent;

  // Saved: a = the activated gates (n, T, 4u); b = Hp, C (the carry c_s at step s's time
  // index) and TC = act(C), each (n, T, u).
  void run_forward(const float* x, const float* mask, float* y, int n,
                   const RunContext& ctx) override {
    const auto& K = kernels::table();
    const Dims d = dims(n);
    const int u = d.u, cols = 4 * u;
    const std::size_t ldz = d.ldz(), ldh = d.ldh();
    float* Z = grow(ctx.saved->a, d.rows * cols);
    // After Hp, C and TC: a copy of c0 (a stateful layer overwrites its own after forward).
    float* Hp = grow(ctx.saved->b, 3 * d.rows * u + (c0_ ? (std::size_t)n * u : 0));
    float* C = Hp + d.rows * u;
    float* TC = C + d.rows * u;
    const float* c0 = nullptr;
    if (c0_) {
      std::memcpy(TC + d.rows * u, c0_, (std::size_t)n * u * sizeof(float));
      c0 = TC + d.rows * u;
    }
    float* rec = grow(tmp_, (std::size_t)n * cols);
    const DropoutMasks dm = dropout_masks(d, ctx, true);
    project_inputs(x, d, Z, dm);
    for (int s = 0; s < d.T; ++s) {
      const std::size_t p = (std::size_t)pos(d, s);
      float* z = Z + p * cols;
      if (s == 0) initial_h(Hp, d);
      const bool recurrent = s > 0 || h0_;  // h_{-1} = 0 adds nothing
      if (dm.k_rec) {  // rec = (h * mask_g) U_g per gate; dm.hd keeps h * mask_g for dU
        drop_state(d, Hp, dm, s);
        if (recurrent) dropped_recurrence(d, dm, s, 0, 4, rec, cols, 0.0f, nullptr);
      } else if (recurrent) {
        K.sgemm(false, false, n, cols, u, 1.0f, Hp + p * u, (int)ldh, recurrent_kernel(), cols,
                0.0f, rec, cols, nullptr);
      }
      std::size_t ldo;
      float* h = state_out(Hp, y, d, s, &ldo);
      const float* cp = s == 0 ? c0 : C + (std::size_t)pos(d, s - 1) * u;
      const std::size_t ldcp = s == 0 ? (std::size_t)u : ldh;
      const float* ms = mask_at(mask, d, s);
      for_rows(n, u, [&](int r0, int m) {
        kernels::RnnStep st{};
        st.rows = m;
        st.units = u;
        st.act = act_;
        st.rec_act = rec_act_;
        st.z = z + r0 * ldz;
        st.ldz = ldz;
        st.c_prev = cp ? cp + r0 * ldcp : nullptr;
        st.ldcp = ldcp;
        st.c = C + p * u + r0 * ldh;
        st.tc = TC + p * u + r0 * ldh;
        st.ldc = ldh;
        st.h = h + r0 * ldo;
        st.ldh = ldo;
        st.rec = recurrent ? rec + (std::size_t)r0 * cols : nullptr;
        st.h_prev = Hp + p * u + r0 * ldh;
        st.ldhp = ldh;
        st.mask = ms ? ms + (std::size_t)r0 * d.T : nullptr;
        st.ldm = d.T;
        K.lstm_step(st);
        copy_output(h, ldo, y, d, s, r0, m, mask);
      });
    }
    store_final_c(C, y, d);
  }

  void run_backward(const float* x, const float* mask, const float*, const float* dy,
                    float* dx, int n, const RunContext& ctx) override {
    const auto& K = kernels::table();
    const Dims d = dims(n);
    const int u = d.u, cols = 4 * u;
    const std::size_t ldz = d.ldz(), ldh = d.ldh();
    const float* Z = ctx.saved->a.data();
    const float* Hp = ctx.saved->b.data();
    const float* C = Hp + d.rows * u;
    const float* TC = C + d.rows * u;
    const float* c0 = c0_ ? TC + d.rows * u : nullptr;  // forward's copy
    const DropoutMasks dm = dropout_masks(d, ctx, false);
    float* dZ = grow(dz_, d.rows * cols);
    float* dh = grow(dh_, (std::size_t)n * u);
    float* dc = grow(dc_, (std::size_t)n * u);
    initial_grads(dy, dh, dc, d);
    const float* UT = transposed_recurrent_kernel(d);
    for (int s = d.T - 1; s >= 0; --s) {
      const std::size_t p = (std::size_t)pos(d, s);
      const float* g = output_grad(dy, d, s);
      const float* cp = s == 0 ? c0 : C + (std::size_t)pos(d, s - 1) * u;
      const std::size_t ldcp = s == 0 ? (std::size_t)u : ldh;
      const float* ms = mask_at(mask, d, s);
      for_rows(n, u, [&](int r0, int m) {
        kernels::RnnStepBack st{};
        st.rows = m;
        st.units = u;
        st.act = act_;
        st.rec_act = rec_act_;
        st.z = Z + p * cols + r0 * ldz;
        st.ldz = ldz;
        st.tc = TC + p * u + r0 * ldh;
        st.c_prev = cp ? cp + r0 * ldcp : nullptr;
        st.ldcp = ldcp;
        st.ldc = ldh;
        st.dy = g ? g + r0 * output_ld(d) : nullptr;
        st.lddy = output_ld(d);
        st.dh = dh + (std::size_t)r0 * u;
        st.dc = dc + (std::size_t)r0 * u;
        st.dz = dZ + p * cols + r0 * ldz;
        st.mask = ms ? ms + (std::size_t)r0 * d.T : nullptr;
        st.ldm = d.T;
        st.zero_output = opt_.zero_output_for_mask;
        K.lstm_step_back(st);
      });
      if ((s > 0 || dh0_) && dm.k_rec)
        dropped_recurrence_back(d, dm, dZ + p * cols, ldz, UT, 0, 4, dh);
      else if (s > 0 || dh0_)
        K.sgemm(false, false, n, u, cols, 1.0f, dZ + p * cols, (int)ldz, UT, u, 1.0f, dh, u,
                nullptr);
    }
    if (dh0_) std::memcpy(dh0_, dh, (std::size_t)n * u * sizeof(float));
    if (dc0_) std::memcpy(dc0_, dc, (std::size_t)n * u * sizeof(float));
    input_grads(x, d, dZ, dx, dm);
    if (dm.k_rec) dropped_recurrent_grad(d, dm, dZ, 0, 4);
    else recurrent_grad(Hp, d, dZ, 0, cols);
  }
};

}  // namespace

std::unique_ptr<Layer> make_lstm(const RecurrentOptions& opt) {
  return std::make_unique<Lstm>(opt);
}

}  // namespace rnn
}  // namespace shenjing
