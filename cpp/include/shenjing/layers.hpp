// Layers of a model (the nodes of its graph). Tensors are float32, row-major, batch first; a layer sees
// per-sample shapes and a batch size n. Layouts are channels-last, as in Keras.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shenjing/activations.hpp"
#include "shenjing/errors.hpp"

namespace shenjing {

// Parameter values: one buffer that layers of several models can share, as Keras layers keep
// one set of weights in every model they are used in (an encoder cut out of a trained
// autoencoder trains and predicts with the autoencoder's weights). Has the vector calls the
// kernels use; assign() gives the param a buffer of its own.
class ParamValues {
 public:
  float* data() { return buf_->data(); }
  const float* data() const { return buf_->data(); }
  std::size_t size() const { return buf_->size(); }
  bool empty() const { return buf_->empty(); }
  float& operator[](std::size_t i) { return (*buf_)[i]; }
  const float& operator[](std::size_t i) const { return (*buf_)[i]; }
  float* begin() { return data(); }
  float* end() { return data() + size(); }
  const float* begin() const { return data(); }
  const float* end() const { return data() + size(); }
  void assign(std::size_t n, float v) { buf_ = std::make_shared<std::vector<float>>(n, v); }
  // From now on use other's buffer (same size) instead of this one's.
  void share(const ParamValues& other) { buf_ = other.buf_; }
  bool shares(const ParamValues& other) const { return buf_ == other.buf_; }

 private:
  std::shared_ptr<std::vector<float>> buf_ = std::make_shared<std::vector<float>>();
};

// A trainable buffer and its gradient, owned by the layer; Python sees both as numpy views.
// Layer::build declares name and shape; the model allocates value and grad (filled with
// `init`) only after checking the size, so a hostile config cannot request absurd memory.
struct Param {
  std::string name;  // "kernel", "bias"
  Shape shape;
  ParamValues value;  // possibly shared with the same layer in other models
  std::vector<float> grad;
  // Weight penalty added to the loss: l1 * sum|w| + l2 * sum w^2 (Keras regularizers).
  float l1 = 0.0f, l2 = 0.0f;
  // False for state the layer updates itself (BatchNormalization's moving statistics):
  // the optimizer skips it and it has no gradient.
  bool trainable = true;
  float init = 0.0f;  // initial value of every element
  // Row-sparse gradient (Embedding's table, rows of value.size() / shape[0] floats): when
  // `sparse_rows`, grad is zero outside the rows listed in `grad_rows` (each listed once), so
  // an update that leaves a zero-gradient row unchanged (plain SGD) visits only those rows.
  bool sparse_rows = false;
  std::vector<int> grad_rows{};
};

// What a layer keeps from its forward for its backward at one node (pre-activations, dropout
// masks, argmax indices, batch statistics). The model owns one per node and passes it in the
// RunContext, so a layer called at two nodes (a shared layer) keeps two, and the layer object
// itself holds only its config and params. Scratch that does not outlive one call may stay in
// the layer.
struct Saved {
  std::vector<float> a, b;
  std::vector<int> idx;
  std::vector<Saved> nested;  // a wrapper's layers' own (Bidirectional)
  // The states of a wrapped layer run once per time step (TimeDistributed over
  // BatchNormalization in training, as Keras runs it): one per step.
  std::vector<Saved> steps{};
  // A loss the layer adds on its activations in this forward (ActivityRegularization); the
  // model adds it to the batch's total loss.
  double loss = 0.0;
};

// Sums n doubles element-wise over the processes training one model together (data-parallel
// training), in place, on every process. Set on a Model for such training (the Python package
// does it with MPI); layers whose training computation spans the batch (BatchNormalization's
// statistics) use it so that they compute on the global batch.
using AllreduceFn = std::function<void(double* data, std::size_t n)>;

struct RunContext {
  bool training = false;
  // This node's state; never null when a model calls forward or backward.
  Saved* saved = nullptr;
  // True when the loss hands back dL/dz for this node's last activation (softmax/sigmoid with
  // the matching cross-entropy, fused): backward then treats dy as dL/dz. Per node, because a
  // shared layer may end the model at one node and feed another layer at the other.
  bool fused = false;
  // At a shared layer's second and later nodes in one backward, for a layer whose
  // accumulates_param_grads(): add into the param gradients instead of overwriting them.
  bool accumulate = false;
  // Data-parallel training: the sum over processes (null when training alone).
  const AllreduceFn* allreduce = nullptr;
};

class Layer {
 public:
  virtual ~Layer() = default;
  virtual const char* type() const = 0;  // Keras class name: "Dense", "Dropout", ...
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }

