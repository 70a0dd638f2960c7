// SimpleRNN, and the machinery LSTM and GRU share (see recurrent.hpp for the layout).
#include "layers/recurrent.hpp"

#include <climits>
#include <cstring>

namespace shenjing {
namespace rnn {

int kernel_act(Activation a) {
  switch (a) {
    case Activation::Linear: return kernels::kLinear;
    case Activation::Relu: return kernels::kRelu;
    case Activation::Sigmoid: return kernels::kSigmoid;
    case Activation::Tanh: return kernels::kTanh;
    default:
      throw ValueError(std::string("Recurrent layers support the activations linear, relu, "
                                   "sigmoid and tanh; received '") + activation_name(a) + "'.");
  }
}

float* grow(std::vector<float>& v, std::size_t size) {
  if (v.size() < size) v.resize(size);
  return v.data();
}

static int gate_count(RecurrentCell c) {
  return c == RecurrentCell::LSTM ? 4 : c == RecurrentCell::GRU ? 3 : 1;
}

Recurrent::Recurrent(const RecurrentOptions& opt)
    : opt_(opt),
      drop_(opt.dropout, opt.recurrent_dropout, gate_count(opt.cell), opt.seed, type()) {
  if (opt.units <= 0)
    throw ValueError(std::string(type()) + ": units must be a positive integer, received " +
                     std::to_string(opt.units) + ".");
  act_ = kernel_act(opt.activation);
  rec_act_ = kernel_act(opt.recurrent_activation);
}

const char* Recurrent::type() const {
  switch (opt_.cell) {
    case RecurrentCell::LSTM: return "LSTM";
    case RecurrentCell::GRU: return "GRU";
    default: return "SimpleRNN";
  }
}

void Recurrent::build(const Shape& input) {
  if (input.size() != 2)
    throw ValueError("Layer '" + name_ + "' (" + type() + ") expects input of rank 3 (batch, "
                     "timesteps, features), received input with shape " + shape_str(input) +
                     ".");
  const int G = gate_count(opt_.cell), u = opt_.units;
  // G * u columns index the kernels' int GEMMs; T * G * u floats are one sample's gates.
  if ((long long)G * u > INT_MAX / 4 || (long long)input[0] * G * u > (1LL << 28))
    throw ValueError("Layer '" + name_ + "' (" + type() + "): " + std::to_string(u) +
                     " units over " + std::to_string(input[0]) + " timesteps need more than "
                     "2^28 gate values per sample.");
  in_ = input;
  out_ = opt_.return_sequences ? Shape{input[0], u} : Shape{u};
  if (opt_.return_state)  // flat: [output | h | c]
    out_ = Shape{(int)shape_size(out_) + (opt_.cell == RecurrentCell::LSTM ? 2 : 1) * u};
  params_.clear();
  params_.push_back(Param{"kernel", {input[1], G * u}, {}, {}, opt_.kernel_l1, opt_.kernel_l2});
  params_.push_back(Param{"recurrent_kernel", {u, G * u}, {}, {}, opt_.recurrent_l1,
                          opt_.recurrent_l2});
  if (opt_.use_bias) {
    const bool two = opt_.cell == RecurrentCell::GRU && opt_.reset_after;
    params_.push_back(Param{"bias", two ? Shape{2, G * u} : Shape{G * u}, {}, {}, opt_.bias_l1,
                            opt_.bias_l2});
  }
}

void Recurrent::build_inputs(const std::vector<Shape>& inputs) {
  const std::size_t states = opt_.initial_state ? state_count() : 0;
  const bool masked = inputs.size() == 2 + states;
  if (inputs.size() != 1 + states && !masked)
    throw ValueError("Layer '" + name_ + "' (" + type() + ") takes a sequence, optionally its "
                     "mask, and " + std::to_string(states) + " initial state(s); received " +
                     std::to_string(inputs.size()) + " inputs.");
  build(inputs[0]);
  if (masked && inputs[1] != Shape{inputs[0][0]})
    throw ValueError("Layer '" + name_ + "' (" + type() + "): the mask must have shape (None, " +
                     std::to_string(inputs[0][0]) + ") for input of shape " +
                     shape_str(inputs[0]) + ", received " + shape_str(inputs[1]) + ".");
  if (masked && (states || opt_.stateful))  // Keras: zeros, not h0, before the first step
    throw ValueError("Layer '" + name_ + "' (" + type() + "): a mask together with " +
                     (states ? "initial_state" : "stateful=True") + " is not supported yet.");
  if (states && opt_.stateful)
    throw ValueError("Layer '" + name_ + "' (" + type() + "): initial_state with "
                     "stateful=True is not supported.");
  mask_in_ = masked ? 1 : 0;
  state_in_ = states ? 1 + mask_in_ : 0;
  for (std::size_t k = 0; k < states; ++k)
    if (inputs[state_in_ + k] != Shape{opt_.units})
      throw ValueError("Layer '" + name_ + "' (" + type() + "): initial state " +
                       std::to_string(k) + " must have shape (None, " +
                       std::to_string(opt_.units) + "), received " +
                       shape_str(inputs[state_in_ + k]) + ".");
  ins_ = inputs;
}

namespace {
// Clears a call's initial-state pointers however the call ends (they point into its inputs).
struct CallStates {
  const float **h0, **c0;
  float **dh0, **dc0;
  ~CallStates() { *h0 = *c0 = nullptr, *dh0 = *dc0 = nullptr; }
};
}  // namespace

void Recurrent::forward_inputs(const float* const* xs, float* y, int n,
                               const RunContext& ctx) {
  CallStates clear{&h0_, &c0_, &dh0_, &dc0_};
  h0_ = state_in_ ? xs[state_in_] : nullptr;
  c0_ = state_in_ && state_count() == 2 ? xs[state_in_ + 1] : nullptr;
  if (opt_.stateful) begin_stateful(n);
  run_forward(xs[0], mask_in_ ? xs[mask_in_] : nullptr, y, n, ctx);
  if (opt_.stateful) end_stateful(y, ctx.saved->b.data(), dims(n));
}

void Recurrent::begin_stateful(int n) {
  const std::size_t size = (std::size_t)n * opt_.units;
  if (kept_n_ == 0) {
    kept_n_ = n;
    kept_h_.assign(size, 0.0f);
    if (state_count() == 2) kept_c_.assign(size, 0.0f);
  } else if (kept_n_ != n) {
    throw ValueError("Layer '" + name_ + "' (" + type() + ") is stateful: the batch size of "
                     "the input sequences must be the same as the batch size of the state.\n"
                     "- Expected batch size: " + std::to_string(kept_n_) + "\n- Received batch "
                     "size: " + std::to_string(n));
  }
  h0_ = kept_h_.data();
  c0_ = state_count() == 2 ? kept_c_.data() : nullptr;
}

void Recurrent::end_stateful(const float* y, const float* saved, const Dims& d) {
  const std::size_t ld = opt_.return_state ? output_ld(d) : (std::size_t)d.u;
  const float* h = opt_.return_state ? y + state_offset(d) : final_h_.data();
  for (int b = 0; b < d.n; ++b)
    std::memcpy(kept_h_.data() + (std::size_t)b * d.u, h + b * ld, d.u * sizeof(float));
  if (state_count() == 2) {  // the LSTM's carry buffer (after Hp) at the last step's index
    const float* last = saved + d.rows * d.u + (std::size_t)pos(d, d.T - 1) * d.u;
    for (int b = 0; b < d.n; ++b)
      std::memcpy(kept_c_.data() + (std::size_t)b * d.u, last + (std::size_t)b * d.ldh(),
                  d.u * sizeof(float));
  }
}

void Recurrent::backward_inputs(const float* const* xs, const float* y, const float* dy,
                                float* const* dxs, int n, const RunContext& ctx) {
  CallStates clear{&h0_, &c0_, &dh0_, &dc0_};
  h0_ = state_in_ ? xs[state_in_] : nullptr;
  c0_ = state_in_ && state_count() == 2 ? xs[state_in_ + 1] : nullptr;
  if (opt_.stateful && state_count() == 2) c0_ = kept_c_.data();  // backward reads its copy
  dh0_ = state_in_ ? dxs[state_in_] : nullptr;
  dc0_ = state_in_ && state_count() == 2 ? dxs[state_in_ + 1] : nullptr;
  run_backward(xs[0], mask_in_ ? xs[mask_in_] : nullptr, y, dy, dxs[0], n, ctx);
  if (mask_in_ && dxs[mask_in_])  // a mask has no gradient
    std::memset(dxs[mask_in_], 0, (std::size_t)n * in_[0] * sizeof(float));
}

void Recurrent::initial_h(float* Hp, const Dims& d) const {
  float* slot = Hp + (std::size_t)pos(d, 0) * d.u;
  for (int b = 0; b < d.n; ++b) {
    float* row = slot + (std::size_t)b * d.ldh();
    if (h0_) std::memcpy(row, h0_ + (std::size_t)b * d.u, d.u * sizeof(float));
    else std::memset(row, 0, d.u * sizeof(float));
  }
}

void Recurrent::store_final_c(const float* C, float* y, const Dims& d) const {
  if (!opt_.return_state || state_count() < 2) return;
  const float* last = C + (std::size_t)pos(d, d.T - 1) * d.u;
  const std::size_t ld = output_ld(d), at = state_offset(d) + d.u;
  for (int b = 0; b < d.n; ++b)
    std::memcpy(y + b * ld + at, last + (std::size_t)b * d.ldh(), d.u * sizeof(float));
}

void Recurrent::initial_grads(const float* dy, float* dh, float* dc, const Dims& d) const {
  const std::size_t row = (std::size_t)d.u * sizeof(float), ld = output_ld(d);
  for (int b = 0; b < d.n; ++b) {
    float* h = dh + (std::size_t)b * d.u;
    float* c = dc ? dc + (std::size_t)b * d.u : nullptr;
    if (!opt_.return_state) {
      std::memset(h, 0, row);
      if (c) std::memset(c, 0, row);
      continue;
    }
    const float* g = dy + b * ld + state_offset(d);
    std::memcpy(h, g, row);
    if (c) std::memcpy(c, g + d.u, row);
  }
}

Recurrent::Dims Recurrent::dims(int n) const {
  Dims d{n, in_[0], in_[1], opt_.units, gate_count(opt_.cell), (std::size_t)n * in_[0]};
  if (d.rows > (std::size_t)INT_MAX)
    throw ValueError("Layer '" + name_ + "' (" + type() + "): a batch of " + std::to_string(n) +
                     " sequences of " + std::to_string(d.T) + " steps is more than 2^31 - 1 "
                     "steps; use a smaller batch_size.");
  return d;
}

void Recurrent::project_inputs(const float* x, const Dims& d, float* Z,
                               const DropoutMasks& dm) {
  if (dm.k_in) return project_dropped_inputs(x, d, Z, dm);
  const int cols = d.G * d.u;
  kernels::table().sgemm(false, false, (int)d.rows, cols, d.F, 1.0f, x, d.F, kernel(), cols,
                         0.0f, Z, cols, bias());
}

float* Recurrent::output_row(float* y, const Dims& d, int s) const {
  return opt_.return_sequences ? y + (std::size_t)s * d.u : y;
}

const float* Recurrent::output_grad(const float* dy, const Dims& d, int s) const {
  if (opt_.return_sequences) return dy + (std::size_t)s * d.u;
  return s == d.T - 1 ? dy : nullptr;
}

float* Recurrent::state_out(float* Hp, float* y, const Dims& d, int s, std::size_t* ld) const {
  if (s + 1 < d.T) {
    *ld = d.ldh();
    return Hp + (std::size_t)pos(d, s + 1) * d.u;
  }
  *ld = output_ld(d);
  // The final state: with return_state in its own place (the output may be zeroed there);
  // stateful keeps it for the next batch.
  if (opt_.return_state) return y + state_offset(d);
  if (opt_.stateful) {
    *ld = d.u;
    return grow(final_h_, (std::size_t)d.n * d.u);
  }
  return output_row(y, d, s);
}

void Recurrent::copy_output(const float* h, std::size_t ldh, float* y, const Dims& d, int s,
                            int r0, int m, const float* mask) const {
  // The last step wrote its h into y already, unless it went to the states' place.
  const bool last = s + 1 == d.T && !opt_.return_state && !opt_.stateful;
  if (!opt_.return_sequences && s + 1 < d.T) return;
  const float* ms = mask_at(mask, d, s);
  float* out = output_row(y, d, s);
  const std::size_t ld = output_ld(d);
  for (int b = r0; b < r0 + m; ++b) {
    if (opt_.zero_output_for_mask && ms && ms[(std::size_t)b * d.T] == 0.0f)
      std::memset(out + b * ld, 0, (std::size_t)d.u * sizeof(float));
    else if (!last)  // the last step wrote its h into y already
      std::memcpy(out + b * ld, h + b * ldh, (std::size_t)d.u * sizeof(float));
  }
}

const float* Recurrent::transposed_recurrent_kernel(const Dims& d) {
  const int cols = d.G * d.u;
  float* ut = grow(ut_, (std::size_t)cols * d.u);
  const float* U = recurrent_kernel();
  for (int i = 0; i < d.u; ++i)
    for (int j = 0; j < cols; ++j) ut[(std::size_t)j * d.u + i] = U[(std::size_t)i * cols + j];
  return ut;
}

void Recurrent::input_grads(const float* x, const Dims& d, const float* dZ, float* dx,
                            const DropoutMasks& dm) {
  if (dm.k_in) return dropped_input_grads(x, d, dZ, dx, dm);
  const auto& K = kernels::table();
  const int cols = d.G * d.u, rows = (int)d.rows;
  K.sgemm(true, false, d.F, cols, rows, 1.0f, x, d.F, dZ, cols, 0.0f, param(0).grad.data(),
          cols, nullptr);
  if (opt_.use_bias) K.col_sum(dZ, rows, cols, param(2).grad.data(), false);
  if (dx) K.sgemm(false, true, rows, d.F, cols, 1.0f, dZ, cols, kernel(), cols, 0.0f, dx, d.F,
                  nullptr);
}

void Recurrent::recurrent_grad(const float* Hp, const Dims& d, const float* dZr, int c0,
                               int c1) {
  const int cols = d.G * d.u;
  kernels::table().sgemm(true, false, d.u, c1 - c0, (int)d.rows, 1.0f, Hp, d.u, dZr + c0, cols,
                         0.0f, param(1).grad.data() + c0, cols, nullptr);
}

namespace {

// h_s = act(x_s W + b + h_{s-1} U).
class SimpleRnn final : public Recurrent {
 public:
  using Recurrent::Recurrent;

