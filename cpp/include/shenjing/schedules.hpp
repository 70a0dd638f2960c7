// Keras 3's built-in learning-rate schedules (keras.optimizers.schedules), evaluated from the
// optimizer's iteration count inside the update, so a scheduled fit needs no Python per batch.
#pragma once
#include <vector>

namespace shenjing {

enum class ScheduleKind : int {
  Constant = 0,  // no schedule: the optimizer's learning_rate
  ExponentialDecay,
  PiecewiseConstantDecay,
  PolynomialDecay,
  InverseTimeDecay,
  CosineDecay,
  CosineDecayRestarts,
};

// The arguments of every kind (each reads its own; Keras's names). Keras computes a schedule in
// float32 (floatx: its torch backend converts even a NumPy float64 rate to it); value() does
// the same float32 arithmetic, so the rate matches Keras's to the last bit or so.
struct LearningRateSchedule {
  ScheduleKind kind = ScheduleKind::Constant;
  double initial_learning_rate = 0.0;
  double decay_steps = 1.0;     // first_decay_steps for CosineDecayRestarts
  double decay_rate = 1.0;
  bool staircase = false;
  double end_learning_rate = 1e-4, power = 1.0;
  bool cycle = false;
  double alpha = 0.0;
  bool warmup = false;          // CosineDecay with a warmup_target
  double warmup_target = 0.0, warmup_steps = 0.0;
  double t_mul = 2.0, m_mul = 1.0;
  std::vector<double> boundaries, values;  // PiecewiseConstantDecay

  // Throws ValueError (Keras's messages) for arguments Keras refuses.
  void validate() const;
  // The learning rate at `step` (the optimizer's iterations before the update).
  float value(double step) const;
};

}  // namespace shenjing
