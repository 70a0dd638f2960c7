// Bidirectional: two recurrent layers over the same sequence, the second reading it backwards;
// Keras flips the backward layer's output sequence back into input order before merging. The
// wrapper owns both layers' params (moved here after build, see Recurrent::bind_params) so the
// model allocates and optimizes them as one layer's, in Keras's weight order; each inner
// layer keeps its forward state in a Saved of its own (Saved::nested). With dropout both
// layers draw their masks from one stream held here (the forward layer's first), seeded by the
// forward layer's seed (the backward one's when only it has dropout): the model saves one
// random state per core layer, and two copies of one config would otherwise draw the same
// masks in both directions.
#include <cstring>

#include "layers/recurrent.hpp"

namespace shenjing {
namespace {

class Bidirectional final : public Layer {
 public:
  Bidirectional(std::unique_ptr<Layer> fwd, std::unique_ptr<Layer> bwd, BidiMerge mode)
      : mode_(mode) {
    f_ = dynamic_cast<rnn::Recurrent*>(fwd.get());
    b_ = dynamic_cast<rnn::Recurrent*>(bwd.get());
    if (!f_ || !b_)
      throw ValueError("Bidirectional wraps a recurrent layer (SimpleRNN, LSTM, GRU), received " +
                       std::string(f_ ? bwd->type() : fwd->type()) + ".");
    if (f_->go_backwards() == b_->go_backwards())
      throw ValueError("Bidirectional: the forward and backward layers must have different "
                       "go_backwards values.");
    if (f_->takes_initial_state() || b_->takes_initial_state())
      throw ValueError("Bidirectional: initial_state is not supported yet.");
    if (f_->return_state() || b_->return_state() || f_->stateful() || b_->stateful())
      throw ValueError("Bidirectional: return_state=True and stateful=True are not supported "
                       "yet.");
    if (f_->return_sequences() != b_->return_sequences())
      throw ValueError("Bidirectional: the forward and backward layers must have the same "
                       "return_sequences.");
    fwd_ = std::move(fwd);
    bwd_ = std::move(bwd);
    rnn::CellDropout &df = f_->cell_dropout(), &db = b_->cell_dropout();
    state_ = df.enabled() ? df.seed() : db.seed();
    df.share_stream(&state_);
    db.share_stream(&state_);
  }
  const char* type() const override { return "Bidirectional"; }
  bool multi_input() const override { return true; }
  bool optional_mask() const override { return true; }
  int min_inputs() const override { return 1; }
  bool flush_denormals() const override { return true; }
  uint64_t* random_state() override {
    return f_->cell_dropout().enabled() || b_->cell_dropout().enabled() ? &state_ : nullptr;
  }

  void build(const Shape& input) override { build_inputs({input}); }

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.empty() || inputs.size() > 2)  // the sequence and optionally its mask
      throw ValueError("Layer '" + name_ + "' (Bidirectional) takes a sequence and optionally "
                       "its mask, received " + std::to_string(inputs.size()) + " inputs.");
    fwd_->build_inputs(inputs);
    bwd_->build_inputs(inputs);
    const Shape& fo = fwd_->output_shape();
    if (fo != bwd_->output_shape())
      throw ValueError("Layer '" + name_ + "' (Bidirectional): the forward and backward layers "
                       "give outputs of shapes " + shape_str(fo) + " and " +
                       shape_str(bwd_->output_shape()) + "; they must match.");
    in_ = inputs[0];
    ins_ = inputs;
    out_ = fo;
    if (mode_ == BidiMerge::Concat) out_.back() *= 2;
    params_.clear();
    for (auto [layer, prefix] : {std::pair<Layer*, const char*>{fwd_.get(), "forward_"},
                                 {bwd_.get(), "backward_"}})
      for (Param& p : layer->params()) {
        params_.push_back(std::move(p));
        params_.back().name = prefix + params_.back().name;
      }
    const std::size_t nf = fwd_->params().size();
    f_->bind_params(&params_, 0);
    b_->bind_params(&params_, nf);
  }

