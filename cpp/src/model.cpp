// Sequential model: forward through the layers, loss, backward, update — one call per batch.
#include <algorithm>
#include <cmath>
#include <cstring>

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

void Model::add(std::unique_ptr<Layer> layer) { append(std::move(layer), nullptr); }

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
  capacity_ = 0;  // workspaces are re-planned on the next batch
}

void Model::compile(const LossOptions& loss, const OptimizerOptions& opt,
                    const std::vector<MetricKind>& metrics) {
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
  layers_.back()->set_activation_fused(fused_);
  param_list_.clear();
  for (auto& l : layers_)
    for (auto& p : l->params())
      if (p.trainable) param_list_.push_back(&p);
}

void Model::restore_optimizer(long long iterations, Optimizer::Slots slots) {
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

const float* Model::run_forward(const float* x, const long long* idx, int n,
                                const RunContext& ctx) {
  reserve(n);
  const size_t row = shape_size(input_);
  if (idx) {  // gather the batch rows into the input workspace
    float* dst = acts_[0].data();
#pragma omp parallel for schedule(static) if (n * row > 65536)
    for (int i = 0; i < n; ++i)
      std::memcpy(dst + (size_t)i * row, x + (size_t)idx[i] * row, row * sizeof(float));
    act_ptr_[0] = dst;
  } else {
    act_ptr_[0] = x;
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    if (l.passthrough(ctx)) {
      act_ptr_[i + 1] = act_ptr_[i];
      continue;
    }
    l.forward(act_ptr_[i], acts_[i + 1].data(), n, ctx);
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
  double total = 0.0;
  for (auto& l : layers_)
    for (auto& p : l->params()) total += penalty(p, nullptr);
  return total;
}

static const float* gather_rows(const float* y, int width, const long long* idx, int n,
                                std::vector<float>& buf) {
  if (!idx) return y;
  if (buf.size() < (size_t)n * width) buf.resize((size_t)n * width);
  for (int i = 0; i < n; ++i)
    std::memcpy(buf.data() + (size_t)i * width, y + (size_t)idx[i] * width, width * sizeof(float));
  return buf.data();
}

double Model::forward_backward(const float* x, const float* y, int y_width,
                               const long long* idx, int n, BatchStats* st) {
  if (!compiled()) throw ValueError("You must call compile() before training the model.");
  RunContext ctx{true};
  const float* out = run_forward(x, idx, n, ctx);
  const float* yb = gather_rows(y, y_width, idx, n, ybatch_);
  const int width = (int)shape_size(output_shape());

  float* g = grad_a_.data();
  const double loss = loss_forward_backward(loss_, out, yb, n, width, fused_, g);
  if (st)
    for (MetricKind m : metrics_) st->metric_sums.push_back(metric_sum(m, out, yb, n, width));

  // Backward: ping-pong between two gradient buffers; the first computing layer gets no dx.
  size_t first = 0;
  while (first < layers_.size() && layers_[first]->passthrough(ctx)) ++first;
  float* other = grad_b_.data();
  for (size_t i = layers_.size(); i-- > first;) {
    Layer& l = *layers_[i];
    if (l.passthrough(ctx)) continue;
    float* dx = i == first ? nullptr : other;
    l.backward(act_ptr_[i], act_ptr_[i + 1], g, dx, n, ctx);
    if (dx) std::swap(g, other);
  }
  // Weight penalties: value into the loss, gradient into each parameter's gradient.
  double reg = 0.0;
  for (Param* p : param_list_) reg += penalty(*p, p->grad.data());
  return loss + reg;
}

BatchStats Model::train_step(const float* x, const float* y, int y_width, const long long* idx,
                             int n) {
  BatchStats st;
  st.loss_sum = forward_backward(x, y, y_width, idx, n, &st) * n;
  optimizer_->apply(param_list_);
  return st;
}

double Model::compute_gradients(const float* x, const float* y, int y_width, int n) {
  return forward_backward(x, y, y_width, nullptr, n, nullptr);
}

BatchStats Model::test_step(const float* x, const float* y, int y_width, const long long* idx,
                            int n) {
  if (!compiled()) throw ValueError("You must call compile() before evaluating the model.");
  RunContext ctx{false};
  const float* out = run_forward(x, idx, n, ctx);
  const float* yb = gather_rows(y, y_width, idx, n, ybatch_);
  const int width = (int)shape_size(output_shape());
  BatchStats st;
  st.loss_sum = (loss_forward_backward(loss_, out, yb, n, width, fused_, nullptr) +
                 regularization_loss()) * n;
  for (MetricKind m : metrics_) st.metric_sums.push_back(metric_sum(m, out, yb, n, width));
  return st;
}

void Model::predict(const float* x, int n, float* out) {
  // NaN/inf would silently poison every output: refuse them (cheap integer scan).
  const size_t len = (size_t)n * shape_size(input_);
  const uint32_t* bits = reinterpret_cast<const uint32_t*>(x);
  uint32_t bad = 0;
  for (size_t i = 0; i < len; ++i) bad |= ((bits[i] & 0x7f800000u) == 0x7f800000u);
  if (bad) throw ValueError("Input contains NaN or infinity; predict() needs finite values.");
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
  predict(x, n, out.data.data());
  return out;
}

}  // namespace shenjing
