"""Learning-rate schedules: Keras 3's arguments, defaults and configs; values step by step
against Keras's own (float32) numbers and against the formulas in float64; a schedule inside
fit changes the learning rate at every step, in the core; save/load round trips."""
import math

import numpy as np
import pytest

import shenjing
from shenjing import layers, optimizers
from shenjing.optimizers import schedules as S

# Keras 3.15.1's values at steps 0..12, printed once by this script (KERAS_BACKEND=torch):
# import numpy as np
# from keras.optimizers import schedules as S
# cases = {
#  "exp": S.ExponentialDecay(0.1, 3, 0.5),
#  "exp_stair": S.ExponentialDecay(0.1, 3, 0.5, staircase=True),
#  "piece": S.PiecewiseConstantDecay([2, 5], [1.0, 0.5, 0.1]),
#  "poly": S.PolynomialDecay(0.1, 4, end_learning_rate=0.01, power=2.0),
#  "poly_cycle": S.PolynomialDecay(0.1, 4, end_learning_rate=0.01, power=0.5, cycle=True),
#  "inv": S.InverseTimeDecay(0.1, 2, 0.5),
#  "inv_stair": S.InverseTimeDecay(0.1, 2, 0.5, staircase=True),
#  "cos": S.CosineDecay(0.1, 6, alpha=0.1),
#  "cos_warm": S.CosineDecay(0.0, 6, alpha=0.1, warmup_target=0.2, warmup_steps=3),
#  "sgdr": S.CosineDecayRestarts(0.1, 3, t_mul=2.0, m_mul=0.5, alpha=0.05),
#  "sgdr_t1": S.CosineDecayRestarts(0.1, 3, t_mul=1.0, m_mul=0.8),
#  "sgdr_t3": S.CosineDecayRestarts(0.1, 2, t_mul=3.0),
# }
# for k, s in cases.items():
#     print(f'    "{k}": {[float(np.asarray(s(t))) for t in range(13)]},')
KERAS = {
    "exp": [
        0.10000000149011612, 0.07937005162239075, 0.06299605220556259, 0.05000000074505806,
        0.039685025811195374, 0.031498026102781296, 0.02500000037252903,
        0.019842514768242836, 0.015749013051390648, 0.012500000186264515,
        0.009921257384121418, 0.007874506525695324, 0.0062500000931322575
    ],
    "exp_stair": [
        0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.05000000074505806,
        0.05000000074505806, 0.05000000074505806, 0.02500000037252903, 0.02500000037252903,
        0.02500000037252903, 0.012500000186264515, 0.012500000186264515,
        0.012500000186264515, 0.0062500000931322575
    ],
    "piece": [
        1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.10000000149011612, 0.10000000149011612,
        0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.10000000149011612,
        0.10000000149011612
    ],
    "poly": [
        0.10000000149011612, 0.06062500178813934, 0.032499998807907104, 0.015625,
        0.009999999776482582, 0.009999999776482582, 0.009999999776482582,
        0.009999999776482582, 0.009999999776482582, 0.009999999776482582,
        0.009999999776482582, 0.009999999776482582, 0.009999999776482582
    ],
    "poly_cycle": [
        0.10000000149011612, 0.08794228732585907, 0.07363960891962051, 0.054999999701976776,
        0.009999999776482582, 0.06511352211236954, 0.054999999701976776,
        0.04181980341672897, 0.009999999776482582, 0.054999999701976776,
        0.04674234986305237, 0.03598076105117798, 0.009999999776482582
    ],
    "inv": [
        0.10000000149011612, 0.07999999821186066, 0.06666667014360428, 0.05714285746216774,
        0.05000000074505806, 0.04444444552063942, 0.03999999910593033, 0.036363635212183,
        0.03333333507180214, 0.03076923079788685, 0.02857142873108387, 0.02666666731238365,
        0.02500000037252903
    ],
    "inv_stair": [
        0.10000000149011612, 0.10000000149011612, 0.06666667014360428, 0.06666667014360428,
        0.05000000074505806, 0.05000000074505806, 0.03999999910593033, 0.03999999910593033,
        0.03333333507180214, 0.03333333507180214, 0.02857142873108387, 0.02857142873108387,
        0.02500000037252903
    ],
    "cos": [
        0.10000000149011612, 0.0939711481332779, 0.07750000059604645, 0.05499999597668648,
        0.032499995082616806, 0.016028856858611107, 0.010000000707805157,
        0.010000000707805157, 0.010000000707805157, 0.010000000707805157,
        0.010000000707805157, 0.010000000707805157, 0.010000000707805157
    ],
    "cos_warm": [
        0.0, 0.06666667014360428, 0.13333334028720856, 0.20000000298023224,
        0.1879422962665558, 0.1550000011920929, 0.10999999195337296, 0.06499999016523361,
        0.032057713717222214, 0.020000001415610313, 0.020000001415610313,
        0.020000001415610313, 0.020000001415610313
    ],
    "sgdr": [
        0.10000000149011612, 0.07625000178813934, 0.028749996796250343, 0.05249999836087227,
        0.0493181049823761, 0.04062500223517418, 0.028750000521540642, 0.016875004395842552,
        0.008181894198060036, 0.028750000521540642, 0.028345370665192604,
        0.027159053832292557, 0.025271892547607422
    ],
    "sgdr_t1": [
        0.10000000149011612, 0.07500000298023224, 0.02499999664723873, 0.08000000566244125,
        0.05999999865889549, 0.020000005140900612, 0.06400000303983688, 0.04800001159310341,
        0.015999993309378624, 0.05120000243186951, 0.03840000927448273,
        0.012799995020031929, 0.040960002690553665
    ],
    "sgdr_t3": [
        0.10000000149011612, 0.04999999701976776, 0.10000000149011612, 0.09330127388238907,
        0.07500000298023224, 0.04999999701976776, 0.02499999664723873, 0.006698730867356062,
        0.10000000149011612, 0.09924038499593735, 0.0969846323132515, 0.09330127388238907,
        0.08830221742391586
    ],
}

