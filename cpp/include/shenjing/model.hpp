// A model: a graph of layers (the Keras functional API; a Sequential model is its chain), a loss
// per output, an optimizer and workspaces, with one call per batch for training, evaluation
// and inference. Calls on one Model from several threads are safe: each public call holds the
// model's lock, so they run one at a time (each using every OpenMP thread inside); use one
// Model per thread to run them side by side.
//
// The graph: tensors are numbered in creation order. add_input() makes an input tensor;
// add_node() runs a layer on tensors already made and makes its output tensor, so nodes are
// always in topological order. A layer can sit at several nodes (add_shared_node: a shared
// layer, one set of weights): what a layer keeps between its forward and backward lives per
// node (Saved), and the gradients of its weights add up over its nodes.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "shenjing/layers.hpp"
#include "shenjing/losses.hpp"
#include "shenjing/metrics_state.hpp"
#include "shenjing/optimizers.hpp"
#include "shenjing/tensor.hpp"

namespace shenjing {
namespace safetensors {
struct File;
}
namespace json {
struct Value;
}

// Sums over one batch: the total loss * n (weighted sum of the output losses plus the weight
// penalties), each output's own loss * n, and metric sums (outputs in order, each output's
// metrics in order); divide by the sample count to get means. After every output's metrics
// come the weighted metrics (Keras's weighted_metrics): for each output that has some, the
// sums of weight * value, then that output's sum of weights (divide by it instead). The state
// metrics' per-batch state vectors follow all of those (outputs in order), to be added up over
// batches.
struct BatchStats {
  double loss_sum = 0.0;
  std::vector<double> output_loss_sums;
  std::vector<double> metric_sums;
};

// What compile() sets for one output: its loss, the weight of that loss in the total, and the
// metrics computed on it.
struct OutputTraining {
  LossOptions loss;
  float weight = 1.0f;
  std::vector<MetricKind> metrics;
  // A traced custom loss: with loss.kind == Value, the output's loss is the mean of this
  // tensor (computed by the graph, typically from the output and an add_target tensor)
  // instead of a built-in loss on the output; -1: none.
  int value_tensor = -1;
  // Traced custom metrics of this output (metric functions written with ops): each reports the
  // mean of its tensor's values, after the built-in `metrics`.
  std::vector<int> value_metrics;
  // Keras's weighted_metrics: built-in metrics weighted by the batch's sample weights.
  std::vector<MetricKind> weighted_metrics;
  // State metrics (AUC, Precision, ...): each appends its batch state to metric_sums after
  // every output's mean metrics (see metrics_state.hpp).
  std::vector<StateMetricSpec> state_metrics;
  // Traced custom Metric subclasses: unbatched tensors (a batch's increment of a metric
  // variable, from its assign_add) whose values are appended as they are, after this
  // output's state metrics.
  std::vector<int> state_tensors;
};

// Targets of one output for a batch call: `width` float values per sample (see train_step),
// and optionally Keras's sample weights for that output, gathered by the same row indices:
// `weight_width` finite floats per sample, 1 (one weight per sample) or one per position of
// the output but its last axis (temporal weights, (samples, T) for a (None, T, C) output; for
// a traced custom loss, one per value of its per-sample loss). Each loss value is multiplied
// by its weight and the loss stays the sum over the number of values (sum_over_batch_size).
struct Target {
  const float* data = nullptr;
  int width = 0;
  const float* weight = nullptr;
  int weight_width = 0;
};

// Floats per sample of the workspaces (memory_plan()): forward activations kept for training,
// the activations inference keeps alive at once, and the gradient buffers backward uses, with
// what one buffer per tensor would take instead of the liveness plan.
struct MemoryPlan {
  long long train_activations = 0;
  long long infer_activations = 0, infer_per_tensor = 0;
  long long gradients = 0, gradients_per_tensor = 0;
  // Floats of the tensors without the batch axis (weights and constants read in place are
  // not counted), at any batch size: activations kept for training and gradient slots.
  long long unbatched_activations = 0, unbatched_gradients = 0;
};

class Model {
 public:
  struct Node {
    std::size_t layer;        // index into layers()
    std::vector<int> inputs;  // tensor ids
    int output;               // tensor id
  };

