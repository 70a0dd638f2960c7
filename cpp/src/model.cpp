// The model graph: inputs, nodes, outputs, compile. Batch calls are in model_run.cpp, the
// run plans (which nodes run, gradient and activation buffers) in model_plan.cpp.
#include <algorithm>
#include <cstring>

#include "shenjing/model.hpp"

namespace shenjing {

namespace {

// Caps that turn absurd (often hostile) configs into errors instead of huge allocations:
// 2^28 floats (1 GiB) per sample of any activation, 2^31 floats (8 GiB) per parameter.
constexpr long long kMaxSampleFloats = 1LL << 28;
constexpr long long kMaxParamFloats = 1LL << 31;

// Product of the dimensions, or -1 when one is not positive or the product exceeds cap.
long long bounded_size(const Shape& s, long long cap) {
  long long n = 1;
  for (int d : s) {
    if (d <= 0 || n > cap / d) return -1;
    n *= d;
  }
  return n;
}

std::string layer_label(const Layer& l) {
  return "Layer '" + l.name() + "' (" + l.type() + ")";
}

}  // namespace

Model::Model(const Shape& input_shape) { add_input(input_shape); }

int Model::add_tensor(const Shape& shape, int producer, int input, bool batched) {
  tensors_.push_back(TensorInfo{shape, producer, input, batched});
  return (int)tensors_.size() - 1;
}

int Model::add_input(const Shape& shape) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (compiled()) throw ValueError("Cannot change a model that is already compiled.");
  for (int d : shape)
    if (d <= 0)
      throw ValueError("Input shape must have positive dimensions, received " +
                       shape_str(shape) + ".");
  if (bounded_size(shape, kMaxSampleFloats) < 0)
    throw ValueError("Input shape " + shape_str(shape) + " has more than 2^28 values per "
                     "sample.");
  const int t = add_tensor(shape, -1, (int)inputs_.size());
  inputs_.push_back(t);
  // A chain's single input is its output until a layer is added.
  if (nodes_.empty() && inputs_.size() == 1) outputs_ = {t};
  planned_ = false;
  return t;
}

const Shape& Model::input_shape(std::size_t i) const {
  if (i >= inputs_.size())
    throw ValueError("The model has " + std::to_string(inputs_.size()) + " input(s), asked for "
                     "input " + std::to_string(i) + ".");
  return tensors_[inputs_[i]].shape;
}

const Shape& Model::output_shape(std::size_t i) const {
  if (i >= outputs_.size())
    throw ValueError("The model has " + std::to_string(outputs_.size()) + " output(s), asked "
                     "for output " + std::to_string(i) + ".");
  return tensors_[outputs_[i]].shape;
}

const Shape& Model::tensor_shape(int t) const {
  check_tensors({t}, "tensor_shape");
  return tensors_[t].shape;
}

bool Model::tensor_batched(int t) const {
  check_tensors({t}, "tensor_batched");
  return tensors_[t].batched;
}

void Model::check_tensors(const std::vector<int>& tensors, const char* what) const {
  for (int t : tensors)
    if (t < 0 || t >= (int)tensors_.size())
      throw ValueError(std::string(what) + ": no tensor " + std::to_string(t) + " in a model "
                       "of " + std::to_string(tensors_.size()) + " tensors.");
}

int Model::add_node(std::unique_ptr<Layer> layer, const std::vector<int>& inputs) {
  std::lock_guard<std::mutex> lock(*mu_);
  return append(std::move(layer), inputs, nullptr);
}

void Model::add(std::unique_ptr<Layer> layer) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (inputs_.size() != 1 || outputs_.size() != 1)
    throw ValueError("add() appends to a model with one input and one output; use add_node().");
  if (layer->multi_input() && !layer->optional_mask())
    throw ValueError(layer_label(*layer) + " is a merge layer: it should be called on a list of "
                     "inputs in the functional API, e.g. " + layer->type() + "()([a, b]), not "
                     "stacked in a Sequential model.");
  outputs_ = {append(std::move(layer), outputs_, nullptr)};
}

