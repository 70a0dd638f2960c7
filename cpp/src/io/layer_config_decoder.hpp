// Configs of the decoder / autoencoder layers (transposed convolutions, upsampling, cropping,
// RepeatVector, Permute, Identity): layer_config.cpp asks here before giving up on a class.
#pragma once
#include <memory>
#include <string>

#include "io/config_fields.hpp"

namespace shenjing {

// The layer of Keras class `cls` from its checked config fields, or null when `cls` is not
// one of the classes this file knows.
std::unique_ptr<Layer> decoder_layer_from_config(const std::string& cls, const config::Fields& f);
// SimpleRNN, LSTM, GRU, Bidirectional (layer_config_recurrent.cpp), or null.
std::unique_ptr<Layer> recurrent_layer_from_config(const std::string& cls,
                                                   const config::Fields& f, const Shape& input);

}  // namespace shenjing
