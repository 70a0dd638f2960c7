// Keras configs of the layers in layers_extra.hpp (activation layers with arguments,
// Rescaling, ActivityRegularization, the noise layers, Normalization, depthwise and separable
// convolutions) -> core layers. Every field is checked here (type and range), so a hostile
// file gives a ValueError naming the layer and the field; what depends on the input shape is
// checked when the layer is built.
#include <cmath>
#include <string>
#include <vector>

#include "io/config_fields.hpp"
#include "io/layer_config.hpp"
#include "shenjing/layers_extra.hpp"

namespace shenjing {
namespace {

using config::Fields;
using config::kMaxDim;
using config::kMaxRank;
using json::Value;
using Kind = Value::Kind;

constexpr double kBig = 3.4e38;  // finite float32

std::string dims_str(const Shape& s) {  // a value's shape (no batch axis)
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// A number, a nested list of numbers (rectangular, at most 8 deep, 2^24 values) or Keras's
// serialized NumPy array {"class_name": "__numpy__", "config": {"value": ...}}.
void array_value(const Fields& f, const std::string& key, const Value& v0,
                 std::vector<float>& out, Shape& shape) {
  const Value* v = &v0;
  const char* want = "a number, a nested list of numbers or a serialized NumPy array";
  if (v->kind == Kind::Object) {
    const Value* cls = v->find("class_name");
    const Value* cfg = v->find("config");
    const Value* val = cfg && cfg->kind == Kind::Object ? cfg->find("value") : nullptr;
    if (!cls || cls->kind != Kind::String || cls->string != "__numpy__" || !val)
      f.fail(key, want, v);
    v = val;
  }
  out.clear();
  shape.clear();
  // The shape from the first element at each depth; every list is then checked against it.
  for (const Value* p = v; p->kind == Kind::Array; p = &p->array[0]) {
    if (p->array.empty() || (int)shape.size() >= kMaxRank) f.fail(key, want, v);
    shape.push_back((int)std::min<size_t>(p->array.size(), kMaxDim));
  }
  if (shape_size(shape) > kMaxDim) f.fail(key, want + std::string(" of at most 2^24 values"), v);
  struct Walk {
    const Fields& f;
    const std::string& key;
    const Shape& shape;
    std::vector<float>& out;
    const Value* whole;
    void go(const Value& x, size_t depth) {
      if (depth == shape.size()) {
        if (x.kind != Kind::Number || !(std::fabs(x.number) <= kBig))
          f.fail(key, "finite numbers", whole);
        out.push_back((float)x.number);
        return;
      }
      if (x.kind != Kind::Array || (int)x.array.size() != shape[depth])
        f.fail(key, "a rectangular nested list", whole);
      for (const Value& e : x.array) go(e, depth + 1);
    }
  } walk{f, key, shape, out, v};
  walk.go(*v, 0);
}

std::unique_ptr<Layer> pointwise(const Fields& f, PointwiseKind kind) {
  PointwiseOptions o;
  o.kind = kind;
  if (kind == PointwiseKind::ReLU) {
    o.has_max = f.get("max_value") != nullptr;
    o.max_value = (float)f.number("max_value", 0.0, 0.0, kBig);
    o.slope = (float)f.number("negative_slope", 0.0, 0.0, kBig);
    o.threshold = (float)f.number("threshold", 0.0, 0.0, kBig);
  } else if (kind == PointwiseKind::LeakyReLU) {
    // Keras 2 files call it alpha.
    const char* key = f.get("negative_slope") || !f.get("alpha") ? "negative_slope" : "alpha";
    o.slope = (float)f.number(key, 0.3, 0.0, kBig);
  } else {
    o.alpha = (float)f.number("alpha", 1.0, -kBig, kBig);
  }
  return make_pointwise(o);
}

std::unique_ptr<Layer> prelu(const Fields& f) {
  PReLUOptions o;
  f.regularizer("alpha_regularizer", &o.l1, &o.l2);
  if (f.get("alpha_constraint"))
    f.fail("alpha_constraint", "null (constraints are not supported)", f.get("alpha_constraint"));
  if (const Value* v = f.get("shared_axes")) {
    if (v->kind == Kind::Number) {
      o.shared_axes.push_back(f.integer_value("shared_axes", *v, 1, kMaxRank));
    } else if (v->kind == Kind::Array && (int)v->array.size() <= kMaxRank) {
      for (const Value& a : v->array)
        o.shared_axes.push_back(f.integer_value("shared_axes", a, 1, kMaxRank));
    } else {
      f.fail("shared_axes", "null, an integer or a list of integers", v);
    }
  }
  return make_prelu(o);
}

// An int or a list of ints (Keras's axis, counting the batch axis); -1 when absent or null.
std::vector<int> axis_list(const Fields& f, const char* key) {
  const Value* v = f.get(key);
  const int lo = -(kMaxRank + 1), hi = kMaxRank;
  if (!v) return {-1};
  if (v->kind == Kind::Number) return {f.integer_value(key, *v, lo, hi)};
  if (v->kind != Kind::Array || (int)v->array.size() > kMaxRank + 1)
    f.fail(key, "an integer or a list of at most 9 integers", v);
  std::vector<int> axes;
  for (const Value& a : v->array) axes.push_back(f.integer_value(key, a, lo, hi));
  return axes;
}

std::unique_ptr<Layer> softmax(const Fields& f) {
  std::vector<int> axes = axis_list(f, "axis");
  if (axes.empty()) f.fail("axis", "an integer or a non-empty list of integers", f.get("axis"));
  return make_softmax(axes);
}

std::unique_ptr<Layer> rescaling(const Fields& f) {
  RescalingOptions o;
  const Value* s = f.get("scale");
  if (!s) f.fail("scale", "a number or an array", nullptr);
  array_value(f, "scale", *s, o.scale, o.scale_shape);
  if (const Value* off = f.get("offset")) array_value(f, "offset", *off, o.offset, o.offset_shape);
  return make_rescaling(o);
}

unsigned long long seed_field(const Fields& f) {
  const Value* s = f.get("seed");
  if (!s) return 0;
  if (s->kind != Kind::Number || s->number < 0 || s->number > 9007199254740992.0 ||
      s->number != std::floor(s->number))
    f.fail("seed", "null or a non-negative integer below 2^53", s);
  return (unsigned long long)s->number;
}

std::unique_ptr<Layer> noise(const Fields& f, NoiseKind kind, int rank, const char* type) {
  NoiseOptions o;
  o.kind = kind;
  const char* key = kind == NoiseKind::GaussianNoise ? "stddev" : "rate";
  if (!f.get(key)) f.fail(key, "a number", nullptr);
  o.amount = kind == NoiseKind::GaussianNoise ? (float)f.number(key, 0.0, 0.0, 1.0)
                                              : (float)f.number(key, 0.0, 0.0, 0.999999);
  o.seed = seed_field(f);
  if (kind == NoiseKind::SpatialDropout) {
    o.spatial_rank = rank;
    if (rank > 1) {
      const std::string df = f.string("data_format", "channels_last");
      if (df != "channels_last" && df != "channels_first")
        f.fail("data_format", "'channels_last' or 'channels_first'", f.get("data_format"));
      o.channels_first = df == "channels_first";
    }
  }
  return make_noise(o, type);
}

std::unique_ptr<Layer> normalization(const Fields& f) {
  NormalizationOptions o;
  // null: one statistic over everything (Keras's axis=None).
  o.axes = f.is_null("axis") ? std::vector<int>{} : axis_list(f, "axis");
  o.invert = f.boolean("invert", false);
  const Value* m = f.get("mean");
  const Value* v = f.get("variance");
  if ((m == nullptr) != (v == nullptr))
    f.fail(m ? "variance" : "mean", "given together with the other (both or neither)",
           m ? v : m);
  if (m) {
    o.given = true;
    Shape vs;
    array_value(f, "mean", *m, o.mean, o.stats_shape);
    array_value(f, "variance", *v, o.variance, vs);
    if (vs != o.stats_shape)
      f.fail("variance", "of the same shape as mean " + dims_str(o.stats_shape), v);
    for (float x : o.variance)
      if (x < 0.0f) f.fail("variance", "non-negative numbers", v);
    if (o.stats_shape.size() > o.axes.size())
      f.fail("mean", "of rank at most the number of axes (" + std::to_string(o.axes.size()) +
             ")", m);
  }
  return make_normalization(o);
}

}  // namespace

std::unique_ptr<Layer> depthwise_from_config(const Fields& f, int rank, bool separable,
                                             const char* type) {
  f.channels_last();
  DepthwiseOptions o;
  o.rank = rank;
  o.separable = separable;
  const int ones[2] = {1, 1};
  if (separable) o.filters = f.integer("filters", 1, kMaxDim);
  config::window(f, "kernel_size", rank, 1, nullptr, o.kernel);
  config::window(f, "strides", rank, 1, ones, o.strides);
  config::window(f, "dilation_rate", rank, 1, ones, o.dilation);
  const int one = 1;
  o.multiplier = f.integer("depth_multiplier", 1, kMaxDim, &one);
  o.padding = f.padding(type, false);
  o.activation = f.activation();
  o.activation_alpha = activation_default_alpha(o.activation);
  o.use_bias = f.boolean("use_bias", true);
  f.regularizer("depthwise_regularizer", &o.depthwise_l1, &o.depthwise_l2);
  if (separable) f.regularizer("pointwise_regularizer", &o.pointwise_l1, &o.pointwise_l2);
  f.regularizer("bias_regularizer", &o.bias_l1, &o.bias_l2);
  // A constraint would change the weights after every update; an activity regularizer would
  // add to the loss: neither is implemented, so neither is silently ignored.
  for (const char* key : {"depthwise_constraint", "pointwise_constraint", "bias_constraint",
                          "activity_regularizer", "kernel_constraint"})
    if (f.get(key)) f.fail(key, "null (not supported)", f.get(key));
  return make_depthwise(o);
}

std::unique_ptr<Layer> extra_layer_from_config(const std::string& cls, const Fields& f) {
  if (cls == "ReLU") return pointwise(f, PointwiseKind::ReLU);
  if (cls == "LeakyReLU") return pointwise(f, PointwiseKind::LeakyReLU);
  if (cls == "ELU") return pointwise(f, PointwiseKind::ELU);
  if (cls == "PReLU") return prelu(f);
  if (cls == "Softmax") return softmax(f);
  if (cls == "Rescaling") return rescaling(f);
  if (cls == "ActivityRegularization")
    return make_activity_regularization((float)f.number("l1", 0.0, 0.0, 1e30),
                                        (float)f.number("l2", 0.0, 0.0, 1e30));
  if (cls == "GaussianNoise") return noise(f, NoiseKind::GaussianNoise, 0, "GaussianNoise");
  if (cls == "GaussianDropout") return noise(f, NoiseKind::GaussianDropout, 0, "GaussianDropout");
  if (cls == "SpatialDropout1D") return noise(f, NoiseKind::SpatialDropout, 1, "SpatialDropout1D");
  if (cls == "SpatialDropout2D") return noise(f, NoiseKind::SpatialDropout, 2, "SpatialDropout2D");
  if (cls == "SpatialDropout3D") return noise(f, NoiseKind::SpatialDropout, 3, "SpatialDropout3D");
  if (cls == "Normalization") return normalization(f);
  if (cls == "DepthwiseConv2D") return depthwise_from_config(f, 2, false, "DepthwiseConv2D");
  if (cls == "DepthwiseConv1D") return depthwise_from_config(f, 1, false, "DepthwiseConv1D");
  if (cls == "SeparableConv2D") return depthwise_from_config(f, 2, true, "SeparableConv2D");
  if (cls == "SeparableConv1D") return depthwise_from_config(f, 1, true, "SeparableConv1D");
  return nullptr;
}

}  // namespace shenjing
