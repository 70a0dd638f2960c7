// What SimpleRNN, LSTM and GRU share (recurrent.cpp, lstm.cpp, gru.cpp).
//
// Layout: x is (n, T, F) batch first, as Keras feeds it. The input projection of every step,
// x W + b, is one GEMM over all n * T rows into Z (n, T, G*u) before the time loop; step s then
// adds h_{s-1} U to the n rows of Z at time index p(s) (a strided GEMM, row stride T*G*u), and
// a per-ISA kernel applies the gates in place (kernels/recurrent.inc). p(s) = s, or T-1-s with
// go_backwards. Every per-step buffer is indexed by that same time index, so backward's merged
// GEMMs pair the right rows: Hp (n, T, u) holds at p(s) the state h_{s-1} that step s read
// (at s = 0 the initial state: zeros, initial_state's h0 or a stateful layer's kept one),
// hence dU = Hp^T dZ, dW = x^T dZ and dx = dZ W^T are each one GEMM over all
// n * T rows after the backward time loop, which itself only runs dh_{s-1} = dZ_s U^T (U^T
// transposed once per batch, so that GEMM reads it in place). Inputs after the sequence: an
// optional Keras mask (a masked step keeps the state), then initial states; with
// return_state the output packs [output | h | c] (see layers.hpp, RecurrentOptions).
// Dropout (training only) is recurrent_dropout.hpp's: the cells call the dropped_* methods
// when a call has masks.
#pragma once
#include <algorithm>
#include <vector>

#include "kernels/kernels.hpp"
#include "layers/recurrent_dropout.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace rnn {

int kernel_act(Activation a);  // kernels::Act code of a recurrent activation

// Grows v to at least `size` floats and returns its data.
float* grow(std::vector<float>& v, std::size_t size);

// fn(first row, row count) over n rows in blocks, in parallel when the step is large enough to
// pay for a parallel region and the cores are not busy with other work (then a region waits
// for a descheduled thread at every time step: the GEMMs' hint, kernels::threads_solo); the
// blocks never overlap, so results do not depend on threads.
template <class Fn>
void for_rows(int n, int units, Fn fn) {
  const int kBlock = 8;
  const int blocks = (n + kBlock - 1) / kBlock;
  if ((long)n * units < 8192 || blocks < 2 || kernels::table().threads_solo()) {
    fn(0, n);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int k = 0; k < blocks; ++k) {
    const int r0 = k * kBlock;
    fn(r0, n - r0 < kBlock ? n - r0 : kBlock);
  }
}

