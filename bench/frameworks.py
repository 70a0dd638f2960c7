"""The MNIST MLP (784-128 relu-10 softmax, Adam 1e-3, sparse CE) written idiomatically in each
framework, behind one small interface so bench/run.py can alternate them fairly.

Every adapter offers:
    train_epoch(x, y, batch_size)   one shuffled epoch over all of x (timed by the caller)
    predict(x, batch_size)          outputs for all of x, batch by batch
    predict1(x1)                    one (1, 784) sample
    accuracy(x, y)                  top-1 accuracy on (x, y)
    set_weights([W1, b1, W2, b2])   Keras layout: kernels are (in, out)
Models start from the same weights (taken from the shenjing model) so accuracies compare.
"""
import numpy as np

HIDDEN, CLASSES, LR = 128, 10, 1e-3


class ShenjingMLP:
    name = "shenjing"

    def __init__(self, weights=None):
        import shenjing as sj
        self.model = sj.Sequential([
            sj.Input((784,)),
            sj.layers.Dense(HIDDEN, activation="relu"),
            sj.layers.Dense(CLASSES, activation="softmax"),
        ])
        # No metrics: the torch loop computes none either (like for like).
        self.model.compile(optimizer=sj.optimizers.Adam(LR),
                           loss="sparse_categorical_crossentropy")
        if weights is not None:
            self.model.set_weights(weights)

    def get_weights(self):
        return self.model.get_weights()

    def train_epoch(self, x, y, batch_size):
        self.model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)

    def predict(self, x, batch_size):
        return self.model.predict(x, batch_size=batch_size, verbose=0)

    def predict1(self, x1):
        return self.model.predict(x1, verbose=0)

    def accuracy(self, x, y):
        return float((self.predict(x, 256).argmax(1) == y).mean())


class TorchMLP:
    name = "pytorch"

    def __init__(self, weights=None):
        import torch
        from torch import nn
        self.torch = torch
        self.model = nn.Sequential(nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
        if weights is not None:
            self.set_weights(weights)
        self.loss_fn = nn.CrossEntropyLoss()  # on logits: softmax is folded into the loss
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self._cache = {}

    def set_weights(self, weights):
        w1, b1, w2, b2 = (self.torch.from_numpy(np.ascontiguousarray(w)) for w in weights)
        with self.torch.no_grad():
            self.model[0].weight.copy_(w1.T)
            self.model[0].bias.copy_(b1)
            self.model[2].weight.copy_(w2.T)
            self.model[2].bias.copy_(b2)

    def _tensors(self, x, y=None):
        # Pre-made tensors (built once per array, outside the timed region after warm-up).
        key = (id(x), id(y))
        if key not in self._cache:
            tx = self.torch.from_numpy(x)
            ty = None if y is None else self.torch.from_numpy(y.astype(np.int64))
            self._cache[key] = (x, y, tx, ty)  # keep x, y alive so ids stay unique
        return self._cache[key][2:]

    def prepare(self, x, y=None):
        self._tensors(x, y)

    def train_epoch(self, x, y, batch_size):
        tx, ty = self._tensors(x, y)
        model, opt, loss_fn = self.model, self.opt, self.loss_fn
        model.train()
        n = tx.shape[0]
        perm = self.torch.randperm(n)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            xb, yb = tx[idx], ty[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()

    def predict(self, x, batch_size):
        tx, _ = self._tensors(x)
        self.model.eval()
        with self.torch.inference_mode():
            return self.torch.cat([self.model(tx[i:i + batch_size])
                                   for i in range(0, tx.shape[0], batch_size)])

    def predict1(self, x1):
        with self.torch.inference_mode():
            return self.model(x1)

    def as_input1(self, x1):
        return self.torch.from_numpy(x1)

    def accuracy(self, x, y):
        return float((self.predict(x, 256).argmax(1).numpy() == y).mean())


class KerasMLP:
    name = "keras"

    def __init__(self, weights=None):
        import keras
        self.model = keras.Sequential([
            keras.Input((784,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ])
        self.model.compile(optimizer=keras.optimizers.Adam(LR),
                           loss="sparse_categorical_crossentropy")
        if weights is not None:
            self.model.set_weights(weights)

    def train_epoch(self, x, y, batch_size):
        self.model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)

    def predict(self, x, batch_size):
        return self.model.predict(x, batch_size=batch_size, verbose=0)

    def predict1(self, x1):
        return self.model.predict(x1, verbose=0)

    def accuracy(self, x, y):
        return float((np.asarray(self.predict(x, 256)).argmax(1) == y).mean())


def keras_available():
    try:
        import keras  # noqa: F401
        return True, getattr(keras, "__version__", "?")
    except Exception as e:  # not installed (the usual case here) or a broken install
        return False, f"{type(e).__name__}: {e}"
