// Losses and metrics, reduced as Keras reduces them ("sum_over_batch_size").
#pragma once
#include <string>

#include "shenjing/errors.hpp"

namespace shenjing {

enum class LossKind : int {
  MeanSquaredError = 0, MeanAbsoluteError, Huber, BinaryCrossentropy, CategoricalCrossentropy,
  SparseCategoricalCrossentropy
};

struct LossOptions {
  LossKind kind = LossKind::MeanSquaredError;
  bool from_logits = false;
  float delta = 1.0f;  // Huber
};

// Per-batch loss over n samples of `width` predictions each. y_true holds `width` targets per
// sample, or one class index per sample for the sparse loss. Returns the mean loss and, when
// grad is not null, writes dL/d(pred) — or dL/d(logits) when `fused` (the model asks for that
// when the last activation is softmax/sigmoid and the loss is the matching cross-entropy).
double loss_forward_backward(const LossOptions& opt, const float* pred, const float* y_true,
                             int n, int width, bool fused, float* grad);

enum class MetricKind : int {
  BinaryAccuracy = 0, CategoricalAccuracy, SparseCategoricalAccuracy, MeanSquaredError,
  MeanAbsoluteError
};

// Sum over the n samples of the per-sample metric (a mean over the last axis, as Keras).
double metric_sum(MetricKind kind, const float* pred, const float* y_true, int n, int width);

}  // namespace shenjing