CASES = {
    "exp": lambda: S.ExponentialDecay(0.1, 3, 0.5),
    "exp_stair": lambda: S.ExponentialDecay(0.1, 3, 0.5, staircase=True),
    "piece": lambda: S.PiecewiseConstantDecay([2, 5], [1.0, 0.5, 0.1]),
    "poly": lambda: S.PolynomialDecay(0.1, 4, end_learning_rate=0.01, power=2.0),
    "poly_cycle": lambda: S.PolynomialDecay(0.1, 4, end_learning_rate=0.01, power=0.5,
                                            cycle=True),
    "inv": lambda: S.InverseTimeDecay(0.1, 2, 0.5),
    "inv_stair": lambda: S.InverseTimeDecay(0.1, 2, 0.5, staircase=True),
    "cos": lambda: S.CosineDecay(0.1, 6, alpha=0.1),
    "cos_warm": lambda: S.CosineDecay(0.0, 6, alpha=0.1, warmup_target=0.2, warmup_steps=3),
    "sgdr": lambda: S.CosineDecayRestarts(0.1, 3, t_mul=2.0, m_mul=0.5, alpha=0.05),
    "sgdr_t1": lambda: S.CosineDecayRestarts(0.1, 3, t_mul=1.0, m_mul=0.8),
    "sgdr_t3": lambda: S.CosineDecayRestarts(0.1, 2, t_mul=3.0),
}


# --- the formulas in float64 (keras/src/optimizers/schedules/learning_rate_schedule.py) ------

