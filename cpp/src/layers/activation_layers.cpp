// Keras's activation layers with their own arguments (ReLU, LeakyReLU, ELU, PReLU, Softmax) and
// the elementwise layers Rescaling and ActivityRegularization. The Activation layer's kernels
// take fixed constants; these layers take the user's, so their loops live here (plain loops
// over the batch: each output element depends on its own input only, so any thread count gives
// the same bits).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.hpp"
#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

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
          const bool pass = x[i] > t && (!o_.has_max || (x[i] <= m && x[i] >= 0.0f));
          dx[i] = dy[i] * ((pass ? 1.0f : 0.0f) + (x[i] < t ? s : 0.0f));
        }
        break;
      case PointwiseKind::LeakyReLU:
        for (size_t i = 0; i < len; ++i) dx[i] = dy[i] * (x[i] > 0.0f ? 1.0f : s);
        break;
      case PointwiseKind::ELU:
        // d/dx of alpha * expm1(x) is y + alpha (y the output) for x <= 0.
        for (size_t i = 0; i < len; ++i) {
          const float g = y[i] + a;  // computed either way: the select then vectorises
          dx[i] = dy[i] * (x[i] > 0.0f ? 1.0f : g);
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
  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t len = shape_size(in_);
    const float* al = params_[0].value.data();
    for (int s = 0; s < n; ++s) {
      const float* xs = x + (size_t)s * len;
      float* ys = y + (size_t)s * len;
      for (size_t i = 0; i < len; ++i)
        ys[i] = std::max(xs[i], 0.0f) + al[index_[i]] * std::min(xs[i], 0.0f);
    }
  }
  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const size_t len = shape_size(in_);
    const float* al = params_[0].value.data();
    std::vector<float>& g = params_[0].grad;
    if (!ctx.accumulate) std::fill(g.begin(), g.end(), 0.0f);
    // Serial over the batch, so the sums come out the same for any thread count.
    for (int s = 0; s < n; ++s) {
      const float* xs = x + (size_t)s * len;
      const float* d = dy + (size_t)s * len;
      for (size_t i = 0; i < len; ++i) g[index_[i]] += d[i] * std::min(xs[i], 0.0f);
      if (dx) {
        float* o = dx + (size_t)s * len;
        for (size_t i = 0; i < len; ++i) o[i] = d[i] * (xs[i] > 0.0f ? 1.0f : al[index_[i]]);
      }
    }
  }
  bool accumulates_param_grads() const override { return true; }

 private:
  PReLUOptions o_;
  std::vector<int> index_;
};

