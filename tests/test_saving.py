"""Model files: save/load round trips for every layer, exact resumption of training, weights
files, JSON configs, ModelCheckpoint, atomic writes, and the C++ loader (shenjing._core.Model
.load, what native programs use) agreeing with the Python one."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import shenjing
from shenjing import callbacks, layers, optimizers, regularizers
from shenjing.models import Sequential, load_model, model_from_json


def _model(input_shape, *stack):
    return Sequential([layers.Input(input_shape), *stack])


# Every layer type and the options that change how a config is read.
ZOO = {
    "mlp": ((12,), lambda: [
        layers.Dense(16, activation="relu", kernel_regularizer=regularizers.L1L2(1e-4, 1e-3)),
        layers.Dropout(0.25, seed=3), layers.Dense(8, activation="leaky_relu", use_bias=False),
        layers.Activation("elu"), layers.Dense(3, activation="softmax")]),
    "dense_rank3_reshape": ((4, 6), lambda: [
        layers.Dense(5, activation="gelu"), layers.Reshape((10, 2)),
        layers.Dense(3, activation="swish"), layers.Flatten(), layers.Dense(2)]),
    "cnn2d": ((11, 10, 3), lambda: [
        layers.ZeroPadding2D(((1, 2), (0, 1))),
        layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same", activation="relu",
                      bias_regularizer="l2"),
        layers.BatchNormalization(momentum=0.9, epsilon=1e-2),
        layers.MaxPooling2D((2, 2), strides=1, padding="same"),
        layers.Conv2D(3, 3, dilation_rate=(1, 2), activation="tanh"),
        layers.AveragePooling2D(2, padding="same"),
        layers.GlobalMaxPooling2D(keepdims=True), layers.Flatten(),
        layers.Dense(2, activation="sigmoid")]),
    "cnn2d_global_avg": ((6, 6, 2), lambda: [
        layers.ZeroPadding2D(1), layers.Conv2D(3, 2, use_bias=False),
        layers.BatchNormalization(center=False, scale=False), layers.GlobalAveragePooling2D()]),
    "cnn1d": ((13, 3), lambda: [
        layers.ZeroPadding1D((2, 1)),
        layers.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="softplus"),
        layers.MaxPooling1D(2), layers.Conv1D(3, 2, strides=2, padding="same"),
        layers.AveragePooling1D(2, strides=1), layers.GlobalAveragePooling1D(keepdims=True),
        layers.Flatten()]),
    "cnn1d_global_max": ((9, 2), lambda: [
        layers.Conv1D(3, 2, activation="relu"), layers.GlobalMaxPooling1D()]),
}


def _zoo_model(name, seed=0):
    input_shape, make = ZOO[name]
    shenjing.utils.set_random_seed(seed)
    model = _model(input_shape, *make())
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # non-trivial weights everywhere, BN statistics included
        ws = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, layers.BatchNormalization):
            ws[-1] = rng.uniform(0.5, 2.0, ws[-1].shape).astype(np.float32)
        layer.set_weights(ws)
    return model


def _x(model, n=7, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *model.input_shape[1:])) \
        .astype(np.float32)


def _core_predict(path, x, out_shape):
    core = shenjing._core.Model.load(str(path))
    out = np.empty((len(x), *out_shape), np.float32)
    core.predict(x, out, 0, len(x))
    return out


@pytest.mark.parametrize("name", ZOO)
def test_save_load_predicts_exactly(tmp_path, name):
    model = _zoo_model(name)
    x = _x(model)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(path)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.get_config() for a in loaded.layers] == [b.get_config() for b in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    want = model.predict(x, verbose=0)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    # The C++ loader (native programs) gives the same numbers.
    np.testing.assert_array_equal(_core_predict(path, x, want.shape[1:]), want)


@pytest.mark.parametrize("name", ZOO)
def test_json_round_trip_rebuilds_the_architecture(name):
    model = _zoo_model(name)
    text = model.to_json()
    spec = json.loads(text)
    assert spec["class_name"] == "Sequential"
    assert spec["config"]["layers"][0]["class_name"] == "InputLayer"
    rebuilt = model_from_json(text)
    assert rebuilt.to_json() == text
    assert rebuilt.output_shape == model.output_shape
    assert rebuilt.count_params() == model.count_params()
    again = Sequential.from_config(model.get_config())
    assert again.get_config() == model.get_config()


def test_get_config_uses_keras_names():
    dense = layers.Dense(4, activation="relu", kernel_regularizer="l2", name="d")
    cfg = dense.get_config()
    assert cfg["name"] == "d" and cfg["units"] == 4 and cfg["activation"] == "relu"
    assert cfg["use_bias"] is True and cfg["trainable"] is True
    assert cfg["kernel_initializer"] == {"module": "keras.initializers",
                                         "class_name": "GlorotUniform",
                                         "config": {"seed": None}, "registered_name": None}
    assert cfg["kernel_regularizer"]["class_name"] == "L2"
    assert cfg["kernel_regularizer"]["config"] == {"l2": 0.01}
    conv = layers.Conv2D(8, 3, padding="same").get_config()
    assert conv["kernel_size"] == [3, 3] and conv["strides"] == [1, 1]
    assert conv["padding"] == "same" and conv["data_format"] == "channels_last"
    assert layers.MaxPooling2D().get_config()["pool_size"] == [2, 2]
    assert layers.Dense.from_config(cfg).get_config() == cfg


OPTIMIZERS = {
    "sgd_nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam_amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.01),
    "rmsprop_centered": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: optimizers.Adagrad(0.05),
}


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_resumed_training_equals_uninterrupted(tmp_path, opt):
    """fit 2 epochs, save, fit 2 more == load in a fresh model, fit 2: bit for bit (shuffling,
    dropout masks, batch-norm statistics and optimizer state all carry over)."""
    shenjing.utils.set_random_seed(5)
    model = _model((6, 6, 1), layers.Conv2D(3, 3, activation="relu"),
                   layers.BatchNormalization(), layers.Flatten(), layers.Dropout(0.3),
                   layers.Dense(4, activation="softmax", kernel_regularizer="l2"))
    model.compile(OPTIMIZERS[opt](), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 4, 50)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = tmp_path / "ckpt.keras"
    model.save(path)
    shenjing.utils.set_random_seed(123)  # the resumed run must not depend on the global seed
    resumed = load_model(path)
    assert resumed.optimizer.iterations == model.optimizer.iterations == 14
    assert type(resumed.optimizer) is type(model.optimizer)
    assert resumed.optimizer.get_config() == model.optimizer.get_config()
    h1 = model.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0).history
    h2 = resumed.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0).history
    assert h1 == h2
    for a, b in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_without_compile_and_recompile(tmp_path):
    model = _zoo_model("mlp")
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "m.keras")
    plain = load_model(tmp_path / "m.keras", compile=False)
    assert plain.optimizer is None
    compiled = load_model(tmp_path / "m.keras")
    assert isinstance(compiled.optimizer, optimizers.Adam)
    assert compiled.loss.get_config() == model.loss.get_config()
    x = _x(model, 20)
    y = shenjing.utils.to_categorical(np.arange(20) % 3, 3)
    assert compiled.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_uncompiled_model_saves_and_loads(tmp_path):
    model = _zoo_model("cnn1d")
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.optimizer is None
    np.testing.assert_array_equal(loaded.predict(_x(model), verbose=0),
                                  model.predict(_x(model), verbose=0))


def test_save_and_load_weights(tmp_path):
    model = _zoo_model("cnn2d", seed=0)
    other = _zoo_model("cnn2d", seed=1)
    x = _x(model)
    assert not np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    model.save_weights(tmp_path / "m.weights.h5")
    other.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    # A whole-model file also serves load_weights (as in Keras).
    third = _zoo_model("cnn2d", seed=2)
    model.save(tmp_path / "m.keras")
    third.load_weights(tmp_path / "m.keras")
    np.testing.assert_array_equal(third.predict(x, verbose=0), model.predict(x, verbose=0))


def test_load_weights_into_a_different_architecture(tmp_path):
    model = _model((4,), layers.Dense(3), layers.Dense(2))
    model.save_weights(tmp_path / "w.safetensors")
    wider = _model((4,), layers.Dense(5), layers.Dense(2))
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r"'layers.0.kernel' of layer 'dense_\d+' \(Dense\) "
                                         r"has shape \(4, 3\), but the layer needs \(4, 5\)"):
        wider.load_weights(tmp_path / "w.safetensors")
    for a, b in zip(wider.get_weights(), before):  # nothing changed
        np.testing.assert_array_equal(a, b)
    deeper = _model((4,), layers.Dense(3), layers.Dense(2), layers.Dense(2))
    with pytest.raises(ValueError, match="'layers.2.kernel'.* is missing"):
        deeper.load_weights(tmp_path / "w.safetensors")
    shallower = _model((4,), layers.Dense(3))
    with pytest.raises(ValueError, match="holds 4 layer weights, but this model has 2"):
        shallower.load_weights(tmp_path / "w.safetensors")
    # skip_mismatch keeps the layers that do not fit and loads the rest.
    other_head = _model((4,), layers.Dense(3), layers.Dense(6))
    head = other_head.layers[1].get_weights()
    other_head.load_weights(tmp_path / "w.safetensors", skip_mismatch=True)
    np.testing.assert_array_equal(other_head.layers[0].kernel, model.layers[0].kernel)
    np.testing.assert_array_equal(other_head.layers[1].kernel, head[0])
    with pytest.raises(ValueError, match="weights only .*load_weights"):
        load_model(tmp_path / "w.safetensors")


def test_save_refuses_to_overwrite_when_asked(tmp_path):
    model = _zoo_model("mlp")
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)
    with pytest.raises(FileNotFoundError, match="folder"):
        model.save(tmp_path / "missing" / "m.keras")
    with pytest.raises(ValueError, match="not yet been built"):
        Sequential([layers.Dense(2)]).save(tmp_path / "u.keras")


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = _zoo_model("mlp")
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()
    from shenjing import saving

    real = saving.write_safetensors

    def half_write(p, meta, tensors):
        tensors = dict(tensors)
        bad = next(iter(tensors))
        tensors[bad] = _Exploding(tensors[bad])
        real(p, meta, tensors)

    monkeypatch.setattr(saving, "write_safetensors", half_write)
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]  # no temporary file left behind


class _Exploding(np.ndarray):
    """An array whose bytes cannot be written: the save fails after the header is out."""

    def __new__(cls, a):
        return np.asarray(a).view(cls)

    def astype(self, *args, **kwargs):
        raise OSError(28, "No space left on device")


def test_full_disk_mid_save_keeps_the_previous_file(tmp_path):
    """A real write failure: the file-size limit makes the kernel refuse the write (EFBIG),
    as a full disk would, after part of the new file is out."""
    path = tmp_path / "m.keras"
    script = textwrap.dedent(f"""
        import resource, signal, numpy as np, shenjing
        from shenjing import layers
        model = shenjing.Sequential([layers.Input((100,)), layers.Dense(1000)])
        model.save({str(path)!r})
        size = len(open({str(path)!r}, "rb").read())
        model.layers[0].kernel[...] = 1.0
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))
        try:
            model.save({str(path)!r})
        except OSError as e:
            print("failed:", e)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "failed:" in out.stdout
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]
    loaded = load_model(path)
    assert not np.any(loaded.layers[0].kernel == 1.0)  # still the first save


