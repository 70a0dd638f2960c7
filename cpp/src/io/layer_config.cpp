// Keras layer configs -> core layers; see layer_config.hpp.
#include "io/layer_config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "io/config_fields.hpp"
#include "io/layer_config_decoder.hpp"
#include "io/layer_config_embedding.hpp"
#include "io/layer_config_wrapper.hpp"
#include "ops/op.hpp"

namespace shenjing {
namespace {

using config::empty_object;
using config::Fields;
using config::kMaxDim;
using config::kMaxRank;
using config::window;
using json::Value;
using Kind = Value::Kind;

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
  const int one = 1;
  if (f.integer("groups", 1, 1, &one) != 1) f.fail("groups", "1", f.get("groups"));
  ConvOptions o;
  config::conv_window_fields(f, rank, o);
  o.padding = f.padding(type, rank == 1);
  config::conv_output_fields(f, o);
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
  const int ones[2] = {1, 1};
  config::borders(f, "padding", rank, ones, o);
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
  if (cls == "Op") layer = op_from_config(f);
  else if (cls == "Dense") layer = dense(f);
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
  else if (cls == "Masking") {
    layer = make_masking((float)f.number("mask_value", 0.0, -3.4e38, 3.4e38));
  } else if (cls == "GlobalAveragePooling1D") {
    f.channels_last();
    layer = make_global_average_1d(f.boolean("keepdims", false));
  }
  else if (cls == "BatchNormalization") layer = batch_norm(f, input);
  else if (cls == "ZeroPadding2D") layer = zero_padding(f, 2);
  else if (cls == "ZeroPadding1D") layer = zero_padding(f, 1);
  else if (cls == "Embedding") layer = embedding_from_config(f);
  else if (cls == "TimeDistributed") layer = time_distributed_from_config(f, input);
  else if ((layer = decoder_layer_from_config(cls, f))) {}
  else if ((layer = merge_layer_from_config(cls, f))) {}
  else if ((layer = recurrent_layer_from_config(cls, f, input))) {}
  else if ((layer = norm_layer_from_config(cls, f))) {}
  else if ((layer = image_layer_from_config(cls, f))) {}
  else if ((layer = extra_layer_from_config(cls, f))) {}
  else
    throw ValueError("Unknown layer type '" + (cls.size() > 64 ? cls.substr(0, 64) + "..." : cls) +
                     "'. Known: Dense, Activation, Dropout, Flatten, Reshape, Conv1D, Conv2D, "
                     "MaxPooling1D/2D, AveragePooling1D/2D, GlobalMaxPooling1D/2D, "
                     "GlobalAveragePooling1D/2D, BatchNormalization, ZeroPadding1D/2D, "
                     "Conv1DTranspose, Conv2DTranspose, UpSampling1D/2D, Cropping1D/2D, "
                     "RepeatVector, Permute, Identity, Add, Subtract, Multiply, Average, Maximum, "
                     "Minimum, Concatenate, Dot, SimpleRNN, LSTM, GRU, LayerNormalization, "
                     "Embedding, Masking, Bidirectional, TimeDistributed, "
                     "CenterCrop, Resizing, RandomFlip, RandomRotation, RandomZoom, "
                     "RandomTranslation, RandomContrast, ReLU, LeakyReLU, PReLU, "
                     "ELU, Softmax, Rescaling, ActivityRegularization, GaussianNoise, "
                     "GaussianDropout, SpatialDropout1D/2D/3D, Normalization, "
                     "DepthwiseConv1D/2D, SeparableConv1D/2D.");
  layer->set_name(name);
  return layer;
}

Value operation_spec(const Value& spec, const std::string& label) {
  const Value* cfg = spec.find("config");
  if (!cfg || cfg->kind != Kind::Object)
    throw ValueError(label + ": an Operation needs a 'config' object.");
  const Value* op = cfg->find("op");
  if (op && op->kind == Kind::String && op->string == "variable")
    throw ValueError(label + ": an Operation cannot be a 'variable' (weights belong to layers).");
  Value out, cls, config;
  out.kind = config.kind = Kind::Object;
  cls.kind = Kind::String;
  cls.string = "Op";
  for (const auto& kv : cfg->object)
    if (kv.first != "output_dtype") config.object.push_back(kv);
  out.object.emplace_back("class_name", std::move(cls));
  out.object.emplace_back("config", std::move(config));
  return out;
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
