// State metrics (see metrics_state.hpp), following Keras 3's keras/src/metrics: the confusion
// counts of metrics_utils.update_confusion_matrix_variables, in_top_k, R2Score's and
// FBetaScore's per-class sums, RMSE's Mean. One sequential pass over the batch in row order,
// so the state is the same for any thread count.
#include "shenjing/metrics_state.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

namespace shenjing {
namespace {

constexpr float kNegInf = -1e10f;  // Keras's metrics_utils.NEG_INF

// Keras's _filter_top_k: x * mask + NEG_INF * (1 - mask), the mask holding the row's top_k
// entries (ops.top_k: ties go to the lower index).
void filter_top_k(const float* p, int width, int k, std::vector<int>& order, float* out) {
  order.resize(width);
  std::iota(order.begin(), order.end(), 0);
  // NaN ranks highest, as torch.topk ranks it (and the order stays a strict weak order).
  auto key = [p](int j) { return std::isnan(p[j]) ? INFINITY : p[j]; };
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) > key(b); });
  for (int j = 0; j < width; ++j) out[j] = kNegInf;
  for (int r = 0; r < std::min(k, width); ++r) out[order[r]] = p[order[r]];
}

// The number of thresholds a prediction exceeds, counted in ascending order: it exceeds
// sorted[0 .. count).
struct Bucketer {
  std::vector<float> sorted;
  bool evenly, with_epsilon;
  int count(float p) const {
    const int t = (int)sorted.size();
    if (evenly) {
      // ceil(p * (T - 1)) - 1 in float32 on p clipped to [0, 1], as Keras: bucket b counts in
      // thresholds 0..b; below 0 it counts nowhere, unless the first threshold is -eps (relu).
      if (std::isnan(p)) return 0;
      const float c = std::min(std::max(p, 0.0f), 1.0f) * (float)(t - 1);
      int b = (int)std::ceil(c) - 1;
      if (with_epsilon) b = std::max(b, 0);
      return b + 1;
    }
    // pred > threshold for the first `count` sorted thresholds (NaN exceeds none): a
    // branch-free count for the usual few thresholds, a binary search beyond.
    if (t <= 32) {
      int n = 0;
      for (int j = 0; j < t; ++j) n += sorted[j] < p;
      return n;
    }
    return (int)(std::lower_bound(sorted.begin(), sorted.end(), p) - sorted.begin()) *
           !std::isnan(p);
  }
};

void confusion_update(const StateMetricSpec& s, const float* pred, const float* y,
                      long long rows, int width, const float* sw,
                      double* out) {
  const int t = (int)s.thresholds.size();
  const int labels = s.multi_label ? (s.class_id >= 0 ? 1 : width) : 1;
  Bucketer bk{s.thresholds, s.evenly, s.with_epsilon};
  std::vector<int> perm(t);  // sorted position -> the threshold's index as given
  std::iota(perm.begin(), perm.end(), 0);
  if (!s.evenly) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int a, int b) { return s.thresholds[a] < s.thresholds[b]; });
    for (int j = 0; j < t; ++j) bk.sorted[j] = s.thresholds[perm[j]];
  }
  // Weighted histograms of positives and negatives over the exceeded-threshold counts 0..t:
  // one pass over the predictions, then running sums give every threshold's counts.
  // hist[2 * slot] holds positives, hist[2 * slot + 1] negatives: the label picks the
  // index, so there is no branch on it (random labels would mispredict every other time).
  // Rows alternate over kCopies histograms (added up in a fixed order after): predictions
  // crowd into a few buckets, and one running sum per bucket would be a chain of dependent
  // additions. With several labels the slots spread already, and the copies would only cost.
  const int kCopies = labels > 1 ? 1 : 4;
  const size_t stride = (size_t)(t + 1) * labels * 2;
  std::vector<double> copies(stride * kCopies, 0.0);
  std::vector<float> row(width), logits(width);
  std::vector<int> order;
  const int c0 = s.class_id >= 0 ? s.class_id : 0;
  const int c1 = s.class_id >= 0 ? s.class_id + 1 : width;
  for (long long i = 0; i < rows; ++i) {
    const float* p = pred + (size_t)i * width;
    if (s.from_logits) {
      for (int j = 0; j < width; ++j) logits[j] = 1.0f / (1.0f + std::exp(-p[j]));
      p = logits.data();
    }
    if (s.top_k > 0) {
      filter_top_k(p, width, s.top_k, order, row.data());
      p = row.data();
    }
    const float* yt = y + (size_t)i * width;
    const double w = sw ? (double)sw[i] : 1.0;
    for (int c = c0; c < c1; ++c) {
      const double wc = s.label_weights.empty() ? w : w * (double)s.label_weights[c];
      const size_t slot = (size_t)bk.count(p[c]) * labels + (s.multi_label ? c - c0 : 0);
      copies[(size_t)(i % kCopies) * stride + 2 * slot + (yt[c] == 0.0f)] += wc;  // as bool
    }
  }
  double* hist = copies.data();
  for (int r = 1; r < kCopies; ++r)
    for (size_t j = 0; j < stride; ++j) hist[j] += copies[(size_t)r * stride + j];
  const size_t n = (size_t)t * labels;
  double* tp = out;
  double* fp = out + n;
  double* tn = out + 2 * n;
  double* fn = out + 3 * n;
  std::vector<double> ap(t), an(t);
  for (int l = 0; l < labels; ++l) {
    // Exceeding sorted threshold j means a count above j.
    double above_p = 0.0, above_n = 0.0, below_p = 0.0, below_n = 0.0;
    for (int j = t - 1; j >= 0; --j) {
      above_p += hist[2 * ((size_t)(j + 1) * labels + l)];
      above_n += hist[2 * ((size_t)(j + 1) * labels + l) + 1];
      ap[j] = above_p;
      an[j] = above_n;
    }
    for (int j = 0; j < t; ++j) {
      below_p += hist[2 * ((size_t)j * labels + l)];
      below_n += hist[2 * ((size_t)j * labels + l) + 1];
      const size_t o = (size_t)perm[j] * labels + l;
      tp[o] += ap[j];
      fp[o] += an[j];
      fn[o] += below_p;
      tn[o] += below_n;
    }
  }
}

