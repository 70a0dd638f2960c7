// See metrics_state_binding.hpp.
#include "metrics_state_binding.hpp"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <type_traits>

namespace py = pybind11;
using namespace shenjing;

namespace shenjing_bindings {
namespace {

const float* f32_array(const py::array& a, const char* what) {
  if (!py::isinstance<py::array_t<float>>(a) || !(a.flags() & py::array::c_style))
    throw TypeError(std::string(what) + " must be a C-contiguous float32 array, received dtype " +
                    py::str(a.dtype()).cast<std::string>() + ".");
  return static_cast<const float*>(a.data());
}

}  // namespace

StateMetricSpec state_spec(const py::handle& h) {
  const py::dict d = py::reinterpret_borrow<py::dict>(h);
  StateMetricSpec s;
  const int kind = d["kind"].cast<int>();
  if (kind < 0 || kind > static_cast<int>(StateMetricKind::FScore))
    throw ValueError("unknown state metric kind " + std::to_string(kind) + ".");
  s.kind = static_cast<StateMetricKind>(kind);
  auto get = [&d](const char* key, auto& field) {
    if (d.contains(key)) field = d[key].cast<std::decay_t<decltype(field)>>();
  };
  get("thresholds", s.thresholds);
  get("evenly", s.evenly);
  get("with_epsilon", s.with_epsilon);
  get("top_k", s.top_k);
  get("class_id", s.class_id);
  get("multi_label", s.multi_label);
  get("from_logits", s.from_logits);
  get("label_weights", s.label_weights);
  get("k", s.k);
  get("has_threshold", s.has_threshold);
  get("threshold", s.threshold);
  return s;
}

void set_state_metrics(Model& self, const std::vector<py::list>& per_output) {
  std::vector<std::vector<StateMetricSpec>> specs;
  for (const py::list& ms : per_output) {
    specs.emplace_back();
    for (const py::handle& d : ms) specs.back().push_back(state_spec(d));
  }
  self.set_state_metrics(specs);
}

void bind_state_metrics(py::module_& m) {
  m.def("state_metric_update",
        [](const py::dict& spec, const py::array& y_true, const py::array& y_pred,
           const py::object& sample_weight, long long samples, long long positions) {
          // Eager metrics: one batch's state from (samples * positions, width) predictions
          // and (samples * positions, y_width) targets, both float32; sample_weight: None or
          // one float32 weight per row.
          const StateMetricSpec s = state_spec(spec);
          const float* p = f32_array(y_pred, "y_pred");
          const float* t = f32_array(y_true, "y_true");
          if (samples < 1 || positions < 1 || samples > (1LL << 40) || positions > (1LL << 40))
            throw ValueError("state_metric_update: bad sample or position count.");
          const long long rows = samples * positions;
          if (y_pred.size() % rows || y_true.size() % rows || y_pred.size() == 0 ||
              y_true.size() == 0)
            throw ValueError("state_metric_update: arrays do not hold the rows given.");
          const int width = (int)(y_pred.size() / rows), y_width = (int)(y_true.size() / rows);
          const float* w = nullptr;
          py::array wa;
          if (!sample_weight.is_none()) {
            wa = sample_weight.cast<py::array>();
            w = f32_array(wa, "sample_weight");
            if (wa.size() != rows)
              throw ValueError("sample_weight must hold one weight per row.");
          }
          state_metric_check(s, width, positions, y_width);
          py::array_t<double> out(state_metric_size(s, width));
          std::memset(out.mutable_data(), 0, out.size() * sizeof(double));
          {
            py::gil_scoped_release nogil;
            state_metric_update(s, p, t, samples, positions, width, y_width, w,
                                out.mutable_data());
          }
          return out;
        },
        "One batch's state vector of a state metric (eager Metric.update_state)");
}

}  // namespace shenjing_bindings