  // The one-input calls (no mask): the model uses the *_inputs ones for this layer.
  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const float* xs[2] = {x, nullptr};
    forward_inputs(xs, y, n, ctx);
  }
  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const float* xs[2] = {x, nullptr};
    float* dxs[2] = {dx, nullptr};
    backward_inputs(xs, y, dy, dxs, n, ctx);
  }

  // Saved: a = the two layers' outputs (each n * out1), nested = their own state.
  void forward_inputs(const float* const* xs, float* y, int n, const RunContext& ctx) override {
    const std::size_t one = (std::size_t)n * shape_size(fwd_->output_shape());
    Saved& sv = *ctx.saved;
    if (sv.nested.size() < 2) sv.nested.resize(2);
    if (sv.a.size() < 2 * one) sv.a.resize(2 * one);
    float *yf = sv.a.data(), *yb = yf + one;
    RunContext c = ctx;
    c.saved = &sv.nested[0];
    fwd_->forward_inputs(xs, yf, n, c);
    c.saved = &sv.nested[1];
    bwd_->forward_inputs(xs, yb, n, c);
    merge(yf, yb, y, n);
  }

  void backward_inputs(const float* const* xs, const float*, const float* dy,
                       float* const* dxs, int n, const RunContext& ctx) override {
    const std::size_t one = (std::size_t)n * shape_size(fwd_->output_shape());
    Saved& sv = *ctx.saved;
    const float *yf = sv.a.data(), *yb = yf + one;
    if (grads_.size() < 2 * one) grads_.resize(2 * one);
    float *dyf = grads_.data(), *dyb = dyf + one;
    split(dy, yf, yb, dyf, dyb, n);
    const std::size_t nx = (std::size_t)n * shape_size(in_);
    float* dx = dxs[0];
    if (dx && dx_.size() < nx) dx_.resize(nx);
    float* own[2] = {dx, ins_.size() > 1 ? dxs[1] : nullptr};
    RunContext c = ctx;
    c.saved = &sv.nested[0];
    fwd_->backward_inputs(xs, yf, dyf, own, n, c);
    own[0] = dx ? dx_.data() : nullptr;
    c.saved = &sv.nested[1];
    bwd_->backward_inputs(xs, yb, dyb, own, n, c);
    if (dx)
      for (std::size_t i = 0; i < nx; ++i) dx[i] += dx_[i];
  }

 private:
  // Steps of the output: T rows of u per sample with return_sequences, else one.
  void geometry(int n, std::size_t* rows, int* T, int* u) const {
    const Shape& o = fwd_->output_shape();
    *u = o.back();
    *T = o.size() == 2 ? o[0] : 1;
    *rows = (std::size_t)n * *T;
  }
  // The backward layer's row for output row r (its sequence flipped back to input order).
  static std::size_t flipped(std::size_t r, int T) {
    const std::size_t b = r / T, t = r % T;
    return b * T + (T - 1 - t);
  }

  void merge(const float* yf, const float* yb, float* y, int n) const {
    std::size_t rows;
    int T, u;
    geometry(n, &rows, &T, &u);
    for (std::size_t r = 0; r < rows; ++r) {
      const float* f = yf + r * u;
      const float* b = yb + flipped(r, T) * u;
      switch (mode_) {
        case BidiMerge::Concat:
          std::memcpy(y + r * 2 * u, f, u * sizeof(float));
          std::memcpy(y + r * 2 * u + u, b, u * sizeof(float));
          break;
        case BidiMerge::Sum:
          for (int j = 0; j < u; ++j) y[r * u + j] = f[j] + b[j];
          break;
        case BidiMerge::Mul:
          for (int j = 0; j < u; ++j) y[r * u + j] = f[j] * b[j];
          break;
        case BidiMerge::Ave:
          for (int j = 0; j < u; ++j) y[r * u + j] = (f[j] + b[j]) / 2.0f;
          break;
      }
    }
  }

  void split(const float* dy, const float* yf, const float* yb, float* dyf, float* dyb,
             int n) const {
    std::size_t rows;
    int T, u;
    geometry(n, &rows, &T, &u);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t rb = flipped(r, T);
      float* gf = dyf + r * u;
      float* gb = dyb + rb * u;
      const float* g = dy + r * (mode_ == BidiMerge::Concat ? 2 * u : u);
      for (int j = 0; j < u; ++j) {
        switch (mode_) {
          case BidiMerge::Concat: gf[j] = g[j]; gb[j] = g[u + j]; break;
          case BidiMerge::Sum: gf[j] = gb[j] = g[j]; break;
          case BidiMerge::Mul: gf[j] = g[j] * yb[rb * u + j]; gb[j] = g[j] * yf[r * u + j]; break;
          case BidiMerge::Ave: gf[j] = gb[j] = g[j] / 2.0f; break;
        }
      }
    }
  }

  std::unique_ptr<Layer> fwd_, bwd_;
  rnn::Recurrent *f_ = nullptr, *b_ = nullptr;
  BidiMerge mode_;
  uint64_t state_ = 0;  // both layers' dropout stream
  std::vector<float> grads_, dx_;  // backward scratch of one call
};

}  // namespace

std::unique_ptr<Layer> make_bidirectional(std::unique_ptr<Layer> forward,
                                          std::unique_ptr<Layer> backward, BidiMerge mode) {
  return std::make_unique<Bidirectional>(std::move(forward), std::move(backward), mode);
}

}  // namespace shenjing
