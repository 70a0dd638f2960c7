// Permute(dims): output axis i of a sample is its input axis dims[i] - 1 (Keras counts from 1,
// the batch axis excluded). Forward permutes x by dims; backward permutes dy by the inverse.
// One routine does both: rows of the destination (every axis but the last) are split over the
// threads, and each row reads the source with one stride (memcpy when that stride is 1, i.e.
// the last axis stays last). The identity permutation passes the buffer through.
#include <cstring>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

// dst (n, src_shape[perm[0]], ..., src_shape[perm[r-1]]) = src (n, src_shape) permuted.
void permute(const float* src, float* dst, int n, const Shape& src_shape,
             const std::vector<int>& perm) {
  const int r = (int)src_shape.size();
  std::vector<long long> stride(r, 1);  // of src, per sample
  for (int a = r - 2; a >= 0; --a) stride[a] = stride[a + 1] * src_shape[a + 1];
  const long long sample = stride[0] * src_shape[0];
  const int len = src_shape[perm[r - 1]];
  const long long step = stride[perm[r - 1]];
  const long long rows_per_sample = sample / len;
  const long long rows = (long long)n * rows_per_sample;
#pragma omp parallel for schedule(static) if (n * sample > 65536)
  for (long long row = 0; row < rows; ++row) {
    const long long b = row / rows_per_sample;
    long long rest = row % rows_per_sample, off = b * sample;
    for (int a = r - 2; a >= 0; --a) {  // destination index of axis a, innermost first
      const int dim = src_shape[perm[a]];
      off += (rest % dim) * stride[perm[a]];
      rest /= dim;
    }
    float* d = dst + row * len;
    const float* s = src + off;
    if (step == 1) {
      std::memcpy(d, s, (size_t)len * sizeof(float));
    } else {
      for (int j = 0; j < len; ++j) d[j] = s[j * step];
    }
  }
}

class Permute final : public Layer {
 public:
  explicit Permute(const std::vector<int>& dims) : dims_(dims) {
    std::vector<char> seen(dims.size(), 0);
    bool ok = !dims.empty();
    for (int d : dims) {
      if (d < 1 || d > (int)dims.size() || seen[d - 1]) ok = false;
      else seen[d - 1] = 1;
    }
    if (!ok)
      throw ValueError("Permute: the set of indices in dims must be consecutive and start "
                       "from 1, received dims=" + dims_str() + ".");
    for (int d : dims) perm_.push_back(d - 1);
    inverse_.resize(perm_.size());
    for (size_t i = 0; i < perm_.size(); ++i) inverse_[perm_[i]] = (int)i;
    identity_ = true;
    for (size_t i = 0; i < perm_.size(); ++i) identity_ = identity_ && perm_[i] == (int)i;
  }
  const char* type() const override { return "Permute"; }
  bool passthrough(const RunContext&) const override { return identity_; }

  void build(const Shape& input) override {
    if (input.size() != perm_.size())
      throw ValueError("Layer '" + name_ + "' (Permute) with dims=" + dims_str() +
                       " expects input of rank " + std::to_string(perm_.size() + 1) +
                       ", received input with shape " + shape_str(input) + ".");
    in_ = input;
    out_.clear();
    for (int p : perm_) out_.push_back(input[p]);
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    if (identity_) {
      if (x != y) std::memcpy(y, x, (size_t)n * shape_size(in_) * sizeof(float));
      return;
    }
    permute(x, y, n, in_, perm_);
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext&) override {
    if (!dx) return;
    if (identity_) {
      if (dx != dy) std::memcpy(dx, dy, (size_t)n * shape_size(in_) * sizeof(float));
      return;
    }
    permute(dy, dx, n, out_, inverse_);
  }

 private:
  std::string dims_str() const {
    std::string s;
    for (int d : dims_) s += (s.empty() ? "" : ", ") + std::to_string(d);
    return "(" + s + (dims_.size() == 1 ? ",)" : ")");
  }
  std::vector<int> dims_, perm_, inverse_;
  bool identity_ = false;
};

}  // namespace

std::unique_ptr<Layer> make_permute(const std::vector<int>& dims) {
  return std::make_unique<Permute>(dims);
}

}  // namespace shenjing
