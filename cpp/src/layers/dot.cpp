// Dot: Keras's batch dot product of two inputs along one axis of each.
//   x (n, *X), y (n, *Y), axes (a, b) with X[a] == Y[b] = d -> out (n, *X\a, *Y\b), or (n, 1)
//   when nothing is left (two vectors). Per sample, x is a (P, d, Q) array (P: the axes before
//   a, Q: after) and y an (R, d, S) one; packed with the dot axis last they are A (M = P*Q, d)
//   and B (N = R*S, d), and out = A B^T (M, N) in the order Keras's batch_dot gives.
// normalize=True L2-normalizes A's and B's rows first, as Keras's ops.normalize:
//   a_hat = a * rsqrt(max(|a|^2, eps^2)), eps = 1e-7 (Keras's backend.epsilon()), whose
//   gradient is r * (g - a_hat (a_hat . g)) where |a|^2 >= eps^2 (TF's maximum sends ties to
//   its first argument) and r * g where the clamp holds.
// Backward: dA = dOut B, dB = dOut^T A, through the normalization, unpacked back.
// Nothing is kept between forward and backward (the packing is recomputed).
#include <algorithm>
#include <cmath>
#include <vector>

#include <omp.h>

#include "layers/merge_shapes.hpp"

namespace shenjing {
namespace {

constexpr long long kParallelMin = 1 << 16;  // multiply-adds per call below which one thread
constexpr float kEps2 = 1e-7f * 1e-7f;

// Per-sample geometry of one input: (outer, d, inner) around the dot axis.
struct Side {
  long long outer = 1, d = 1, inner = 1;
  long long rows() const { return outer * inner; }
  long long size() const { return outer * d * inner; }
};

// Packs one sample x (outer, d, inner) into rows (outer * inner, d); with `normalize`, each row
// is scaled to unit length and its squared norm kept in ss.
void pack(const Side& s, const float* x, bool normalize, float* rows, float* ss) {
  for (long long p = 0; p < s.outer; ++p)
    for (long long q = 0; q < s.inner; ++q) {
      float* r = rows + (p * s.inner + q) * s.d;
      const float* src = x + p * s.d * s.inner + q;
      for (long long k = 0; k < s.d; ++k) r[k] = src[k * s.inner];
    }
  if (!normalize) return;
  for (long long i = 0; i < s.rows(); ++i) {
    float* r = rows + i * s.d;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (long long k = 0; k < s.d; ++k) sum += r[k] * r[k];
    const float inv = 1.0f / std::sqrt(std::max(sum, kEps2));
    for (long long k = 0; k < s.d; ++k) r[k] *= inv;
    ss[i] = sum;
  }
}

// dx of one sample from the gradient g (rows, d) of the packed (normalized) rows `hat`:
// back through the normalization, then unpacked to x's layout. g is overwritten.
void unpack_grad(const Side& s, const float* hat, const float* ss, bool normalize, float* g,
                 float* dx) {
  if (normalize)
    for (long long i = 0; i < s.rows(); ++i) {
      float* gi = g + i * s.d;
      const float* h = hat + i * s.d;
      const float inv = 1.0f / std::sqrt(std::max(ss[i], kEps2));
      float hg = 0.0f;
      if (ss[i] >= kEps2) {
#pragma omp simd reduction(+ : hg)
        for (long long k = 0; k < s.d; ++k) hg += h[k] * gi[k];
      }
      for (long long k = 0; k < s.d; ++k) gi[k] = inv * (gi[k] - h[k] * hg);
    }
  for (long long p = 0; p < s.outer; ++p)
    for (long long q = 0; q < s.inner; ++q) {
      const float* r = g + (p * s.inner + q) * s.d;
      float* dst = dx + p * s.d * s.inner + q;
      for (long long k = 0; k < s.d; ++k) dst[k * s.inner] = r[k];
    }
}

class Dot final : public MultiInputLayer {
 public:
  Dot(int axis1, int axis2, bool normalize) : axes_{axis1, axis2}, normalize_(normalize) {
    if (axis1 == 0 || axis2 == 0)
      throw ValueError("Dot: cannot perform batch_dot over axis 0 (the batch axis). Received: "
                       "axes=(" + std::to_string(axis1) + ", " + std::to_string(axis2) + ").");
  }
  const char* type() const override { return "Dot"; }
  int min_inputs() const override { return 2; }

  void build(const Shape& input) override {
    throw ValueError(layer_label() + ": a `Dot` layer should be called on a list of 2 inputs. "
                     "Received: input_shape=" + shape_str(input) + ".");
  }

