// Optimizers: state management and the step-dependent scalars; the update loops are per-ISA
// kernels (kernels/optimizer.inc) run over slices of every parameter in one parallel region.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/kernels.hpp"
#include "shenjing/optimizers.hpp"

namespace shenjing {
namespace {

// The kind's own state buffers per param (the EMA buffer, when used, comes after them).
int kind_slots(const OptimizerOptions& o) {
  switch (o.kind) {
    case OptimizerKind::SGD: return o.momentum != 0.0f ? 1 : 0;
    case OptimizerKind::Adam:
    case OptimizerKind::AdamW: return o.amsgrad ? 3 : 2;
    case OptimizerKind::RMSprop: return 1 + (o.momentum > 0.0f) + o.centered;
    case OptimizerKind::Adagrad: return 1;
    case OptimizerKind::Nadam:
    case OptimizerKind::Adamax: return 2;
    case OptimizerKind::Lion: return 1;
  }
  return 0;
}

int slot_count(const OptimizerOptions& o) { return kind_slots(o) + (o.use_ema ? 1 : 0); }

// Keras's Nadam momentum schedule u_t = beta_1 (1 - 0.5 * 0.96^t), float32 as Keras's.
float nadam_u(float beta_1, long long t) {
  return beta_1 * (1.0f - 0.5f * std::pow(0.96f, (float)t));
}

}  // namespace

void Optimizer::restore(long long iterations, Slots slots, const std::vector<Param*>& params) {
  if (iterations < 0) throw ValueError("Optimizer state: iterations must be non-negative.");
  if (!slots.empty()) {
    const size_t per = (size_t)slot_count(opt_);
    bool ok = slots.size() == params.size();
    for (size_t i = 0; ok && i < slots.size(); ++i) {
      ok = slots[i].size() == per;
      for (const auto& buf : slots[i]) ok = ok && buf.size() == params[i]->value.size();
    }
    if (!ok)
      throw ValueError("Optimizer state does not match this model and optimizer: expected " +
                       std::to_string(per) + " buffers for each of " +
                       std::to_string(params.size()) + " parameters.");
  }
  iterations_ = iterations;
  slots_ = std::move(slots);
  // Nadam's running product is a function of the step count: rebuilt as Keras accumulates it.
  u_product_ = 1.0f;
  if (opt_.kind == OptimizerKind::Nadam)
    for (long long t = 1; t <= iterations_; ++t) u_product_ = u_product_ * nadam_u(opt_.beta_1, t);
}

void Optimizer::set_learning_rate(float lr) {
  opt_.learning_rate = lr;
  opt_.schedule = LearningRateSchedule{};
}

void Optimizer::set_schedule(const LearningRateSchedule& s) {
  s.validate();
  opt_.schedule = s;
}

float Optimizer::current_learning_rate() const {
  if (opt_.schedule.kind == ScheduleKind::Constant) return opt_.learning_rate;
  return opt_.schedule.value((double)iterations_);
}

void Optimizer::finalize(std::vector<Param*>& params) {
  if (!opt_.use_ema || slots_.size() != params.size()) return;
  for (size_t i = 0; i < params.size(); ++i)
    std::copy(slots_[i].back().begin(), slots_[i].back().end(), params[i]->value.begin());
}

// The stretches of a gradient that can be nonzero: its listed rows when row-sparse
// (Embedding), so clipping never passes over a whole table either.
template <class Fn>
static void for_grad(Param& p, Fn fn) {
  if (!p.sparse_rows) return fn(p.grad.data(), p.grad.size());
  const std::size_t width = p.grad.size() / (std::size_t)p.shape[0];
  for (int r : p.grad_rows) fn(p.grad.data() + (std::size_t)r * width, width);
}

static double squared_norm(Param& p) {
  double s = 0.0;
  for_grad(p, [&](const float* g, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) s += (double)g[i] * g[i];
  });
  return s;
}

static void scale(Param& p, float k) {
  for_grad(p, [&](float* g, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) g[i] *= k;
  });
}

void Optimizer::clip(std::vector<Param*>& params) {
  const OptimizerOptions& o = opt_;
  if (o.clipnorm > 0.0f) {  // g * clipnorm / max(|g|, clipnorm), per gradient
    for (Param* p : params) {
      const double norm = std::sqrt(squared_norm(*p));
      if (norm > o.clipnorm) scale(*p, (float)(o.clipnorm / norm));
    }
  } else if (o.global_clipnorm > 0.0f) {  // one factor for all; NaN when the norm is not finite
    double total = 0.0;
    for (Param* p : params) total += squared_norm(*p);
    const double norm = std::sqrt(total);
    const double k = std::isfinite(norm) ? o.global_clipnorm * std::min(1.0 / norm,
                                                                         1.0 / o.global_clipnorm)
                                         : std::nan("");
    if (k != 1.0)
      for (Param* p : params) scale(*p, (float)k);
  } else if (o.clipvalue > 0.0f) {
    const float v = o.clipvalue;
    for (Param* p : params)
      for_grad(*p, [&](float* g, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) g[i] = g[i] < -v ? -v : g[i] > v ? v : g[i];
      });
  }
}

