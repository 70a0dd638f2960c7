"""The graph core through the functional API: gradients at fan-out, merges and shared layers
(central finite differences), several inputs and outputs, PyTorch parity, Sequential and
functional giving the same training bit for bit, shared weights between models, the memory
plan, and the errors of graph building."""
import numpy as np
import pytest

import shenjing
from shenjing import layers

H, RTOL = 3e-3, 2e-2


def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _randomize(model, rng, scale=0.6):
    for layer in model._core_layers:
        for _, value, _ in layer._views:
            value[...] = rng.uniform(-scale, scale, value.shape)


def fd_check(model, xs, ys, h=H, rtol=RTOL):
    """Every analytic weight gradient against a central difference of the total loss."""
    core = model._core
    loss0 = core.compute_gradients(xs, ys)
    analytic = [[g.copy() for _, _, g in layer._views] for layer in model._core_layers]
    checked = 0
    for layer, grads in zip(model._core_layers, analytic):
        for (pname, value, _), g in zip(layer._views, grads):
            flat = value.reshape(-1)
            fd = np.empty(flat.size)
            for i in range(flat.size):
                w = flat[i]
                wp, wm = np.float32(w + np.float32(h)), np.float32(w - np.float32(h))
                flat[i] = wp
                lp = core.compute_gradients(xs, ys)
                flat[i] = wm
                lm = core.compute_gradients(xs, ys)
                flat[i] = w
                fd[i] = (lp - lm) / (float(wp) - float(wm))
            an = g.reshape(-1).astype(np.float64)
            scale = max(np.abs(an).max(), np.abs(fd).max())
            bad = np.abs(fd - an) > 2e-3 * scale + 2e-5 + rtol * np.abs(fd)
            assert not bad.any(), f"{layer.name}.{pname}: {an[bad][:4]} vs {fd[bad][:4]}"
            checked += flat.size
    assert core.compute_gradients(xs, ys) == pytest.approx(loss0, rel=1e-6, abs=1e-7)
    return checked


def _compiled(model, loss="mse", **kw):
    model.compile(optimizer="sgd", loss=loss, **kw)
    return model


def _graphs():
    """name -> (model builder, number of inputs, output widths)."""
    def fan_out():
        x = shenjing.Input((4,))
        a = layers.Dense(5, activation="tanh")(x)
        b = layers.Dense(5, activation="sigmoid")(x)
        c = layers.Dense(5)(a)
        return shenjing.Model(x, layers.Dense(3)(layers.Add()([a, b, c])))

    def merge(layer):
        def build():
            x = shenjing.Input((4,))
            a = layers.Dense(6, activation="tanh")(x)
            b = layers.Dense(6, activation="tanh")(x)
            return shenjing.Model(x, layers.Dense(2)(layer()([a, b])))
        return build

    def shared():
        x1, x2 = shenjing.Input((4,)), shenjing.Input((4,))
        d = layers.Dense(5, activation="tanh")
        return shenjing.Model([x1, x2], layers.Dense(2)(layers.Subtract()([d(x1), d(x2)])))

    def same_twice():
        x = shenjing.Input((4,))
        a = layers.Dense(5, activation="tanh")(x)
        return shenjing.Model(x, layers.Dense(2)(layers.Multiply()([a, a])))

    def reshape_branch():
        x = shenjing.Input((6,))
        r = layers.Reshape((2, 3))(x)
        c = layers.Flatten()(layers.Dense(3, activation="tanh")(r))
        return shenjing.Model(x, layers.Dense(2)(layers.Concatenate()([c, x])))

    def dot():
        x = shenjing.Input((4,))
        a = layers.Reshape((2, 3))(layers.Dense(6, activation="tanh")(x))
        b = layers.Reshape((2, 3))(layers.Dense(6, activation="tanh")(x))
        return shenjing.Model(x, layers.Dense(2)(layers.Flatten()(
            layers.Dot(axes=(2, 2), normalize=True)([a, b]))))

    def decoder():
        x = shenjing.Input((6,))
        v = layers.RepeatVector(4)(layers.Dense(3, activation="tanh")(x))  # (4, 3)
        p = layers.Permute((2, 1))(v)  # (3, 4)
        img = layers.Reshape((3, 4, 1))(p)
        up = layers.UpSampling2D(interpolation="bilinear")(img)  # (6, 8, 1)
        t = layers.Conv2DTranspose(2, 3, strides=2, padding="same", activation="tanh")(up)
        c = layers.Cropping2D(((1, 2), (3, 1)))(t)  # (9, 12, 2)
        u1 = layers.UpSampling1D(2)(layers.Conv1DTranspose(2, 2, strides=2)(
            layers.Reshape((4, 3))(p)))
        # Pools keep the head small: the finite differences perturb every weight.
        return shenjing.Model(x, layers.Dense(2)(layers.Concatenate()(
            [layers.GlobalMaxPooling2D()(c),
             layers.GlobalAveragePooling1D()(layers.Cropping1D((1, 2))(u1))])))

    return {"fan_out": fan_out, "decoder": decoder, "shared": shared, "same_twice": same_twice,
            "reshape_branch": reshape_branch, "dot": dot,
            **{f"merge_{c.__name__}": merge(c) for c in
               (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum,
                layers.Minimum, layers.Concatenate)}}


