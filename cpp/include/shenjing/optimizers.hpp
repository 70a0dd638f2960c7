// Optimizers with Keras 3 update rules and defaults; state is one buffer set per parameter.
#pragma once
#include <vector>

#include "shenjing/layers.hpp"
#include "shenjing/schedules.hpp"

namespace shenjing {

enum class OptimizerKind : int { SGD = 0, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Lion };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::SGD;
  float learning_rate = 0.01f;
  float momentum = 0.0f;   // SGD, RMSprop
  bool nesterov = false;   // SGD
  float beta_1 = 0.9f, beta_2 = 0.999f;  // Adam, AdamW, Nadam, Adamax, Lion
  float epsilon = 1e-7f;
  bool amsgrad = false;    // Adam, AdamW
  // Keras's decoupled weight decay, every kind: w -= w * weight_decay * lr before the update
  // (0: off; AdamW's default is 0.004), on the params set_decay_mask leaves in.
  float weight_decay = 0.0f;
  float rho = 0.9f;        // RMSprop
  bool centered = false;   // RMSprop
  float initial_accumulator_value = 0.1f;  // Adagrad
  // Keras's gradient clipping before the update (0: off; at most one is set): each
  // gradient scaled to an L2 norm of at most clipnorm, all of them together to a global norm
  // of at most global_clipnorm, or each value clipped to [-clipvalue, clipvalue].
  float clipnorm = 0.0f, global_clipnorm = 0.0f, clipvalue = 0.0f;
  // Keras's use_ema: after each update avg = m * avg + (1 - m) * w (m = 0 at the first step);
  // every ema_overwrite_frequency steps (0: never) w = avg. One more slot per param.
  bool use_ema = false;
  float ema_momentum = 0.99f;
  long long ema_overwrite_frequency = 0;
  // The learning rate of each step, from iterations (Constant: learning_rate).
  LearningRateSchedule schedule;
};

class Optimizer {
 public:
  explicit Optimizer(const OptimizerOptions& opt) : opt_(opt) {}
  // Applies one update to every parameter from its gradient (clipped first, see
  // OptimizerOptions); creates state on first use.
  void apply(std::vector<Param*>& params);
  long long iterations() const { return iterations_; }
  const OptimizerOptions& options() const { return opt_; }
  // Sets a constant learning rate (dropping any schedule) or a schedule.
  void set_learning_rate(float lr);
  void set_schedule(const LearningRateSchedule& s);
  // The rate the next step uses: the schedule at iterations(), or the constant.
  float current_learning_rate() const;
  // Which params (in apply()'s order) weight decay applies to; empty: all of them.
  void set_decay_mask(std::vector<char> mask) { decay_mask_ = std::move(mask); }
  // Keras's finalize_variable_values: with use_ema, each param takes its moving average.
  void finalize(std::vector<Param*>& params);

  // State for saving and resuming: slots()[i][s] is buffer s (momentum, velocity, ...) of
  // parameter i, in the order of the params given to apply(); empty before the first step.
  using Slots = std::vector<std::vector<std::vector<float>>>;
  const Slots& slots() const { return slots_; }
  // Restores saved state for `params`; throws ValueError unless `slots` is empty or has the
  // buffer count and sizes apply() would create.
  void restore(long long iterations, Slots slots, const std::vector<Param*>& params);

 private:
  // Keras's _clip_gradients on the gradients apply() is about to use.
  void clip(std::vector<Param*>& params);
  bool decays(size_t param) const {
    return opt_.weight_decay != 0.0f && (decay_mask_.empty() || decay_mask_[param]);
  }
  OptimizerOptions opt_;
  long long iterations_ = 0;
  std::vector<char> decay_mask_;
  // Nadam's product of the momentum schedule u_1 ... u_t (a function of iterations_).
  float u_product_ = 1.0f;
  // slots_[i][s]: state buffer s (momentum, velocity, ...) of parameter i.
  std::vector<std::vector<std::vector<float>>> slots_;
  struct Chunk {
    size_t param, begin, end;
  };
  std::vector<Chunk> chunks_;  // reused every step
};

}  // namespace shenjing
