// The only file that knows Python: exposes the core as shenjing._core. It checks buffers
// (dtype, contiguity, bounds) and releases the GIL around every batch call.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstring>
#include <string>
#include <type_traits>

#include "io/json.hpp"
#include "io/layer_config.hpp"
#include "io/safetensors.hpp"
#include "kernels/kernels.hpp"
#include "shenjing/shenjing.hpp"

namespace py = pybind11;
using namespace shenjing;

namespace {

// A built-in learning-rate schedule from shenjing.optimizers.schedules' _spec() dict.
LearningRateSchedule schedule_from(const py::dict& d) {
  LearningRateSchedule s;
  s.kind = static_cast<ScheduleKind>(d["kind"].cast<int>());
  auto num = [&](const char* k, double& out) { if (d.contains(k)) out = d[k].cast<double>(); };
  auto flag = [&](const char* k, bool& out) { if (d.contains(k)) out = d[k].cast<bool>(); };
  num("initial_learning_rate", s.initial_learning_rate), num("decay_steps", s.decay_steps);
  num("decay_rate", s.decay_rate), num("end_learning_rate", s.end_learning_rate);
  num("power", s.power), num("alpha", s.alpha), num("warmup_target", s.warmup_target);
  num("warmup_steps", s.warmup_steps), num("t_mul", s.t_mul), num("m_mul", s.m_mul);
  flag("staircase", s.staircase), flag("cycle", s.cycle), flag("warmup", s.warmup);
  if (d.contains("boundaries")) s.boundaries = d["boundaries"].cast<std::vector<double>>();
  if (d.contains("values")) s.values = d["values"].cast<std::vector<double>>();
  s.validate();
  return s;
}

// A float32, C-contiguous array, or TypeError naming the argument.
const float* f32(const py::array& a, const char* what) {
  if (!py::isinstance<py::array_t<float>>(a) || !(a.flags() & py::array::c_style))
    throw TypeError(std::string(what) + " must be a C-contiguous float32 array, received dtype " +
                    py::str(a.dtype()).cast<std::string>() + ".");
  return static_cast<const float*>(a.data());
}

// A C-contiguous numeric array as the core's ArrayRef (converted per batch), or TypeError.
ArrayRef array_ref(const py::array& a, const char* what) {
  static const struct { char kind; int size; DType type; } kTypes[] = {
      {'f', 4, DType::F32}, {'f', 8, DType::F64}, {'u', 1, DType::U8}, {'i', 1, DType::I8},
      {'u', 2, DType::U16}, {'i', 2, DType::I16}, {'u', 4, DType::U32}, {'i', 4, DType::I32},
      {'u', 8, DType::U64}, {'i', 8, DType::I64}, {'b', 1, DType::Bool}};
  const py::dtype dt = a.dtype();
  if ((a.flags() & py::array::c_style) && dt.byteorder() != '>')
    for (const auto& t : kTypes)
      if (dt.kind() == t.kind && dt.itemsize() == t.size) return {a.data(), t.type};
  throw TypeError(std::string(what) + " must be a C-contiguous array of float32/64, (u)int8-64 "
                  "or bool values, received dtype " + py::str(dt).cast<std::string>() + ".");
}

float* f32_mut(py::array& a, const char* what) {
  const float* p = f32(a, what);
  if (!a.writeable()) throw ValueError(std::string(what) + " must be writeable.");
  return const_cast<float*>(p);
}

void check_rows(const py::array& a, long long row, long long rows_needed, const char* what) {
  // row > 0 and the division keep shape(0) * row from overflowing.
  if (a.ndim() == 0 || row <= 0 || a.shape(0) > LLONG_MAX / row ||
      a.size() != a.shape(0) * row || a.shape(0) < rows_needed)
    throw ValueError(std::string(what) + ": expected at least " + std::to_string(rows_needed) +
                     " rows of " + std::to_string(row) + " values, received an array of " +
                     std::to_string(a.size()) + " values.");
}

// One array, or a list/tuple of arrays (one per model input or output).
std::vector<py::array> array_list(const py::object& o) {
  std::vector<py::array> out;
  if (py::isinstance<py::list>(o) || py::isinstance<py::tuple>(o)) {
    for (const py::handle& h : o) out.push_back(py::reinterpret_borrow<py::object>(h).cast<py::array>());
  } else {
    out.push_back(o.cast<py::array>());
  }
  return out;
}

struct Batch {
  std::vector<ArrayRef> xs;
  std::vector<Target> ys;
  const long long* idx;
  int n;
};

// Resolves (xs, ys, idx or start, count) into pointers after checking every bound. The
// arrays must stay alive (held by the caller) while the batch runs.
Batch batch_args(Model& m, const std::vector<py::array>& xs, const std::vector<py::array>& ys,
                 const py::object& idx, long long start, int count) {
  if (count <= 0) throw ValueError("batch size must be positive.");
  if (xs.size() != m.num_inputs())
    throw ValueError("The model has " + std::to_string(m.num_inputs()) + " input(s), received " +
                     std::to_string(xs.size()) + " array(s).");
  if (ys.size() != m.num_outputs())
    throw ValueError("The model has " + std::to_string(m.num_outputs()) + " output(s), received "
                     "targets for " + std::to_string(ys.size()) + ".");
  const long long rows = xs[0].ndim() ? xs[0].shape(0) : 0;
  Batch b{{}, {}, nullptr, count};
  for (size_t k = 0; k < xs.size(); ++k) {
    b.xs.push_back(array_ref(xs[k], "x"));
    check_rows(xs[k], shape_size(m.input_shape(k)), 1, "x");
    if (xs[k].shape(0) != rows) throw ValueError("Every input must have the same number of samples.");
  }
  for (const py::array& y : ys) {
    const float* yp = f32(y, "y");
    if (y.ndim() == 0 || y.shape(0) != rows)
      throw ValueError("x and y must have the same number of samples.");
    if (y.size() / rows > INT_MAX) throw ValueError("y has too many values per sample.");
    b.ys.push_back(Target{yp, (int)(y.size() / rows)});
  }
  if (!idx.is_none()) {
    auto ia = idx.cast<py::array>();
    if (!py::isinstance<py::array_t<long long>>(ia) || !(ia.flags() & py::array::c_style) ||
        start < 0 || start > (long long)ia.size() - count)
      throw TypeError("indices must be a C-contiguous int64 array covering the batch.");
    b.idx = static_cast<const long long*>(ia.data()) + start;
    for (int i = 0; i < count; ++i)
      if (b.idx[i] < 0 || b.idx[i] >= rows) throw ValueError("batch index out of range.");
  } else {
    if (start < 0 || start > rows - count) throw ValueError("batch rows out of range.");
    for (size_t k = 0; k < b.xs.size(); ++k)
      b.xs[k] = b.xs[k].offset(start, shape_size(m.input_shape(k)));
    for (Target& t : b.ys) t.data += start * t.width;
  }
  return b;
}

// sample_weight of a batch call: None, one array (for every output) or a list with one array
// or None per output; each float32, C-contiguous, with x's rows (one weight per sample, or
// several: temporal weights), gathered by the same indices as y. The arrays must stay alive.
std::vector<py::object> weight_list(const Model& m, const py::object& sw) {
  std::vector<py::object> out(m.num_outputs(), py::none());
  if (sw.is_none()) return out;
  if (py::isinstance<py::list>(sw) || py::isinstance<py::tuple>(sw)) {
    if (py::len(sw) != m.num_outputs())
      throw ValueError("sample_weight: the model has " + std::to_string(m.num_outputs()) +
                       " output(s), received " + std::to_string(py::len(sw)) + " weight arrays.");
    size_t k = 0;
    for (const py::handle& h : sw) out[k++] = py::reinterpret_borrow<py::object>(h);
  } else {
    for (auto& o : out) o = sw;
  }
  return out;
}

void attach_weights(Batch& b, const std::vector<py::object>& ws, long long rows, long long start,
                    bool offset) {
  for (size_t k = 0; k < ws.size(); ++k) {
    if (ws[k].is_none()) continue;
    const py::array a = ws[k].cast<py::array>();
    const float* p = f32(a, "sample_weight");
    if (a.ndim() == 0 || a.shape(0) != rows)
      throw ValueError("sample_weight must have one entry per sample: x has " +
                       std::to_string(rows) + " samples, sample_weight " +
                       std::to_string(a.ndim() ? a.shape(0) : 0) + ".");
    if (rows == 0 || a.size() / rows > INT_MAX || a.size() == 0)
      throw ValueError("sample_weight has no or too many values per sample.");
    b.ys[k].weight_width = (int)(a.size() / rows);
    b.ys[k].weight = p + (offset ? start * b.ys[k].weight_width : 0);
  }
}

py::tuple stats_tuple(const BatchStats& s) {
  // The metric sums as an array: state metrics (AUC: 800 values, per label with
  // multi_label) would make a Python float of each per batch.
  py::array_t<double> sums(s.metric_sums.size());
  std::copy(s.metric_sums.begin(), s.metric_sums.end(), sums.mutable_data());
  return py::make_tuple(s.loss_sum, sums, s.output_loss_sums);
}

// train_step / test_step: (xs, ys, indices or None, start, count, sample_weight=None) ->
// (loss_sum, metric_sums, output_loss_sums).
template <BatchStats (Model::*step)(const std::vector<ArrayRef>&, const std::vector<Target>&,
                                    const long long*, int)>
py::tuple batch_step(Model& self, const py::object& x, const py::object& y,
                     const py::object& idx, long long start, int count,
                     const py::object& sample_weight) {
  const std::vector<py::array> xs = array_list(x), ys = array_list(y);
  Batch b = batch_args(self, xs, ys, idx, start, count);
  const std::vector<py::object> ws = weight_list(self, sample_weight);
  attach_weights(b, ws, xs[0].ndim() ? xs[0].shape(0) : 0, start, idx.is_none());
  BatchStats s;
  {
    py::gil_scoped_release nogil;
    s = (self.*step)(b.xs, b.ys, b.idx, b.n);
  }
  return stats_tuple(s);
}

// A safetensors tensor as a new numpy array.
py::array tensor_array(const safetensors::Tensor& t) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {"F32", "<f4"}, {"F64", "<f8"}, {"F16", "<f2"}, {"I64", "<i8"}, {"I32", "<i4"},
      {"I16", "<i2"}, {"I8", "i1"},   {"U64", "<u8"}, {"U32", "<u4"}, {"U16", "<u2"},
      {"U8", "u1"},   {"BOOL", "?"}};
  for (const auto& [st, np] : kTypes)
    if (t.dtype == st) {
      py::array a(py::dtype(np), py::ssize_t(t.bytes.size() / safetensors::dtype_size(st)));
      std::memcpy(a.mutable_data(), t.bytes.data(), t.bytes.size());
      return a.attr("reshape")(py::tuple(py::cast(t.shape))).cast<py::array>();
    }
  throw ValueError("Tensor '" + t.name + "' has dtype " + t.dtype + ", which shenjing does "
                   "not read.");
}

