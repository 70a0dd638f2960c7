"""Property-based fuzz of functional graphs: random DAGs of Dense layers (some shared, called
again), merges of any earlier tensors (shapes sometimes mismatched on purpose), fan-out, nested
models and several inputs and outputs.

Every failure must be a ValueError or TypeError naming a layer; every model built must predict
what a NumPy evaluation of the same graph with the same weights gives (the oracle), train one
step to finite weights, and save and load to the same predictions. Deterministic (derandomize);
set SHENJING_FUZZ_EXAMPLES to run more locally.
"""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shenjing
from shenjing import layers

EXAMPLES = int(os.environ.get("SHENJING_FUZZ_EXAMPLES", "300")) // 3

ACTS = {None: lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
MERGES = {"Add": lambda xs: sum(xs), "Multiply": lambda xs: np.prod(xs, axis=0),
          "Average": lambda xs: sum(xs) / len(xs), "Maximum": lambda xs: np.max(xs, axis=0),
          "Minimum": lambda xs: np.min(xs, axis=0), "Subtract": lambda xs: xs[0] - xs[1],
          "Concatenate": lambda xs: np.concatenate(xs, axis=-1)}


@st.composite
def graphs(draw):
    """(steps, n_inputs, outputs): steps build tensors from earlier ones; replayed twice, once
    on symbolic tensors and once on NumPy arrays."""
    n_inputs = draw(st.integers(1, 2))
    widths = [draw(st.sampled_from([2, 3, 4])) for _ in range(n_inputs)]
    steps, dense_count = [], 0
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["dense", "dense", "shared", "merge", "nested"]))
        src = draw(st.integers(0, len(widths) - 1))
        if kind == "dense" or (kind == "shared" and dense_count == 0):
            units = draw(st.sampled_from([2, 3, 4]))
            steps.append(("dense", src, units, draw(st.sampled_from(list(ACTS)))))
            dense_count += 1
            widths.append(units)
        elif kind == "shared":
            # Another call of an earlier Dense, on a tensor of (maybe not) the width it has.
            which = draw(st.integers(0, dense_count - 1))
            steps.append(("shared", src, which))
            widths.append(None)  # known after the call (or the call fails)
        elif kind == "merge":
            op = draw(st.sampled_from(sorted(MERGES)))
            count = 2 if op == "Subtract" else draw(st.integers(2, 3))
            srcs = [draw(st.integers(0, len(widths) - 1)) for _ in range(count)]
            steps.append(("merge", srcs, op))
            widths.append(None)
        else:
            steps.append(("nested", src, draw(st.sampled_from([2, 3]))))
            widths.append(None)
    total = n_inputs + len(steps)
    outputs = sorted(set(draw(st.lists(st.integers(n_inputs, total - 1), min_size=1,
                                       max_size=2))))
    return steps, n_inputs, [widths[i] for i in range(n_inputs)], outputs


def _build(steps, n_inputs, widths):
    """The symbolic graph: (inputs, tensors, dense layers, nested models)."""
    inputs = [shenjing.Input((w,)) for w in widths]
    tensors, denses, nested = list(inputs), [], []
    for step in steps:
        if step[0] == "dense":
            layer = layers.Dense(step[2], activation=step[3])
            denses.append(layer)
            tensors.append(layer(tensors[step[1]]))
        elif step[0] == "shared":
            tensors.append(denses[step[2]](tensors[step[1]]))
        elif step[0] == "merge":
            tensors.append(getattr(layers, step[2])()([tensors[i] for i in step[1]]))
        else:
            inner_in = shenjing.Input(tensors[step[1]].shape[1:])
            model = shenjing.Model(inner_in, layers.Dense(step[2], activation="tanh")(inner_in))
            nested.append(model)
            tensors.append(model(tensors[step[1]]))
    return inputs, tensors, denses, nested


def _oracle(steps, xs, denses, nested):
    """Every tensor's value; None for the ones no output needs (their layers are not in the
    model, so they have no weights)."""
    vals, d, m = list(xs), [], iter(nested)
    for step in steps:
        if step[0] in ("dense", "shared"):
            layer = denses[len(d)] if step[0] == "dense" else denses[step[2]]
            if step[0] == "dense":
                d.append(layer)
            x = vals[step[1]]
            if x is None or not layer.weights:
                vals.append(None)
                continue
            w, b = layer.get_weights()
            act = ACTS[None if layer.activation == "linear" else layer.activation]
            vals.append(act(x @ w + b))
        elif step[0] == "merge":
            xs_ = [vals[i] for i in step[1]]
            vals.append(None if any(x is None for x in xs_) else MERGES[step[2]](xs_))
        else:
            inner = next(m).layers[1]
            x = vals[step[1]]
            if x is None or not inner.weights:
                vals.append(None)
                continue
            w, b = inner.get_weights()
            vals.append(np.tanh(x @ w + b))
    return vals


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(graphs(), st.integers(1, 5))
def test_random_graphs(graph, n):
    steps, n_inputs, widths, outputs = graph
    try:
        inputs, tensors, denses, nested = _build(steps, n_inputs, widths)
        model = shenjing.Model(inputs, [tensors[i] for i in outputs])
    except (ValueError, TypeError) as e:
        assert "'" in str(e) or "shape" in str(e), f"an error must name the layer: {e}"
        return
    rng = np.random.default_rng(n)
    xs = [rng.uniform(-1, 1, (n, w)).astype(np.float32) for w in widths]
    expected = _oracle(steps, [x.astype(np.float64) for x in xs], denses, nested)
    outs = [np.empty((n,) + tensors[i].shape[1:], np.float32) for i in outputs]
    model._core.predict(xs, outs, 0, n)
    for got, i in zip(outs, outputs):
        np.testing.assert_allclose(got, expected[i], rtol=2e-5, atol=2e-5)
    # One training step (mse on every output) keeps every weight finite.
    model._core.compile([(0, False, 1.0, 1.0, [])] * len(outputs),
                        shenjing.optimizers.SGD(0.01)._spec())
    ys = [np.zeros_like(o) for o in outs]
    loss_sum, _, per_output = model._core.train_step(xs, ys, None, 0, n)
    assert np.isfinite(loss_sum) and len(per_output) == len(outputs)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    # Saved and loaded (Python and the C++ loader), the graph predicts the same.
    model._core.predict(xs, outs, 0, n)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        for core in (shenjing.models.load_model(path)._core, shenjing._core.Model.load(path)):
            again = [np.empty_like(o) for o in outs]
            core.predict(xs, again, 0, n)
            for a, b in zip(outs, again):
                np.testing.assert_array_equal(a, b)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
