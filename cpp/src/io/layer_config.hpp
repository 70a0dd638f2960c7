// Layers from their Keras configs: {"class_name": "Dense", "config": {"units": 10, ...}}.
// One mapping for both directions into the core: Python builds its models through it, and
// Model::load rebuilds saved ones with it, so both read a config the same way.
#pragma once
#include <memory>
#include <string>

#include "io/json.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {

// The layer described by `spec`, named after config.name, to be added on a per-sample
// `input` shape. Every field is checked (type and range), so a hostile config gives
// ValueError, never a crash. Keras fields that do not change the computation (initializers,
// dtype, trainable) are ignored.
std::unique_ptr<Layer> layer_from_config(const json::Value& spec, const Shape& input);

namespace config {
class Fields;
}
// The merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) from
// their config fields (layer_config_merge.cpp); nullptr when `cls` is none of them.
std::unique_ptr<Layer> merge_layer_from_config(const std::string& cls, const config::Fields& f);
// LayerNormalization from its config fields (layer_config_norm.cpp); nullptr for other classes.
std::unique_ptr<Layer> norm_layer_from_config(const std::string& cls, const config::Fields& f);
// The image preprocessing layers (layer_config_image.cpp); nullptr for other classes.
std::unique_ptr<Layer> image_layer_from_config(const std::string& cls, const config::Fields& f);

// The layers of layers_extra.hpp (layer_config_extra.cpp); nullptr for other classes.
std::unique_ptr<Layer> extra_layer_from_config(const std::string& cls, const config::Fields& f);
// DepthwiseConv1D/2D (separable false) and SeparableConv1D/2D (layer_config_extra.cpp).
std::unique_ptr<Layer> depthwise_from_config(const config::Fields& f, int rank, bool separable,
                                             const char* type);

// The core spec of a functional config's "Operation" entry (a primitive op, module
// shenjing.ops): {"class_name": "Op", "config": its config without "output_dtype"}, the Python
// tensor's dtype (the core computes in float32), dropped so that no op decoder has to know the
// key. `variable` is refused, as Python's Operation.from_config refuses it: weights live in
// custom layers, whose files carry a core_graph. `label` names the entry in errors.
json::Value operation_spec(const json::Value& spec, const std::string& label);

// Per-sample input shape from an InputLayer config ("batch_shape": [null, 28, 28, 1], or
// Keras 2's "batch_input_shape").
Shape input_shape_from_config(const json::Value& spec);

}  // namespace shenjing
