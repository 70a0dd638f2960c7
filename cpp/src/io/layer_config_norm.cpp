// Keras configs of the per-sample normalization layers (LayerNormalization) -> core layers;
// see layer_config.hpp. Every field is checked here (type and range); whether the axes fit
// the input is checked when the layer is built on its input shape.
#include "io/config_fields.hpp"
#include "io/layer_config.hpp"

namespace shenjing {
namespace {

using config::Fields;
using config::kMaxRank;
using json::Value;
using Kind = Value::Kind;

std::unique_ptr<Layer> layer_norm(const Fields& f) {
  LayerNormOptions o;
  // An int or a list of ints (Keras writes [-1] once the layer is built); each counts the
  // batch axis, so none outside [-(kMaxRank + 1), kMaxRank] can fit an input.
  const char* want = "an integer or a list of 1 to 8 integers";
  const int lo = -(kMaxRank + 1), hi = kMaxRank;
  const Value* v = f.get("axis");
  if (!v) {
    o.axes = {-1};
  } else if (v->kind == Kind::Number) {
    o.axes = {f.integer_value("axis", *v, lo, hi)};
  } else if (v->kind == Kind::Array && !v->array.empty() && (int)v->array.size() <= kMaxRank) {
    o.axes.clear();
    for (const Value& a : v->array) o.axes.push_back(f.integer_value("axis", a, lo, hi));
  } else {
    f.fail("axis", want, v);
  }
  o.epsilon = (float)f.number("epsilon", 1e-3, 1e-30, 1e30);
  if (!(o.epsilon > 0.0f)) f.fail("epsilon", "a positive number", f.get("epsilon"));
  o.center = f.boolean("center", true);
  o.scale = f.boolean("scale", true);
  o.rms_scaling = f.boolean("rms_scaling", false);
  f.regularizer("beta_regularizer", &o.beta_l1, &o.beta_l2);
  f.regularizer("gamma_regularizer", &o.gamma_l1, &o.gamma_l2);
  // A constraint would change the weights after every update; ignoring it would train
  // something else than Keras does.
  for (const char* key : {"beta_constraint", "gamma_constraint"})
    if (f.get(key)) f.fail(key, "null (constraints are not supported)", f.get(key));
  return make_layer_norm(o);
}

}  // namespace

std::unique_ptr<Layer> norm_layer_from_config(const std::string& cls, const Fields& f) {
  if (cls == "LayerNormalization") return layer_norm(f);
  return nullptr;
}

}  // namespace shenjing
