// Shared by the windowed layers (convolution, pooling, zero padding): input rank checks, the
// output length and padding of one axis, and activations run in parallel over rows.
#pragma once
#include <algorithm>
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

// Output length of one axis and its padding before, as Keras/TF compute them; false when the
// (dilated) window does not fit a 'valid' input.
inline bool axis(int in, int k, int s, int d, Padding p, int* out, int* pad_before) {
  const int eff = (k - 1) * d + 1;
  switch (p) {
    case Padding::Valid:
      if (in < eff) return false;
      *out = (in - eff) / s + 1;
      *pad_before = 0;
      return true;
    case Padding::Same: {
      *out = (in + s - 1) / s;
      const int total = std::max((*out - 1) * s + eff - in, 0);
      *pad_before = total / 2;
      return true;
    }
    case Padding::Causal:
      *out = (in - 1) / s + 1;
      *pad_before = eff - 1;
      return true;
  }
  return false;
}

inline const char* padding_name(Padding p) {
  return p == Padding::Valid ? "valid" : p == Padding::Same ? "same" : "causal";
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
