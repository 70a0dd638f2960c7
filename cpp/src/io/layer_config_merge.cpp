// Keras configs of the merge layers -> core layers (see layer_config.hpp). Add, Subtract,
// Multiply, Average, Maximum and Minimum have no fields of their own; Concatenate has `axis`
// (default -1), Dot `axes` (an int, or a list of 2 ints: one axis per input; required) and
// `normalize` (default false). Axes count the batch axis, as in Keras; whether they fit the
// inputs is checked when the layer is built on its input shapes.
#include "io/layer_config.hpp"

#include "io/config_fields.hpp"

namespace shenjing {

std::unique_ptr<Layer> merge_layer_from_config(const std::string& cls, const config::Fields& f) {
  using config::kMaxRank;
  static const struct { const char* name; MergeOp op; } kElementwise[] = {
      {"Add", MergeOp::Add},         {"Subtract", MergeOp::Subtract},
      {"Multiply", MergeOp::Multiply}, {"Average", MergeOp::Average},
      {"Maximum", MergeOp::Maximum}, {"Minimum", MergeOp::Minimum}};
  for (const auto& e : kElementwise)
    if (cls == e.name) return make_merge(e.op);
  // A per-sample rank is at most kMaxRank, so an axis outside [-(kMaxRank + 1), kMaxRank]
  // can never fit; 0 (the batch axis) is refused by the layers with Keras's reason.
  const int lo = -(kMaxRank + 1), hi = kMaxRank;
  if (cls == "Concatenate") {
    const int last = -1;
    const int axis = f.integer("axis", lo, hi, &last);
    try {
      return make_concatenate(axis);
    } catch (const ValueError& e) {
      throw ValueError("Layer '" + f.name() + "' (Concatenate): " + e.what());
    }
  }
  if (cls == "Dot") {
    int axes[2];
    f.ints("axes", 2, lo, hi, nullptr, axes);
    const bool normalize = f.boolean("normalize", false);
    try {
      return make_dot(axes[0], axes[1], normalize);
    } catch (const ValueError& e) {
      throw ValueError("Layer '" + f.name() + "' (Dot): " + e.what());
    }
  }
  return nullptr;
}

}  // namespace shenjing
