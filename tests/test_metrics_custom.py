"""Custom stateful metrics (shenjing/_metric_custom.py): keras.io's guide "Training &
evaluation with the built-in methods" CategoricalTruePositives, traced once into the model;
eager use; what update_state may not do."""
import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, ops


class CategoricalTruePositives(keras.metrics.Metric):  # the guide's code, unchanged
    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_weight(name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
        values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
        values = ops.cast(values, "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            values = ops.multiply(values, sample_weight)
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        # The state of the metric will be reset at the start of each epoch.
        self.true_positives.assign(0.0)


class MeanAbsAndCount(keras.metrics.Metric):
    """Two variables, one of them a vector, and a result computed from both."""

    def __init__(self, name="mean_abs", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_weight(name="total", shape=(3,), initializer="zeros")
        self.count = self.add_variable(name="count", shape=(), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.total.assign_add(ops.sum(ops.abs(y_true - y_pred), axis=0))
        self.count.assign_add(ops.sum(ops.ones_like(y_pred[:, 0])))

    def result(self):
        return ops.mean(self.total.numpy() / self.count.numpy())


def _model(units, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8,))
    return keras.Model(inp, layers.Dense(units)(inp))


def test_guide_metric_in_fit_and_evaluate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype("float32")
    y = rng.integers(0, 4, size=(200, 1)).astype("float32")
    model = _model(4)
    metric = CategoricalTruePositives()
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[metric])
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert logs["categorical_true_positives"] == np.sum(np.argmax(pred, 1) == y[:, 0])
    hist = model.fit(x, y, batch_size=64, epochs=3, verbose=0, validation_data=(x, y))
    # Reset at each epoch: every epoch counts at most the 200 samples once.
    assert all(0 <= v <= 200 for v in hist.history["categorical_true_positives"])
    pred = model.predict(x, verbose=0)
    assert hist.history["val_categorical_true_positives"][-1] == \
        np.sum(np.argmax(pred, 1) == y[:, 0])
    # Eager, on arrays: the same count, and sample weights.
    m = CategoricalTruePositives()
    m.update_state(y, pred)
    assert float(m.result()) == hist.history["val_categorical_true_positives"][-1]
    w = rng.random(200).astype("float32")[:, None]
    m.reset_state()
    m.update_state(y, pred, sample_weight=w)
    assert float(m.result()) == pytest.approx(np.sum((np.argmax(pred, 1) == y[:, 0]) * w[:, 0]),
                                              rel=1e-6)
    # 1-D labels: y_true is traced with the data's shape, (None,), which the guide's
    # (None, 1) comparison would broadcast to (batch, batch) (Keras on torch counts pairs):
    # a clear error here.
    with pytest.raises(ValueError, match="broadcast"):
        model.evaluate(x, y[:, 0], batch_size=50, verbose=0, return_dict=True)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["categorical_true_positives"] == \
        hist.history["val_categorical_true_positives"][-1]


def test_two_variables_over_batches():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 8)).astype("float32")
    y = rng.normal(size=(90, 3)).astype("float32")
    model = _model(3)
    model.compile("sgd", "mse", metrics=["mae", MeanAbsAndCount()])
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert logs["mean_abs"] == pytest.approx(np.mean(np.abs(y - pred)), rel=1e-5)
    assert logs["mean_abs"] == pytest.approx(logs["mae"], rel=1e-5)


class AssignsTraced(CategoricalTruePositives):
    def update_state(self, y_true, y_pred, sample_weight=None):
        self.true_positives.assign(ops.sum(y_pred))


class ReadsVariable(CategoricalTruePositives):
    def update_state(self, y_true, y_pred, sample_weight=None):
        self.true_positives.assign_add(self.true_positives * 0 + ops.sum(y_pred))


class Branches(CategoricalTruePositives):
    def update_state(self, y_true, y_pred, sample_weight=None):
        if ops.sum(y_pred) > 0:
            self.true_positives.assign_add(ops.sum(y_pred))


class PerSample(CategoricalTruePositives):
    def update_state(self, y_true, y_pred, sample_weight=None):
        self.true_positives.assign_add(ops.sum(y_pred, axis=1))


@pytest.mark.parametrize("cls,expected", [
    (AssignsTraced, lambda sums: sums[-1]),  # assign keeps the last batch's value
    (ReadsVariable, lambda sums: sum(sums)),
    (Branches, lambda sums: sum(s for s in sums if s > 0))])
def test_untraceable_update_state_runs_per_batch(cls, expected):
    """What cannot be traced (assign, reading a variable, Python branches on values) runs as
    Keras runs it: update_state on each batch in Python, with a warning that says so."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 8)).astype("float32")
    y = np.zeros((12, 1), "float32")
    model = _model(4)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[cls()])
    with pytest.warns(UserWarning, match="runs in Python on every batch"):
        logs = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    sums = [float(pred[i:i + 5].sum()) for i in range(0, 12, 5)]
    assert logs["categorical_true_positives"] == pytest.approx(expected(sums), rel=1e-5)
    hist = model.fit(x, y, batch_size=5, epochs=2, verbose=0)  # decided once: no new warning
    assert len(hist.history["categorical_true_positives"]) == 2


def test_guide_metric_on_labels_of_one_axis_compares_every_pair():
    """keras.io's guide passes labels shaped (batch,): Keras broadcasts them against the
    (batch, 1) predictions, counting every label equal to every prediction of the batch."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 8)).astype("float32")
    y = rng.integers(0, 4, size=10).astype("float32")
    model = _model(4)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[CategoricalTruePositives()])
    with pytest.warns(UserWarning, match="runs in Python on every batch"):
        got = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    p = model.predict(x, verbose=0).argmax(1)
    want = sum(float((y[i:i + 5][:, None] == p[i:i + 5][None, :]).sum()) for i in (0, 5))
    assert got["categorical_true_positives"] == want


def test_per_sample_increment_is_a_clear_error():
    model = _model(4)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[PerSample()])
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="cannot assign a value"):
        model.evaluate(np.zeros((8, 8), "float32"), np.zeros((8, 1), "float32"), verbose=0)


def test_save_load_with_custom_metric(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 8)).astype("float32")
    y = rng.integers(0, 4, size=(40, 1)).astype("float32")
    model = _model(4)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[CategoricalTruePositives()])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(
        tmp_path / "m.keras",
        custom_objects={"CategoricalTruePositives": CategoricalTruePositives})
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(before)
