// Run plans of the model graph, made once per graph and compile: which nodes run, which losses
// fuse with the last activation, which tensors need a gradient, and buffer slots reused once
// their last reader is done (a liveness pass, as memory planners in inference engines do).
#include <algorithm>

#include "shenjing/model.hpp"

namespace shenjing {

namespace {

// Equal-use buffer slots: a slot is taken for a tensor and given back after the tensor's last
// use; a taken slot grows to the largest tensor it ever holds.
// Slots of unbatched tensors (`fixed`: size floats at any batch size) are kept apart from
// batched ones (size floats per sample).
class SlotPool {
 public:
  SlotPool(std::vector<long long>& sizes, std::vector<char>& fixed) : sizes_(sizes), fixed_(fixed) {
    sizes_.clear();
    fixed_.clear();
  }
  // The free slot that fits `floats` most tightly, else the largest free one (grown), else a
  // new one. Deterministic, so plans are the same on every run.
  int take(long long floats, bool fixed = false) {
    int best = -1;
    for (int s : free_) {
      if (fixed_[s] != fixed) continue;
      const bool fits = sizes_[s] >= floats;
      if (best < 0) best = s;
      else if (fits && (sizes_[best] < floats || sizes_[s] < sizes_[best])) best = s;
      else if (!fits && sizes_[best] < floats && sizes_[s] > sizes_[best]) best = s;
    }
    if (best < 0) {
      sizes_.push_back(0);
      fixed_.push_back(fixed);
      best = (int)sizes_.size() - 1;
    } else {
      free_.erase(std::find(free_.begin(), free_.end(), best));
    }
    sizes_[best] = std::max(sizes_[best], floats);
    return best;
  }
  void give(int slot) { free_.push_back(slot); }

