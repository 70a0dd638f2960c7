// Shape helpers and activation names shared by every layer.
#include <climits>
#include <cstring>
#include <string>

#include "shenjing/activations.hpp"
#include "shenjing/errors.hpp"
#include "shenjing/layers.hpp"

namespace shenjing {

// std::to_string, not an ostringstream: iostreams and their locale facets crash or drop the
// numbers when libstdc++ is linked statically into the module and another extension brings
// its own (onnx, seen with GCC 12 and 13), and this runs for every error message.
std::string shape_str(const Shape& s) {
  std::string out = "(None";
  for (int d : s) out += ", " + std::to_string(d);
  return out + ")";
}

// The product saturates at LLONG_MAX in magnitude: shapes come from configs (Python arguments,
// saved files), and 8 dims of up to 2^31 overflow 64 bits.
long long shape_size(const Shape& s) {
  long long n = 1;
  bool negative = false;
  for (int d : s) {
    if (d == 0) return 0;
    if (d < 0) negative = !negative;
    const long long a = d < 0 ? -(long long)d : d;
    n = n > LLONG_MAX / a ? LLONG_MAX : n * a;
  }
  return negative ? -n : n;
}

void Layer::build_inputs(const std::vector<Shape>& inputs) {
  if (inputs.size() != 1)
    throw ValueError("Layer '" + name_ + "' (" + type() + ") takes one input, received " +
                     std::to_string(inputs.size()) + ".");
  build(inputs[0]);
  ins_ = inputs;
}

namespace {
const char* const kActivationNames[] = {"linear", "relu", "sigmoid", "tanh", "softmax",
                                        "leaky_relu", "elu", "gelu", "softplus", "swish"};
}

Activation activation_from_name(const std::string& name) {
  if (name.empty() || name == "None") return Activation::Linear;
  if (name == "silu") return Activation::Swish;
  for (int i = 0; i < 10; ++i)
    if (name == kActivationNames[i]) return static_cast<Activation>(i);
  std::string known;
  for (const char* n : kActivationNames) known += std::string(known.empty() ? "" : ", ") + n;
  throw ValueError("Unknown activation '" + name + "'. Known activations: " + known + ".");
}

const char* activation_name(Activation a) { return kActivationNames[static_cast<int>(a)]; }

float activation_default_alpha(Activation a) {
  if (a == Activation::LeakyRelu) return 0.2f;
  if (a == Activation::Elu) return 1.0f;
  return 0.0f;
}

}  // namespace shenjing
