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
