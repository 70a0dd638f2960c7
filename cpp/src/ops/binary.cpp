// Elementwise ops of two inputs, and `where` of three, with NumPy broadcasting (broadcast.hpp).
//   add, subtract, multiply, divide, power, maximum, minimum: differentiable, PyTorch's
//     gradients: divide da = g / b, db = -g * a / b^2; power da = g * b * a^(b-1) (0 where
//     b == 0), db = g * a^b * log(a) (0 where a == 0 and b >= 0); maximum/minimum split ties
//     evenly and send the whole gradient to both inputs where one is NaN (torch's masks).
//   mod (NumPy's remainder: the sign of the divisor) with gradients g and -g * floor_divide(a, b),
//     as torch.remainder.
//   floor_divide (NumPy's float algorithm), equal, not_equal, greater, greater_equal, less,
//     less_equal, logical_and, logical_or, logical_xor (nonzero is true): the quotient, or 0/1;
//     zero gradients.
//   where(cond, x1, x2): x1 where cond != 0, else x2; the gradient goes to the input picked,
//     cond gets zeros.
// The walk comes in blocks of rows of the innermost axis; each row is one loop with the inputs'
// innermost strides (0 or 1) fixed at compile time, so same-shape inputs and a row broadcast
// along a batch both vectorise, and short rows (3 channels) cost little bookkeeping.
#include <cmath>

#include "ops/broadcast.hpp"

