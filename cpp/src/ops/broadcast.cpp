// The shape rules of broadcast.hpp: NumPy broadcasting on full shapes, the batch axis kept first.
#include "ops/broadcast.hpp"

namespace shenjing {
namespace bcast {

std::string BroadcastOp::input_str(size_t i) const {
  const Shape& s = ins_[i];
  if (batched(i)) return shape_str(s);
  std::string out = "(";
  for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + (s.size() == 1 ? ",)" : ")");
}

void BroadcastOp::build_inputs(const std::vector<Shape>& inputs) {
  const std::string label = op_label();
  if ((int)inputs.size() != arity_)
    throw ValueError(label + " takes " + std::to_string(arity_) + " inputs, received " +
                     std::to_string(inputs.size()) + ".");
  ins_ = inputs;  // for input_str in the messages below
  auto all = [&] {
    std::string s = "[";
    for (size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + input_str(i);
    return s + "]";
  };
  bool any_batched = false;
  int R = 0;  // the output's full rank
  for (size_t i = 0; i < inputs.size(); ++i) {
    bool ok = inputs[i].size() <= 8;
    for (int d : inputs[i]) ok = ok && d > 0;
    if (!ok)
      throw ValueError(label + ": every input needs positive dimensions and at most 8 axes "
                       "besides the batch axis. Received: " + all() + ".");
    any_batched = any_batched || batched(i);
    R = std::max(R, (int)inputs[i].size() + (batched(i) ? 1 : 0));
  }
  if (any_batched) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      const int rank = (int)inputs[i].size() + (batched(i) ? 1 : 0);
      if (batched(i) && rank != R)
        throw ValueError(label + ": cannot broadcast " + all() + ": an unbatched input has more "
                         "axes than the batched input " + input_str(i) + ", which would move "
                         "its batch axis off the output's first axis.");
      if (!batched(i) && rank == R && inputs[i][0] != 1)
        throw ValueError(label + ": cannot broadcast " + all() + ": the unbatched input " +
                         input_str(i) + " meets the batch axis with size " +
                         std::to_string(inputs[i][0]) + "; only size 1 broadcasts against the "
                         "batch size, which is known only at run time.");
    }
  }
  // Full shapes aligned on their last axes; the batch axis counts as size 1 here (it is n, the
  // same for every batched input, at run time).
  full_.assign(R, 1);
  std::vector<Shape> fulls;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Shape s = inputs[i];
    if (batched(i)) s.insert(s.begin(), 1);
    for (size_t k = 0; k < s.size(); ++k) {
      int& o = full_[R - s.size() + k];
      const int d = s[k];
      if (d != o && d != 1 && o != 1)
        throw ValueError(label + ": inputs have incompatible shapes " + all() + ".");
      if (d != 1) o = d;
    }
    fulls.push_back(std::move(s));
  }
  // Strides through the full output: 0 where broadcast; a batched input's batch axis steps a
  // sample.
  stride_.assign(inputs.size(), std::vector<long long>(R, 0));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Shape& s = fulls[i];
    long long step = 1;
    for (size_t k = s.size(); k-- > 0;) {
      const size_t d = R - s.size() + k;
      const bool batch_axis = batched(i) && k == 0;
      stride_[i][d] = batch_axis || s[k] != 1 ? step : 0;
      step *= s[k];
    }
  }
  Shape out = full_;
  if (any_batched) out.erase(out.begin());
  set_op_shapes(inputs, out, any_batched);
}

Geom BroadcastOp::geom(int n) const {
  Geom g;
  g.arrays = 1 + arity_;
  const int R = (int)full_.size();
  long long out_stride[kMaxAxes];
  long long step = 1;
  for (int d = R - 1; d >= 0; --d) {
    out_stride[d] = step;
    step *= d == 0 && out_batched_ ? n : full_[d];
  }
  for (int d = 0; d < R; ++d) {
    const long long len = d == 0 && out_batched_ ? n : full_[d];
    if (len == 1) continue;
    long long st[kMaxArrays];
    st[0] = out_stride[d];
    for (int i = 0; i < arity_; ++i) st[1 + i] = stride_[i][d];
    bool merge = g.rank > 0;
    for (int a = 0; a < g.arrays && merge; ++a) merge = g.st[a][g.rank - 1] == st[a] * len;
    if (merge) {
      g.len[g.rank - 1] *= len;
      for (int a = 0; a < g.arrays; ++a) g.st[a][g.rank - 1] = st[a];
    } else {
      g.len[g.rank] = len;
      for (int a = 0; a < g.arrays; ++a) g.st[a][g.rank] = st[a];
      ++g.rank;
    }
  }
  if (g.rank == 0) {  // a single value
    g.rank = 1;
    g.len[0] = 1;
    for (int a = 0; a < g.arrays; ++a) g.st[a][0] = 0;
  }
  return g;
}

}  // namespace bcast
}  // namespace shenjing