  // Fixes the input shape, computes the output shape and declares the params (unallocated);
  // throws ValueError naming the layer when the input does not fit.
  virtual void build(const Shape& input) = 0;
  const Shape& input_shape() const { return in_; }
  const Shape& output_shape() const { return out_; }

  // True when the output is the input unchanged (Flatten, Reshape, Dropout at inference):
  // the model then passes the buffer through without calling forward/backward.
  virtual bool passthrough(const RunContext&) const { return false; }

  // y = layer(x) for a batch of n samples.
  virtual void forward(const float* x, float* y, int n, const RunContext& ctx) = 0;
  // Given dL/dy, writes dL/dx (skipped when dx is null: nothing before needs it) and
  // overwrites the gradients of the parameters. x and y are what forward saw and produced.
  virtual void backward(const float* x, const float* y, const float* dy, float* dx, int n,
                        const RunContext& ctx) = 0;

  // Layers with several inputs (merge layers: Add, Concatenate, ...) override these and
  // report multi_input(); the defaults serve one-input layers. The model calls only these.
  // min_inputs(): the fewest inputs the layer takes (2 for merge layers).
  virtual bool multi_input() const { return false; }
  // Sequence layers that honour a Keras mask (recurrent layers, GlobalAveragePooling1D) are
  // multi-input: the sequence, then optionally its mask (timesteps) of 0/1 (1: a real step).
  // They still stack in a Sequential chain with one input.
  virtual bool optional_mask() const { return false; }
  virtual int min_inputs() const { return 1; }
  virtual void build_inputs(const std::vector<Shape>& inputs);
  const std::vector<Shape>& input_shapes() const { return ins_; }
  virtual void forward_inputs(const float* const* xs, float* y, int n, const RunContext& ctx) {
    forward(xs[0], y, n, ctx);
  }
  // dxs[i] null: input i needs no gradient.
  virtual void backward_inputs(const float* const* xs, const float* y, const float* dy,
                               float* const* dxs, int n, const RunContext& ctx) {
    backward(xs[0], y, dy, dxs[0], n, ctx);
  }

  // Primitive ops (cpp/src/ops) also take tensors without the batch axis (weights, constants,
  // reductions over the batch): the model tells them which inputs have it before
  // build_inputs, and asks whether the output has it. Every other layer takes and gives
  // batched tensors only. min_inputs() of 0: a source node (a weight, a constant).
  virtual bool accepts_unbatched() const { return false; }
  // A source node whose output is a buffer it holds (a weight, a constant): the model reads
  // it in place instead of copying it out every batch. Null for every other layer.
  virtual const float* source_output() const { return nullptr; }
  virtual void set_batched(const std::vector<char>&) {}
  virtual bool output_batched() const { return true; }

  // Keras's reset_states(): stateful recurrent layers forget their carried states.
  virtual void reset_states() {}

  // True for layers whose values can fall into the denormal range in normal use (recurrent
  // gates): the model then runs its batches with denormals flushed to zero.
  virtual bool flush_denormals() const { return false; }

  // The activation applied last by this layer (Dense, Activation), or Linear: the loss may
  // fuse its gradient with it (RunContext::fused).
  virtual Activation output_activation() const { return Activation::Linear; }

  // True when backward honours RunContext::accumulate: the model then does not copy a shared
  // layer's gradients aside and add them back (a whole-table copy for Embedding's sparse rows).
  virtual bool accumulates_param_grads() const { return false; }

  // Virtual for wrappers (TimeDistributed), whose params are their inner layer's.
  virtual std::vector<Param>& params() { return params_; }
  virtual const std::vector<Param>& params() const { return params_; }

  // Keras's `layer.trainable`: false freezes the params (the model leaves them out of the
  // optimizer at its next compile) and makes BatchNormalization run in inference mode.
  void set_trainable(bool trainable) { trainable_ = trainable; }
  bool trainable() const { return trainable_; }

