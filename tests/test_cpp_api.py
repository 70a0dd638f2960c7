"""The C++ API from a native project: the core built and installed with CMake, found with
find_package or pulled in with add_subdirectory, and the cpp/examples/classify_idx tool run on
models saved from Python, its outputs compared with model.predict."""
import os
import shlex
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import shenjing
from shenjing import layers

REPO = Path(__file__).resolve().parents[1]
CMAKE = shutil.which("cmake")
_cxx = shlex.split(os.environ.get("CXX", ""))[:1] + ["c++", "g++", "clang++"]
CXX = next((c for c in map(shutil.which, _cxx) if c), None)
if CMAKE is None or CXX is None:
    pytest.skip("building the C++ API needs cmake and a C++ compiler on PATH "
                f"(cmake: {CMAKE}, C++ compiler: {CXX})", allow_module_level=True)
GENERATOR = ["-G", "Ninja"] if shutil.which("ninja") else []

N_IMAGES = 50


def _run(cmd, what):
    """Runs a build step quietly; on failure, fails with the tail of its output."""
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        pytest.fail(f"{what} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n"
                    f"...\n{p.stdout[-4000:]}", pytrace=False)


def _configure_and_build(src, build, *options):
    _run([CMAKE, "-S", src, "-B", build, *GENERATOR, "-DCMAKE_BUILD_TYPE=Release", *options],
         f"configuring {src}")
    _run([CMAKE, "--build", build, "-j2"], f"building {src}")


@pytest.fixture(scope="session")
def classify_idx(tmp_path_factory):
    """The core installed into a prefix, and cpp/examples built against it with find_package;
    returns the path of the classify_idx executable."""
    tmp = tmp_path_factory.mktemp("cpp")
    prefix = tmp / "prefix"
    _configure_and_build(REPO, tmp / "build", "-DSHENJING_PYTHON=OFF")
    _run([CMAKE, "--install", tmp / "build", "--prefix", prefix], "installing the core")
    assert (prefix / "include/shenjing/shenjing.hpp").is_file()
    _configure_and_build(REPO / "cpp/examples", tmp / "examples", f"-DCMAKE_PREFIX_PATH={prefix}")
    exe = tmp / "examples" / "classify_idx"
    assert exe.is_file()
    return exe


