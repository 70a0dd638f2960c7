// Cropping1D/2D, channels last: x (n, H, W, C) -> y (n, H - top - bottom, W - left - right, C);
// backward places dy back into a zeroed dx. Parallel over output / input rows. No cropping at
// all (Cropping2D's default) passes the buffer through.
#include <climits>
#include <cstring>

#include "layers/window.hpp"

namespace shenjing {
namespace {

class Cropping final : public Layer {
 public:
  explicit Cropping(const CroppingOptions& opt) : opt_(opt) {
    if (opt.rank != 1 && opt.rank != 2)
      throw ValueError("Cropping: rank must be 1 or 2, received " + std::to_string(opt.rank));
    if (opt_.rank == 1) opt_.top = opt_.bottom = 0;
    if (opt_.top < 0 || opt_.bottom < 0 || opt_.left < 0 || opt_.right < 0)
      throw ValueError(std::string(type()) + ": cropping must be non-negative integers.");
  }
  const char* type() const override { return opt_.rank == 2 ? "Cropping2D" : "Cropping1D"; }
  bool passthrough(const RunContext&) const override {
    return opt_.top == 0 && opt_.bottom == 0 && opt_.left == 0 && opt_.right == 0;
  }

  void build(const Shape& input) override {
    window::check_input_rank(name_, type(), input, opt_.rank);
    const int H = opt_.rank == 2 ? input[0] : 1, W = input[opt_.rank - 1];
    // 64 bits: each cropping may be up to INT_MAX (configs come from files too).
    const long long oh = (long long)H - opt_.top - opt_.bottom;
    const long long ow = (long long)W - opt_.left - opt_.right;
    if (oh <= 0 || ow <= 0)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): cropping " +
                       (opt_.rank == 2 ? "(" + window::pair_str(opt_.top, opt_.bottom) + ", " +
                                             window::pair_str(opt_.left, opt_.right) + ")"
                                       : window::pair_str(opt_.left, opt_.right)) +
                       " must be smaller than the input along each cropped axis, received "
                       "input shape " + shape_str(input) + ".");
    H_ = H;
    W_ = W;
    C_ = input.back();
    OH_ = (int)oh;
    OW_ = (int)ow;
    in_ = input;
    out_ = opt_.rank == 2 ? Shape{OH_, OW_, C_} : Shape{OW_, C_};
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    if (passthrough(ctx)) {
      if (x != y) std::memcpy(y, x, (size_t)n * H_ * W_ * C_ * sizeof(float));
      return;
    }
    const size_t orow = (size_t)OW_ * C_, irow = (size_t)W_ * C_;
    const long rows = (long)n * OH_;
#pragma omp parallel for schedule(static) if (rows * (long)orow > 65536)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / OH_), oh = (int)(r % OH_);
      std::memcpy(y + r * orow,
                  x + ((size_t)b * H_ + oh + opt_.top) * irow + (size_t)opt_.left * C_,
                  orow * sizeof(float));
    }
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    if (passthrough(ctx)) {
      if (dx != dy) std::memcpy(dx, dy, (size_t)n * H_ * W_ * C_ * sizeof(float));
      return;
    }
    const size_t orow = (size_t)OW_ * C_, irow = (size_t)W_ * C_;
    const long rows = (long)n * H_;
#pragma omp parallel for schedule(static) if (rows * (long)irow > 65536)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / H_), ih = (int)(r % H_), oh = ih - opt_.top;
      float* dr = dx + r * irow;
      if (oh < 0 || oh >= OH_) {
        std::memset(dr, 0, irow * sizeof(float));
        continue;
      }
      const size_t left = (size_t)opt_.left * C_;
      std::memset(dr, 0, left * sizeof(float));
      std::memcpy(dr + left, dy + ((size_t)b * OH_ + oh) * orow, orow * sizeof(float));
      std::memset(dr + left + orow, 0, (irow - left - orow) * sizeof(float));
    }
  }

 private:
  CroppingOptions opt_;
  int H_ = 0, W_ = 0, C_ = 0, OH_ = 0, OW_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_cropping(const CroppingOptions& opt) {
  return std::make_unique<Cropping>(opt);
}

}  // namespace shenjing