 private:
  std::vector<long long>& sizes_;
  std::vector<char>& fixed_;
  std::vector<int> free_;
};

}  // namespace

void Model::plan() {
  if (planned_) return;
  const int T = (int)tensors_.size();
  // Nodes some output depends on, in topological (= creation) order.
  std::vector<char> wanted(T, 0);
  for (int t : outputs_) wanted[t] = 1;
  if (compiled())  // loss tensors only matter to training and evaluation
    for (size_t k = 0; k < train_.size(); ++k) {
      wanted[loss_tensor(k)] = 1;
      for (int m : train_[k].value_metrics) wanted[m] = 1;
      for (int m : train_[k].state_tensors) wanted[m] = 1;
    }
  std::vector<char> runs(nodes_.size(), 0);
  for (int i = (int)nodes_.size(); i-- > 0;)
    if (wanted[nodes_[i].output]) {
      runs[i] = 1;
      for (int t : nodes_[i].inputs) wanted[t] = 1;
    }
  active_.clear();
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (runs[i]) active_.push_back((int)i);
  // What predict runs: the nodes the outputs need. Running this subset of active_ in the same
  // order with active_'s buffer plan is safe: every tensor keeps its slot from its producer
  // to its last reader in active_, a superset of its readers here.
  std::vector<char> out_wanted(T, 0);
  for (int t : outputs_) out_wanted[t] = 1;
  predict_active_.clear();
  for (int a = (int)active_.size(); a-- > 0;) {
    const Node& nd = nodes_[active_[a]];
    if (!out_wanted[nd.output]) continue;
    predict_active_.push_back(active_[a]);
    for (int t : nd.inputs) out_wanted[t] = 1;
  }
  std::reverse(predict_active_.begin(), predict_active_.end());
  std::vector<int> uses(layers_.size(), 0);
  for (int i : active_) ++uses[nodes_[i].layer];
  shared_.assign(layers_.size(), 0);
  for (size_t l = 0; l < layers_.size(); ++l) shared_[l] = uses[l] > 1;
  plan_inference();
  if (compiled()) plan_backward();
  planned_ = true;
  train_capacity_ = infer_capacity_ = 0;  // workspaces are re-sized on the next batch
}

void Model::plan_inference() {
  const RunContext ctx{false};
  const int T = (int)tensors_.size();
  // Remaining reads of each tensor; outputs are read after the last node.
  std::vector<int> reads(T, 0);
  for (int i : active_)
    for (int t : nodes_[i].inputs) ++reads[t];
  for (int t : outputs_) ++reads[t];
  for (size_t k = 0; k < train_.size(); ++k) {
    ++reads[loss_tensor(k)];
    for (int m : train_[k].value_metrics) ++reads[m];
    for (int m : train_[k].state_tensors) ++reads[m];
  }
  infer_slot_of_.assign(T, -1);
  SlotPool pool(infer_slot_size_, infer_slot_fixed_);
  auto take = [&](int t) { return pool.take(shape_size(tensors_[t].shape), !tensors_[t].batched); };
  std::vector<int> slot_reads;  // per slot: reads left of every tensor it holds
  auto hold = [&](int t, int slot) {
    infer_slot_of_[t] = slot;
    if ((int)slot_reads.size() <= slot) slot_reads.resize(slot + 1, 0);
    slot_reads[slot] += reads[t];
  };
  for (int t : inputs_) hold(t, take(t));
  for (int t : targets_) hold(t, take(t));
  for (int i : active_) {
    const Node& nd = nodes_[i];
    const Layer& l = *layers_[nd.layer];
    // Passthrough: the output is the input's buffer, which then lives for both.
    if (l.passthrough(ctx)) hold(nd.output, infer_slot_of_[nd.inputs[0]]);
    else hold(nd.output, take(nd.output));
    for (int t : nd.inputs)
      if (--slot_reads[infer_slot_of_[t]] == 0) pool.give(infer_slot_of_[t]);
  }
}

void Model::plan_backward() {
  const RunContext ctx{true};
  const int T = (int)tensors_.size();
  // A tensor needs a gradient when a layer that trains computed it or anything before it...
  std::vector<char> trains(layers_.size(), 0);
  for (const auto& [layer, param] : trained_ids_) trains[layer] = 1;
  // ... and a loss depends on it (a traced metric's nodes need none).
  std::vector<char> to_loss(T, 0);
  for (size_t k = 0; k < train_.size(); ++k) to_loss[loss_tensor(k)] = 1;
  for (size_t a = active_.size(); a-- > 0;) {
    const Node& nd = nodes_[active_[a]];
    if (to_loss[nd.output])
      for (int t : nd.inputs) to_loss[t] = 1;
  }
  needs_grad_.assign(T, 0);
  for (int i : active_) {
    const Node& nd = nodes_[i];
    char need = trains[nd.layer];
    for (int t : nd.inputs) need |= needs_grad_[t];
    needs_grad_[nd.output] = need && to_loss[nd.output];
  }
  // Softmax/sigmoid + the matching cross-entropy: the loss hands back dL/dz, when the output
  // feeds nothing else (every other reader needs dL/dy).
  fused_.assign(nodes_.size(), 0);
  std::vector<int> readers(T, 0);
  for (int i : active_)
    for (int t : nodes_[i].inputs) ++readers[t];
  for (size_t k = 0; k < train_.size(); ++k) ++readers[loss_tensor(k)];
  for (size_t k = 0; k < train_.size(); ++k) {
    const int t = loss_tensor(k);
    const int node = tensors_[t].producer;
    if (node < 0) continue;
    const Layer& l = *layers_[nodes_[node].layer];
    const LossOptions& loss = train_[k].loss;
    const Activation last = l.output_activation();
    const bool ce = loss.kind == LossKind::CategoricalCrossentropy ||
                    loss.kind == LossKind::SparseCategoricalCrossentropy;
    fused_[node] = readers[t] == 1 && !loss.from_logits && !l.passthrough(ctx) &&
                   ((ce && last == Activation::Softmax) ||
                    (loss.kind == LossKind::BinaryCrossentropy && last == Activation::Sigmoid));
  }
  // A weight read in place (a traced Variable) with one reader gets its gradient from that
  // reader directly, instead of through a slot and a copy.
  weight_grad_of_.assign(T, nullptr);
  for (int i : active_) {
    const Node& nd = nodes_[i];
    Layer& l = *layers_[nd.layer];
    if (l.source_output() && needs_grad_[nd.output] && readers[nd.output] == 1 &&
        !l.params().empty())
      weight_grad_of_[nd.output] = l.params()[0].grad.data();
  }
  // Walk backward (losses first: they read the outputs last), giving each gradient a slot
  // when its first contribution is written and freeing it once its producer has run.
  grad_slot_of_.assign(T, -1);
  back_.clear();
  SlotPool pool(grad_slot_size_, grad_slot_fixed_);
  auto take = [&](int t) { return pool.take(shape_size(tensors_[t].shape), !tensors_[t].batched); };
  // Where a contribution to tensor t's gradient goes: t's own slot if it has none yet, else a
  // scratch slot added into it (given back by the caller).
  auto target = [&](int t, int* slot, int* add_to, std::vector<int>& scratch) {
    if (grad_slot_of_[t] < 0) {
      grad_slot_of_[t] = *slot = take(t);
      *add_to = -1;
    } else {
      *slot = take(t);
      *add_to = grad_slot_of_[t];
      scratch.push_back(*slot);
    }
  };
  loss_step_.assign(train_.size(), -1);
  for (size_t k = 0; k < train_.size(); ++k) {
    if (!needs_grad_[loss_tensor(k)]) continue;
    loss_step_[k] = (int)back_.size();
    BackStep s;
    s.output = (int)k;
    s.dx_slot.resize(1);
    s.add_to.resize(1);
    std::vector<int> scratch;
    target(loss_tensor(k), &s.dx_slot[0], &s.add_to[0], scratch);
    for (int x : scratch) pool.give(x);
    back_.push_back(std::move(s));
  }
  for (size_t a = active_.size(); a-- > 0;) {
    const int i = active_[a];
    const Node& nd = nodes_[i];
    if (!needs_grad_[nd.output]) continue;
    const int dy = grad_slot_of_[nd.output];
    BackStep s;
    s.node = i;
    s.dx_slot.assign(nd.inputs.size(), -1);
    s.add_to.assign(nd.inputs.size(), -1);
    std::vector<int> scratch;
    if (layers_[nd.layer]->passthrough(ctx)) {
      // The input's gradient is dy itself: hand the slot over, or add dy into it.
      const int t = nd.inputs[0];
      if (needs_grad_[t] && grad_slot_of_[t] < 0) {
        grad_slot_of_[t] = dy;
        s.dx_slot[0] = dy;
      } else {
        if (needs_grad_[t]) s.add_to[0] = grad_slot_of_[t];
        pool.give(dy);
      }
      back_.push_back(std::move(s));
      continue;
    }
    for (size_t j = 0; j < nd.inputs.size(); ++j)
      if (needs_grad_[nd.inputs[j]]) target(nd.inputs[j], &s.dx_slot[j], &s.add_to[j], scratch);
    for (int x : scratch) pool.give(x);
    pool.give(dy);
    back_.push_back(std::move(s));
  }
}

void Model::reserve_training(int n) {
  if (!planned_) plan();
  if (n <= train_capacity_) return;
  const RunContext ctx{true};
  acts_.resize(tensors_.size());
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const int p = tensors_[t].producer;
    const bool aliased = p >= 0 && (layers_[nodes_[p].layer]->passthrough(ctx) ||
                                    layers_[nodes_[p].layer]->source_output());
    acts_[t].assign(aliased ? 0 : (size_t)tensor_floats((int)t, n), 0.0f);
  }
  grad_slots_.resize(grad_slot_size_.size());
  for (size_t s = 0; s < grad_slot_size_.size(); ++s)
    grad_slots_[s].assign((size_t)(grad_slot_fixed_[s] ? 1 : n) * grad_slot_size_[s], 0.0f);
  act_ptr_.assign(tensors_.size(), nullptr);
  train_capacity_ = n;
}