safetensors::File read_file(const std::string& path) {
  py::gil_scoped_release nogil;
  return safetensors::read(path);
}

py::dict metadata_dict(const safetensors::File& f) {
  py::dict meta;
  for (const auto& [k, v] : f.metadata) meta[py::str(k)] = py::str(v);
  return meta;
}

// Every tensor of f whose name does not start with `skip` (all of them for "").
py::dict tensor_dict(const safetensors::File& f, const std::string& skip) {
  py::dict tensors;
  for (const auto& t : f.tensors)
    if (skip.empty() || t.name.rfind(skip, 0) != 0) tensors[py::str(t.name)] = tensor_array(t);
  return tensors;
}

// A new float32 array of shape (n, *s).
py::array_t<float> batch_array(long long n, const Shape& s) {
  std::vector<py::ssize_t> dims{(py::ssize_t)n};
  for (int d : s) dims.push_back(d);
  return py::array_t<float>(dims);
}

// a is a C-contiguous float32 array of shape (n, *s), or ValueError/TypeError naming it.
const float* batch_f32(const py::array& a, long long n, const Shape& s, const std::string& what) {
  const float* p = f32(a, what.c_str());
  bool ok = a.ndim() == (py::ssize_t)s.size() + 1 && a.shape(0) == n;
  for (size_t d = 0; ok && d < s.size(); ++d) ok = a.shape(d + 1) == s[d];
  if (!ok)
    throw ValueError(what + " must have shape " + shape_str(s).replace(1, 4, std::to_string(n)) +
                     ".");
  return p;
}