def test_model_checkpoint_best_only(tmp_path, capsys):
    shenjing.utils.set_random_seed(0)
    model = _model((5,), layers.Dense(8, activation="relu"), layers.Dense(1))
    model.compile(optimizers.SGD(0.05), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss",
                                     save_best_only=True, verbose=1)
    every = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}-{loss:.3f}.weights.h5"),
                                      save_weights_only=True)
    hist = model.fit(x, y, epochs=4, validation_split=0.25, callbacks=[ckpt, every],
                     verbose=0).history
    best_epoch = int(np.argmin(hist["val_loss"]))
    assert ckpt.best == min(hist["val_loss"])
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to" in out
    names = sorted(os.listdir(tmp_path))
    assert names[0] == "best.keras"
    assert names[1:] == [f"w-{e + 1:02d}-{hist['loss'][e]:.3f}.weights.h5" for e in range(4)]
    best = load_model(tmp_path / "best.keras")
    # The best file holds the weights of the best epoch: the last one if it was best.
    if best_epoch == 3:
        for a, b in zip(best.get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    val = (x[48:], y[48:])
    assert best.evaluate(*val, verbose=0) == pytest.approx(min(hist["val_loss"]), rel=1e-5)


def test_model_checkpoint_arguments(tmp_path):
    assert callbacks.ModelCheckpoint("m.keras", monitor="val_accuracy").mode == "max"
    assert callbacks.ModelCheckpoint("m.keras").mode == "min"
    with pytest.raises(ValueError, match="mode"):
        callbacks.ModelCheckpoint("m.keras", mode="best")
    model = _model((2,), layers.Dense(1))
    model.compile("sgd", "mse")
    x, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "m.keras"), save_best_only=True)
    with pytest.warns(UserWarning, match="val_loss available"):
        model.fit(x, y, epochs=1, callbacks=[ckpt], verbose=0)
    assert not (tmp_path / "m.keras").exists()
    with pytest.raises(KeyError, match="val_acc"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[
            callbacks.ModelCheckpoint(str(tmp_path / "{val_acc}.keras"))])


def test_file_holds_no_code(tmp_path):
    """The file is a JSON header and raw floats: no pickle opcodes, readable by any
    safetensors reader."""
    model = _zoo_model("mlp")
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    raw = (tmp_path / "m.keras").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    assert meta["format"] == "shenjing" and meta["kind"] == "model"
    assert all(isinstance(v, str) for v in meta.values())
    end = max(t["data_offsets"][1] for t in header.values())
    assert 8 + n + end == len(raw)
    assert header["layers.0.kernel"] == {"dtype": "F32", "shape": [12, 16],
                                         "data_offsets": header["layers.0.kernel"]
                                         ["data_offsets"]}
    b, e = header["layers.0.kernel"]["data_offsets"]
    np.testing.assert_array_equal(
        np.frombuffer(raw[8 + n + b:8 + n + e], "<f4").reshape(12, 16), model.layers[0].kernel)
