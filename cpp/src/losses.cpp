// Losses (value and gradient in one pass) and metric sums, following Keras 3's definitions:
// per-row losses are means over the last axis (sums over classes for cross-entropy), then the
// mean over every row (all samples and all positions of the output but its last axis). Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "shenjing/losses.hpp"

namespace shenjing {
namespace {

constexpr float kEps = 1e-7f;

inline float clip_prob(float p) { return std::min(std::max(p, kEps), 1.0f - kEps); }

int argmax(const float* v, int w) {
  int best = 0;
  for (int j = 1; j < w; ++j)
    if (v[j] > v[best]) best = j;
  return best;
}

// Row softmax with its log, used for from_logits cross-entropy.
void softmax_row(const float* z, float* p, int w, double* log_sum) {
  float mx = z[0];
  for (int j = 1; j < w; ++j) mx = std::max(mx, z[j]);
  double s = 0.0;
  for (int j = 0; j < w; ++j) s += std::exp((double)(z[j] - mx));
  *log_sum = mx + std::log(s);
  for (int j = 0; j < w; ++j) p[j] = (float)std::exp(z[j] - *log_sum);
}

int label_of(const float* y, long long i, int w) {
  const float v = y[i];
  if (!(v >= 0.0f && v < (float)w) || (float)(int)v != v)
    throw ValueError("sparse_categorical_crossentropy: label " + std::to_string(v) +
                     " at index " + std::to_string(i) + " of the batch's labels is not an "
                     "integer class in [0, " + std::to_string(w) + ").");
  return (int)v;
}

// Cross-entropy over one row of class weights t (one-hot or soft) given probabilities or logits.
// Keras's label smoothing moves `ls` of each row's weight to a uniform share ls / w.
double ce_row(const float* pred, const float* t, int sparse_label, int w, bool logits, bool fused,
              float scale, float* g, float* tmp, float ls) {
  auto target = [&](int j) {
    return sparse_label >= 0 ? (j == sparse_label ? 1.0f : 0.0f)
                             : (ls != 0.0f ? t[j] * (1.0f - ls) + ls / (float)w : t[j]);
  };
  float tsum = 0.0f;
  for (int j = 0; j < w; ++j) tsum += target(j);
  double loss = 0.0;
  if (logits) {
    double lse;
    softmax_row(pred, tmp, w, &lse);
    for (int j = 0; j < w; ++j) loss -= target(j) * ((double)pred[j] - lse);
    if (g)
      for (int j = 0; j < w; ++j) g[j] = (tmp[j] * tsum - target(j)) * scale;
    return loss;
  }
  // Probabilities: Keras renormalises the row, clips, and takes -sum t log p.
  float s = 0.0f;
  for (int j = 0; j < w; ++j) s += pred[j];
  if (!(s > 0.0f)) s = kEps;
  for (int j = 0; j < w; ++j) loss -= target(j) * std::log((double)clip_prob(pred[j] / s));
  if (g) {
    if (fused) {  // d/dz of softmax + CE: p * sum(t) - t
      for (int j = 0; j < w; ++j) g[j] = (pred[j] * tsum - target(j)) * scale;
    } else {
      // A clipped q_j makes its term constant: it adds nothing to either part of the
      // gradient (d/dp_k of -t_j log(p_j / s) is -t_j (delta_jk / p_j - 1 / s)).
      float tlive = 0.0f;
      for (int j = 0; j < w; ++j) {
        const float q = pred[j] / s;
        if (q > kEps && q < 1.0f - kEps) tlive += target(j);
      }
      for (int j = 0; j < w; ++j) {
        const float q = pred[j] / s;
        const float dq = (q > kEps && q < 1.0f - kEps) ? -target(j) / q : 0.0f;
        g[j] = (dq / s + tlive / s) * scale;
      }
    }
  }
  return loss;
}

}  // namespace

// loss_forward_backward with one weight per row: each row runs alone (its loss and gradient
// as a batch of one row), then is scaled by weight / rows, so the result is
// sum_r w_r loss_r / (number of loss values), Keras's "sum_over_batch_size" of weighted losses.
static double weighted_loss(const LossOptions& opt, const float* pred, const float* y,
                            long long rows, int width, bool fused, float* grad,
                            const float* w) {
  const int y_width = opt.kind == LossKind::SparseCategoricalCrossentropy ? 1
                      : opt.kind == LossKind::Value                       ? 0
                                                                          : width;
  const double inv = 1.0 / (double)rows;
  double total = 0.0;
  for (long long r = 0; r < rows; ++r) {
    float* g = grad ? grad + (size_t)r * width : nullptr;
    const double v = loss_forward_backward(opt, pred + (size_t)r * width,
                                           y ? y + (size_t)r * y_width : nullptr, 1, width,
                                           fused, g, nullptr);
    if (g) {
      const float f = (float)((double)w[r] * inv);
      for (int j = 0; j < width; ++j) g[j] *= f;
    }
    total += (double)w[r] * v;
  }
  return total * inv;
}

double loss_forward_backward(const LossOptions& opt, const float* pred, const float* y,
                             long long rows, int width, bool fused, float* grad,
                             const float* row_weight) {
  if (row_weight) return weighted_loss(opt, pred, y, rows, width, fused, grad, row_weight);
  double total = 0.0;
  // The mean over rows of a mean over the last axis is the mean over every element.
  const size_t len = (size_t)rows * width;
  switch (opt.kind) {
    case LossKind::MeanSquaredError: {
      const float s = 2.0f / (float)len;
      for (size_t i = 0; i < len; ++i) {
        const float e = pred[i] - y[i];
        total += (double)e * e;
        if (grad) grad[i] = s * e;
      }
      return total / (double)len;
    }
    case LossKind::MeanAbsoluteError: {
      const float s = 1.0f / (float)len;
      for (size_t i = 0; i < len; ++i) {
        const float e = pred[i] - y[i];
        total += std::fabs(e);
        if (grad) grad[i] = e > 0.0f ? s : (e < 0.0f ? -s : 0.0f);
      }
      return total / (double)len;
    }
    case LossKind::Huber: {
      const float d = opt.delta, s = 1.0f / (float)len;
      for (size_t i = 0; i < len; ++i) {
        const float e = pred[i] - y[i], a = std::fabs(e);
        total += a <= d ? 0.5 * (double)e * e : (double)d * a - 0.5 * (double)d * d;
        if (grad) grad[i] = s * (a <= d ? e : (e > 0.0f ? d : -d));
      }
      return total / (double)len;
    }
    case LossKind::BinaryCrossentropy: {
      const float s = 1.0f / (float)len;
      const float ls = opt.label_smoothing;
      for (size_t i = 0; i < len; ++i) {
        const float t = ls != 0.0f ? y[i] * (1.0f - ls) + 0.5f * ls : y[i];
        if (opt.from_logits) {
          const float z = pred[i];
          total += std::max(z, 0.0f) - z * t + std::log1p(std::exp(-std::fabs(z)));
          if (grad) grad[i] = s * (1.0f / (1.0f + std::exp(-z)) - t);
        } else {
          const float p = clip_prob(pred[i]);
          total -= t * std::log((double)p) + (1.0 - t) * std::log(1.0 - (double)p);
          if (grad) {
            if (fused) grad[i] = s * (pred[i] - t);
            else if (pred[i] <= kEps || pred[i] >= 1.0f - kEps) grad[i] = 0.0f;
            else grad[i] = s * (p - t) / (p * (1.0f - p));
          }
        }
      }
      return total / (double)len;
    }
    case LossKind::CategoricalCrossentropy:
    case LossKind::SparseCategoricalCrossentropy: {
      const bool sparse = opt.kind == LossKind::SparseCategoricalCrossentropy;
      // ignore_class: Keras masks those rows, and its mean is over the rows left (0 if none).
      const bool ignoring = sparse && opt.has_ignore_class;
      const float ignored = (float)opt.ignore_class;
      long long valid = rows;
      if (ignoring)
        for (long long i = 0; i < rows; ++i) valid -= y[i] == ignored;
      const float s = valid > 0 ? (float)(1.0 / (double)valid) : 0.0f;
      static thread_local std::vector<float> tmp;  // reused: no allocation per batch
      if (tmp.size() < (size_t)width) tmp.resize(width);
      for (long long i = 0; i < rows; ++i) {
        float* gi = grad ? grad + (size_t)i * width : nullptr;
        if (ignoring && y[i] == ignored) {
          if (gi) std::fill(gi, gi + width, 0.0f);
          continue;
        }
        const int label = sparse ? label_of(y, i, width) : -1;
        total += ce_row(pred + (size_t)i * width, sparse ? nullptr : y + (size_t)i * width,
                        label, width, opt.from_logits, fused, s, gi, tmp.data(),
                        sparse ? 0.0f : opt.label_smoothing);
      }
      return valid > 0 ? total / (double)valid : 0.0;
    }
    case LossKind::Value: {
      const float s = 1.0f / (float)len;
      for (size_t i = 0; i < len; ++i) {
        total += pred[i];
        if (grad) grad[i] = s;
      }
      return total / (double)len;
    }
    default:
      return extra_loss_forward_backward(opt, pred, y, rows, width, grad);
  }
  return 0.0;
}

const char* loss_name(LossKind kind) {
  switch (kind) {
    case LossKind::MeanSquaredError: return "mean_squared_error";
    case LossKind::MeanAbsoluteError: return "mean_absolute_error";
    case LossKind::Huber: return "huber";
    case LossKind::BinaryCrossentropy: return "binary_crossentropy";
    case LossKind::CategoricalCrossentropy: return "categorical_crossentropy";
    case LossKind::SparseCategoricalCrossentropy: return "sparse_categorical_crossentropy";
    case LossKind::Value: return "loss";
    default: return extra_loss_name(kind);
  }
  return "loss";
}

const char* metric_name(MetricKind kind) {
  switch (kind) {
    case MetricKind::BinaryAccuracy: return "binary_accuracy";
    case MetricKind::CategoricalAccuracy: return "categorical_accuracy";
    case MetricKind::SparseCategoricalAccuracy: return "sparse_categorical_accuracy";
    case MetricKind::MeanSquaredError: return "mean_squared_error";
    case MetricKind::MeanAbsoluteError: return "mean_absolute_error";
    default: return extra_metric_name(kind);
  }
  return "metric";
}

bool metric_accepts(MetricKind kind, int width, int y_width) {
  switch (kind) {
    case MetricKind::CategoricalAccuracy: return y_width == width;  // one-hot rows
    case MetricKind::SparseCategoricalAccuracy: return y_width == 1;  // a class index per row
    // Whole rows: a single target cannot stand for a row (Keras would normalise or sum it).
    case MetricKind::CategoricalHinge:
    case MetricKind::CosineSimilarity:
    case MetricKind::CosineSimilarityLoss: return y_width == width;
    default: return y_width == width || y_width == 1;  // elementwise, 1 broadcasts
  }
}

double metric_sum(MetricKind kind, const float* pred, const float* y, long long rows, int width,
                  int y_width, const float* row_weight) {
  if (!metric_accepts(kind, width, y_width))
    throw ValueError(std::string("Metric ") + metric_name(kind) + " cannot compare targets of " +
                     std::to_string(y_width) + " value(s) per position with predictions of " +
                     std::to_string(width) + ".");
  if ((int)kind >= (int)MetricKind::KLDivergence)
    return extra_metric_sum(kind, pred, y, rows, width, y_width);
  // y_step 0 repeats a row's single target across the row (Keras broadcasts (.., 1) targets).
  const int y_step = y_width == width ? 1 : 0;
  double total = 0.0;
  for (long long i = 0; i < rows; ++i) {
    const float* p = pred + (size_t)i * width;
    const float* t = y + (size_t)i * y_width;
    double v = 0.0;
    switch (kind) {
      case MetricKind::BinaryAccuracy: {
        int hits = 0;
        for (int j = 0; j < width; ++j) hits += (p[j] > 0.5f ? 1.0f : 0.0f) == t[j * y_step];
        v = (double)hits / width;
        break;
      }
      case MetricKind::CategoricalAccuracy:
        v = argmax(p, width) == argmax(t, width);
        break;
      case MetricKind::SparseCategoricalAccuracy:
        v = (float)argmax(p, width) == t[0];
        break;
      case MetricKind::MeanSquaredError:
      case MetricKind::MeanAbsoluteError: {
        double s = 0.0;
        for (int j = 0; j < width; ++j) {
          const double e = (double)p[j] - t[j * y_step];
          s += kind == MetricKind::MeanSquaredError ? e * e : std::fabs(e);
        }
        v = s / width;
        break;
      }
      default: break;  // extra_metric_sum's kinds, returned above
    }
    // Keras's weighted metrics: each row's value times its weight (the caller divides by
    // the weights' sum).
    total += row_weight ? v * (double)row_weight[i] : v;
  }
  return total;
}

}  // namespace shenjing