@pytest.mark.parametrize("name", sorted(_graphs()))
def test_finite_differences_through_graphs(name):
    rng = np.random.default_rng(1)
    model = _compiled(_graphs()[name]())
    _randomize(model, rng)
    xs = [_f32(rng.uniform(-1, 1, (5,) + t.shape[1:])) for t in model.inputs]
    ys = [_f32(rng.uniform(-1, 1, (5,) + t.shape[1:])) for t in model.outputs]
    assert fd_check(model, xs, ys) > 0


def test_finite_differences_two_outputs_weighted_and_an_output_read_by_another_layer():
    # The softmax output also feeds a Dense: its cross-entropy must not take the fused dL/dz
    # shortcut, since the other reader needs dL/dy.
    rng = np.random.default_rng(2)
    x1, x2 = shenjing.Input((3,)), shenjing.Input((4,))
    h = layers.Dense(6, activation="tanh")(layers.Concatenate()([x1, x2]))
    p = layers.Dense(4, activation="softmax", name="probs")(h)
    r = layers.Dense(2, name="reg")(layers.Concatenate()([p, h]))
    model = shenjing.Model([x1, x2], [p, r])
    core = model._core
    core.compile([(4, False, 1.0, 0.7, []), (0, False, 1.0, 1.3, [])],
                 shenjing.optimizers.SGD()._spec())
    _randomize(model, rng)
    xs = [_f32(rng.uniform(-1, 1, (5, 3))), _f32(rng.uniform(-1, 1, (5, 4)))]
    ys = [_f32(np.eye(4)[rng.integers(0, 4, 5)]), _f32(rng.uniform(-1, 1, (5, 2)))]
    assert fd_check(model, xs, ys) > 0


def _torch_branching(model):
    """The model of test_pytorch_parity in torch, with its weights."""
    torch = pytest.importorskip("torch")
    w = {l.name: [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in
                  l.get_weights()] for l in model._core_layers}

    def forward(x1, x2):
        dense = lambda name, x: x @ w[name][0] + w[name][1]  # noqa: E731
        shared = lambda x: torch.tanh(dense("shared", x))  # noqa: E731
        a, b = shared(x1), shared(x2)
        m = torch.cat([a * b, a - b], dim=1)
        probs = torch.softmax(dense("cls", m), dim=1)
        reg = dense("reg", torch.relu(dense("hid", m)) + a)
        return probs, reg
    return torch, w, forward


def _branching():
    x1, x2 = shenjing.Input((5,), name="left"), shenjing.Input((5,), name="right")
    shared = layers.Dense(6, activation="tanh", name="shared")
    a, b = shared(x1), shared(x2)
    m = layers.Concatenate()([layers.Multiply()([a, b]), layers.Subtract()([a, b])])
    probs = layers.Dense(3, activation="softmax", name="cls")(m)
    hid = layers.Dense(6, activation="relu", name="hid")(m)
    reg = layers.Dense(2, name="reg")(layers.Add()([hid, a]))
    return shenjing.Model([x1, x2], [probs, reg])


