// Keras's sample weights in the batch calls: each output's weights are gathered by the same row
// indices as its targets, checked before the batch runs, and expanded to one weight per loss
// row; weighted metrics report sum(weight * value) and the sum of the weights.
#include <cmath>
#include <cstring>
#include <string>

#include "shenjing/model.hpp"

namespace shenjing {

namespace {

// How many weights per sample output k's loss takes besides 1: one per position of the output
// but its last axis, or for a traced loss one per value of its per-sample loss tensor.
long long loss_positions(const Shape& out) {
  const long long width = out.empty() ? 1 : out.back();
  return shape_size(out) / width;
}

}  // namespace

void Model::set_weighted_metrics(const std::vector<std::vector<MetricKind>>& per_output) {
  std::lock_guard<std::mutex> lock(*mu_);
  if (!compiled()) throw ValueError("Compile the model before setting its metrics.");
  if (per_output.size() != outputs_.size())
    throw ValueError("set_weighted_metrics: " + std::to_string(per_output.size()) +
                     " metric lists for " + std::to_string(outputs_.size()) + " outputs.");
  for (size_t k = 0; k < outputs_.size(); ++k) train_[k].weighted_metrics = per_output[k];
}

void Model::check_weights(const std::vector<Target>& ys) const {
  for (size_t k = 0; k < ys.size() && k < outputs_.size(); ++k) {
    const Target& y = ys[k];
    if (!y.weight) continue;
    const std::string which =
        outputs_.size() > 1 ? " of output " + std::to_string(k) : std::string();
    const int t = loss_tensor(k);
    const bool value = train_[k].loss.kind == LossKind::Value;
    if (!tensors_[t].batched)
      throw ValueError("sample_weight" + which + ": the custom loss of this output is one value "
                       "for the whole batch, which per-sample weights cannot weight.");
    const long long out_pos = loss_positions(tensors_[outputs_[k]].shape);
    const long long loss_pos = value ? shape_size(tensors_[t].shape) : out_pos;
    const bool weighted_metrics = !train_[k].weighted_metrics.empty();
    const int w = y.weight_width;
    const bool ok = w == 1 || (w == loss_pos && (!weighted_metrics || w == out_pos));
    if (!ok)
      throw ValueError("sample_weight" + which + " has " + std::to_string(w) + " values per "
                       "sample; the output " + shape_str(tensors_[outputs_[k]].shape) +
                       " takes 1 (one weight per sample) or " + std::to_string(loss_pos) +
                       " (one per position of the output but its last axis).");
  }
}

void Model::gather_weights(const std::vector<Target>& ys, const long long* idx, int n) {
  if (wbatch_.size() < outputs_.size()) {
    wbatch_.resize(outputs_.size());
    wrows_.resize(outputs_.size());
  }
  wwidth_.assign(outputs_.size(), 0);
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const Target& y = ys[k];
    if (!y.weight) continue;
    const size_t w = (size_t)y.weight_width;
    std::vector<float>& dst = wbatch_[k];
    if (dst.size() < (size_t)n * w) dst.resize((size_t)n * w);
    for (int i = 0; i < n; ++i)
      std::memcpy(dst.data() + i * w, y.weight + (size_t)(idx ? idx[i] : i) * w,
                  w * sizeof(float));
    // A NaN or infinite weight would silently poison the step: refuse it before anything
    // runs (Keras accepts negative weights, and so does this).
    for (size_t i = 0; i < (size_t)n * w; ++i)
      if (!std::isfinite(dst[i]))
        throw ValueError("sample_weight contains NaN or infinity (sample " +
                         std::to_string(idx ? idx[i / w] : (long long)(i / w)) + "); weights "
                         "must be finite.");
    wwidth_[k] = (int)w;
  }
}

const float* Model::row_weights(std::size_t k, long long per_sample, int n) {
  if (wwidth_[k] == per_sample) return wbatch_[k].data();
  // One weight per sample, repeated over the sample's rows.
  std::vector<float>& rows = wrows_[k];
  if (rows.size() < (size_t)(n * per_sample)) rows.resize((size_t)(n * per_sample));
  for (int i = 0; i < n; ++i)
    for (long long r = 0; r < per_sample; ++r) rows[(size_t)(i * per_sample + r)] = wbatch_[k][i];
  return rows.data();
}

void Model::weighted_metric_sums(const std::vector<Target>& ys, const long long* idx, int n,
                                 BatchStats* st) {
  for (size_t k = 0; k < outputs_.size(); ++k) {
    const std::vector<MetricKind>& ms = train_[k].weighted_metrics;
    if (ms.empty()) continue;
    const int o = outputs_[k];
    const Shape& shape = tensors_[o].shape;
    const int width = shape.empty() ? 1 : shape.back();
    const long long pos = loss_positions(shape);
    const float* rw = wwidth_[k] ? row_weights(k, pos, n) : nullptr;
    const int yw = ys[k].width;
    const float* y = batch_targets(ys, k, idx, n);
    // Per-sample sums, as the unweighted metrics report them: a sample's rows average.
    for (MetricKind m : ms)
      st->metric_sums.push_back(
          metric_sum(m, act_ptr_[o], y, (long long)n * pos, width, (int)(yw / pos), rw) /
          (double)pos);
    double wsum = 0.0;
    if (rw)
      for (long long r = 0; r < (long long)n * pos; ++r) wsum += rw[r];
    else
      wsum = (double)n * pos;
    st->metric_sums.push_back(wsum / (double)pos);
  }
}

}  // namespace shenjing
