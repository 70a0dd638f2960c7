// Shared by the channels-last layers that change only the spatial axes, x (n, H, W, C) ->
// y (n, OH, OW, C) (ZeroPadding, Cropping, UpSampling; 1-D ones see one row): their input and
// output geometry, the border checks of ZeroPadding and Cropping, and the two row copies
// between an array and a window of it, which are each other's backward.
#pragma once
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "layers/window.hpp"

namespace shenjing {
namespace spatial {

// Constructor checks of a border layer (ZeroPadding, Cropping): rank 1 or 2 and non-negative
// borders (`what`: "padding" or "cropping"). A 1-D layer has no row axis: top, bottom := 0.
template <class BorderOptions>
void check_borders(const char* family, const char* what, BorderOptions& opt) {
  if (opt.rank != 1 && opt.rank != 2)
    throw ValueError(std::string(family) + ": rank must be 1 or 2, received " +
                     std::to_string(opt.rank));
  if (opt.rank == 1) opt.top = opt.bottom = 0;
  if (opt.top < 0 || opt.bottom < 0 || opt.left < 0 || opt.right < 0)
    throw ValueError(std::string(family) + (opt.rank == 2 ? "2D" : "1D") + ": " + what +
                     " must be non-negative integers.");
}

// "((top, bottom), (left, right))" for rank 2, "(left, right)" for rank 1: how Keras prints
// the borders.
template <class BorderOptions>
std::string borders_str(const BorderOptions& opt) {
  const std::string lr = window::pair_str(opt.left, opt.right);
  return opt.rank == 2 ? "(" + window::pair_str(opt.top, opt.bottom) + ", " + lr + ")" : lr;
}

// An (n, H, W, C) array and the (n, h, w, C) window of it whose first cell is (top, left).
struct Window {
  int H, W, h, w, C, top, left;
};

// win = the window of `outer` (Cropping's forward, ZeroPadding's backward). Parallel over the
// window's rows.
inline void crop(const Window& g, const float* outer, float* win, int n) {
  const size_t wrow = (size_t)g.w * g.C, orow = (size_t)g.W * g.C;
  const long rows = (long)n * g.h;
#pragma omp parallel for schedule(static) if (rows * (long)wrow > 65536)
  for (long r = 0; r < rows; ++r) {
    const int b = (int)(r / g.h), wh = (int)(r % g.h);
    const float* src = outer + ((size_t)b * g.H + wh + g.top) * orow + (size_t)g.left * g.C;
    std::memcpy(win + r * wrow, src, wrow * sizeof(float));
  }
}

// outer = win placed at (top, left), zeros around (ZeroPadding's forward, Cropping's
// backward). Parallel over the outer rows.
inline void pad(const Window& g, const float* win, float* outer, int n) {
  const size_t wrow = (size_t)g.w * g.C, orow = (size_t)g.W * g.C;
  const size_t left = (size_t)g.left * g.C;
  const long rows = (long)n * g.H;
#pragma omp parallel for schedule(static) if (rows * (long)orow > 65536)
  for (long r = 0; r < rows; ++r) {
    const int b = (int)(r / g.H), wh = (int)(r % g.H) - g.top;
    float* dst = outer + r * orow;
    if (wh < 0 || wh >= g.h) {
      std::memset(dst, 0, orow * sizeof(float));
      continue;
    }
    std::memset(dst, 0, left * sizeof(float));
    std::memcpy(dst + left, win + ((size_t)b * g.h + wh) * wrow, wrow * sizeof(float));
    std::memset(dst + left + wrow, 0, (orow - left - wrow) * sizeof(float));
  }
}

}  // namespace spatial

// Base of the layers above: per-sample input (H_, W_, C_) and output (OH_, OW_, C_).
class SpatialLayer : public Layer {
 protected:
  struct HW {
    int H, W;
  };
  // Checks the input's rank and returns its rows and columns (one row for a 1-D layer).
  HW input_hw(const Shape& input, int rank) const {
    window::check_input_rank(name_, type(), input, rank);
    return {rank == 2 ? input[0] : 1, input[rank - 1]};
  }
  // Throws unless both output axes fit an int; `what` names the cause ("size (2, 2) over the
  // input (None, 3, 3, 1)").
  void check_axes_fit(long long oh, long long ow, const std::string& what) const {
    if (oh > INT_MAX || ow > INT_MAX)
      throw ValueError("Layer '" + name_ + "' (" + type() + "): " + what + " makes an axis of " +
                       std::to_string(std::max(oh, ow)) + " cells, more than 2^31 - 1.");
  }
  // Records the checked geometry and the input and output shapes.
  void set_geometry(const Shape& input, int rank, HW in, long long oh, long long ow) {
    H_ = in.H;
    W_ = in.W;
    C_ = input.back();
    OH_ = (int)oh;
    OW_ = (int)ow;
    in_ = input;
    out_ = rank == 2 ? Shape{OH_, OW_, C_} : Shape{OW_, C_};
  }

  int H_ = 0, W_ = 0, C_ = 0, OH_ = 0, OW_ = 0;
};

}  // namespace shenjing
