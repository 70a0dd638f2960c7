// Elementwise ops of one input: y has x's shape and batchedness. PyTorch's gradients:
//   negative, abs (0 at 0), sign (zero), square, sqrt (dy / (2y): inf at 0), rsqrt, exp, log,
//   log1p, expm1, reciprocal, sin, cos, tanh, sigmoid, relu (0 at 0), relu6 (0 at 0 and 6),
//   softplus, softsign, silu, gelu (attr "approximate", default true: the tanh form; false:
//   erf), elu ("alpha", 1.0), selu, leaky_relu ("negative_slope", 0.2), hard_sigmoid (Keras 3:
//   relu6(x + 3) / 6; gradient 1/6 strictly inside (-3, 3)), clip ("min", "max", both needed;
//   torch.clamp's gradient: 1 where min <= x <= max), floor, ceil, round (half to even, as
//   NumPy), logical_not (x == 0 -> 1), isnan, isinf, isfinite (0/1; zero gradients),
//   stop_gradient (x; zero gradient), identity (x; the model passes the buffer through).
// Two- and three-input ops live in binary.cpp; elementwise_op_from_config decodes both.
// Each op is one loop over the values (parallel over chunks when large); sigmoid, tanh,
// softplus, silu, exact gelu and elu use the activation kernels, as the Activation layers do;
// exp, log, log1p and expm1 the vector math kernels (within 2 ulp; kernels/math.inc).
#include <algorithm>
#include <cmath>
#include <cstring>

#include <omp.h>

#include "kernels/kernels.hpp"
#include "ops/broadcast.hpp"

namespace shenjing {
namespace {

enum class U {
  Negative, Abs, Sign, Square, Sqrt, Rsqrt, Exp, Log, Log1p, Expm1, Reciprocal, Sin, Cos, Tanh,
  Sigmoid, Relu, Relu6, Softplus, Softsign, Silu, GeluTanh, GeluErf, Elu, Selu, LeakyRelu,
  HardSigmoid, Floor, Ceil, Round, LogicalNot, StopGradient, Identity, Clip, IsNan, IsInf,
  IsFinite
};

constexpr float kSeluAlpha = 1.6732632423543772848170429916717f;
constexpr float kSeluScale = 1.0507009873554804934193349852946f;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

template <class F>
inline void map(const float* x, float* y, long long L, F f) {
  for (long long j = 0; j < L; ++j) y[j] = f(x[j]);
}
// d[j] = f(x[j], y[j], g[j]).
template <class F>
inline void map_grad(const float* x, const float* y, const float* g, float* d, long long L, F f) {
  for (long long j = 0; j < L; ++j) d[j] = f(x[j], y[j], g[j]);
}

class Unary final : public Op {
 public:
  Unary(std::string op, U kind, float p0 = 0.0f, float p1 = 0.0f)
      : Op(std::move(op), 1), kind_(kind), p0_(p0), p1_(p1) {}

  // identity (Keras's cast to a float type): the model aliases the input's buffer.
  bool passthrough(const RunContext&) const override { return kind_ == U::Identity; }

  void build_inputs(const std::vector<Shape>& inputs) override {
    if (inputs.size() != 1)
      throw ValueError(op_label() + " takes 1 input, received " + std::to_string(inputs.size()) +
                       ".");
    set_op_shapes(inputs, inputs[0], batched(0));
  }

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    chunks(in_size(0, n), [&](long long b, long long L) { forward(xs[0] + b, y + b, L); });
  }

  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext&) override {
    if (!dxs[0]) return;
    chunks(in_size(0, n),
           [&](long long b, long long L) { backward(xs[0] + b, y + b, dy + b, dxs[0] + b, L); });
  }

 private:
  // f(first, count) over [0, N) in one chunk per thread when large.
  template <class F>
  static void chunks(long long N, F&& f) {
    const int T = (int)std::min<long long>(bcast::threads_for(N), N);
#pragma omp parallel for schedule(static) if (T > 1)
    for (int t = 0; t < T; ++t) {
      const long long b = N * t / T, e = N * (t + 1) / T;
      if (e > b) f(b, e - b);
    }
  }