// The test hooks' run: forward (the input copied when the model would pass it through) and,
// with dy, backward into dxs; returns (y, [dx per input], [param grads]) (empty lists without
// dy).
py::tuple run_once(Layer& layer, RunContext& ctx, const std::vector<const float*>& xp,
                   py::array_t<float>& y, const float* dyp, std::vector<py::array_t<float>>& dxs,
                   std::vector<float*>& dxp, int n) {
  const bool pass = layer.passthrough(ctx);  // the model would hand the buffer on
  float* yp = y.mutable_data();
  {
    py::gil_scoped_release nogil;
    if (pass) std::memcpy(yp, xp[0], sizeof(float) * y.size());
    else layer.forward_inputs(xp.data(), yp, n, ctx);
    if (dyp && pass) std::memcpy(dxp[0], dyp, sizeof(float) * y.size());
    else if (dyp) layer.backward_inputs(xp.data(), yp, dyp, dxp.data(), n, ctx);
  }
  py::list dx_list, grads;
  if (dyp) {
    for (auto& a : dxs) dx_list.append(a);
    for (const Param& p : layer.params())
      grads.append(py::array_t<float>(std::vector<py::ssize_t>(p.shape.begin(), p.shape.end()),
                                      p.grad.data()));
  }
  return py::make_tuple(y, dx_list, grads);
}

// The layer of a Keras config, built on per-sample input shapes (for shape inference).
std::unique_ptr<Layer> built_layer(const std::string& spec, const std::vector<Shape>& inputs) {
  if (inputs.empty()) throw ValueError("layer_output_shape: no input shapes.");
  for (const Shape& s : inputs)
    for (int d : s)
      if (d <= 0) throw ValueError("Input shapes must have positive dimensions, received " +
                                   shape_str(s) + ".");
  auto layer = layer_from_config(json::parse(spec, "layer config"), inputs[0]);
  if (!layer->multi_input() && inputs.size() != 1)
    throw ValueError("Layer '" + layer->name() + "' (" + layer->type() + ") takes one input, "
                     "received " + std::to_string(inputs.size()) + ".");
  layer->build_inputs(inputs);
  return layer;
}