namespace shenjing {
namespace {

using bcast::Geom;

// Calls f with an accessor of array a of g (its block starting at p) over a block of rows
// (bcast::for_range): A(i, j) is the value at row i, position j: p[i * row + j] for inner
// stride 1, p[i * row] for 0.
template <class F>
inline void with_access(const Geom& g, int a, const float* p, F&& f) {
  const long long row = bcast::row_stride(g, a);
  if (bcast::inner_stride(g, a)) f([p, row](long long i, long long j) { return p[i * row + j]; });
  else f([p, row](long long i, long long) { return p[i * row]; });
}

// One block of a gradient, g(i, j) its value at row i, position j; d is where the block's first
// value goes, `inner` and `row` the gradient's strides. Written (Acc false: each position once)
// or added. Sums over the rows or along the run are taken in a fixed order.
template <bool Acc, class G>
inline void grad_rows(float* d, long long inner, long long row, long long rows, long long L,
                      G&& g) {
  if (inner && (row || rows == 1)) {  // one value per position
    for (long long i = 0; i < rows; ++i, d += row) {
      if (Acc) for (long long j = 0; j < L; ++j) d[j] += g(i, j);
      else for (long long j = 0; j < L; ++j) d[j] = g(i, j);
    }
  } else if (inner) {  // summed over the rows (a bias under a batch)
    if (!Acc) std::fill(d, d + L, 0.0f);
    if (L >= 16) {  // row by row, vectorised along the run
      for (long long i = 0; i < rows; ++i)
        for (long long j = 0; j < L; ++j) d[j] += g(i, j);
    } else {  // short runs: down each column with 4 partial sums, not through memory
      for (long long j = 0; j < L; ++j) {
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        long long i = 0;
        for (; i + 4 <= rows; i += 4) {
          s0 += g(i, j);
          s1 += g(i + 1, j);
          s2 += g(i + 2, j);
          s3 += g(i + 3, j);
        }
        for (; i < rows; ++i) s0 += g(i, j);
        d[j] += (s0 + s1) + (s2 + s3);
      }
    }
  } else {  // broadcast along the run: one sum per row (row 0: one sum for the block)
    float total = 0.0f;
    for (long long i = 0; i < rows; ++i) {
      float acc = 0.0f;
      for (long long j = 0; j < L; ++j) acc += g(i, j);
      if (row) d[i * row] = Acc ? d[i * row] + acc : acc;
      else total += acc;
    }
    if (!row) d[0] = Acc ? d[0] + total : total;
  }
}

// NumPy's npy_divmod in float32: the floor quotient, snapped to an integer, and the remainder
// with the divisor's sign. b == 0 gives a / b and fmod's NaN, as NumPy does.
inline float floor_div(float a, float b, float* rem) {
  float mod = std::fmod(a, b);
  if (b == 0.0f) {
    *rem = mod;
    return a / b;
  }
  float div = (a - mod) / b;
  if (mod != 0.0f) {
    if ((b < 0.0f) != (mod < 0.0f)) {
      mod += b;
      div -= 1.0f;
    }
  } else {
    mod = std::copysign(0.0f, b);
  }
  float q;
  if (div != 0.0f) {
    q = std::floor(div);
    if (div - q > 0.5f) q += 1.0f;
  } else {
    q = std::copysign(0.0f, a / b);
  }
  *rem = mod;
  return q;
}

// The ops: f is the forward; da/db the gradients given a, b, y = f(a, b) and g = dL/dy.
struct Nondiff {
  static constexpr bool kGrad = false;
};
struct Add {
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return a + b; }
  static float da(float, float, float, float g) { return g; }
  static float db(float, float, float, float g) { return g; }
};
struct Subtract {
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return a - b; }
  static float da(float, float, float, float g) { return g; }
  static float db(float, float, float, float g) { return -g; }
};
struct Multiply {
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return a * b; }
  static float da(float, float b, float, float g) { return g * b; }
  static float db(float a, float, float, float g) { return g * a; }
};
struct Divide {
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return a / b; }
  static float da(float, float b, float, float g) { return g / b; }
  static float db(float a, float b, float, float g) { return -g * a / (b * b); }
};
struct Power {
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return std::pow(a, b); }
  static float da(float a, float b, float, float g) {
    return b == 0.0f ? 0.0f : g * (b * std::pow(a, b - 1.0f));
  }
  static float db(float a, float b, float y, float g) {
    return a == 0.0f && b >= 0.0f ? 0.0f : g * (y * std::log(a));
  }
};
struct Maximum {  // NaN wins, as np.maximum
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return a > b || a != a ? a : b; }
  static float da(float a, float b, float, float g) { return a < b ? 0.0f : a == b ? 0.5f * g : g; }
  static float db(float a, float b, float, float g) { return b < a ? 0.0f : a == b ? 0.5f * g : g; }
};
struct Minimum {
  static constexpr bool kGrad = true;
  static float f(float a, float b) { return a < b || a != a ? a : b; }
  static float da(float a, float b, float, float g) { return a > b ? 0.0f : a == b ? 0.5f * g : g; }
  static float db(float a, float b, float, float g) { return b > a ? 0.0f : a == b ? 0.5f * g : g; }
};
struct Mod {
  static constexpr bool kGrad = true;
  static float f(float a, float b) {
    float r;
    if (b == 0.0f) return std::fmod(a, b);
    floor_div(a, b, &r);
    return r;
  }
  static float da(float, float, float, float g) { return g; }
  static float db(float a, float b, float, float g) {
    float r;
    return -g * floor_div(a, b, &r);
  }
};
struct FloorDivide : Nondiff {
  static float f(float a, float b) {
    float r;
    return floor_div(a, b, &r);
  }
};
struct Equal : Nondiff { static float f(float a, float b) { return a == b ? 1.0f : 0.0f; } };
struct NotEqual : Nondiff { static float f(float a, float b) { return a != b ? 1.0f : 0.0f; } };
struct Greater : Nondiff { static float f(float a, float b) { return a > b ? 1.0f : 0.0f; } };
struct GreaterEqual : Nondiff { static float f(float a, float b) { return a >= b ? 1.0f : 0.0f; } };
struct Less : Nondiff { static float f(float a, float b) { return a < b ? 1.0f : 0.0f; } };
struct LessEqual : Nondiff { static float f(float a, float b) { return a <= b ? 1.0f : 0.0f; } };
struct LogicalAnd : Nondiff {
  static float f(float a, float b) { return a != 0.0f && b != 0.0f ? 1.0f : 0.0f; }
};
struct LogicalOr : Nondiff {
  static float f(float a, float b) { return a != 0.0f || b != 0.0f ? 1.0f : 0.0f; }
};
struct LogicalXor : Nondiff {
  static float f(float a, float b) { return (a != 0.0f) != (b != 0.0f) ? 1.0f : 0.0f; }
};