def test_pytorch_parity_branching_two_inputs_two_outputs_and_one_sgd_step():
    rng = np.random.default_rng(3)
    model = _branching()
    _randomize(model, rng, 0.5)
    model._core.compile([(5, False, 1.0, 1.0, []), (0, False, 1.0, 0.5, [])],
                        shenjing.optimizers.SGD(learning_rate=0.1)._spec())
    torch, w, forward = _torch_branching(model)
    x1, x2 = _f32(rng.normal(size=(8, 5))), _f32(rng.normal(size=(8, 5)))
    labels, target = rng.integers(0, 3, 8), _f32(rng.normal(size=(8, 2)))
    probs, reg = forward(torch.tensor(x1, dtype=torch.float64),
                         torch.tensor(x2, dtype=torch.float64))
    outs = [np.empty((8, 3), np.float32), np.empty((8, 2), np.float32)]
    model._core.predict([x1, x2], outs, 0, 8)
    np.testing.assert_allclose(outs[0], probs.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[1], reg.detach().numpy(), rtol=1e-5, atol=1e-6)
    ce = torch.nn.functional.nll_loss(torch.log(probs), torch.tensor(labels))
    mse = ((reg - torch.tensor(target, dtype=torch.float64)) ** 2).mean()
    total = ce + 0.5 * mse
    total.backward()
    ys = [_f32(labels.reshape(-1, 1)), target]
    loss = model._core.compute_gradients([x1, x2], ys)
    assert loss == pytest.approx(total.item(), rel=1e-5)
    for layer in model._core_layers:
        for (pname, _, g), ref in zip(layer._views, w[layer.name]):
            np.testing.assert_allclose(g, ref.grad.numpy(), rtol=1e-4, atol=1e-6,
                                       err_msg=f"{layer.name}.{pname}")
    before = [[v.copy() for _, v, _ in l._views] for l in model._core_layers]
    loss_sum, _, per_output = model._core.train_step([x1, x2], ys, None, 0, 8)
    assert loss_sum / 8 == pytest.approx(total.item(), rel=1e-5)
    assert per_output[0] / 8 == pytest.approx(ce.item(), rel=1e-5)
    assert per_output[1] / 8 == pytest.approx(mse.item(), rel=1e-5)
    for layer, old in zip(model._core_layers, before):
        for (pname, v, _), o, ref in zip(layer._views, old, w[layer.name]):
            np.testing.assert_allclose(v, o - 0.1 * ref.grad.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"{layer.name}.{pname} after one SGD step")


def _cnn(functional):
    shenjing.utils.set_random_seed(7)
    stack = [layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
             layers.BatchNormalization(), layers.Flatten(), layers.Dropout(0.3),
             layers.Dense(10, activation="softmax")]
    if not functional:
        return shenjing.Sequential([shenjing.Input((10, 10, 1))] + stack)
    x = inp = shenjing.Input((10, 10, 1))
    for layer in stack:
        x = layer(x)
    return shenjing.Model(inp, x)


def test_sequential_and_functional_train_bit_identically():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (96, 10, 10, 1)).astype(np.float32)
    y = rng.integers(0, 10, 96)
    results = []
    for functional in (False, True):
        model = _cnn(functional)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        shenjing.utils.set_random_seed(11)
        hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25)
        results.append((hist.history, model.get_weights(), model.predict(x, verbose=0)))
    (h1, w1, p1), (h2, w2, p2) = results
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def test_a_submodel_made_before_training_uses_the_trained_weights():
    inp = shenjing.Input((6,))
    code = layers.Dense(2, activation="tanh", name="code")(layers.Dense(4, activation="relu")(inp))
    auto = shenjing.Model(inp, layers.Dense(6)(code))
    encoder = shenjing.Model(auto.input, auto.get_layer("code").output)
    auto.compile("adam", "mse")
    x = np.random.default_rng(5).normal(size=(64, 6)).astype(np.float32)
    before = encoder.predict(x, verbose=0)
    auto.fit(x, x, epochs=3, verbose=0)
    after = encoder.predict(x, verbose=0)
    assert not np.allclose(before, after)
    w0, b0 = auto.layers[1].get_weights()
    w1, b1 = auto.get_layer("code").get_weights()
    np.testing.assert_allclose(after, np.tanh(np.maximum(x @ w0 + b0, 0) @ w1 + b1),
                               rtol=1e-5, atol=1e-6)
    # Training the encoder changes the autoencoder's layer too: one set of weights.
    encoder.compile("sgd", "mse")
    encoder.fit(x, np.zeros((64, 2), np.float32), epochs=1, verbose=0)
    np.testing.assert_array_equal(encoder.get_layer("code").kernel, auto.get_layer("code").kernel)


