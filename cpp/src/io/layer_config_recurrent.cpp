// Keras configs of SimpleRNN, LSTM and GRU -> core layers. Every field is checked here; what
// the core does not implement yet is refused by name rather than ignored.
#include <cmath>
#include <string>
#include <utility>

#include "io/config_fields.hpp"
#include "io/layer_config.hpp"

namespace shenjing {

namespace {

// Bidirectional: {"merge_mode", "layer": <recurrent layer>, "backward_layer": <the same with
// go_backwards>}; Keras writes both, and without "backward_layer" builds it from "layer".
std::unique_ptr<Layer> bidirectional(const config::Fields& f, const Shape& input) {
  if (f.is_null("merge_mode"))  // Keras: the two outputs unmerged, a list
    throw ValueError("Layer '" + f.name() + "' (Bidirectional): merge_mode=None (two outputs) "
                     "is not supported; use 'concat', 'sum', 'mul' or 'ave'.");
  const std::string mode_name = f.string("merge_mode", "concat");
  BidiMerge mode = BidiMerge::Concat;
  if (mode_name == "concat") mode = BidiMerge::Concat;
  else if (mode_name == "sum") mode = BidiMerge::Sum;
  else if (mode_name == "mul") mode = BidiMerge::Mul;
  else if (mode_name == "ave") mode = BidiMerge::Ave;
  else f.fail("merge_mode", "'concat', 'sum', 'mul' or 'ave'", f.get("merge_mode"));
  const json::Value* layer = f.get("layer");
  if (!layer || layer->kind != json::Value::Kind::Object)
    f.fail("layer", "the config of a recurrent layer", layer);
  json::Value backward;
  if (const json::Value* b = f.get("backward_layer")) {
    backward = *b;
  } else {  // Keras: the layer's config with go_backwards=True and a "backward_" name
    backward = *layer;
    for (auto& kv : backward.object)
      if (kv.first == "config" && kv.second.kind == json::Value::Kind::Object) {
        json::Value t;
        t.kind = json::Value::Kind::Bool;
        t.boolean = true;
        bool set = false;
        for (auto& c : kv.second.object)
          if (c.first == "go_backwards") c.second = t, set = true;
        if (!set) kv.second.object.emplace_back("go_backwards", t);
      }
  }
  try {
    return make_bidirectional(layer_from_config(*layer, input),
                              layer_from_config(backward, input), mode);
  } catch (const ValueError& e) {
    throw ValueError("Layer '" + f.name() + "' (Bidirectional): " + e.what());
  }
}

// The dropout masks' seed: null (0, as Dropout's) or any integer of 64 bits, negative ones
// as their two's complement (Keras takes negative seeds; Python sends seeds below 2^53).
unsigned long long seed(const config::Fields& f) {
  const json::Value* s = f.get("seed");
  if (!s) return 0;
  const double v = s->kind == json::Value::Kind::Number ? s->number : 0.5;
  if (!(v >= -9223372036854775808.0 && v < 18446744073709551616.0) || v != std::floor(v))
    f.fail("seed", "null or an integer of at most 64 bits", s);
  return v < 0 ? (unsigned long long)(long long)v : (unsigned long long)v;
}

}  // namespace

std::unique_ptr<Layer> recurrent_layer_from_config(const std::string& cls,
                                                   const config::Fields& f,
                                                   const Shape& input) {
  if (cls == "Bidirectional") return bidirectional(f, input);
  RecurrentOptions o;
  if (cls == "LSTM") o.cell = RecurrentCell::LSTM;
  else if (cls == "GRU") o.cell = RecurrentCell::GRU;
  else if (cls == "SimpleRNN") o.cell = RecurrentCell::SimpleRNN;
  else return nullptr;
  o.units = f.integer("units", 1, config::kMaxDim);
  o.activation = f.activation("activation", Activation::Tanh);
  if (o.cell != RecurrentCell::SimpleRNN)
    o.recurrent_activation = f.activation("recurrent_activation", Activation::Sigmoid);
  o.use_bias = f.boolean("use_bias", true);
  if (o.cell == RecurrentCell::GRU) o.reset_after = f.boolean("reset_after", true);
  o.return_sequences = f.boolean("return_sequences", false);
  o.go_backwards = f.boolean("go_backwards", false);
  o.zero_output_for_mask = f.boolean("zero_output_for_mask", false);
  o.return_state = f.boolean("return_state", false);
  o.initial_state = f.boolean("initial_state", false);  // shenjing's: the call's states
  o.stateful = f.boolean("stateful", false);
  f.boolean("unroll", false);  // unrolling is a graph-compiler hint: same result either way
  f.boolean("unit_forget_bias", true);  // an initializer choice, made in Python
  // Keras clips the rates into [0, 1]; at 1 its cells disagree (SimpleRNN zeroes the values,
  // LSTM and GRU skip dropout on one path and zero the inputs on the other), so 1 is refused.
  for (auto [key, rate] : {std::pair<const char*, float*>{"dropout", &o.dropout},
                           {"recurrent_dropout", &o.recurrent_dropout}}) {
    *rate = (float)f.number(key, 0.0, 0.0, 1.0);  // as float: 1 - 1e-9 rounds to 1
    if (*rate >= 1.0f)
      f.fail(key, "a number in [0, 1) (a rate of 1 would drop everything)", f.get(key));
  }
  o.seed = seed(f);
  for (const char* key : {"activity_regularizer", "kernel_constraint", "recurrent_constraint",
                          "bias_constraint"})
    if (f.get(key)) f.fail(key, "null (not supported)", f.get(key));
  f.regularizer("kernel_regularizer", &o.kernel_l1, &o.kernel_l2);
  f.regularizer("recurrent_regularizer", &o.recurrent_l1, &o.recurrent_l2);
  f.regularizer("bias_regularizer", &o.bias_l1, &o.bias_l2);
  try {
    return make_recurrent(o);
  } catch (const ValueError& e) {  // an activation the cells do not have
    throw ValueError("Layer '" + f.name() + "' (" + cls + "): " + e.what());
  }
}

}  // namespace shenjing
