// Reading the fields of one Keras layer config with checks: every error names the layer and
// the field. Shared by the files that turn configs into core layers (layer_config*.cpp).
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "io/json.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {
namespace config {

using json::Value;
using Kind = Value::Kind;

inline constexpr int kMaxDim = 1 << 24;  // any size, count or stride in a config
inline constexpr int kMaxRank = 8;

inline const Value& empty_object() {
  static const Value v = [] {
    Value o;
    o.kind = Kind::Object;
    return o;
  }();
  return v;
}

// Reads the fields of one layer's config; every error names the layer and the field.
class Fields {
 public:
  Fields(const Value& cfg, std::string name, const std::string& cls)
      : cfg_(cfg), name_(std::move(name)), label_("Layer '" + name_ + "' (" + cls + ")") {}
  Fields(const Value& cfg, std::string label) : cfg_(cfg), label_(std::move(label)) {}
  const std::string& name() const { return name_; }

  [[noreturn]] void fail(const std::string& key, const std::string& want,
                         const Value* got) const {
    throw ValueError(label_ + ": '" + key + "' must be " + want +
                     (got ? ", received " + json::describe(*got) : std::string(", but it is missing")) +
                     ".");
  }
  // Whether the field is present as JSON null (for fields where null means something).
  bool is_null(const std::string& key) const {
    const Value* v = cfg_.find(key);
    return v && v->kind == Kind::Null;
  }
  // The field, or null when it is absent or JSON null (then the Keras default applies).
  const Value* get(const std::string& key) const {
    const Value* v = cfg_.find(key);
    return v && v->kind != Kind::Null ? v : nullptr;
  }
  int integer_value(const std::string& key, const Value& v, int lo, int hi) const {
    if (v.kind != Kind::Number || v.number != std::floor(v.number) || v.number < lo ||
        v.number > hi)
      fail(key, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", &v);
    return (int)v.number;
  }
  int integer(const std::string& key, int lo, int hi, const int* def = nullptr) const {
    const Value* v = get(key);
    if (!v) {
      if (def) return *def;
      fail(key, "an integer", nullptr);
    }
    return integer_value(key, *v, lo, hi);
  }
  double number(const std::string& key, double def, double lo, double hi) const {
    const Value* v = get(key);
    if (!v) return def;
    if (v->kind != Kind::Number || !(v->number >= lo && v->number <= hi))
      fail(key, "a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", v);
    return v->number;
  }
  bool boolean(const std::string& key, bool def) const {
    const Value* v = get(key);
    if (!v) return def;
    if (v->kind != Kind::Bool) fail(key, "true or false", v);
    return v->boolean;
  }
  std::string string(const std::string& key, const std::string& def) const {
    const Value* v = get(key);
    if (!v) return def;
    if (v->kind != Kind::String) fail(key, "a string", v);
    return v->string;
  }
  // An int (repeated) or a list of n ints, each in [lo, hi]; `def` when absent.
  void ints(const std::string& key, int n, int lo, int hi, const int* def, int* out) const {
    const Value* v = get(key);
    if (!v) {
      if (!def) fail(key, "an integer or a list of " + std::to_string(n) + " integers", nullptr);
      std::copy(def, def + n, out);
    } else if (v->kind == Kind::Number) {
      std::fill(out, out + n, integer_value(key, *v, lo, hi));
    } else if (v->kind == Kind::Array && (int)v->array.size() == n) {
      for (int i = 0; i < n; ++i) out[i] = integer_value(key, v->array[i], lo, hi);
    } else {
      fail(key, "an integer or a list of " + std::to_string(n) + " integers", v);
    }
  }
  Activation activation(const std::string& key = "activation",
                        Activation def = Activation::Linear) const {
    const Value* v = get(key);
    if (!v) return def;
    if (v->kind != Kind::String) fail(key, "the name of an activation", v);
    try {
      return activation_from_name(v->string);
    } catch (const ValueError& e) {
      throw ValueError(label_ + ": " + e.what());
    }
  }
  // Keras regularizer: null, "l1"/"l2"/"l1_l2", or {"class_name": "L2", "config": {...}}.
  void regularizer(const std::string& key, float* l1, float* l2) const {
    *l1 = *l2 = 0.0f;
    const Value* v = get(key);
    if (!v) return;
    std::string cls;
    const Value* conf = nullptr;
    if (v->kind == Kind::String) {
      cls = v->string;
    } else if (v->kind == Kind::Object && v->find("class_name") &&
               v->find("class_name")->kind == Kind::String) {
      cls = v->find("class_name")->string;
      conf = v->find("config");
      if (conf && conf->kind != Kind::Object) fail(key + ".config", "an object", conf);
    } else {
      fail(key, "null, a regularizer name or a regularizer config", v);
    }
    std::transform(cls.begin(), cls.end(), cls.begin(), ::tolower);
    const bool has1 = cls == "l1" || cls == "l1l2" || cls == "l1_l2";
    const bool has2 = cls == "l2" || cls == "l1l2" || cls == "l1_l2";
    if (!has1 && !has2) fail(key, "one of L1, L2, L1L2", v);
    const double def = cls == "l1l2" && conf ? 0.0 : 0.01;  // Keras's defaults
    const Fields f(conf ? *conf : empty_object(), label_ + " " + key);
    if (has1) *l1 = (float)f.number("l1", def, 0.0, 1e30);
    if (has2) *l2 = (float)f.number("l2", def, 0.0, 1e30);
  }
  Padding padding(const char* type, bool allow_causal) const {
    try {
      return padding_from_name(string("padding", "valid"), type, allow_causal);
    } catch (const ValueError& e) {
      throw ValueError(label_ + ": " + e.what());
    }
  }
  void channels_last() const {
    const std::string f = string("data_format", "channels_last");
    if (f != "channels_last") fail("data_format", "'channels_last'", get("data_format"));
  }

 private:
  const Value& cfg_;
  std::string name_, label_;
};

// A kernel/pool size pair (row, col): Keras lists (k,) for rank 1; the row is then 1.
inline void window(const Fields& f, const std::string& key, int rank, int lo, const int* def,
            int* pair) {
  int v[2];
  f.ints(key, rank, lo, kMaxDim, def, v);
  pair[0] = rank == 2 ? v[0] : 1;
  pair[1] = rank == 2 ? v[1] : v[0];
}

// The first fields of Conv and ConvTranspose: filters, kernel_size, strides, dilation_rate.
template <class ConvOpts>
void conv_window_fields(const Fields& f, int rank, ConvOpts& o) {
  const int ones[2] = {1, 1};
  o.rank = rank;
  o.filters = f.integer("filters", 1, kMaxDim);
  window(f, "kernel_size", rank, 1, nullptr, o.kernel);
  window(f, "strides", rank, 1, ones, o.strides);
  window(f, "dilation_rate", rank, 1, ones, o.dilation);
}

// Their last fields: activation, use_bias and the regularizers. Apart, so that each layer
// reads its own fields in between in the order it always has (the first bad one is reported).
template <class ConvOpts>
void conv_output_fields(const Fields& f, ConvOpts& o) {
  o.activation = f.activation();
  o.activation_alpha = activation_default_alpha(o.activation);
  o.use_bias = f.boolean("use_bias", true);
  f.regularizer("kernel_regularizer", &o.kernel_l1, &o.kernel_l2);
  f.regularizer("bias_regularizer", &o.bias_l1, &o.bias_l2);
}

// The borders of ZeroPadding / Cropping (`key` "padding" or "cropping") into o.top, o.bottom,
// o.left, o.right: for rank 1 an int or (left, right); for rank 2 an int or (rows, cols), both
// symmetric, or ((top, bottom), (left, right)). `def`: the pair when the field is absent.
template <class BorderOpts>
void borders(const Fields& f, const std::string& key, int rank, const int* def, BorderOpts& o) {
  int p[4] = {0, 0, 0, 0};  // top, bottom, left, right
  const Value* v = f.get(key);
  if (rank == 1) {
    f.ints(key, 2, 0, kMaxDim, def, p + 2);
  } else if (v && v->kind == Kind::Array && v->array.size() == 2 &&
             v->array[0].kind == Kind::Array) {
    for (int axis = 0; axis < 2; ++axis) {
      const Value& pr = v->array[axis];
      if (pr.kind != Kind::Array || pr.array.size() != 2)
        f.fail(key, "an integer, (rows, cols) or ((top, bottom), (left, right))", v);
      for (int k = 0; k < 2; ++k) p[2 * axis + k] = f.integer_value(key, pr.array[k], 0, kMaxDim);
    }
  } else {
    int rc[2];
    f.ints(key, 2, 0, kMaxDim, def, rc);
    p[0] = p[1] = rc[0];
    p[2] = p[3] = rc[1];
  }
  o.top = p[0];
  o.bottom = p[1];
  o.left = p[2];
  o.right = p[3];
}

}  // namespace config
}  // namespace shenjing