def _sgdr(t, init, first, t_mul, m_mul, alpha):
    frac = t / first
    if t_mul == 1.0:
        i = math.floor(frac)
        frac -= i
    else:
        i = math.floor(math.log(1 - frac * (1 - t_mul)) / math.log(t_mul))
        frac = (frac - (1 - t_mul ** i) / (1 - t_mul)) / t_mul ** i
    return init * ((1 - alpha) * 0.5 * m_mul ** i * (1 + math.cos(math.pi * frac)) + alpha)


def _cos(t, steps, init, alpha):
    return init * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / steps)) + alpha)


def _poly(t, init, steps, end, power, cycle):
    if cycle:
        steps = steps * (1 if t == 0 else math.ceil(t / steps))
    else:
        t = min(t, steps)
    return (init - end) * (1 - t / steps) ** power + end


FORMULAS = {
    "exp": lambda t: 0.1 * 0.5 ** (t / 3),
    "exp_stair": lambda t: 0.1 * 0.5 ** (t // 3),
    "piece": lambda t: 1.0 if t <= 2 else 0.5 if t <= 5 else 0.1,
    "poly": lambda t: _poly(t, 0.1, 4, 0.01, 2.0, False),
    "poly_cycle": lambda t: _poly(t, 0.1, 4, 0.01, 0.5, True),
    "inv": lambda t: 0.1 / (1 + 0.5 * t / 2),
    "inv_stair": lambda t: 0.1 / (1 + 0.5 * (t // 2)),
    "cos": lambda t: _cos(min(t, 6), 6, 0.1, 0.1),
    "cos_warm": lambda t: (0.2 * t / 3 if t < 3 else _cos(min(t, 9) - 3, 6, 0.2, 0.1)),
    "sgdr": lambda t: _sgdr(t, 0.1, 3, 2.0, 0.5, 0.05),
    "sgdr_t1": lambda t: _sgdr(t, 0.1, 3, 1.0, 0.8, 0.0),
    "sgdr_t3": lambda t: _sgdr(t, 0.1, 2, 3.0, 1.0, 0.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_step_by_step(name):
    s = CASES[name]()
    got = np.array([s(t) for t in range(13)])
    np.testing.assert_allclose(got, KERAS[name], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got, [FORMULAS[name](t) for t in range(13)], rtol=2e-6,
                               atol=1e-8)
    assert all(isinstance(v, float) for v in got.tolist())


def test_long_runs_against_formulas():
    """Thousands of steps (restarts, cycles) in float32 stay within 1e-5 of float64."""
    steps = np.arange(0, 5000, 7)
    s = S.CosineDecayRestarts(0.3, 50, t_mul=1.5, m_mul=0.9, alpha=0.01)
    np.testing.assert_allclose([s(int(t)) for t in steps],
                               [_sgdr(t, 0.3, 50, 1.5, 0.9, 0.01) for t in steps], rtol=1e-4,
                               atol=1e-7)
    e = S.ExponentialDecay(0.5, 100, 0.9)
    np.testing.assert_allclose([e(int(t)) for t in steps], 0.5 * 0.9 ** (steps / 100),
                               rtol=1e-5)


def test_defaults_and_configs_as_keras():
    assert S.PolynomialDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "end_learning_rate": 0.0001,
        "power": 1.0, "cycle": False, "name": "PolynomialDecay"}
    assert S.CosineDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
        "warmup_target": None, "warmup_steps": 0}
    assert S.CosineDecayRestarts(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "first_decay_steps": 10, "t_mul": 2.0, "m_mul": 1.0,
        "alpha": 0.0, "name": "SGDRDecay"}
    assert S.PiecewiseConstantDecay([1], [0.1, 0.01]).get_config()["name"] == \
        "PiecewiseConstant"
    assert S.ExponentialDecay(0.1, 10, 0.9).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9,
        "staircase": False, "name": "ExponentialDecay"}
    assert S.InverseTimeDecay(0.1, 10, 0.9).name == "InverseTimeDecay"
    for name, make in CASES.items():
        s = make()
        d = S.serialize(s)
        assert d["module"] == "keras.optimizers.schedules"
        assert d["class_name"] == type(s).__name__
        back = S.deserialize(d)
        assert type(back) is type(s) and back.get_config() == s.get_config()
        assert [back(t) for t in range(8)] == [s(t) for t in range(8)]


@pytest.mark.parametrize("make,msg", [
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: S.PolynomialDecay(0.1, -1), "decay_steps"),
    (lambda: S.InverseTimeDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: S.CosineDecay(0.1, 0), "decay_steps"),
    (lambda: S.CosineDecayRestarts(0.1, 0), "first_decay_steps"),
    (lambda: S.PiecewiseConstantDecay([1, 2], [0.1]), "1 less"),
    (lambda: S.ExponentialDecay("a", 10, 0.5), "initial_learning_rate"),
    (lambda: S.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1), "warmup_steps"),
    (lambda: S.deserialize({"class_name": "Nope", "config": {}}), "Nope"),
])
def test_bad_arguments(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_base_class_must_be_overridden():
    with pytest.raises(NotImplementedError):
        S.LearningRateSchedule()(0)


# --- in an optimizer and in fit --------------------------------------------------------------

X = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)