def _mlp():
    return shenjing.Sequential([
        shenjing.Input(shape=(784,)),
        layers.Dense(32, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])


def _cnn():
    return shenjing.Sequential([
        shenjing.Input(shape=(28, 28, 1)),
        layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.BatchNormalization(),
        layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The two models trained briefly on random data and saved; the images (uint8, 28x28)."""
    tmp = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(0)
    paths, models = {}, {}
    for name, build in [("mlp", _mlp), ("cnn", _cnn)]:
        shenjing.utils.set_random_seed(1)
        model = build()
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        x = rng.random((64, *model.input_shape[1:]), dtype=np.float32)
        model.fit(x, rng.integers(0, 10, 64), batch_size=16, epochs=2, verbose=0)
        paths[name] = tmp / f"{name}.keras"
        model.save(paths[name])
        models[name] = model
    models["mlp"].save_weights(tmp / "mlp.weights.h5")
    images = rng.integers(0, 256, (N_IMAGES, 28, 28), dtype=np.uint8)
    write_idx(tmp / "images.idx", images)
    return {"dir": tmp, "paths": paths, "models": models, "images": images}


def write_idx(path, array):
    """An IDX file: 0, 0, type (0x08 uint8, 0x0D float32), ndim, big-endian dims and data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def run_tool(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def _expected(saved, name, images=None):
    model = saved["models"][name]
    x = (saved["images"] if images is None else images) / 255.0
    x = x.astype(np.float32).reshape(-1, *model.input_shape[1:])
    return model.predict(x, verbose=0)


def _check_run(p, outputs_file, expected):
    """The printed lines and the --outputs file of a successful run against Python's outputs."""
    assert p.returncode == 0, p.stderr
    out = np.fromfile(outputs_file, dtype="<f4")
    assert out.size == expected.size
    out = out.reshape(expected.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert [int(r[0]) for r in rows] == list(range(len(expected)))
    classes = np.array([int(r[1]) for r in rows])
    np.testing.assert_array_equal(classes, out.argmax(axis=1))
    # Python agrees on the class wherever the top two outputs are not a near tie.
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    np.testing.assert_array_equal(classes[clear], expected.argmax(axis=1)[clear])
    np.testing.assert_allclose([float(r[2]) for r in rows], out.max(axis=1), atol=1e-6)
    assert f"classify_idx: {len(expected)} images in" in p.stderr


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_classify_idx_matches_predict(classify_idx, saved, name, tmp_path):
    # A batch of 16 leaves a last batch of 2: full and partial batches both run.
    outputs = tmp_path / "outputs.f32"
    p = run_tool(classify_idx, saved["paths"][name], saved["dir"] / "images.idx",
                 "--batch", 16, "--outputs", outputs)
    _check_run(p, outputs, _expected(saved, name))


def test_classify_idx_options_and_float32_idx(classify_idx, saved, tmp_path):
    # --limit and --threads; default batch.
    outputs = tmp_path / "outputs.f32"
    p = run_tool(classify_idx, saved["paths"]["cnn"], saved["dir"] / "images.idx",
                 "--limit", 7, "--threads", 1, "--outputs", outputs)
    _check_run(p, outputs, _expected(saved, "cnn")[:7])
    # Float32 IDX data is used as is (default scale 1); --scale divides.
    x = (saved["images"] / 255.0).astype(np.float32)
    write_idx(tmp_path / "f32.idx", x)
    p = run_tool(classify_idx, saved["paths"]["mlp"], tmp_path / "f32.idx", "--outputs", outputs)
    _check_run(p, outputs, _expected(saved, "mlp"))
    write_idx(tmp_path / "f32x2.idx", x * 2)
    p = run_tool(classify_idx, saved["paths"]["mlp"], tmp_path / "f32x2.idx", "--scale", 2,
                 "--outputs", outputs)
    _check_run(p, outputs, _expected(saved, "mlp"))


def _bad_inputs(saved, tmp):
    """(model, images, phrase expected on stderr) for each broken input."""
    d = saved["dir"]
    model, idx = d / "mlp.keras", d / "images.idx"
    data = model.read_bytes()
    (tmp / "truncated.keras").write_bytes(data[:len(data) // 2])
    (tmp / "stub.keras").write_bytes(data[:100])
    raw = idx.read_bytes()
    (tmp / "truncated.idx").write_bytes(raw[:-100])
    (tmp / "magic.idx").write_bytes(b"\x01\x02" + raw[2:])
    (tmp / "int16.idx").write_bytes(b"\x00\x00\x0b" + raw[3:])
    (tmp / "header.idx").write_bytes(raw[:10])
    (tmp / "huge.idx").write_bytes(bytes([0, 0, 8, 3]) + b"\xff" * 12 + raw[16:])
    (tmp / "empty.idx").write_bytes(b"")
    write_idx(tmp / "32x32.idx", np.zeros((3, 32, 32), np.uint8))
    write_idx(tmp / "labels.idx", np.zeros(3, np.uint8))
    return [
        (d / "missing.keras", idx, "no such file"),
        (tmp / "truncated.keras", idx, "truncated"),
        (tmp / "stub.keras", idx, "truncated"),
        (d / "mlp.weights.h5", idx, "weights only"),
        (idx, idx, "not a shenjing"),
        (model, d / "missing.idx", "no such file"),
        (model, tmp / "truncated.idx", "truncated IDX file"),
        (model, tmp / "magic.idx", "not an IDX file"),
        (model, tmp / "int16.idx", "unsupported IDX data type 0x0B"),
        (model, tmp / "header.idx", "truncated IDX header"),
        (model, tmp / "huge.idx", "truncated IDX file"),
        (model, tmp / "empty.idx", "not an IDX file"),
        (model, tmp / "labels.idx", "images need 2 or more"),
        (model, tmp, "not a regular file"),
        (model, tmp / "32x32.idx",
         "images have shape (32, 32), 1024 values, but the model expects input of shape "
         "(None, 784), 784 values"),
    ]


def test_classify_idx_reports_bad_inputs(classify_idx, saved, tmp_path):
    for model, images, phrase in _bad_inputs(saved, tmp_path):
        p = run_tool(classify_idx, model, images)
        where = f"{model.name} {images.name}: exit {p.returncode}, stderr {p.stderr!r}"
        assert p.returncode == 1, where  # < 0 would be a crash (a signal)
        assert p.stderr.startswith("classify_idx: ") and phrase in p.stderr, where
        assert p.stdout == "", where


def test_classify_idx_usage_errors(classify_idx, saved):
    model, idx = saved["paths"]["mlp"], saved["dir"] / "images.idx"
    for args, phrase in [((), "expected 2 arguments"),
                         ((model, idx, "--bogus", 1), "unknown option --bogus"),
                         ((model, idx, "--batch", 0), "--batch needs an integer"),
                         ((model, idx, "--scale", "nan"), "--scale needs a positive number"),
                         ((model, idx, "--limit"), "--limit needs a value")]:
        p = run_tool(classify_idx, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("classify_idx: ") and phrase in p.stderr
        assert "usage: classify_idx MODEL IMAGES.idx" in p.stderr
    p = run_tool(classify_idx, "--help")
    assert p.returncode == 0 and "--outputs FILE" in p.stdout


CONSUMER_CMAKE = """\
cmake_minimum_required(VERSION 3.18)
project(consumer LANGUAGES CXX)
set(SHENJING_PYTHON OFF)
add_subdirectory("{repo}" shenjing_build)
add_executable(app main.cpp)
target_link_libraries(app PRIVATE shenjing::core)
"""

CONSUMER_MAIN = """\
#include <cstdio>
#include <vector>
#include <shenjing/shenjing.hpp>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  shenjing::Model model = shenjing::Model::load(argv[1]);
  std::vector<float> x(shenjing::shape_size(model.input_shape()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 255) / 255.0f;
  shenjing::Tensor y = model.predict(x.data(), model.input_shape());  // one sample
  for (float v : y.data) std::printf("%.9g\\n", v);
}
"""


def test_add_subdirectory_consumer(saved, tmp_path):
    src = tmp_path / "consumer"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(CONSUMER_CMAKE.format(repo=REPO.as_posix()))
    (src / "main.cpp").write_text(CONSUMER_MAIN)
    _configure_and_build(src, tmp_path / "build")
    p = subprocess.run([str(tmp_path / "build" / "app"), str(saved["paths"]["cnn"])],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    got = np.array(p.stdout.split(), dtype=np.float32)
    x = (np.arange(784) % 255 / 255.0).astype(np.float32).reshape(1, 28, 28, 1)
    np.testing.assert_allclose(got, saved["models"]["cnn"].predict(x, verbose=0)[0],
                               rtol=1e-5, atol=1e-6)
