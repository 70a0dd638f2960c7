"""Keras's sample_weight and class_weight: the weighted loss is sum(w * loss) / number of loss
values (sum_over_batch_size), applied in the core per sample or per time step. Checked against
PyTorch's explicitly weighted loss (one SGD step: same weights -> same new weights), a finite
difference of the weighted loss, and Keras's formulas for evaluate, logs and class weights."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import shenjing as keras  # noqa: E402
from shenjing import layers  # noqa: E402

LR = 0.1


def _model(out_layer, in_shape=(5,), loss="mse", metrics=None, weighted=None):
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input(in_shape), out_layer])
    m.compile(keras.optimizers.SGD(LR), loss, metrics=metrics, weighted_metrics=weighted)
    return m


def _torch_step(m, x, loss_fn):
    """One SGD step of torch on the explicitly weighted loss; returns the new kernel/bias."""
    k, b = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in m.get_weights())
    z = torch.tensor(x, dtype=torch.float64) @ k + b
    loss = loss_fn(z)
    loss.backward()
    return [(k - LR * k.grad).detach().numpy(), (b - LR * b.grad).detach().numpy()], loss.item()


def _check_step(m, x, y, w, loss_fn, **kw):
    want, want_loss = _torch_step(m, x, loss_fn)
    got_loss = m.train_on_batch(x, y, sample_weight=w, **kw)
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    for a, b in zip(m.get_weights(), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 5)).astype(np.float32)
W = RNG.uniform(0.0, 3.0, 12).astype(np.float32)
LABELS = RNG.integers(0, 4, 12)


@pytest.mark.parametrize("case", ["softmax_sparse", "softmax_onehot", "logits_sparse",
                                  "sigmoid_bce", "mse", "mae_neg"])
def test_weighted_step_equals_torch(case):
    w = torch.tensor(W, dtype=torch.float64)
    onehot = np.eye(4, dtype=np.float32)[LABELS]
    lab = torch.tensor(LABELS)
    if case == "softmax_sparse":  # fused softmax + sparse CE
        m = _model(layers.Dense(4, activation="softmax"), loss="sparse_categorical_crossentropy")
        y = LABELS
        fn = lambda z: (w * torch.nn.functional.cross_entropy(z, lab, reduction="none")).mean()
    elif case == "softmax_onehot":  # fused softmax + categorical CE
        m = _model(layers.Dense(4, activation="softmax"), loss="categorical_crossentropy")
        y = onehot
        fn = lambda z: (w * torch.nn.functional.cross_entropy(z, lab, reduction="none")).mean()
    elif case == "logits_sparse":
        m = _model(layers.Dense(4), loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        y = LABELS
        fn = lambda z: (w * torch.nn.functional.cross_entropy(z, lab, reduction="none")).mean()
    elif case == "sigmoid_bce":  # fused sigmoid + BCE over 4 outputs per sample
        m = _model(layers.Dense(4, activation="sigmoid"), loss="binary_crossentropy")
        y = onehot
        t = torch.tensor(onehot, dtype=torch.float64)
        fn = lambda z: (w * torch.nn.functional.binary_cross_entropy_with_logits(
            z, t, reduction="none").mean(-1)).mean()
    else:
        m = _model(layers.Dense(4), loss="mse" if case == "mse" else "mae")
        y = onehot
        t = torch.tensor(onehot, dtype=torch.float64)
        if case == "mae_neg":  # Keras takes negative weights as they are
            w = -w
        fn = (lambda z: (w * ((z - t) ** 2).mean(-1)).mean()) if case == "mse" else \
            (lambda z: (w * (z - t).abs().mean(-1)).mean())
    _check_step(m, X, y, w.numpy().astype(np.float32), fn)


def test_temporal_weights_on_a_sequence_output_equal_torch():
    x = RNG.normal(size=(6, 7, 5)).astype(np.float32)
    labels = RNG.integers(0, 3, (6, 7))
    w = RNG.uniform(0, 2, (6, 7)).astype(np.float32)
    m = _model(layers.Dense(3, activation="softmax"), (7, 5), "sparse_categorical_crossentropy")
    wt, lab = torch.tensor(w, dtype=torch.float64), torch.tensor(labels)
    fn = lambda z: (wt * torch.nn.functional.cross_entropy(
        z.permute(0, 2, 1), lab, reduction="none")).sum() / w.size
    _check_step(m, x, labels, w, fn)
    # (samples, steps, 1) is the same as (samples, steps); (samples, 1) one weight per sample.
    m2 = _model(layers.Dense(3, activation="softmax"), (7, 5), "sparse_categorical_crossentropy")
    assert m2.test_on_batch(x, labels, sample_weight=w[..., None]) == pytest.approx(
        m2.test_on_batch(x, labels, sample_weight=w))
    per_sample = w[:, :1]
    assert m2.test_on_batch(x, labels, sample_weight=per_sample) == pytest.approx(
        m2.test_on_batch(x, labels, sample_weight=np.repeat(per_sample, 7, 1)))
    with pytest.raises(ValueError, match="time step"):  # Keras fails to broadcast (n,) here
        m2.test_on_batch(x, labels, sample_weight=w[:, 0])
    # A weighted metric over time steps: sum(w * hit) / sum(w), as Keras's Mean reduces it.
    m3 = _model(layers.Dense(3, activation="softmax"), (7, 5), "sparse_categorical_crossentropy",
                weighted=["accuracy"])
    hit = m3.predict(x, verbose=0).argmax(-1) == labels
    logs = m3.evaluate(x, labels, sample_weight=w, batch_size=4, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx((w * hit).sum() / w.sum(), rel=1e-6)


def test_finite_differences_of_the_weighted_loss():
    m = _model(layers.Dense(3, activation="tanh"), loss="mse")
    y = RNG.normal(size=(12, 3)).astype(np.float32)
    core = m._core
    core.gradient_step(X, y, None, 0, 12, sample_weight=W)  # gradients, no update
    views = m.layers[0]._views
    analytic = [g.copy() for _, _, g in views]
    h = 1e-2
    for (name, value, _), g in zip(views, analytic):
        flat = value.reshape(-1)
        for i in range(flat.size):
            v = flat[i]
            flat[i] = v + h
            lp = core.test_step(X, y, None, 0, 12, sample_weight=W)[0] / 12
            flat[i] = v - h
            lm = core.test_step(X, y, None, 0, 12, sample_weight=W)[0] / 12
            flat[i] = v
            fd = (lp - lm) / (float(np.float32(v + h)) - float(np.float32(v - h)))
            assert g.reshape(-1)[i] == pytest.approx(fd, rel=2e-3, abs=1e-5), (name, i)


def test_evaluate_and_logged_loss_are_keras_means():
    m = _model(layers.Dense(4, activation="softmax"), loss="sparse_categorical_crossentropy",
               metrics=["accuracy"], weighted=["accuracy"])
    p = m.predict(X, verbose=0)
    per = -np.log(np.clip(p[np.arange(12), LABELS], 1e-7, 1))
    hit = (p.argmax(1) == LABELS).astype(np.float64)
    # Batches of 5, 5, 2: each batch's loss is sum(w l) / its rows; the logged mean weighs
    # batches by their rows, so it is sum(w l) / 12 overall.
    logs = m.evaluate(X, LABELS, sample_weight=W, batch_size=5, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx((W * per).sum() / 12, rel=1e-5)
    assert logs["accuracy"] == pytest.approx(hit.mean())
    assert logs["weighted_accuracy"] == pytest.approx((W * hit).sum() / W.sum(), rel=1e-6)
    values = m.evaluate(X, LABELS, sample_weight=W, batch_size=5, verbose=0)
    # Keras lists 'accuracy' twice (the metric's own name, unweighted and weighted).
    assert values == pytest.approx([logs["loss"], logs["accuracy"], logs["accuracy"],
                                    logs["weighted_accuracy"]])
    # Without weights a weighted metric is the plain one.
    logs = m.evaluate(X, LABELS, verbose=0, return_dict=True)
    assert logs["weighted_accuracy"] == pytest.approx(logs["accuracy"])


def test_fit_with_sample_weight_equals_the_weighted_steps():
    y = RNG.normal(size=(12, 4)).astype(np.float32)
    a = _model(layers.Dense(4), metrics=["mae"], weighted=["mae"])
    h = a.fit(X, y, sample_weight=W, batch_size=5, epochs=2, shuffle=False, verbose=0)
    b = _model(layers.Dense(4))
    for _ in range(2):
        for s in range(0, 12, 5):
            b.train_on_batch(X[s:s + 5], y[s:s + 5], sample_weight=W[s:s + 5])
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
    assert sorted(h.history) == ["loss", "mae", "weighted_mae"]
    # Shuffled: the weights follow their samples (gathered by the same indices as y).
    c = _model(layers.Dense(4))
    c.fit(X, y, sample_weight=W, batch_size=12, epochs=1, verbose=0)
    d = _model(layers.Dense(4))
    d.train_on_batch(X, y, sample_weight=W)
    for u, v in zip(c.get_weights(), d.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form", ["sparse", "sparse_column", "onehot", "binary"])
def test_class_weight_is_keras_per_sample_weights(form):
    cw = {0: 0.5, 1: 2.0, 3: 4.0}  # class 2 unlisted: weight 1
    if form == "binary":
        y = (LABELS % 2).reshape(-1, 1).astype(np.float32)
        layer, loss, want = layers.Dense(1, activation="sigmoid"), "binary_crossentropy", \
            np.array([cw.get(int(v), 1.0) for v in y[:, 0]])
    else:
        y = {"sparse": LABELS, "sparse_column": LABELS.reshape(-1, 1),
             "onehot": np.eye(4)[LABELS]}[form]
        loss = "categorical_crossentropy" if form == "onehot" else \
            "sparse_categorical_crossentropy"
        layer, want = layers.Dense(4, activation="softmax"), \
            np.array([cw.get(int(v), 1.0) for v in LABELS])
    a = _model(layer, loss=loss)
    a.fit(X, y, class_weight=cw, batch_size=4, epochs=2, shuffle=False, verbose=0)
    b = _model(type(layer).from_config(layer.get_config()), loss=loss)
    b.fit(X, y, sample_weight=want.astype(np.float32), batch_size=4, epochs=2, shuffle=False,
          verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_validation_data_with_weights_and_validation_split():
    y = RNG.normal(size=(12, 4)).astype(np.float32)
    m = _model(layers.Dense(4))
    xv, yv, wv = X[:7], y[:7], W[:7]
    h = m.fit(X, y, validation_data=(xv, yv, wv), epochs=1, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(
        m.evaluate(xv, yv, sample_weight=wv, verbose=0), rel=1e-6)
    # validation_split holds out the last samples of x, y and sample_weight alike.
    a = _model(layers.Dense(4))
    h = a.fit(X, y, sample_weight=W, validation_split=0.25, epochs=1, shuffle=False,
              batch_size=4, verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(
        a.evaluate(X[9:], y[9:], sample_weight=W[9:], verbose=0), rel=1e-6)
    b = _model(layers.Dense(4))
    b.fit(X[:9], y[:9], sample_weight=W[:9], epochs=1, shuffle=False, batch_size=4, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_several_outputs_take_a_list_a_dict_or_one_array():
    keras.utils.set_random_seed(2)
    i = keras.Input((5,))
    m = keras.Model(i, [layers.Dense(2, name="a")(i),
                        layers.Dense(4, activation="softmax", name="b")(i)])
    m.compile("sgd", ["mse", "sparse_categorical_crossentropy"], metrics=[["mae"], []],
              weighted_metrics=[["mae"], ["accuracy"]])
    ya = RNG.normal(size=(12, 2)).astype(np.float32)
    pa, pb = m.predict(X, verbose=0)
    la = ((pa - ya) ** 2).mean(1)
    lb = -np.log(pb[np.arange(12), LABELS])
    w2 = W[::-1].copy()
    logs = m.evaluate(X, [ya, LABELS], sample_weight=[W, w2], verbose=0, return_dict=True)
    assert logs["a_loss"] == pytest.approx((W * la).mean(), rel=1e-5)
    assert logs["b_loss"] == pytest.approx((w2 * lb).mean(), rel=1e-5)
    assert logs["loss"] == pytest.approx(logs["a_loss"] + logs["b_loss"], rel=1e-6)
    mae = np.abs(pa - ya).mean(1)
    assert logs["a_mae"] == pytest.approx(mae.mean(), rel=1e-6)
    assert logs["a_weighted_mae"] == pytest.approx((W * mae).sum() / W.sum(), rel=1e-6)
    hit = (pb.argmax(1) == LABELS)
    assert logs["b_accuracy"] == pytest.approx((w2 * hit).sum() / w2.sum(), rel=1e-6)
    same = m.evaluate(X, [ya, LABELS], sample_weight={"b": w2, "a": W}, verbose=0,
                      return_dict=True)
    assert same == pytest.approx(logs)
    one = m.evaluate(X, [ya, LABELS], sample_weight=W, verbose=0, return_dict=True)
    assert one["b_loss"] == pytest.approx((W * lb).mean(), rel=1e-5)
    with pytest.raises(ValueError, match="one scalar score per sample"):
        m.evaluate(X, [ya, LABELS], sample_weight=np.ones((12, 2), np.float32), verbose=0)
    with pytest.raises(ValueError, match="only supported for Models with a single output"):
        m.fit(X, [ya, LABELS], class_weight={0: 1.0}, verbose=0)


@pytest.mark.parametrize("bad, match", [
    (np.ones(11, np.float32), "same number of samples"),
    (np.array([np.nan] + [1.0] * 11, np.float32), "NaN or infinity"),
    (np.array([np.inf] + [1.0] * 11), "NaN or infinity"),
    (np.ones((12, 3), np.float32), "does not fit the loss values"),
    (np.array(["a"] * 12), "numeric|number|dtype"),
])
def test_bad_weights_are_value_errors_and_change_nothing(bad, match):
    y = RNG.normal(size=(12, 4)).astype(np.float32)
    m = _model(layers.Dense(4))
    before = [w.copy() for w in m.get_weights()]
    for call in (lambda: m.fit(X, y, sample_weight=bad, verbose=0),
                 lambda: m.train_on_batch(X, y, sample_weight=bad),
                 lambda: m.evaluate(X, y, sample_weight=bad, verbose=0)):
        with pytest.raises((ValueError, TypeError), match=match):
            call()
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m.optimizer.iterations == 0


def test_bad_class_weight_and_both_weights():
    m = _model(layers.Dense(4, activation="softmax"), loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="at the same time"):
        m.fit(X, LABELS, sample_weight=W, class_weight={0: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="at the same time"):
        m.train_on_batch(X, LABELS, sample_weight=W, class_weight={0: 2.0})
    with pytest.raises(ValueError, match="finite"):
        m.fit(X, LABELS, class_weight={0: float("nan")}, verbose=0)
    with pytest.raises(ValueError, match="dict"):
        m.fit(X, LABELS, class_weight=[1.0, 2.0], verbose=0)
    seq = _model(layers.Dense(3, activation="softmax"), (7, 5),
                 "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="one class per sample"):
        seq.fit(np.zeros((4, 7, 5), np.float32), np.zeros((4, 7)), class_weight={0: 1.0},
                verbose=0)
    assert m.optimizer.iterations == 0


def test_the_core_refuses_bad_weights_before_running():
    y = RNG.normal(size=(12, 4)).astype(np.float32)
    m = _model(layers.Dense(4))
    m.evaluate(X, y, verbose=0)
    core, before = m._core, [w.copy() for w in m.get_weights()]
    bad = W.copy()
    bad[3] = np.nan
    idx = np.arange(12, dtype=np.int64)
    with pytest.raises(ValueError, match="NaN"):
        core.train_step(X, y, idx, 0, 12, sample_weight=bad)
    with pytest.raises(ValueError, match="one entry per sample"):
        core.train_step(X, y, None, 0, 12, sample_weight=W[:5])
    with pytest.raises(ValueError, match="values per sample"):
        core.train_step(X, y, None, 0, 12, sample_weight=np.ones((12, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        core.train_step(X, y, None, 0, 12, sample_weight=W.astype(np.float64))
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Rows from `start` without indices: the weights are offset as x and y are.
    sums = core.test_step(X, y, None, 4, 6, sample_weight=W)
    again = core.test_step(X[4:10], y[4:10], None, 0, 6, sample_weight=W[4:10])
    assert sums[0] == pytest.approx(again[0], rel=1e-7)


def test_weighted_custom_loss_and_weighted_metrics_saved(tmp_path):
    from shenjing import ops

    def my_loss(t, p):  # per-sample values, as Keras's LossFunctionWrapper weighs them
        return ops.mean(ops.square(t - p), axis=-1)

    y = RNG.normal(size=(12, 2)).astype(np.float32)
    keras.utils.set_random_seed(5)
    m = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    m.compile("sgd", my_loss, weighted_metrics=["mae"])
    p = m.predict(X, verbose=0)
    logs = m.evaluate(X, y, sample_weight=W, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx((W * ((p - y) ** 2).mean(1)).mean(), rel=1e-5)
    assert logs["mae"] == pytest.approx((W * np.abs(p - y).mean(1)).sum() / W.sum(), rel=1e-6)
    m.fit(X, y, sample_weight=W, verbose=0)
    m.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", custom_objects={"my_loss": my_loss})
    assert again.evaluate(X, y, sample_weight=W, verbose=0, return_dict=True) == \
        pytest.approx(m.evaluate(X, y, sample_weight=W, verbose=0, return_dict=True))


def test_weighted_metrics_arguments():
    m = keras.Sequential([keras.Input((5,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="list, tuple, or dict"):
        m.compile("sgd", "mse", weighted_metrics="mae")
    with pytest.raises(ValueError, match="cannot|built-in"):
        m.compile("sgd", "mse", weighted_metrics=[lambda t, p: t - p])
    assert m.optimizer is None  # the failed compile changed nothing
