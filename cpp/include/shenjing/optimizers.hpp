// Optimizers with Keras 3 update rules and defaults; state is one buffer set per parameter.
#pragma once
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {

enum class OptimizerKind : int { SGD = 0, Adam, AdamW, RMSprop, Adagrad };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::SGD;
  float learning_rate = 0.01f;
  float momentum = 0.0f;   // SGD, RMSprop
  bool nesterov = false;   // SGD
  float beta_1 = 0.9f, beta_2 = 0.999f;  // Adam, AdamW
  float epsilon = 1e-7f;
  bool amsgrad = false;    // Adam, AdamW
  float weight_decay = 0.0f;  // AdamW (0.004 by default in Keras)
  float rho = 0.9f;        // RMSprop
  bool centered = false;   // RMSprop
  float initial_accumulator_value = 0.1f;  // Adagrad
  // Keras's gradient clipping before the update (0: off; at most one is set): each
  // gradient scaled to an L2 norm of at most clipnorm, all of them together to a global norm
  // of at most global_clipnorm, or each value clipped to [-clipvalue, clipvalue].
  float clipnorm = 0.0f, global_clipnorm = 0.0f, clipvalue = 0.0f;
};

class Optimizer {
 public:
  explicit Optimizer(const OptimizerOptions& opt) : opt_(opt) {}
  // Applies one update to every parameter from its gradient (clipped first, see
  // OptimizerOptions); creates state on first use.
  void apply(std::vector<Param*>& params);
  long long iterations() const { return iterations_; }
  const OptimizerOptions& options() const { return opt_; }
  void set_learning_rate(float lr) { opt_.learning_rate = lr; }

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
  OptimizerOptions opt_;
  long long iterations_ = 0;
  // slots_[i][s]: state buffer s (momentum, velocity, ...) of parameter i.
  std::vector<std::vector<std::vector<float>>> slots_;
  struct Chunk {
    size_t param, begin, end;
  };
  std::vector<Chunk> chunks_;  // reused every step
};

}  // namespace shenjing
