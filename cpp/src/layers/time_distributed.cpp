// TimeDistributed(inner): the inner layer on every time slice of a (T, ...) input, with one set
// of weights. A sample's slices are contiguous, so (n, T, ...) is (n * T, ...) in memory and the
// inner layer runs once on n * T samples: output (n, T, *inner output). That is what Keras 3
// computes (it calls the inner layer once per step on (n, ...)) for every layer that treats
// samples independently.
//
// BatchNormalization in training is the exception: Keras normalizes each step with that step's
// batch statistics and updates the moving statistics once per step, in step order. The wrapper
// then runs the inner layer T times on the gathered slices x[:, t], each step with its own
// Saved (Saved::steps), and sums the weight gradients over the steps. A wrapper around such a
// wrapper (TimeDistributed(TimeDistributed(BatchNormalization))) steps as well.
//
// The inner layer's params are the wrapper's (params() returns them), so the model allocates,
// shares, saves and trains them as any layer's; trainable reaches the inner layer at each call.
#include <climits>
#include <cstring>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

class TimeDistributed final : public Layer {
 public:
  explicit TimeDistributed(std::unique_ptr<Layer> inner) : inner_(std::move(inner)) {
    if (!inner_) throw ValueError("TimeDistributed: no inner layer.");
    const std::string what = std::string("TimeDistributed cannot wrap layer '") +
                             inner_->name() + "' (" + inner_->type() + "): ";
    // An op may take tensors without a batch axis and a merge layer takes a list of tensors;
    // TimeDistributed hands its one (batch, time, ...) input to the inner layer.
    if (inner_->accepts_unbatched())
      throw ValueError(what + "only layers are supported, not operations.");
    if ((inner_->multi_input() && !inner_->optional_mask()) || inner_->min_inputs() != 1)
      throw ValueError(what + "it takes several inputs, and TimeDistributed passes one.");
    const auto* sub = dynamic_cast<const TimeDistributed*>(inner_.get());
    stepwise_ = std::string(inner_->type()) == "BatchNormalization" ||
                (sub && sub->stepwise_);
  }
  const char* type() const override { return "TimeDistributed"; }

  void build(const Shape& input) override {
    // Keras's _get_child_input_shape: at least (batch, time, feature).
    if (input.size() < 2)
      throw ValueError("Layer '" + name_ + "' (TimeDistributed) should be passed an input with "
                       "at least 3 dimensions (batch, time, ...), received shape " +
                       shape_str(input) + ".");
    T_ = input[0];
    const Shape child(input.begin() + 1, input.end());
    try {
      inner_->build_inputs({child});
    } catch (const ValueError& e) {
      throw ValueError("Layer '" + name_ + "' (TimeDistributed) on input " + shape_str(input) +
                       ": " + e.what());
    }
    if (!inner_->output_batched())
      throw ValueError("Layer '" + name_ + "' (TimeDistributed): the inner layer's output has "
                       "no batch axis.");
    in_ = input;
    out_ = {T_};
    const Shape& o = inner_->output_shape();
    out_.insert(out_.end(), o.begin(), o.end());
    in_step_ = (size_t)shape_size(child);
    out_step_ = (size_t)shape_size(o);
  }

  std::vector<Param>& params() override { return inner_->params(); }
  const std::vector<Param>& params() const override { return inner_->params(); }

