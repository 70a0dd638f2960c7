// Embedding: y[p] = embeddings[id(x[p])] for every position p of the input; ids are floats
// holding integers (the model converts int arrays exactly), truncated toward zero as Keras's
// cast to int32. Every id is checked before anything is written, so a bad one is a ValueError
// with the model unchanged (forward throws before backward and the update).
//
// The table's gradient is row-sparse: backward zeroes only the rows the previous backward
// wrote (listed in Param::grad_rows) and scatter-adds this batch's rows, so a step never
// passes over the whole table; plain SGD then updates only the listed rows (optimizers.cpp).
// A regularized table has a dense gradient (the penalty touches every weight): it is zeroed
// whole and never marked sparse.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {
namespace {

constexpr int kMaxInputDim = 1 << 24;  // every id below it is exact in float32
constexpr long long kParallelFloats = 65536;

class Embedding final : public Layer {
 public:
  explicit Embedding(const EmbeddingOptions& opt) : opt_(opt) {
    if (opt.input_dim <= 0 || opt.input_dim > kMaxInputDim)
      throw ValueError("Embedding: input_dim must be an integer from 1 to 2^24 = 16777216 (ids "
                       "travel as exact float32), received " + std::to_string(opt.input_dim) +
                       ".");
    if (opt.output_dim <= 0)
      throw ValueError("Embedding: output_dim must be a positive integer, received " +
                       std::to_string(opt.output_dim) + ".");
  }
  const char* type() const override { return "Embedding"; }
  bool accumulates_param_grads() const override { return true; }

  void build(const Shape& input) override {
    // Any per-sample shape, even none ((batch,) ids): the model caps the output's size.
    in_ = input;
    out_ = input;
    out_.push_back(opt_.output_dim);
    params_.clear();
    params_.push_back(Param{"embeddings", {opt_.input_dim, opt_.output_dim}, {}, {}, opt_.l1,
                            opt_.l2});
    params_[0].sparse_rows = opt_.l1 == 0.0f && opt_.l2 == 0.0f;
    listed_.clear();
  }

  void forward(const float* x, float* y, int n, const RunContext&) override {
    const long long P = positions(n);
    check_ids(x, P);
    const size_t D = opt_.output_dim;
    const float* table = params_[0].value.data();
#pragma omp parallel for schedule(static) if (P * (long long)D > kParallelFloats)
    for (long long p = 0; p < P; ++p)
      std::memcpy(y + p * D, table + (size_t)(int)x[p] * D, D * sizeof(float));
  }

  void backward(const float* x, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    const long long P = positions(n);
    if (dx) std::memset(dx, 0, (size_t)P * sizeof(float));  // ids are not differentiable
    Param& p = params_[0];
    const size_t D = opt_.output_dim;
    float* g = p.grad.data();
    if (!p.sparse_rows) {
      if (!ctx.accumulate) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    } else {
      if (listed_.size() != (size_t)opt_.input_dim) listed_.assign(opt_.input_dim, 0);
      if (!ctx.accumulate) {  // the previous step's rows are the only nonzero ones
        for (int r : p.grad_rows) {
          std::memset(g + (size_t)r * D, 0, D * sizeof(float));
          listed_[r] = 0;
        }
        p.grad_rows.clear();
      }
      for (long long i = 0; i < P; ++i) {
        const int r = (int)x[i];
        if (!listed_[r]) {
          listed_[r] = 1;
          p.grad_rows.push_back(r);
        }
      }
    }
    // Scatter-add dy's rows. Each thread owns the table rows r with r % threads == its
    // number and adds their positions in input order, so every sum is formed in the same
    // order whatever the thread count: deterministic without atomics.
#pragma omp parallel if (P * (long long)D > kParallelFloats)
    {
      const int T = omp_get_num_threads(), t = omp_get_thread_num();
      for (long long i = 0; i < P; ++i) {
        const int r = (int)x[i];
        if (r % T != t) continue;
        float* gr = g + (size_t)r * D;
        const float* d = dy + (size_t)i * D;
        for (size_t j = 0; j < D; ++j) gr[j] += d[j];
      }
    }
  }

 private:
  long long positions(int n) const { return (long long)n * shape_size(in_); }

  // Throws, naming the first bad id, unless every id truncates into [0, input_dim): that is
  // -1 < v < input_dim (NaN fails both comparisons).
  void check_ids(const float* x, long long P) const {
    const float hi = (float)opt_.input_dim;
    for (long long i = 0; i < P; ++i) {
      const float v = x[i];
      if (v > -1.0f && v < hi) continue;
      const long long per = std::max(1LL, shape_size(in_));
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.9g", (double)v);
      throw ValueError("Layer '" + name_ + "' (Embedding): input id " + buf + " (sample " +
                       std::to_string(i / per) + " of the batch, position " +
                       std::to_string(i % per) + ") is not in [0, " +
                       std::to_string(opt_.input_dim) + "): ids must be integers from 0 to "
                       "input_dim - 1.");
    }
  }

  EmbeddingOptions opt_;
  // listed_[r]: row r is in params_[0].grad_rows (so each row is listed once).
  std::vector<char> listed_;
};

}  // namespace

std::unique_ptr<Layer> make_embedding(const EmbeddingOptions& opt) {
  return std::make_unique<Embedding>(opt);
}

}  // namespace shenjing