class Recurrent : public Layer {
 public:
  explicit Recurrent(const RecurrentOptions& opt);
  const char* type() const override;
  void build(const Shape& input) override;
  // The sequence and optionally its mask (layers.hpp, optional_mask).
  bool multi_input() const override { return true; }
  bool optional_mask() const override { return true; }
  int min_inputs() const override { return 1; }
  bool flush_denormals() const override { return true; }
  void build_inputs(const std::vector<Shape>& inputs) override;
  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    run_forward(x, nullptr, y, n, ctx);
  }
  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    run_backward(x, nullptr, y, dy, dx, n, ctx);
  }
  void forward_inputs(const float* const* xs, float* y, int n, const RunContext& ctx) override;
  // From now on the params are (*store)[first ..], where a wrapper (Bidirectional) moved them
  // after build: one list of params per core layer, as the model allocates them.
  void bind_params(std::vector<Param>* store, std::size_t first) {
    store_ = store;
    store_first_ = first;
  }
  bool return_sequences() const { return opt_.return_sequences; }
  bool go_backwards() const { return opt_.go_backwards; }
  bool return_state() const { return opt_.return_state; }
  bool stateful() const { return opt_.stateful; }
  bool takes_initial_state() const { return opt_.initial_state; }
  void reset_states() override {
    std::fill(kept_h_.begin(), kept_h_.end(), 0.0f);
    std::fill(kept_c_.begin(), kept_c_.end(), 0.0f);
  }
  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext& ctx) override;
  // The masks' stream, when the layer has dropout.
  uint64_t* random_state() override { return drop_.enabled() ? drop_.stream() : nullptr; }
  CellDropout& cell_dropout() { return drop_; }

 protected:
  struct Dims {
    int n, T, F, u, G;
    std::size_t rows;  // n * T
    std::size_t ldz() const { return (std::size_t)T * G * u; }
    std::size_t ldh() const { return (std::size_t)T * u; }
  };
  // The cell: mask (n, T) of 0/1 or null (every step real).
  virtual void run_forward(const float* x, const float* mask, float* y, int n,
                           const RunContext& ctx) = 0;
  virtual void run_backward(const float* x, const float* mask, const float* y,
                            const float* dy, float* dx, int n, const RunContext& ctx) = 0;

  Dims dims(int n) const;
  int pos(const Dims& d, int s) const { return opt_.go_backwards ? d.T - 1 - s : s; }
  // The layer's params live in params_, or in a Bidirectional wrapper's (bind_params).
  Param& param(int i) const { return (*store_)[store_first_ + i]; }
  const float* kernel() const { return param(0).value.data(); }
  const float* recurrent_kernel() const { return param(1).value.data(); }
  const float* bias() const { return opt_.use_bias ? param(2).value.data() : nullptr; }

  // Z = x W (+ the input bias) over all n * T rows; x * the input masks with dropout.
  void project_inputs(const float* x, const Dims& d, float* Z, const DropoutMasks& dm);
  // Where step s's output goes: y's row for step s (return_sequences) or the final state.
  float* output_row(float* y, const Dims& d, int s) const;
  const float* output_grad(const float* dy, const Dims& d, int s) const;
  // Floats per sample of the output: the sequence or last h, then with return_state the
  // final states.
  std::size_t output_ld(const Dims&) const { return (std::size_t)shape_size(out_); }
  // Where the final h (then c) sit in a sample's output (return_state).
  std::size_t state_offset(const Dims& d) const {
    return (std::size_t)(opt_.return_sequences ? d.T : 1) * d.u;
  }
  int state_count() const { return opt_.cell == RecurrentCell::LSTM ? 2 : 1; }
  // The first rows of Hp (step 0's state): h0 or zeros.
  void initial_h(float* Hp, const Dims& d) const;
  // After the time loop (return_state): the final c (LSTM, from its carry buffer) next to the
  // final h the last step wrote.
  void store_final_c(const float* C, float* y, const Dims& d) const;
  // Backward starts from the final states' gradients (return_state), or zeros.
  void initial_grads(const float* dy, float* dh, float* dc, const Dims& d) const;
  // Where step s writes its h (row stride *ld): Hp's slot read by step s + 1, or for the
  // last step the output itself.
  float* state_out(float* Hp, float* y, const Dims& d, int s, std::size_t* ld) const;
  // Rows [r0, r0 + m) of step s's h, written to Hp, copied to y's step s as well
  // (return_sequences; the last step already wrote y); masked rows output zeros instead with
  // zero_output_for_mask. Call after the step's kernel.
  void copy_output(const float* h, std::size_t ldh, float* y, const Dims& d, int s, int r0,
                   int m, const float* mask) const;
  // Row b's mask at step s is mask_at(mask, d, s)[b * d.T]; null without a mask.
  const float* mask_at(const float* mask, const Dims& d, int s) const {
    return mask ? mask + pos(d, s) : nullptr;
  }
  // U^T (G*u x u), transposed once per batch for the backward GEMMs dh = dZ U^T.
  const float* transposed_recurrent_kernel(const Dims& d);
  // After the time loop: kernel and input-bias gradients and dx from dZ (the input side),
  // recurrent_kernel gradient Hp^T dZr (columns [c0, c1) of U only when c1 > c0).
  void input_grads(const float* x, const Dims& d, const float* dZ, float* dx,
                   const DropoutMasks& dm);
  void recurrent_grad(const float* Hp, const Dims& d, const float* dZr, int c0, int c1);

  // Dropout (recurrent_dropout.cpp). This call's masks: drawn by forward (draw), read back
  // by backward; none at inference or without dropout.
  DropoutMasks dropout_masks(const Dims& d, const RunContext& ctx, bool draw);
  void project_dropped_inputs(const float* x, const Dims& d, float* Z, const DropoutMasks& dm);
  void dropped_input_grads(const float* x, const Dims& d, const float* dZ, float* dx,
                           const DropoutMasks& dm);
  // Step s's dm.hd blocks from h_{s-1} (Hp's row at step s's time index).
  void drop_state(const Dims& d, const float* Hp, const DropoutMasks& dm, int s) const;
  // Gate blocks [g0, g1) of out (row stride ldo) = beta * out + hd_g U_g (+ bias_g).
  void dropped_recurrence(const Dims& d, const DropoutMasks& dm, int s, int g0, int g1,
                          float* out, std::size_t ldo, float beta, const float* bias) const;
  // dh += sum over g in [g0, g1) of (dzr_g U_g^T) * recurrent mask g.
  void dropped_recurrence_back(const Dims& d, const DropoutMasks& dm, const float* dzr,
                               std::size_t ldz, const float* UT, int g0, int g1, float* dh);
  // recurrent_kernel gradient blocks [g0, g1) = hd_g^T dZr_g.
  void dropped_recurrent_grad(const Dims& d, const DropoutMasks& dm, const float* dZr, int g0,
                              int g1);

  RecurrentOptions opt_;
  int act_ = 0, rec_act_ = 0;  // kernel codes
  std::vector<Param>* store_ = &params_;
  std::size_t store_first_ = 0;
  // Inputs after the sequence: the mask's index (0: none), the first initial state's (0:
  // none); and, during one forward/backward call, the initial states and their gradients.
  std::size_t mask_in_ = 0, state_in_ = 0;
  const float *h0_ = nullptr, *c0_ = nullptr;
  float *dh0_ = nullptr, *dc0_ = nullptr;
  // stateful: the states carried to the next batch, for batches of kept_n_ sequences.
  std::vector<float> kept_h_, kept_c_;
  mutable std::vector<float> final_h_;  // where a stateful call's last step writes h
  int kept_n_ = 0;
  // The states a stateful call starts from; after forward, the final states become them.
  void begin_stateful(int n);
  void end_stateful(const float* y, const float* saved, const Dims& d);
  CellDropout drop_;
  std::vector<float> dz_, dzr_, dh_, dc_, ut_, tmp_, xd_, drec_;  // scratch of one call
};

std::unique_ptr<Layer> make_lstm(const RecurrentOptions& opt);
std::unique_ptr<Layer> make_gru(const RecurrentOptions& opt);

}  // namespace rnn
}  // namespace shenjing