int Model::append(std::unique_ptr<Layer> layer, const std::vector<int>& inputs,
                  const ParamCheck& check) {
  if (compiled()) throw ValueError("Cannot add a layer to a model that is already compiled.");
  check_tensors(inputs, "add_node");
  if (inputs.empty() && layer->min_inputs() > 0)
    throw ValueError(layer_label(*layer) + " needs at least one input.");
  if ((int)inputs.size() < layer->min_inputs() || (!layer->multi_input() && inputs.size() != 1))
    throw ValueError(layer_label(*layer) + (layer->multi_input()
                                                ? " needs at least " +
                                                      std::to_string(layer->min_inputs()) +
                                                      " inputs, received "
                                                : " takes one input, received ") +
                     std::to_string(inputs.size()) + ".");
  std::vector<Shape> shapes;
  std::vector<char> batched;
  for (int t : inputs) {
    shapes.push_back(tensors_[t].shape);
    batched.push_back(tensors_[t].batched);
    if (!tensors_[t].batched && !layer->accepts_unbatched())
      throw ValueError(layer_label(*layer) + " needs inputs with a batch axis, but input " +
                       std::to_string(batched.size() - 1) + " of shape " +
                       shape_str(tensors_[t].shape) + " has none (a weight, a constant or a "
                       "reduction over the batch axis).");
  }
  layer->set_batched(batched);
  layer->build_inputs(shapes);
  if (bounded_size(layer->output_shape(), kMaxSampleFloats) < 0)
    throw ValueError(layer_label(*layer) + " would output " +
                     shape_str(layer->output_shape()) + " per batch: more than 2^28 values "
                     "per sample, or an empty axis.");
  for (const Param& p : layer->params())
    if (bounded_size(p.shape, kMaxParamFloats) < 0)
      throw ValueError(layer_label(*layer) + " would need a '" + p.name + "' of shape " +
                       shape_str(p.shape) + ": more than 2^31 values, or an empty axis.");
  if (check) check(layers_.size(), *layer);
  for (Param& p : layer->params()) {
    p.value.assign((size_t)shape_size(p.shape), p.init);
    p.grad.assign(p.value.size(), 0.0f);
  }
  layers_.push_back(std::move(layer));
  const int out = add_tensor(layers_.back()->output_shape(), (int)nodes_.size(), -1,
                             layers_.back()->output_batched());
  nodes_.push_back(Node{layers_.size() - 1, inputs, out});
  saved_.emplace_back();
  planned_ = false;
  return out;
}

int Model::add_shared_node(std::size_t layer, const std::vector<int>& inputs) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (compiled()) throw ValueError("Cannot add a layer to a model that is already compiled.");
  if (layer >= layers_.size())
    throw ValueError("add_shared_node: no layer " + std::to_string(layer) + " in a model of " +
                     std::to_string(layers_.size()) + " layers.");
  check_tensors(inputs, "add_shared_node");
  const Layer& l = *layers_[layer];
  std::vector<Shape> shapes;
  for (int t : inputs) {
    shapes.push_back(tensors_[t].shape);
    if (!tensors_[t].batched)
      throw ValueError(layer_label(l) + ": a shared layer takes inputs with a batch axis.");
  }
  if (l.accepts_unbatched())
    throw ValueError(layer_label(l) + ": an op node cannot be shared; trace it again.");
  if (shapes != l.input_shapes()) {
    std::string got, want;
    for (const Shape& s : shapes) got += (got.empty() ? "" : ", ") + shape_str(s);
    for (const Shape& s : l.input_shapes()) want += (want.empty() ? "" : ", ") + shape_str(s);
    throw ValueError(layer_label(l) + " was built for input shape " + want + " and cannot be "
                     "called again on " + got + ": a shared layer needs the same input shapes "
                     "at every call.");
  }
  const int out = add_tensor(l.output_shape(), (int)nodes_.size(), -1);
  nodes_.push_back(Node{layer, inputs, out});
  saved_.emplace_back();
  planned_ = false;
  return out;
}