  // An empty graph: add inputs, nodes and outputs.
  Model() = default;
  // A chain with one input of per-sample shape `input_shape`: add() appends layers.
  explicit Model(const Shape& input_shape);
  // Loads a model file written by shenjing (Python `model.save(path)`, Sequential or
  // functional): architecture and weights, ready for predict; training state in the file is
  // ignored. Throws ValueError naming the path and the problem for missing, corrupt or hostile
  // files. A functional model's inputs are numbered as Python's `model.inputs` (the order of
  // `Model(inputs=...)`, a dict's in its key order) and its outputs as `model.outputs`; layer
  // i is the file's `layers.<i>.*` (see docs/ARCHITECTURE.md, "Model files").
  //
  // Feeding several inputs: one array per input, in that order, with the same rows, e.g.
  //   Model m = Model::load("two_inputs.keras");
  //   std::vector<Tensor> out = m.predict({a.data(), b.data()},
  //                                       {{n, 6}, {n, 4}});  // (n, *input_shape(i)) each
  // or, into caller-owned outputs (float* each): predict({a.data(), b.data()}, n, {out0, out1}).
  static Model load(const std::string& path);
  // The same from a file already read (`path` names it in messages): lets a caller that also
  // needs the file's other contents read it once.
  static Model load(const safetensors::File& file, const std::string& path);

  // -- the graph ---------------------------------------------------------------------------
  // A model input of per-sample shape `shape`; returns its tensor id.
  int add_input(const Shape& shape);
  // Builds `layer` on the shapes of `inputs` (tensor ids) and adds a node running it; returns
  // the node's output tensor id. Throws ValueError when the layer does not fit the shapes or
  // would need an absurd amount of memory.
  int add_node(std::unique_ptr<Layer> layer, const std::vector<int>& inputs);
  // Another node for layer `layer` (already in the model), on `inputs` of the shapes it was
  // built for: shared weights.
  int add_shared_node(std::size_t layer, const std::vector<int>& inputs);
  // The tensors the model returns (and computes losses on), in order. Nodes that no output
  // needs are not run.
  void set_outputs(const std::vector<int>& tensors);
  // A tensor holding output `output`'s targets of each batch (the y_true of a traced custom
  // loss), of per-sample shape `shape` (its size must be the targets' width per sample).
  // Only nodes that losses need may read it: predict never fills it.
  int add_target(std::size_t output, const Shape& shape);
  // A loss term (Keras's `add_loss`: activity regularization in a traced custom layer): the
  // mean of tensor t's values is added to the training and evaluation loss. It takes no
  // targets, is not a model output and is not computed by predict.
  void add_loss_term(int t);
  // Chain building: a node on the model's single output, which becomes the node's output.
  void add(std::unique_ptr<Layer> layer);