  void run_forward(const float* x, const float* mask, float* y, int n,
                   const RunContext& ctx) override {
    const auto& K = kernels::table();
    const Dims d = dims(n);
    const std::size_t ldh = d.ldh();
    float* Z = grow(ctx.saved->a, d.rows * d.u);
    float* Hp = grow(ctx.saved->b, d.rows * d.u);
    const DropoutMasks dm = dropout_masks(d, ctx, true);
    project_inputs(x, d, Z, dm);
    for (int s = 0; s < d.T; ++s) {
      const std::size_t p = (std::size_t)pos(d, s) * d.u;
      float* z = Z + p;
      if (s == 0) initial_h(Hp, d);
      if (dm.k_rec) {  // z += (h * mask) U; dm.hd keeps h * mask (zeros at s = 0) for dU
        drop_state(d, Hp, dm, s);
        if (s > 0 || h0_) dropped_recurrence(d, dm, s, 0, 1, z, ldh, 1.0f, nullptr);
      } else if (s > 0 || h0_) {
        K.sgemm(false, false, n, d.u, d.u, 1.0f, Hp + p, (int)ldh, recurrent_kernel(), d.u,
                1.0f, z, (int)ldh, nullptr);
      }
      std::size_t ldo;
      float* h = state_out(Hp, y, d, s, &ldo);
      const float* ms = mask_at(mask, d, s);
      for_rows(n, d.u, [&](int r0, int m) {
        K.rnn_act_rows(act_, z + r0 * ldh, m, d.u, ldh);
        for (int b = r0; b < r0 + m; ++b) {  // a masked step keeps the state
          const bool skip = ms && ms[(std::size_t)b * d.T] == 0.0f;
          std::memcpy(h + b * ldo, (skip ? Hp + p : z) + b * ldh, d.u * sizeof(float));
        }
        copy_output(h, ldo, y, d, s, r0, m, mask);
      });
    }
  }

