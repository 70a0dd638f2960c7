"""Models of the issue-13 layers written by Keras 3.15 itself (tests/fixtures/
keras315_extra_layers.json, made by keras315_extra_layers_gen.py): their JSON configs load,
Keras's weights fit (names, shapes, order) and predict gives Keras's outputs. Torch-free."""
import json
import os

import numpy as np
import pytest

import shenjing

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "keras315_extra_layers.json")


@pytest.mark.parametrize("name", ["seq1d", "seq2d"])
def test_keras_written_models_predict_as_keras(name, tmp_path):
    with open(FIXTURE) as f:
        fix = json.load(f)[name]
    model = shenjing.saving.model_from_json(fix["model_json"])
    weights = [np.asarray(w, np.float32) for w in fix["weights"]]
    assert [w.shape for w in model.get_weights()] == [w.shape for w in weights]
    model.set_weights(weights)
    x = np.asarray(fix["x"], np.float32)
    want = np.asarray(fix["y"], np.float32)
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # And through a shenjing file, read back by Python and by the native loader.
    path = str(tmp_path / "m.safetensors")
    shenjing.saving.save_model(model, path)
    np.testing.assert_array_equal(shenjing.saving.load_model(path).predict(x, verbose=0), got)
    core = shenjing._core.Model.load(path)
    out = np.empty(got.shape, np.float32)
    core.predict(x, out, 0, len(x))
    np.testing.assert_array_equal(out, got)


# Keras 3.15.1 (torch backend) on the script below, which this test repeats: two epochs of
# SGD through Dense -> PReLU -> ActivityRegularization -> GaussianNoise(0) -> Softmax.
KERAS_RUN = {
    "loss": [1.0939769744873047, 1.0872259140014648], "eval": 1.0782216787338257,
    "kernel": [[0.424480676651001, 0.6925281286239624, -1.141526460647583],
               [-0.6659788489341736, -0.438494473695755, -1.146541953086853],
               [1.7171683311462402, -0.4947797954082489, 0.34346911311149597],
               [-0.2694513499736786, 1.5847351551055908, 1.3171861171722412]],
    "bias": [0.629596471786499, -2.203075885772705, 0.01876929961144924],
    "alpha": [0.25403308868408203, 0.1876893788576126, 0.28108882904052734]}


def test_training_matches_a_keras_run():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    k = rng.normal(size=(4, 3)).astype("float32")
    b = rng.normal(size=(3,)).astype("float32")
    a = rng.uniform(0.1, 0.3, size=(3,)).astype("float32")
    L = shenjing.layers
    m = shenjing.Sequential([shenjing.Input((4,)), L.Dense(3), L.PReLU(),
                             L.ActivityRegularization(0.01, 0.02), L.GaussianNoise(0.0),
                             L.Softmax()])
    m.layers[0].set_weights([k, b])
    m.layers[1].set_weights([a])
    m.compile(optimizer=shenjing.optimizers.SGD(0.1), loss="mse")
    h = m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], KERAS_RUN["loss"], rtol=1e-6)
    assert m.evaluate(x, y, verbose=0) == pytest.approx(KERAS_RUN["eval"], rel=1e-6)
    for got, key in zip(m.layers[0].get_weights() + m.layers[1].get_weights(),
                        ("kernel", "bias", "alpha")):
        np.testing.assert_allclose(got, KERAS_RUN[key], rtol=1e-5, atol=1e-6)
