// The Keras config of TimeDistributed (layer_config_wrapper.cpp): layer_config.cpp builds the
// wrapper here, its inner layer through layer_from_config again.
#pragma once
#include <memory>

#include "io/config_fields.hpp"

namespace shenjing {

// TimeDistributed from its config fields ({"layer": <a layer spec>, name, trainable, dtype}),
// to be built on the per-sample `input` (time first).
std::unique_ptr<Layer> time_distributed_from_config(const config::Fields& f, const Shape& input);

}  // namespace shenjing
