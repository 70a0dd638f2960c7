// Umbrella header of the shenjing C++ core.
#pragma once
#include "shenjing/activations.hpp"
#include "shenjing/errors.hpp"
#include "shenjing/layers.hpp"
#include "shenjing/losses.hpp"
#include "shenjing/model.hpp"
#include "shenjing/optimizers.hpp"
#include "shenjing/runtime.hpp"
