// Keras's activation layers with their own arguments (ReLU, LeakyReLU, ELU, PReLU; Softmax is
// softmax_layer.cpp) and
// the elementwise layers Rescaling and ActivityRegularization. The Activation layer's kernels
// take fixed constants; these layers take the user's, so their loops live here (plain loops
// over the batch, written as selects between values computed either way, which GCC vectorises,
// where a product inside a branch would stay a mispredicted branch: each output element depends
// on its own input only, so any thread count gives the same bits).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.hpp"
#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

// c ? a : b as bit operations: GCC turns a select whose operands are products back into a
// branch, which random signs mispredict; these vectorise.
inline float pick(bool c, float a, float b) {
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  const uint32_t m = 0u - (uint32_t)c;
  const uint32_t r = (ua & m) | (ub & ~m);
  float out;
  std::memcpy(&out, &r, 4);
  return out;
}

// "(2, 3)": a shape of values (no batch axis, unlike shape_str's input shapes).
std::string dims_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string label(const std::string& name, const char* type) {
  return "Layer '" + name + "' (" + type + ")";
}

// ReLU (Keras's activations.relu with max_value / negative_slope / threshold), LeakyReLU and
// ELU: y = f(x) per element.
class Pointwise final : public Layer {
 public:
  explicit Pointwise(const PointwiseOptions& o) : o_(o) {}
  const char* type() const override {
    return o_.kind == PointwiseKind::ReLU ? "ReLU"
           : o_.kind == PointwiseKind::LeakyReLU ? "LeakyReLU" : "ELU";
  }
  void build(const Shape& input) override { in_ = out_ = input; }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t len = (size_t)n * shape_size(in_);
    const float s = o_.slope, t = o_.threshold, m = o_.max_value, a = o_.alpha;
    switch (o_.kind) {
      case PointwiseKind::ReLU:
        // Keras: x where x > threshold else 0, clipped to [0, max_value], minus
        // slope * relu(threshold - x). Written without branches (selects of values computed
        // either way) so that the loops vectorise: random signs would mispredict.
        if (o_.has_max)
          for (size_t i = 0; i < len; ++i) {
            const float v = x[i] > t ? x[i] : 0.0f;
            y[i] = std::min(std::max(v, 0.0f), m) + s * std::min(x[i] - t, 0.0f);
          }
        else
          for (size_t i = 0; i < len; ++i)
            y[i] = (x[i] > t ? x[i] : 0.0f) + s * std::min(x[i] - t, 0.0f);
        break;
      case PointwiseKind::LeakyReLU:
        for (size_t i = 0; i < len; ++i) y[i] = std::max(x[i], 0.0f) + s * std::min(x[i], 0.0f);
        break;
      case PointwiseKind::ELU:
        // max(x, 0) + alpha * expm1(min(x, 0)), expm1 by the kernels' vector expm1 (within
        // 2 ulp).
        for (size_t i = 0; i < len; ++i) y[i] = std::min(x[i], 0.0f);
        kernels::table().vexpm1(y, y, len);
        for (size_t i = 0; i < len; ++i) y[i] = std::max(x[i], 0.0f) + a * y[i];
        break;
    }
  }
  void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t len = (size_t)n * shape_size(in_);
    const float s = o_.slope, t = o_.threshold, m = o_.max_value, a = o_.alpha;
    switch (o_.kind) {
      case PointwiseKind::ReLU:
        // The clip passes the gradient on its closed range (as torch.clip does).
        for (size_t i = 0; i < len; ++i) {
          const bool pass = (x[i] > t) & ((!o_.has_max) | ((x[i] <= m) & (x[i] >= 0.0f)));
          dx[i] = dy[i] * (pick(pass, 1.0f, 0.0f) + pick(x[i] < t, s, 0.0f));
        }
        break;
      case PointwiseKind::LeakyReLU:
        for (size_t i = 0; i < len; ++i) {
          dx[i] = pick(x[i] > 0.0f, dy[i], dy[i] * s);
        }
        break;
      case PointwiseKind::ELU:
        // d/dx of alpha * expm1(x) is y + alpha (y the output) for x <= 0.
        for (size_t i = 0; i < len; ++i) {
          dx[i] = pick(x[i] > 0.0f, dy[i], dy[i] * (y[i] + a));
        }
        break;
    }
  }

 private:
  PointwiseOptions o_;
};

