"""Saves: file modes as a plain open(path, 'w') gives them, and temporaries of killed saves
removed by the next save of the same target, never those of a live save."""
import fcntl
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import shenjing
from shenjing import _atomic, layers


def _model(units=3):
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(units)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _temporaries(folder, base="m.keras"):
    return sorted(n for n in os.listdir(folder) if n.startswith("." + base + ".")
                  and n.endswith(".tmp"))


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    model = _model()
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    for name in ("m.keras", "m.weights.h5"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode
    with open(tmp_path / "plain", "w"):
        pass
    assert stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == mode


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_resaving_keeps_the_existing_mode(tmp_path, umask, mode):
    umask(0o077)
    path = tmp_path / "m.keras"
    model = _model()
    model.save(path)
    os.chmod(path, mode)
    model.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    shenjing.models.load_model(path)


def test_stale_temporaries_of_the_same_target_are_removed_live_ones_kept(tmp_path):
    folder = str(tmp_path)
    stale = tmp_path / ".m.keras.abcd1234.tmp"
    stale.write_bytes(b"x" * 100)
    live = tmp_path / ".m.keras.live0000.tmp"
    live.write_bytes(b"y")
    other = tmp_path / ".n.keras.abcd1234.tmp"  # another target's
    other.write_bytes(b"z")
    odd = tmp_path / ".m.keras.not-a-temp.tmp"  # not a name a save makes
    odd.write_bytes(b"w")
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # a save in progress (another open file description)
    try:
        _model().save(tmp_path / "m.keras")
        assert not stale.exists() and live.exists() and other.exists() and odd.exists()
    finally:
        os.close(holder)
    _model().save(tmp_path / "m.keras")
    assert not live.exists()
    assert _temporaries(folder) == [".m.keras.not-a-temp.tmp"]


_SAVER = textwrap.dedent("""
    import sys
    import shenjing
    from shenjing import layers
    model = shenjing.Sequential([layers.Input((2048,)), layers.Dense(4096)])  # 32 MiB
    model.compile(optimizer="adam", loss="mse")                              # + Adam state
    print("ready", flush=True)
    while True:
        model.save(sys.argv[1])
""")


def _size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:  # renamed into place meanwhile
        return 0


def test_temporaries_of_killed_saves_are_removed_by_the_next_save(tmp_path):
    """SIGKILL a process in the middle of saving a large model, a few times: its temporaries
    stay behind; the next save of the same path removes them all."""
    target = tmp_path / "m.keras"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    left = set()
    for _ in range(3):
        child = subprocess.Popen([sys.executable, "-c", _SAVER, str(target)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            # Kill it mid-write: once a new temporary holds some bytes (a just-created, still
            # empty one would make the size check below meaningless).
            while time.monotonic() < deadline and not any(
                    _size(tmp_path / n) > 0 for n in set(_temporaries(tmp_path)) - left):
                time.sleep(0.001)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        left = set(_temporaries(tmp_path))
    assert left, "no save was killed while writing"  # precondition
    size = sum(_size(tmp_path / n) for n in left)
    model = _model()
    model.save(target)
    assert _temporaries(tmp_path) == []
    restored = shenjing.models.load_model(target)
    np.testing.assert_array_equal(restored.get_weights()[0], model.get_weights()[0])
    assert size > 0


def test_concurrent_saves_of_one_path_never_break_each_other(tmp_path):
    """Two writers saving the same path at once: each save's cleanup must leave the other's
    temporary alone (it is locked), so every save succeeds."""
    target = tmp_path / "m.keras"
    errors = []

    def saver(units):
        model = _model(units)
        try:
            for _ in range(25):
                model.save(target)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=saver, args=(u,)) for u in (3, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _temporaries(tmp_path) == []
    assert shenjing.models.load_model(target).output_shape in ((None, 3), (None, 5))


def test_a_temporary_removed_before_it_was_locked_is_replaced(tmp_path, monkeypatch):
    """The race the nlink check closes: another save removes our temporary between mkstemp
    and flock (it was not locked yet); the save must start over with a new one."""
    made = []
    real = _atomic.tempfile.mkstemp

    def mkstemp(**kwargs):
        fd, path = real(**kwargs)
        made.append(path)
        if len(made) == 1:
            os.unlink(path)  # what a concurrent cleanup would do
        return fd, path

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", mkstemp)
    _model().save(tmp_path / "m.keras")
    assert len(made) == 2
    shenjing.models.load_model(tmp_path / "m.keras")