// Softmax over one block of consecutive axes (Keras's axis: an int or a list of them).
class Softmax final : public Layer {
 public:
  explicit Softmax(std::vector<int> axes) : axes_(std::move(axes)) {}
  const char* type() const override { return "Softmax"; }
  void build(const Shape& input) override {
    const int rank = (int)input.size(), ndim = rank + 1;
    std::vector<int> ax;
    for (int a : axes_) {
      if (a < -ndim || a >= ndim)
        throw ValueError(label(name_, "Softmax") + ": axis " + std::to_string(a) +
                         " is out of range for an input of rank " + std::to_string(ndim) + ".");
      const int p = a < 0 ? a + ndim : a;
      if (p == 0)
        throw ValueError(label(name_, "Softmax") + ": a softmax over the batch axis (axis 0) "
                         "is not supported.");
      if (std::find(ax.begin(), ax.end(), p - 1) == ax.end()) ax.push_back(p - 1);
    }
    std::sort(ax.begin(), ax.end());
    for (size_t i = 1; i < ax.size(); ++i)
      if (ax[i] != ax[i - 1] + 1)
        throw ValueError(label(name_, "Softmax") + ": the axes must be adjacent (a softmax over "
                         "separated axes is not supported).");
    in_ = out_ = input;
    outer_ = inner_ = len_ = 1;
    for (int d = 0; d < rank; ++d) {
      if (d < ax.front()) outer_ *= input[d];
      else if (d > ax.back()) inner_ *= input[d];
      else len_ *= input[d];
    }
  }
  // Over the last axis alone it is the softmax the cross-entropy loss fuses with.
  Activation output_activation() const override {
    return inner_ == 1 ? Activation::Softmax : Activation::Linear;
  }
  void forward(const float* x, float* y, int n, const RunContext&) override {
    const size_t blocks = (size_t)n * outer_;
    if (inner_ == 1)  // rows of the last axes: the Activation layer's softmax kernel
      return kernels::table().act_forward((int)Activation::Softmax, 0.0f, x, y, blocks, len_);
    for (size_t b = 0; b < blocks; ++b)
      for (size_t j = 0; j < inner_; ++j) {
        const float* xs = x + b * len_ * inner_ + j;
        float* ys = y + b * len_ * inner_ + j;
        float mx = xs[0];
        for (size_t k = 1; k < len_; ++k) mx = std::max(mx, xs[k * inner_]);
        double sum = 0.0;
        for (size_t k = 0; k < len_; ++k) {
          const float e = std::exp(xs[k * inner_] - mx);
          ys[k * inner_] = e;
          sum += e;
        }
        const float inv = (float)(1.0 / sum);
        for (size_t k = 0; k < len_; ++k) ys[k * inner_] *= inv;
      }
  }
  void backward(const float*, const float* y, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const size_t blocks = (size_t)n * outer_;
    if (ctx.fused) {  // the loss handed back dL/dz
      std::memcpy(dx, dy, blocks * len_ * inner_ * sizeof(float));
      return;
    }
    if (inner_ == 1)
      return kernels::table().act_backward((int)Activation::Softmax, 0.0f, nullptr, y, dy, dx,
                                           blocks, len_);
    for (size_t b = 0; b < blocks; ++b)
      for (size_t j = 0; j < inner_; ++j) {
        const size_t o = b * len_ * inner_ + j;
        double dot = 0.0;
        for (size_t k = 0; k < len_; ++k) dot += (double)dy[o + k * inner_] * y[o + k * inner_];
        for (size_t k = 0; k < len_; ++k)
          dx[o + k * inner_] = y[o + k * inner_] * (dy[o + k * inner_] - (float)dot);
      }
  }

 private:
  std::vector<int> axes_;
  size_t outer_ = 1, len_ = 1, inner_ = 1;
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
    double a = 0.0, s = 0.0;
    for (size_t i = 0; i < len; ++i) {
      a += std::fabs(x[i]);
      s += (double)x[i] * x[i];
    }
    ctx.saved->loss = (l1_ * a + l2_ * s) / n;
  }
  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    const size_t len = (size_t)n * shape_size(in_);
    const float a = l1_ / n, b = 2.0f * l2_ / n;
    for (size_t i = 0; i < len; ++i)
      dx[i] = dy[i] + b * x[i] + a * (x[i] > 0.0f ? 1.0f : (x[i] < 0.0f ? -1.0f : 0.0f));
  }

 private:
  float l1_, l2_;
};

}  // namespace

std::unique_ptr<Layer> make_pointwise(const PointwiseOptions& o) {
  return std::make_unique<Pointwise>(o);
}
std::unique_ptr<Layer> make_prelu(const PReLUOptions& o) { return std::make_unique<PReLU>(o); }
std::unique_ptr<Layer> make_softmax(const std::vector<int>& axes) {
  return std::make_unique<Softmax>(axes);
}
std::unique_ptr<Layer> make_rescaling(const RescalingOptions& o) {
  return std::make_unique<Rescaling>(o);
}
std::unique_ptr<Layer> make_activity_regularization(float l1, float l2) {
  return std::make_unique<ActivityRegularization>(l1, l2);
}

}  // namespace shenjing