// PReLU: y = x for x > 0, alpha * x otherwise; alpha is per position of the input, shared
// (size 1) along `shared_axes`.
class PReLU final : public Layer {
 public:
  explicit PReLU(const PReLUOptions& o) : o_(o) {}
  const char* type() const override { return "PReLU"; }
  void build(const Shape& input) override {
    Shape a = input;
    for (int ax : o_.shared_axes) {
      if (ax < 1 || ax > (int)input.size())
        throw ValueError(label(name_, "PReLU") + ": shared_axes " + std::to_string(ax) +
                         " is not an axis of the input " + shape_str(input) +
                         " (axes count from 1, after the batch axis).");
      a[ax - 1] = 1;
    }
    in_ = out_ = input;
    // Each input position's alpha (broadcast along the shared axes).
    const size_t len = shape_size(input);
    index_.assign(len, 0);
    for (size_t i = 0; i < len; ++i) {
      size_t rem = i, ai = 0, stride = 1;
      for (int d = (int)input.size() - 1; d >= 0; --d) {
        const size_t c = rem % input[d];
        rem /= input[d];
        if (a[d] != 1) ai += c * stride;
        stride *= a[d];
      }
      index_[i] = (int)ai;
    }
    params_.clear();
    Param p;
    p.name = "alpha";
    p.shape = a;
    p.l1 = o_.l1;
    p.l2 = o_.l2;
    params_.push_back(std::move(p));
  }
  // alpha spread over one sample's positions first (one gather per call), so that the
  // per-sample loops are contiguous and vectorise.
  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t len = shape_size(in_);
    const float* al = spread_alpha();
    for (int s = 0; s < n; ++s) {
      const float* xs = x + (size_t)s * len;
      float* ys = y + (size_t)s * len;
      for (size_t i = 0; i < len; ++i) ys[i] = std::max(xs[i], 0.0f) + al[i] * std::min(xs[i], 0.0f);
    }
  }
  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const size_t len = shape_size(in_);
    const float* al = spread_alpha();
    // Per-position sums over the batch in sample order (the same for any thread count), then
    // added into alpha's gradient through the position -> alpha map.
    gpos_.assign(len, 0.0f);
    float* gp = gpos_.data();
    for (int s = 0; s < n; ++s) {
      const float* xs = x + (size_t)s * len;
      const float* d = dy + (size_t)s * len;
      for (size_t i = 0; i < len; ++i) gp[i] += d[i] * std::min(xs[i], 0.0f);
      if (dx) {
        float* o = dx + (size_t)s * len;
        for (size_t i = 0; i < len; ++i) {
          o[i] = pick(xs[i] > 0.0f, d[i], d[i] * al[i]);
        }
      }
    }
    std::vector<float>& g = params_[0].grad;
    if (!ctx.accumulate) std::fill(g.begin(), g.end(), 0.0f);
    for (size_t i = 0; i < len; ++i) g[index_[i]] += gp[i];
  }
  bool accumulates_param_grads() const override { return true; }

 private:
  const float* spread_alpha() {
    const float* al = params_[0].value.data();
    aspread_.resize(index_.size());
    for (size_t i = 0; i < index_.size(); ++i) aspread_[i] = al[index_[i]];
    return aspread_.data();
  }

  PReLUOptions o_;
  std::vector<int> index_;
  std::vector<float> aspread_, gpos_;  // scratch of one call
};

