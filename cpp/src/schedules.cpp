// Keras 3's learning-rate schedules (keras/src/optimizers/schedules/learning_rate_schedule.py),
// step by step in float32 as Keras computes them for a float initial_learning_rate.
#include "shenjing/schedules.hpp"

#include <cmath>
#include <string>

#include "shenjing/errors.hpp"

namespace shenjing {

void LearningRateSchedule::validate() const {
  const char* steps = kind == ScheduleKind::CosineDecayRestarts ? "first_decay_steps"
                                                                : "decay_steps";
  switch (kind) {
    case ScheduleKind::Constant: return;
    case ScheduleKind::PiecewiseConstantDecay:
      if (values.empty() || boundaries.size() + 1 != values.size())
        throw ValueError("The length of boundaries should be 1 less than the length of values.");
      return;
    default:
      if (!(decay_steps > 0))
        throw ValueError(std::string("Argument `") + steps + "` must be > 0. Received: " +
                         steps + "=" + std::to_string(decay_steps));
  }
}

namespace {

using T = float;  // Keras's float32 tensors

// CosineDecay's decay from `from` over `steps`, at `step` (already clipped).
T cosine(T step, T steps, T from, double alpha) {
  const T fraction = step / steps;
  const T decayed_cos = T(0.5) * (T(1) + std::cos(T(M_PI) * fraction));
  return from * ((T)(1.0 - alpha) * decayed_cos + (T)alpha);
}

T evaluate(const LearningRateSchedule& s, double step_in) {
  const T init = (T)s.initial_learning_rate;
  const T step = (T)step_in;  // Keras: ops.cast(step, dtype)
  const T ds = (T)s.decay_steps;
  switch (s.kind) {
    case ScheduleKind::Constant: return init;
    case ScheduleKind::ExponentialDecay: {
      T p = step / ds;
      if (s.staircase) p = std::floor(p);
      return init * std::pow((T)s.decay_rate, p);
    }
    case ScheduleKind::InverseTimeDecay: {
      T p = step / ds;
      if (s.staircase) p = std::floor(p);
      return init / (T(1) + (T)s.decay_rate * p);
    }
    case ScheduleKind::PiecewiseConstantDecay: {
      // Keras sums value * [step in (low, high]] over the intervals: one of them holds.
      const auto& b = s.boundaries;
      if (step_in <= b.front()) return (T)s.values.front();
      for (size_t i = 0; i + 1 < b.size(); ++i)
        if (step_in > b[i] && step_in <= b[i + 1]) return (T)s.values[i + 1];
      if (step_in > b.back()) return (T)s.values.back();
      return T(0);  // a NaN step is in no interval: Keras's sum is 0 too
    }
    case ScheduleKind::PolynomialDecay: {
      const T end = (T)s.end_learning_rate;
      T at = step, steps = ds;
      if (s.cycle) {
        const T multiplier = at == T(0) ? T(1) : std::ceil(at / ds);
        steps = steps * multiplier;
      } else {
        at = std::fmin(at, steps);
      }
      const T p = at / steps;
      return (init - end) * std::pow(T(1) - p, (T)s.power) + end;
    }
    case ScheduleKind::CosineDecay: {
      if (!s.warmup) return cosine(std::fmin(step, ds), ds, init, s.alpha);
      const T target = (T)s.warmup_target, ws = (T)s.warmup_steps;
      const T at = std::fmin(step, ds + ws);
      if (at < ws) return (target - init) * (at / ws) + init;
      return cosine(at - ws, ds, target, s.alpha);
    }
    case ScheduleKind::CosineDecayRestarts: {
      const T t_mul = (T)s.t_mul;
      T fraction = step / ds, i_restart;
      if (t_mul == T(1)) {
        i_restart = std::floor(fraction);
        fraction -= i_restart;
      } else {
        i_restart = std::floor(std::log(T(1) - fraction * (T(1) - t_mul)) / std::log(t_mul));
        const T sum_r = (T(1) - std::pow(t_mul, i_restart)) / (T(1) - t_mul);
        fraction = (fraction - sum_r) / std::pow(t_mul, i_restart);
      }
      const T m_fac = std::pow((T)s.m_mul, i_restart);
      const T decayed_cos = T(0.5) * m_fac * (T(1) + std::cos(T(M_PI) * fraction));
      const T alpha = (T)s.alpha;
      return init * ((T(1) - alpha) * decayed_cos + alpha);
    }
  }
  return init;
}

}  // namespace

float LearningRateSchedule::value(double step) const { return evaluate(*this, step); }

}  // namespace shenjing
