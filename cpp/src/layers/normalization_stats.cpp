// Normalization (Keras's preprocessing layer): y = (x - mean) / max(sqrt(variance), 1e-7), or
// with invert y = mean + x * max(sqrt(variance), 1e-7). mean and variance hold one value per
// position of the kept axes; the statistics come from adapt() (Python writes the params) or
// from the config (constants). No gradient reaches the statistics (they are not trained).
#include <algorithm>
#include <cmath>

#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

// "(2, 3)": a shape of values (no batch axis, unlike shape_str's input shapes).
std::string dims_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

class Normalization final : public Layer {
 public:
  explicit Normalization(const NormalizationOptions& o) : o_(o) {}
  const char* type() const override { return "Normalization"; }

  void build(const Shape& input) override {
    const int rank = (int)input.size(), ndim = rank + 1;
    keep_.assign(rank, 0);
    for (int a : o_.axes) {
      if (a < -ndim || a >= ndim)
        fail("all axis values must be in [-" + std::to_string(ndim) + ", " +
             std::to_string(ndim) + ") for an input of rank " + std::to_string(ndim) +
             ", received axis=" + std::to_string(a));
      const int p = a < 0 ? a + ndim : a;
      if (p == 0) fail("the batch axis (0) cannot be kept: the statistics would depend on it");
      keep_[p - 1] = 1;
    }
    in_ = out_ = input;
    Shape kept;
    for (int d = 0; d < rank; ++d)
      if (keep_[d]) kept.push_back(input[d]);
    // Each input position's statistic: its index over the kept axes.
    const size_t len = shape_size(input);
    index_.assign(len, 0);
    for (size_t i = 0; i < len; ++i) {
      size_t rem = i, k = 0, stride = 1;
      for (int d = rank - 1; d >= 0; --d) {
        const size_t c = rem % input[d];
        rem /= input[d];
        if (keep_[d]) {
          k += c * stride;
          stride *= input[d];
        }
      }
      index_[i] = (int)k;
    }
    params_.clear();
    if (o_.given) {
      given_mean_ = broadcast(o_.mean, kept);
      given_var_ = broadcast(o_.variance, kept);
      return;
    }
    const char* names[3] = {"mean", "variance", "count"};
    const float inits[3] = {0.0f, 1.0f, 0.0f};
    for (int k = 0; k < 3; ++k) {
      Param p;
      p.name = names[k];
      p.shape = k < 2 ? kept : Shape{};
      p.trainable = false;
      p.init = inits[k];
      params_.push_back(std::move(p));
    }
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    stats();
    const size_t len = shape_size(in_);
    for (int s = 0; s < n; ++s) {
      const float* xs = x + (size_t)s * len;
      float* ys = y + (size_t)s * len;
      if (o_.invert)
        for (size_t i = 0; i < len; ++i) ys[i] = mean_[index_[i]] + xs[i] * den_[index_[i]];
      else
        for (size_t i = 0; i < len; ++i) ys[i] = (xs[i] - mean_[index_[i]]) / den_[index_[i]];
    }
  }
  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    stats();
    const size_t len = shape_size(in_);
    for (int s = 0; s < n; ++s) {
      const float* d = dy + (size_t)s * len;
      float* o = dx + (size_t)s * len;
      if (o_.invert)
        for (size_t i = 0; i < len; ++i) o[i] = d[i] * den_[index_[i]];
      else
        for (size_t i = 0; i < len; ++i) o[i] = d[i] / den_[index_[i]];
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ValueError("Layer '" + name_ + "' (Normalization): " + what + ".");
  }
  // Given statistics of `shape` aligned right to the kept axes (Keras: each dim 1 or the
  // kept axis's size), as one value per kept position.
  std::vector<float> broadcast(const std::vector<float>& v, const Shape& kept) const {
    const Shape& s = o_.stats_shape;
    if (s.size() > kept.size())
      fail("the rank of mean (" + std::to_string(s.size()) + ") must be at most the number of "
           "kept axes (" + std::to_string(kept.size()) + ")");
    const int off = (int)(kept.size() - s.size());
    for (size_t d = 0; d < s.size(); ++d)
      if (s[d] != 1 && s[d] != kept[off + d])
        fail("mean and variance of shape " + dims_str(s) + " do not broadcast to the kept "
             "axes " + dims_str(kept));
    const size_t len = shape_size(kept);
    std::vector<float> out(len);
    for (size_t i = 0; i < len; ++i) {
      size_t rem = i, vi = 0, stride = 1;
      for (int d = (int)kept.size() - 1; d >= off; --d) {
        const size_t c = rem % kept[d];
        rem /= kept[d];
        const int sd = s[d - off];
        if (sd != 1) vi += c * stride;
        stride *= sd;
      }
      out[i] = v[vi];
    }
    return out;
  }
  // mean and the denominator max(sqrt(variance), 1e-7) of this call (the params may have been
  // rewritten by adapt() since the last one).
  void stats() {
    const float* m = o_.given ? given_mean_.data() : params_[0].value.data();
    const float* v = o_.given ? given_var_.data() : params_[1].value.data();
    const size_t k = o_.given ? given_mean_.size() : params_[0].value.size();
    mean_.assign(m, m + k);
    den_.resize(k);
    for (size_t i = 0; i < k; ++i) den_[i] = std::max(std::sqrt(std::max(v[i], 0.0f)), 1e-7f);
  }

  NormalizationOptions o_;
  std::vector<char> keep_;
  std::vector<int> index_;
  std::vector<float> given_mean_, given_var_, mean_, den_;
};

}  // namespace

std::unique_ptr<Layer> make_normalization(const NormalizationOptions& o) {
  return std::make_unique<Normalization>(o);
}

}  // namespace shenjing