  // The state of the layer's random stream (Dropout), or null: saved with the model so that
  // resumed training draws the same masks as uninterrupted training.
  virtual uint64_t* random_state() { return nullptr; }

 protected:
  std::string name_;
  Shape in_, out_;
  std::vector<Shape> ins_;  // every input shape (just in_ for one-input layers)
  std::vector<Param> params_;
  bool trainable_ = true;
};

struct DenseOptions {
  int units = 0;
  Activation activation = Activation::Linear;
  float activation_alpha = 0.0f;
  bool use_bias = true;
  float kernel_l1 = 0.0f, kernel_l2 = 0.0f;
};
std::unique_ptr<Layer> make_dense(const DenseOptions& opt);
std::unique_ptr<Layer> make_activation(Activation act, float alpha);
std::unique_ptr<Layer> make_dropout(float rate, unsigned long long seed);
// Reshape to `target` (one entry may be -1); Flatten is Reshape({-1}).
std::unique_ptr<Layer> make_reshape(const Shape& target, const char* type_name);

// Padding of convolution and pooling windows, as Keras names it. 'same' splits like TF (the
// odd cell goes after: bottom/right); 'causal' (Conv1D only) pads (kernel-1)*dilation before.
enum class Padding : int { Valid = 0, Same, Causal };
// "valid" / "same" / "causal" (case-insensitive); ValueError naming `layer_type` otherwise.
Padding padding_from_name(const std::string& name, const char* layer_type, bool allow_causal);

// Conv1D (input (steps, channels)) and Conv2D (input (rows, cols, channels)), channels last:
// y = act(conv(x, kernel) + bias), kernel (KH, KW, in, filters) as Keras ((K, in, filters) for
// Conv1D). Index 0 of the pairs is the row axis (always 1 for Conv1D), index 1 the column axis.
struct ConvOptions {
  int rank = 2;
  int filters = 0;
  int kernel[2] = {1, 1};
  int strides[2] = {1, 1};
  int dilation[2] = {1, 1};
  Padding padding = Padding::Valid;
  Activation activation = Activation::Linear;
  float activation_alpha = 0.0f;
  bool use_bias = true;
  float kernel_l1 = 0.0f, kernel_l2 = 0.0f, bias_l1 = 0.0f, bias_l2 = 0.0f;
};
std::unique_ptr<Layer> make_conv(const ConvOptions& opt);
// Test hook: floats of col and output per convolution chunk (0 restores the default, 2 MB).
// Not thread-safe; call while no model runs.
void set_conv_chunk_floats(std::size_t floats);

// MaxPooling1D/2D, AveragePooling1D/2D and their Global variants (the window is the whole
// input; the output is (channels), or (1, 1, channels) / (1, channels) with keepdims).
struct PoolOptions {
  int rank = 2;
  bool max = true;  // max or average
  bool global = false;
  bool keepdims = false;  // global only
  int pool[2] = {2, 2};
  int strides[2] = {2, 2};
  Padding padding = Padding::Valid;
};
std::unique_ptr<Layer> make_pool(const PoolOptions& opt);
// GlobalAveragePooling1D: the global pool above, or with a mask input (optional_mask) the
// average over the unmasked steps, as Keras.
std::unique_ptr<Layer> make_global_average_1d(bool keepdims);
// Masking(mask_value): zeroes the steps (rows of the last axis) whose every value equals
// mask_value; the mask that marks them is made by ops (see _masking.py).
std::unique_ptr<Layer> make_masking(float mask_value);

// BatchNormalization over the last axis. Training: batch mean and biased variance, and
// moving = moving * momentum + batch * (1 - momentum); inference: the moving statistics.
// Params (Keras order): gamma (scale), beta (center), moving_mean, moving_variance (the last
// two not trainable).
struct BatchNormOptions {
  float momentum = 0.99f;
  float epsilon = 1e-3f;
  bool center = true;
  bool scale = true;
};
std::unique_ptr<Layer> make_batch_norm(const BatchNormOptions& opt);

