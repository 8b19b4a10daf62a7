"""Issue 21's optimisers: RMSprop and Adagrad, gradient clipping (clipnorm,
global_clipnorm, clipvalue), the moving average of the weights and the
learning-rate schedules, step for step against PyTorch (torch.optim,
torch.nn.utils.clip_grad_norm_ / clip_grad_value_) and NumPy references;
frozen layers, save/load of every state, bad input."""

import math

import numpy as np
import pytest

import cnnx
from cnnx import _core
from cnnx.optim import schedules as S
from conftest import torch_or_skip


def _model(frozen=False):
    cnnx.set_seed(3)
    m = cnnx.Sequential(
        [
            cnnx.Dense(37, activation="relu", name="a"),
            cnnx.Dense(300, name="b"),
            cnnx.Dense(5, name="c"),
        ],
        input_shape=(11,),
    )
    if frozen:
        m.get_layer("b").trainable = False
    return m


def _tensors(model):
    return [(layer, name) for layer in model.layers for name in layer.params]


def _run(
    torch,
    model,
    opt,
    make_torch_opt,
    steps=4,
    before_torch_step=None,
    rng=None,
    ema=None,
    scale=1.0,
):
    """Same gradients into cnnx (opt) and torch; compare the weights after each step."""
    rng = rng or np.random.default_rng(1)
    opt.bind(model.store)
    ts = _tensors(model)
    trainable = [layer.trainable for layer, _ in ts]
    tp = [torch.nn.Parameter(torch.tensor(layer.params[n].copy())) for layer, n in ts]
    topt = make_torch_opt([p for p, t in zip(tp, trainable) if t])
    avg = [p.detach().numpy().copy() for p in tp]
    for k in range(steps):
        for (layer, n), p in zip(ts, tp):
            g = (rng.standard_normal(layer.params[n].shape) * scale).astype(np.float32)
            layer.grads[n][...] = g
            p.grad = torch.tensor(g.copy())
        if before_torch_step is not None:
            before_torch_step([p for p, t in zip(tp, trainable) if t])
        topt.step()
        opt.step()
        if ema is not None:  # Keras: momentum 0 on the first step
            m_, freq = ema
            mom = 0.0 if k == 0 else m_
            for i, p in enumerate(tp):
                if trainable[i]:
                    avg[i] = mom * avg[i] + (1 - mom) * p.detach().numpy()
                    if freq and (k + 1) % freq == 0:
                        with torch.no_grad():
                            p.copy_(torch.tensor(avg[i].astype(np.float32)))
        for (layer, n), p in zip(ts, tp):
            np.testing.assert_allclose(
                layer.params[n],
                p.detach().numpy(),
                rtol=2e-5,
                atol=2e-6,
                err_msg=f"{layer.name}.{n} after step {k + 1}",
            )
    return ts, avg


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(alpha=0.9, eps=1e-6, momentum=0.8),
        dict(centered=True, weight_decay=0.01),
        dict(centered=True, momentum=0.5, alpha=0.95),
    ],
)
def test_rmsprop_matches_torch(isa, kw):
    torch = torch_or_skip()
    model = _model()
    _run(
        torch,
        model,
        cnnx.optim.RMSprop(lr=0.01, **kw),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, **kw),
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(lr_decay=0.1, initial_accumulator_value=0.5),
        dict(weight_decay=0.05, eps=1e-6),
    ],
)
def test_adagrad_matches_torch(isa, kw):
    torch = torch_or_skip()
    _run(
        torch,
        _model(),
        cnnx.optim.Adagrad(lr=0.05, **kw),
        lambda ps: torch.optim.Adagrad(ps, lr=0.05, **kw),
    )


@pytest.mark.parametrize(
    "name,kw,tkw",
    [
        (
            "SGD",
            dict(momentum=0.9, nesterov=True, weight_decay=0.01),
            dict(momentum=0.9, nesterov=True, weight_decay=0.01),
        ),
        ("SGD", dict(), dict()),
        (
            "Adam",
            dict(beta1=0.8, beta2=0.99, weight_decay=0.1),
            dict(betas=(0.8, 0.99), weight_decay=0.1),
        ),
        ("AdamW", dict(weight_decay=0.1), dict(weight_decay=0.1)),
    ],
)
def test_sgd_adam_through_the_fused_step_match_torch(isa, name, kw, tkw):
    torch = torch_or_skip()
    _run(
        torch,
        _model(),
        getattr(cnnx.optim, name)(lr=0.02, **kw),
        lambda ps: getattr(torch.optim, name)(ps, lr=0.02, **tkw),
    )


