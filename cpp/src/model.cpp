// Sequential model: forward through the layers, loss, backward, update — one call per batch.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "rows.hpp"
#include "shenjing/model.hpp"

namespace shenjing {

Model::Model(const Shape& input_shape) : input_(input_shape) {
  for (int d : input_)
    if (d <= 0)
      throw ValueError("Input shape must have positive dimensions, received " +
                       shape_str(input_) + ".");
  if (shape_size(input_) > (1LL << 28))  // kMaxSampleFloats; dims are positive ints
    throw ValueError("Input shape " + shape_str(input_) + " has more than 2^28 values per "
                     "sample.");
}

const Shape& Model::output_shape() const {
  return layers_.empty() ? input_ : layers_.back()->output_shape();
}

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

std::string dims_str(const std::vector<int>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string layer_label(const Layer& l) {
  return "Layer '" + l.name() + "' (" + l.type() + ")";
}

}  // namespace

void Model::add(std::unique_ptr<Layer> layer) {
  std::lock_guard<std::mutex> lock(*mu_);
  append(std::move(layer), nullptr);
}

void Model::append(std::unique_ptr<Layer> layer, const ParamCheck& check) {
  if (compiled())
    throw ValueError("Cannot add a layer to a model that is already compiled.");
  layer->build(output_shape());
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
  saved_.emplace_back();
  capacity_ = 0;  // workspaces are re-planned on the next batch
}

void Model::set_trainable(std::size_t layer, bool trainable) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (layer >= layers_.size())
    throw ValueError("set_trainable: no layer " + std::to_string(layer) + " in a model of " +
                     std::to_string(layers_.size()) + " layers.");
  layers_[layer]->set_trainable(trainable);
}

void Model::set_metrics(const std::vector<MetricKind>& metrics) {
  std::lock_guard<std::mutex> lock(*mu_);
  metrics_ = metrics;
}

void Model::compile(const LossOptions& loss, const OptimizerOptions& opt,
                    const std::vector<MetricKind>& metrics) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (layers_.empty()) throw ValueError("Cannot compile a model with no layers.");
  loss_ = loss;
  metrics_ = metrics;
  optimizer_ = std::make_unique<Optimizer>(opt);
  // Softmax + categorical CE and sigmoid + binary CE: the loss hands back dL/dz directly.
  const Activation last = layers_.back()->output_activation();
  const bool ce = loss.kind == LossKind::CategoricalCrossentropy ||
                  loss.kind == LossKind::SparseCategoricalCrossentropy;
  fused_ = !loss.from_logits &&
           ((ce && last == Activation::Softmax) ||
            (loss.kind == LossKind::BinaryCrossentropy && last == Activation::Sigmoid));
  // Frozen layers (trainable = False) and state such as moving statistics stay out of the
  // optimizer; layers before the first one with something to train need no backward.
  param_list_.clear();
  trained_ids_.clear();
  first_trained_ = layers_.size();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]->trainable()) continue;
    auto& params = layers_[i]->params();
    for (size_t k = 0; k < params.size(); ++k)
      if (params[k].trainable) {
        param_list_.push_back(&params[k]);
        trained_ids_.emplace_back(i, k);
        first_trained_ = std::min(first_trained_, i);
      }
  }
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

void Model::reserve(int n) {
  if (n <= capacity_) return;
  const size_t L = layers_.size();
  acts_.resize(L + 1);
  act_ptr_.assign(L + 1, nullptr);
  size_t widest = shape_size(input_);
  for (size_t i = 0; i < L; ++i) {
    acts_[i + 1].assign((size_t)n * shape_size(layers_[i]->output_shape()), 0.0f);
    widest = std::max(widest, (size_t)shape_size(layers_[i]->output_shape()));
  }
  acts_[0].assign((size_t)n * shape_size(input_), 0.0f);
  grad_a_.assign((size_t)n * widest, 0.0f);
  grad_b_.assign((size_t)n * widest, 0.0f);
  capacity_ = n;
}