def test_nested_sequential_is_expanded_and_keeps_its_weights():
    seq = shenjing.Sequential([shenjing.Input((5,)), layers.Dense(4, activation="relu"),
                               layers.Dense(3)])
    x = np.random.default_rng(6).normal(size=(10, 5)).astype(np.float32)
    inp = shenjing.Input((5,))
    outer = shenjing.Model(inp, layers.Dense(1)(seq(inp)))
    assert outer.layers[1] is seq and outer._core.num_layers == 3
    w = outer.layers[2].get_weights()
    np.testing.assert_allclose(outer.predict(x, verbose=0),
                               seq.predict(x, verbose=0) @ w[0] + w[1], rtol=1e-5, atol=1e-6)


def _resnet_block_model():
    inp = shenjing.Input((8, 8, 8))
    x = inp
    for _ in range(3):
        y = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        y = layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(y))
        x = layers.Activation("relu")(layers.Add()([x, y]))
    return shenjing.Model(inp, layers.Dense(10, activation="softmax")(
        layers.GlobalAveragePooling2D()(x)))


def test_memory_plan_reuses_buffers_after_their_last_reader():
    model = _resnet_block_model()
    model.compile("sgd", "categorical_crossentropy")
    plan = model._core.memory_plan()
    assert 0 < plan["gradients"] < plan["gradients_per_tensor"] / 2
    assert 0 < plan["infer_activations"] < plan["infer_per_tensor"] / 2
    x = np.random.default_rng(7).normal(size=(4, 8, 8, 8)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[[1, 2, 3, 4]]
    model.fit(x, y, verbose=0)  # planned buffers give the same result as a fresh model
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


def test_nodes_no_output_needs_are_not_run():
    inp = shenjing.Input((4,))
    used = layers.Dense(3)(inp)
    layers.Dense(1000)(inp)  # a branch no output reads
    model = shenjing.Model(inp, used)
    assert model._core.num_layers == 1
    assert model._core.memory_plan()["infer_per_tensor"] == 4 + 3


# -- errors --------------------------------------------------------------------------------
def test_disconnected_graph_names_the_missing_input():
    a, b = shenjing.Input((3,), name="first"), shenjing.Input((3,), name="second")
    out = layers.Add()([layers.Dense(2)(a), layers.Dense(2)(b)])
    with pytest.raises(ValueError, match="Graph disconnected.*'second'"):
        shenjing.Model(a, out)


def test_output_that_is_an_input_and_inputs_not_from_input():
    a = shenjing.Input((3,))
    with pytest.raises(ValueError, match="one of the inputs"):
        shenjing.Model(a, a)
    d = layers.Dense(2)(a)
    with pytest.raises(ValueError, match="shenjing.Input"):
        shenjing.Model(d, layers.Dense(1)(d))


def test_merge_shape_mismatch_names_the_layer_and_shapes():
    a, b = shenjing.Input((3,)), shenjing.Input((4,))
    with pytest.raises(ValueError, match=r"(?s)add_bad.*\(None, 3\).*\(None, 4\)"):
        layers.Add(name="add_bad")([a, b])
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(a)
    with pytest.raises(ValueError, match="expects 1 input"):
        layers.Dense(2)([a, b])


def test_shared_layer_called_on_another_shape_and_layer_on_arrays():
    d = layers.Dense(2, name="twice")
    d(shenjing.Input((3,)))
    with pytest.raises(ValueError, match="twice.*same input shapes"):
        d(shenjing.Input((5,)))
    # On arrays a layer runs eagerly (Keras's eager call), keeping its weights.
    e = layers.Dense(2, kernel_initializer="ones")
    np.testing.assert_allclose(e(np.ones((1, 3), np.float32)), [[3.0, 3.0]])
    np.testing.assert_allclose(e(np.full((2, 3), 2.0, np.float32)), [[6.0, 6.0]] * 2)
    with pytest.raises(TypeError, match="symbolic tensors"):
        layers.Dense(2)("text")
    with pytest.raises(ValueError, match=r"conv2d.*rank 4.*\(None, 3\)"):
        layers.Conv2D(2, 3)(shenjing.Input((3,)))


def test_symbolic_tensors_have_no_values():
    a = shenjing.Input((3,))
    with pytest.raises(TypeError, match="no values"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Python control flow on tensor values"):
        bool(a)
    assert (a + a).shape == (None, 3)  # operators record ops (shenjing.ops)


def test_lambda_cannot_be_saved_as_code():
    inp = shenjing.Input((3,))
    model = shenjing.Model(inp, layers.Lambda(lambda x: x * 2)(inp))
    with pytest.raises(ValueError, match="never loads code"):
        model.to_json()
