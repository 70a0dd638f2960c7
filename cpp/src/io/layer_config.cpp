// Keras layer configs -> core layers; see layer_config.hpp.
#include "io/layer_config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

namespace shenjing {
namespace {

using json::Value;
using Kind = Value::Kind;

constexpr int kMaxDim = 1 << 24;  // any size, count or stride in a config
constexpr int kMaxRank = 8;

const Value& empty_object() {
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
  Activation activation() const {
    const Value* v = get("activation");
    if (!v) return Activation::Linear;
    if (v->kind != Kind::String) fail("activation", "the name of an activation", v);
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
void window(const Fields& f, const std::string& key, int rank, int lo, const int* def,
            int* pair) {
  int v[2];
  f.ints(key, rank, lo, kMaxDim, def, v);
  pair[0] = rank == 2 ? v[0] : 1;
  pair[1] = rank == 2 ? v[1] : v[0];
}

std::unique_ptr<Layer> dense(const Fields& f) {
  DenseOptions o;
  o.units = f.integer("units", 1, kMaxDim);
  o.activation = f.activation();
  o.activation_alpha = activation_default_alpha(o.activation);
  o.use_bias = f.boolean("use_bias", true);
  o.kernel_l1 = o.kernel_l2 = 0.0f;
  f.regularizer("kernel_regularizer", &o.kernel_l1, &o.kernel_l2);
  return make_dense(o);
}

std::unique_ptr<Layer> conv(const Fields& f, int rank, const char* type) {
  f.channels_last();
  const int one = 1, ones[2] = {1, 1};
  if (f.integer("groups", 1, 1, &one) != 1) f.fail("groups", "1", f.get("groups"));
  ConvOptions o;
  o.rank = rank;
  o.filters = f.integer("filters", 1, kMaxDim);
  window(f, "kernel_size", rank, 1, nullptr, o.kernel);
  window(f, "strides", rank, 1, ones, o.strides);
  window(f, "dilation_rate", rank, 1, ones, o.dilation);
  o.padding = f.padding(type, rank == 1);
  o.activation = f.activation();
  o.activation_alpha = activation_default_alpha(o.activation);
  o.use_bias = f.boolean("use_bias", true);
  f.regularizer("kernel_regularizer", &o.kernel_l1, &o.kernel_l2);
  f.regularizer("bias_regularizer", &o.bias_l1, &o.bias_l2);
  return make_conv(o);
}

std::unique_ptr<Layer> pool(const Fields& f, int rank, bool max, const char* type) {
  f.channels_last();
  PoolOptions o;
  o.rank = rank;
  o.max = max;
  const int twos[2] = {2, 2};
  window(f, "pool_size", rank, 1, twos, o.pool);
  const int given[2] = {rank == 2 ? o.pool[0] : o.pool[1], o.pool[1]};
  window(f, "strides", rank, 1, given, o.strides);  // null strides = pool_size
  o.padding = f.padding(type, false);
  return make_pool(o);
}

std::unique_ptr<Layer> global_pool(const Fields& f, int rank, bool max) {
  f.channels_last();
  PoolOptions o;
  o.rank = rank;
  o.max = max;
  o.global = true;
  o.keepdims = f.boolean("keepdims", false);
  return make_pool(o);
}

std::unique_ptr<Layer> batch_norm(const Fields& f, const Shape& input) {
  // Keras counts the batch axis: the last axis is -1 or the per-sample rank.
  const int last = -1, rank = (int)input.size();
  const int axis = f.integer("axis", -1 - kMaxRank, kMaxRank, &last);
  if (axis != -1 && axis != rank)
    throw ValueError("Layer '" + f.name() + "' (BatchNormalization): only the last axis can be "
                     "normalized (axis=-1 or " + std::to_string(rank) + " for this input of "
                     "rank " + std::to_string(rank + 1) + "), received axis=" +
                     std::to_string(axis) + ".");
  BatchNormOptions o;
  o.momentum = (float)f.number("momentum", 0.99, 0.0, 1.0);
  o.epsilon = (float)f.number("epsilon", 1e-3, 1e-30, 1e30);
  if (!(o.epsilon > 0.0f)) f.fail("epsilon", "a positive number", f.get("epsilon"));
  o.center = f.boolean("center", true);
  o.scale = f.boolean("scale", true);
  return make_batch_norm(o);
}

std::unique_ptr<Layer> zero_padding(const Fields& f, int rank) {
  ZeroPaddingOptions o;
  o.rank = rank;
  const Value* v = f.get("padding");
  int p[4] = {1, 1, 1, 1};  // top, bottom, left, right
  if (rank == 1) {
    f.ints("padding", 2, 0, kMaxDim, p, p + 2);
  } else if (v && v->kind == Kind::Array && v->array.size() == 2 &&
             v->array[0].kind == Kind::Array) {
    // ((top, bottom), (left, right))
    for (int axis = 0; axis < 2; ++axis) {
      const Value& pr = v->array[axis];
      if (pr.kind != Kind::Array || pr.array.size() != 2)
        f.fail("padding", "an integer, (rows, cols) or ((top, bottom), (left, right))", v);
      for (int k = 0; k < 2; ++k) p[2 * axis + k] = f.integer_value("padding", pr.array[k], 0, kMaxDim);
    }
  } else {
    int rc[2];
    f.ints("padding", 2, 0, kMaxDim, p, rc);
    p[0] = p[1] = rc[0];
    p[2] = p[3] = rc[1];
  }
  o.top = p[0];
  o.bottom = p[1];
  o.left = p[2];
  o.right = p[3];
  return make_zero_padding(o);
}

std::unique_ptr<Layer> reshape(const Fields& f) {
  const Value* t = f.get("target_shape");
  if (!t || t->kind != Kind::Array || t->array.empty() || (int)t->array.size() > kMaxRank)
    f.fail("target_shape", "a list of 1 to 8 integers", t);
  Shape target;
  for (const Value& d : t->array) {
    const int v = f.integer_value("target_shape", d, -1, kMaxDim);
    if (v == 0) f.fail("target_shape", "positive integers (or one -1)", &d);
    target.push_back(v);
  }
  return make_reshape(target, "Reshape");
}

}  // namespace

std::unique_ptr<Layer> layer_from_config(const Value& spec, const Shape& input) {
  const Value* cls_v = spec.find("class_name");
  if (spec.kind != Kind::Object || !cls_v || cls_v->kind != Kind::String)
    throw ValueError("A layer entry must be an object with a string 'class_name'.");
  const std::string& cls = cls_v->string;
  const Value* cfg = spec.find("config");
  if (cfg && cfg->kind != Kind::Object)
    throw ValueError("Layer (" + cls + "): 'config' must be an object.");
  if (!cfg) cfg = &empty_object();
  std::string name = cls;
  if (const Value* n = cfg->find("name")) {
    if (n->kind != Kind::String || n->string.empty() || n->string.size() > 256)
      throw ValueError("Layer (" + cls + "): 'name' must be a string of 1 to 256 characters.");
    name = n->string;
  }
  const Fields f(*cfg, name, cls);

  std::unique_ptr<Layer> layer;
  if (cls == "Dense") layer = dense(f);
  else if (cls == "Activation") {
    const Activation a = f.activation();
    layer = make_activation(a, activation_default_alpha(a));
  } else if (cls == "Dropout") {
    if (f.get("noise_shape")) f.fail("noise_shape", "null", f.get("noise_shape"));
    const float rate = (float)f.number("rate", -1.0, 0.0, 0.999999);
    if (!f.get("rate")) f.fail("rate", "a number in [0, 1)", nullptr);
    const Value* s = f.get("seed");
    double seed = 0;
    if (s) {
      if (s->kind != Kind::Number || s->number < 0 || s->number > 9007199254740992.0 ||
          s->number != std::floor(s->number))
        f.fail("seed", "null or a non-negative integer below 2^53", s);
      seed = s->number;
    }
    layer = make_dropout(rate, (unsigned long long)seed);
  } else if (cls == "Flatten") {
    f.channels_last();
    layer = make_reshape({-1}, "Flatten");
  } else if (cls == "Reshape") layer = reshape(f);
  else if (cls == "Conv2D") layer = conv(f, 2, "Conv2D");
  else if (cls == "Conv1D") layer = conv(f, 1, "Conv1D");
  else if (cls == "MaxPooling2D") layer = pool(f, 2, true, "MaxPooling2D");
  else if (cls == "MaxPooling1D") layer = pool(f, 1, true, "MaxPooling1D");
  else if (cls == "AveragePooling2D") layer = pool(f, 2, false, "AveragePooling2D");
  else if (cls == "AveragePooling1D") layer = pool(f, 1, false, "AveragePooling1D");
  else if (cls == "GlobalMaxPooling2D") layer = global_pool(f, 2, true);
  else if (cls == "GlobalMaxPooling1D") layer = global_pool(f, 1, true);
  else if (cls == "GlobalAveragePooling2D") layer = global_pool(f, 2, false);
  else if (cls == "GlobalAveragePooling1D") layer = global_pool(f, 1, false);
  else if (cls == "BatchNormalization") layer = batch_norm(f, input);
  else if (cls == "ZeroPadding2D") layer = zero_padding(f, 2);
  else if (cls == "ZeroPadding1D") layer = zero_padding(f, 1);
  else
    throw ValueError("Unknown layer type '" + (cls.size() > 64 ? cls.substr(0, 64) + "..." : cls) +
                     "'. Known: Dense, Activation, Dropout, Flatten, Reshape, Conv1D, Conv2D, "
                     "MaxPooling1D/2D, AveragePooling1D/2D, GlobalMaxPooling1D/2D, "
                     "GlobalAveragePooling1D/2D, BatchNormalization, ZeroPadding1D/2D.");
  layer->set_name(name);
  return layer;
}

Shape input_shape_from_config(const Value& spec) {
  const Value* cfg = spec.find("config");
  const Value* bs = cfg ? cfg->find("batch_shape") : nullptr;
  if (!bs && cfg) bs = cfg->find("batch_input_shape");
  if (!bs || bs->kind != Kind::Array || bs->array.size() < 2 ||
      (int)bs->array.size() > kMaxRank + 1)
    throw ValueError("InputLayer: 'batch_shape' must be a list [null, d1, ..., dk] with 1 to 8 "
                     "dimensions.");
  const Fields f(*cfg, "InputLayer");
  Shape s;
  for (size_t i = 1; i < bs->array.size(); ++i)
    s.push_back(f.integer_value("batch_shape", bs->array[i], 1, kMaxDim));
  return s;
}

}  // namespace shenjing