// _core._run_layer: builds one layer from its config on the given input shapes (as a model
// would: the same size caps), then runs forward and, when dy is given, backward with every
// input gradient requested. Every count and shape is checked first.
py::tuple run_layer(const std::string& spec, const std::vector<Shape>& shapes,
                    const std::vector<py::array>& xs, const py::object& dy, bool training,
                    const py::object& params) {
  if (shapes.empty() || shapes.size() > 64)
    throw ValueError("_run_layer: give 1 to 64 input shapes.");
  for (const Shape& s : shapes) {
    bool ok = s.size() <= 8 && shape_size(s) <= (1LL << 28);
    for (int d : s) ok = ok && d > 0;
    if (!ok) throw ValueError("_run_layer: bad input shape " + shape_str(s) + ".");
  }
  std::unique_ptr<Layer> layer = layer_from_config(json::parse(spec, "layer config"), shapes[0]);
  layer->build_inputs(shapes);
  const Shape out = layer->output_shape();
  bool out_ok = shape_size(out) <= (1LL << 28);
  for (int d : out) out_ok = out_ok && d > 0;
  if (!out_ok) throw ValueError("_run_layer: output shape " + shape_str(out) + " too large.");
  auto& ps = layer->params();
  std::vector<py::array> pv;
  if (!params.is_none()) pv = params.cast<std::vector<py::array>>();
  if (!params.is_none() && pv.size() != ps.size())
    throw ValueError("_run_layer: the layer has " + std::to_string(ps.size()) +
                     " params, received " + std::to_string(pv.size()) + ".");
  for (size_t i = 0; i < ps.size(); ++i) {
    if (shape_size(ps[i].shape) > (1LL << 31)) throw ValueError("_run_layer: param too large.");
    ps[i].value.assign((size_t)shape_size(ps[i].shape), ps[i].init);
    ps[i].grad.assign(ps[i].value.size(), 0.0f);
    if (!pv.empty()) {
      const float* p = f32(pv[i], "param");
      if (pv[i].size() != (py::ssize_t)ps[i].value.size())
        throw ValueError("_run_layer: param '" + ps[i].name + "' must have " +
                         std::to_string(ps[i].value.size()) + " values.");
      std::memcpy(ps[i].value.data(), p, sizeof(float) * ps[i].value.size());
    }
  }
  if (xs.size() != shapes.size())
    throw ValueError("_run_layer: " + std::to_string(shapes.size()) + " input shapes but " +
                     std::to_string(xs.size()) + " inputs.");
  const long long n = xs[0].ndim() ? xs[0].shape(0) : -1;
  if (n < 1 || n > INT_MAX)
    throw ValueError("_run_layer: inputs need a batch axis of 1 to 2^31 - 1 samples.");
  std::vector<const float*> xp;
  for (size_t i = 0; i < xs.size(); ++i)
    xp.push_back(batch_f32(xs[i], n, shapes[i], "input " + std::to_string(i)));
  const float* dyp = nullptr;
  py::array dya;
  if (!dy.is_none()) {
    dya = dy.cast<py::array>();
    dyp = batch_f32(dya, n, out, "dy");
  }
  Saved saved;
  RunContext ctx;
  ctx.training = training;
  ctx.saved = &saved;
  py::array_t<float> y = batch_array(n, out);
  std::vector<py::array_t<float>> dxs;
  std::vector<float*> dxp;
  for (const Shape& s : shapes) {
    dxs.push_back(batch_array(n, s));
    dxp.push_back(dxs.back().mutable_data());
  }
  return run_once(*layer, ctx, xp, y, dyp, dxs, dxp, (int)n);
}

// _core._run_op: one primitive op alone (ops/op.hpp), for gradient and parity tests. xs hold
// full shapes (the batch axis first where batched[i]); params, when given, fill the op's params.
py::tuple run_op(const std::string& spec, const std::vector<py::array>& xs,
                 const std::vector<bool>& batched, int n, const py::object& dy,
                 const py::object& params) {
  if (xs.size() != batched.size() || xs.size() > 64 || n < 1)
    throw ValueError("_run_op: one batched flag per input (at most 64) and n >= 1.");
  std::vector<Shape> shapes;
  std::vector<char> flags;
  std::vector<const float*> xp;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float* p = f32(xs[i], "input");
    Shape s(xs[i].shape(), xs[i].shape() + xs[i].ndim());
    if (batched[i]) {
      if (s.empty() || s[0] != n) throw ValueError("_run_op: a batched input needs n rows.");
      s.erase(s.begin());
    }
    bool ok = s.size() <= 8 && shape_size(s) <= (1LL << 28);
    for (int d : s) ok = ok && d > 0;
    if (!ok) throw ValueError("_run_op: bad input shape " + shape_str(s) + ".");
    shapes.push_back(s);
    flags.push_back(batched[i]);
    xp.push_back(p);
  }
  std::unique_ptr<Layer> layer = layer_from_config(json::parse(spec, "op config"), Shape{});
  if (!layer->accepts_unbatched()) throw ValueError("_run_op: not an op.");
  layer->set_batched(flags);
  layer->build_inputs(shapes);
  Shape out = layer->output_shape();
  if (shape_size(out) > (1LL << 28)) throw ValueError("_run_op: output too large.");
  if (layer->output_batched()) out.insert(out.begin(), n);
  auto& ps = layer->params();
  std::vector<py::array> pv;
  if (!params.is_none()) pv = params.cast<std::vector<py::array>>();
  if (!params.is_none() && pv.size() != ps.size())
    throw ValueError("_run_op: wrong number of params.");
  for (size_t i = 0; i < ps.size(); ++i) {
    ps[i].value.assign((size_t)shape_size(ps[i].shape), ps[i].init);
    ps[i].grad.assign(ps[i].value.size(), 0.0f);
    if (!pv.empty()) {
      if (pv[i].size() != (py::ssize_t)ps[i].value.size())
        throw ValueError("_run_op: param '" + ps[i].name + "' has the wrong size.");
      std::memcpy(ps[i].value.data(), f32(pv[i], "param"), sizeof(float) * ps[i].value.size());
    }
  }
  const std::vector<py::ssize_t> out_dims(out.begin(), out.end());
  const float* dyp = nullptr;
  py::array dya;
  if (!dy.is_none()) {
    dya = dy.cast<py::array>();
    dyp = f32(dya, "dy");
    if (dya.ndim() != (py::ssize_t)out.size() ||
        !std::equal(out_dims.begin(), out_dims.end(), dya.shape()))
      throw ValueError("_run_op: dy must have the output's shape " + shape_str(out) + ".");
  }
  Saved saved;
  RunContext ctx;
  ctx.training = true;
  ctx.saved = &saved;
  py::array_t<float> y(out_dims);
  std::vector<py::array_t<float>> dxs;
  std::vector<float*> dxp;
  for (const py::array& x : xs) {
    dxs.emplace_back(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    dxp.push_back(dxs.back().mutable_data());
  }
  return run_once(*layer, ctx, xp, y, dyp, dxs, dxp, n);
}

}  // namespace

