// Batch calls of the model graph: forward over the running nodes, the losses of every output,
// backward in reverse with gradients added up where a tensor feeds several nodes, update.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "rows.hpp"
#include "shenjing/model.hpp"
#include "denormals.hpp"

namespace shenjing {

namespace {

std::string dims_str(const std::vector<int>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// l1 * sum|w| + l2 * sum w^2 of one parameter; adds its gradient into grad when given.
double penalty(const Param& p, float* grad) {
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

// How losses and metrics see an output: `positions` rows (all axes but the last) of `width`.
struct RowLayout {
  int width;
  long long positions;
};
RowLayout row_layout(const Shape& out) {
  const int width = out.empty() ? 1 : out.back();
  return {width, shape_size(out) / width};
}

const float* gather_rows(const float* y, int width, const long long* idx, int n,
                         std::vector<float>& buf) {
  if (!idx) return y;
  if (buf.size() < (size_t)n * width) buf.resize((size_t)n * width);
  for (int i = 0; i < n; ++i)
    std::memcpy(buf.data() + (size_t)i * width, y + (size_t)idx[i] * width, width * sizeof(float));
  return buf.data();
}

// The losses layers added on their activations in the last forward (Saved::loss).
double added_losses(const std::vector<Saved>& saved, const std::vector<int>& nodes) {
  double total = 0.0;
  for (int i : nodes) total += saved[i].loss;
  return total;
}

void add_into(float* dst, const float* src, size_t len) {
  for (size_t i = 0; i < len; ++i) dst[i] += src[i];
}

}  // namespace

double Model::regularization_loss() const {
  double total = 0.0;  // Keras penalises trainable weights only
  for (const Param* p : param_list_) total += penalty(*p, nullptr);
  return total;
}

void Model::check_targets(std::size_t k, int y_width) const {
  const Shape& out = tensors_[outputs_[k]].shape;
  const auto [width, positions] = row_layout(out);
  const LossOptions& loss = train_[k].loss;
  const bool sparse = loss.kind == LossKind::SparseCategoricalCrossentropy;
  const long long per = y_width % positions == 0 ? y_width / positions : -1;
  const std::string which =
      outputs_.size() > 1 ? " of output " + std::to_string(k) : std::string();
  if (loss.kind == LossKind::Value) {
    // A traced custom loss: the targets fill its add_target tensors, which fix their size.
    for (int t : targets_)
      if (tensors_[t].target == (int)k && shape_size(tensors_[t].shape) != y_width)
        throw ValueError(std::string("Targets") + which + " of " + std::to_string(y_width) +
                         " values per sample do not fit the custom loss, which was traced for "
                         "targets of shape " + shape_str(tensors_[t].shape) + ".");
  } else if (per != (sparse ? 1 : width))
    throw ValueError(std::string("Targets") + which + " of " + std::to_string(y_width) +
                     " values per sample do not fit the output " + shape_str(out) +
                     " and the loss " + loss_name(loss.kind) + ", which needs " +
                     std::to_string(sparse ? positions : positions * width) + ".");
  std::vector<MetricKind> all = train_[k].metrics;
  all.insert(all.end(), train_[k].weighted_metrics.begin(), train_[k].weighted_metrics.end());
  for (MetricKind m : all)
    if (!metric_accepts(m, width, (int)per))
      throw ValueError(std::string("Metric ") + metric_name(m) + " cannot compare targets" +
                       which + " of " + std::to_string(per) + " value(s) per position with "
                       "the output " + shape_str(out) + ".");
  for (const StateMetricSpec& m : train_[k].state_metrics)
    state_metric_check(m, width, positions, (int)per);
}

void Model::check_batch(const std::vector<ArrayRef>& xs, const std::vector<Target>* ys) const {
  if (xs.size() != inputs_.size())
    throw ValueError("The model has " + std::to_string(inputs_.size()) + " input(s), received " +
                     std::to_string(xs.size()) + " array(s).");
  if (!ys) return;
  if (!compiled()) throw ValueError("You must call compile() before training the model.");
  if (ys->size() != outputs_.size())
    throw ValueError("The model has " + std::to_string(outputs_.size()) + " output(s), "
                     "received targets for " + std::to_string(ys->size()) + ".");
  for (size_t k = 0; k < outputs_.size(); ++k) check_targets(k, (*ys)[k].width);
  check_weights(*ys);
}

void Model::run_forward(const std::vector<ArrayRef>& xs, const std::vector<Target>* ys,
                        const long long* idx, int n, bool training,
                        const std::vector<int>& nodes) {
  RunContext base{training};
  if (training && allreduce_) base.allreduce = &allreduce_;
  last_rows_ = 0;  // set once the whole forward ran
  if (ys)
    for (int t : targets_) {
      // The batch's targets of an output, as a custom loss's y_true tensor.
      const Target& y = (*ys)[tensors_[t].target];
      float* dst = training ? acts_[t].data() : infer_slots_[infer_slot_of_[t]].data();
      const size_t w = (size_t)y.width;
      for (int i = 0; i < n; ++i)
        std::memcpy(dst + i * w, y.data + (size_t)(idx ? idx[i] : i) * w, w * sizeof(float));
      act_ptr_[t] = dst;
    }
  for (size_t k = 0; k < inputs_.size(); ++k) {
    const int t = inputs_[k];
    const size_t row = shape_size(tensors_[t].shape);
    if (idx || xs[k].dtype != DType::F32) {
      // Gather (and convert) the batch rows into the input's workspace.
      float* dst = training ? acts_[t].data() : infer_slots_[infer_slot_of_[t]].data();
      if (!gather_rows_f32(xs[k], row, idx, n, dst))
        throw ValueError("Input contains NaN or infinity (or float64 values beyond float32's "
                         "range); the model needs finite values.");
      act_ptr_[t] = dst;
    } else {
      act_ptr_[t] = static_cast<const float*>(xs[k].data);
    }
  }
  std::vector<const float*>& in = in_ptrs_;
  for (int i : nodes) {
    const Node& nd = nodes_[i];
    Layer& l = *layers_[nd.layer];
    if (l.passthrough(base)) {
      act_ptr_[nd.output] = act_ptr_[nd.inputs[0]];
      continue;
    }
    if (const float* src = l.source_output()) {
      act_ptr_[nd.output] = src;
      continue;
    }
    float* y = training ? acts_[nd.output].data()
                        : infer_slots_[infer_slot_of_[nd.output]].data();
    in.clear();
    for (int t : nd.inputs) in.push_back(act_ptr_[t]);
    RunContext ctx = base;
    ctx.saved = &saved_[i];
    l.forward_inputs(in.data(), y, n, ctx);
    act_ptr_[nd.output] = y;
  }
  last_rows_ = n;
}

// Loss and metric sums of every output: rows are the output's positions (all axes but the
// last). With grads, each loss writes its weighted gradient where back_ says.
const float* Model::batch_targets(const std::vector<Target>& ys, std::size_t k,
                                  const long long* idx, int n) {
  if (!ygathered_[k]) ygathered_[k] = gather_rows(ys[k].data, ys[k].width, idx, n, ybatch_[k]);
  return ygathered_[k];
}

double Model::losses(const std::vector<Target>& ys, const long long* idx, int n, bool grads,
                     BatchStats* st) {
  if (ybatch_.size() < outputs_.size()) ybatch_.resize(outputs_.size());
  ygathered_.assign(outputs_.size(), nullptr);  // the loss, metrics and states share one gather
  double total = 0.0;
  for (size_t k = 0; k < train_.size(); ++k) {
    const int t = loss_tensor(k);
    const auto [width, positions] = row_layout(tensors_[t].shape);
    const long long rows = (tensors_[t].batched ? n : 1) * positions;
    const bool value = train_[k].loss.kind == LossKind::Value;  // no targets
    const float* y = value ? nullptr : batch_targets(ys, k, idx, n);
    const OutputTraining& tr = train_[k];
    float* g = nullptr;
    const BackStep* step = grads && loss_step_[k] >= 0 ? &back_[loss_step_[k]] : nullptr;
    if (step) g = grad_slots_[step->dx_slot[0]].data();
    const bool fused = grads && fused_[tensors_[t].producer];
    double mean;
    if (k < outputs_.size() && wwidth_[k] && value) {
      // A traced loss is the mean of its values: one weight per value (or per sample).
      const long long len = tensor_floats(t, n);
      mean = loss_forward_backward(tr.loss, act_ptr_[t], y, len, 1, fused, g,
                                   row_weights(k, len / n, n));
    } else {
      const float* rw = k < outputs_.size() && wwidth_[k] ? row_weights(k, positions, n) : nullptr;
      mean = loss_forward_backward(tr.loss, act_ptr_[t], y, rows, width, fused, g, rw);
    }
    if (g) {
      const size_t len = (size_t)rows * width;
      if (tr.weight != 1.0f)
        for (size_t i = 0; i < len; ++i) g[i] *= tr.weight;
      if (step->add_to[0] >= 0) add_into(grad_slots_[step->add_to[0]].data(), g, len);
    }
    total += tr.weight * mean;
    if (st && k < outputs_.size()) {
      st->output_loss_sums.push_back(mean * n);
      // Per-sample sums (the caller divides by samples): the mean over a sample's positions.
      if (!tr.metrics.empty()) {
        // Metrics compare the output itself with the targets, whatever the loss.
        const int o = outputs_[k];
        const auto [ow, opos] = row_layout(tensors_[o].shape);
        const float* yk = batch_targets(ys, k, idx, n);
        for (MetricKind m : tr.metrics)
          st->metric_sums.push_back(metric_sum(m, act_ptr_[o], yk, (long long)n * opos, ow,
                                               (int)(ys[k].width / opos)) / opos);
      }
      for (int m : tr.value_metrics) {
        // The mean of the traced metric's values, as a per-sample sum (times n).
        const long long len = tensor_floats(m, n);
        double s = 0.0;
        for (long long i = 0; i < len; ++i) s += act_ptr_[m][i];
        st->metric_sums.push_back(s / (double)len * n);
      }
    }
  }
  if (st) weighted_metric_sums(ys, idx, n, st);
  if (st)  // the state metrics' batch states, after the (weighted) mean metrics
    for (size_t k = 0; k < outputs_.size(); ++k) {
      for (int m : train_[k].state_tensors) {  // custom metrics' variable increments
        const float* v = act_ptr_[m];
        st->metric_sums.insert(st->metric_sums.end(), v, v + tensor_floats(m, n));
      }
      if (train_[k].state_metrics.empty()) continue;
      const int o = outputs_[k];
      const auto [ow, opos] = row_layout(tensors_[o].shape);
      const float* yk = batch_targets(ys, k, idx, n);
      for (const StateMetricSpec& m : train_[k].state_metrics) {
        const size_t at = st->metric_sums.size();
        st->metric_sums.resize(at + state_metric_size(m, ow), 0.0);
        const float* rw = m.weighted && wwidth_[k] ? row_weights(k, opos, n) : nullptr;
        state_metric_update(m, act_ptr_[o], yk, n, opos, ow, (int)(ys[k].width / opos), rw,
                            st->metric_sums.data() + at);
      }
    }
  return total;
}

void Model::run_backward(int n) {
  RunContext base{true};
  if (allreduce_) base.allreduce = &allreduce_;
  std::vector<int>& seen = seen_;
  seen.assign(layers_.size(), 0);
  std::vector<float*>& dxs = dx_ptrs_;
  std::vector<const float*>& in = in_ptrs_;
  for (const BackStep& s : back_) {
    if (s.node < 0) continue;  // a loss: done in losses()
    const Node& nd = nodes_[s.node];
    if (weight_grad_of_[nd.output]) continue;  // its reader wrote the weight's gradient
    Layer& l = *layers_[nd.layer];
    const float* dy = grad_slots_[grad_slot_of_[nd.output]].data();
    if (l.passthrough(base)) {
      if (s.add_to[0] >= 0)
        add_into(grad_slots_[s.add_to[0]].data(), dy, (size_t)tensor_floats(nd.output, n));
      continue;
    }
    dxs.clear();
    in.clear();
    for (size_t j = 0; j < nd.inputs.size(); ++j) {
      in.push_back(act_ptr_[nd.inputs[j]]);
      float* direct = weight_grad_of_[nd.inputs[j]];
      dxs.push_back(direct ? direct
                           : s.dx_slot[j] >= 0 ? grad_slots_[s.dx_slot[j]].data() : nullptr);
    }
    // A shared layer overwrites its weight gradients at each node: keep the sum so far
    // (a layer that can add into them itself is told to instead).
    const bool later = shared_[nd.layer] && seen[nd.layer]++ > 0;
    const bool accumulate = later && !l.accumulates_param_grads();
    std::vector<Param>& params = l.params();
    if (accumulate) {
      stash_.clear();
      for (const Param& p : params) stash_.insert(stash_.end(), p.grad.begin(), p.grad.end());
    }
    RunContext ctx = base;
    ctx.saved = &saved_[s.node];
    ctx.fused = fused_[s.node];
    ctx.accumulate = later;
    l.backward_inputs(in.data(), act_ptr_[nd.output], dy, dxs.data(), n, ctx);
    if (accumulate) {
      size_t o = 0;
      for (Param& p : params) {
        add_into(p.grad.data(), stash_.data() + o, p.grad.size());
        o += p.grad.size();
      }
    }
    for (size_t j = 0; j < nd.inputs.size(); ++j)
      if (s.add_to[j] >= 0)
        add_into(grad_slots_[s.add_to[j]].data(), dxs[j], (size_t)tensor_floats(nd.inputs[j], n));
  }
}

double Model::forward_backward(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                               const long long* idx, int n, BatchStats* st) {
  check_batch(xs, &ys);
  gather_weights(ys, idx, n);
  reserve_training(n);
  run_forward(xs, &ys, idx, n, true, active_);
  const double loss = losses(ys, idx, n, true, st);
  run_backward(n);
  double reg = added_losses(saved_, active_);
  // Weight penalties: value into the loss, gradient into each parameter's gradient.
  for (Param* p : param_list_) reg += penalty(*p, p->grad.data());
  return loss + reg;
}

// Whether a batch runs with denormals flushed (denormals.hpp): models with recurrent layers.
static bool flush_denormals(const std::vector<std::unique_ptr<Layer>>& layers) {
  for (const auto& l : layers)
    if (l->flush_denormals()) return true;
  return false;
}

BatchStats Model::train_step(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                             const long long* idx, int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  DenormalGuard ftz(flush_denormals(layers_));
  BatchStats st;
  st.loss_sum = forward_backward(xs, ys, idx, n, &st) * n;
  optimizer_->apply(param_list_);
  return st;
}

BatchStats Model::gradient_step(const std::vector<ArrayRef>& xs,
                                const std::vector<Target>& ys, const long long* idx, int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  DenormalGuard ftz(flush_denormals(layers_));
  BatchStats st;
  st.loss_sum = forward_backward(xs, ys, idx, n, &st) * n;
  return st;
}

void Model::set_allreduce(AllreduceFn fn) {
  std::lock_guard<std::mutex> lock(*mu_);
  allreduce_ = std::move(fn);
}

void Model::apply_gradients() {
  std::lock_guard<std::mutex> lock(*mu_);
  if (!compiled()) throw ValueError("You must call compile() before applying gradients.");
  optimizer_->apply(param_list_);
}

double Model::compute_gradients(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                                int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  DenormalGuard ftz(flush_denormals(layers_));
  return forward_backward(xs, ys, nullptr, n, nullptr);
}

BatchStats Model::test_step(const std::vector<ArrayRef>& xs, const std::vector<Target>& ys,
                            const long long* idx, int n) {
  std::lock_guard<std::mutex> lock(*mu_);
  DenormalGuard ftz(flush_denormals(layers_));
  if (!compiled()) throw ValueError("You must call compile() before evaluating the model.");
  check_batch(xs, &ys);
  gather_weights(ys, idx, n);
  reserve_inference(n);
  run_forward(xs, &ys, idx, n, false, active_);
  BatchStats st;
  st.loss_sum = (losses(ys, idx, n, false, &st) + regularization_loss() +
                 added_losses(saved_, active_)) * n;
  return st;
}

void Model::predict(const std::vector<ArrayRef>& xs, int n, const std::vector<float*>& outs) {
  std::lock_guard<std::mutex> lock(*mu_);
  predict_unlocked(xs, n, outs);
}

void Model::predict_unlocked(const std::vector<ArrayRef>& xs, int n,
                             const std::vector<float*>& outs) {
  DenormalGuard ftz(flush_denormals(layers_));
  check_batch(xs, nullptr);
  if (outs.size() != outputs_.size())
    throw ValueError("predict: " + std::to_string(outs.size()) + " output buffers for " +
                     std::to_string(outputs_.size()) + " outputs.");
  if (nodes_.empty()) throw ValueError("The model has no layers to predict with.");
  for (size_t k = 0; k < outputs_.size(); ++k)
    if (!tensors_[outputs_[k]].batched)
      throw ValueError("predict: output " + std::to_string(k) + " has no batch axis (a loss "
                       "value); predict returns batched outputs only.");
  for (size_t k = 0; k < xs.size(); ++k) {
    if (xs[k].dtype != DType::F32) continue;  // others are checked as they are converted
    // NaN/inf would silently poison every output: refuse them (cheap integer scan).
    const size_t len = (size_t)n * shape_size(tensors_[inputs_[k]].shape);
    const uint32_t* bits = static_cast<const uint32_t*>(xs[k].data);
    uint32_t bad = 0;
    for (size_t i = 0; i < len; ++i) bad |= ((bits[i] & 0x7f800000u) == 0x7f800000u);
    if (bad) throw ValueError("Input contains NaN or infinity; predict() needs finite values.");
  }
  reserve_inference(n);
  run_forward(xs, nullptr, nullptr, n, false, predict_active_);
  for (size_t k = 0; k < outputs_.size(); ++k)
    std::memcpy(outs[k], act_ptr_[outputs_[k]],
                (size_t)n * shape_size(tensors_[outputs_[k]].shape) * sizeof(float));
}

std::vector<Tensor> Model::predict(const std::vector<const float*>& xs,
                                   const std::vector<std::vector<int>>& shapes) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (xs.size() != inputs_.size() || shapes.size() != inputs_.size())
    throw ValueError("predict: the model has " + std::to_string(inputs_.size()) + " input(s), "
                     "received " + std::to_string(xs.size()) + " array(s) and " +
                     std::to_string(shapes.size()) + " shape(s).");
  int n = -1;
  bool single = false;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Shape& want = tensors_[inputs_[k]].shape;
    const std::vector<int>& s = shapes[k];
    const bool one = s == want;
    const bool batch = s.size() == want.size() + 1 && s[0] > 0 &&
                       std::equal(want.begin(), want.end(), s.begin() + 1);
    if (!one && !batch)
      throw ValueError("predict: expected input " + std::to_string(k) + " of shape " +
                       shape_str(want) + " (a batch) or one sample of that shape without the "
                       "batch axis, received shape " + dims_str(s) + ".");
    const int rows = one ? 1 : s[0];
    if (k == 0) single = one;
    if ((k > 0 && (one != single || rows != n)))
      throw ValueError("predict: every input must have the same number of samples.");
    n = rows;
  }
  std::vector<Tensor> out(outputs_.size());
  std::vector<float*> ptrs;
  std::vector<ArrayRef> refs(xs.begin(), xs.end());
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const Shape& os = tensors_[outputs_[k]].shape;
    if (!single) out[k].shape.push_back(n);
    out[k].shape.insert(out[k].shape.end(), os.begin(), os.end());
    out[k].data.resize((size_t)n * shape_size(os));
    ptrs.push_back(out[k].data.data());
  }
  predict_unlocked(refs, n, ptrs);
  return out;
}

Tensor Model::predict(const float* x, const std::vector<int>& shape) {
  if (inputs_.size() != 1 || outputs_.size() != 1)
    throw ValueError("predict: this model has " + std::to_string(inputs_.size()) + " inputs "
                     "and " + std::to_string(outputs_.size()) + " outputs; pass one array per "
                     "input.");
  return std::move(predict(std::vector<const float*>{x}, {shape})[0]);
}

BatchStats Model::train_step(ArrayRef x, const float* y, int y_width, const long long* idx,
                             int n) {
  return train_step(std::vector<ArrayRef>{x}, {Target{y, y_width}}, idx, n);
}

double Model::compute_gradients(const float* x, const float* y, int y_width, int n) {
  return compute_gradients(std::vector<ArrayRef>{x}, {Target{y, y_width}}, n);
}

BatchStats Model::test_step(ArrayRef x, const float* y, int y_width, const long long* idx,
                            int n) {
  return test_step(std::vector<ArrayRef>{x}, {Target{y, y_width}}, idx, n);
}

void Model::predict(ArrayRef x, int n, float* out) {
  predict(std::vector<ArrayRef>{x}, n, std::vector<float*>{out});
}

}  // namespace shenjing