// LayerNormalization (Keras 3) over trailing per-sample axes; `axes` as Keras writes them
// (counting the batch axis, negative from the end), checked against the input at build. Params
// (Keras order): gamma (if scale or rms_scaling), beta (if center and not rms_scaling), shaped
// as the normalized axes. See layers/layer_norm.cpp for the formulas.
struct LayerNormOptions {
  std::vector<int> axes{-1};
  float epsilon = 1e-3f;
  bool center = true, scale = true, rms_scaling = false;
  float gamma_l1 = 0.0f, gamma_l2 = 0.0f, beta_l1 = 0.0f, beta_l2 = 0.0f;
};
std::unique_ptr<Layer> make_layer_norm(const LayerNormOptions& opt);

// ZeroPadding1D/2D: zeros added before/after the row axis (rank 2 only) and the column axis.
struct ZeroPaddingOptions {
  int rank = 2;
  int top = 0, bottom = 0, left = 0, right = 0;
};
std::unique_ptr<Layer> make_zero_padding(const ZeroPaddingOptions& opt);

// Conv1DTranspose / Conv2DTranspose, channels last: the adjoint of a convolution (scatters each
// input cell times the kernel into the output), y = act(conv_transpose(x, kernel) + bias).
// Kernel (KH, KW, filters, in) as Keras ((K, filters, in) for 1-D). Output length per axis
// as Keras (deconv): 'valid' (in - 1) * s + max(eff, s) or (in - 1) * s + eff + op with an
// output_padding op; 'same' in * s, or (in - 1) * s + eff % 2 + op; eff = (k - 1) * d + 1.
// Keras forbids strides > 1 together with dilation_rate > 1, and op >= strides.
struct ConvTransposeOptions {
  int rank = 2;
  int filters = 0;
  int kernel[2] = {1, 1};
  int strides[2] = {1, 1};
  int dilation[2] = {1, 1};
  bool has_output_padding = false;  // Keras's output_padding=None when false
  int output_padding[2] = {0, 0};
  Padding padding = Padding::Valid;  // valid or same
  Activation activation = Activation::Linear;
  float activation_alpha = 0.0f;
  bool use_bias = true;
  float kernel_l1 = 0.0f, kernel_l2 = 0.0f, bias_l1 = 0.0f, bias_l2 = 0.0f;
};
std::unique_ptr<Layer> make_conv_transpose(const ConvTransposeOptions& opt);

// UpSampling1D (size[1] repeats of each step) and UpSampling2D (size[0] x size[1]):
// nearest repeats cells (Keras's ops.repeat); bilinear interpolates with half-pixel centres
// (Keras's ops.image.resize 'bilinear', as TF/JAX resize and torch align_corners=False).
struct UpSamplingOptions {
  int rank = 2;
  int size[2] = {2, 2};
  bool bilinear = false;  // 2-D only
};
std::unique_ptr<Layer> make_upsampling(const UpSamplingOptions& opt);

// Cropping1D/2D: removes cells before/after the row axis (rank 2 only) and the column axis.
struct CroppingOptions {
  int rank = 2;
  int top = 0, bottom = 0, left = 0, right = 0;
};
std::unique_ptr<Layer> make_cropping(const CroppingOptions& opt);

// RepeatVector(n): (features) -> (n, features).
std::unique_ptr<Layer> make_repeat_vector(int n);
// Permute(dims): output axis i is input axis dims[i] - 1 (1-based over the per-sample axes,
// as Keras); dims must be a permutation of 1..rank.
std::unique_ptr<Layer> make_permute(const std::vector<int>& dims);
// Identity: the output is the input (passed through by the model).
std::unique_ptr<Layer> make_identity();

