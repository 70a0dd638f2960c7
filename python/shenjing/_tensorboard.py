"""The TensorBoard callback (Keras 3's names and files): scalars of every epoch (train and
validation runs), the learning rate, optional per-batch scalars and weight histograms, written
as event files TensorBoard reads (_event_file.py; TensorBoard itself is only needed to view
them)."""
import os
import time

from shenjing._event_file import EventFileWriter, histogram_value, scalar_value
from shenjing.callbacks import Callback


class TensorBoard(Callback):
    """Writes logs for TensorBoard to ``log_dir/train`` and ``log_dir/validation``.

    Args:
        log_dir: the folder TensorBoard is pointed at (``tensorboard --logdir``).
        histogram_freq: every how many epochs to write histograms of every weight
            (``<layer>/<weight>/histogram``); 0 for none.
        write_graph, write_images, embeddings_freq, embeddings_metadata: accepted for
            compatibility; graphs, weight images and embeddings are not written (Keras writes
            graphs only with the TensorFlow backend).
        write_steps_per_second: also log training steps per second.
        update_freq: 'epoch' (scalars ``epoch_<name>`` per epoch), 'batch' or an integer N
            (also ``batch_<name>`` every N batches, at the global batch number).
        profile_batch: must be 0 (profiling is not available, as with Keras's torch backend).
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        if profile_batch:
            raise ValueError("Profiling is not yet available with shenjing. Received: "
                             f"profile_batch={profile_batch} (must be 0)")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or \
                histogram_freq < 0:
            raise ValueError(f"TensorBoard: histogram_freq must be a non-negative integer, "
                             f"received {histogram_freq!r}.")
        freq = 1 if update_freq == "batch" else update_freq
        if freq != "epoch" and (isinstance(freq, bool) or not isinstance(freq, int) or freq < 1):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive "
                             f"integer, received {update_freq!r}.")
        self.log_dir = str(log_dir)
        self.histogram_freq, self.update_freq = histogram_freq, freq
        self.write_graph, self.write_images = write_graph, write_images
        self.write_steps_per_second = write_steps_per_second
        self.embeddings_freq, self.embeddings_metadata = embeddings_freq, embeddings_metadata
        self._writers = {}
        self._global_train_batch = 0
        self._epoch_start, self._epoch_iterations = 0.0, 0
        if freq != "epoch":  # per-batch hooks only when batch scalars are wanted
            self.on_train_batch_end = self._on_train_batch_end

    def _writer(self, run):
        if run not in self._writers:
            self._writers[run] = EventFileWriter(os.path.join(self.log_dir, run))
        return self._writers[run]

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()
        self._epoch_iterations = self.model.optimizer.iterations if self.model.optimizer else 0

    def _on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        if self._global_train_batch % self.update_freq == 0 and logs:
            self._writer("train").add(self._global_train_batch, [
                scalar_value(f"batch_{k}", v) for k, v in logs.items() if _is_scalar(v)])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        opt = self.model.optimizer
        if opt is not None:
            train["learning_rate"] = float(opt.learning_rate)
            if self.write_steps_per_second:
                elapsed = max(time.time() - self._epoch_start, 1e-9)
                train["steps_per_second"] = (opt.iterations - self._epoch_iterations) / elapsed
        if train:
            self._writer("train").add(epoch, [scalar_value(f"epoch_{k}", v)
                                              for k, v in train.items() if _is_scalar(v)])
        if val:
            self._writer("validation").add(epoch, [scalar_value(f"epoch_{k}", v)
                                                   for k, v in val.items() if _is_scalar(v)])
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            values = [histogram_value(f"{name.replace(':', '_')}/histogram", value)
                      for name, value in _named_weights(self.model)]
            if values:
                self._writer("train").add(epoch, values)
        for w in self._writers.values():
            w.flush()

    def on_test_end(self, logs=None):
        # Keras: evaluate() results against the optimizer's step, in the validation run.
        opt = self.model.optimizer
        if opt is not None and logs:
            self._writer("validation").add(opt.iterations, [
                scalar_value(f"evaluation_{k}_vs_iterations", v)
                for k, v in logs.items() if _is_scalar(v)])

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}


def _is_scalar(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _named_weights(model):
    """(Keras weight path such as 'dense/kernel', values) for every weight of the model."""
    for layer in model.layers:
        views = getattr(layer, "_views", None)
        if views and not layer._is_custom():
            for name, value, _ in views:
                yield f"{layer.name}/{name}", value
        else:
            for w in layer.weights:
                yield getattr(w, "path", layer.name), getattr(w, "value", w)
