// ZeroPadding1D/2D, channels last: x (n, H, W, C) -> y (n, top+H+bottom, left+W+right, C) with
// zeros around; backward crops dy back to dx. Parallel over output rows / input rows.
#include "layers/spatial.hpp"

namespace shenjing {
namespace {

class ZeroPadding final : public SpatialLayer {
 public:
  explicit ZeroPadding(const ZeroPaddingOptions& opt) : opt_(opt) {
    spatial::check_borders("ZeroPadding", "padding", opt_);
  }
  const char* type() const override { return opt_.rank == 2 ? "ZeroPadding2D" : "ZeroPadding1D"; }

  void build(const Shape& input) override {
    const HW in = input_hw(input, opt_.rank);
    // 64 bits: each padding may be up to INT_MAX (configs come from files too).
    const long long oh = (long long)in.H + opt_.top + opt_.bottom;
    const long long ow = (long long)in.W + opt_.left + opt_.right;
    check_axes_fit(oh, ow, "padding " + spatial::borders_str(opt_) + " around the input " +
                               shape_str(input));
    set_geometry(input, opt_.rank, in, oh, ow);
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    spatial::pad(window(), x, y, n);
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    spatial::crop(window(), dy, dx, n);
  }

 private:
  // The input is the window of the output.
  spatial::Window window() const { return {OH_, OW_, H_, W_, C_, opt_.top, opt_.left}; }

  ZeroPaddingOptions opt_;
};

}  // namespace

std::unique_ptr<Layer> make_zero_padding(const ZeroPaddingOptions& opt) {
  return std::make_unique<ZeroPadding>(opt);
}

}  // namespace shenjing