enum class Kind {
  Add, Subtract, Multiply, Divide, Power, Maximum, Minimum, Mod, FloorDivide, Equal, NotEqual,
  Greater, GreaterEqual, Less, LessEqual, LogicalAnd, LogicalOr, LogicalXor
};

// Calls f(S{}) with the op struct of kind k.
template <class F>
void visit(Kind k, F&& f) {
  switch (k) {
    case Kind::Add: return f(Add{});
    case Kind::Subtract: return f(Subtract{});
    case Kind::Multiply: return f(Multiply{});
    case Kind::Divide: return f(Divide{});
    case Kind::Power: return f(Power{});
    case Kind::Maximum: return f(Maximum{});
    case Kind::Minimum: return f(Minimum{});
    case Kind::Mod: return f(Mod{});
    case Kind::FloorDivide: return f(FloorDivide{});
    case Kind::Equal: return f(Equal{});
    case Kind::NotEqual: return f(NotEqual{});
    case Kind::Greater: return f(Greater{});
    case Kind::GreaterEqual: return f(GreaterEqual{});
    case Kind::Less: return f(Less{});
    case Kind::LessEqual: return f(LessEqual{});
    case Kind::LogicalAnd: return f(LogicalAnd{});
    case Kind::LogicalOr: return f(LogicalOr{});
    case Kind::LogicalXor: return f(LogicalXor{});
  }
}

class Binary final : public bcast::BroadcastOp {
 public:
  Binary(std::string op, Kind kind) : BroadcastOp(std::move(op), 2), kind_(kind) {}

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const Geom g = geom(n);
    const float* a = xs[0];
    const float* b = xs[1];
    const long long ry = bcast::row_stride(g, 0);
    visit(kind_, [&](auto op) {
      using S = decltype(op);
      bcast::parallel_runs(g, [&](const long long* off, long long rows, long long L) {
        with_access(g, 1, a + off[1], [&](auto A) {
          with_access(g, 2, b + off[2], [&](auto B) {
            float* yo = y + off[0];
            for (long long i = 0; i < rows; ++i, yo += ry)
              for (long long j = 0; j < L; ++j) yo[j] = S::f(A(i, j), B(i, j));
          });
        });
      });
    });
  }

  void backward_inputs(const float* const* xs, const float* y, const float* dy,
                       float* const* dxs, int n, const RunContext&) override {
    const Geom g = geom(n);
    visit(kind_, [&](auto op) {
      using S = decltype(op);
      for (int w = 0; w < 2; ++w) {
        if (!dxs[w]) continue;
        if constexpr (!S::kGrad) std::fill(dxs[w], dxs[w] + in_size(w, n), 0.0f);
        else if (w == 0) grad<S, 0>(g, xs, y, dy, dxs[0], n);
        else grad<S, 1>(g, xs, y, dy, dxs[1], n);
      }
    });
  }

 private:
  // dxs[W] = the sum over the broadcast axes of S's gradient for input W.
  template <class S, int W>
  void grad(const Geom& g, const float* const* xs, const float* y, const float* dy, float* dx,
            int n) {
    const float* a = xs[0];
    const float* b = xs[1];
    const long long ry = bcast::row_stride(g, 0);
    const long long sx = bcast::inner_stride(g, 1 + W), rx = bcast::row_stride(g, 1 + W);
    auto run = [&](float* d, const long long* off, long long rows, long long L, bool acc) {
      const float* yo = y + off[0];
      const float* go = dy + off[0];
      float* dd = d + off[1 + W];
      with_access(g, 1, a + off[1], [&](auto A) {
        with_access(g, 2, b + off[2], [&](auto B) {
          auto gij = [&](long long i, long long j) {
            const long long o = i * ry + j;
            return W == 0 ? S::da(A(i, j), B(i, j), yo[o], go[o])
                          : S::db(A(i, j), B(i, j), yo[o], go[o]);
          };
          if (acc) grad_rows<true>(dd, sx, rx, rows, L, gij);
          else grad_rows<false>(dd, sx, rx, rows, L, gij);
        });
      });
    };
    bcast::grad_into(g, W, dx, in_size(W, n), partials_, run);
  }

  Kind kind_;
  std::vector<float> partials_;  // grad_into's scratch; never outlives a call
};

