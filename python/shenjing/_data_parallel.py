"""The trainer's steps under a DataParallel distribution (distribution.py): each rank takes its
part of the global batch (``distribution.shard``), the gradients are averaged over the ranks
with one allreduce of all of them, weighted by each rank's sample count, and every rank makes
the same optimizer step; loss and metric sums are summed over the ranks. BatchNormalization
takes its batch statistics over the global batch: the core calls back for those sums
(``Model.set_allreduce``)."""
import numpy as np

from shenjing import distribution as dist


def active():
    return dist.distribution() is not None and dist.world_size() > 1


def prepare(model):
    """Before fit: every rank starts from rank 0's weights, and each rank's Dropout (and
    recurrent dropout) streams differ."""
    for loss, _ in getattr(model, "_loss_plan", []):
        if getattr(loss, "ignore_class", None) is not None:
            # Its mean is over the global batch's kept labels; ranks average per-rank means.
            raise ValueError("SparseCategoricalCrossentropy(ignore_class=...) is not supported "
                             "under a DataParallel distribution yet.")
    for layer in model._core_layers:
        for _, value, _ in layer._views:
            dist.broadcast(value)
    core = model._core
    if getattr(model, "_rank_folded", None) is not core:  # once per core: fold the rank in
        for i in range(core.num_layers):
            s = core.random_state(i)
            if s is not None:
                core.set_random_state(i, (s + dist.rank() * 0x9E3779B97F4A7C15) % 2 ** 64)
        model._rank_folded = core


def _grads(model):
    return [g for layer in model._core_layers for _, _, g in layer._views]


def _buffer(model, size):
    buf = getattr(model, "_allreduce_buffer", None)
    if buf is None or buf.size != size:
        buf = model._allreduce_buffer = np.empty(size, np.float32)
    return buf


def train_step(model, core, x, y, idx, start, count, sample_weight=None):
    """One global batch of ``count`` rows from ``start``: (loss sum, metric sums, output loss
    sums) over the whole batch, like core.train_step. With sample weights each rank's loss is
    still sum(w * loss) over its rows / its rows, so weighting the ranks' gradients by their
    rows (below) gives the global batch's sum(w * loss) / rows, as on one process."""
    lo, hi = dist.shard(count)
    grads = _grads(model)
    if getattr(model, "_allreduce_core", None) is not core:  # a new core: hook it up
        core.set_allreduce(dist.allreduce_sum)
        model._allreduce_core = core
    if hi == lo and _synchronized(model):
        # Every rank would wait in BatchNormalization's statistics for this one.
        raise ValueError(f"A batch of {count} sample(s) over {dist.world_size()} processes "
                         f"leaves this one none, and BatchNormalization needs every process "
                         f"in each step: use a batch_size of at least the number of "
                         f"processes, and a data set whose last batch is too.")
    if hi > lo:
        ls, ms, outs = core.gradient_step(x, y, idx, start + lo, hi - lo,
                                          sample_weight=sample_weight)
    else:  # a batch smaller than the number of ranks: this rank adds nothing
        for g in grads:
            g[...] = 0.0
        ls, ms, outs = 0.0, np.zeros(model._n_sums), np.zeros(len(model.outputs))
    # The mean gradient of the global batch: sum over ranks of (local mean * local rows), in
    # one allreduce of a buffer kept per core (float32, as the gradients are).
    flat = _buffer(model, sum(g.size for g in grads))
    if grads:
        np.concatenate([g.reshape(-1) for g in grads], out=flat)
    flat *= np.float32(hi - lo)
    dist.allreduce_sum(flat)
    flat *= np.float32(1.0 / count)
    pos = 0
    for g in grads:
        g.reshape(-1)[...] = flat[pos:pos + g.size]
        pos += g.size
    core.apply_gradients()
    return _sum_stats(ls, ms, outs)


def _synchronized(model):
    from shenjing.layers.normalization import BatchNormalization
    return any(isinstance(la, BatchNormalization) and la.trainable
               for la in model._core_layers)


def test_step(core, x, y, idx, start, count, n_metrics, n_outputs, sample_weight=None):
    lo, hi = dist.shard(count)
    if hi > lo:
        ls, ms, outs = core.test_step(x, y, idx, start + lo, hi - lo,
                                      sample_weight=sample_weight)
    else:
        ls, ms, outs = 0.0, np.zeros(n_metrics), np.zeros(n_outputs)
    return _sum_stats(ls, ms, outs)


def _sum_stats(ls, ms, outs):
    ms, outs = np.asarray(ms, np.float64), np.asarray(outs, np.float64)
    total = dist.sum_scalars(ls, *ms, *outs)
    return float(total[0]), total[1:1 + len(ms)], total[1 + len(ms):]


def broadcast_order(idx):
    """Every rank walks the same shuffled order: rank 0's."""
    if idx is not None:
        dist.broadcast(idx)
    return idx