def test_clipnorm_per_tensor_matches_torch(isa):
    torch = torch_or_skip()

    def clip_each(ps):  # Keras clipnorm: every tensor on its own
        for p in ps:
            torch.nn.utils.clip_grad_norm_([p], 0.7)

    _run(
        torch,
        _model(),
        cnnx.optim.SGD(lr=0.1, momentum=0.9, clipnorm=0.7),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        before_torch_step=clip_each,
    )


def test_global_clipnorm_matches_torch(isa):
    torch = torch_or_skip()
    _run(
        torch,
        _model(),
        cnnx.optim.Adam(lr=0.01, global_clipnorm=2.0),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
        before_torch_step=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 2.0),
    )


def test_global_clipnorm_leaves_small_gradients(isa):
    torch = torch_or_skip()
    # the norm is below the limit: nothing is scaled
    _run(
        torch,
        _model(),
        cnnx.optim.SGD(lr=0.1, global_clipnorm=1e6),
        lambda ps: torch.optim.SGD(ps, lr=0.1),
        scale=1e-3,
    )


def test_clipvalue_matches_torch(isa):
    torch = torch_or_skip()
    _run(
        torch,
        _model(),
        cnnx.optim.RMSprop(lr=0.01, clipvalue=0.5, centered=True),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, centered=True),
        before_torch_step=lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.5),
    )


def test_frozen_layers_clipping_ignores_them(isa):
    """A frozen layer is neither updated nor counted in the global norm."""
    torch = torch_or_skip()
    model = _model(frozen=True)
    before = model.get_layer("b").params["kernel"].copy()
    _run(
        torch,
        model,
        cnnx.optim.SGD(lr=0.1, momentum=0.9, global_clipnorm=1.5, use_ema=True),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        before_torch_step=lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.5),
        ema=(0.99, None),
    )
    np.testing.assert_array_equal(model.get_layer("b").params["kernel"], before)


@pytest.mark.parametrize("freq", [None, 3])
def test_ema_matches_reference(isa, freq):
    torch = torch_or_skip()
    model = _model()
    opt = cnnx.optim.Adam(lr=0.01, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=freq)
    ts, avg = _run(
        torch, model, opt, lambda ps: torch.optim.Adam(ps, lr=0.01), steps=5, ema=(0.9, freq)
    )
    for (layer, n), a in zip(ts, avg):
        start, size = next(
            (s, z) for lay, nm, s, z, _ in model.store.slots if lay is layer and nm == n
        )
        np.testing.assert_allclose(
            opt.state["ema"][start : start + size].reshape(a.shape), a, rtol=2e-5, atol=2e-6
        )
    # swap in for evaluation, and back
    trained = model.store.params.copy()
    with opt.ema_weights():
        for (layer, n), a in zip(ts, avg):
            np.testing.assert_allclose(layer.params[n], a, rtol=2e-5, atol=2e-6)
    np.testing.assert_array_equal(model.store.params, trained)
    opt.finalize_variable_values()
    for (layer, n), a in zip(ts, avg):
        np.testing.assert_allclose(layer.params[n], a, rtol=2e-5, atol=2e-6)


def test_fit_ends_with_the_moving_average(rng):
    """As Keras: fit finishes with the averaged weights in the model."""
    model = _model()
    model.compile(cnnx.optim.SGD(lr=0.05, use_ema=True, ema_momentum=0.5), "mse")
    x = rng.standard_normal((40, 11)).astype(np.float32)
    y = rng.standard_normal((40, 5)).astype(np.float32)
    model.fit(x, y, epochs=1, batch_size=10, shuffle=False, verbose=0)
    ema = model.optimizer.state["ema"]
    runs = model.store.trainable_runs()
    for a, b in runs:
        np.testing.assert_array_equal(model.store.params[a:b], ema[a:b])


