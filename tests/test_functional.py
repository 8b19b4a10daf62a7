"""The functional API (cnnx.Input, layers called on symbolic tensors,
cnnx.Model): graphs with branches, concatenation, sums and several outputs,
against PyTorch step for step; save/load and ONNX; feature extraction; the
compiled plans against the layer-by-layer path; clear errors for bad graphs."""

import numpy as np
import pytest

import cnnx
from conftest import torch_or_skip


def two_branch_model(seed=0):
    """Input -> conv a -> [1x1 conv | 3x3 conv] -> concat -> + a -> GAP ->
    (softmax classifier, linear regressor)."""
    cnnx.set_seed(seed)
    x = cnnx.Input((10, 10, 3), name="image")
    a = cnnx.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x)
    b1 = cnnx.Conv2D(4, 1, activation="relu", name="branch1x1")(a)
    b2 = cnnx.Conv2D(4, 3, padding="same", activation="relu", name="branch3x3")(a)
    cat = cnnx.Concatenate(name="concat")([b1, b2])
    s = cnnx.Add(name="sum")([a, cat])
    g = cnnx.GlobalAvgPool2D(name="gap")(s)
    cls = cnnx.Dense(5, activation="softmax", name="cls")(g)
    reg = cnnx.Dense(2, name="reg")(g)
    return cnnx.Model(x, [cls, reg], name="two_branch")


def torch_two_branch(model):
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def conv(layer, cin, k, pad):
        c = nn.Conv2d(cin, layer.filters, k, padding=pad)
        c.weight.data = torch.tensor(layer.params["kernel"].transpose(3, 2, 0, 1).copy())
        c.bias.data = torch.tensor(layer.params["bias"].copy())
        return c

    def dense(layer):
        d = nn.Linear(*layer.params["kernel"].shape)
        d.weight.data = torch.tensor(layer.params["kernel"].T.copy())
        d.bias.data = torch.tensor(layer.params["bias"].copy())
        return d

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv(model.get_layer("stem"), 3, 3, 1)
            self.b1 = conv(model.get_layer("branch1x1"), 8, 1, 0)
            self.b2 = conv(model.get_layer("branch3x3"), 8, 3, 1)
            self.cls = dense(model.get_layer("cls"))
            self.reg = dense(model.get_layer("reg"))

        def forward(self, x):
            a = torch.relu(self.stem(x))
            cat = torch.cat([torch.relu(self.b1(a)), torch.relu(self.b2(a))], dim=1)
            g = (a + cat).mean(dim=(2, 3))
            return self.cls(g), self.reg(g)  # logits: cross_entropy takes them

    return Net()


def data(n=32, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 10, 10, 3)).astype(np.float32)
    y = rng.integers(0, 5, n)
    t = rng.standard_normal((n, 2)).astype(np.float32)
    return x, y, t


@pytest.mark.parametrize("plans", ["1", "0"])
def test_two_outputs_match_pytorch_for_20_sgd_steps(monkeypatch, plans):
    torch = torch_or_skip()
    monkeypatch.setenv("CNNX_PLAN", plans)
    model = two_branch_model()
    net = torch_two_branch(model)
    model.compile(
        cnnx.optim.SGD(lr=0.1, momentum=0.9), loss=["cross_entropy", "mse"], loss_weights=[1.0, 0.5]
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y, t = data()
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy())
    for step in range(20):
        i = (step * 8) % 32
        loss = model.train_on_batch(x[i : i + 8], [y[i : i + 8], t[i : i + 8]])
        opt.zero_grad()
        logits, reg = net(xt[i : i + 8])
        ref = torch.nn.functional.cross_entropy(
            logits, torch.tensor(y[i : i + 8])
        ) + 0.5 * torch.nn.functional.mse_loss(reg, torch.tensor(t[i : i + 8]))
        ref.backward()
        opt.step()
        assert loss == pytest.approx(float(ref.detach()), abs=1e-5, rel=1e-5), f"step {step}"
    assert (model._training_plan() is not None) == (plans == "1")
    probs, reg = model.predict(x)
    with torch.no_grad():
        logits_t, reg_t = net(xt)
    np.testing.assert_allclose(probs, torch.softmax(logits_t, 1).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reg, reg_t.numpy(), rtol=1e-4, atol=1e-5)