const float* Model::run_forward(ArrayRef x, const long long* idx, int n,
                                const RunContext& ctx) {
  reserve(n);
  const size_t row = shape_size(input_);
  if (idx || x.dtype != DType::F32) {
    // Gather (and convert) the batch rows into the input workspace.
    if (!gather_rows_f32(x, row, idx, n, acts_[0].data()))
      throw ValueError("Input contains NaN or infinity (or float64 values beyond float32's "
                       "range); the model needs finite values.");
    act_ptr_[0] = acts_[0].data();
  } else {
    act_ptr_[0] = static_cast<const float*>(x.data);
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    if (l.passthrough(ctx)) {
      act_ptr_[i + 1] = act_ptr_[i];
      continue;
    }
    RunContext c = ctx;
    c.saved = &saved_[i];
    l.forward(act_ptr_[i], acts_[i + 1].data(), n, c);
    act_ptr_[i + 1] = acts_[i + 1].data();
  }
  return act_ptr_.back();
}

// l1 * sum|w| + l2 * sum w^2 of one parameter; adds its gradient into grad when given.
static double penalty(const Param& p, float* grad) {
  if (p.l1 == 0.0f && p.l2 == 0.0f) return 0.0;
  double a = 0.0, s = 0.0;
  for (size_t i = 0; i < p.value.size(); ++i) {
    const float w = p.value[i];
    a += std::fabs(w);
    s += (double)w * w;
    if (grad)
      grad[i] += 2.0f * p.l2 * w + p.l1 * (w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f));
  }
  return p.l1 * a + p.l2 * s;
}

double Model::regularization_loss() const {
  double total = 0.0;  // Keras penalises trainable weights only
  for (const Param* p : param_list_) total += penalty(*p, nullptr);
  return total;
}

// How losses and metrics see an output: `positions` rows (all axes but the last) of `width`.
struct RowLayout {
  int width;
  long long positions;
};
static RowLayout row_layout(const Shape& out) {
  const int width = out.empty() ? 1 : out.back();
  return {width, shape_size(out) / width};
}

void Model::check_targets(int y_width) const {
  const Shape& out = output_shape();
  const auto [width, positions] = row_layout(out);
  const bool sparse = loss_.kind == LossKind::SparseCategoricalCrossentropy;
  const long long per = y_width % positions == 0 ? y_width / positions : -1;
  if (per != (sparse ? 1 : width))
    throw ValueError(std::string("Targets of ") + std::to_string(y_width) + " values per "
                     "sample do not fit the output " + shape_str(out) + " and the loss " +
                     loss_name(loss_.kind) + ", which needs " +
                     std::to_string(sparse ? positions : positions * width) + ".");
  for (MetricKind m : metrics_)
    if (!metric_accepts(m, width, (int)per))
      throw ValueError(std::string("Metric ") + metric_name(m) + " cannot compare targets of " +
                       std::to_string(per) + " value(s) per position with the output " +
                       shape_str(out) + ".");
}

static const float* gather_rows(const float* y, int width, const long long* idx, int n,
                                std::vector<float>& buf) {
  if (!idx) return y;
  if (buf.size() < (size_t)n * width) buf.resize((size_t)n * width);
  for (int i = 0; i < n; ++i)
    std::memcpy(buf.data() + (size_t)i * width, y + (size_t)idx[i] * width, width * sizeof(float));
  return buf.data();
}

// Loss and metric sums of one batch: rows are the output's positions (all axes but the last).
static double batch_loss(const LossOptions& loss, const std::vector<MetricKind>& metrics,
                         const Shape& out_shape, const float* out, const float* y, int y_width,
                         int n, bool fused, float* grad, BatchStats* st) {
  const auto [width, positions] = row_layout(out_shape);
  const long long rows = (long long)n * positions;
  const double mean = loss_forward_backward(loss, out, y, rows, width, fused, grad);
  // Per-sample sums (the caller divides by samples): the mean over a sample's positions.
  if (st)
    for (MetricKind m : metrics)
      st->metric_sums.push_back(
          metric_sum(m, out, y, rows, width, (int)(y_width / positions)) / positions);
  return mean;
}

