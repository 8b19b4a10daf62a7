"""Sequential: summary table, forward vs NumPy, backward to the input,
PyTorch parity of one training step, flat parameter buffers, freezing."""

import numpy as np
import pytest

import cnnx
from conftest import torch_or_skip


def seed_network(**kw):
    """The network of DESIGN.md and of the course's table."""
    return cnnx.Sequential(
        [
            cnnx.Conv2D(8, 5, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(16, 5, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(120, activation="relu"),
            cnnx.Dense(84, activation="relu"),
            cnnx.Dense(10, activation="softmax"),
        ],
        input_shape=(32, 32, 3),
        **kw,
    )


# ---- summary --------------------------------------------------------------------------


def test_summary_reproduces_the_course_table(capsys):
    rows = seed_network().summary()
    expected = [  # the course's table (Input, CONV1, POOL1, CONV2, POOL2, FC3, FC4, Softmax)
        ("Input", (32, 32, 3), 3072, 0),
        ("Conv2D", (28, 28, 8), 6272, 608),
        ("MaxPool2D", (14, 14, 8), 1568, 0),
        ("Conv2D", (10, 10, 16), 1600, 3216),
        ("MaxPool2D", (5, 5, 16), 400, 0),
        ("Dense", (120,), 120, 48120),
        ("Dense", (84,), 84, 10164),
        ("Dense", (10,), 10, 850),
    ]
    got = [(r.name, r.output_shape, r.activation_size, r.params) for r in rows]
    assert got == expected
    assert sum(r.params for r in rows) == 62958
    out = capsys.readouterr().out
    assert "Total params: 62,958" in out
    assert "Trainable params: 62,958" in out
    assert "(28,28,8)" in out and "(120)" in out


def test_summary_formulas_and_show_all():
    model = seed_network()
    rows = model.summary(formulas=True, print_fn=None)
    assert "(5*5*3+1)*8 = 608" in rows[1].formulas
    assert "floor((32-5)/1)+1 = 28" in rows[1].formulas
    assert "(5*5*8+1)*16 = 3216" in rows[3].formulas
    assert "floor((28-2)/2)+1 = 14" in rows[2].formulas
    assert rows[5].formulas == ["400*120+120 = 48120"]
    text = []
    model.summary(formulas=True, print_fn=text.append)
    assert "(5*5*3+1)*8 = 608" in text[0]
    all_rows = model.summary(show_all=True, print_fn=None)
    assert [r.name for r in all_rows][5] == "Flatten" and all_rows[5].activation_size == 400
    assert "n_C_prev" in cnnx.Sequential.summary.__doc__


def test_summary_counts_frozen_params():
    model = seed_network()
    model.layers[0].trainable = False
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 62,350" in lines[0]
    assert "Non-trainable params: 608" in lines[0]


# ---- forward vs NumPy ---------------------------------------------------------------


def np_conv_valid(x, w, b):
    m, h, wd, _ = x.shape
    f = w.shape[0]
    out = np.zeros((m, h - f + 1, wd - f + 1, w.shape[3]))
    for i in range(f):
        for j in range(f):
            out += np.einsum(
                "mhwc,cd->mhwd", x[:, i : i + h - f + 1, j : j + wd - f + 1, :], w[i, j]
            )
    return out + b


def np_pool2(x):
    m, h, w, c = x.shape
    return x.reshape(m, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def np_forward(model, x):
    p = [l.params for l in model.layers]
    a = x.astype(np.float64)
    a = np_pool2(np.maximum(np_conv_valid(a, p[0]["kernel"], p[0]["bias"]), 0))
    a = np_pool2(np.maximum(np_conv_valid(a, p[2]["kernel"], p[2]["bias"]), 0))
    a = a.reshape(a.shape[0], -1)
    a = np.maximum(a @ p[5]["kernel"] + p[5]["bias"], 0)
    a = np.maximum(a @ p[6]["kernel"] + p[6]["bias"], 0)
    z = a @ p[7]["kernel"] + p[7]["bias"]
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), z


def test_forward_matches_numpy_composition(rng):
    cnnx.set_seed(0)
    model = seed_network()
    x = rng.standard_normal((4, 32, 32, 3)).astype(np.float32)
    probs, _ = np_forward(model, x)
    np.testing.assert_allclose(model.forward(x), probs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.predict(x), probs, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.predict(x).sum(1), 1.0, rtol=1e-5)


def test_predict_batched_equals_whole(rng):
    model = seed_network()
    x = rng.standard_normal((37, 32, 32, 3)).astype(np.float32)
    whole = model.predict(x, batch_size=64)
    np.testing.assert_allclose(model.predict(x, batch_size=5), whole, rtol=1e-5, atol=1e-6)


def test_parameters_live_in_one_flat_buffer():
    model = seed_network()
    store = model.store
    assert store.params.dtype == np.float32 and store.params.flags.c_contiguous
    n = 0
    for layer in model.layers:
        for name, p in layer.params.items():
            assert np.shares_memory(p, store.params)
            assert np.shares_memory(layer.grads[name], store.grads)
            assert p.ctypes.data % 64 == 0
            n += p.size
    assert n == 62958 and store.size >= n
    store.params[...] = 0.5
    assert (model.layers[0].params["kernel"] == 0.5).all()


# ---- backward to the input ------------------------------------------------------------


def small_smooth_model():
    return cnnx.Sequential(
        [
            cnnx.Conv2D(3, 3, padding="same", activation="tanh"),
            cnnx.AvgPool2D(2),
            cnnx.Residual(
                [
                    cnnx.Conv2D(3, 3, padding="same", activation="tanh"),
                    cnnx.Conv2D(3, 3, padding="same"),
                ],
                activation="tanh",
            ),
            cnnx.Flatten(),
            cnnx.Dense(4, activation="tanh"),
        ],
        input_shape=(6, 6, 2),
    )


def test_model_backward_gives_input_gradient(rng):
    cnnx.set_seed(3)
    model = small_smooth_model()
    x = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    r = rng.standard_normal((2, 4))
    model.forward(x, training=True)
    dx = model.backward(r.astype(np.float32))
    assert dx.shape == x.shape
    flat = x.reshape(-1)
    for i in rng.choice(flat.size, 15, replace=False):
        old = flat[i]
        flat[i] = old + 1e-2
        lp = float(np.sum(model.forward(x) * r))
        flat[i] = old - 1e-2
        lm = float(np.sum(model.forward(x) * r))
        flat[i] = old
        num = (lp - lm) / 2e-2
        assert abs(num - dx.reshape(-1)[i]) < 2e-2 * max(1.0, abs(num))


def test_all_frozen_model_gives_input_gradient_and_keeps_weights(rng):
    """The style-transfer use: freeze everything, differentiate w.r.t. the image."""
    model = small_smooth_model()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="mse")
    before = model.store.params.copy()
    model.trainable = False
    assert all(not l.trainable for l in model.layers[2].sublayers())
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    model.zero_grad()
    model.forward(x, training=True)
    dx = model.backward(np.ones((1, 4), np.float32))
    assert np.abs(dx).sum() > 0
    assert not model.store.grads.any()
    model.train_on_batch(x, np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(model.store.params, before)


def test_frozen_layer_not_updated_others_are(rng):
    model = seed_network()
    model.compile(
        optimizer=cnnx.optim.SGD(lr=0.1, momentum=0.9, weight_decay=1e-3), loss="cross_entropy"
    )
    model.layers[2].trainable = False
    k0 = model.layers[0].params["kernel"].copy()
    k2 = model.layers[2].params["kernel"].copy()
    b2 = model.layers[2].params["bias"].copy()
    x = rng.standard_normal((8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.layers[2].params["kernel"], k2)
    np.testing.assert_array_equal(model.layers[2].params["bias"], b2)
    assert not np.array_equal(model.layers[0].params["kernel"], k0)
    runs = model.store.trainable_runs()
    assert len(runs) == 2


# ---- PyTorch parity ------------------------------------------------------------------


def torch_twin(torch, model):
    """The same small network in PyTorch (NCHW), weights copied from cnnx."""
    nn = torch.nn
    c1, c2, d1, d2 = [l for l in model.layers if l.params]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1)
            self.c2 = nn.Conv2d(4, 6, 3, stride=2)
            self.d1 = nn.Linear(6 * 3 * 3, 16)
            self.d2 = nn.Linear(16, 5)

        def forward(self, x):
            x = torch.relu(self.c1(x))
            x = nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.c2(x))
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # flatten NHWC-style
            x = torch.relu(self.d1(x))
            return self.d2(x)

    net = Net().double()
    with torch.no_grad():
        for tl, cl in ((net.c1, c1), (net.c2, c2)):
            tl.weight.copy_(torch.from_numpy(cl.params["kernel"].transpose(3, 2, 0, 1).copy()))
            tl.bias.copy_(torch.from_numpy(cl.params["bias"]))
        for tl, cl in ((net.d1, d1), (net.d2, d2)):
            tl.weight.copy_(torch.from_numpy(cl.params["kernel"].T.copy()))
            tl.bias.copy_(torch.from_numpy(cl.params["bias"]))
    return net


def test_pytorch_parity_loss_grads_and_sgd_step(rng):
    torch = torch_or_skip()
    cnnx.set_seed(5)
    model = cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, padding=1, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Conv2D(6, 3, strides=2, activation="relu"),
            cnnx.Flatten(),
            cnnx.Dense(16, activation="relu"),
            cnnx.Dense(5, activation="softmax"),
        ],
        input_shape=(16, 16, 3),
    )
    for l in model.layers:
        if "bias" in l.params:
            l.params["bias"][...] = rng.uniform(-0.1, 0.1, l.params["bias"].shape)
    opt = cnnx.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    model.compile(optimizer=opt, loss="cross_entropy")
    net = torch_twin(torch, model)
    topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    x = rng.standard_normal((6, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64))
    ty = torch.from_numpy(y)

    for step in range(3):
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(net(tx), ty)
        tloss.backward()
        # gradients of the first step, before the update
        if step == 0:
            model.forward(x, training=True)  # caches for a manual comparison below
        loss = model.train_on_batch(x, y)
        assert abs(loss - tloss.item()) < 1e-4 * max(1, abs(tloss.item()))
        if step == 0:
            c1 = model.layers[0]
            np.testing.assert_allclose(
                c1.grads["kernel"],
                net.c1.weight.grad.numpy().transpose(2, 3, 1, 0),
                rtol=1e-3,
                atol=1e-5,
            )
            np.testing.assert_allclose(
                model.layers[5].grads["kernel"], net.d2.weight.grad.numpy().T, rtol=1e-3, atol=1e-5
            )
        topt.step()
    np.testing.assert_allclose(
        model.layers[0].params["kernel"],
        net.c1.weight.detach().numpy().transpose(2, 3, 1, 0),
        rtol=1e-3,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        model.layers[4].params["kernel"], net.d1.weight.detach().numpy().T, rtol=1e-3, atol=1e-5
    )


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_pytorch_parity_adam(name, rng):
    torch = torch_or_skip()
    model = cnnx.Sequential([cnnx.Dense(6, activation="tanh"), cnnx.Dense(3)], input_shape=(4,))
    kw = dict(lr=0.05, weight_decay=0.1)
    model.compile(optimizer=getattr(cnnx.optim, name)(**kw), loss="cross_entropy")
    l1, l2 = model.layers
    t1, t2 = torch.nn.Linear(4, 6).double(), torch.nn.Linear(6, 3).double()
    with torch.no_grad():
        for t, c in ((t1, l1), (t2, l2)):
            t.weight.copy_(torch.from_numpy(c.params["kernel"].T.copy()))
            t.bias.copy_(torch.from_numpy(c.params["bias"]))
    params = list(t1.parameters()) + list(t2.parameters())
    topt = getattr(torch.optim, name)(params, **kw)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    for _ in range(4):
        topt.zero_grad()
        out = t2(torch.tanh(t1(torch.from_numpy(x.astype(np.float64)))))
        tl = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
        tl.backward()
        topt.step()
        loss = model.train_on_batch(x, y)
        assert abs(loss - tl.item()) < 1e-4
    np.testing.assert_allclose(
        l1.params["kernel"], t1.weight.detach().numpy().T, rtol=1e-3, atol=1e-5
    )