def test_segment_norms_match_numpy(isa, rng):
    g = rng.standard_normal(700_001).astype(np.float32)
    seg = np.array([[0, 5], [16, 300_016], [300_032, 700_001], [700_001, 700_001]], np.int64)
    got = _core.segment_norms(g, seg)
    ref = [np.linalg.norm(g[a:b].astype(np.float64)) for a, b in seg]
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_large_buffers_on_every_isa_match_numpy(isa, rng):
    """Threads split the concatenated segments: every element updated once."""
    n = 600_000
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    v = np.zeros(n, np.float32)
    seg = np.array([[0, 100_003], [100_016, 599_990]], np.int64)
    ref = p.astype(np.float64).copy()
    norms = [np.linalg.norm(g[a:b].astype(np.float64)) for a, b in seg]
    for (a, b), nrm in zip(seg, norms):
        ref[a:b] -= 0.1 * g[a:b] * (3.0 / max(nrm, 3.0))
    args = _core.OptimStepArgs()
    args.rule, args.lr = _core.OptimRule.sgd, 0.1
    args.clip, args.clip_value = _core.ClipMode.per_segment_norm, 3.0
    _core.optimizer_step(args, p, g, v, None, None, None, seg)
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)


# ---- schedules ------------------------------------------------------------------


def test_schedules_follow_keras_formulas():
    e = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    es = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    p = S.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])
    c = S.CosineDecay(0.2, decay_steps=100, alpha=0.1)
    w = S.CosineDecay(0.0, decay_steps=100, alpha=0.0, warmup_target=0.4, warmup_steps=20)
    for step in [0, 1, 5, 6, 9, 10, 11, 19, 20, 50, 100, 119, 120, 500]:
        assert e(step) == pytest.approx(0.1 * 0.5 ** (step / 10))
        assert es(step) == pytest.approx(0.1 * 0.5 ** (step // 10))
        assert p(step) == (1.0 if step <= 5 else 0.5 if step <= 10 else 0.1)
        t = min(step, 100) / 100
        assert c(step) == pytest.approx(0.2 * (0.9 * 0.5 * (1 + math.cos(math.pi * t)) + 0.1))
        if step < 20:
            assert w(step) == pytest.approx(0.4 * step / 20)
        else:
            t = min(step - 20, 100) / 100
            assert w(step) == pytest.approx(0.4 * 0.5 * (1 + math.cos(math.pi * t)))


def test_schedule_as_lr_is_applied_per_step(isa):
    """Step k (from 0) uses schedule(k), as Keras; compare with torch SGD given
    that rate by hand."""
    torch = torch_or_skip()
    sched = S.PiecewiseConstantDecay([1, 2], [0.1, 0.05, 0.01])
    opt = cnnx.optim.SGD(lr=sched, momentum=0.9)
    rates = []

    def set_rate(ps):
        rates.append(sched(len(rates)))
        for group in topt[0].param_groups:
            group["lr"] = rates[-1]

    topt = []

    def make(ps):
        topt.append(torch.optim.SGD(ps, lr=0.1, momentum=0.9))
        return topt[0]

    _run(torch, _model(), opt, make, steps=4, before_torch_step=set_rate)
    assert rates == [0.1, 0.1, 0.05, 0.01]  # step <= boundary: the value before it
    assert opt.lr == 0.01 and opt.iterations == 4


class _Bad(S.LearningRateSchedule):
    def __init__(self, bad_at, value):
        self.bad_at, self.value = bad_at, value

    def __call__(self, step):
        return self.value if step >= self.bad_at else 0.01

    def get_config(self):
        return {"bad_at": self.bad_at, "value": self.value}


@pytest.mark.parametrize("value", [float("nan"), -0.5, float("inf")])
def test_bad_schedule_value_stops_at_that_step_weights_unchanged(rng, value):
    model = _model()
    model.compile(cnnx.optim.Adam(lr=_Bad(2, value)), "mse")
    x = rng.standard_normal((8, 11)).astype(np.float32)
    y = rng.standard_normal((8, 5)).astype(np.float32)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    before = model.store.params.copy()
    state = {k: v.copy() for k, v in model.optimizer.state.items()}
    with pytest.raises(ValueError, match=r"^lr: the schedule _Bad.*at step 2"):
        model.train_on_batch(x, y)
    np.testing.assert_array_equal(model.store.params, before)
    for k, v in state.items():
        np.testing.assert_array_equal(model.optimizer.state[k], v)
    assert model.optimizer.iterations == 2
    with pytest.raises(ValueError, match="^lr: the schedule"):
        model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.store.params, before)


def test_plain_function_schedule_and_setting_lr():
    opt = cnnx.optim.SGD(lr=lambda step: 0.1 / (1 + step))
    assert opt.lr == 0.1
    with pytest.raises(TypeError, match="^lr: this optimizer follows the schedule"):
        opt.lr = 0.5
    opt.lr = S.ExponentialDecay(0.2, 1, 0.5)  # a new schedule replaces it
    assert opt.lr == 0.2
    with pytest.raises(TypeError, match="^lr:.*plain function"):
        cnnx.optim.SGD(lr=lambda step: 0.1).get_config()


@pytest.mark.parametrize(
    "make",
    [
        lambda: cnnx.optim.RMSprop(
            lr=S.CosineDecay(0.01, 50, warmup_target=0.02, warmup_steps=3),
            momentum=0.9,
            centered=True,
            use_ema=True,
            ema_overwrite_frequency=3,
            clipnorm=1.0,
        ),
        lambda: cnnx.optim.Adagrad(
            lr=S.ExponentialDecay(0.05, 2, 0.7, staircase=True),
            lr_decay=0.01,
            initial_accumulator_value=0.1,
            global_clipnorm=0.5,
        ),
        lambda: cnnx.optim.SGD(
            lr=S.PiecewiseConstantDecay([2], [0.05, 0.01]),
            momentum=0.9,
            clipvalue=0.1,
            use_ema=True,
        ),
    ],
)
def test_save_load_resumes_exactly(tmp_path, rng, make):
    x = rng.standard_normal((16, 11)).astype(np.float32)
    y = rng.standard_normal((16, 5)).astype(np.float32)
    a = _model()
    a.compile(make(), "mse")
    for _ in range(3):
        a.train_on_batch(x, y)
    a.save(tmp_path / "m.cnnx")
    b = cnnx.load_model(tmp_path / "m.cnnx")
    assert type(b.optimizer) is type(a.optimizer)
    assert b.optimizer.get_config() == a.optimizer.get_config()
    assert sorted(b.optimizer.state) == sorted(a.optimizer.state)
    for _ in range(3):
        la, lb = a.train_on_batch(x, y), b.train_on_batch(x, y)
        assert la == lb
    np.testing.assert_array_equal(a.store.params, b.store.params)
    for k in a.optimizer.state:
        np.testing.assert_array_equal(a.optimizer.state[k], b.optimizer.state[k])


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="^clipvalue: only one of"):
        cnnx.optim.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="^clipnorm:"):
        cnnx.optim.SGD(clipnorm=-1.0)
    with pytest.raises(ValueError, match="^global_clipnorm:"):
        cnnx.optim.Adam(global_clipnorm=0.0)
    with pytest.raises(ValueError, match="^ema_momentum:"):
        cnnx.optim.Adam(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ValueError, match="^ema_overwrite_frequency:"):
        cnnx.optim.Adam(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(ValueError, match="^alpha:"):
        cnnx.optim.RMSprop(alpha=1.5)
    with pytest.raises(ValueError, match="^initial_accumulator_value:"):
        cnnx.optim.Adagrad(initial_accumulator_value=-1)
    with pytest.raises(ValueError, match="^use_ema:"):
        cnnx.optim.SGD().swap_ema_weights()
    with pytest.raises(ValueError, match="^decay_steps:"):
        S.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="^values: expected 3"):
        S.PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="^boundaries:"):
        S.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="^values:"):
        S.PiecewiseConstantDecay([1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="^warmup_target:"):
        S.CosineDecay(0.1, 10, warmup_steps=5)
    with pytest.raises(ValueError, match="^alpha:"):
        S.CosineDecay(0.1, 10, alpha=2.0)
    assert isinstance(cnnx.optim.get_optimizer("rmsprop"), cnnx.optim.RMSprop)
    assert isinstance(cnnx.optim.get_optimizer("adagrad"), cnnx.optim.Adagrad)


def test_pickled_optimizer_steps(rng):
    import pickle

    model = _model()
    model.compile(cnnx.optim.RMSprop(lr=0.01, use_ema=True), "mse")
    x = rng.standard_normal((4, 11)).astype(np.float32)
    y = rng.standard_normal((4, 5)).astype(np.float32)
    model.train_on_batch(x, y)
    copy = pickle.loads(pickle.dumps(model))
    assert model.train_on_batch(x, y) == copy.train_on_batch(x, y)
    np.testing.assert_array_equal(model.store.params, copy.store.params)
