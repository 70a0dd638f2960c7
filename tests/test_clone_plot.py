"""models.clone_model (Keras's: new layers from configs, new weights, the compile config
carried over), utils.plot_model/model_to_dot (pydot + Graphviz) and utils.plot_history
(matplotlib); the drawing tests skip when the optional package is absent."""
import builtins
import re

import numpy as np
import pytest

import shenjing as keras
from shenjing import layers, utils


def _same_outputs(a, b, x):
    pa, pb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    pa, pb = (pa, pb) if isinstance(pa, list) else ([pa], [pb])
    return all(np.allclose(u, v, atol=1e-6) for u, v in zip(pa, pb))


def test_clone_sequential_new_layers_new_weights_same_config_and_compile():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([layers.Input((4,)), layers.Dense(5, activation="relu"),
                          layers.Dropout(0.2), layers.Dense(2)], name="seq")
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    c = keras.models.clone_model(m)
    assert isinstance(c, keras.Sequential) and c.name == "seq"
    assert c.get_config() == m.get_config()
    assert all(a is not b for a, b in zip(c.layers, m.layers))
    # Keras does not copy weights: the clone starts from new initial values
    assert not all(np.array_equal(a, b) for a, b in zip(c.get_weights(), m.get_weights()))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    assert not _same_outputs(m, c, x)
    c.set_weights(m.get_weights())
    assert _same_outputs(m, c, x)
    assert c.optimizer is not m.optimizer and c.optimizer is not None
    assert c._compile_config() == m._compile_config()
    h = c.fit(x, np.zeros((6, 2)), epochs=1, verbose=0)
    assert set(h.history) == {"loss", "mae"}
    # training the clone leaves the original's weights alone
    assert not all(np.array_equal(a, b) for a, b in zip(c.get_weights(), m.get_weights()))


def test_clone_functional_shared_layer_multi_io_and_masks():
    i, j = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = layers.Dense(3)
    o = layers.Add()([shared(i), shared(j)])
    m = keras.Model([i, j], [layers.Dense(1, activation="sigmoid")(o), o])
    c = keras.models.clone_model(m)
    assert [la.name for la in c.layers] == [la.name for la in m.layers]
    assert c.get_config() == m.get_config()
    assert len(c.get_weights()) == len(m.get_weights())  # the shared layer stays shared
    c.set_weights(m.get_weights())
    x = np.random.default_rng(1).normal(size=(3, 4)).astype("float32")
    assert _same_outputs(m, c, [x, 2 * x])
    t = keras.Input((5,), dtype="int32")
    h = layers.LSTM(3)(layers.Embedding(10, 4, mask_zero=True)(t))
    rnn = keras.Model(t, h)
    rc = keras.models.clone_model(rnn)
    rc.set_weights(rnn.get_weights())
    ids = np.array([[1, 2, 0, 0, 0], [3, 4, 5, 6, 0]])
    assert _same_outputs(rnn, rc, ids)  # the mask reaches the cloned LSTM


def test_clone_function_call_function_input_tensors_and_recursive():
    i = keras.Input((4,))
    d1, d2 = layers.Dense(3), layers.Dense(2)
    m = keras.Model(i, d2(d1(i)))
    # returning the layer itself shares it (and its weights) with the original
    shared = keras.models.clone_model(m, clone_function=lambda la: la if la is d1 else
                                      la.__class__.from_config(la.get_config()))
    assert shared.layers[1] is d1 and shared.layers[2] is not d2
    calls = []

    def call_function(layer, *args, **kwargs):
        calls.append(layer.name)
        return layer(*args, **kwargs)
    keras.models.clone_model(m, call_function=call_function)
    assert calls == [d1.name, d2.name]
    new_in = keras.Input((4,), name="fresh")
    c = keras.models.clone_model(m, input_tensors=new_in)
    assert c.inputs[0] is new_in
    inner = keras.Sequential([layers.Input((4,)), layers.Dense(3)])
    j = keras.Input((4,))
    outer = keras.Model(j, layers.Dense(2)(inner(j)))
    seen = []

    def record(layer):
        seen.append(type(layer).__name__)
        return layer.__class__.from_config(layer.get_config())
    keras.models.clone_model(outer, clone_function=record, recursive=True)
    assert seen == ["Dense", "Dense"]  # the nested Sequential was cloned layer by layer
    seen.clear()
    keras.models.clone_model(outer, clone_function=record)
    assert seen == ["Sequential", "Dense"]
    sc = keras.models.clone_model(inner, input_tensors=[keras.Input((4,))])
    assert isinstance(sc, keras.Sequential)


def test_clone_model_errors():
    seq = keras.Sequential([layers.Input((3,)), layers.Dense(1)])
    with pytest.raises(ValueError, match="call_function"):
        keras.models.clone_model(seq, call_function=lambda la, *a, **k: la(*a, **k))
    with pytest.raises(ValueError, match="single tensor"):
        keras.models.clone_model(seq, input_tensors=[keras.Input((3,)), keras.Input((3,))])
    with pytest.raises(ValueError, match="Unexpected keyword"):
        keras.models.clone_model(seq, copy_weights=True)
    with pytest.raises(ValueError, match="callable"):
        keras.models.clone_model(seq, clone_function=3)
    with pytest.raises(ValueError, match="Sequential and functional"):
        keras.models.clone_model(layers.Dense(2))
    i = keras.Input((3,))
    f = keras.Model(i, layers.Dense(1)(i))
    with pytest.raises(ValueError, match="same structure"):
        keras.models.clone_model(f, input_tensors=[keras.Input((3,)), keras.Input((3,))])