  void build_inputs(const std::vector<Shape>& inputs) override {
    const std::string label = layer_label();
    if (inputs.size() != 2)
      throw ValueError(label + ": a `Dot` layer should be called on a list of 2 inputs. "
                       "Received: input_shape=" + shapes_str(inputs) + ".");
    check_merge_inputs(label, inputs);
    int a[2];
    for (int i = 0; i < 2; ++i) {
      const int rank = (int)inputs[i].size(), ax = axes_[i];
      if (rank == 0)
        throw ValueError(label + ": cannot do batch_dot on inputs with rank < 2. Received: "
                         "input_shape=" + shapes_str(inputs) + ".");
      a[i] = ax > 0 ? ax - 1 : rank + ax;  // Keras counts the batch axis
      if (a[i] == -1)
        throw ValueError(label + ": cannot perform batch_dot over axis 0 (axes=" +
                         std::to_string(ax) + " is the batch axis of input " +
                         std::to_string(i) + "). Received: input_shape=" + shapes_str(inputs) +
                         ".");
      if (a[i] < 0 || a[i] >= rank)
        throw ValueError(label + ": axis " + std::to_string(ax) + " is out of range for input " +
                         std::to_string(i) + " of rank " + std::to_string(rank + 1) +
                         " (the batch axis counted). Received: input_shape=" +
                         shapes_str(inputs) + ".");
    }
    const Shape &X = inputs[0], &Y = inputs[1];
    if (X[a[0]] != Y[a[1]])
      throw ValueError(label + ": Incompatible input shapes: axis values " +
                       std::to_string(X[a[0]]) + " (at axis " + std::to_string(a[0] + 1) +
                       ") != " + std::to_string(Y[a[1]]) + " (at axis " +
                       std::to_string(a[1] + 1) + "). Full input shapes: " + shape_str(X) +
                       ", " + shape_str(Y) + ".");
    Shape out;
    Side side[2];
    for (int i = 0; i < 2; ++i) {
      const Shape& s = inputs[i];
      for (int d = 0; d < (int)s.size(); ++d) {
        if (d == a[i]) continue;
        out.push_back(s[d]);
        (d < a[i] ? side[i].outer : side[i].inner) *= s[d];
      }
      side[i].d = s[a[i]];
    }
    if (out.empty()) out = {1};
    set_shapes(inputs, out);
    x_ = side[0];
    y_ = side[1];
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const long long M = x_.rows(), N = y_.rows(), d = x_.d;
    for_samples(n, [&](long long b, float* buf) {
      float *A = buf, *B = A + M * d, *sa = B + N * d, *sb = sa + M;
      pack(x_, xs[0] + b * x_.size(), normalize_, A, sa);
      pack(y_, xs[1] + b * y_.size(), normalize_, B, sb);
      float* out = y + b * M * N;
      for (long long i = 0; i < M; ++i)
        for (long long j = 0; j < N; ++j) {
          const float *ai = A + i * d, *bj = B + j * d;
          float s = 0.0f;
#pragma omp simd reduction(+ : s)
          for (long long k = 0; k < d; ++k) s += ai[k] * bj[k];
          out[i * N + j] = s;
        }
    });
  }

  void backward_inputs(const float* const* xs, const float*, const float* dy,
                       float* const* dxs, int n, const RunContext&) override {
    const long long M = x_.rows(), N = y_.rows(), d = x_.d;
    for_samples(n, [&](long long b, float* buf) {
      float *A = buf, *B = A + M * d, *sa = B + N * d, *sb = sa + M, *G = sb + N;
      pack(x_, xs[0] + b * x_.size(), normalize_, A, sa);
      pack(y_, xs[1] + b * y_.size(), normalize_, B, sb);
      const float* g = dy + b * M * N;
      if (dxs[0]) {  // dA = dOut B
        for (long long i = 0; i < M; ++i) {
          float* gi = G + i * d;
          for (long long k = 0; k < d; ++k) gi[k] = 0.0f;
          for (long long j = 0; j < N; ++j) {
            const float c = g[i * N + j];
            const float* bj = B + j * d;
            for (long long k = 0; k < d; ++k) gi[k] += c * bj[k];
          }
        }
        unpack_grad(x_, A, sa, normalize_, G, dxs[0] + b * x_.size());
      }
      if (dxs[1]) {  // dB = dOut^T A
        for (long long j = 0; j < N; ++j) {
          float* gj = G + j * d;
          for (long long k = 0; k < d; ++k) gj[k] = 0.0f;
          for (long long i = 0; i < M; ++i) {
            const float c = g[i * N + j];
            const float* ai = A + i * d;
            for (long long k = 0; k < d; ++k) gj[k] += c * ai[k];
          }
        }
        unpack_grad(y_, B, sb, normalize_, G, dxs[1] + b * y_.size());
      }
    });
  }

 private:
  // f(sample, this thread's scratch) for every sample; samples in parallel when the work is
  // large. Scratch (per call, per thread): A, B, their squared norms, and one gradient buffer.
  template <class F>
  void for_samples(int n, F&& f) {
    const long long M = x_.rows(), N = y_.rows(), d = x_.d;
    const long long per = (M + N) * d + M + N + std::max(M, N) * d;
    const bool parallel = (long long)n * M * N * d >= kParallelMin && n > 1;
    const int threads = parallel ? omp_get_max_threads() : 1;
    if (scratch_.size() < (size_t)(per * threads)) scratch_.resize((size_t)(per * threads));
    float* base = scratch_.data();
#pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
    for (int b = 0; b < n; ++b) f(b, base + per * omp_get_thread_num());
  }

  int axes_[2];
  bool normalize_;
  Side x_, y_;
  std::vector<float> scratch_;  // never outlives a call
};

}  // namespace

std::unique_ptr<Layer> make_dot(int axis1, int axis2, bool normalize) {
  return std::make_unique<Dot>(axis1, axis2, normalize);
}

}  // namespace shenjing