// Rescaling: y = x * scale + offset, scale and offset broadcast against the input (NumPy's
// rules, aligned on the last axes; a leading batch axis of size 1 is allowed).
class Rescaling final : public Layer {
 public:
  explicit Rescaling(const RescalingOptions& o) : o_(o) {}
  const char* type() const override { return "Rescaling"; }
  void build(const Shape& input) override {
    in_ = out_ = input;
    scale_ = expand(o_.scale, o_.scale_shape, "scale");
    offset_ = expand(o_.offset, o_.offset_shape, "offset");
  }
  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t len = shape_size(in_);
    for (int s = 0; s < n; ++s)
      for (size_t i = 0; i < len; ++i)
        y[s * len + i] = x[s * len + i] * scale_[i] + offset_[i];
  }
  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t len = shape_size(in_);
    for (int s = 0; s < n; ++s)
      for (size_t i = 0; i < len; ++i) dx[s * len + i] = dy[s * len + i] * scale_[i];
  }

 private:
  std::vector<float> expand(const std::vector<float>& v, Shape shape, const char* what) const {
    const int rank = (int)in_.size();
    if ((int)shape.size() == rank + 1) {  // a batch axis: only 1 can broadcast
      if (shape[0] != 1) fail(what, shape);
      shape.erase(shape.begin());
    }
    if ((int)shape.size() > rank) fail(what, shape);
    const size_t len = shape_size(in_);
    std::vector<float> out(len);
    const int off = rank - (int)shape.size();
    for (int d = 0; d < (int)shape.size(); ++d)
      if (shape[d] != 1 && shape[d] != in_[off + d]) fail(what, shape);
    for (size_t i = 0; i < len; ++i) {
      size_t rem = i, vi = 0, stride = 1;
      for (int d = rank - 1; d >= off; --d) {
        const size_t c = rem % in_[d];
        rem /= in_[d];
        const int sd = shape[d - off];
        if (sd != 1) vi += c * stride;
        stride *= sd;
      }
      out[i] = v[vi];
    }
    return out;
  }
  [[noreturn]] void fail(const char* what, const Shape& s) const {
    throw ValueError(label(name_, "Rescaling") + ": " + what + " of shape " + dims_str(s) +
                     " does not broadcast to the input shape " + shape_str(in_) + ".");
  }
  RescalingOptions o_;
  std::vector<float> scale_, offset_;
};

// ActivityRegularization: the output is the input; the loss gains
// (l1 * sum|x| + l2 * sum x^2) / batch size, as Keras 3 adds its activity regularizer
// (normalized by the batch size). Forward leaves that value in Saved::loss for the model.
class ActivityRegularization final : public Layer {
 public:
  ActivityRegularization(float l1, float l2) : l1_(l1), l2_(l2) {}
  const char* type() const override { return "ActivityRegularization"; }
  void build(const Shape& input) override { in_ = out_ = input; }
  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const size_t len = (size_t)n * shape_size(in_);
    std::memcpy(y, x, len * sizeof(float));
    // Eight interleaved double sums (so the loop vectorises), added in a fixed order: the
    // same value for any thread count.
    double pa[8] = {0}, ps[8] = {0};
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
      for (int k = 0; k < 8; ++k) {
        pa[k] += std::fabs(x[i + k]);
        ps[k] += (double)x[i + k] * x[i + k];
      }
    for (int k = 0; i < len; ++i, ++k) {
      pa[k] += std::fabs(x[i]);
      ps[k] += (double)x[i] * x[i];
    }
    double a = 0.0, s = 0.0;
    for (int k = 0; k < 8; ++k) {
      a += pa[k];
      s += ps[k];
    }
    ctx.saved->loss = (l1_ * a + l2_ * s) / n;
  }
  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t len = (size_t)n * shape_size(in_);
    const float a = l1_ / n, b = 2.0f * l2_ / n;
    for (size_t i = 0; i < len; ++i)
      dx[i] = dy[i] + b * x[i] + pick(x[i] > 0.0f, a, 0.0f) - pick(x[i] < 0.0f, a, 0.0f);
  }

 private:
  float l1_, l2_;
};

}  // namespace

std::unique_ptr<Layer> make_pointwise(const PointwiseOptions& o) {
  return std::make_unique<Pointwise>(o);
}
std::unique_ptr<Layer> make_prelu(const PReLUOptions& o) { return std::make_unique<PReLU>(o); }
std::unique_ptr<Layer> make_rescaling(const RescalingOptions& o) {
  return std::make_unique<Rescaling>(o);
}
std::unique_ptr<Layer> make_activity_regularization(float l1, float l2) {
  return std::make_unique<ActivityRegularization>(l1, l2);
}

}  // namespace shenjing
