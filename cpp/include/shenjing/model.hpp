// A Sequential model: layers, a loss, an optimizer and workspaces, with one call per batch for
// training, evaluation and inference. Calls on one Model from several threads are safe: each
// public call holds the model's lock, so they run one at a time (each using every OpenMP
// thread inside); use one Model per thread to run them side by side.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "shenjing/layers.hpp"
#include "shenjing/losses.hpp"
#include "shenjing/optimizers.hpp"
#include "shenjing/tensor.hpp"

namespace shenjing {
namespace safetensors {
struct File;
}

// Sums over one batch: loss * n (regularization included) and metric sums; divide by the
// sample count to get means.
struct BatchStats {
  double loss_sum = 0.0;
  std::vector<double> metric_sums;
};

class Model {
 public:
  explicit Model(const Shape& input_shape);
  // Loads a model file written by shenjing (Python `model.save(path)`): architecture and
  // weights, ready for predict; training state in the file is ignored. Throws ValueError
  // naming the path and the problem for missing, corrupt or hostile files.
  static Model load(const std::string& path);
  // The same from a file already read (`path` names it in messages): lets a caller that also
  // needs the file's other contents read it once.
  static Model load(const safetensors::File& file, const std::string& path);

  // Builds the layer on the current output shape and appends it. Throws ValueError when the
  // layer does not fit the shape or would need an absurd amount of memory.
  void add(std::unique_ptr<Layer> layer);
  const Shape& input_shape() const { return input_; }
  const Shape& output_shape() const;
  std::vector<std::unique_ptr<Layer>>& layers() { return layers_; }

  // Keras's `layer.trainable = False` for layer i: applied at the next compile(), after which
  // its params are not updated (nor penalised) and BatchNormalization runs in inference mode.
  void set_trainable(std::size_t layer, bool trainable);
  void compile(const LossOptions& loss, const OptimizerOptions& opt,
               const std::vector<MetricKind>& metrics);
  void set_metrics(const std::vector<MetricKind>& metrics);
  bool compiled() const { return optimizer_ != nullptr; }
  Optimizer& optimizer() { return *optimizer_; }

  // One training step on rows idx[0..n) of x (all_rows x input) and y (all_rows x y_width):
  // forward, loss, backward, optimizer update, metric sums. idx may be null for rows 0..n.
  // x may be of any DType: the batch is converted to float32 as it is gathered.
  // y_width is the targets per sample: the output's size, or one class index per position of
  // the output but its last axis for sparse_categorical_crossentropy (ValueError otherwise).
  // Losses and metrics are means over every position, each computed over the last axis.
  BatchStats train_step(ArrayRef x, const float* y, int y_width, const long long* idx, int n);
  // Forward and backward at training behaviour without updating: fills every Param::grad
  // (weight penalties included) and returns the mean loss. For gradient checks and tools.
  double compute_gradients(const float* x, const float* y, int y_width, int n);
  // Loss and metric sums at inference behaviour (no dropout, no update).
  BatchStats test_step(ArrayRef x, const float* y, int y_width, const long long* idx, int n);
  // Writes n rows of predictions (n x output size) into out.
  void predict(ArrayRef x, int n, float* out);
  // Inference on a batch, shape = (n, *input_shape()), returning (n, *output_shape()); or on
  // one sample, shape = input_shape(), returning output_shape(). Throws ValueError on any
  // other shape.
  Tensor predict(const float* x, const std::vector<int>& shape);

  // (layer index, param index) of every param the optimizer trains, in its slot order: the
  // trainable params of the layers that were trainable at the last compile().
  std::vector<std::pair<std::size_t, std::size_t>> trained_params() const;
  // Optimizer state for saving and resuming; slots follow trained_params().
  void restore_optimizer(long long iterations, Optimizer::Slots slots);

  // Sum of the weight penalties (l1/l2) over the parameters the optimizer trains.
  double regularization_loss() const;

 private:
  // Throws ValueError unless y_width targets per sample suit the loss and the metrics.
  void check_targets(int y_width) const;
  void predict_unlocked(ArrayRef x, int n, float* out);
  // Forward, loss, backward; fills gradients and metric sums, returns the mean data loss
  // plus the weight penalty.
  double forward_backward(ArrayRef x, const float* y, int y_width, const long long* idx, int n,
                          BatchStats* st);
  const float* run_forward(ArrayRef x, const long long* idx, int n, const RunContext& ctx);
  // add() with a hook that sees the built layer (its index and declared params) before any
  // param memory is allocated; load() uses it to match params against the file.
  using ParamCheck = std::function<void(std::size_t index, const Layer& layer)>;
  void append(std::unique_ptr<Layer> layer, const ParamCheck& check);
  static Model from_file(const safetensors::File& file, const std::string& where);
  void reserve(int n);

  Shape input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  LossOptions loss_;
  std::vector<MetricKind> metrics_;
  std::unique_ptr<Optimizer> optimizer_;
  bool fused_ = false;
  // Layers before this one have no params to train: backward stops there. Set by compile().
  std::size_t first_trained_ = 0;
  // Serialises the public calls (held for a whole batch); a pointer keeps Model movable.
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();

  // Workspaces, sized for the largest batch seen: acts_[i] is the input of layer i.
  int capacity_ = 0;
  std::vector<std::vector<float>> acts_;
  std::vector<const float*> act_ptr_;
  std::vector<Saved> saved_;  // per layer
  std::vector<float> grad_a_, grad_b_;
  std::vector<float> ybatch_;
  std::vector<Param*> param_list_;
  std::vector<std::pair<std::size_t, std::size_t>> trained_ids_;  // param_list_ as indices
};

}  // namespace shenjing