def test_fit_save_load_and_onnx(tmp_path):
    model = two_branch_model()
    model.compile("adam", loss={"cls": "cross_entropy", "reg": "mse"}, metrics=["accuracy"])
    x, y, t = data(64)
    hist = model.fit(
        x, {"cls": y, "reg": t}, epochs=3, batch_size=16, verbose=0, validation_split=0.25
    )
    assert set(hist.history) >= {
        "loss",
        "cls_loss",
        "reg_loss",
        "cls_accuracy",
        "val_loss",
        "val_cls_accuracy",
    }
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    model.save(tmp_path / "m.cnnx")
    again = cnnx.load_model(tmp_path / "m.cnnx")
    assert isinstance(again, cnnx.Model) and again.output_names == ["cls", "reg"]
    for a, b in zip(model.predict(x), again.predict(x)):
        np.testing.assert_array_equal(a, b)
    ev = model.evaluate(x, [y, t])
    assert again.evaluate(x, [y, t]) == pytest.approx(ev)
    # training continues from the saved optimiser state exactly
    l1 = model.train_on_batch(x[:16], [y[:16], t[:16]])
    l2 = again.train_on_batch(x[:16], [y[:16], t[:16]])
    assert l1 == pytest.approx(l2, rel=1e-6)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = cnnx.onnx.export(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    for a, b in zip(model.predict(x), outs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_several_inputs_and_merge_layers(isa):
    cnnx.set_seed(3)
    a_in = cnnx.Input((6, 6, 2), name="a")
    b_in = cnnx.Input((6, 6, 2), name="b")
    conv = cnnx.Conv2D(3, 3, padding="same", name="conv")(a_in)
    other = cnnx.Conv2D(3, 1, name="proj")(b_in)
    mixed = [
        cnnx.Subtract()([conv, other]),
        cnnx.Multiply()([conv, other, conv]),
        cnnx.Average()([conv, other]),
    ]
    cat = cnnx.Concatenate(axis=3)(mixed)
    flat = cnnx.Flatten()(cat)
    out = cnnx.Dense(4, activation="tanh")(flat)
    model = cnnx.Model([a_in, b_in], [out, cat])
    rng = np.random.default_rng(0)
    xa = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    xb = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    got_out, got_cat = model.predict([xa, xb])
    ref_out, ref_cat = model.forward([xa, xb])
    np.testing.assert_allclose(got_out, ref_out, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got_cat, ref_cat, rtol=2e-5, atol=2e-5)
    # against NumPy
    c, o = ref_cat[..., :3], ref_cat[..., 3:6]
    conv_np = cnnx.functional.conv2d(
        xa,
        model.get_layer("conv").params["kernel"],
        model.get_layer("conv").params["bias"],
        padding="same",
    )
    proj_np = cnnx.functional.conv2d(
        xb, model.get_layer("proj").params["kernel"], model.get_layer("proj").params["bias"]
    )
    np.testing.assert_allclose(c, conv_np - proj_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(o, conv_np * proj_np * conv_np, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ref_cat[..., 6:], (conv_np + proj_np) / 2, rtol=1e-5, atol=1e-5)


def test_merge_layer_gradients_against_finite_differences(rng):
    """Backward of each merge layer inside a model, against central differences."""
    for make in (
        lambda: cnnx.Add(),
        lambda: cnnx.Subtract(),
        lambda: cnnx.Multiply(),
        lambda: cnnx.Average(),
        lambda: cnnx.Concatenate(axis=2),
    ):
        a = cnnx.Input((3, 4, 2))
        b = cnnx.Input((3, 4, 2))
        model = cnnx.Model([a, b], make()([a, b]))
        xs = [rng.standard_normal((2, 3, 4, 2)), rng.standard_normal((2, 3, 4, 2))]
        xs = [v.astype(np.float32) for v in xs]
        y = model.forward(xs, training=True)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dxs = model.backward(dy)
        for k in range(2):
            num = np.zeros_like(xs[k], dtype=np.float64)
            for idx in np.ndindex(xs[k].shape):
                up = [v.astype(np.float64) for v in xs]
                dn = [v.astype(np.float64) for v in xs]
                up[k][idx] += 1e-3
                dn[k][idx] -= 1e-3
                f = lambda v: float((model.forward([w.astype(np.float32) for w in v]) * dy).sum())  # noqa: E731
                num[idx] = (f(up) - f(dn)) / 2e-3
            np.testing.assert_allclose(dxs[k], num, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("threads", [1, 2])
def test_plans_match_layer_by_layer_on_graphs(threads, isa):
    """Inference plan and training step of an Inception-like / DenseNet-like
    graph against the layer-by-layer path (outputs, loss, gradients, weights)."""

    def inception(seed):
        cnnx.set_seed(seed)
        x = cnnx.Input((9, 9, 4))
        s = cnnx.Conv2D(8, 3, padding="same", activation="relu")(x)
        s = cnnx.BatchNormalization()(s)
        branches = [
            cnnx.Conv2D(4, 1, activation="relu")(s),
            cnnx.Conv2D(6, 3, padding="same", activation="relu")(s),
            cnnx.MaxPool2D(3, strides=1, padding=1)(s),
        ]
        d1 = cnnx.Concatenate()(branches)  # 18 channels
        d2 = cnnx.Concatenate()([d1, cnnx.Conv2D(4, 3, padding="same")(d1)])  # dense-style
        p = cnnx.MaxPool2D(2)(d2)
        r = cnnx.Add()([p, cnnx.Conv2D(22, 1)(p)])
        g = cnnx.GlobalAvgPool2D()(cnnx.ReLU()(r))
        return cnnx.Model(x, cnnx.Dense(3, activation="softmax")(g))

    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 9, 9, 4)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    a, b = inception(1), inception(1)
    for m in (a, b):
        m.compile(cnnx.optim.SGD(0.05, momentum=0.9), "cross_entropy")
    b._training_plan = lambda *shapes: None
    b._inference_plan = lambda *shapes: None
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=2e-5, atol=2e-6)
        assert a._inference_plan() is not None and a._training_plan() is not None
        for _ in range(3):
            la, lb = a.train_on_batch(x, y), b.train_on_batch(x, y)
            assert la == pytest.approx(lb, rel=1e-5)
            np.testing.assert_allclose(a.store.grads, b.store.grads, rtol=1e-3, atol=2e-5)
            np.testing.assert_allclose(a.store.params, b.store.params, rtol=1e-4, atol=1e-5)
    finally:
        cnnx.set_num_threads(saved)


def test_feature_extractor_shares_weights_and_get_layer():
    x = cnnx.Input((8, 8, 1))
    a = cnnx.Conv2D(4, 3, activation="relu", name="c1")(x)
    y = cnnx.Dense(2)(cnnx.Flatten()(a))
    model = cnnx.Model(x, y)
    features = cnnx.Model(x, a)
    assert model.get_layer("c1") is features.get_layer("c1")
    xs = np.random.default_rng(0).standard_normal((2, 8, 8, 1)).astype(np.float32)
    before = features.predict(xs)
    model.get_layer("c1").params["kernel"] *= 2.0  # seen by both models
    np.testing.assert_allclose(features.predict(xs), 2.0 * before, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no layer called 'nope'"):
        model.get_layer("nope")
    assert model.get_layer(index=0).name == "c1"


def test_summary_connected_to_and_chain_table(capsys):
    model = two_branch_model()
    rows = model.summary()
    out = capsys.readouterr().out
    assert "Connected to" in out
    by_name = {r.name: r for r in rows}
    assert by_name["concat"].connected_to == ["branch1x1", "branch3x3"]
    assert by_name["sum"].connected_to == ["stem", "concat"]
    assert by_name["concat"].output_shape == (10, 10, 8)
    assert sum(r.params for r in rows) == model.count_params()
    # a chain keeps the course's table: no extra column
    seq = cnnx.Sequential([cnnx.Conv2D(2, 3), cnnx.Flatten(), cnnx.Dense(3)], input_shape=(5, 5, 1))
    seq.summary()
    assert "Connected to" not in capsys.readouterr().out


# ---- bad graphs ---------------------------------------------------------------------


def test_shape_mismatch_names_both_layers():
    x = cnnx.Input((8, 8, 3))
    a = cnnx.Conv2D(4, 3, padding="same", name="c1")(x)
    b = cnnx.Conv2D(4, 3, strides=2, padding="same", name="c2")(x)
    with pytest.raises(ValueError) as e:
        cnnx.Add()([a, b])
    msg = str(e.value)
    assert "c1" in msg and "c2" in msg and "(8, 8, 4)" in msg and "(4, 4, 4)" in msg
    with pytest.raises(ValueError, match="c1.*c2"):
        cnnx.Concatenate()([a, b])


def test_unused_input_and_unreachable_output():
    x1, x2 = cnnx.Input((4,), name="x1"), cnnx.Input((4,), name="x2")
    y = cnnx.Dense(2)(x1)
    with pytest.raises(ValueError, match="x2.*not used"):
        cnnx.Model([x1, x2], y)
    with pytest.raises(ValueError, match="x1.*not among the model's inputs"):
        cnnx.Model(x2, y)  # y comes from another graph


def test_cycles_and_repeated_layers_are_refused():
    x = cnnx.Input((4,))
    dense = cnnx.Dense(4)
    y = dense(dense(x))
    with pytest.raises(ValueError, match="called twice"):
        cnnx.Model(x, y)
    # a cycle can only come from a config (a file): a node reading a later node
    good = cnnx.Model(x, cnnx.Dense(3)(cnnx.Dense(4)(x)))
    config = good.get_config()
    config["nodes"][0]["inputs"] = [["node", 1, 0]]
    with pytest.raises(ValueError, match="cycle|not an earlier node"):
        cnnx.Model.from_config(config)


def test_symbolic_and_array_inputs_do_not_mix():
    x = cnnx.Input((3,))
    with pytest.raises(TypeError, match="mix of symbolic tensors"):
        cnnx.Add()([x, np.ones((1, 3), np.float32)])
    with pytest.raises(TypeError, match="inputs"):
        cnnx.Model([x, "nope"], x)
    with pytest.raises(TypeError, match="no values"):
        np.asarray(x)


def test_functional_layers_list_is_read_only():
    model = two_branch_model()
    with pytest.raises(TypeError):
        model.layers[0] = cnnx.ReLU()


def test_loss_weights_dict_leaving_an_output_out_weighs_it_one():
    """As in Keras: {"reg": 0.5} means cls 1.0, reg 0.5 (it crashed with a
    TypeError from float(None)); a weight that is no number is named."""
    x, y, t = data(16)
    losses = []
    for weights in ({"reg": 0.5}, {"cls": 1.0, "reg": 0.5}, [1.0, 0.5]):
        cnnx.set_seed(3)
        model = two_branch_model()
        model.compile(
            cnnx.optim.SGD(lr=0.05),
            loss={"cls": "cross_entropy", "reg": "mse"},
            loss_weights=weights,
        )
        losses.append([model.train_on_batch(x, [y, t]) for _ in range(3)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    np.testing.assert_allclose(losses[0], losses[2], rtol=1e-6)
    cnnx.set_seed(3)
    model = two_branch_model()
    model.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"}, loss_weights={"reg": 0.5})
    plain = cnnx.set_seed(3) or two_branch_model()
    plain.compile("sgd", loss={"cls": "cross_entropy", "reg": "mse"}, loss_weights={"reg": 1.0})
    assert model.evaluate(x, [y, t], verbose=0) != pytest.approx(
        plain.evaluate(x, [y, t], verbose=0)
    )  # the 0.5 is applied
    with pytest.raises(TypeError, match="loss_weights"):
        model.compile(
            "sgd", loss={"cls": "cross_entropy", "reg": "mse"}, loss_weights={"reg": "half"}
        )
