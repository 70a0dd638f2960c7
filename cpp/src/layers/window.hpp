// Shared by the windowed layers (convolution, pooling, zero padding): input rank checks, the
// output length and padding of one axis, and activations run in parallel over rows.
#pragma once
#include <algorithm>
#include <climits>
#include <string>

#include <omp.h>

#include "kernels/kernels.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace window {

inline std::string pair_str(int a, int b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// Throws unless the per-sample input is (steps, channels) for rank 1 or (rows, cols, channels)
// for rank 2, with a hint when the channel axis is missing.
inline void check_input_rank(const std::string& name, const char* type, const Shape& input,
                             int rank) {
  if ((int)input.size() == rank + 1) return;
  const char* want = rank == 2 ? "(batch, rows, cols, channels)" : "(batch, steps, channels)";
  std::string msg = "Layer '" + name + "' (" + type + ") expects input of rank " +
                    std::to_string(rank + 2) + " " + want + ", received input with shape " +
                    shape_str(input) + ".";
  if ((int)input.size() == rank) {
    Shape fixed = input;
    fixed.push_back(1);
    std::string dims;
    for (int d : fixed) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    msg += " Add a channel axis to the data, e.g. x[..., None] (numpy) with Input(shape=(" +
           dims + ")).";
  }
  throw ValueError(msg);
}

// Checks the rank and fills the input part of g (H, W, C) from a per-sample shape; 1-D layers
// see one row.
inline void input_geometry(const std::string& name, const char* type, const Shape& input,
                           int rank, kernels::WindowGeom& g) {
  check_input_rank(name, type, input, rank);
  g.H = rank == 2 ? input[0] : 1;
  g.W = input[rank - 1];
  g.C = input.back();
}

inline const char* padding_name(Padding p) {
  return p == Padding::Valid ? "valid" : p == Padding::Same ? "same" : "causal";
}

// Outcome of fitting a window along one axis.
enum class Fit {
  Ok,
  TooSmall,  // the (dilated) window does not fit a 'valid' input
  TooBig     // the geometry passes INT_MAX cells, which the kernels' int indices cannot reach
};

// Output length of one axis and its padding before, as Keras/TF compute them. In 64 bits:
// k, s, d come from configs (Python arguments, saved files) and (k - 1) * d passes 2^31. On Ok
// every index the kernels form along the axis fits an int: window cells (oh * s - pad + i * d,
// (oh + 1) * s) stay below out * s + eff, clipping bounds (in - (i * d - pad) + s) below
// in + pad + s, and both are checked.
inline Fit axis(int in, int k, int s, int d, Padding p, int* out, int* pad_before) {
  const long long eff = (long long)(k - 1) * d + 1;  // < 2^62: k, d are positive ints
  if (p == Padding::Valid && in < eff) return Fit::TooSmall;
  if (eff > INT_MAX) return Fit::TooBig;
  long long o = 0, pb = 0;
  switch (p) {
    case Padding::Valid:
      o = (in - eff) / s + 1;
      break;
    case Padding::Same:
      o = ((long long)in + s - 1) / s;
      pb = std::max((o - 1) * s + eff - in, 0LL) / 2;
      break;
    case Padding::Causal:
      o = ((long long)in - 1) / s + 1;
      pb = eff - 1;
      break;
  }
  if (o * s + eff > INT_MAX || in + pb + s > INT_MAX) return Fit::TooBig;  // terms < 2^33
  *out = (int)o;
  *pad_before = (int)pb;
  return Fit::Ok;
}

// "3" or "(3, 5)": how Keras prints a window argument of a 1-D or 2-D layer.
inline std::string arg_str(int rank, int a, int b) {
  return rank == 2 ? pair_str(a, b) : std::to_string(b);
}

// Fills g.OH, g.PT, g.OW, g.PL from g's input and window (g.KH ... g.DW), or throws a
// ValueError naming the layer, its window arguments and the input shape. `window_arg` is
// "kernel_size" or "pool_size"; `hint` ends the message when the window is larger than a
// 'valid' input. The row axis of a 1-D layer (H = KH = 1) uses padding_rows = valid.
inline void output_geometry(const std::string& name, const char* type, int rank,
                            const char* window_arg, Padding padding_rows, Padding padding,
                            const Shape& input, const char* hint, kernels::WindowGeom& g) {
  const Fit fh = axis(g.H, g.KH, g.SH, g.DH, padding_rows, &g.OH, &g.PT);
  const Fit fw = fh == Fit::Ok ? axis(g.W, g.KW, g.SW, g.DW, padding, &g.OW, &g.PL) : fh;
  if (fw == Fit::Ok) return;
  const long long eh = (long long)(g.KH - 1) * g.DH + 1, ew = (long long)(g.KW - 1) * g.DW + 1;
  const bool dilated = g.DH > 1 || g.DW > 1;
  const std::string e = rank == 2 ? "(" + std::to_string(eh) + ", " + std::to_string(ew) + ")"
                                  : std::to_string(ew);
  std::string msg = "Layer '" + name + "' (" + type + "): " + window_arg + " " +
                    arg_str(rank, g.KH, g.KW) + (dilated ? " (" + e + " with dilation)" : "");
  if (fw == Fit::TooSmall)
    throw ValueError(msg + " is larger than the input " + shape_str(input) +
                     " with padding='valid'. " + hint);
  if (dilated) msg += ", dilation_rate " + arg_str(rank, g.DH, g.DW);
  throw ValueError(msg + ", strides " + arg_str(rank, g.SH, g.SW) + " and padding='" +
                   padding_name(padding) + "' over the input " + shape_str(input) +
                   " span more than 2^31 - 1 cells along an axis: too large to compute.");
}

// y = act(x) (y may be x) over rows x cols, split over threads by rows.
inline void act_forward(int act, float alpha, const float* x, float* y, long rows, int cols) {
  const auto& K = kernels::table();
  const int nt = (double)rows * cols < 65536.0 || omp_in_parallel() ? 1 : omp_get_max_threads();
  if (nt == 1) return K.act_forward(act, alpha, x, y, rows, cols);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    const long r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    K.act_forward(act, alpha, x + r0 * cols, y + r0 * cols, r1 - r0, cols);
  }
}

inline void act_backward(int act, float alpha, const float* x, const float* y, const float* dy,
                         float* dx, long rows, int cols) {
  const auto& K = kernels::table();
  const int nt = (double)rows * cols < 65536.0 || omp_in_parallel() ? 1 : omp_get_max_threads();
  if (nt == 1) return K.act_backward(act, alpha, x, y, dy, dx, rows, cols);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    const long r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    K.act_backward(act, alpha, x + r0 * cols, y + r0 * cols, dy + r0 * cols, dx + r0 * cols,
                   r1 - r0, cols);
  }
}

}  // namespace window
}  // namespace shenjing
