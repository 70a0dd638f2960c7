// Keras 3's other per-row losses and their mean metrics (keras/src/losses/losses.py,
// metrics/{regression,probabilistic,hinge}_metrics.py): KL divergence, Poisson, the hinges,
// log-cosh, cosine similarity, MAPE and MSLE. Each row is one position of the output's last
// axis; its value is Keras's (a mean over the row, or a sum for KL, categorical hinge and
// cosine similarity) and the loss is the mean over rows. Keras's epsilons are kept exactly
// (backend.epsilon() = 1e-7), and where Keras takes a maximum the gradient follows
// PyTorch's (the Keras backend the tests compare with): a tie splits it in halves.
#include <algorithm>
#include <cmath>

#include "shenjing/losses.hpp"

namespace shenjing {
namespace {

constexpr float kEps = 1e-7f;
constexpr double kLog2 = 0.69314718055994530942;

enum class Row { KL, Poisson, Hinge, SquaredHinge, CategoricalHinge, LogCosh, Cosine, Mape, Msle };

// Keras's hinge losses read {0, 1} targets as {-1, 1}, deciding once for the whole batch
// tensor (convert_binary_labels_to_hinge: all values 0 or 1).
bool binary_labels(const float* y, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (y[i] != 0.0f && y[i] != 1.0f) return false;
  return true;
}

// d max(a, 0) / da as torch computes it: 1 above, 1/2 at the tie, 0 below.
inline double relu_slope(double a) { return a > 0.0 ? 1.0 : (a == 0.0 ? 0.5 : 0.0); }

// log(cosh(x)) in Keras's stable form x + softplus(-2x) - log 2.
inline double log_cosh(double x) {
  const double z = -2.0 * x;
  return x + std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))) - kLog2;
}

// Keras's normalize: x * min(rsqrt(sum x^2), 1 / epsilon). Returns the factor; *clamped says
// the 1/epsilon bound was taken (the factor is then a constant).
double inv_norm(const float* x, int w, int step, bool* clamped) {
  double s = 0.0;
  for (int j = 0; j < w; ++j) s += (double)x[j * step] * x[j * step];
  const double r = s > 0.0 ? 1.0 / std::sqrt(s) : HUGE_VAL;
  *clamped = !(r < 1.0 / kEps);
  return *clamped ? 1.0 / kEps : r;
}

