"""Cross-entropy per position (a per-pixel class mask): loss and gradients
against PyTorch's cross_entropy on (N, K, H, W) logits, with and without a
softmax layer and sample weights, in the compiled step and layer by layer;
pixel accuracy; label checks."""

import numpy as np
import pytest

import cnnx

from conftest import torch_or_skip


def _model(softmax, seed=0):
    cnnx.set_seed(seed)
    x = cnnx.Input((5, 4, 3))
    y = cnnx.Conv2D(4, 3, padding="same", activation="softmax" if softmax else None)(x)
    return cnnx.Model(x, y)


@pytest.mark.parametrize("plans", [True, False])
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_loss_and_gradients_match_pytorch(plans, softmax, weighted, monkeypatch):
    torch = torch_or_skip()
    if not plans:
        monkeypatch.setenv("CNNX_PLAN", "0")
    rng = np.random.default_rng(0)
    m = _model(softmax)
    m.compile(cnnx.optim.SGD(1e-20), "cross_entropy")  # grads only
    x = rng.standard_normal((6, 5, 4, 3)).astype(np.float32)
    y = rng.integers(0, 4, (6, 5, 4))
    sw = rng.uniform(0.2, 2.0, 6).astype(np.float32) if weighted else None
    kernel, bias = m.layers[0].params["kernel"].copy(), m.layers[0].params["bias"].copy()
    loss = m.train_on_batch(x, y, sample_weight=sw)
    assert (m._training_plan() is not None) == plans

    xt = torch.tensor(x.transpose(0, 3, 1, 2), dtype=torch.float64)
    kt = torch.tensor(kernel.transpose(3, 2, 0, 1), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    logits = torch.nn.functional.conv2d(xt, kt, bt, padding=1)
    per = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="none")
    per_sample = per.mean(dim=(1, 2))
    w = torch.ones(6, dtype=torch.float64) if sw is None else torch.tensor(sw, dtype=torch.float64)
    total = (w * per_sample).sum() / 6
    total.backward()
    assert loss == pytest.approx(total.item(), rel=1e-5)
    np.testing.assert_allclose(
        m.layers[0].grads["kernel"], kt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(m.layers[0].grads["bias"], bt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_evaluate_gives_pixel_accuracy_and_fit_runs():
    rng = np.random.default_rng(1)
    m = _model(True)
    m.compile("adam", "cross_entropy", metrics=["accuracy"])
    x = rng.standard_normal((8, 5, 4, 3)).astype(np.float32)
    y = rng.integers(0, 4, (8, 5, 4))
    logs = m.evaluate(x, y)
    pred = m.predict(x).argmax(axis=-1)
    assert logs["accuracy"] == pytest.approx(float((pred == y).mean()))
    # one-hot masks through CategoricalCrossentropy: the same per-pixel mean,
    # in evaluate (Python) and in the compiled step
    onehot = np.eye(4, dtype=np.float32)[y]
    c = _model(True)
    c.set_weights(m.get_weights())
    c.compile("sgd", "categorical_crossentropy")
    assert c.evaluate(x, onehot)["loss"] == pytest.approx(logs["loss"], rel=1e-5)
    assert c.train_on_batch(x, onehot) == pytest.approx(logs["loss"], rel=1e-5)
    h = m.fit(x, y, epochs=2, batch_size=3, verbose=0, validation_data=(x, y))
    assert len(h.history["accuracy"]) == 2 and 0.0 <= h.history["val_accuracy"][-1] <= 1.0


def test_labels_are_checked():
    rng = np.random.default_rng(2)
    m = _model(True)
    m.compile("sgd", "cross_entropy")
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"^y: expected \(2, 5, 4\) integer labels"):
        m.train_on_batch(x, np.zeros((2, 5), np.int64))
    with pytest.raises(ValueError, match=r"^y: expected values in \[0, 4\)"):
        m.train_on_batch(x, np.full((2, 5, 4), 4))
    with pytest.raises(TypeError, match="^y"):
        m.train_on_batch(x, np.zeros((2, 5, 4), np.float32))
