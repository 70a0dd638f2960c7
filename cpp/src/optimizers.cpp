// Optimizer updates with Keras 3's formulas (keras/src/optimizers/*.py), one fused pass per
// parameter buffer.
#include <algorithm>
#include <cmath>

#include "shenjing/optimizers.hpp"

namespace shenjing {
namespace {

int slot_count(const OptimizerOptions& o) {
  switch (o.kind) {
    case OptimizerKind::SGD: return o.momentum != 0.0f ? 1 : 0;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: return o.amsgrad ? 3 : 2;
    case OptimizerKind::RMSprop: return 1 + (o.momentum > 0.0f) + o.centered;
    case OptimizerKind::Adagrad: return 1;
  }
  return 0;
}

}  // namespace

void Optimizer::apply(std::vector<Param*>& params) {
  const OptimizerOptions& o = opt_;
  if (slots_.size() != params.size()) {
    slots_.assign(params.size(), {});
    for (size_t i = 0; i < params.size(); ++i) {
      const float init = o.kind == OptimizerKind::Adagrad ? o.initial_accumulator_value : 0.0f;
      slots_[i].assign(slot_count(o), std::vector<float>(params[i]->value.size(), init));
    }
  }
  const long long step = ++iterations_;
  const float lr = o.learning_rate;
  for (size_t pi = 0; pi < params.size(); ++pi) {
    float* w = params[pi]->value.data();
    const float* g = params[pi]->grad.data();
    const size_t len = params[pi]->value.size();
    auto& s = slots_[pi];
    switch (o.kind) {
      case OptimizerKind::SGD: {
        if (o.momentum == 0.0f) {
          for (size_t i = 0; i < len; ++i) w[i] -= lr * g[i];
          break;
        }
        float* m = s[0].data();
        const float mu = o.momentum;
        for (size_t i = 0; i < len; ++i) {
          m[i] = mu * m[i] - lr * g[i];
          w[i] += o.nesterov ? mu * m[i] - lr * g[i] : m[i];
        }
        break;
      }
      case OptimizerKind::Adam:
      case OptimizerKind::AdamW: {
        if (o.kind == OptimizerKind::AdamW && o.weight_decay != 0.0f) {
          const float decay = 1.0f - lr * o.weight_decay;
          for (size_t i = 0; i < len; ++i) w[i] *= decay;
        }
        const double b1p = std::pow((double)o.beta_1, (double)step);
        const double b2p = std::pow((double)o.beta_2, (double)step);
        const float alpha = (float)(lr * std::sqrt(1.0 - b2p) / (1.0 - b1p));
        const float c1 = 1.0f - o.beta_1, c2 = 1.0f - o.beta_2, eps = o.epsilon;
        float* m = s[0].data();
        float* v = s[1].data();
        if (o.amsgrad) {
          float* vhat = s[2].data();
          for (size_t i = 0; i < len; ++i) {
            m[i] += (g[i] - m[i]) * c1;
            v[i] += (g[i] * g[i] - v[i]) * c2;
            vhat[i] = std::max(vhat[i], v[i]);
            w[i] -= m[i] * alpha / (std::sqrt(vhat[i]) + eps);
          }
        } else {
          for (size_t i = 0; i < len; ++i) {
            m[i] += (g[i] - m[i]) * c1;
            v[i] += (g[i] * g[i] - v[i]) * c2;
            w[i] -= m[i] * alpha / (std::sqrt(v[i]) + eps);
          }
        }
        break;
      }
      case OptimizerKind::RMSprop: {
        float* v = s[0].data();
        float* mom = o.momentum > 0.0f ? s[1].data() : nullptr;
        float* avg = o.centered ? s.back().data() : nullptr;
        const float rho = o.rho, eps = o.epsilon;
        for (size_t i = 0; i < len; ++i) {
          v[i] = rho * v[i] + (1.0f - rho) * g[i] * g[i];
          float denom = v[i];
          if (avg) {
            avg[i] = rho * avg[i] + (1.0f - rho) * g[i];
            denom -= avg[i] * avg[i];
          }
          const float inc = lr * g[i] / std::sqrt(denom + eps);
          if (mom) {
            mom[i] = o.momentum * mom[i] + inc;
            w[i] -= mom[i];
          } else {
            w[i] -= inc;
          }
        }
        break;
      }
      case OptimizerKind::Adagrad: {
        float* acc = s[0].data();
        for (size_t i = 0; i < len; ++i) {
          acc[i] += g[i] * g[i];
          w[i] -= lr * g[i] / std::sqrt(acc[i] + o.epsilon);
        }
        break;
      }
    }
  }
}

}  // namespace shenjing