# -- plot_model / model_to_dot ---------------------------------------------------------------
def _functional():
    i, j = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    d = layers.Dense(3, activation="relu")
    o = layers.Add()([d(i), d(j)])
    return keras.Model([i, j], [layers.Dense(1, activation="sigmoid")(o), o])


def test_model_to_dot_nodes_edges_and_labels():
    pytest.importorskip("pydot")
    dot = utils.model_to_dot(_functional(), show_shapes=True, show_dtype=True,
                             show_layer_activations=True, show_trainable=True)
    labels = {n.get_name(): n.get("label") for n in dot.get_nodes()
              if n.get_name() not in ("node", "edge", "graph")}
    assert len(labels) == 5  # a, b, dense (called twice: one node), add, dense_1
    assert len(dot.get_edges()) == 4
    text = " ".join(labels.values())
    assert re.search(r"<b>dense(_\d+)?</b> \(Dense\)", text)
    assert "Activation: <b>relu</b>" in text
    assert "Input shape: <b>[(None, 3), (None, 3)]</b>" in text  # the Add
    assert "Output shape: <b>(None, 1)</b>" in text and "Trainable" in text
    seq = keras.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(1)])
    sdot = utils.model_to_dot(seq, show_shapes=True)
    assert len(sdot.get_edges()) == 1
    with pytest.raises(ValueError, match="layer_range"):
        utils.model_to_dot(seq, layer_range=["a", "b"])
    with pytest.raises(ValueError, match="not yet been built"):
        utils.model_to_dot(keras.Sequential([layers.Dense(2)]))


def test_model_to_dot_expand_nested_joins_the_inner_layers():
    pytest.importorskip("pydot")
    inner = keras.Sequential([layers.Input((4,)), layers.Dense(3, name="in_d1"),
                              layers.Dense(3, name="in_d2")], name="inner_seq")
    fa, fb = keras.Input((3,), name="fa"), keras.Input((3,), name="fb")
    inner_fun = keras.Model([fa, fb], layers.Add(name="in_add")([fa, fb]), name="inner_fun")
    x = keras.Input((4,), name="x")
    h = inner(x)
    outer = keras.Model(x, layers.Dense(2, name="head")(inner_fun([h, h])))

    def edges(dot):
        names = {}

        def walk(g, out):
            for n in g.get_nodes():
                if n.get("label"):
                    names[n.get_name()] = n.get("label").split("<b>")[1].split("</b>")[0]
            out += g.get_edges()
            for sub in g.get_subgraphs():
                walk(sub, out)
            return out
        found = walk(dot, [])
        return sorted((names[e.get_source()], names[e.get_destination()]) for e in found)
    assert edges(utils.model_to_dot(outer)) == [("inner_fun", "head"),
                                                ("inner_seq", "inner_fun"), ("x", "inner_seq")]
    assert edges(utils.model_to_dot(outer, expand_nested=True)) == [
        ("fa", "in_add"), ("fb", "in_add"), ("in_add", "head"), ("in_d1", "in_d2"),
        ("in_d2", "fa"), ("in_d2", "fb"), ("x", "in_d1")]


def test_plot_model_writes_the_image(tmp_path):
    pytest.importorskip("pydot")
    from shenjing import _plot
    if not _plot.check_graphviz():
        pytest.skip("Graphviz's dot is not installed")
    out = tmp_path / "model.png"
    utils.plot_model(_functional(), to_file=out, show_shapes=True, dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "model.svg"
    utils.plot_model(_functional(), to_file=str(svg))
    assert b"<svg" in svg.read_bytes()


def test_plot_model_says_what_to_install(monkeypatch, tmp_path):
    from shenjing import _plot
    model = _functional()
    monkeypatch.setattr(_plot, "check_graphviz", lambda: False)
    monkeypatch.setattr(_plot, "check_pydot", lambda: True)
    with pytest.raises(ImportError, match="install graphviz"):
        utils.plot_model(model, to_file=tmp_path / "m.png")
    monkeypatch.setattr(_plot, "check_pydot", lambda: False)
    with pytest.raises(ImportError, match="pip install pydot"):
        utils.plot_model(model, to_file=tmp_path / "m.png")
    monkeypatch.setattr(_plot, "_pydot", lambda: None)
    with pytest.raises(ImportError, match="pip install pydot"):
        utils.model_to_dot(model)
    assert not (tmp_path / "m.png").exists()


# -- plot_history ----------------------------------------------------------------------------
def test_plot_history_from_fit(tmp_path):
    pytest.importorskip("matplotlib")
    m = keras.Sequential([layers.Input((3,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(20, 3))
    h = m.fit(x, x[:, :1], epochs=3, validation_split=0.25, verbose=0)
    out = tmp_path / "h.png"
    assert utils.plot_history(h, to_file=out) == ["loss", "mae"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert utils.plot_history(h.history, to_file=tmp_path / "m.png", metrics="mae") == ["mae"]
    assert utils.plot_history({"val_acc": [0.5, 0.6]}, to_file=tmp_path / "v.png") == ["acc"]
    with pytest.raises(ValueError, match="accuracy"):
        utils.plot_history(h, to_file=tmp_path / "x.png", metrics=["accuracy"])
    with pytest.raises(ValueError, match="empty"):
        utils.plot_history({}, to_file=tmp_path / "x.png")
    with pytest.raises(TypeError, match="History"):
        utils.plot_history([1, 2], to_file=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_history_without_matplotlib(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        utils.plot_history({"loss": [1.0]}, to_file=tmp_path / "h.png")