// One row: p = predictions (w values), t = targets (t_step 1: w values; 0: one value standing
// for the row). Returns the row's value; with g, writes scale * d(value)/dp.
double row_value(Row kind, const float* p, const float* t, int w, int t_step, bool hinge01,
                 float scale, float* g) {
  double v = 0.0;
  const double per = 1.0 / w;  // the mean over the row
  switch (kind) {
    case Row::KL:  // sum t log(t / p), both clipped to [eps, 1]; clip passes ties (torch)
      for (int j = 0; j < w; ++j) {
        const float tj = std::min(std::max(t[j * t_step], kEps), 1.0f);
        const float pj = std::min(std::max(p[j], kEps), 1.0f);
        v += (double)tj * std::log((double)tj / pj);
        if (g) g[j] = (p[j] >= kEps && p[j] <= 1.0f) ? (float)(-(double)tj / pj) * scale : 0.0f;
      }
      return v;
    case Row::Poisson:  // mean p - t log(p + eps)
      for (int j = 0; j < w; ++j) {
        const double pj = p[j], tj = t[j * t_step];
        v += pj - tj * std::log(pj + kEps);
        if (g) g[j] = (float)((1.0 - tj / (pj + kEps)) * per) * scale;
      }
      return v * per;
    case Row::Hinge:
    case Row::SquaredHinge:  // mean max(1 - t p, 0) (squared)
      for (int j = 0; j < w; ++j) {
        const double tj = hinge01 ? 2.0 * t[j * t_step] - 1.0 : t[j * t_step];
        const double a = 1.0 - tj * p[j], m = std::max(a, 0.0);
        if (kind == Row::Hinge) {
          v += m;
          if (g) g[j] = (float)(-tj * relu_slope(a) * per) * scale;
        } else {
          v += m * m;
          if (g) g[j] = (float)(-2.0 * m * tj * per) * scale;
        }
      }
      return v * per;
    case Row::CategoricalHinge: {  // max(max((1 - t) p) - sum t p + 1, 0)
      double pos = 0.0, neg = -HUGE_VAL;
      for (int j = 0; j < w; ++j) {
        const double tj = t[j * t_step];
        pos += tj * p[j];
        neg = std::max(neg, (1.0 - tj) * p[j]);
      }
      const double a = neg - pos + 1.0;
      if (g) {
        // The max's gradient is shared evenly among the positions that reach it (torch.amax).
        int ties = 0;
        for (int j = 0; j < w; ++j) ties += (1.0 - t[j * t_step]) * p[j] == neg;
        const double outer = relu_slope(a);
        for (int j = 0; j < w; ++j) {
          const double tj = t[j * t_step];
          const double dneg = (1.0 - tj) * p[j] == neg ? (1.0 - tj) / ties : 0.0;
          g[j] = (float)(outer * (dneg - tj)) * scale;
        }
      }
      return std::max(a, 0.0);
    }
    case Row::LogCosh:  // mean log cosh(p - t); d/dp = tanh(p - t)
      for (int j = 0; j < w; ++j) {
        const double x = (double)p[j] - t[j * t_step];
        v += log_cosh(x);
        if (g) g[j] = (float)(std::tanh(x) * per) * scale;
      }
      return v * per;
    case Row::Cosine: {  // -sum normalize(t) normalize(p)
      bool tc, pc;
      const double rt = inv_norm(t, w, t_step, &tc), rp = inv_norm(p, w, 1, &pc);
      double dot = 0.0;  // normalize(t) . normalize(p)
      for (int j = 0; j < w; ++j) dot += t[j * t_step] * rt * p[j] * rp;
      if (g)
        for (int j = 0; j < w; ++j) {
          const double tn = t[j * t_step] * rt;
          // Unclamped: d/dp of p / |p| projects out p's own direction.
          const double d = pc ? tn * rp : rp * (tn - dot * p[j] * rp);
          g[j] = (float)(-d) * scale;
        }
      return -dot;
    }
    case Row::Mape:  // 100 mean |t - p| / max(|t|, eps)
      for (int j = 0; j < w; ++j) {
        const double tj = t[j * t_step], e = (double)p[j] - tj;
        const double den = std::max(std::fabs(tj), (double)kEps);
        v += std::fabs(e) / den;
        if (g) g[j] = (float)(100.0 * (e > 0.0 ? 1.0 : (e < 0.0 ? -1.0 : 0.0)) / den * per) * scale;
      }
      return 100.0 * v * per;
    case Row::Msle:  // mean (log(max(p, eps) + 1) - log(max(t, eps) + 1))^2
      for (int j = 0; j < w; ++j) {
        const double pj = std::max(p[j], kEps), tj = std::max(t[j * t_step], kEps);
        const double d = std::log1p(pj) - std::log1p(tj);
        v += d * d;
        if (g) g[j] = (float)(2.0 * d / (pj + 1.0) * relu_slope((double)p[j] - kEps) * per) * scale;
      }
      return v * per;
  }
  return 0.0;
}

bool row_of_loss(LossKind k, Row* r) {
  switch (k) {
    case LossKind::KLDivergence: *r = Row::KL; return true;
    case LossKind::Poisson: *r = Row::Poisson; return true;
    case LossKind::Hinge: *r = Row::Hinge; return true;
    case LossKind::SquaredHinge: *r = Row::SquaredHinge; return true;
    case LossKind::CategoricalHinge: *r = Row::CategoricalHinge; return true;
    case LossKind::LogCosh: *r = Row::LogCosh; return true;
    case LossKind::CosineSimilarity: *r = Row::Cosine; return true;
    case LossKind::MeanAbsolutePercentageError: *r = Row::Mape; return true;
    case LossKind::MeanSquaredLogarithmicError: *r = Row::Msle; return true;
    default: return false;
  }
}

