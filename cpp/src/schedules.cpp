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

const float kPi = (float)M_PI;

// CosineDecay's decay from `from` over `steps`, at `step` (already clipped).
float cosine(float step, float steps, float from, double alpha) {
  const float fraction = step / steps;
  const float decayed_cos = 0.5f * (1.0f + std::cos(kPi * fraction));
  return from * ((float)(1.0 - alpha) * decayed_cos + (float)alpha);
}

}  // namespace

float LearningRateSchedule::value(double step_in) const {
  const float init = (float)initial_learning_rate;
  const float step = (float)step_in;  // Keras: ops.cast(step, dtype)
  const float ds = (float)decay_steps;
  switch (kind) {
    case ScheduleKind::Constant: return init;
    case ScheduleKind::ExponentialDecay: {
      float p = step / ds;
      if (staircase) p = std::floor(p);
      return init * std::pow((float)decay_rate, p);
    }
    case ScheduleKind::InverseTimeDecay: {
      float p = step / ds;
      if (staircase) p = std::floor(p);
      return init / (1.0f + (float)decay_rate * p);
    }
    case ScheduleKind::PiecewiseConstantDecay: {
      // Keras sums value * [step in (low, high]] over the intervals: one of them holds.
      if (step_in <= boundaries.front()) return (float)values.front();
      for (size_t i = 0; i + 1 < boundaries.size(); ++i)
        if (step_in > boundaries[i] && step_in <= boundaries[i + 1]) return (float)values[i + 1];
      if (step_in > boundaries.back()) return (float)values.back();
      return 0.0f;  // a NaN step is in no interval: Keras's sum is 0 too
    }
    case ScheduleKind::PolynomialDecay: {
      const float end = (float)end_learning_rate;
      float s = step, steps = ds;
      if (cycle) {
        const float multiplier = s == 0.0f ? 1.0f : std::ceil(s / ds);
        steps = steps * multiplier;
      } else {
        s = std::fmin(s, steps);
      }
      const float p = s / steps;
      return (init - end) * std::pow(1.0f - p, (float)power) + end;
    }
    case ScheduleKind::CosineDecay: {
      if (!warmup) return cosine(std::fmin(step, ds), ds, init, alpha);
      const float target = (float)warmup_target, ws = (float)warmup_steps;
      const float s = std::fmin(step, ds + ws);
      if (s < ws) return (target - init) * (s / ws) + init;
      return cosine(s - ws, ds, target, alpha);
    }
    case ScheduleKind::CosineDecayRestarts: {
      const float t_mul_f = (float)t_mul;
      float fraction = step / ds, i_restart;
      if (t_mul_f == 1.0f) {
        i_restart = std::floor(fraction);
        fraction -= i_restart;
      } else {
        i_restart = std::floor(std::log(1.0f - fraction * (1.0f - t_mul_f)) / std::log(t_mul_f));
        const float sum_r = (1.0f - std::pow(t_mul_f, i_restart)) / (1.0f - t_mul_f);
        fraction = (fraction - sum_r) / std::pow(t_mul_f, i_restart);
      }
      const float m_fac = std::pow((float)m_mul, i_restart);
      const float decayed_cos = 0.5f * m_fac * (1.0f + std::cos(kPi * fraction));
      const float alpha_f = (float)alpha;
      return init * ((1.0f - alpha_f) * decayed_cos + alpha_f);
    }
  }
  return init;
}

}  // namespace shenjing