void Optimizer::apply(std::vector<Param*>& params) {
  const OptimizerOptions& o = opt_;
  if (!decay_mask_.empty() && decay_mask_.size() != params.size())
    throw ValueError("Optimizer: the weight decay mask has " +
                     std::to_string(decay_mask_.size()) + " entries for " +
                     std::to_string(params.size()) + " parameters.");
  if (o.clipnorm > 0.0f || o.global_clipnorm > 0.0f || o.clipvalue > 0.0f) clip(params);
  if (slots_.size() != params.size()) {
    slots_.assign(params.size(), {});
    for (size_t i = 0; i < params.size(); ++i) {
      const float init = o.kind == OptimizerKind::Adagrad ? o.initial_accumulator_value : 0.0f;
      slots_[i].assign(kind_slots(o), std::vector<float>(params[i]->value.size(), init));
      if (o.use_ema)  // replaced at the first step (momentum 0 there)
        slots_[i].emplace_back(params[i]->value.begin(), params[i]->value.end());
    }
  }
  const float lr = current_learning_rate();  // at iterations before this step, as Keras
  const long long step = ++iterations_;
  const double b1p = std::pow((double)o.beta_1, (double)step);
  const double b2p = std::pow((double)o.beta_2, (double)step);
  const float alpha = (float)(lr * std::sqrt(1.0 - b2p) / (1.0 - b1p));
  // Keras's _apply_weight_decay: w -= w * weight_decay * lr, before the update.
  const float decay = 1.0f - lr * o.weight_decay;
  float nadam_cm = 0.0f, nadam_cg = 0.0f;
  if (o.kind == OptimizerKind::Nadam) {
    const float u_t = nadam_u(o.beta_1, step), u_next = nadam_u(o.beta_1, step + 1);
    u_product_ = u_product_ * u_t;
    nadam_cm = u_next / (1.0f - u_product_ * u_next);
    nadam_cg = (1.0f - u_t) / (1.0f - u_product_);
  }
  // EMA: Keras's momentum is 0 at the first step (iterations 0), so the average starts at w.
  const float ema_m = step == 1 ? 0.0f : o.ema_momentum;
  const bool ema_overwrite = o.use_ema && o.ema_overwrite_frequency > 0 &&
                             step % o.ema_overwrite_frequency == 0;
  const int ema_slot = kind_slots(o);

  // Split every buffer into slices so one parallel region updates them all. Plain SGD leaves
  // a row with zero gradient exactly as it is, so a row-sparse gradient (Embedding's table)
  // is updated on its listed rows only; every other rule moves zero-gradient weights too
  // (momentum, Adam's moments) and updates the whole buffer, as Keras does.
  constexpr size_t kSlice = 16384;
  const bool rows_only = o.kind == OptimizerKind::SGD && o.momentum == 0.0f && !o.use_ema;
  chunks_.clear();
  size_t total = 0;
  for (size_t pi = 0; pi < params.size(); ++pi) {
    const size_t len = params[pi]->value.size();
    if (rows_only && params[pi]->sparse_rows && !decays(pi)) {
      const size_t width = len / (size_t)params[pi]->shape[0];
      for (int r : params[pi]->grad_rows)
        chunks_.push_back({pi, (size_t)r * width, (size_t)(r + 1) * width});
      total += params[pi]->grad_rows.size() * width;
      continue;
    }
    for (size_t b = 0; b < len; b += kSlice) chunks_.push_back({pi, b, std::min(len, b + kSlice)});
    total += len;
  }
  const kernels::KernelTable& K = kernels::table();
  const long long nchunks = (long long)chunks_.size();
#pragma omp parallel for schedule(static) if (total >= 4 * kSlice)
  for (long long c = 0; c < nchunks; ++c) {
    const Chunk ch = chunks_[c];
    float* w = params[ch.param]->value.data() + ch.begin;
    const float* g = params[ch.param]->grad.data() + ch.begin;
    const size_t n = ch.end - ch.begin;
    auto slot = [&](size_t k) {
      auto& s = slots_[ch.param];
      return k < s.size() ? s[k].data() + ch.begin : nullptr;
    };
    const bool adam_like = o.kind == OptimizerKind::Adam || o.kind == OptimizerKind::AdamW;
    if (decays(ch.param) && !adam_like)  // the Adam kernel folds the decay into its pass
      for (size_t i = 0; i < n; ++i) w[i] *= decay;
    switch (o.kind) {
      case OptimizerKind::SGD:
        K.sgd(w, g, o.momentum != 0.0f ? slot(0) : nullptr, n, lr, o.momentum, o.nesterov);
        break;
      case OptimizerKind::Adam:
      case OptimizerKind::AdamW:
        K.adam(w, g, slot(0), slot(1), o.amsgrad ? slot(2) : nullptr, n, alpha,
               1.0f - o.beta_1, 1.0f - o.beta_2, o.epsilon,
               decays(ch.param) ? decay : 1.0f);
        break;
      case OptimizerKind::RMSprop: {
        float* mom = o.momentum > 0.0f ? slot(1) : nullptr;
        float* avg = o.centered ? slot(ema_slot - 1) : nullptr;
        K.rmsprop(w, g, slot(0), mom, avg, n, lr, o.rho, o.momentum, o.epsilon);
        break;
      }
      case OptimizerKind::Adagrad:
        K.adagrad(w, g, slot(0), n, lr, o.epsilon);
        break;
      case OptimizerKind::Nadam:
        K.nadam(w, g, slot(0), slot(1), n, lr, 1.0f - o.beta_1, 1.0f - o.beta_2, nadam_cm,
                nadam_cg, (float)(1.0 - b2p), o.epsilon);
        break;
      case OptimizerKind::Adamax:
        K.adamax(w, g, slot(0), slot(1), n, lr / (float)(1.0 - b1p), 1.0f - o.beta_1, o.beta_2,
                 o.epsilon);
        break;
      case OptimizerKind::Lion:
        K.lion(w, g, slot(0), n, lr, o.beta_1, o.beta_2);
        break;
    }
    if (o.use_ema) {
      float* avg = slot(ema_slot);
      for (size_t i = 0; i < n; ++i) avg[i] = ema_m * avg[i] + (1.0f - ema_m) * w[i];
      if (ema_overwrite)
        for (size_t i = 0; i < n; ++i) w[i] = avg[i];
    }
  }
}

}  // namespace shenjing