bool row_of_metric(MetricKind k, Row* r) {
  switch (k) {
    case MetricKind::KLDivergence: *r = Row::KL; return true;
    case MetricKind::Poisson: *r = Row::Poisson; return true;
    case MetricKind::Hinge: *r = Row::Hinge; return true;
    case MetricKind::SquaredHinge: *r = Row::SquaredHinge; return true;
    case MetricKind::CategoricalHinge: *r = Row::CategoricalHinge; return true;
    case MetricKind::LogCoshError: *r = Row::LogCosh; return true;
    case MetricKind::CosineSimilarity:
    case MetricKind::CosineSimilarityLoss: *r = Row::Cosine; return true;
    case MetricKind::MeanAbsolutePercentageError: *r = Row::Mape; return true;
    case MetricKind::MeanSquaredLogarithmicError: *r = Row::Msle; return true;
    default: return false;
  }
}

}  // namespace

double extra_loss_forward_backward(const LossOptions& opt, const float* pred, const float* y,
                                   long long rows, int width, float* grad) {
  Row kind;
  if (!row_of_loss(opt.kind, &kind))
    throw ValueError("Unknown loss kind " + std::to_string((int)opt.kind) + ".");
  if (rows <= 0) return 0.0;
  const bool hinge01 = (kind == Row::Hinge || kind == Row::SquaredHinge) &&
                       binary_labels(y, (size_t)rows * width);
  const float scale = (float)(1.0 / (double)rows);
  double total = 0.0;
  for (long long i = 0; i < rows; ++i) {
    const size_t at = (size_t)i * width;
    total += row_value(kind, pred + at, y + at, width, 1, hinge01, scale,
                       grad ? grad + at : nullptr);
  }
  return total / (double)rows;
}

double extra_metric_sum(MetricKind kind, const float* pred, const float* y, long long rows,
                        int width, int y_width) {
  Row r;
  if (!row_of_metric(kind, &r))
    throw ValueError("Unknown metric kind " + std::to_string((int)kind) + ".");
  const int step = y_width == width ? 1 : 0;  // 0: one target broadcast over the row
  const bool hinge01 = (r == Row::Hinge || r == Row::SquaredHinge) &&
                       binary_labels(y, (size_t)rows * y_width);
  const double sign = kind == MetricKind::CosineSimilarity ? -1.0 : 1.0;  // the metric's +cos
  double total = 0.0;
  for (long long i = 0; i < rows; ++i)
    total += row_value(r, pred + (size_t)i * width, y + (size_t)i * y_width, width, step,
                       hinge01, 0.0f, nullptr);
  return sign * total;
}

const char* extra_loss_name(LossKind kind) {
  switch (kind) {
    case LossKind::KLDivergence: return "kl_divergence";
    case LossKind::Poisson: return "poisson";
    case LossKind::Hinge: return "hinge";
    case LossKind::SquaredHinge: return "squared_hinge";
    case LossKind::CategoricalHinge: return "categorical_hinge";
    case LossKind::LogCosh: return "log_cosh";
    case LossKind::CosineSimilarity: return "cosine_similarity";
    case LossKind::MeanAbsolutePercentageError: return "mean_absolute_percentage_error";
    case LossKind::MeanSquaredLogarithmicError: return "mean_squared_logarithmic_error";
    default: return "loss";
  }
}

const char* extra_metric_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::KLDivergence: return "kl_divergence";
    case MetricKind::Poisson: return "poisson";
    case MetricKind::Hinge: return "hinge";
    case MetricKind::SquaredHinge: return "squared_hinge";
    case MetricKind::CategoricalHinge: return "categorical_hinge";
    case MetricKind::LogCoshError: return "logcosh";
    case MetricKind::CosineSimilarity:
    case MetricKind::CosineSimilarityLoss: return "cosine_similarity";
    case MetricKind::MeanAbsolutePercentageError: return "mean_absolute_percentage_error";
    case MetricKind::MeanSquaredLogarithmicError: return "mean_squared_logarithmic_error";
    default: return "metric";
  }
}

}  // namespace shenjing