def _model(opt):
    model = shenjing.Sequential([layers.Input((4,)), layers.Dense(3, activation="tanh"),
                                 layers.Dense(2)])
    model.compile(optimizer=opt, loss="mse")
    rng = np.random.default_rng(42)
    model.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in model.get_weights()])
    return model


def _sgd_by_hand(model, lrs, batch):
    """The weights after plain SGD steps over batches of ``batch`` rows with rates lrs."""
    for t, lr in enumerate(lrs):
        rows = slice((t * batch) % len(X), (t * batch) % len(X) + batch)
        model._core.compute_gradients(np.ascontiguousarray(X[rows]),
                                      np.ascontiguousarray(Y[rows]))
        for layer in model.layers:
            for _, value, grad in layer._views:
                value -= np.float32(lr) * grad
    return model.get_weights()


@pytest.mark.parametrize("name", ["exp", "piece", "cos_warm", "sgdr"])
def test_schedule_changes_the_rate_at_every_step_of_fit(name):
    """batch_size 2: 3 steps per epoch, 2 epochs; step t uses schedule(t)."""
    sched = CASES[name]()
    model = _model(optimizers.SGD(learning_rate=sched))
    model.fit(X, Y, batch_size=2, epochs=2, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 6
    ref = _sgd_by_hand(_model(optimizers.SGD(0.1)), [KERAS[name][t] for t in range(6)], 2)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert model.optimizer.learning_rate == pytest.approx(KERAS[name][6], rel=1e-6)


def test_schedule_with_adam_uses_the_scheduled_rate():
    """Adam under a schedule equals Adam whose rate is set by hand before every step."""
    sched = S.ExponentialDecay(0.05, 2, 0.3)
    a = _model(optimizers.Adam(learning_rate=sched))
    b = _model(optimizers.Adam(learning_rate=0.05))
    for t in range(4):
        a._core.train_step(X, Y, None, 0, len(X))
        b.optimizer.learning_rate = sched(t)
        b._core.train_step(X, Y, None, 0, len(X))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-8)