void Model::set_outputs(const std::vector<int>& tensors) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (compiled()) throw ValueError("Cannot change the outputs of a compiled model.");
  check_tensors(tensors, "set_outputs");
  if (tensors.empty()) throw ValueError("A model needs at least one output.");
  for (int t : tensors)
    if (tensors_[t].producer < 0)
      throw ValueError("Output " + std::to_string(t) + " is a model input: an output must be "
                       "computed by at least one layer.");
  outputs_ = tensors;
  planned_ = false;
}

int Model::add_target(std::size_t output, const Shape& shape) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (compiled()) throw ValueError("Cannot add a target to a model that is already compiled.");
  if (output >= outputs_.size())
    throw ValueError("add_target: no output " + std::to_string(output) + ".");
  for (int d : shape)
    if (d <= 0) throw ValueError("add_target: shape " + shape_str(shape) + " must be positive.");
  if (bounded_size(shape, kMaxSampleFloats) < 0)
    throw ValueError("add_target: shape " + shape_str(shape) + " is too large.");
  const int t = add_tensor(shape, -1, -1);
  tensors_[t].target = (int)output;
  targets_.push_back(t);
  planned_ = false;
  return t;
}

void Model::add_loss_term(int t) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (compiled()) throw ValueError("Cannot add a loss to a model that is already compiled.");
  check_tensors({t}, "add_loss_term");
  loss_terms_.push_back(t);
  planned_ = false;
}

void Model::share_params(std::size_t layer, const Model& other, std::size_t other_layer) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (layer >= layers_.size() || other_layer >= other.layers_.size())
    throw ValueError("share_params: no such layer.");
  std::vector<Param>& mine = layers_[layer]->params();
  const std::vector<Param>& theirs = other.layers_[other_layer]->params();
  bool same = mine.size() == theirs.size();
  for (size_t k = 0; same && k < mine.size(); ++k)
    same = mine[k].shape == theirs[k].shape && mine[k].value.size() == theirs[k].value.size();
  if (!same)
    throw ValueError(layer_label(*layers_[layer]) + " cannot share the weights of " +
                     layer_label(*other.layers_[other_layer]) + ": their shapes differ.");
  for (size_t k = 0; k < mine.size(); ++k) mine[k].value.share(theirs[k].value);
}

void Model::set_trainable(std::size_t layer, bool trainable) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (layer >= layers_.size())
    throw ValueError("set_trainable: no layer " + std::to_string(layer) + " in a model of " +
                     std::to_string(layers_.size()) + " layers.");
  layers_[layer]->set_trainable(trainable);
}

void Model::reset_states(std::size_t layer) {
  std::lock_guard<std::mutex> lock(*mu_);  // not in the middle of another thread's batch
  if (layer >= layers_.size())
    throw ValueError("reset_states: no layer " + std::to_string(layer) + " in a model of " +
                     std::to_string(layers_.size()) + " layers.");
  layers_[layer]->reset_states();
}

void Model::last_output(std::size_t k, float* out, int n) const {
  std::lock_guard<std::mutex> lock(*mu_);
  if (k >= outputs_.size())
    throw ValueError("last_output: no output " + std::to_string(k) + " in a model of " +
                     std::to_string(outputs_.size()) + ".");
  if (n <= 0 || n != last_rows_)
    throw ValueError("last_output: the last batch had " + std::to_string(last_rows_) +
                     " rows, not " + std::to_string(n) + ".");
  const int t = outputs_[k];
  std::memcpy(out, act_ptr_[t], sizeof(float) * (size_t)n * (size_t)shape_size(tensors_[t].shape));
}

void Model::set_metrics(const std::vector<std::vector<MetricKind>>& per_output) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (!compiled()) throw ValueError("Compile the model before setting its metrics.");
  if (per_output.size() != outputs_.size())
    throw ValueError("set_metrics: " + std::to_string(per_output.size()) + " metric lists for " +
                     std::to_string(outputs_.size()) + " outputs.");
  for (size_t k = 0; k < outputs_.size(); ++k) train_[k].metrics = per_output[k];
}