double Model::forward_backward(ArrayRef x, const float* y, int y_width, const long long* idx,
                               int n, BatchStats* st) {
  if (!compiled()) throw ValueError("You must call compile() before training the model.");
  check_targets(y_width);
  RunContext ctx{true};
  const float* out = run_forward(x, idx, n, ctx);
  const float* yb = gather_rows(y, y_width, idx, n, ybatch_);
  float* g = grad_a_.data();
  const double loss =
      batch_loss(loss_, metrics_, output_shape(), out, yb, y_width, n, fused_, g, st);

  // Backward: ping-pong between two gradient buffers; the first computing layer gets no dx,
  // and layers before the first one with params to train are skipped (frozen feature
  // extractors cost no backward).
  size_t first = first_trained_;
  while (first < layers_.size() && layers_[first]->passthrough(ctx)) ++first;
  float* other = grad_b_.data();
  for (size_t i = layers_.size(); i-- > first;) {
    Layer& l = *layers_[i];
    if (l.passthrough(ctx)) continue;
    float* dx = i == first ? nullptr : other;
    RunContext c = ctx;
    c.saved = &saved_[i];
    c.fused = fused_ && i + 1 == layers_.size();
    l.backward(act_ptr_[i], act_ptr_[i + 1], g, dx, n, c);
    if (dx) std::swap(g, other);
  }
  // Weight penalties: value into the loss, gradient into each parameter's gradient.
  double reg = 0.0;
  for (Param* p : param_list_) reg += penalty(*p, p->grad.data());
  return loss + reg;
}

BatchStats Model::train_step(ArrayRef x, const float* y, int y_width, const long long* idx,
                             int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  BatchStats st;
  st.loss_sum = forward_backward(x, y, y_width, idx, n, &st) * n;
  optimizer_->apply(param_list_);
  return st;
}

double Model::compute_gradients(const float* x, const float* y, int y_width, int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  return forward_backward(x, y, y_width, nullptr, n, nullptr);
}

BatchStats Model::test_step(ArrayRef x, const float* y, int y_width, const long long* idx,
                            int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (!compiled()) throw ValueError("You must call compile() before evaluating the model.");
  check_targets(y_width);
  RunContext ctx{false};
  const float* out = run_forward(x, idx, n, ctx);
  const float* yb = gather_rows(y, y_width, idx, n, ybatch_);
  BatchStats st;
  st.loss_sum = (batch_loss(loss_, metrics_, output_shape(), out, yb, y_width, n, fused_,
                            nullptr, &st) + regularization_loss()) * n;
  return st;
}

void Model::predict(ArrayRef x, int n, float* out) {
  std::lock_guard<std::mutex> lock(*mu_);
  predict_unlocked(x, n, out);
}

void Model::predict_unlocked(ArrayRef x, int n, float* out) {
  if (x.dtype == DType::F32) {
    // NaN/inf would silently poison every output: refuse them (cheap integer scan). Other
    // types are checked as run_forward converts them.
    const size_t len = (size_t)n * shape_size(input_);
    const uint32_t* bits = static_cast<const uint32_t*>(x.data);
    uint32_t bad = 0;
    for (size_t i = 0; i < len; ++i) bad |= ((bits[i] & 0x7f800000u) == 0x7f800000u);
    if (bad) throw ValueError("Input contains NaN or infinity; predict() needs finite values.");
  }
  RunContext ctx{false};
  const float* y = run_forward(x, nullptr, n, ctx);
  std::memcpy(out, y, (size_t)n * shape_size(output_shape()) * sizeof(float));
}

Tensor Model::predict(const float* x, const std::vector<int>& shape) {
  const bool single = shape == input_;
  const bool batch = shape.size() == input_.size() + 1 && shape[0] > 0 &&
                     std::equal(input_.begin(), input_.end(), shape.begin() + 1);
  if (!single && !batch)
    throw ValueError("predict: expected input of shape " + shape_str(input_) +
                     " (a batch) or one sample of that shape without the batch axis, received " +
                     "shape " + dims_str(shape) + ".");
  Tensor out;
  const int n = single ? 1 : shape[0];
  if (batch) out.shape.push_back(n);
  out.shape.insert(out.shape.end(), output_shape().begin(), output_shape().end());
  out.data.resize((size_t)n * shape_size(output_shape()));
  std::lock_guard<std::mutex> lock(*mu_);
  predict_unlocked(x, n, out.data.data());
  return out;
}

}  // namespace shenjing
