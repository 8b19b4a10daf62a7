"""cnnx.losses and cnnx.metrics: each loss against PyTorch (value and
gradient, weighted and not), training with each loss on both paths (the
compiled step and layer by layer) giving the same steps, a loss of your own
(the compiled step's two-call form), check_gradient, sample and class
weights against PyTorch's weighted losses, metrics against scikit-learn, and
the bad inputs Keras users hit."""

import numpy as np
import pytest

import cnnx
from cnnx import losses as L
from cnnx import metrics as M
from conftest import torch_or_skip

RNG = np.random.default_rng(0)


def _torch_loss(name, logits, target, weight):
    torch = torch_or_skip()
    F = torch.nn.functional
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(weight, dtype=torch.float64)
    if name == "sparse":
        per = F.cross_entropy(z, torch.tensor(target), reduction="none")
    elif name == "soft":
        per = F.cross_entropy(z, torch.tensor(target, dtype=torch.float64), reduction="none")
    elif name == "bce_logits":
        per = F.binary_cross_entropy_with_logits(
            z, torch.tensor(target, dtype=torch.float64), reduction="none"
        ).mean(1)
    elif name == "bce":
        per = F.binary_cross_entropy(
            z, torch.tensor(target, dtype=torch.float64), reduction="none"
        ).mean(1)
    elif name == "mse":
        per = ((z - torch.tensor(target, dtype=torch.float64)) ** 2).mean(1)
    elif name == "mae":
        per = (z - torch.tensor(target, dtype=torch.float64)).abs().mean(1)
    else:
        per = F.huber_loss(
            z, torch.tensor(target, dtype=torch.float64), delta=0.5, reduction="none"
        ).mean(1)
    total = (per * w).sum() / len(per)
    total.backward()
    return float(total), z.grad.numpy()


