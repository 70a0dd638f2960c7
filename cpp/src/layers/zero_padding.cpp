// ZeroPadding1D/2D, channels last: x (n, H, W, C) -> y (n, top+H+bottom, left+W+right, C) with
// zeros around; backward crops dy back to dx. Parallel over output rows / input rows.
#include <algorithm>
#include <climits>
#include <cstring>

#include "layers/window.hpp"

namespace shenjing {
namespace {

class ZeroPadding final : public Layer {
 public:
  explicit ZeroPadding(const ZeroPaddingOptions& opt) : opt_(opt) {
    if (opt.rank != 1 && opt.rank != 2)
      throw ValueError("ZeroPadding: rank must be 1 or 2, received " + std::to_string(opt.rank));
    if (opt_.rank == 1) opt_.top = opt_.bottom = 0;
    if (opt_.top < 0 || opt_.bottom < 0 || opt_.left < 0 || opt_.right < 0)
      throw ValueError(std::string(type()) + ": padding must be non-negative integers.");
  }
  const char* type() const override { return opt_.rank == 2 ? "ZeroPadding2D" : "ZeroPadding1D"; }

  void build(const Shape& input) override {
    window::check_input_rank(name_, type(), input, opt_.rank);
    const int H = opt_.rank == 2 ? input[0] : 1, W = input[opt_.rank - 1];
    // 64 bits: each padding may be up to INT_MAX (configs come from files too).
    const long long oh = (long long)H + opt_.top + opt_.bottom;
    const long long ow = (long long)W + opt_.left + opt_.right;
    if (oh > INT_MAX || ow > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): padding " +
                       (opt_.rank == 2 ? "((" + std::to_string(opt_.top) + ", " +
                                             std::to_string(opt_.bottom) + "), "
                                       : std::string()) +
                       window::pair_str(opt_.left, opt_.right) + (opt_.rank == 2 ? ")" : "") +
                       " around the input " + shape_str(input) + " makes an axis of " +
                       std::to_string(std::max(oh, ow)) + " cells, more than 2^31 - 1.");
    H_ = H;
    W_ = W;
    C_ = input.back();
    OH_ = (int)oh;
    OW_ = (int)ow;
    in_ = input;
    out_ = opt_.rank == 2 ? Shape{OH_, OW_, C_} : Shape{OW_, C_};
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t orow = (size_t)OW_ * C_, irow = (size_t)W_ * C_;
    const long rows = (long)n * OH_;
#pragma omp parallel for schedule(static) if (rows * orow > 65536)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / OH_), oh = (int)(r % OH_), ih = oh - opt_.top;
      float* yr = y + r * orow;
      if (ih < 0 || ih >= H_) {
        std::memset(yr, 0, orow * sizeof(float));
        continue;
      }
      const size_t left = (size_t)opt_.left * C_;
      std::memset(yr, 0, left * sizeof(float));
      std::memcpy(yr + left, x + ((size_t)b * H_ + ih) * irow, irow * sizeof(float));
      std::memset(yr + left + irow, 0, (orow - left - irow) * sizeof(float));
    }
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t orow = (size_t)OW_ * C_, irow = (size_t)W_ * C_;
    const long rows = (long)n * H_;
#pragma omp parallel for schedule(static) if (rows * irow > 65536)
    for (long r = 0; r < rows; ++r) {
      const int b = (int)(r / H_), ih = (int)(r % H_);
      std::memcpy(dx + r * irow, dy + ((size_t)b * OH_ + ih + opt_.top) * orow + (size_t)opt_.left * C_,
                  irow * sizeof(float));
    }
  }

 private:
  ZeroPaddingOptions opt_;
  int H_ = 0, W_ = 0, C_ = 0, OH_ = 0, OW_ = 0;
};

}  // namespace

std::unique_ptr<Layer> make_zero_padding(const ZeroPaddingOptions& opt) {
  return std::make_unique<ZeroPadding>(opt);
}

}  // namespace shenjing
