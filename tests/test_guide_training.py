"""keras.io's "Training & evaluation with the built-in methods" guide
(examples/guides/training_with_built_in_methods.py: the guide's code with only its imports
changed) runs as a user runs it, in its own process and folder, on a shortened training set
(SHENJING_GUIDE_QUICK: the guide's code is otherwise as written). Only the cells that need
TensorFlow's tf.data may be skipped, and they say so."""
import os
import re
import subprocess
import sys

import pytest

import shenjing

GUIDE = os.path.join(os.path.dirname(__file__), "..", "examples", "guides",
                     "training_with_built_in_methods.py")


@pytest.mark.skipif(not os.environ.get("SHENJING_DATA"),
                    reason="SHENJING_DATA (the shared datasets folder) is not set")
def test_training_guide_runs(tmp_path):
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(shenjing.__file__)))
    env = dict(os.environ, SHENJING_GUIDE_QUICK="4000",
               PYTHONPATH=os.pathsep.join([package_parent, os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, os.path.abspath(GUIDE)], cwd=tmp_path, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:]
    out = p.stdout
    skipped = re.search(r"Guide cells skipped: (.*)", out).group(1)
    allowed = {"tf.data Datasets (TensorFlow is not installed)",
               "multi-input tf.data Dataset (TensorFlow is not installed)"}
    parts = [] if skipped == "none" else [s.strip(" '[]\"") for s in skipped.split("', '")]
    assert set(parts) <= allowed | {s for s in parts if s.startswith("plot_model (")}, skipped
    # What the guide prints: its first fit's history, evaluate's [loss, accuracy], predict's
    # shape, the checkpoints it writes.
    assert "predictions shape: (3, 10)" in out
    loss, acc = map(float, re.search(r"test loss, test acc: \[([0-9.e-]+), ([0-9.e-]+)\]",
                                     out).groups())
    assert loss < 1.0 and acc > 0.7
    assert any(f.startswith("mymodel_") for f in os.listdir(tmp_path))
    assert os.listdir(tmp_path / "ckpt")