// Keras's in_top_k: the target's prediction is at least the k-th largest (ties count in).
bool in_top_k(const float* p, int width, int target, int k) {
  if (k >= width) return true;
  const float v = p[target];
  int greater = 0;
  for (int j = 0; j < width; ++j) greater += p[j] > v;
  return greater < k && !std::isnan(v);
}

int argmax(const float* v, int w) {
  int best = 0;
  for (int j = 1; j < w; ++j)
    if (v[j] > v[best]) best = j;
  return best;
}

}  // namespace

std::size_t state_metric_size(const StateMetricSpec& s, int width) {
  switch (s.kind) {
    case StateMetricKind::Confusion: {
      const size_t labels = s.multi_label && s.class_id < 0 ? (size_t)width : 1;
      return 4 * s.thresholds.size() * labels;
    }
    case StateMetricKind::TopKCategorical:
    case StateMetricKind::SparseTopKCategorical:
    case StateMetricKind::SquaredError: return 2;
    case StateMetricKind::R2: return 4 * (size_t)width + 1;
    case StateMetricKind::FScore: return 4 * (size_t)width;
  }
  return 0;
}

void state_metric_check(const StateMetricSpec& s, int width, long long positions,
                        int y_width) {
  const std::string sizes = " (targets of " + std::to_string(y_width) + " value(s) per "
                            "position, predictions of " + std::to_string(width) + ").";
  switch (s.kind) {
    case StateMetricKind::Confusion:
      if (s.thresholds.empty()) throw ValueError("Confusion metric: no thresholds.");
      if (y_width != width)
        throw ValueError("Confusion metrics need targets shaped like the predictions" + sizes);
      if (s.class_id >= width)
        throw ValueError("class_id " + std::to_string(s.class_id) + " is out of range for " +
                         std::to_string(width) + " classes.");
      if (!s.label_weights.empty() && (int)s.label_weights.size() != width)
        throw ValueError("label_weights has " + std::to_string(s.label_weights.size()) +
                         " values for " + std::to_string(width) + " labels.");
      if (s.evenly && s.thresholds.size() < 2)
        throw ValueError("Evenly spaced thresholds need at least 2 values.");
      break;
    case StateMetricKind::TopKCategorical:
      if (y_width != width)
        throw ValueError("top_k_categorical_accuracy needs one-hot targets shaped like the "
                         "predictions" + sizes + " For integer labels use "
                         "SparseTopKCategoricalAccuracy.");
      break;
    case StateMetricKind::SparseTopKCategorical:
      if (y_width != 1)
        throw ValueError("sparse_top_k_categorical_accuracy needs one integer label per "
                         "position" + sizes);
      break;
    case StateMetricKind::SquaredError:
      if (y_width != width && y_width != 1)
        throw ValueError("root_mean_squared_error needs targets shaped like the predictions" +
                         sizes);
      break;
    case StateMetricKind::R2:
    case StateMetricKind::FScore:
      if (positions != 1 || y_width != width)
        throw ValueError(std::string(s.kind == StateMetricKind::R2 ? "R2Score" : "FBetaScore") +
                         " expects 2D inputs with shape (batch_size, output_dim), targets "
                         "shaped like the predictions" + sizes);
      break;
  }
  if (s.kind == StateMetricKind::TopKCategorical ||
      s.kind == StateMetricKind::SparseTopKCategorical)
    if (s.k < 1) throw ValueError("k must be a positive integer.");
}

