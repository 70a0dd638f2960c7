// Cropping1D/2D, channels last: x (n, H, W, C) -> y (n, H - top - bottom, W - left - right, C);
// backward places dy back into a zeroed dx. Parallel over output / input rows. No cropping at
// all (Cropping2D's default) passes the buffer through.
#include <cstring>

#include "layers/spatial.hpp"

namespace shenjing {
namespace {

class Cropping final : public SpatialLayer {
 public:
  explicit Cropping(const CroppingOptions& opt) : opt_(opt) {
    spatial::check_borders("Cropping", "cropping", opt_);
  }
  const char* type() const override { return opt_.rank == 2 ? "Cropping2D" : "Cropping1D"; }
  bool passthrough(const RunContext&) const override {
    return opt_.top == 0 && opt_.bottom == 0 && opt_.left == 0 && opt_.right == 0;
  }

  void build(const Shape& input) override {
    const HW in = input_hw(input, opt_.rank);
    // 64 bits: each cropping may be up to INT_MAX (configs come from files too).
    const long long oh = (long long)in.H - opt_.top - opt_.bottom;
    const long long ow = (long long)in.W - opt_.left - opt_.right;
    if (oh <= 0 || ow <= 0)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): cropping " +
                       spatial::borders_str(opt_) +
                       " must be smaller than the input along each cropped axis, received "
                       "input shape " + shape_str(input) + ".");
    set_geometry(input, opt_.rank, in, oh, ow);
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    if (passthrough(ctx)) {
      if (x != y) std::memcpy(y, x, (size_t)n * H_ * W_ * C_ * sizeof(float));
      return;
    }
    spatial::crop(window(), x, y, n);
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    if (passthrough(ctx)) {
      if (dx != dy) std::memcpy(dx, dy, (size_t)n * H_ * W_ * C_ * sizeof(float));
      return;
    }
    spatial::pad(window(), dy, dx, n);
  }

 private:
  // The output is the window of the input.
  spatial::Window window() const { return {H_, W_, OH_, OW_, C_, opt_.top, opt_.left}; }

  CroppingOptions opt_;
};

}  // namespace

std::unique_ptr<Layer> make_cropping(const CroppingOptions& opt) {
  return std::make_unique<Cropping>(opt);
}

}  // namespace shenjing
