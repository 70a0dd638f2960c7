"""Every optimizer option against Keras 3's own training: the same Dense model, data and
initial weights fit for 3 epochs of 2 batches in Keras 3.15.1 (torch backend) and here; the
final weights must agree. Covers Nadam, Adamax, Lion, weight decay (with a name exclusion),
built-in schedules inside fit, and EMA with overwrite and fit's final copy."""
import numpy as np
import pytest

import shenjing
from shenjing import layers, optimizers as O
from shenjing.optimizers import schedules as S

# Keras's final weights (kernel then bias, flattened), printed once by:
# import numpy as np, keras
# from keras import optimizers as O
# from keras.optimizers import schedules as S
# X = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.0) / 4.0
# Y = np.cos(np.arange(8, dtype=np.float32)).reshape(4, 2)
# K0 = (np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5) / 5.0
# B0 = np.array([0.1, -0.2], np.float32)
# def nobias_wd(o):
#     o.exclude_from_weight_decay(var_names=["bias"])
#     return o
# CASES = {
#     "nadam": lambda: O.Nadam(0.05),
#     "adamax": lambda: O.Adamax(0.05),
#     "lion": lambda: O.Lion(0.02),
#     "sgd_wd": lambda: O.SGD(0.1, momentum=0.9, weight_decay=0.1),
#     "adam_wd_nobias": lambda: nobias_wd(O.Adam(0.05, weight_decay=0.2)),
#     "rmsprop_wd": lambda: O.RMSprop(0.01, weight_decay=0.3),
#     "adagrad_wd": lambda: O.Adagrad(0.1, weight_decay=0.3),
#     "nadam_exp": lambda: O.Nadam(S.ExponentialDecay(0.05, 2, 0.5)),
#     "lion_cos_warm": lambda: O.Lion(S.CosineDecay(0.0, 4, warmup_target=0.03, warmup_steps=2)),
#     "adamw_sgdr": lambda: O.AdamW(S.CosineDecayRestarts(0.05, 2, alpha=0.1)),
#     "sgd_ema": lambda: O.SGD(0.1, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=2),
#     "adam_ema": lambda: O.Adam(0.05, use_ema=True, ema_momentum=0.5),
# }
# for name, make in CASES.items():
#     m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
#     m.compile(optimizer=make(), loss="mse")
#     m.set_weights([K0, B0])
#     m.fit(X, Y, batch_size=2, epochs=3, shuffle=False, verbose=0)
#     print(f'    "{name}": {np.concatenate([w.ravel() for w in m.get_weights()]).tolist()},')
KERAS = {
    "nadam": [
        -0.43557727336883545, -0.3191733956336975, -0.04505370929837227, 0.0971958339214325,
        0.3472057580947876, 0.508499026298523, 0.08248358219861984, -0.13812389969825745
    ],
    "adamax": [
        -0.4544185698032379, -0.3432798683643341, -0.06440547108650208, 0.07634345442056656,
        0.32772642374038696, 0.4882912337779999, 0.06141885742545128, -0.16256467998027802
    ],
    "lion": [
        -0.4599999487400055, -0.30000001192092896, -0.10000000894069672,
        0.09999999403953552, 0.30000001192092896, 0.5, 0.09999999403953552,
        -0.1600000113248825
    ],
    "sgd_wd": [
        -0.31075969338417053, -0.3236826956272125, 0.05185290426015854, 0.09120742976665497,
        0.41446545720100403, 0.5060975551605225, 0.038230061531066895, -0.0351039320230484
    ],
    "adam_wd_nobias": [
        -0.38407862186431885, -0.3211079239845276, -0.02138661779463291,
        0.07912798225879669, 0.3438187837600708, 0.47204622626304626, 0.06426374614238739,
        -0.120506152510643
    ],
    "rmsprop_wd": [
        -0.4598974585533142, -0.3079051971435547, -0.07175605744123459, 0.09313913434743881,
        0.3171651363372803, 0.49179795384407043, 0.08532389253377914, -0.1662141978740692
    ],
    "adagrad_wd": [
        -0.32919231057167053, -0.24795056879520416, -0.007573951035737991,
        0.10038524866104126, 0.31491100788116455, 0.4439345896244049, 0.09208977967500687,
        -0.06001941114664078
    ],
    "nadam_exp": [
        -0.49615058302879333, -0.3322157859802246, -0.10018807649612427, 0.0746036022901535,
        0.29653802514076233, 0.4792236089706421, 0.07051961869001389, -0.2000109851360321
    ],
    "lion_cos_warm": [
        -0.4699999988079071, -0.30000001192092896, -0.10000000149011612,
        0.10000000149011612, 0.30000001192092896, 0.5, 0.10000000149011612,
        -0.17000000178813934
    ],
    "adamw_sgdr": [
        -0.45604005455970764, -0.34914982318878174, -0.06727495044469833,
        0.0666496530175209, 0.3235431909561157, 0.4775679409503937, 0.055079709738492966,
        -0.16707074642181396
    ],
    "sgd_ema": [
        -0.4832162857055664, -0.3290761709213257, -0.08856867253780365, 0.07402217388153076,
        0.3060789704322815, 0.4771204888820648, 0.07859043031930923, -0.18760663270950317
    ],
    "adam_ema": [
        -0.4362136721611023, -0.34586116671562195, -0.048446573317050934,
        0.07402245700359344, 0.34158414602279663, 0.4878293573856354, 0.06067921966314316,
        -0.1457231193780899
    ],
}

X = (np.arange(12, dtype=np.float32).reshape(4, 3) - 5.0) / 4.0
Y = np.cos(np.arange(8, dtype=np.float32)).reshape(4, 2)
K0 = (np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5) / 5.0
B0 = np.array([0.1, -0.2], np.float32)


def nobias_wd(o):
    o.exclude_from_weight_decay(var_names=["bias"])
    return o


CASES = {
    "nadam": lambda: O.Nadam(0.05),
    "adamax": lambda: O.Adamax(0.05),
    "lion": lambda: O.Lion(0.02),
    "sgd_wd": lambda: O.SGD(0.1, momentum=0.9, weight_decay=0.1),
    "adam_wd_nobias": lambda: nobias_wd(O.Adam(0.05, weight_decay=0.2)),
    "rmsprop_wd": lambda: O.RMSprop(0.01, weight_decay=0.3),
    "adagrad_wd": lambda: O.Adagrad(0.1, weight_decay=0.3),
    "nadam_exp": lambda: O.Nadam(S.ExponentialDecay(0.05, 2, 0.5)),
    "lion_cos_warm": lambda: O.Lion(S.CosineDecay(0.0, 4, warmup_target=0.03, warmup_steps=2)),
    "adamw_sgdr": lambda: O.AdamW(S.CosineDecayRestarts(0.05, 2, alpha=0.1)),
    "sgd_ema": lambda: O.SGD(0.1, use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=2),
    "adam_ema": lambda: O.Adam(0.05, use_ema=True, ema_momentum=0.5),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_matches_keras(name):
    model = shenjing.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=CASES[name](), loss="mse")
    model.set_weights([K0, B0])
    model.fit(X, Y, batch_size=2, epochs=3, shuffle=False, verbose=0)
    got = np.concatenate([w.ravel() for w in model.get_weights()])
    np.testing.assert_allclose(got, KERAS[name], rtol=1e-5, atol=1e-6)
    assert model.optimizer.iterations == 6
