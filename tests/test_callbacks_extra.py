"""CSVLogger, TerminateOnNaN, BackupAndRestore, ModelCheckpoint(save_freq=N) and TensorBoard,
as Keras 3 behaves (file formats, messages, when they act)."""
import csv
import glob
import os

import numpy as np
import pytest

import shenjing as keras
from shenjing import callbacks, layers
from shenjing._event_file import crc32c


def _model(seed=0, dropout=True):
    keras.utils.set_random_seed(seed)
    stack = [keras.Input((6,)), layers.Dense(16, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(0.3))
    model = keras.Sequential(stack + [layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _data(n=96):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


def test_csv_logger_rows_and_append(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    hist = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0,
                     callbacks=[callbacks.CSVLogger(path)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], hist.history["val_loss"])
    # append=True keeps the header and adds rows; without validation the val_ columns are
    # reserved and read "NA" (Keras).
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("epoch,")
    other = tmp_path / "other.csv"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(other, separator=";")])
    header, row = other.read_text().splitlines()
    assert header == "epoch;accuracy;loss;val_accuracy;val_loss"
    assert row.endswith(";NA;NA")


def test_terminate_on_nan_stops_gracefully(capsys):
    x, y = _data()
    x[40] = np.float32(3e38)  # overflows to inf in the first layer: the loss becomes NaN
    model = _model(dropout=False)
    ended = []
    model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0,
              callbacks=[callbacks.TerminateOnNaN(),
                         callbacks.LambdaCallback(on_train_end=lambda logs: ended.append(1))])
    assert "Batch 2: Invalid loss, terminating training" in capsys.readouterr().out
    # Stopped inside the first epoch, which still ends (with its NaN loss), as in Keras.
    assert ended == [1] and np.isnan(model.history.history["loss"]).tolist() == [True]
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
        _model(dropout=False).fit(x, y, batch_size=16, shuffle=False, verbose=0,
                                  callbacks=[callbacks.TerminateOnNaN(raise_error=True)])
    with pytest.raises(ValueError, match="The loss became"):  # without it: a clear error
        _model(dropout=False).fit(x, y, batch_size=16, shuffle=False, verbose=0)


class _Crash(callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt("simulated crash")


def test_backup_and_restore_resumes_exactly(tmp_path):
    x, y = _data()
    straight = _model()
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0)
    backup = str(tmp_path / "backup")
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=4, batch_size=16, verbose=0,
                  callbacks=[callbacks.BackupAndRestore(backup), _Crash(2)])
    assert sorted(os.listdir(backup)) == ["latest.weights.h5", "training_metadata.json"]
    resumed = _model(seed=5)  # a fresh process would start from other weights
    epochs = []
    hist = resumed.fit(x, y, epochs=4, batch_size=16, verbose=0,
                       callbacks=[callbacks.BackupAndRestore(backup),
                                  callbacks.LambdaCallback(
                                      on_epoch_begin=lambda e, logs: epochs.append(e))])
    assert epochs == [2, 3] and len(hist.history["loss"]) == 2
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)  # weights, optimizer and dropout streams restored
    assert not os.path.exists(backup)  # delete_checkpoint=True after a finished fit


def test_backup_every_n_batches_and_bad_args(tmp_path):
    x, y = _data()
    backup = str(tmp_path / "b")
    saves = []
    cb = callbacks.BackupAndRestore(backup, save_freq=4, delete_checkpoint=False,
                                    double_checkpoint=True)
    original = cb._save
    cb._save = lambda *a: (saves.append(1), original(*a))
    _model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    assert len(saves) == 3  # 12 batches, every 4th
    assert os.path.exists(os.path.join(backup, "latest.weights.h5.bkp"))
    with pytest.raises(ValueError, match="Empty `backup_dir`"):
        callbacks.BackupAndRestore("")
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.BackupAndRestore(backup, save_freq="batch")


def test_model_checkpoint_every_n_batches(tmp_path):
    x, y = _data()
    pattern = str(tmp_path / "ck" / "m-{epoch}-{batch}-loss={loss:.2f}.keras")
    _model().fit(x, y, epochs=2, batch_size=16, verbose=0,
                 callbacks=[callbacks.ModelCheckpoint(pattern, save_freq=5)])
    names = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "ck" / "*.keras")))
    # batches counted across epochs (6 per epoch): saves after global batches 5 and 10
    assert [n.split("-loss")[0] for n in names] == ["m-1-5", "m-2-4"]
    keras.models.load_model(glob.glob(str(tmp_path / "ck" / "m-2-4*"))[0])
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint("x.keras", save_freq=0)


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_tensorboard_files_read_by_tensorboard(tmp_path):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    x, y = _data()
    model = _model()
    hist = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
                     callbacks=[callbacks.TensorBoard(tmp_path, histogram_freq=1,
                                                      update_freq=3)])

    def read(run):
        acc = ea.EventAccumulator(glob.glob(str(tmp_path / run / "events.out.tfevents.*"))[0],
                                  size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
        acc.Reload()
        return acc

    train, val = read("train"), read("validation")
    for acc, prefix in ((train, ""), (val, "val_")):
        for name in ("loss", "accuracy"):
            events = acc.Scalars(f"epoch_{name}")
            assert [e.step for e in events] == [0, 1, 2]
            np.testing.assert_allclose([e.value for e in events],
                                       hist.history[prefix + name], rtol=1e-6)
    lr = train.Scalars("epoch_learning_rate")
    np.testing.assert_allclose([e.value for e in lr], 0.001, rtol=1e-6)
    assert [e.step for e in train.Scalars("batch_loss")] == [3, 6, 9, 12, 15]  # 5 per epoch
    kernel = train.Histograms(f"{model.layers[0].name}/kernel/histogram")
    assert [h.step for h in kernel] == [0, 1, 2]
    h = kernel[-1].histogram_value
    w = model.layers[0].get_weights()[0]
    assert h.num == w.size and h.min == pytest.approx(w.min()) and \
        h.max == pytest.approx(w.max()) and sum(h.bucket) == w.size


def test_tensorboard_bad_args():
    with pytest.raises(ValueError, match="Profiling"):
        callbacks.TensorBoard(profile_batch=2)
    with pytest.raises(ValueError, match="update_freq"):
        callbacks.TensorBoard(update_freq="sometimes")