void Model::reserve_inference(int n) {
  if (!planned_) plan();
  if (n <= infer_capacity_) return;
  infer_slots_.resize(infer_slot_size_.size());
  for (size_t s = 0; s < infer_slot_size_.size(); ++s)
    infer_slots_[s].assign((size_t)(infer_slot_fixed_[s] ? 1 : n) * infer_slot_size_[s], 0.0f);
  act_ptr_.assign(tensors_.size(), nullptr);
  infer_capacity_ = n;
}

MemoryPlan Model::memory_plan() {
  std::lock_guard<std::mutex> lock(*mu_);
  plan();
  MemoryPlan m;
  const RunContext ctx{true};
  for (size_t t = 0; t < tensors_.size(); ++t) {
    const int p = tensors_[t].producer;
    const bool runs = p < 0 || std::find(active_.begin(), active_.end(), p) != active_.end();
    if (!runs) continue;
    if (!tensors_[t].batched) {
      if (p < 0 || !layers_[nodes_[p].layer]->source_output())
        m.unbatched_activations += shape_size(tensors_[t].shape);
      continue;
    }
    if (p < 0 || !layers_[nodes_[p].layer]->passthrough(ctx))
      m.train_activations += shape_size(tensors_[t].shape);
    if (p < 0 || !layers_[nodes_[p].layer]->passthrough(RunContext{false}))
      m.infer_per_tensor += shape_size(tensors_[t].shape);
    if (!needs_grad_.empty() && needs_grad_[t]) m.gradients_per_tensor += shape_size(tensors_[t].shape);
  }
  for (size_t s = 0; s < infer_slot_size_.size(); ++s)
    if (!infer_slot_fixed_[s]) m.infer_activations += infer_slot_size_[s];
  for (size_t s = 0; s < grad_slot_size_.size(); ++s)
    (grad_slot_fixed_[s] ? m.unbatched_gradients : m.gradients) += grad_slot_size_[s];
  return m;
}

}  // namespace shenjing
