// Pooling, channels last: MaxPooling1D/2D, AveragePooling1D/2D and the Global variants.
//   x (n, H, W, C) -> y (n, OH, OW, C); a global pool is a window of the whole (H, W).
// Max pooling keeps the index of each maximum (training only) and routes dy there in backward;
// average pooling divides by the cells of the window inside the input ('same' padding is not
// counted, as TF/Keras). 1-D layers are 2-D ones with one row.
#include <vector>

#include "layers/window.hpp"

namespace shenjing {
namespace {

class Pool final : public Layer {
 public:
  explicit Pool(const PoolOptions& opt) : opt_(opt) {
    if (opt.rank != 1 && opt.rank != 2)
      throw ValueError("Pooling: rank must be 1 or 2, received " + std::to_string(opt.rank) + ".");
    if (opt_.rank == 1) opt_.pool[0] = opt_.strides[0] = 1;
    if (!opt.global) {
      auto positive = [&](const char* what, const int* v) {
        if (v[0] <= 0 || v[1] <= 0)
          throw ValueError(std::string(type()) + ": " + what + " must be positive integers, "
                           "received " + (opt.rank == 2 ? window::pair_str(v[0], v[1])
                                                        : std::to_string(v[1])) + ".");
      };
      positive("pool_size", opt_.pool);
      positive("strides", opt_.strides);
      if (opt.padding == Padding::Causal)
        throw ValueError(std::string(type()) + ": padding must be 'valid' or 'same'.");
    }
  }

  const char* type() const override {
    static const char* const names[2][2][2] = {
        {{"AveragePooling1D", "AveragePooling2D"}, {"MaxPooling1D", "MaxPooling2D"}},
        {{"GlobalAveragePooling1D", "GlobalAveragePooling2D"},
         {"GlobalMaxPooling1D", "GlobalMaxPooling2D"}}};
    return names[opt_.global][opt_.max][opt_.rank - 1];
  }

  void build(const Shape& input) override {
    kernels::WindowGeom g{};  // into g_ only once the build succeeds
    window::input_geometry(name_, type(), input, opt_.rank, g);
    g.DH = g.DW = 1;
    if (opt_.global) {
      g.KH = g.SH = g.H;
      g.KW = g.SW = g.W;
      g.PT = g.PL = 0;
      g.OH = g.OW = 1;
    } else {
      g.KH = opt_.pool[0];
      g.KW = opt_.pool[1];
      g.SH = opt_.strides[0];
      g.SW = opt_.strides[1];
      window::output_geometry(name_, type(), opt_.rank, "pool_size", opt_.padding,
                              opt_.padding, input,
                              "Use padding='same' or a smaller pool_size.", g);
    }
    g_ = g;
    in_ = input;
    if (opt_.global && !opt_.keepdims) out_ = {g.C};
    else out_ = opt_.rank == 2 ? Shape{g.OH, g.OW, g.C} : Shape{g.OW, g.C};
  }

  void forward(const float* x, float* y, int n, const RunContext& ctx) override {
    const auto& K = kernels::table();
    if (!opt_.max) return K.avg_pool(g_, x, n, y);
    int* arg = nullptr;
    if (ctx.training) {
      const size_t need = (size_t)n * shape_size(out_);
      if (ctx.saved->idx.size() < need) ctx.saved->idx.resize(need);
      arg = ctx.saved->idx.data();
    }
    K.max_pool(g_, x, n, y, arg);
  }

  void backward(const float*, const float*, const float* dy, float* dx, int n,
                const RunContext& ctx) override {
    if (!dx) return;
    const auto& K = kernels::table();
    if (opt_.max) K.max_pool_backward(g_, dy, ctx.saved->idx.data(), n, dx);
    else K.avg_pool_backward(g_, dy, n, dx);
  }

 private:
  PoolOptions opt_;
  kernels::WindowGeom g_{};
};

}  // namespace

std::unique_ptr<Layer> make_pool(const PoolOptions& opt) { return std::make_unique<Pool>(opt); }

}  // namespace shenjing