  void run_backward(const float* x, const float* mask, const float*, const float* dy,
                    float* dx, int n, const RunContext& ctx) override {
    const auto& K = kernels::table();
    const Dims d = dims(n);
    const std::size_t ldh = d.ldh();
    const float* Z = ctx.saved->a.data();  // h of every step, at its time index
    const float* Hp = ctx.saved->b.data();
    const DropoutMasks dm = dropout_masks(d, ctx, false);
    float* dZ = grow(dz_, d.rows * d.u);
    float* dh = grow(dh_, (std::size_t)n * d.u);
    initial_grads(dy, dh, nullptr, d);
    const float* UT = transposed_recurrent_kernel(d);
    for (int s = d.T - 1; s >= 0; --s) {
      const std::size_t p = (std::size_t)pos(d, s) * d.u;
      const float* g = output_grad(dy, d, s);
      const float* ms = mask_at(mask, d, s);
      for_rows(n, d.u, [&](int r0, int m) {
        K.rnn_act_rows_back(act_, Z + p + r0 * ldh, ldh, dh + (std::size_t)r0 * d.u,
                            g ? g + r0 * output_ld(d) : nullptr, output_ld(d),
                            dZ + p + r0 * ldh, ldh, m, d.u, ms ? ms + (std::size_t)r0 * d.T : nullptr,
                            d.T, opt_.zero_output_for_mask);
      });
      if ((s > 0 || dh0_) && dm.k_rec)
        dropped_recurrence_back(d, dm, dZ + p, ldh, UT, 0, 1, dh);
      else if (s > 0 || dh0_)
        K.sgemm(false, false, n, d.u, d.u, 1.0f, dZ + p, (int)ldh, UT, d.u, 1.0f, dh, d.u,
                nullptr);
    }
    if (dh0_) std::memcpy(dh0_, dh, (std::size_t)n * d.u * sizeof(float));
    input_grads(x, d, dZ, dx, dm);
    if (dm.k_rec) dropped_recurrent_grad(d, dm, dZ, 0, 1);
    else recurrent_grad(Hp, d, dZ, 0, d.u);
  }
};

}  // namespace
}  // namespace rnn

std::unique_ptr<Layer> make_recurrent(const RecurrentOptions& opt) {
  switch (opt.cell) {
    case RecurrentCell::LSTM: return rnn::make_lstm(opt);
    case RecurrentCell::GRU: return rnn::make_gru(opt);
    default: return std::make_unique<rnn::SimpleRnn>(opt);
  }
}

}  // namespace shenjing
