// Activation functions by name, as Keras names them.
#pragma once
#include <string>

namespace shenjing {

enum class Activation : int {
  Linear = 0, Relu, Sigmoid, Tanh, Softmax, LeakyRelu, Elu, Gelu, Softplus, Swish
};

// Parses "relu", "softmax", ... (also "silu" for swish, None/"" for linear); throws ValueError
// listing the known names otherwise.
Activation activation_from_name(const std::string& name);
const char* activation_name(Activation a);
// Keras 3 default parameter: negative slope 0.2 for leaky_relu, alpha 1.0 for elu, else 0.
float activation_default_alpha(Activation a);

}  // namespace shenjing
