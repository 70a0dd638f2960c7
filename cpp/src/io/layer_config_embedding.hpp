// The Keras config of Embedding: layer_config.cpp builds the layer here.
#pragma once
#include <memory>

#include "io/config_fields.hpp"

namespace shenjing {

std::unique_ptr<Layer> embedding_from_config(const config::Fields& f);

}  // namespace shenjing