  bool passthrough(const RunContext& ctx) const override { return inner_->passthrough(ctx); }
  Activation output_activation() const override { return inner_->output_activation(); }
  bool accumulates_param_grads() const override { return inner_->accumulates_param_grads(); }
  uint64_t* random_state() override { return inner_->random_state(); }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    inner_->set_trainable(trainable_);
    if (!per_step(ctx)) return inner_->forward(x, y, slices(n), ctx);
    std::vector<Saved>& steps = ctx.saved->steps;
    if (steps.size() < (size_t)T_) steps.resize(T_);
    grow(n);
    for (int t = 0; t < T_; ++t) {
      gather(x, xs_.data(), n, t, in_step_);
      RunContext c = ctx;
      c.saved = &steps[t];
      inner_->forward(xs_.data(), ys_.data(), n, c);
      scatter(ys_.data(), y, n, t, out_step_);
    }
  }

  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    inner_->set_trainable(trainable_);
    if (!per_step(ctx)) return inner_->backward(x, y, dy, dx, slices(n), ctx);
    grow(n);
    std::vector<Param>& ps = params();
    const bool adds = inner_->accumulates_param_grads();
    for (int t = 0; t < T_; ++t) {
      gather(x, xs_.data(), n, t, in_step_);
      gather(y, ys_.data(), n, t, out_step_);
      gather(dy, dys_.data(), n, t, out_step_);
      RunContext c = ctx;
      c.saved = &ctx.saved->steps[t];
      // Every step after the first adds its weight gradients to the earlier steps'. A layer
      // that adds itself is told so (at a shared layer's later node, from step 0: the model
      // relies on it); for any other the model keeps its own sum of the nodes, so only the
      // steps are added here.
      c.accumulate = adds && (t > 0 || ctx.accumulate);
      const bool stash = !adds && t > 0;
      if (stash) {
        stash_.clear();
        for (const Param& p : ps) stash_.insert(stash_.end(), p.grad.begin(), p.grad.end());
      }
      inner_->backward(xs_.data(), ys_.data(), dys_.data(), dx ? dxs_.data() : nullptr, n, c);
      if (stash) {
        size_t o = 0;
        for (Param& p : ps) {
          for (size_t i = 0; i < p.grad.size(); ++i) p.grad[i] += stash_[o + i];
          o += p.grad.size();
        }
      }
      if (dx) scatter(dxs_.data(), dx, n, t, in_step_);
    }
  }

 private:
  // Whether this call runs the inner layer step by step (see the top of the file); a frozen
  // BatchNormalization uses its moving statistics, the same for every sample.
  bool per_step(const RunContext& ctx) const { return stepwise_ && ctx.training && trainable_; }

  // n * T as the inner layer's batch size; the layers count samples in an int.
  int slices(int n) const {
    const long long m = (long long)n * T_;
    if (m > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (TimeDistributed): a batch of " +
                       std::to_string(n) + " samples of " + std::to_string(T_) +
                       " steps is more than 2^31 - 1 slices for layer '" + inner_->name() +
                       "'; use a smaller batch_size.");
    return (int)m;
  }

  void grow(int n) {
    const size_t in = (size_t)n * in_step_, out = (size_t)n * out_step_;
    if (xs_.size() < in) xs_.resize(in), dxs_.resize(in);
    if (ys_.size() < out) ys_.resize(out), dys_.resize(out);
  }
  // src (n, T, step) -> dst (n, step): the slices of step t; scatter is the inverse.
  void gather(const float* src, float* dst, int n, int t, size_t step) const {
#pragma omp parallel for schedule(static) if ((long)n * (long)step > 65536)
    for (long b = 0; b < n; ++b)
      std::memcpy(dst + b * step, src + ((size_t)b * T_ + t) * step, step * sizeof(float));
  }
  void scatter(const float* src, float* dst, int n, int t, size_t step) const {
#pragma omp parallel for schedule(static) if ((long)n * (long)step > 65536)
    for (long b = 0; b < n; ++b)
      std::memcpy(dst + ((size_t)b * T_ + t) * step, src + b * step, step * sizeof(float));
  }

  std::unique_ptr<Layer> inner_;
  bool stepwise_ = false;
  int T_ = 0;
  size_t in_step_ = 0, out_step_ = 0;  // floats of one slice in and out
  // Scratch of one per-step call: one step's slices of x, y, dy and dx.
  std::vector<float> xs_, ys_, dys_, dxs_, stash_;
};

}  // namespace

std::unique_ptr<Layer> make_time_distributed(std::unique_ptr<Layer> inner) {
  return std::make_unique<TimeDistributed>(std::move(inner));
}

}  // namespace shenjing