  std::size_t num_inputs() const { return inputs_.size(); }
  std::size_t num_outputs() const { return outputs_.size(); }
  const Shape& input_shape(std::size_t i = 0) const;
  const Shape& output_shape(std::size_t i = 0) const;
  const Shape& tensor_shape(int t) const;
  // Whether tensor t has the batch axis (model inputs and layer outputs always do; primitive
  // ops may make tensors without it).
  bool tensor_batched(int t) const;
  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<std::unique_ptr<Layer>>& layers() { return layers_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

  // Layer `layer` uses the weight buffers of layer `other_layer` of `other` (the same layer
  // in another model: one set of weights, as Keras). Their params must match in number and
  // shape (ValueError otherwise). Training either model changes both; do not run the two at
  // the same time from different threads.
  void share_params(std::size_t layer, const Model& other, std::size_t other_layer);

  // Keras's `layer.trainable = False` for layer i: applied at the next compile(), after which
  // its params are not updated (nor penalised) and BatchNormalization runs in inference mode.
  void set_trainable(std::size_t layer, bool trainable);
  // Keras's reset_states() on layer `layer` (stateful recurrent layers; others: nothing).
  void reset_states(std::size_t layer);
  // Copies output k of the last batch a batch call ran forward (its n rows of output_shape(k))
  // into out: for a metric Python updates itself per batch (a custom metric whose update_state
  // cannot be traced). ValueError unless the last batch had n rows.
  void last_output(std::size_t k, float* out, int n) const;
  // One OutputTraining per output.
  void compile(const std::vector<OutputTraining>& outputs, const OptimizerOptions& opt);
  // A model with one output.
  void compile(const LossOptions& loss, const OptimizerOptions& opt,
               const std::vector<MetricKind>& metrics);
  void set_metrics(const std::vector<std::vector<MetricKind>>& per_output);
  // Keras's weighted_metrics per output (kept until the next call; compile() clears them).
  void set_weighted_metrics(const std::vector<std::vector<MetricKind>>& per_output);
  void set_state_metrics(const std::vector<std::vector<StateMetricSpec>>& per_output);
  bool compiled() const { return optimizer_ != nullptr; }
  Optimizer& optimizer() { return *optimizer_; }

  // -- batch calls -------------------------------------------------------------------------
  // One training step on rows idx[0..n) of the inputs xs (one per model input, all_rows x
  // input size each) and the targets ys (one per output): forward, losses, backward,
  // optimizer update, metric sums. idx may be null for rows 0..n. Inputs may be of any DType:
  // the batch is converted to float32 as it is gathered. A target's width is its values per
  // sample: the output's size, or one class index per position of the output but its last
  // axis for sparse_categorical_crossentropy (ValueError otherwise). Losses and metrics are
  // means over every position, each computed over the last axis.
  BatchStats train_step(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                        const long long* idx, int n);
  // Forward and backward at training behaviour without updating: fills every Param::grad
  // (weight penalties included) and returns the total loss. For gradient checks and tools.
  double compute_gradients(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                           int n);
  // train_step in two halves, for data-parallel training (gradients averaged over processes
  // in between): gradient_step runs forward and backward at training behaviour, filling every
  // Param::grad (weight penalties included) and returning train_step's sums; apply_gradients
  // then makes the optimizer step with the gradients as they are. Together: train_step.
  BatchStats gradient_step(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                           const long long* idx, int n);
  void apply_gradients();
  // Data-parallel training: training batches call `fn` (AllreduceFn, layers.hpp) where the
  // global batch matters (synchronized BatchNormalization). Null: one process.
  void set_allreduce(AllreduceFn fn);
  // Loss and metric sums at inference behaviour (no dropout, no update).
  BatchStats test_step(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                       const long long* idx, int n);
  // Writes n rows of predictions of every output (n x output size) into outs: xs holds one
  // array per model input (input_shape(i) per row, in add_input order), outs one buffer per
  // output (output_shape(k) per row, in set_outputs order).
  void predict(const std::vector<ArrayRef>& xs, int n, const std::vector<float*>& outs);

  // The same for a model with one input and one output.
  BatchStats train_step(ArrayRef x, const float* y, int y_width, const long long* idx, int n);
  double compute_gradients(const float* x, const float* y, int y_width, int n);
  BatchStats test_step(ArrayRef x, const float* y, int y_width, const long long* idx, int n);
  void predict(ArrayRef x, int n, float* out);
  // Inference on one input array per model input, each of shape (n, *input_shape(i)) (a
  // batch) or input_shape(i) (one sample, then for every input), returning one tensor per
  // output, shaped alike. Throws ValueError on any other shape or count.
  std::vector<Tensor> predict(const std::vector<const float*>& xs,
                              const std::vector<std::vector<int>>& shapes);
  // The same for one input and one output.
  Tensor predict(const float* x, const std::vector<int>& shape);

  // (layer index, param index) of every param the optimizer trains, in its slot order: the
  // trainable params of the layers that were trainable at the last compile().
  std::vector<std::pair<std::size_t, std::size_t>> trained_params() const;
  // Optimizer state for saving and resuming; slots follow trained_params().
  void restore_optimizer(long long iterations, Optimizer::Slots slots);

  // Sum of the weight penalties (l1/l2) over the parameters the optimizer trains.
  double regularization_loss() const;
  // Workspace sizes (floats per sample) of the current graph and compile.
  MemoryPlan memory_plan();

 private:
  struct TensorInfo {
    Shape shape;
    int producer = -1;  // node index, or -1 for a model input
    int input = -1;     // which model input, for inputs
    // False for a tensor without the batch axis (a weight, a constant or a reduction over the
    // batch, made by primitive ops): it holds shape_size(shape) floats at any batch size.
    bool batched = true;
    int target = -1;  // for add_target tensors: whose output's targets fill it
  };
  // Floats of tensor t at batch size n.
  long long tensor_floats(int t, int n) const {
    return shape_size(tensors_[t].shape) * (tensors_[t].batched ? n : 1);
  }
  // How backward runs one node: where the layer writes each input's gradient (a slot), and
  // which slot that gradient is then added into (-1: written in place, it was the first).
  struct BackStep {
    int node = -1;  // -1: the loss of output `output`
    int output = -1;
    std::vector<int> dx_slot, add_to;
  };

  void check_targets(std::size_t out, int y_width) const;
  // Sample weights (model_weights.cpp): their widths checked against the outputs, then the
  // batch's rows gathered (and checked finite) before anything runs, so a bad weight changes
  // nothing; row_weights expands an output's to one weight per row of `per_sample` rows.
  void check_weights(const std::vector<Target>& ys) const;
  void gather_weights(const std::vector<Target>& ys, const long long* idx, int n);
  const float* row_weights(std::size_t k, long long per_sample, int n);
  void weighted_metric_sums(const std::vector<Target>& ys, const long long* idx, int n,
                            BatchStats* st);
  // Output k's targets in batch row order, gathered once per batch (losses() resets them).
  const float* batch_targets(const std::vector<Target>& ys, std::size_t k, const long long* idx,
                             int n);
  void check_batch(const std::vector<ArrayRef>& xs, const std::vector<Target>* ys) const;
  void predict_unlocked(const std::vector<ArrayRef>& xs, int n, const std::vector<float*>& outs);
  // Forward, losses, backward; fills gradients and stats, returns the total loss.
  double forward_backward(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                          const long long* idx, int n, BatchStats* st);
  // Runs `nodes` (active_, or predict_active_ when only the outputs are wanted); ys fill the
  // add_target tensors (null for predict).
  void run_forward(const std::vector<ArrayRef>& xs, const std::vector<Target>* ys,
                   const long long* idx, int n, bool training, const std::vector<int>& nodes);
  double losses(const std::vector<Target>& ys, const long long* idx, int n, bool grads,
                BatchStats* st);
  void run_backward(int n);
  // add_node() with a hook that sees the built layer (its index and declared params) before
  // any param memory is allocated; load() uses it to match params against the file.
  using ParamCheck = std::function<void(std::size_t index, const Layer& layer)>;
  int append(std::unique_ptr<Layer> layer, const std::vector<int>& inputs,
             const ParamCheck& check);
  int add_tensor(const Shape& shape, int producer, int input, bool batched = true);
  void check_tensors(const std::vector<int>& tensors, const char* what) const;
  static Model from_file(const safetensors::File& file, const std::string& where);
  // Builds the graph of a Keras functional config (io/functional_config.cpp) into this empty
  // model; check(i, layer) sees each new layer with its weight index i (the file's
  // `layers.<i>.*`) before it allocates. On return, core layer i is weight index i.
  void build_functional(const json::Value& config, const ParamCheck& check);
  // Builds the graph of a file's "core_graph" metadata (io/core_graph.cpp: the graph as Python
  // handed it to the core, written for models whose Keras config names Python classes) into
  // this empty model; check(w, layer) sees each new layer whose params are the file's
  // `layers.<w>.*` before it allocates. Returns each core layer's w (-1: it has no params).
  std::vector<long long> build_core_graph(const json::Value& graph, const ParamCheck& check);
  // Plans: which nodes run (ancestors of the outputs), fused losses, gradient slots.
  void plan();
  void plan_backward();
  void plan_inference();
  void reserve_training(int n);
  void reserve_inference(int n);
  const float* tensor_data(int t) const { return act_ptr_[t]; }

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<TensorInfo> tensors_;
  AllreduceFn allreduce_;  // see set_allreduce
  std::vector<Node> nodes_;
  std::vector<int> inputs_, outputs_;
  std::vector<int> loss_terms_;  // add_loss_term tensors
  // Tensor of loss k: output k, then the loss terms (train_ has one entry per loss).
  int loss_tensor(std::size_t k) const {
    if (k >= outputs_.size()) return loss_terms_[k - outputs_.size()];
    return train_.size() > k && train_[k].value_tensor >= 0 ? train_[k].value_tensor
                                                            : outputs_[k];
  }
  std::vector<Saved> saved_;  // per node
  std::vector<OutputTraining> train_;
  std::unique_ptr<Optimizer> optimizer_;
  // Serialises the public calls (held for a whole batch); a pointer keeps Model movable.
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();

  // Plans (see plan()): nodes that run, in order; per node whether its dy is dL/dz (fused
  // loss); per tensor whether backward needs its gradient; the backward steps and slot sizes.
  std::vector<int> active_;
  std::vector<int> predict_active_;  // the part of active_ the outputs need
  std::vector<int> targets_;         // add_target tensors
  std::vector<char> fused_, needs_grad_;
  // Per tensor: the gradient buffer of the weight a `variable` node reads in place, when that
  // node's output has one reader: the reader's backward writes dL/dw there directly.
  std::vector<float*> weight_grad_of_;
  std::vector<BackStep> back_;
  std::vector<int> loss_step_;  // per loss (train_): its index in back_, or -1
  std::vector<long long> grad_slot_size_;
  std::vector<char> grad_slot_fixed_;  // per slot: holds unbatched tensors (size, not n * size)
  std::vector<int> grad_slot_of_;  // per tensor: the slot holding its gradient
  std::vector<int> infer_slot_of_;  // per tensor: inference activation slot (-1: aliased)
  std::vector<long long> infer_slot_size_;
  std::vector<char> infer_slot_fixed_;
  std::vector<char> shared_;  // per layer: sits at several running nodes
  std::vector<Param*> param_list_;
  std::vector<std::pair<std::size_t, std::size_t>> trained_ids_;  // param_list_ as indices
  bool planned_ = false;

  // Workspaces, sized for the largest batch seen.
  int train_capacity_ = 0, infer_capacity_ = 0;
  std::vector<std::vector<float>> acts_;         // per tensor (training)
  std::vector<std::vector<float>> infer_slots_;  // inference activations
  std::vector<std::vector<float>> grad_slots_;
  std::vector<const float*> act_ptr_;  // per tensor, this batch
  int last_rows_ = 0;                  // rows of the batch act_ptr_ holds (0: none)
  std::vector<std::vector<float>> ybatch_;
  std::vector<const float*> ygathered_;  // per output: this batch's targets once gathered
  std::vector<std::vector<float>> wbatch_, wrows_;  // per output: gathered, expanded weights
  std::vector<int> wwidth_;                          // per output: weights per sample, 0: none
  std::vector<float> stash_;  // a shared layer's weight gradients from its other nodes
  // Scratch of one batch call, kept so that the steady-state loop allocates nothing.
  std::vector<const float*> in_ptrs_;
  std::vector<float*> dx_ptrs_;
  std::vector<int> seen_;
};

}  // namespace shenjing