  void forward(const float* x, float* y, long long L) const {
    const kernels::KernelTable& k = kernels::table();
    const float p0 = p0_, p1 = p1_;
    switch (kind_) {
      case U::Negative: return map(x, y, L, [](float v) { return -v; });
      case U::Abs: return map(x, y, L, [](float v) { return std::fabs(v); });
      case U::Sign:  // NaN and +-0 stay as they are
        return map(x, y, L, [](float v) { return v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v; });
      case U::Square: return map(x, y, L, [](float v) { return v * v; });
      case U::Sqrt: return map(x, y, L, [](float v) { return std::sqrt(v); });
      case U::Rsqrt: return map(x, y, L, [](float v) { return 1.0f / std::sqrt(v); });
      case U::Exp: return k.vexp(x, y, (std::size_t)L);
      case U::Log: return k.vlog(x, y, (std::size_t)L);
      case U::Log1p: return k.vlog1p(x, y, (std::size_t)L);
      case U::Expm1: return k.vexpm1(x, y, (std::size_t)L);
      case U::Reciprocal: return map(x, y, L, [](float v) { return 1.0f / v; });
      case U::Sin: return map(x, y, L, [](float v) { return std::sin(v); });
      case U::Cos: return map(x, y, L, [](float v) { return std::cos(v); });
      case U::Tanh: return k.act_forward(kernels::kTanh, 0.0f, x, y, 1, L);
      case U::Sigmoid: return k.act_forward(kernels::kSigmoid, 0.0f, x, y, 1, L);
      case U::Relu:  // NaN stays NaN, as np.maximum(x, 0)
        return map(x, y, L, [](float v) { return v < 0.0f ? 0.0f : v; });
      case U::Relu6:
        return map(x, y, L, [](float v) { return v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v; });
      case U::Softplus: return k.act_forward(kernels::kSoftplus, 0.0f, x, y, 1, L);
      case U::Softsign: return map(x, y, L, [](float v) { return v / (1.0f + std::fabs(v)); });
      case U::Silu: return k.act_forward(kernels::kSwish, 0.0f, x, y, 1, L);
      case U::GeluTanh:
        return map(x, y, L, [](float v) {
          return 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v)));
        });
      case U::GeluErf: return k.act_forward(kernels::kGelu, 0.0f, x, y, 1, L);
      case U::Elu: return k.act_forward(kernels::kElu, p0, x, y, 1, L);
      case U::Selu:
        return map(x, y, L, [](float v) {
          return v > 0.0f ? kSeluScale * v : kSeluScale * kSeluAlpha * std::expm1(v);
        });
      case U::LeakyRelu: return map(x, y, L, [p0](float v) { return v > 0.0f ? v : p0 * v; });
      case U::HardSigmoid:
        return map(x, y, L, [](float v) {
          const float t = v + 3.0f;
          return (t < 0.0f ? 0.0f : t > 6.0f ? 6.0f : t) / 6.0f;
        });
      case U::Floor: return map(x, y, L, [](float v) { return std::floor(v); });
      case U::Ceil: return map(x, y, L, [](float v) { return std::ceil(v); });
      case U::Round: return map(x, y, L, [](float v) { return std::nearbyint(v); });
      case U::LogicalNot: return map(x, y, L, [](float v) { return v == 0.0f ? 1.0f : 0.0f; });
      case U::StopGradient:
      case U::Identity:
        if (x != y) std::memcpy(y, x, sizeof(float) * L);
        return;
      case U::Clip:  // NaN stays NaN; min > max gives max everywhere, as np.clip
        return map(x, y, L, [p0, p1](float v) {
          const float t = v < p0 ? p0 : v;
          return t > p1 ? p1 : t;
        });
      case U::IsNan: return map(x, y, L, [](float v) { return std::isnan(v) ? 1.0f : 0.0f; });
      case U::IsInf: return map(x, y, L, [](float v) { return std::isinf(v) ? 1.0f : 0.0f; });
      case U::IsFinite:
        return map(x, y, L, [](float v) { return std::isfinite(v) ? 1.0f : 0.0f; });
    }
  }

  void backward(const float* x, const float* y, const float* g, float* d, long long L) const {
    const kernels::KernelTable& k = kernels::table();
    const float p0 = p0_, p1 = p1_;
    switch (kind_) {
      case U::Negative: return map_grad(x, y, g, d, L, [](float, float, float dy) { return -dy; });
      case U::Abs:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) {
          return v > 0.0f ? dy : v < 0.0f ? -dy : 0.0f;
        });
      case U::Square:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) { return 2.0f * v * dy; });
      case U::Sqrt:
        return map_grad(x, y, g, d, L, [](float, float r, float dy) { return dy / (2.0f * r); });
      case U::Rsqrt:
        return map_grad(x, y, g, d, L,
                        [](float, float r, float dy) { return -0.5f * dy * (r * r * r); });
      case U::Exp: return map_grad(x, y, g, d, L, [](float, float r, float dy) { return dy * r; });
      case U::Log: return map_grad(x, y, g, d, L, [](float v, float, float dy) { return dy / v; });
      case U::Log1p:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) { return dy / (1.0f + v); });
      case U::Expm1:
        return map_grad(x, y, g, d, L, [](float, float r, float dy) { return dy * (r + 1.0f); });
      case U::Reciprocal:
        return map_grad(x, y, g, d, L, [](float, float r, float dy) { return -dy * (r * r); });
      case U::Sin:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) { return dy * std::cos(v); });
      case U::Cos:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) { return -dy * std::sin(v); });
      case U::Tanh: return k.act_backward(kernels::kTanh, 0.0f, x, y, g, d, 1, L);
      case U::Sigmoid: return k.act_backward(kernels::kSigmoid, 0.0f, x, y, g, d, 1, L);
      case U::Relu:
        return map_grad(x, y, g, d, L,
                        [](float v, float, float dy) { return v > 0.0f ? dy : 0.0f; });
      case U::Relu6:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) {
          return v > 0.0f && v < 6.0f ? dy : 0.0f;
        });
      case U::Softplus: return k.act_backward(kernels::kSoftplus, 0.0f, x, y, g, d, 1, L);
      case U::Softsign:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) {
          const float t = 1.0f + std::fabs(v);
          return dy / (t * t);
        });
      case U::Silu: return k.act_backward(kernels::kSwish, 0.0f, x, y, g, d, 1, L);
      case U::GeluTanh:  // torch's gelu_backward, approximate='tanh'
        return map_grad(x, y, g, d, L, [](float v, float, float dy) {
          const float t = std::tanh(kSqrt2OverPi * (v + kGeluCubic * v * v * v));
          const float inner = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * v * v);
          return dy * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * inner);
        });
      case U::GeluErf: return k.act_backward(kernels::kGelu, 0.0f, x, y, g, d, 1, L);
      case U::Elu: return k.act_backward(kernels::kElu, p0, x, y, g, d, 1, L);
      case U::Selu:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) {
          return v > 0.0f ? dy * kSeluScale : dy * (kSeluScale * kSeluAlpha) * std::exp(v);
        });
      case U::LeakyRelu:
        return map_grad(x, y, g, d, L,
                        [p0](float v, float, float dy) { return v > 0.0f ? dy : p0 * dy; });
      case U::HardSigmoid:
        return map_grad(x, y, g, d, L, [](float v, float, float dy) {
          return v > -3.0f && v < 3.0f ? dy / 6.0f : 0.0f;
        });
      case U::Identity:
        if (g != d) std::memcpy(d, g, sizeof(float) * L);
        return;
      case U::Clip:
        return map_grad(x, y, g, d, L, [p0, p1](float v, float, float dy) {
          return v >= p0 && v <= p1 ? dy : 0.0f;
        });
      case U::Sign: case U::Floor: case U::Ceil: case U::Round: case U::LogicalNot:
      case U::StopGradient: case U::IsNan: case U::IsInf: case U::IsFinite:
        std::fill(d, d + L, 0.0f);
        return;
    }
  }

  U kind_;
  float p0_, p1_;  // elu: alpha; leaky_relu: negative_slope; clip: min, max
};

