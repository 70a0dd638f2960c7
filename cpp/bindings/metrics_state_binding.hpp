// Python side of the state metrics (metrics_state.hpp): specs from shenjing's metrics'
// _spec() dicts, and the eager update behind Metric.update_state on arrays.
#pragma once
#include <pybind11/pybind11.h>

#include <vector>

#include "shenjing/model.hpp"

namespace shenjing_bindings {

shenjing::StateMetricSpec state_spec(const pybind11::handle& spec_dict);
// Model.set_state_metrics: one list of spec dicts per output.
void set_state_metrics(shenjing::Model& model, const std::vector<pybind11::list>& per_output);
// _core.state_metric_update(spec, y_true, y_pred, sample_weight, samples, positions).
void bind_state_metrics(pybind11::module_& m);

}  // namespace shenjing_bindings