# ---- misc behaviour ----------------------------------------------------------------------


def test_train_on_batch_loss_is_before_the_step(rng):
    model = seed_network()
    model.compile(optimizer=cnnx.optim.SGD(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    x = rng.standard_normal((16, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    probs, _ = np_forward(model, x)
    ref = -np.mean(np.log(probs[np.arange(16), y]))
    ev = model.evaluate(x, y)
    assert abs(ev["loss"] - ref) < 1e-4
    assert ev["accuracy"] == np.mean(probs.argmax(1) == y)
    assert abs(model.train_on_batch(x, y) - ref) < 1e-4
    assert model.evaluate(x, y)["loss"] != ev["loss"]


def test_softmax_layer_and_logits_heads(rng):
    x = rng.standard_normal((5, 6)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    cnnx.set_seed(1)
    a = cnnx.Sequential([cnnx.Dense(3), cnnx.Softmax()], input_shape=(6,))
    cnnx.set_seed(1)
    b = cnnx.Sequential([cnnx.Dense(3)], input_shape=(6,))
    cnnx.set_seed(1)
    c = cnnx.Sequential([cnnx.Dense(3, activation="softmax")], input_shape=(6,))
    for m in (a, b, c):
        m.compile(optimizer="sgd", loss="cross_entropy")
    # the loss absorbs the output softmax (a layer or a dense's activation), or takes logits
    assert [m.heads()[0].absorbed for m in (a, b, c)] == ["softmax", None, "softmax"]
    pa, pb, pc = a.predict(x), b.predict(x), c.predict(x)
    # predict gives what the model outputs: logits stay logits, whatever the loss
    np.testing.assert_allclose(pa, cnnx.functional.softmax(pb), rtol=1e-6)
    np.testing.assert_allclose(pa, pc, rtol=1e-6)
    la, lb, lc = (m.train_on_batch(x, y) for m in (a, b, c))
    assert abs(la - lb) < 1e-6 and abs(la - lc) < 1e-6
    np.testing.assert_allclose(a.store.params, c.store.params, rtol=1e-6)


def test_sequential_errors(rng):
    model = seed_network()
    with pytest.raises(ValueError, match="^model"):
        model.train_on_batch(np.zeros((1, 32, 32, 3)), [0])
    with pytest.raises(ValueError, match="^loss"):
        model.compile(optimizer="sgd", loss="hinge")
    with pytest.raises(ValueError, match="^optimizer"):
        model.compile(optimizer="adadelta")  # (rmsprop exists since issue 21)
    with pytest.raises(ValueError, match="^metrics"):
        model.compile(metrics=["f1"])
    model.compile(optimizer="sgd", loss="cross_entropy")
    with pytest.raises(ValueError, match="^x"):
        model.predict(np.zeros((2, 28, 28, 3)))
    with pytest.raises(ValueError, match="^y"):
        model.train_on_batch(np.zeros((2, 32, 32, 3)), [0, 10])
    with pytest.raises(TypeError, match="^y"):
        model.train_on_batch(np.zeros((2, 32, 32, 3)), [0.5, 1.0])
    with pytest.raises(ValueError, match="^y"):
        model.train_on_batch(np.zeros((2, 32, 32, 3)), [0, 1, 2])
    with pytest.raises(TypeError, match="^layers"):
        cnnx.Sequential([cnnx.Dense(3), "relu"])
    with pytest.raises(ValueError, match="^lr"):
        cnnx.optim.SGD(lr=0)
    with pytest.raises(ValueError, match="^nesterov"):
        cnnx.optim.SGD(nesterov=True)


def test_lazy_build_and_add(rng):
    model = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(4)])
    x = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    assert model.forward(x).shape == (3, 4)
    assert model.input_shape == (2, 2, 2)
    model.add(cnnx.Dense(2, activation="softmax"))
    assert model.forward(x).shape == (3, 2)
    assert np.shares_memory(model.layers[2].params["kernel"], model.store.params)


def test_residual_and_sequential_nest_and_train(tmp_path, rng):
    cnnx.set_seed(0)
    inner = cnnx.Sequential(
        [cnnx.Conv2D(4, 3, padding="same", activation="relu"), cnnx.MaxPool2D(2)]
    )
    model = cnnx.Sequential(
        [
            inner,
            cnnx.Residual(
                [
                    cnnx.Conv2D(4, 3, padding="same", activation="relu"),
                    cnnx.Conv2D(4, 3, padding="same"),
                ]
            ),
            cnnx.Flatten(),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(8, 8, 2),
    )
    assert np.shares_memory(inner.layers[0].params["kernel"], model.store.params)
    assert model.count_params() == (9 * 2 + 1) * 4 + 2 * (9 * 4 + 1) * 4 + 64 * 3 + 3
    model.compile(optimizer=cnnx.optim.Adam(lr=0.01), loss="cross_entropy", metrics=["accuracy"])
    x = rng.standard_normal((64, 8, 8, 2)).astype(np.float32)
    y = (x[:, :4].mean((1, 2, 3)) > 0).astype(int) + (x[:, 4:].mean((1, 2, 3)) > 0)
    hist = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < 0.3 * hist.history["loss"][0]
    model.save(tmp_path / "nested.cnnx")
    again = cnnx.load_model(tmp_path / "nested.cnnx")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_training_step_gradients_equal_the_manual_loop(rng):
    """train_on_batch (fused loss, ReLU mask moved behind max pooling) computes
    exactly the gradients of the plain forward/backward loop."""

    def make():
        cnnx.set_seed(8)
        return cnnx.Sequential(
            [
                cnnx.Conv2D(4, 3, activation="relu"),
                cnnx.MaxPool2D(2),
                cnnx.Conv2D(6, 3, padding="same", activation="relu"),
                cnnx.MaxPool2D(3, 2, padding=1),
                cnnx.Flatten(),
                cnnx.Dense(5),
            ],
            input_shape=(11, 11, 2),
        )

    from cnnx.graph import passes

    a, b = make(), make()
    a.compile(optimizer=cnnx.optim.SGD(lr=0.1), loss="cross_entropy")
    g = passes.for_training(a.to_graph())  # the fused pattern is in use
    pools = [op for op in g.ops if op.kind == cnnx._core.OpKind.pool]
    assert [op.attrs.get("mask_grad_by_output") for op in pools] == [True, True]
    assert a._training_plan() is not None
    x = rng.standard_normal((3, 11, 11, 2)).astype(np.float32)
    y = rng.integers(0, 5, 3)
    a.train_on_batch(x, y)
    out = b.forward(x, training=True)
    _, g = cnnx.functional.softmax_cross_entropy(out, y)
    b.zero_grad()
    b.backward(g)
    np.testing.assert_allclose(a.store.grads, b.store.grads, rtol=1e-5, atol=1e-7)
