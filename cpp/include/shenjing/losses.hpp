// Losses and metrics, reduced as Keras reduces them ("sum_over_batch_size").
#pragma once
#include <string>

#include "shenjing/errors.hpp"

namespace shenjing {

enum class LossKind : int {
  MeanSquaredError = 0, MeanAbsoluteError, Huber, BinaryCrossentropy, CategoricalCrossentropy,
  SparseCategoricalCrossentropy,
  // The output is itself the loss (a traced custom loss or an add_loss term): the loss is the
  // mean of its values, and it takes no targets (width 0).
  Value,
  // Keras's other per-row losses (losses_extra.cpp), each computed over the last axis.
  KLDivergence = 7, Poisson, Hinge, SquaredHinge, CategoricalHinge, LogCosh, CosineSimilarity,
  MeanAbsolutePercentageError, MeanSquaredLogarithmicError
};
constexpr int kLossKindCount = static_cast<int>(LossKind::MeanSquaredLogarithmicError) + 1;

struct LossOptions {
  LossKind kind = LossKind::MeanSquaredError;
  bool from_logits = false;
  float delta = 1.0f;  // Huber
  // Cross-entropies: Keras's label_smoothing (binary: t (1 - s) + s / 2; categorical:
  // t (1 - s) + s / C), and the sparse one's ignore_class (those rows add nothing and the mean
  // is over the other rows, as Keras's mask does).
  float label_smoothing = 0.0f;
  bool has_ignore_class = false;
  int ignore_class = 0;
};

// Losses and metrics work on rows: one row is one position of the output's last axis (a
// sample of a (None, C) output, or a time step of a (None, T, C) one), so `rows` = samples x
// positions and `width` = C, as Keras computes every loss and metric over the last axis and
// averages over all other positions.
//
// Per-batch loss over `rows` rows of `width` predictions each. y_true holds `width` targets per
// row, or one class index per row for the sparse loss. Returns the mean over rows of the
// per-row loss and, when grad is not null, writes dL/d(pred) of that mean — or dL/d(logits)
// when `fused` (the model asks for that when the last activation is softmax/sigmoid and the
// loss is the matching cross-entropy).
// row_weight (null: every weight 1) holds one weight per row (Keras's sample_weight, per sample
// or per time step): each row's loss and gradient is multiplied by it, and the result is still
// divided by the number of loss values (Keras's "sum_over_batch_size"), not by the weights' sum.
double loss_forward_backward(const LossOptions& opt, const float* pred, const float* y_true,
                             long long rows, int width, bool fused, float* grad,
                             const float* row_weight = nullptr);

enum class MetricKind : int {
  BinaryAccuracy = 0, CategoricalAccuracy, SparseCategoricalAccuracy, MeanSquaredError,
  MeanAbsoluteError,
  // Keras's mean metrics of the losses above (losses_extra.cpp). CosineSimilarity is the
  // metric's +cos; CosineSimilarityLoss the loss function's -cos
  // (metrics=[losses.cosine_similarity]).
  KLDivergence = 5, Poisson, Hinge, SquaredHinge, CategoricalHinge, LogCoshError,
  CosineSimilarity, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
  CosineSimilarityLoss
};

// Sum over the rows of the per-row metric (a mean over the last axis, as Keras). y_true holds
// y_width values per row: `width`, or 1, which the elementwise metrics (binary accuracy, mse,
// mae) broadcast over the row as Keras does and the sparse accuracy reads as a class index.
// Throws ValueError when y_width does not suit the metric (metric_accepts says which do).
// row_weight (null: every weight 1) multiplies each row's value (Keras's weighted_metrics;
// the caller divides by the weights' sum).
double metric_sum(MetricKind kind, const float* pred, const float* y_true, long long rows,
                  int width, int y_width, const float* row_weight = nullptr);
bool metric_accepts(MetricKind kind, int width, int y_width);
const char* metric_name(MetricKind kind);
const char* loss_name(LossKind kind);

// The kernels of the kinds above in losses_extra.cpp (the dispatch in losses.cpp calls them).
double extra_loss_forward_backward(const LossOptions& opt, const float* pred, const float* y,
                                   long long rows, int width, float* grad);
double extra_metric_sum(MetricKind kind, const float* pred, const float* y, long long rows,
                        int width, int y_width);
const char* extra_loss_name(LossKind kind);
const char* extra_metric_name(MetricKind kind);

}  // namespace shenjing
