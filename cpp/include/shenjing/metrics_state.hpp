// State metrics: metrics whose result is not a mean of per-sample values (Precision, Recall,
// AUC, the confusion counts, R2Score, F1/FBetaScore, the top-k accuracies and RMSE, written as
// Keras 3's metrics compute them). Each batch adds a small float64 state vector (counts per
// threshold, sums per class); the caller adds the vectors up over the batches and computes
// the result from the total (in Python, only when logs are built), so a metric over several
// batches equals the metric over all their samples at once.
#pragma once
#include <cstddef>
#include <vector>

#include "shenjing/errors.hpp"

namespace shenjing {

enum class StateMetricKind : int {
  // tp, fp, tn, fn per threshold (and per label with multi_label): Precision, Recall, AUC,
  // TruePositives, FalsePositives, TrueNegatives, FalseNegatives.
  Confusion = 0,
  TopKCategorical,        // [hits, samples] (per-sample mean over positions), Keras in_top_k
  SparseTopKCategorical,  // the same with one class index per position
  SquaredError,           // [sum of per-sample mean squared errors, samples]: RMSE
  R2,                     // per class: sum y, sum y^2, sum (y - p)^2, weights; then elements
  FScore                  // per class: tp, fp, fn, sum of y (Keras's intermediate weights)
};

struct StateMetricSpec {
  StateMetricKind kind = StateMetricKind::Confusion;
  // Confusion: the thresholds in the order given (compared as float32, pred > threshold).
  std::vector<float> thresholds;
  // Keras's _update_confusion_matrix_variables_optimized: the thresholds are i/(T-1)
  // (with_epsilon: the first and last are -eps and 1+eps); each prediction is clipped to [0, 1]
  // and bucketed once as ceil(p * (T - 1)) - 1.
  bool evenly = false;
  bool with_epsilon = false;
  int top_k = 0;              // > 0: all but the row's top_k predictions become -1e10
  int class_id = -1;          // >= 0: only that column counts
  bool multi_label = false;   // counts per label (column) instead of over all elements
  bool from_logits = false;   // sigmoid first (AUC)
  std::vector<float> label_weights;  // per column (not with multi_label); empty: 1
  int k = 5;                  // top-k accuracies
  bool has_threshold = false; // FScore: pred > threshold, else the row's max (and |p| > 1e-9)
  float threshold = 0.5f;
  bool weighted = false;      // Keras's weighted_metrics: each row counts with its sample weight
};

// Values in one batch's state vector for predictions of `width` per row.
std::size_t state_metric_size(const StateMetricSpec& spec, int width);

// ValueError unless targets of `y_width` values per position suit the metric on an output of
// `width` values per position with `positions` positions per sample (R2Score and FScore need
// 2-D outputs, as Keras's).
void state_metric_check(const StateMetricSpec& spec, int width, long long positions,
                        int y_width);

// Adds one batch's state to out[0 .. state_metric_size). `samples` samples of `positions`
// rows of `width` predictions; y_true holds y_width values per row. row_weight: one weight per
// row (a sample's weight repeated over its positions, or Keras's temporal weights), or null
// for weight 1. One sequential pass in row order: the same state for any thread count.
void state_metric_update(const StateMetricSpec& spec, const float* pred, const float* y_true,
                         long long samples, long long positions, int width, int y_width,
                         const float* row_weight, double* out);

}  // namespace shenjing