// A float attribute: any finite float32 value; `required` without a default.
float float_attr(const config::Fields& f, const char* key, double def, bool required) {
  if (required && !f.get(key)) f.fail(key, "a number", nullptr);
  return (float)f.number(key, def, -3.4028234663852886e38, 3.4028234663852886e38);
}

}  // namespace

std::unique_ptr<Layer> elementwise_op_from_config(const std::string& op, const config::Fields& f) {
  static const struct {
    const char* name;
    U kind;
  } kPlain[] = {
      {"negative", U::Negative}, {"abs", U::Abs}, {"sign", U::Sign}, {"square", U::Square},
      {"sqrt", U::Sqrt}, {"rsqrt", U::Rsqrt}, {"exp", U::Exp}, {"log", U::Log},
      {"log1p", U::Log1p}, {"expm1", U::Expm1}, {"reciprocal", U::Reciprocal}, {"sin", U::Sin},
      {"cos", U::Cos}, {"tanh", U::Tanh}, {"sigmoid", U::Sigmoid}, {"relu", U::Relu},
      {"relu6", U::Relu6}, {"softplus", U::Softplus}, {"softsign", U::Softsign},
      {"silu", U::Silu}, {"selu", U::Selu}, {"hard_sigmoid", U::HardSigmoid},
      {"floor", U::Floor}, {"ceil", U::Ceil}, {"round", U::Round},
      {"logical_not", U::LogicalNot}, {"stop_gradient", U::StopGradient},
      {"identity", U::Identity}, {"isnan", U::IsNan}, {"isinf", U::IsInf},
      {"isfinite", U::IsFinite},
  };
  for (const auto& o : kPlain)
    if (op == o.name) return std::make_unique<Unary>(op, o.kind);
  if (op == "gelu")
    return std::make_unique<Unary>(op, f.boolean("approximate", true) ? U::GeluTanh : U::GeluErf);
  if (op == "elu") return std::make_unique<Unary>(op, U::Elu, float_attr(f, "alpha", 1.0, false));
  if (op == "leaky_relu")
    return std::make_unique<Unary>(op, U::LeakyRelu, float_attr(f, "negative_slope", 0.2, false));
  if (op == "clip") {
    const float lo = float_attr(f, "min", 0.0, true);
    const float hi = float_attr(f, "max", 0.0, true);
    return std::make_unique<Unary>(op, U::Clip, lo, hi);
  }
  return broadcast_op_from_config(op, f);
}

}  // namespace shenjing