def test_learning_rate_reads_and_assignment_rules():
    opt = optimizers.SGD(learning_rate=S.ExponentialDecay(0.1, 1, 0.5))
    assert opt.learning_rate == pytest.approx(0.1)
    model = _model(opt)
    model.fit(X, Y, batch_size=6, epochs=2, verbose=0)
    assert opt.learning_rate == pytest.approx(0.025, rel=1e-6)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.5
    opt.learning_rate = S.PiecewiseConstantDecay([100], [0.3, 0.2])  # another schedule: fine
    assert opt.learning_rate == pytest.approx(0.3)
    assert model._core.learning_rate == pytest.approx(0.3)
    zero = optimizers.SGD(learning_rate=0.0)
    m = _model(zero)
    before = m.get_weights()
    m.fit(X, Y, epochs=1, verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    for bad in (-0.1, float("nan"), "x", None):
        with pytest.raises(ValueError, match="learning_rate"):
            optimizers.Adam(learning_rate=bad)


class HalvingEveryStep(S.LearningRateSchedule):
    def __init__(self, start):
        self.start = start

    def __call__(self, step):
        return self.start * 0.5 ** int(step)

    def get_config(self):
        return {"start": self.start}


def test_custom_schedule_and_callable_run_in_python_every_batch():
    model = _model(optimizers.SGD(learning_rate=HalvingEveryStep(0.2)))
    model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    ref = _sgd_by_hand(_model(optimizers.SGD(0.1)), [0.2, 0.1, 0.05], 2)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    calls = []
    model = _model(optimizers.SGD(learning_rate=lambda: calls.append(1) or 0.05))
    model.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    assert len(calls) >= 3  # Keras calls it with no arguments, at least once per step
    ref = _sgd_by_hand(_model(optimizers.SGD(0.1)), [0.05] * 3, 2)
    for a, b in zip(model.get_weights(), ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_save_and_load_with_a_schedule(tmp_path):
    sched = S.CosineDecay(0.1, 10, alpha=0.2, warmup_target=0.3, warmup_steps=2)
    a = _model(optimizers.Adam(learning_rate=sched))
    a.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    a.save(tmp_path / "m.keras")
    b = shenjing.models.load_model(tmp_path / "m.keras")
    lr = b.optimizer._learning_rate
    assert isinstance(lr, S.CosineDecay) and lr.get_config() == sched.get_config()
    assert b.optimizer.learning_rate == a.optimizer.learning_rate
    a.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    b.fit(X, Y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_custom_schedule_saves_and_loads_with_custom_objects(tmp_path):
    a = _model(optimizers.SGD(learning_rate=HalvingEveryStep(0.2)))
    a.save(tmp_path / "m.keras")
    b = shenjing.models.load_model(tmp_path / "m.keras",
                                   custom_objects={"HalvingEveryStep": HalvingEveryStep})
    assert isinstance(b.optimizer._learning_rate, HalvingEveryStep)
    assert b.optimizer._learning_rate.start == 0.2


def test_keras_written_optimizer_config_with_a_schedule_loads():
    # keras.optimizers.serialize(keras.optimizers.SGD(ExponentialDecay(0.1, 10, 0.9))) in 3.15
    cfg = {"module": "keras.optimizers", "class_name": "SGD", "config": {
        "name": "SGD", "learning_rate": {
            "module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9,
                       "staircase": False, "name": "ExponentialDecay"},
            "registered_name": None},
        "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
        "loss_scale_factor": None, "gradient_accumulation_steps": None, "momentum": 0.0,
        "nesterov": False}, "registered_name": None}
    opt = optimizers.get(cfg)
    assert isinstance(opt._learning_rate, S.ExponentialDecay)
    assert opt.get_config()["learning_rate"] == cfg["config"]["learning_rate"]


def _constant_rate():
    return 0.01


def test_callable_learning_rate_saves_by_name(tmp_path):
    """Keras's function form; loading finds the function only where the program gives it."""
    a = _model(optimizers.SGD(learning_rate=_constant_rate))
    assert a.optimizer.get_config()["learning_rate"] == {
        "module": "builtins", "class_name": "function", "config": "_constant_rate",
        "registered_name": "function"}
    a.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="not registered"):
        shenjing.models.load_model(tmp_path / "m.keras")
    b = shenjing.models.load_model(tmp_path / "m.keras",
                                   custom_objects={"_constant_rate": _constant_rate})
    assert b.optimizer._learning_rate is _constant_rate and b.optimizer.learning_rate == 0.01