class Where final : public bcast::BroadcastOp {
 public:
  Where() : BroadcastOp("where", 3) {}

  void forward_inputs(const float* const* xs, float* y, int n, const RunContext&) override {
    const Geom g = geom(n);
    const long long ry = bcast::row_stride(g, 0);
    bcast::parallel_runs(g, [&](const long long* off, long long rows, long long L) {
      with_access(g, 1, xs[0] + off[1], [&](auto C) {
        with_access(g, 2, xs[1] + off[2], [&](auto A) {
          with_access(g, 3, xs[2] + off[3], [&](auto B) {
            float* yo = y + off[0];
            for (long long i = 0; i < rows; ++i, yo += ry)
              for (long long j = 0; j < L; ++j) yo[j] = C(i, j) != 0.0f ? A(i, j) : B(i, j);
          });
        });
      });
    });
  }

  void backward_inputs(const float* const* xs, const float*, const float* dy, float* const* dxs,
                       int n, const RunContext&) override {
    if (dxs[0]) std::fill(dxs[0], dxs[0] + in_size(0, n), 0.0f);
    const Geom g = geom(n);
    const long long ry = bcast::row_stride(g, 0);
    for (int w = 1; w <= 2; ++w) {
      if (!dxs[w]) continue;
      const bool first = w == 1;  // x1 takes dy where cond != 0, x2 where cond == 0
      const long long sx = bcast::inner_stride(g, 1 + w), rx = bcast::row_stride(g, 1 + w);
      auto run = [&](float* d, const long long* off, long long rows, long long L, bool acc) {
        const float* go = dy + off[0];
        float* dd = d + off[1 + w];
        with_access(g, 1, xs[0] + off[1], [&](auto C) {
          auto gij = [&](long long i, long long j) {
            return (C(i, j) != 0.0f) == first ? go[i * ry + j] : 0.0f;
          };
          if (acc) grad_rows<true>(dd, sx, rx, rows, L, gij);
          else grad_rows<false>(dd, sx, rx, rows, L, gij);
        });
      };
      bcast::grad_into(g, w, dxs[w], in_size(w, n), partials_, run);
    }
  }

 private:
  std::vector<float> partials_;
};

}  // namespace

std::unique_ptr<Layer> broadcast_op_from_config(const std::string& op, const config::Fields&) {
  static const struct {
    const char* name;
    Kind kind;
  } kOps[] = {
      {"add", Kind::Add}, {"subtract", Kind::Subtract}, {"multiply", Kind::Multiply},
      {"divide", Kind::Divide}, {"power", Kind::Power}, {"maximum", Kind::Maximum},
      {"minimum", Kind::Minimum}, {"mod", Kind::Mod}, {"floor_divide", Kind::FloorDivide},
      {"equal", Kind::Equal}, {"not_equal", Kind::NotEqual}, {"greater", Kind::Greater},
      {"greater_equal", Kind::GreaterEqual}, {"less", Kind::Less},
      {"less_equal", Kind::LessEqual}, {"logical_and", Kind::LogicalAnd},
      {"logical_or", Kind::LogicalOr}, {"logical_xor", Kind::LogicalXor},
  };
  for (const auto& o : kOps)
    if (op == o.name) return std::make_unique<Binary>(op, o.kind);
  if (op == "where") return std::make_unique<Where>();
  return nullptr;
}

}  // namespace shenjing