// -- state metrics (metrics_state.hpp): specs from shenjing's metrics' _spec() dicts, and
// the eager update behind Metric.update_state on arrays ----------------------------------
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
  get("weighted", s.weighted);
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

PYBIND11_MODULE(_core, m) {
  m.doc() = "shenjing C++ core (internal; use the shenjing package)";
  py::register_exception<TypeError>(m, "CoreTypeError", PyExc_TypeError);

  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("isa", &isa);
  m.def("all_finite", [](const py::array& a) {
    const float* p = f32(a, "array");
    const std::size_t n = (std::size_t)a.size();
    py::gil_scoped_release nogil;
    return all_finite(p, n);
  });
  m.def("build_info", &build_info);
  shenjing_bindings::bind_state_metrics(m);
  m.def("layer_output_shape",
        [](const std::string& spec, const std::vector<Shape>& inputs) {
          return built_layer(spec, inputs)->output_shape();
        },
        "The per-sample output shape of the layer of a Keras config on per-sample input "
        "shapes (ValueError naming the layer when they do not fit)");
  m.def("layer_shapes",
        [](const std::string& spec, const std::vector<Shape>& inputs) {
          auto layer = built_layer(spec, inputs);
          std::vector<Shape> params;
          for (const Param& p : layer->params()) params.push_back(p.shape);
          return py::make_tuple(layer->output_shape(), params);
        },
        "(output shape, param shapes) of the layer of a Keras config built on per-sample "
        "input shapes (ValueError naming the layer when they do not fit)");
  m.def("op_output_shape",
        [](const std::string& spec, const std::vector<Shape>& inputs,
           const std::vector<bool>& batched) {
          if (inputs.size() != batched.size() || inputs.size() > 64)
            throw ValueError("op_output_shape: one batched flag per input (at most 64).");
          for (const Shape& s : inputs) {
            bool ok = s.size() <= 8 && shape_size(s) <= (1LL << 28);
            for (int d : s) ok = ok && d > 0;
            if (!ok) throw ValueError("Op input shape " + shape_str(s) + " is not supported: "
                                      "at most 8 axes of positive sizes, 2^28 values.");
          }
          auto layer = layer_from_config(json::parse(spec, "op config"), Shape{});
          if (!layer->accepts_unbatched()) throw ValueError("op_output_shape: not an op.");
          layer->set_batched(std::vector<char>(batched.begin(), batched.end()));
          layer->build_inputs(inputs);
          return py::make_tuple(layer->output_shape(), layer->output_batched());
        },
        "(op config JSON, input shapes, batched flags) -> (output shape, batched)");
  m.def("read_safetensors",
        [](const std::string& path) {
          const safetensors::File f = read_file(path);
          return py::make_tuple(metadata_dict(f), tensor_dict(f, ""));
        },
        "Reads and validates a safetensors file: (metadata dict, {name: numpy array})");
  m.def("load_model_file",
        [](const std::string& path) {
          const safetensors::File f = read_file(path);
          Model model = Model::load(f, path);
          return py::make_tuple(std::move(model), metadata_dict(f), tensor_dict(f, "layers."));
        },
        "One read of a model file: (Model::load's model, metadata dict, {name: array} of the "
        "tensors besides the layer weights)");

  py::class_<Model>(m, "Model")
      .def(py::init<>())
      .def(py::init<const Shape&>())
      .def("add_input", &Model::add_input, "A model input of a per-sample shape -> tensor id")
      .def("add_node",
           [](Model& self, const std::string& spec, const std::vector<int>& inputs) {
             const Shape first = inputs.empty() ? Shape{} : self.tensor_shape(inputs[0]);
             return self.add_node(layer_from_config(json::parse(spec, "layer config"), first),
                                  inputs);
           },
           "Builds the layer of a Keras layer config (JSON text) on tensors -> tensor id")
      .def("tensor_batched", &Model::tensor_batched)
      .def("add_target", &Model::add_target,
           "A tensor filled with output k's targets of each batch (a custom loss's y_true)")
      .def("add_loss_term", &Model::add_loss_term,
           "Adds the mean of tensor t to the training loss (Keras's add_loss)")
      .def("add_shared_node", &Model::add_shared_node,
           "Another node of layer i (shared weights) on tensors -> tensor id")
      .def("set_outputs", &Model::set_outputs)
      .def("share_params", &Model::share_params,
           "Layer i uses the weight buffers of layer j of another core model")
      .def("shares_params",
           [](Model& self, int i, Model& other, int j) {
             const auto& a = self.layers().at(i)->params();
             const auto& b = other.layers().at(j)->params();
             return !a.empty() && a.size() == b.size() && a[0].value.shares(b[0].value);
           })
      .def_property_readonly("num_inputs", &Model::num_inputs)
      .def_property_readonly("num_outputs", &Model::num_outputs)
      .def("input_shape", [](Model& self, int i) { return self.input_shape(i); })
      .def("tensor_shape", &Model::tensor_shape)
      .def_property_readonly("output_shapes",
                             [](Model& self) {
                               std::vector<Shape> out;
                               for (size_t k = 0; k < self.num_outputs(); ++k)
                                 out.push_back(self.output_shape(k));
                               return out;
                             })
      .def("memory_plan",
           [](Model& self) {
             const MemoryPlan m = self.memory_plan();
             py::dict d;
             d["train_activations"] = m.train_activations;
             d["infer_activations"] = m.infer_activations;
             d["infer_per_tensor"] = m.infer_per_tensor;
             d["gradients"] = m.gradients;
             d["gradients_per_tensor"] = m.gradients_per_tensor;
             d["unbatched_activations"] = m.unbatched_activations;
             d["unbatched_gradients"] = m.unbatched_gradients;
             return d;
           },
           "Workspace floats per sample (planned and one buffer per tensor), and the floats "
           "of tensors without the batch axis")
      .def_static("load", py::overload_cast<const std::string&>(&Model::load),
                  "Model::load: a saved model file, for inference")
      .def("add_layer",
           [](Model& self, const std::string& spec) {
             self.add(layer_from_config(json::parse(spec, "layer config"), self.output_shape()));
           },
           "Appends the layer described by a Keras layer config (JSON text)")
      .def("reset_states", &Model::reset_states, py::call_guard<py::gil_scoped_release>())
      .def("last_output",
           [](const Model& self, std::size_t k, int n) {
             if (k >= self.num_outputs()) throw ValueError("last_output: no such output.");
             std::vector<py::ssize_t> shape{n};
             for (long long d : self.output_shape(k)) shape.push_back((py::ssize_t)d);
             if (n <= 0) throw ValueError("last_output: n must be positive.");
             py::array_t<float> out(shape);
             float* p = out.mutable_data();
             {
               py::gil_scoped_release nogil;
               self.last_output(k, p, n);
             }
             return out;
           },
           "Output k of the last batch call's forward, n rows (a copy)")
      .def("random_state",
           [](Model& self, int i) -> py::object {
             uint64_t* s = self.layers().at(i)->random_state();
             return s ? py::int_(*s) : py::object(py::none());
           })
      .def("set_random_state",
           [](Model& self, int i, uint64_t v) {
             uint64_t* s = self.layers().at(i)->random_state();
             if (!s) throw ValueError("layer " + std::to_string(i) + " has no random state.");
             *s = v;
           })
      .def("optimizer_state",
           [](Model& self) {
             py::list slots;
             for (const auto& per_param : self.optimizer().slots()) {
               py::list bufs;
               for (const auto& b : per_param)
                 bufs.append(py::array_t<float>((py::ssize_t)b.size(), b.data()));
               slots.append(bufs);
             }
             return py::make_tuple(self.optimizer().iterations(), slots);
           },
           "(iterations, [[slot buffers] per trainable parameter]) as copies")
      .def("restore_optimizer",
           [](Model& self, long long iterations, const std::vector<std::vector<py::array>>& in) {
             Optimizer::Slots slots;
             for (const auto& per_param : in) {
               slots.emplace_back();
               for (const py::array& a : per_param) {
                 const float* p = f32(a, "optimizer slot");
                 slots.back().emplace_back(p, p + a.size());
               }
             }
             self.restore_optimizer(iterations, std::move(slots));
           })
      .def("trained_params", &Model::trained_params,
           "(layer index, param index) of each param the optimizer trains, in slot order")
      .def("params_trainable",
           [](Model& self, int i) {
             std::vector<bool> out;
             for (const Param& p : self.layers().at(i)->params()) out.push_back(p.trainable);
             return out;
           },
           "For each parameter of layer i: whether the optimizer trains it")
      .def_property_readonly("output_shape", [](Model& self) { return self.output_shape(0); })
      .def_property_readonly("num_layers", [](Model& self) { return self.layers().size(); })
      .def("layer_output_shape", [](Model& self, int i) { return self.layers().at(i)->output_shape(); })
      .def("layer_name", [](Model& self, int i) { return self.layers().at(i)->name(); })
      .def("params",
           [](py::object self, int i) {
             Model& mdl = self.cast<Model&>();
             py::list out;
             for (Param& p : mdl.layers().at(i)->params()) {
               std::vector<py::ssize_t> shape(p.shape.begin(), p.shape.end());
               out.append(py::make_tuple(p.name, py::array_t<float>(shape, p.value.data(), self),
                                         py::array_t<float>(shape, p.grad.data(), self)));
             }
             return out;
           },
           "(name, value view, grad view) for each parameter of layer i; the views share memory")
      .def("set_trainable", &Model::set_trainable,
           "Keras's layer.trainable for layer i, applied at the next compile")
      .def("compile",
           [](Model& self, const std::vector<py::tuple>& outputs, py::dict o) {
             // outputs: (loss kind, from_logits, huber delta, loss weight, [metric kinds]
             // [, value tensor of a traced custom loss, its traced metrics, {loss options},
             // [state metric specs], [custom stateful metrics' increment tensors]])
             std::vector<OutputTraining> outs;
             for (const py::tuple& t : outputs) {
               OutputTraining ot;
               const int kind = t[0].cast<int>();
               if (kind < 0 || kind >= kLossKindCount)
                 throw ValueError("compile: unknown loss kind " + std::to_string(kind) + ".");
               if (t.size() > 5) ot.value_tensor = t[5].cast<int>();
               if (t.size() > 6) ot.value_metrics = t[6].cast<std::vector<int>>();
               if (t.size() > 8)
                 for (const py::handle& d : t[8].cast<py::list>())
                   ot.state_metrics.push_back(shenjing_bindings::state_spec(d));
               if (t.size() > 9) ot.state_tensors = t[9].cast<std::vector<int>>();
               ot.loss = LossOptions{static_cast<LossKind>(t[0].cast<int>()), t[1].cast<bool>(),
                                     t[2].cast<float>()};
               ot.weight = t[3].cast<float>();
               if (t.size() > 7) {  // the cross-entropies' options (Loss._options)
                 const py::dict d = t[7].cast<py::dict>();
                 if (d.contains("label_smoothing"))
                   ot.loss.label_smoothing = d["label_smoothing"].cast<float>();
                 if (d.contains("ignore_class") && !d["ignore_class"].is_none()) {
                   ot.loss.has_ignore_class = true;
                   ot.loss.ignore_class = d["ignore_class"].cast<int>();
                 }
               }
               for (int k : t[4].cast<std::vector<int>>())
                 ot.metrics.push_back(static_cast<MetricKind>(k));
               outs.push_back(std::move(ot));
             }
             OptimizerOptions oo;
             oo.kind = static_cast<OptimizerKind>(o["kind"].cast<int>());
             oo.learning_rate = o["learning_rate"].cast<float>();
             oo.momentum = o["momentum"].cast<float>();
             oo.nesterov = o["nesterov"].cast<bool>();
             oo.beta_1 = o["beta_1"].cast<float>();
             oo.beta_2 = o["beta_2"].cast<float>();
             oo.epsilon = o["epsilon"].cast<float>();
             oo.amsgrad = o["amsgrad"].cast<bool>();
             oo.weight_decay = o["weight_decay"].cast<float>();
             oo.rho = o["rho"].cast<float>();
             oo.centered = o["centered"].cast<bool>();
             oo.initial_accumulator_value = o["initial_accumulator_value"].cast<float>();
             oo.clipnorm = o["clipnorm"].cast<float>();
             oo.global_clipnorm = o["global_clipnorm"].cast<float>();
             oo.clipvalue = o["clipvalue"].cast<float>();
             if (o.contains("use_ema")) {
               oo.use_ema = o["use_ema"].cast<bool>();
               oo.ema_momentum = o["ema_momentum"].cast<float>();
               oo.ema_overwrite_frequency = o["ema_overwrite_frequency"].cast<long long>();
             }
             if (o.contains("schedule") && !o["schedule"].is_none())
               oo.schedule = schedule_from(o["schedule"].cast<py::dict>());
             self.compile(outs, oo);
           })
      .def("set_weighted_metrics",
           [](Model& self, const std::vector<std::vector<int>>& per_output) {
             std::vector<std::vector<MetricKind>> mk;
             for (const auto& ms : per_output) {
               mk.emplace_back();
               for (int k : ms) mk.back().push_back(static_cast<MetricKind>(k));
             }
             self.set_weighted_metrics(mk);
           })
      .def("set_state_metrics", &shenjing_bindings::set_state_metrics)
      .def("set_metrics",
           [](Model& self, const std::vector<std::vector<int>>& per_output) {
             std::vector<std::vector<MetricKind>> mk;
             for (const auto& ms : per_output) {
               mk.emplace_back();
               for (int k : ms) mk.back().push_back(static_cast<MetricKind>(k));
             }
             self.set_metrics(mk);
           })
      .def_property("learning_rate",
                    [](Model& self) { return self.optimizer().current_learning_rate(); },
                    [](Model& self, float lr) { self.optimizer().set_learning_rate(lr); })
      .def("set_schedule",
           [](Model& self, const py::dict& d) { self.optimizer().set_schedule(schedule_from(d)); },
           "A built-in schedule (dict) the optimizer evaluates from iterations at each step")
      .def("set_decay_mask",
           [](Model& self, const std::vector<bool>& mask) {
             if (mask.size() != self.trained_params().size())
               throw ValueError("set_decay_mask: one flag per trained parameter expected.");
             self.optimizer().set_decay_mask(std::vector<char>(mask.begin(), mask.end()));
           })
      .def("finalize_optimizer",
           [](Model& self) {
             std::vector<Param*> ps;
             for (auto [i, k] : self.trained_params()) ps.push_back(&self.layers()[i]->params()[k]);
             self.optimizer().finalize(ps);
           }, "Keras's finalize_variable_values: with use_ema, the weights take their averages")
      .def_property_readonly("iterations", [](Model& self) { return self.optimizer().iterations(); })
      .def("train_step", batch_step<&Model::train_step>, py::arg("x"), py::arg("y"), py::arg("indices"),
           py::arg("start"), py::arg("count"), py::arg("sample_weight") = py::none())
      .def("gradient_step", batch_step<&Model::gradient_step>, py::arg("x"), py::arg("y"), py::arg("indices"),
           py::arg("start"), py::arg("count"), py::arg("sample_weight") = py::none())
      .def("set_allreduce",
           [](Model& self, const py::object& fn) {
             if (fn.is_none()) return self.set_allreduce(nullptr);
             // fn(array): sums a float64 array over the processes in place (mpi4py). Called
             // from a batch (the GIL released), so it takes the GIL back.
             auto holder = std::shared_ptr<py::object>(new py::object(fn), [](py::object* o) {
               py::gil_scoped_acquire gil;
               delete o;
             });
             self.set_allreduce([holder](double* data, std::size_t n) {
               py::gil_scoped_acquire gil;
               py::capsule keep(data, [](void*) {});
               (*holder)(py::array_t<double>({(py::ssize_t)n}, {(py::ssize_t)sizeof(double)},
                                             data, keep));
             });
           },
           "Data-parallel training: fn(array) sums a float64 array over the processes in "
           "place; None: one process")
      .def("apply_gradients", &Model::apply_gradients, py::call_guard<py::gil_scoped_release>())
      .def("compute_gradients",
           [](Model& self, const py::object& x, const py::object& y) {
             const std::vector<py::array> xs = array_list(x), ys = array_list(y);
             const long long rows = xs.empty() || !xs[0].ndim() ? 0 : xs[0].shape(0);
             if (rows > INT_MAX)
               throw ValueError("compute_gradients: at most 2^31-1 samples per call.");
             Batch b = batch_args(self, xs, ys, py::none(), 0, (int)rows);
             for (size_t k = 0; k < xs.size(); ++k) f32(xs[k], "x");
             py::gil_scoped_release nogil;
             return self.compute_gradients(b.xs, b.ys, b.n);
           },
           "Fills every parameter gradient for the batch (x, y) without updating; returns the "
           "total loss")
      .def("test_step", batch_step<&Model::test_step>, py::arg("x"), py::arg("y"), py::arg("indices"),
           py::arg("start"), py::arg("count"), py::arg("sample_weight") = py::none())
      .def("predict",
           [](Model& self, const py::object& x, const py::object& out, long long start,
              int count) {
             const std::vector<py::array> xs = array_list(x);
             std::vector<py::array> outs = array_list(out);
             if (xs.size() != self.num_inputs() || outs.size() != self.num_outputs())
               throw ValueError("predict: the model has " + std::to_string(self.num_inputs()) +
                                " input(s) and " + std::to_string(self.num_outputs()) +
                                " output(s), received " + std::to_string(xs.size()) + " and " +
                                std::to_string(outs.size()) + ".");
             if (count <= 0 || start < 0 || start > LLONG_MAX - count)
               throw ValueError("batch rows out of range.");
             std::vector<ArrayRef> refs;
             for (size_t k = 0; k < xs.size(); ++k) {
               const long long row = shape_size(self.input_shape(k));
               check_rows(xs[k], row, start + count, "x");
               refs.push_back(array_ref(xs[k], "x").offset(start, row));
             }
             std::vector<float*> ptrs;
             for (size_t k = 0; k < outs.size(); ++k) {
               const long long orow = shape_size(self.output_shape(k));
               float* op = f32_mut(outs[k], "out");
               check_rows(outs[k], orow, start + count, "out");
               ptrs.push_back(op + start * orow);
             }
             py::gil_scoped_release nogil;
             self.predict(refs, count, ptrs);
           });

  // Test hooks for the kernels.
  m.def("_run_layer", &run_layer,
        "One layer alone, for gradient and parity tests: (config JSON, per-sample input shapes, "
        "inputs, dy or None, training, params or None) -> (y, [dx per input], [param grads])");
  m.def("_run_op", &run_op,
        "One primitive op alone: (config JSON, inputs of full shapes, batched flags, n, dy or "
        "None, params or None) -> (y, [dx per input], [param grads])");
  m.def("_schedule_value",
        [](const py::dict& d, double step) { return schedule_from(d).value(step); });
  m.def("_set_conv_chunk_floats", &set_conv_chunk_floats);
  m.def("_isas", []() {
    const kernels::KernelTable* t[8];
    int n = kernels::available_tables(t, 8);
    py::list out;
    for (int i = 0; i < n; ++i) out.append(t[i]->isa);
    return out;
  });
  m.def("_sgemm", [](const py::array& a, const py::array& b, bool ta, bool tb, float alpha,
                     float beta, py::object c, py::object bias, const std::string& isa) {
    const kernels::KernelTable* tabs[8];
    const int nt = kernels::available_tables(tabs, 8);
    const kernels::KernelTable* t = nullptr;
    for (int i = 0; i < nt; ++i)
      if (isa == tabs[i]->isa) t = tabs[i];
    if (!t) throw ValueError("ISA '" + isa + "' is not available on this CPU/build.");
    if (a.ndim() != 2 || b.ndim() != 2) throw ValueError("_sgemm needs 2-D arrays.");
    for (const py::array* m : {&a, &b})
      if (m->shape(0) > INT_MAX || m->shape(1) > INT_MAX)
        throw ValueError("_sgemm: dimensions must be below 2^31.");
    const float* ap = f32(a, "a");
    const float* bp = f32(b, "b");
    const int M = (int)(ta ? a.shape(1) : a.shape(0)), K = (int)(ta ? a.shape(0) : a.shape(1));
    const int Kb = (int)(tb ? b.shape(1) : b.shape(0)), N = (int)(tb ? b.shape(0) : b.shape(1));
    if (K != Kb) throw ValueError("_sgemm: inner dimensions differ.");
    py::array_t<float> out({M, N});
    if (!c.is_none()) {
      py::array ca = c.cast<py::array>();
      f32(ca, "c");
      if (ca.ndim() != 2 || ca.shape(0) != M || ca.shape(1) != N) throw ValueError("_sgemm: bad C shape.");
      std::memcpy(out.mutable_data(), ca.data(), sizeof(float) * M * N);
    }
    const float* biasp = nullptr;
    py::array bias_arr;
    if (!bias.is_none()) {
      bias_arr = bias.cast<py::array>();
      biasp = f32(bias_arr, "bias");
      if (bias_arr.size() != N) throw ValueError("_sgemm: bias must have N values.");
    }
    float* cp = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      t->sgemm(ta, tb, M, N, K, alpha, ap, (int)a.shape(1), bp, (int)b.shape(1), beta, cp, N,
               biasp);
    }
    return out;
  });
}
