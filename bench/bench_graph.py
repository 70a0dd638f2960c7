"""Functional graphs: the Keras MNIST convnet built as Sequential and as functional (same
speed expected: one core path), and a small residual network (examples/resnet_fashion_mnist.py)
against the same network in PyTorch, with the workspace the graph's memory plan saves.

    python bench/bench_graph.py [--threads N] [--quick] [--json PATH]

ratio = other_time / shenjing_functional_time (> 1: the functional model is faster).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("SHENJING_DATA", os.path.join(HERE, "..", "..", "shared", "data"))

import bench_conv  # noqa: E402
import shenjing  # noqa: E402
from shenjing import layers  # noqa: E402


def functional_cnn():
    """bench_conv's Keras MNIST convnet, written with the functional API."""
    inputs = shenjing.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, kernel_size=(3, 3), activation="relu")(inputs)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Conv2D(64, kernel_size=(3, 3), activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Dropout(0.5)(layers.Flatten()(x))
    model = shenjing.Model(inputs, layers.Dense(10, activation="softmax")(x))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def sequential_vs_functional(n_train, threads, rounds):
    shenjing.set_num_threads(threads)
    x, y, _, _ = bench_conv._mnist(n_train)
    y1 = shenjing.utils.to_categorical(y, 10)
    seq, fun = bench_conv._shenjing_cnn(), functional_cnn()
    fns = {"sequential": lambda: seq.fit(x, y1, batch_size=128, epochs=1, verbose=0),
           "functional": lambda: fun.fit(x, y1, batch_size=128, epochs=1, verbose=0)}
    for fn in fns.values():  # warm-up
        fn()
    r = bench_conv._alternate(fns, rounds, 1)
    return {"samples": n_train, "threads": threads, "sequential_epoch_s": r["sequential"][0],
            "functional_epoch_s": r["functional"][0],
            "ratio": r["sequential"][0] / r["functional"][0],
            "foreign_cores": [r["sequential"][1], r["functional"][1]]}


def shenjing_resnet(width):
    inputs = shenjing.Input(shape=(28, 28, 1))

    def block(x, filters, stride=1):
        shortcut = x
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.Activation("relu")(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same",
                                                      use_bias=False)(y))
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.BatchNormalization()(
                layers.Conv2D(filters, 1, strides=stride, use_bias=False)(shortcut))
        return layers.Activation("relu")(layers.Add()([shortcut, y]))

    x = layers.Activation("relu")(layers.BatchNormalization()(
        layers.Conv2D(width, 3, padding="same", use_bias=False)(inputs)))
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        x = block(x, filters, 1 if stage == 0 else 2)
        x = block(x, filters)
    outputs = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = shenjing.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def torch_resnet(torch, width):
    """The same network in PyTorch (NCHW; BatchNorm with Keras's momentum and epsilon)."""
    nn = torch.nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = bn(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = bn(cout)
            self.proj = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

        def forward(self, x):
            y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
            return torch.relu((x if self.proj is None else self.proj(x)) + y)

    blocks = [nn.Conv2d(1, width, 3, 1, 1, bias=False), bn(width), nn.ReLU()]
    cin = width
    for stage, filters in enumerate((width, 2 * width, 4 * width)):
        blocks += [Block(cin, filters, 1 if stage == 0 else 2), Block(filters, filters, 1)]
        cin = filters
    blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*blocks)


def resnet(n_train, width, threads, rounds):
    torch = bench_conv._torch(threads)
    shenjing.set_num_threads(threads)
    (x, y), (xt, _) = shenjing.datasets.fashion_mnist.load_data()
    x = (x[:n_train].astype(np.float32) / 255)[..., None]
    y = y[:n_train].astype(np.int64)
    xt = (xt.astype(np.float32) / 255)[..., None]
    sj = shenjing_resnet(width)
    th = torch_resnet(torch, width)
    opt = torch.optim.Adam(th.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x).permute(0, 3, 1, 2).contiguous(), torch.tensor(y)
    txt = torch.tensor(xt).permute(0, 3, 1, 2).contiguous()
    loss_fn = torch.nn.CrossEntropyLoss()

    def th_epoch():
        th.train()
        perm = torch.randperm(len(tx))
        for i in range(0, len(tx), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss_fn(th(tx[idx]), ty[idx]).backward()
            opt.step()

    def th_predict():
        th.eval()
        with torch.inference_mode():
            for i in range(0, len(txt), 256):
                th(txt[i:i + 256])

    fns = {"sj": lambda: sj.fit(x, y, batch_size=128, epochs=1, verbose=0), "th": th_epoch}
    for fn in fns.values():
        fn()
    train = bench_conv._alternate(fns, rounds, 1)
    preds = {"sj": lambda: sj.predict(xt, batch_size=256, verbose=0), "th": th_predict}
    for fn in preds.values():
        fn()
    pred = bench_conv._alternate(preds, rounds, 1)
    plan = sj._core.memory_plan()
    return {"samples": n_train, "width": width, "threads": threads,
            "sj_epoch_s": train["sj"][0], "th_epoch_s": train["th"][0],
            "train_ratio": train["th"][0] / train["sj"][0],
            "sj_predict_s": pred["sj"][0], "th_predict_s": pred["th"][0],
            "predict_ratio": pred["th"][0] / pred["sj"][0],
            "memory_plan_floats_per_sample": plan,
            "foreign_cores": [train["sj"][1], train["th"][1], pred["sj"][1], pred["th"][1]]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="fewer samples and rounds")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    rounds = 2 if args.quick else 3
    cnn = sequential_vs_functional(6000 if args.quick else 54000, args.threads, rounds)
    print(f"MNIST convnet epoch ({cnn['samples']} samples, {args.threads} threads): "
          f"Sequential {cnn['sequential_epoch_s']:.2f} s, functional "
          f"{cnn['functional_epoch_s']:.2f} s (Sequential/functional {cnn['ratio']:.3f})")
    res = resnet(6000 if args.quick else 60000, 16, args.threads, rounds)
    plan = res["memory_plan_floats_per_sample"]
    print(f"ResNet (width 16) epoch ({res['samples']} samples): shenjing {res['sj_epoch_s']:.2f} s, "
          f"PyTorch {res['th_epoch_s']:.2f} s (ratio {res['train_ratio']:.2f}); predict 10,000: "
          f"{res['sj_predict_s']:.2f} s vs {res['th_predict_s']:.2f} s (ratio "
          f"{res['predict_ratio']:.2f})")
    print(f"Workspace floats per sample: gradients {plan['gradients']} planned vs "
          f"{plan['gradients_per_tensor']} one per tensor; inference activations "
          f"{plan['infer_activations']} vs {plan['infer_per_tensor']}; training activations "
          f"{plan['train_activations']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cnn_sequential_vs_functional": cnn, "resnet": res}, f, indent=1)


if __name__ == "__main__":
    main()
