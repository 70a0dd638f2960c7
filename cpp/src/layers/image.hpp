// Keras's image preprocessing layers (channels last, per-sample input (H, W, C)):
//   CenterCrop, Resizing                      deterministic, at training and inference
//   RandomFlip, RandomRotation, RandomZoom,   training only (inference passes the buffer
//   RandomTranslation, RandomContrast         through, as Keras's training=False)
// Their configs are read in io/layer_config_image.cpp. The random layers draw one transform
// per sample from a counter-based stream (below), so a batch's transforms depend on the seed
// and the batch number only, never on the thread count.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "layers/dropout_mask.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {

// Keras's fill modes of affine_transform: reflect (d c b a | a b c d | d c b a), wrap
// (a b c d | a b c d), constant (fill_value outside), nearest (a a | a b c d | d d).
enum class FillMode : int { Reflect = 0, Wrap, Constant, Nearest };
enum class Interp : int { Bilinear = 0, Nearest };

// Resizing(height, width, interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio,
// fill_value) and CenterCrop(height, width) (center_crop: a plain centred crop when the input
// is at least the target size along both axes, else Keras's smart_resize: the largest centred
// window of the target's aspect ratio, resized bilinearly).
struct ResizeOptions {
  int height = 0, width = 0;
  Interp interp = Interp::Bilinear;
  bool crop_to_aspect = false, pad_to_aspect = false;
  float fill_value = 0.0f;
  bool center_crop = false;
};
std::unique_ptr<Layer> make_resizing(const ResizeOptions& opt);

// RandomRotation (factor: fraction of a full turn), RandomZoom (height/width factor: the zoom
// is 1 + factor; width follows height when `width_follows`), RandomTranslation (fractions of
// the height and width). lo/hi: [0] the height (or rotation) range, [1] the width range.
enum class AffineKind : int { Rotation = 0, Zoom, Translation };
struct AffineOptions {
  AffineKind kind = AffineKind::Rotation;
  double lo[2] = {0, 0}, hi[2] = {0, 0};  // as the config has them (Keras adds in double)
  bool width_follows = false;  // RandomZoom with width_factor=None
  FillMode fill = FillMode::Reflect;
  Interp interp = Interp::Bilinear;
  float fill_value = 0.0f;
  uint64_t seed = 0;
};
std::unique_ptr<Layer> make_random_affine(const AffineOptions& opt);

// RandomFlip: mode bit 1 horizontal (the width axis), bit 2 vertical; one draw per sample
// flips every axis of the mode or none (Keras's single `flips` mask).
std::unique_ptr<Layer> make_random_flip(int mode, uint64_t seed);

// RandomContrast: y = clip((x - mean) * f + mean, vmin, vmax), mean per sample and channel over
// the image, f uniform in [1 - lo, 1 + hi] per sample.
std::unique_ptr<Layer> make_random_contrast(double lo, double hi, float vmin, float vmax,
                                            uint64_t seed);

namespace image {

// Per-sample random numbers: each batch takes one key from the layer's splitmix64 state (saved
// with the model, Layer::random_state), and value k of sample s is output 4 s + k + 1 of a
// splitmix64 stream started at that key. Counter-based: any sample's values are computed
// without the others', in any order.
inline uint64_t batch_key(uint64_t& state) { return splitmix64(state); }
inline float uniform(uint64_t key, long long sample, int k, float lo, float hi) {
  uint64_t c = key + (uint64_t)(4 * sample + k) * 0x9E3779B97F4A7C15ull;
  const uint64_t r = splitmix64(c);
  const float u = (float)(r >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
  return lo + (hi - lo) * u;  // Keras's uniform(minval, maxval)
}

// Checks a per-sample image shape (H, W, C); throws naming the layer otherwise.
inline void check_image(const std::string& name, const char* type, const Shape& input) {
  if (input.size() == 3) return;
  throw ValueError("Layer '" + name + "' (" + type + ") expects images of shape (batch, height, "
                   "width, channels), received input with shape " + shape_str(input) + ".");
}

// Base of the random layers: identity (passed through) at inference, the random stream's
// state saved with the model, per-sample image geometry.
class RandomImageLayer : public Layer {
 public:
  explicit RandomImageLayer(uint64_t seed) : state_(seed) {}
  bool passthrough(const RunContext& ctx) const override { return !ctx.training; }
  uint64_t* random_state() override { return &state_; }
  void build(const Shape& input) override {
    check_image(name_, type(), input);
    H_ = input[0];
    W_ = input[1];
    C_ = input[2];
    in_ = out_ = input;
  }

 protected:
  uint64_t state_;
  int H_ = 0, W_ = 0, C_ = 0;
};

}  // namespace image
}  // namespace shenjing