CASES = {
    "sparse": (
        lambda: L.SparseCategoricalCrossentropy(from_logits=True),
        lambda: RNG.integers(0, 5, 8),
        False,
    ),
    "soft": (
        lambda: L.CategoricalCrossentropy(from_logits=True),
        lambda: RNG.dirichlet(np.ones(5), 8).astype(np.float32),
        False,
    ),
    "bce_logits": (
        lambda: L.BinaryCrossentropy(from_logits=True),
        lambda: RNG.uniform(0, 1, (8, 5)).astype(np.float32),
        False,
    ),
    "bce": (
        lambda: L.BinaryCrossentropy(),
        lambda: RNG.uniform(0, 1, (8, 5)).astype(np.float32),
        True,
    ),
    "mse": (
        lambda: L.MeanSquaredError(),
        lambda: RNG.standard_normal((8, 5)).astype(np.float32),
        False,
    ),
    "mae": (
        lambda: L.MeanAbsoluteError(),
        lambda: RNG.standard_normal((8, 5)).astype(np.float32),
        False,
    ),
    "huber": (lambda: L.Huber(0.5), lambda: RNG.standard_normal((8, 5)).astype(np.float32), False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_losses_match_pytorch(name):
    make, target, probs = CASES[name]
    loss, t = make(), target()
    y = RNG.uniform(0.05, 0.95, (8, 5)) if probs else RNG.standard_normal((8, 5))
    y = y.astype(np.float32)
    w = RNG.uniform(0, 2, 8).astype(np.float32)
    ref, gref = _torch_loss(name, y.astype(np.float64), t, w)
    assert loss(t, y, sample_weight=w) == pytest.approx(ref, rel=1e-5)
    value, g = loss.reduced_gradient(loss.prepare_targets(t, 8, (5,)), y, w)
    assert value == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(g, gref, rtol=1e-4, atol=1e-7)
    assert L.check_gradient(loss, t, y) < 1e-2
    assert isinstance(loss(t, y), float)
    none = type(loss)(**{**loss.get_config(), "reduction": "none"})
    assert none(t, y).shape == (8,)


class Hinge(L.Loss):
    """A loss of the user's own (labels in {-1, 1})."""

    def forward(self, y_true, y_pred):
        return np.maximum(0, 1 - y_true * y_pred).mean(axis=1)

    def backward(self, y_true, y_pred):
        return np.where(1 - y_true * y_pred > 0, -y_true, 0).astype(np.float32) / y_pred.shape[1]


def _pair(loss, out, act=None):
    models = []
    for _ in range(2):
        cnnx.set_seed(3)
        m = cnnx.Sequential(
            [cnnx.Conv2D(4, 3, activation="relu"), cnnx.Flatten(), cnnx.Dense(out, activation=act)],
            input_shape=(6, 6, 2),
        )
        m.compile(cnnx.optim.SGD(0.1, momentum=0.9), loss=loss)
        models.append(m)
    models[1]._training_plan = lambda *shapes: None  # the layer-by-layer step
    return models


@pytest.mark.parametrize(
    "loss,act,target",
    [
        ("sparse_categorical_crossentropy", "softmax", lambda: RNG.integers(0, 3, 10)),
        (L.SparseCategoricalCrossentropy(from_logits=True), None, lambda: RNG.integers(0, 3, 10)),
        (L.CategoricalCrossentropy(label_smoothing=0.1), "softmax", lambda: RNG.integers(0, 3, 10)),
        ("binary_crossentropy", "sigmoid", lambda: RNG.integers(0, 2, (10, 3)).astype(np.float32)),
        (L.BinaryCrossentropy(), None, None),  # probabilities from a plain output: clipped form
        ("mae", None, lambda: RNG.standard_normal((10, 3)).astype(np.float32)),
        (L.Huber(0.3), "tanh", lambda: RNG.standard_normal((10, 3)).astype(np.float32)),
        (Hinge(), None, lambda: np.sign(RNG.standard_normal((10, 3))).astype(np.float32)),
        (
            L.MeanSquaredError(reduction="sum"),
            None,
            lambda: RNG.standard_normal((10, 3)).astype(np.float32),
        ),
    ],
)
def test_training_with_each_loss_on_both_paths(loss, act, target):
    if target is None:  # BCE on an output that is no sigmoid: keep it in (0, 1)
        act, target = "sigmoid", lambda: RNG.uniform(0, 1, (10, 3)).astype(np.float32)
        loss = L.BinaryCrossentropy()
    a, b = _pair(loss, 3, act)
    x = RNG.standard_normal((10, 6, 6, 2)).astype(np.float32)
    t = target()
    assert a._training_plan() is not None
    for _ in range(3):
        la, lb = a.train_on_batch(x, t), b.train_on_batch(x, t)
        assert la == pytest.approx(lb, rel=1e-4, abs=1e-6)
        np.testing.assert_allclose(a.store.params, b.store.params, rtol=1e-4, atol=1e-6)
    ev_a, ev_b = a.evaluate(x, t), b.evaluate(x, t)
    assert ev_a["loss"] == pytest.approx(ev_b["loss"], rel=1e-4)


def test_custom_loss_runs_in_the_compiled_step_in_two_calls():
    a, _ = _pair(Hinge(), 3)
    plan = a._training_plan()
    assert plan is not None and plan.external


def test_check_gradient_catches_a_wrong_backward():
    class Wrong(Hinge):
        def backward(self, y_true, y_pred):
            return 2 * super().backward(y_true, y_pred)

    t = np.sign(RNG.standard_normal((4, 3))).astype(np.float32)
    y = RNG.standard_normal((4, 3)).astype(np.float32) * 0.3
    assert L.check_gradient(Hinge(), t, y) < 1e-3
    with pytest.raises(ValueError, match="Wrong.backward disagrees"):
        L.check_gradient(Wrong(), t, y)


def test_bad_custom_loss_is_named_and_weights_stay():
    class BadShape(Hinge):
        def backward(self, y_true, y_pred):
            return np.zeros(y_pred.shape[0], np.float32)

    m, _ = _pair(BadShape(), 3)
    before = m.store.params.copy()
    x = RNG.standard_normal((4, 6, 6, 2)).astype(np.float32)
    with pytest.raises(ValueError, match="BadShape.backward returned shape"):
        m.train_on_batch(x, np.ones((4, 3), np.float32))
    np.testing.assert_array_equal(m.store.params, before)


@pytest.mark.parametrize("plans", ["1", "0"])
def test_sample_and_class_weights_match_pytorch(monkeypatch, plans):
    torch = torch_or_skip()
    monkeypatch.setenv("CNNX_PLAN", plans)
    cnnx.set_seed(4)
    m = cnnx.Sequential([cnnx.Dense(3)], input_shape=(5,))
    m.compile(cnnx.optim.SGD(0.1), L.SparseCategoricalCrossentropy(from_logits=True))
    lin = torch.nn.Linear(5, 3).double()
    lin.weight.data = torch.tensor(m.layers[0].params["kernel"].T.astype(np.float64))
    lin.bias.data = torch.tensor(m.layers[0].params["bias"].astype(np.float64))
    x = RNG.standard_normal((12, 5)).astype(np.float32)
    y = RNG.integers(0, 3, 12)
    sw = RNG.uniform(0, 2, 12).astype(np.float32)
    cw = {0: 2.0, 2: 0.5}
    loss = m.train_on_batch(x, y, sample_weight=sw)
    per = torch.nn.functional.cross_entropy(
        lin(torch.tensor(x, dtype=torch.float64)), torch.tensor(y), reduction="none"
    )
    assert loss == pytest.approx(
        float((per * torch.tensor(sw, dtype=torch.float64)).mean()), rel=1e-5
    )
    # class weights through fit (one batch, no shuffling): the batch's loss is the mean
    # of each sample's loss times its class's weight, from the weights before the step
    kernel = m.layers[0].params["kernel"].astype(np.float64)
    bias = m.layers[0].params["bias"].astype(np.float64)
    h = m.fit(x, y, epochs=1, batch_size=12, shuffle=False, class_weight=cw, verbose=0)
    logits = torch.tensor(x, dtype=torch.float64) @ torch.tensor(kernel) + torch.tensor(bias)
    per = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="none")
    w = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)[torch.tensor(y)]
    assert h.history["loss"][0] == pytest.approx(float((per * w).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="class_weight: class 7"):
        m.fit(x, y, class_weight={7: 1.0}, verbose=0)


def test_metrics_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    y = RNG.integers(0, 2, 200)
    p = np.clip(y * 0.3 + RNG.uniform(0, 0.7, 200), 0, 1).astype(np.float32)
    w = RNG.uniform(0, 2, 200)
    prec, rec, auc = M.Precision(), M.Recall(), M.AUC()
    for i in range(0, 200, 64):  # batch after batch
        for m in (prec, rec, auc):
            m.update_state(y[i : i + 64], p[i : i + 64], w[i : i + 64])
    assert prec.result() == pytest.approx(sk.precision_score(y, p > 0.5, sample_weight=w), abs=1e-6)
    assert rec.result() == pytest.approx(sk.recall_score(y, p > 0.5, sample_weight=w), abs=1e-6)
    assert auc.result() == pytest.approx(sk.roc_auc_score(y, p, sample_weight=w), abs=1e-6)
    k = 4
    labels = RNG.integers(0, k, 300)
    probs = RNG.dirichlet(np.ones(k), 300).astype(np.float32)
    cm = M.ConfusionMatrix(k)
    cm.update_state(labels, probs)
    np.testing.assert_array_equal(
        cm.result(), sk.confusion_matrix(labels, probs.argmax(1), labels=range(k))
    )
    iou = M.MeanIoU(k)
    iou.update_state(labels, probs)
    assert iou.result() == pytest.approx(
        sk.jaccard_score(labels, probs.argmax(1), average="macro"), abs=1e-6
    )
    top = M.SparseTopKCategoricalAccuracy(k=2)
    top.update_state(labels, probs)
    ref = np.mean([lab in np.argsort(-row)[:2] for lab, row in zip(labels, probs)])
    assert top.result() == pytest.approx(ref, abs=1e-9)


def test_metrics_in_fit_and_evaluate():
    cnnx.set_seed(2)
    m = cnnx.Sequential(
        [cnnx.Flatten(), cnnx.Dense(5, activation="softmax")], input_shape=(4, 4, 1)
    )
    m.compile(
        "adam",
        "cross_entropy",
        metrics=["accuracy", M.SparseTopKCategoricalAccuracy(k=3), M.ConfusionMatrix(5)],
    )
    x = RNG.standard_normal((40, 4, 4, 1)).astype(np.float32)
    y = RNG.integers(0, 5, 40)
    h = m.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    assert {
        "accuracy",
        "sparse_top_k_categorical_accuracy",
        "confusion_matrix",
        "val_accuracy",
    } <= set(h.history)
    ev = m.evaluate(x, y)
    probs = m.predict(x)
    assert ev["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert ev["confusion_matrix"].sum() == 40
    with pytest.raises(ValueError, match="metrics: unknown metric 'f2'"):
        m.compile("sgd", "cross_entropy", metrics=["f2"])
    with pytest.raises(TypeError, match="metrics"):
        m.compile("sgd", "cross_entropy", metrics=5)


def test_loss_names_and_bad_arguments():
    assert isinstance(L.get("mae"), L.MeanAbsoluteError)
    with pytest.raises(ValueError, match="loss: unknown loss 'hinge'"):
        L.get("hinge")
    with pytest.raises(ValueError, match="label_smoothing"):
        L.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="delta"):
        L.Huber(delta=0)
    with pytest.raises(ValueError, match="reduction"):
        L.MeanSquaredError(reduction="avg")
    m = cnnx.Sequential([cnnx.Dense(2)], input_shape=(3,))
    with pytest.raises(ValueError, match="reduction='none'"):
        m.compile("sgd", L.MeanSquaredError(reduction="none"))
    m.compile("sgd", L.BinaryCrossentropy())
    with pytest.raises(ValueError, match="binary targets"):
        m.train_on_batch(np.ones((2, 3), np.float32), np.full((2, 2), 2.0, np.float32))
