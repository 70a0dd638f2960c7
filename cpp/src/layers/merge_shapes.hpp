// Input-shape checks shared by the merge layers (merge.cpp, concatenate.cpp, dot.cpp).
#pragma once
#include <string>
#include <vector>

#include "shenjing/layers.hpp"

namespace shenjing {

// "[(None, 3), (None, 4)]": the input shapes as an error message lists them.
inline std::string shapes_str(const std::vector<Shape>& inputs) {
  std::string s = "[";
  for (size_t i = 0; i < inputs.size(); ++i) s += (i ? ", " : "") + shape_str(inputs[i]);
  return s + "]";
}

// Every input has positive dims and at most 8 axes besides the batch (the models' limit; the
// merge kernels keep per-axis state in fixed arrays), and at most 2^28 values per sample.
inline void check_merge_inputs(const std::string& label, const std::vector<Shape>& inputs) {
  for (const Shape& s : inputs) {
    bool ok = s.size() <= 8 && shape_size(s) <= (1LL << 28);
    for (int d : s) ok = ok && d > 0;
    if (!ok)
      throw ValueError(label + ": every input needs positive dimensions, at most 8 axes besides "
                       "the batch and at most 2^28 values per sample. Received: input_shape=" +
                       shapes_str(inputs) + ".");
  }
}

}  // namespace shenjing
