// More Keras layers: the activation layers with arguments, Rescaling, ActivityRegularization,
// the training-only noise layers, Normalization and the depthwise / separable convolutions.
// Apart from layers.hpp so that each family stays in its own files.
#pragma once
#include <memory>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {

// ReLU(max_value, negative_slope, threshold), LeakyReLU(negative_slope), ELU(alpha), as
// Keras's activations compute them.
enum class PointwiseKind : int { ReLU = 0, LeakyReLU, ELU };
struct PointwiseOptions {
  PointwiseKind kind = PointwiseKind::ReLU;
  bool has_max = false;
  float max_value = 0.0f, slope = 0.0f, threshold = 0.0f, alpha = 1.0f;
};
std::unique_ptr<Layer> make_pointwise(const PointwiseOptions& opt);

// PReLU: param alpha shaped as the input with the shared axes (1-based, after the batch axis)
// set to 1; l1/l2 its regularizer.
struct PReLUOptions {
  std::vector<int> shared_axes;
  float l1 = 0.0f, l2 = 0.0f;
};
std::unique_ptr<Layer> make_prelu(const PReLUOptions& opt);

// Softmax over `axes` (Keras's, counting the batch axis; adjacent axes only).
std::unique_ptr<Layer> make_softmax(const std::vector<int>& axes);

// Rescaling: y = x * scale + offset; each a flat array with its shape ({} for a scalar),
// broadcast against the input at build.
struct RescalingOptions {
  std::vector<float> scale{1.0f}, offset{0.0f};
  Shape scale_shape{}, offset_shape{};
};
std::unique_ptr<Layer> make_rescaling(const RescalingOptions& opt);

// ActivityRegularization: identity; adds (l1 * sum|y| + l2 * sum y^2) / batch to the loss
// (Saved::loss, summed by the model).
std::unique_ptr<Layer> make_activity_regularization(float l1, float l2);

// The training-only noise layers (seeded streams, as Dropout's; inference passes through):
// GaussianNoise adds N(0, stddev^2); GaussianDropout multiplies by N(1, rate / (1 - rate));
// SpatialDropout1D/2D/3D drop whole channels (one mask value per sample and channel).
enum class NoiseKind : int { GaussianNoise = 0, GaussianDropout, SpatialDropout };
struct NoiseOptions {
  NoiseKind kind = NoiseKind::GaussianNoise;
  float amount = 0.0f;  // stddev or rate
  int spatial_rank = 0;  // SpatialDropoutND: N (the input has N + 1 axes)
  bool channels_first = false;
  unsigned long long seed = 0;
};
std::unique_ptr<Layer> make_noise(const NoiseOptions& opt, const char* type);

// Normalization: y = (x - mean) / max(sqrt(variance), 1e-7) (or its inverse), mean and
// variance per position of the kept axes (Keras's axis, counting the batch axis). Without
// given values the layer has non-trainable params mean, variance and count (Keras's names),
// set by adapt(); given values (`mean`, `variance` with `stats_shape`) are constants.
struct NormalizationOptions {
  std::vector<int> axes{-1};
  bool invert = false;
  bool given = false;
  std::vector<float> mean, variance;
  Shape stats_shape{};
};
std::unique_ptr<Layer> make_normalization(const NormalizationOptions& opt);

// DepthwiseConv2D / DepthwiseConv1D and SeparableConv2D / SeparableConv1D, channels last.
// kernel (KH, KW, in, depth_multiplier) ((K, in, mult) for 1-D; named depthwise_kernel in the
// separable layers, which add pointwise_kernel (1, 1, in * mult, filters) ((1, in * mult,
// filters)); bias (out).
struct DepthwiseOptions {
  int rank = 2;
  bool separable = false;
  int filters = 0;  // separable only
  int multiplier = 1;
  int kernel[2] = {1, 1};
  int strides[2] = {1, 1};
  int dilation[2] = {1, 1};
  Padding padding = Padding::Valid;
  Activation activation = Activation::Linear;
  float activation_alpha = 0.0f;
  bool use_bias = true;
  float depthwise_l1 = 0.0f, depthwise_l2 = 0.0f, pointwise_l1 = 0.0f, pointwise_l2 = 0.0f,
        bias_l1 = 0.0f, bias_l2 = 0.0f;
};
std::unique_ptr<Layer> make_depthwise(const DepthwiseOptions& opt);

}  // namespace shenjing
