"""Conv2DTranspose against PyTorch's conv_transpose2d in one process, same thread count.

One decoder upsampling step: N=32, 14x14x32 -> 28x28x16, 3x3 kernel, strides 2, 'same'
(Keras's output_padding=None). Keras (TF and JAX backends) places the kernel with no cell cut
before: torch runs unpadded (29x29) and the first 28 rows and columns are kept (a view). Forward, and forward + backward (input and weight gradients, MSE loss in both:
a cheap linear Activation first so that shenjing computes the input gradient as torch does).
Best of the repetitions, frameworks alternating (see bench_conv.py).

    python bench/bench_conv_transpose.py [--threads 2]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conv import _alternate, _torch  # noqa: E402

import shenjing  # noqa: E402
from shenjing import layers  # noqa: E402


def conv_transpose_layer(n=32, hw=14, cin=32, cout=16, k=3, threads=2, rounds=3, reps=5):
    torch = _torch(threads)
    F = torch.nn.functional
    shenjing.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, hw, hw, cin)).astype(np.float32)
    t = rng.normal(size=(n, 2 * hw, 2 * hw, cout)).astype(np.float32)
    fwd = shenjing.Sequential([layers.Input((hw, hw, cin)),
                               layers.Conv2DTranspose(cout, k, strides=2, padding="same")])
    out = np.empty((n, 2 * hw, 2 * hw, cout), np.float32)
    train = shenjing.Sequential([layers.Input((hw, hw, cin)), layers.Activation("linear"),
                                 layers.Conv2DTranspose(cout, k, strides=2, padding="same")])
    train.compile(optimizer="sgd", loss="mse")

    xt = torch.tensor(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    tt = torch.tensor(t).permute(0, 3, 1, 2).contiguous()
    # Keras (kh, kw, filters, in) -> torch (in, filters, kh, kw)
    w = torch.tensor(fwd.layers[0].kernel).permute(3, 2, 0, 1).contiguous().requires_grad_(True)
    b = torch.zeros(cout, requires_grad=True)

    def th(x_):
        return F.conv_transpose2d(x_, w, b, stride=2)[:, :, :2 * hw, :2 * hw]

    def sj_fwd():
        fwd._core.predict(x, out, 0, n)

    def sj_train():
        train._core.compute_gradients(x, t)

    def th_fwd():
        with torch.no_grad():
            th(xt)

    def th_train():
        loss = F.mse_loss(th(xt), tt)
        xt.grad = w.grad = b.grad = None
        loss.backward()

    # Same numbers first (else the timing compares different work).
    sj_fwd()
    with torch.no_grad():
        ref = th(xt).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    for f in (sj_train, th_fwd, th_train):
        f()
    r = _alternate({"sj_fwd": sj_fwd, "th_fwd": th_fwd, "sj_train": sj_train,
                    "th_train": th_train}, rounds, reps)
    res = {"shape": f"N={n} {hw}x{hw}x{cin} -> {2 * hw}x{2 * hw}x{cout} {k}x{k} s2 same",
           "threads": threads}
    for key in ("fwd", "train"):
        for fw in ("sj", "th"):
            s, load = r[f"{fw}_{key}"]
            res[f"{fw}_{key}_ms"] = round(s * 1e3, 3)
            res[f"{fw}_{key}_foreign_cores"] = round(load, 2)
        res[f"{key}_ratio_torch_over_sj"] = round(r[f"th_{key}"][0] / r[f"sj_{key}"][0], 2)
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    for k, v in conv_transpose_layer(threads=a.threads).items():
        print(f"{k}: {v}")
