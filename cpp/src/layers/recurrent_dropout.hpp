// Dropout inside SimpleRNN, LSTM and GRU, as Keras 3.15's DropoutRNNCell (training only; at
// inference nothing is dropped). Masks are drawn once per training call and reused at every
// step of the sequence: input masks (n, F) multiply x_t, recurrent masks (n, u) multiply
// h_{t-1} where the recurrent kernel reads it. Which gate reads which mask, as Keras's cells:
// - SimpleRNN: one input mask and one recurrent mask.
// - LSTM / GRU without recurrent_dropout (Keras's implementation 2): one input mask shared by
//   every gate, so the dropped x goes through the one projection GEMM.
// - LSTM / GRU with recurrent_dropout: Keras switches the cell to implementation 1 with one
//   mask per gate (i, f, c, o / z, r, h) for the state and, when dropout > 0, for the input.
//   A GRU without reset_after drops the state inside r * (h * mask_h) before U_h; with
//   reset_after, r * ((h * mask_h) U_h + b_rh).
// Mask values are 0 or 1 / (1 - rate) (Keras's inverted dropout). Each call draws the input
// masks (gate by gate, sample-major) then the recurrent masks, each group with one
// fill_dropout_mask call, from the layer's stream; a Bidirectional points both of its layers
// at one stream (share_stream), so the model saves one state per layer.
#pragma once
#include <cstdint>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace rnn {

// One call's masks; counts of 0 mean that dropout is off in this call.
struct DropoutMasks {
  int k_in = 0, k_rec = 0;      // input masks (n, F) and recurrent masks (n, u)
  const float* in = nullptr;    // (k_in, n, F)
  const float* rec = nullptr;   // (k_rec, n, u)
  // (n, T, k_rec * u): at step s's time index, block g holds h_{s-1} * recurrent mask g,
  // what the recurrent GEMMs read; the recurrent_kernel gradient reads it again.
  float* hd = nullptr;
};

class CellDropout {
 public:
  // gates: 1 (SimpleRNN), 4 (LSTM) or 3 (GRU). ValueError unless both rates are in [0, 1).
  CellDropout(float rate, float recurrent_rate, int gates, uint64_t seed, const char* type);
  bool enabled() const { return rate_ > 0.0f || rec_rate_ > 0.0f; }
  uint64_t seed() const { return seed_; }
  uint64_t* stream() { return shared_ ? shared_ : &state_; }
  void share_stream(uint64_t* s) { shared_ = s; }
  // Forward (draw): in training with dropout on, draws this call's masks into sv (the
  // layer's own Saved, below the cell's); otherwise records that the call has none.
  // Backward (!draw): the masks forward drew. n * T * F etc. as Recurrent::Dims.
  DropoutMasks masks(Saved& sv, int n, int T, int F, int u, bool training, bool draw);

 private:
  float rate_, rec_rate_;
  int gates_;
  uint64_t seed_, state_;
  uint64_t* shared_ = nullptr;
};

// out[b, t, :] = x[b, t, :] * m[b, :] over (n, T, F) (added to out with `add`).
void mask_sequence(const float* x, const float* m, float* out, int n, int T, int F, bool add);
// v[b * ld + j] *= m[b * u + j] for n rows of u.
void scale_rows(float* v, std::size_t ld, const float* m, int n, int u);
// dh[b * u + j] += g[b * u + j] * m[b * u + j].
void add_masked(const float* g, const float* m, float* dh, int n, int u);

}  // namespace rnn
}  // namespace shenjing