// SimpleRNN, LSTM and GRU over input (timesteps, features), Keras 3's weights and gate orders:
// kernel (features, G * units), recurrent_kernel (units, G * units), bias (G * units), or
// (2, 3 * units) for a GRU with reset_after (input bias, recurrent bias); G = 1, 4 (i, f, c, o)
// or 3 (z, r, h). The output is the last step's h (units), or every step's (timesteps, units)
// with return_sequences, in the order processed (reversed with go_backwards, as Keras).
// activation / recurrent_activation: linear, relu, sigmoid or tanh. A second input, the mask
// (timesteps) of 0/1, makes masked steps keep the state (h, and c for an LSTM) and output it
// again, as Keras's rnn does.
enum class RecurrentCell : int { SimpleRNN = 0, LSTM, GRU };
struct RecurrentOptions {
  RecurrentCell cell = RecurrentCell::LSTM;
  int units = 0;
  Activation activation = Activation::Tanh;
  Activation recurrent_activation = Activation::Sigmoid;
  bool use_bias = true;
  bool reset_after = true;  // GRU only
  bool return_sequences = false;
  bool go_backwards = false;
  // Masked steps output zeros instead of the carried state (Keras sets it in Bidirectional).
  bool zero_output_for_mask = false;
  // return_state: the output per sample is flat, [output | h | c (LSTM)] (the functional API
  // slices it into Keras's outputs). initial_state: after the sequence (and mask) come the
  // initial states h0 (units) and c0 (LSTM), which get gradients.
  bool return_state = false;
  bool initial_state = false;
  // stateful: each batch starts from the previous batch's final states (zeros at first and
  // after reset_states()); batches must keep one size, as Keras requires.
  bool stateful = false;
  float kernel_l1 = 0.0f, kernel_l2 = 0.0f, recurrent_l1 = 0.0f, recurrent_l2 = 0.0f,
        bias_l1 = 0.0f, bias_l2 = 0.0f;
  // Training only, in [0, 1): Keras's per-sequence masks (layers/recurrent_dropout.hpp).
  float dropout = 0.0f, recurrent_dropout = 0.0f;
  unsigned long long seed = 0;  // of the masks' random stream
};
std::unique_ptr<Layer> make_recurrent(const RecurrentOptions& opt);
// Bidirectional(layer, merge_mode): `forward` and `backward` (recurrent layers, the second
// with go_backwards) run on the same input (and mask); the backward sequence is flipped back
// to input order and merged: "concat" (last axis), "sum", "mul" or "ave". The params are the
// forward layer's, then the backward one's, each name prefixed "forward_" / "backward_".
enum class BidiMerge : int { Concat = 0, Sum, Mul, Ave };
std::unique_ptr<Layer> make_bidirectional(std::unique_ptr<Layer> forward,
                                          std::unique_ptr<Layer> backward, BidiMerge mode);
// Embedding: ids (any per-sample shape; float32 holding integers) -> rows of the table
// `embeddings` (input_dim, output_dim); output shape = input shape + (output_dim). Ids are
// truncated toward zero (Keras casts them to int32); one outside [0, input_dim) or NaN is a
// ValueError from forward. input_dim is at most 2^24 (ids travel as exact float32). The
// table's gradient is row-sparse (Param::sparse_rows) unless a regularizer makes it dense.
struct EmbeddingOptions {
  int input_dim = 0, output_dim = 0;
  bool mask_zero = false;  // accepted for the model's masks; the lookup is the same
  float l1 = 0.0f, l2 = 0.0f;
};
std::unique_ptr<Layer> make_embedding(const EmbeddingOptions& opt);

// Keras's merge layers (several inputs; build them with build_inputs). Elementwise merges
// broadcast as Keras does: shapes aligned on their last axes, axes of size 1 stretch.
// Subtract takes exactly 2 inputs, the others at least 1.
enum class MergeOp : int { Add = 0, Subtract, Multiply, Average, Maximum, Minimum };
std::unique_ptr<Layer> make_merge(MergeOp op);
// Concatenate along `axis`, counted as Keras counts it (batch axis included, so -1 is the last
// axis); axis 0 (the batch axis) is a ValueError.
std::unique_ptr<Layer> make_concatenate(int axis);
// Dot of two inputs along axis1 of the first and axis2 of the second (Keras's batch_dot; axes
// counted with the batch axis, negative from the end; 0 is a ValueError); `normalize`
// L2-normalizes both along those axes first (cosine proximity).
std::unique_ptr<Layer> make_dot(int axis1, int axis2, bool normalize);
// TimeDistributed(inner): `inner` (one batched input, not yet built) on every time slice of a
// (time, ...) input; its params are the wrapper's. See layers/time_distributed.cpp.
std::unique_ptr<Layer> make_time_distributed(std::unique_ptr<Layer> inner);

}  // namespace shenjing
