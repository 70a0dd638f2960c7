"""Keras's gradient clipping (clipnorm, global_clipnorm, clipvalue) before every optimizer
update, against torch.nn.utils.clip_grad_norm_ / clip_grad_value_ on the same step."""
import json

import numpy as np
import pytest

import shenjing
from shenjing import layers, optimizers

CASES = [("clipnorm", 0.05), ("global_clipnorm", 0.05), ("clipvalue", 0.01),
         ("clipnorm", 100.0), ("global_clipnorm", 100.0)]  # the last two: nothing to clip


def _model(optimizer):
    shenjing.utils.set_random_seed(0)
    model = shenjing.Sequential([layers.Input((4,), dtype="int32"), layers.Embedding(10, 3),
                                 layers.Flatten(), layers.Dense(5, activation="tanh"),
                                 layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("what,value", CASES)
@pytest.mark.parametrize("opt", ["sgd", "momentum"])
def test_one_step_matches_torch(what, value, opt):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.integers(0, 10, (6, 4))
    y = rng.normal(size=(6, 2)).astype(np.float32)
    momentum = 0.9 if opt == "momentum" else 0.0
    model = _model(optimizers.SGD(0.1, momentum=momentum, **{what: value}))
    before = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    table, k1, b1, k2, b2 = before
    h = torch.tanh(table[torch.tensor(x)].reshape(6, -1) @ k1 + b1)
    ((h @ k2 + b2 - torch.tensor(y)) ** 2).mean().backward()
    if what == "clipnorm":
        for w in before:
            torch.nn.utils.clip_grad_norm_([w], value)
    elif what == "global_clipnorm":
        torch.nn.utils.clip_grad_norm_(before, value)
    else:
        torch.nn.utils.clip_grad_value_(before, value)
    # One step from zero momentum: Keras's and torch's momentum rules agree there.
    torch.optim.SGD(before, lr=0.1, momentum=momentum).step()
    model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=2e-5, atol=2e-6)


def test_arguments_and_configs():
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.Adam(clipnorm=1.0, clipvalue=0.5)
    with pytest.raises(ValueError, match="clipnorm"):
        optimizers.SGD(clipnorm=-1.0)
    opt = optimizers.RMSprop(0.01, global_clipnorm=2.0)
    config = opt.get_config()
    assert config["global_clipnorm"] == 2.0 and config["clipnorm"] is None
    again = optimizers.get({"class_name": "RMSprop", "config": json.loads(json.dumps(config))})
    assert again.global_clipnorm == 2.0 and again.learning_rate == pytest.approx(0.01)
    # Keras 3.15.1's Adam(clipnorm=1.0).get_config(), as it writes it.
    keras_cfg = {"name": "adam", "learning_rate": 0.001, "weight_decay": None, "clipnorm": 1.0,
                 "global_clipnorm": None, "clipvalue": None, "use_ema": False,
                 "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                 "loss_scale_factor": None, "gradient_accumulation_steps": None,
                 "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}
    assert optimizers.Adam.from_config(keras_cfg).clipnorm == 1.0