void state_metric_update(const StateMetricSpec& s, const float* pred, const float* y,
                         long long samples, long long positions, int width, int y_width,
                         const float* sw, double* out) {
  state_metric_check(s, width, positions, y_width);
  const long long rows = samples * positions;
  switch (s.kind) {
    case StateMetricKind::Confusion:
      confusion_update(s, pred, y, rows, width, sw, out);
      return;
    case StateMetricKind::TopKCategorical:
    case StateMetricKind::SparseTopKCategorical:
    case StateMetricKind::SquaredError:
      // Keras's Mean of per-sample values (the mean over the sample's positions).
      // With row weights, Keras's reduce_to_samplewise_values: the sample's mean of value *
      // weight, counted with the mean of its weights.
      for (long long i = 0; i < samples; ++i) {
        double v = 0.0, wsum = 0.0;
        for (long long q = 0; q < positions; ++q) {
          const long long r = i * positions + q;
          const double w = sw ? (double)sw[r] : 1.0;
          wsum += w;
          const float* p = pred + (size_t)r * width;
          const float* t = y + (size_t)r * y_width;
          if (s.kind == StateMetricKind::SquaredError) {
            double e = 0.0;  // the row's mean squared error (a single target broadcasts)
            for (int j = 0; j < width; ++j) {
              const double d = (double)p[j] - t[y_width == width ? j : 0];
              e += d * d;
            }
            v += e / width * w;
          } else {
            int target;
            if (s.kind == StateMetricKind::TopKCategorical) {
              target = argmax(t, width);
            } else {
              if (!(t[0] >= 0.0f && t[0] < (float)width) || (float)(int)t[0] != t[0])
                throw ValueError("sparse_top_k_categorical_accuracy: label " +
                                 std::to_string(t[0]) + " is not an integer class in [0, " +
                                 std::to_string(width) + ").");
              target = (int)t[0];
            }
            v += in_top_k(p, width, target, s.k) * w;
          }
        }
        out[0] += v / (double)positions;
        out[1] += wsum / (double)positions;
      }
      return;
    case StateMetricKind::R2:
      for (long long i = 0; i < samples; ++i) {
        const float* p = pred + (size_t)i * width;
        const float* t = y + (size_t)i * width;
        const double w = sw ? (double)sw[i] : 1.0;
        for (int c = 0; c < width; ++c) {
          const double d = (double)t[c] - p[c];
          out[c] += w * t[c];                    // sum
          out[width + c] += w * t[c] * t[c];     // squared_sum
          out[2 * width + c] += w * d * d;       // total_mse (the residual)
          out[3 * width + c] += w;               // count
        }
      }
      out[4 * width] += (double)samples * width;  // num_samples: ops.size(y_true)
      return;
    case StateMetricKind::FScore:
      for (long long i = 0; i < samples; ++i) {
        const float* p = pred + (size_t)i * width;
        const float* t = y + (size_t)i * width;
        const double w = sw ? (double)sw[i] : 1.0;
        float mx = p[0];
        for (int c = 1; c < width; ++c) mx = std::max(mx, p[c]);
        for (int c = 0; c < width; ++c) {
          const double yp = s.has_threshold ? (p[c] > s.threshold)
                                            : (p[c] >= mx && std::fabs(p[c]) > 1e-9f);
          const double yt = t[c];
          out[c] += w * yp * yt;                    // true_positives
          out[width + c] += w * yp * (1.0 - yt);    // false_positives
          out[2 * width + c] += w * (1.0 - yp) * yt;  // false_negatives
          out[3 * width + c] += w * yt;             // intermediate_weights
        }
      }
      return;
  }
}

}  // namespace shenjing