void Model::set_state_metrics(const std::vector<std::vector<StateMetricSpec>>& per_output) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (!compiled()) throw ValueError("Compile the model before setting its metrics.");
  if (per_output.size() != outputs_.size())
    throw ValueError("set_state_metrics: " + std::to_string(per_output.size()) +
                     " metric lists for " + std::to_string(outputs_.size()) + " outputs.");
  for (size_t k = 0; k < outputs_.size(); ++k) train_[k].state_metrics = per_output[k];
}

void Model::compile(const LossOptions& loss, const OptimizerOptions& opt,
                    const std::vector<MetricKind>& metrics) {
  OutputTraining out;
  out.loss = loss;
  out.metrics = metrics;
  compile({out}, opt);
}

void Model::compile(const std::vector<OutputTraining>& outputs, const OptimizerOptions& opt) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (nodes_.empty()) throw ValueError("Cannot compile a model with no layers.");
  if (outputs.size() != outputs_.size())
    throw ValueError("compile: " + std::to_string(outputs.size()) + " losses for a model with " +
                     std::to_string(outputs_.size()) + " outputs.");
  for (const OutputTraining& o : outputs)
    if (!(o.weight >= 0.0f) || o.weight > 1e30f)
      throw ValueError("compile: loss weights must be finite and non-negative, received " +
                       std::to_string(o.weight) + ".");
  for (size_t k = 0; k < outputs.size(); ++k) {
    const int v = outputs[k].value_tensor;
    for (int m : outputs[k].state_tensors)
      if (m < 0 || m >= (int)tensors_.size() || tensors_[m].batched)
        throw ValueError("compile: output " + std::to_string(k) + "'s metric state tensor " +
                         std::to_string(m) + " is not an unbatched tensor of the model.");
    for (int m : outputs[k].value_metrics)
      if (m < 0 || m >= (int)tensors_.size())
        throw ValueError("compile: output " + std::to_string(k) + "'s metric tensor " +
                         std::to_string(m) + " is not a tensor of the model.");
    if (v >= 0 && (v >= (int)tensors_.size() || outputs[k].loss.kind != LossKind::Value))
      throw ValueError("compile: output " + std::to_string(k) + "'s loss tensor " +
                       std::to_string(v) + " is not a tensor of the model, or its loss kind "
                       "is not Value.");
  }
  for (size_t k = 0; k < outputs.size(); ++k)
    if (!tensors_[outputs_[k]].batched && outputs[k].loss.kind != LossKind::Value)
      throw ValueError("compile: output " + std::to_string(k) + " has no batch axis (shape " +
                       shape_str(tensors_[outputs_[k]].shape) + "); only a loss value "
                       "(LossKind::Value) can be computed on it.");
  train_ = outputs;
  OutputTraining term;  // an add_loss term: the mean of its tensor, weight 1
  term.loss.kind = LossKind::Value;
  train_.insert(train_.end(), loss_terms_.size(), term);
  optimizer_ = std::make_unique<Optimizer>(opt);
  // Frozen layers (trainable = False) and state such as moving statistics stay out of the
  // optimizer; plan() then skips backward where nothing before needs a gradient.
  param_list_.clear();
  trained_ids_.clear();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]->trainable()) continue;
    auto& params = layers_[i]->params();
    for (size_t k = 0; k < params.size(); ++k)
      if (params[k].trainable) {
        param_list_.push_back(&params[k]);
        trained_ids_.emplace_back(i, k);
      }
  }
  planned_ = false;
  plan();
}

std::vector<std::pair<std::size_t, std::size_t>> Model::trained_params() const {
  std::lock_guard<std::mutex> lock(*mu_);
  return trained_ids_;
}

void Model::restore_optimizer(long long iterations, Optimizer::Slots slots) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (!compiled()) throw ValueError("Compile the model before restoring optimizer state.");
  optimizer_->restore(iterations, std::move(slots), param_list_);
}

}  // namespace shenjing
