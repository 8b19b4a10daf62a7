"""fit / evaluate / predict from generators, iterables, cnnx.data.Dataset, torch
DataLoaders and tensors: the same weights as the arrays they come from (or as
a hand-written train_on_batch loop in the same order), Keras's
steps_per_epoch semantics, clear errors for bad batches, no leaked threads."""

import threading
import time

import numpy as np
import pytest

import cnnx


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, n)
    return x, y


def make(lr=0.05, metrics=("accuracy",), input_shape=(8, 8, 3)):
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [cnnx.Conv2D(4, 3, activation="relu"), cnnx.Flatten(), cnnx.Dense(4, activation="softmax")],
        input_shape=input_shape,
    )
    m.compile(cnnx.optim.SGD(lr=lr, momentum=0.9), "cross_entropy", metrics=list(metrics))
    return m


def batches(x, y, bs=32, w=None):
    for i in range(0, len(x), bs):
        yield (
            (x[i : i + bs], y[i : i + bs])
            if w is None
            else (x[i : i + bs], y[i : i + bs], w[i : i + bs])
        )


def by_hand(batch_list):
    """The reference: train_on_batch over the given batches, in order."""
    m = make()
    for b in batch_list:
        m.train_on_batch(*b)
    return m


def data_threads():
    return [t for t in threading.enumerate() if t.name.startswith("cnnx-data")]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    for _ in range(100):  # a pool thread may take a moment to exit after shutdown
        if not data_threads():
            break
        time.sleep(0.01)
    assert data_threads() == []


# ---- the same training as arrays ----------------------------------------------------
def test_generator_with_steps_per_epoch_equals_arrays():
    """The Keras tutorial form: an endless generator and steps_per_epoch."""
    x, y = data()
    ref = make()
    h_ref = ref.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)

    def endless():
        while True:
            yield from batches(x, y)

    m = make()
    h = m.fit(endless(), steps_per_epoch=7, epochs=3, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    assert h.history["loss"] == h_ref.history["loss"]
    assert h.history["accuracy"] == h_ref.history["accuracy"]
    assert h.params["steps"] == 7


@pytest.mark.parametrize("workers", [0, 1])
def test_list_of_batches_is_one_pass_per_epoch(workers):
    x, y = data()
    ref = make()
    ref.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    m = make()
    m.fit(list(batches(x, y)), epochs=2, verbose=0, workers=workers)
    np.testing.assert_array_equal(m.store.params, ref.store.params)


def test_batches_are_prepared_on_a_background_thread():
    x, y = data()
    seen = []

    def gen():
        for b in batches(x, y):
            seen.append(threading.current_thread().name)
            yield b

    make().fit(gen(), verbose=0)
    assert seen and all(name.startswith("cnnx-data") for name in seen)
    seen.clear()
    make().fit(gen(), verbose=0, workers=0)
    assert seen == ["MainThread"] * 7


class Batches(cnnx.data.Dataset):
    """The Keras PyDataset idiom."""

    def __init__(self, x, y, bs, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.bs = x, y, bs
        self.epochs_ended = 0
        self.threads = set()

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        s = slice(i * self.bs, (i + 1) * self.bs)
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_dataset_shuffles_the_batch_order_with_fits_generator():
    x, y = data()
    ds = Batches(x, y, 32)
    m = make()
    m.fit(ds, epochs=3, seed=5, verbose=0)
    assert ds.epochs_ended == 3
    order = np.random.default_rng(5)
    chunks = list(batches(x, y))
    ref = by_hand([chunks[i] for _ in range(3) for i in order.permutation(len(chunks))])
    np.testing.assert_array_equal(m.store.params, ref.store.params)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_dataset_workers_keep_the_order(workers):
    x, y = data()
    ds = Batches(x, y, 16, workers=workers, max_queue_size=4)
    m = make()
    m.fit(ds, epochs=2, shuffle=False, verbose=0)
    ref = make()
    ref.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    if workers == 0:
        assert ds.threads == {"MainThread"}
    else:
        assert all(t.startswith("cnnx-data") for t in ds.threads)


def test_steps_per_epoch_continues_over_passes_of_an_iterable():
    """Keras: each epoch takes the next steps_per_epoch batches; an iterable that
    can be iterated again starts a new pass when one ends."""
    x, y = data(160)
    chunks = list(batches(x, y))  # 5 batches
    m = make()
    m.fit(chunks, steps_per_epoch=3, epochs=3, verbose=0)
    ref = by_hand([chunks[i] for i in [0, 1, 2, 3, 4, 0, 1, 2, 3]])
    np.testing.assert_array_equal(m.store.params, ref.store.params)


def test_dataset_with_steps_per_epoch_continues_too():
    x, y = data(160)
    ds = Batches(x, y, 32)
    m = make()
    m.fit(ds, steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    chunks = list(batches(x, y))
    ref = by_hand([chunks[i] for i in [0, 1, 2, 3, 4, 0]])
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    assert ds.epochs_ended == 3  # after every fit epoch, as Keras


def test_arrays_with_steps_per_epoch():
    x, y = data(160)
    m = make()
    m.fit(x, y, batch_size=32, steps_per_epoch=2, epochs=3, shuffle=False, verbose=0)
    chunks = list(batches(x, y))
    ref = by_hand([chunks[i] for i in [0, 1, 2, 3, 4, 0]])
    np.testing.assert_array_equal(m.store.params, ref.store.params)


def test_sample_weights_and_class_weights_from_batches():
    x, y = data()
    w = np.random.default_rng(1).uniform(0.1, 2, len(x)).astype(np.float32)
    cw = {0: 2.0, 3: 0.5}
    ref = make()
    ref.fit(
        x, y, sample_weight=w, class_weight=cw, batch_size=32, shuffle=False, epochs=2, verbose=0
    )
    m = make()
    m.fit(list(batches(x, y, w=w)), class_weight=cw, epochs=2, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    assert m.evaluate(batches(x, y, w=w)) == pytest.approx(
        ref.evaluate(x, y, sample_weight=w), rel=1e-12
    )


def test_validation_from_a_generator_and_validation_steps():
    x, y = data()
    xv, yv = data(96, seed=1)
    ref = make()
    h_ref = ref.fit(
        x, y, epochs=2, batch_size=32, shuffle=False, validation_data=(xv, yv), verbose=0
    )
    m = make()
    h = m.fit(list(batches(x, y)), epochs=2, validation_data=list(batches(xv, yv)), verbose=0)
    assert h.history["val_loss"] == pytest.approx(h_ref.history["val_loss"], rel=1e-12)
    assert h.history["val_accuracy"] == h_ref.history["val_accuracy"]
    # validation_steps: the first batch only, in every epoch (a list restarts its pass)
    m = make()
    h = m.fit(
        list(batches(x, y)),
        epochs=2,
        validation_data=list(batches(xv, yv)),
        validation_steps=1,
        verbose=0,
    )
    m2 = make()
    m2.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    first = m2.evaluate(xv[:32], yv[:32])
    assert h.history["val_loss"][0] == pytest.approx(first["loss"], rel=1e-12)


def test_evaluate_and_predict_from_generators():
    x, y = data()
    m = make()
    m.fit(x, y, epochs=1, verbose=0)
    ev = m.evaluate(x, y)
    assert m.evaluate(batches(x, y)) == pytest.approx(ev, rel=1e-12)
    assert m.evaluate(Batches(x, y, 50)) == pytest.approx(ev, rel=1e-6)  # other chunks
    part = m.evaluate(x[:64], y[:64])
    assert m.evaluate(batches(x, y), steps=2) == pytest.approx(part, rel=1e-12)

    def chunked(bs):  # the same chunks as arrays (a kernel may pick its path by batch size)
        return np.concatenate([m.predict(x[i : i + bs]) for i in range(0, len(x), bs)])

    np.testing.assert_array_equal(m.predict(batches(x, y)), chunked(32))  # (x, y): x is used
    np.testing.assert_array_equal(m.predict(x[i : i + 7] for i in range(0, 200, 7)), chunked(7))
    np.testing.assert_array_equal(m.predict(Batches(x, y, 64)), chunked(64))
    np.testing.assert_array_equal(m.predict(batches(x, y), steps=3), chunked(32)[:96])
    np.testing.assert_allclose(m.predict(batches(x, y)), m.predict(x), rtol=1e-5, atol=1e-6)


def test_several_inputs_and_outputs_as_dicts():
    def build():
        cnnx.set_seed(0)
        a = cnnx.Input((6,), name="a")
        b = cnnx.Input((4,), name="b")
        h = cnnx.Dense(8, activation="relu")(cnnx.Concatenate()([a, b]))
        cls = cnnx.Dense(3, activation="softmax", name="cls")(h)
        reg = cnnx.Dense(2, name="reg")(h)
        m = cnnx.Model([a, b], [cls, reg])
        m.compile(
            cnnx.optim.SGD(lr=0.05),
            loss={"cls": "cross_entropy", "reg": "mse"},
            metrics=["accuracy"],
        )
        return m

    rng = np.random.default_rng(0)
    xa = rng.standard_normal((96, 6)).astype(np.float32)
    xb = rng.standard_normal((96, 4)).astype(np.float32)
    yc = rng.integers(0, 3, 96)
    yr = rng.standard_normal((96, 2)).astype(np.float32)
    ref = build()
    h_ref = ref.fit(
        [xa, xb], {"cls": yc, "reg": yr}, batch_size=32, shuffle=False, epochs=2, verbose=0
    )
    by_name = build()
    by_name.fit({"b": xb, "a": xa}, [yc, yr], batch_size=32, shuffle=False, epochs=2, verbose=0)
    np.testing.assert_array_equal(by_name.store.params, ref.store.params)
    gen = [
        ({"a": xa[i : i + 32], "b": xb[i : i + 32]}, {"cls": yc[i : i + 32], "reg": yr[i : i + 32]})
        for i in range(0, 96, 32)
    ]
    m = build()
    h = m.fit(gen, epochs=2, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    h.history.pop("time"), h_ref.history.pop("time")
    assert h.history == h_ref.history
    lists = [
        ((xa[i : i + 32], xb[i : i + 32]), [yc[i : i + 32], yr[i : i + 32]])
        for i in range(0, 96, 32)
    ]
    m = build()
    m.fit(lists, epochs=2, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)


def test_an_unbuilt_model_is_built_from_the_first_batch():
    x, y = data()
    cnnx.set_seed(0)
    m = cnnx.Sequential(
        [cnnx.Conv2D(4, 3, activation="relu"), cnnx.Flatten(), cnnx.Dense(4, activation="softmax")]
    )
    m.compile(cnnx.optim.SGD(lr=0.05, momentum=0.9), "cross_entropy")
    m.fit(batches(x, y), verbose=0)
    assert m.input_shape == (8, 8, 3)
    ref = make()
    ref.fit(x, y, batch_size=32, shuffle=False, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)


# ---- torch -----------------------------------------------------------------------------
def test_torch_tensors_and_dataloader():
    torch = pytest.importorskip("torch")
    from cnnx.trainers.data_adapter import to_numpy

    x, y = data()
    ref = make()
    ref.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    tx, ty = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    assert np.shares_memory(to_numpy(tx), tx.numpy())  # a view, no copy
    m = make()
    m.fit(tx, ty, epochs=2, batch_size=32, shuffle=False, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(tx, ty), batch_size=32)
    m = make()
    m.fit(loader, epochs=2, verbose=0)  # re-iterated every epoch
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    assert m.evaluate(loader) == pytest.approx(ref.evaluate(x, y), rel=1e-12)
    np.testing.assert_array_equal(
        m.predict(loader),
        np.concatenate([ref.predict(x[i : i + 32]) for i in range(0, len(x), 32)]),
    )
    np.testing.assert_array_equal(m.predict(tx.requires_grad_()), ref.predict(x))
    assert m.train_on_batch(tx[:8], ty[:8]) > 0


def test_nchw_is_refused_not_transposed():
    torch = pytest.importorskip("torch")
    x, y = data()
    m = make()
    before = m.store.params.copy()
    nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
    with pytest.raises(
        ValueError,
        match=r"^x: got shape \(200, 3, 8, 8\), channels first "
        r"\(NCHW.*NHWC.*permute\(0, 2, 3, 1\)",
    ):
        m.fit(nchw, torch.from_numpy(y), verbose=0)
    with pytest.raises(ValueError, match="NCHW"):
        m.predict(nchw.numpy())
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(nchw.contiguous(), torch.from_numpy(y)), batch_size=32
    )
    with pytest.raises(
        ValueError,
        match=r"^x \(batch 0 of epoch 1\): got shape \(32, 3, 8, 8\), "
        "channels first",
    ):
        m.fit(loader, verbose=0)
    with pytest.raises(ValueError, match=r"last axis has 5 channels; the model takes 3"):
        m.fit(np.zeros((4, 8, 8, 5), np.float32), np.zeros(4, int), verbose=0)
    with pytest.raises(TypeError, match="DataLoader"):
        m.fit(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), verbose=0)
    np.testing.assert_array_equal(m.store.params, before)


# ---- bad input ---------------------------------------------------------------------------
def test_inconsistent_shapes_name_the_batch_and_leave_that_step_undone():
    x, y = data()
    chunks = list(batches(x, y))

    def gen():
        for i, b in enumerate(chunks):
            yield (x[:32, :6], y[:32]) if i == 3 else b

    m = make()
    with pytest.raises(
        ValueError,
        match=r"^x \(batch 3 of epoch 1\): got a batch of shape "
        r"\(32, 6, 8, 3\); the model takes \(m, 8, 8, 3\)",
    ):
        m.fit(gen(), verbose=0)
    np.testing.assert_array_equal(m.store.params, by_hand(chunks[:3]).store.params)

    def bad_targets():
        yield chunks[0]
        yield x[32:64], y[32:48]

    m = make()
    with pytest.raises(
        ValueError,
        match=r"^y \(batch 1 of epoch 1\): expected \(32,\) integer "
        r"labels, got shape \(16,\)",
    ):
        m.fit(bad_targets(), verbose=0)
    np.testing.assert_array_equal(m.store.params, by_hand(chunks[:1]).store.params)

    def bad_label():
        yield chunks[0]
        yield x[:4], np.array([0, 1, 9, 2])

    m = make()
    with pytest.raises(ValueError, match=r"^y \(batch 1 of epoch 1\).*9"):
        m.fit(bad_label(), verbose=0)
    np.testing.assert_array_equal(m.store.params, by_hand(chunks[:1]).store.params)


def test_wrong_batch_structures():
    x, y = data(64)
    m = make()
    with pytest.raises(ValueError, match=r"^y \(batch 0 of epoch 1\): targets missing"):
        m.fit((x[i : i + 32] for i in (0, 32)), verbose=0)
    with pytest.raises(ValueError, match=r"^y \(batch 0 of epoch 1\): targets missing"):
        m.fit([(x[:32],), (x[32:],)], verbose=0)
    with pytest.raises(
        ValueError,
        match=r"^x \(batch 0 of epoch 1\): expected a batch \(x, y\) "
        r"or \(x, y, sample_weight\), got a tuple of 4 items",
    ):
        m.fit(iter([(x, y, y, y)]), verbose=0)
    with pytest.raises(TypeError, match=r"^x \(batch 0 of epoch 1\): expected a numeric array"):
        m.fit(iter([(np.array(["a"] * 4, dtype=object), y[:4])]), verbose=0)
    with pytest.raises(ValueError, match=r"^sample_weight \(batch 0 of epoch 1\): expected 32"):
        m.fit(iter([(x[:32], y[:32], np.ones(5))]), verbose=0)
    with pytest.raises(ValueError, match="^y: not used when x gives batches"):
        m.fit(batches(x, y), y, verbose=0)
    with pytest.raises(ValueError, match="^batch_size: not used"):
        m.fit(batches(x, y), batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="^sample_weight: not used"):
        m.fit(batches(x, y), sample_weight=np.ones(64), verbose=0)
    with pytest.raises(ValueError, match="^validation_split: not available"):
        m.fit(batches(x, y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="^y: targets missing"):
        m.fit(x, verbose=0)
    with pytest.raises(ValueError, match="^x: the generator gave no batches"):
        m.fit(iter([]), verbose=0)


def test_a_generator_read_once_and_one_that_runs_out():
    x, y = data()
    m = make()
    with pytest.raises(
        ValueError,
        match=r"^x: the generator was used up after 7 batches and "
        "gave none for epoch 2; .*steps_per_epoch",
    ):
        m.fit(batches(x, y), epochs=2, verbose=0)
    m = make()
    with pytest.raises(
        ValueError,
        match=r"^x: the generator ran out after 7 batches, at batch "
        r"2 of epoch 2; steps_per_epoch asks for 5",
    ):
        m.fit(batches(x, y), steps_per_epoch=5, epochs=3, verbose=0)
    assert m.optimizer.iterations == 7  # every batch it gave was trained on
    with pytest.raises(ValueError, match=r"^validation_data: the generator was used up"):
        make().fit(list(batches(x, y)), epochs=2, validation_data=batches(x, y), verbose=0)


def test_errors_in_the_generator_propagate_and_stop_the_thread():
    x, y = data()

    def broken():
        yield from list(batches(x, y))[:2]
        raise ZeroDivisionError("in the user's generator")

    m = make()
    with pytest.raises(ZeroDivisionError, match="user's generator"):
        m.fit(broken(), verbose=0)
    assert m.optimizer.iterations == 2

    class Broken(Batches):
        def __getitem__(self, i):
            if i == 4:
                raise KeyError("batch 4 is missing")
            return super().__getitem__(i)

    m = make()
    with pytest.raises(KeyError, match="batch 4 is missing"):
        m.fit(Broken(x, y, 16, workers=3), shuffle=False, verbose=0)
    assert m.optimizer.iterations == 4


def test_interrupt_stops_the_data_threads():
    """Ctrl-C (a KeyboardInterrupt on the training thread) while the data thread
    is blocked on a full queue, or inside a slow generator: both end, no thread
    is left."""
    x, y = data()

    def endless():
        while True:
            yield from batches(x, y)

    def slow():
        while True:
            time.sleep(0.05)
            yield x[:32], y[:32]

    class Interrupt(cnnx.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                time.sleep(0.1)  # let the data thread fill its queue
                raise KeyboardInterrupt

    for gen in (endless(), slow()):
        m = make()
        with pytest.raises(KeyboardInterrupt):
            m.fit(gen, steps_per_epoch=1000, callbacks=[Interrupt()], verbose=0, max_queue_size=2)
        assert data_threads() == []
        assert m.optimizer.iterations == 4
    m = make()
    with pytest.raises(KeyboardInterrupt):
        m.fit(Batches(x, y, 8, workers=2, max_queue_size=3), callbacks=[Interrupt()], verbose=0)


def test_a_subprocess_ctrl_c_during_fit_from_a_generator(tmp_path):
    """A real SIGINT in the middle of fit(generator): KeyboardInterrupt, no hang."""
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time, threading, numpy as np, cnnx, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "m = cnnx.Sequential([cnnx.Flatten(), cnnx.Dense(4)], input_shape=(8, 8, 3))\n"
        "m.compile('sgd', 'cross_entropy')\n"
        "x = np.zeros((32, 8, 8, 3), np.float32); y = np.zeros(32, int)\n"
        "def gen():\n"
        "    while True:\n"
        "        time.sleep(0.001); yield x, y\n"
        "print('go', flush=True)\n"
        "try:\n"
        "    m.fit(gen(), steps_per_epoch=10**9, verbose=0)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', [t.name for t in threading.enumerate()], flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "go"
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert out.startswith("interrupted ['MainThread']"), out
    assert p.returncode == 0


# ---- independent references ---------------------------------------------------------------
def test_weighted_generator_training_matches_pytorch():
    """An endless generator of (x, y, sample_weight) batches, class_weight and
    steps_per_epoch against a PyTorch loop over the same batches (the weighted
    loss is the batch mean of weight * per-sample loss, as Keras and PyTorch)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    w = rng.uniform(0.2, 2.0, 60).astype(np.float32)
    cw = {0: 2.0, 2: 0.5}
    cnnx.set_seed(4)
    m = cnnx.Sequential([cnnx.Dense(3)], input_shape=(5,))
    m.compile(
        cnnx.optim.SGD(lr=0.1, momentum=0.9),
        cnnx.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    lin = torch.nn.Linear(5, 3).double()
    lin.weight.data = torch.tensor(m.layers[0].params["kernel"].T.astype(np.float64))
    lin.bias.data = torch.tensor(m.layers[0].params["bias"].astype(np.float64))
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)

    def endless():
        while True:
            yield from batches(x, y, bs=16, w=w)  # 4 batches per pass, the last of 12

    h = m.fit(endless(), steps_per_epoch=3, epochs=3, class_weight=cw, verbose=0)
    chunks = list(batches(x, y, bs=16, w=w))
    order = [chunks[i % 4] for i in range(9)]  # epochs continue over the passes
    per_class = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    losses = []
    for xb, yb, wb in order:
        opt.zero_grad()
        per = torch.nn.functional.cross_entropy(
            lin(torch.tensor(xb, dtype=torch.float64)), torch.tensor(yb), reduction="none"
        )
        weight = torch.tensor(wb, dtype=torch.float64) * per_class[torch.tensor(yb)]
        loss = (per * weight).mean()
        loss.backward()
        opt.step()
        losses.append((loss.item(), len(yb)))
    np.testing.assert_allclose(
        m.layers[0].params["kernel"], lin.weight.detach().numpy().T, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        m.layers[0].params["bias"], lin.bias.detach().numpy(), rtol=1e-4, atol=1e-5
    )
    # each epoch's loss: the sample-weighted mean of its batches' losses
    for e in range(3):
        part = losses[3 * e : 3 * e + 3]
        ref = sum(v * k for v, k in part) / sum(k for _, k in part)
        assert h.history["loss"][e] == pytest.approx(ref, rel=1e-4)


def test_batches_of_different_sizes_for_a_model_taking_any_size():
    """Input((None, None, C)): each batch from a generator may have its own image
    size (arrays cannot); fit, evaluate and predict follow it batch by batch."""
    rng = np.random.default_rng(0)
    sizes = [(8, 8), (12, 10), (8, 8), (6, 14)]
    chunks = [
        (rng.standard_normal((5,) + hw + (1,)).astype(np.float32), rng.integers(0, 3, 5))
        for hw in sizes
    ]

    def build():
        cnnx.set_seed(2)
        m = cnnx.Sequential(
            [
                cnnx.Conv2D(4, 3, padding="same", activation="relu"),
                cnnx.GlobalAvgPool2D(),
                cnnx.Dense(3, activation="softmax"),
            ],
            input_shape=(None, None, 1),
        )
        m.compile(cnnx.optim.SGD(lr=0.1, momentum=0.9), "cross_entropy", metrics=["accuracy"])
        return m

    ref = build()
    for _ in range(2):
        for b in chunks:
            ref.train_on_batch(*b)
    m = build()
    m.fit(iter(chunks * 2), steps_per_epoch=4, epochs=2, verbose=0)
    np.testing.assert_array_equal(m.store.params, ref.store.params)
    # evaluate: the sample-weighted mean of the per-batch results (all batches hold 5)
    parts = [m.evaluate(*b) for b in chunks]
    ev = m.evaluate(iter(chunks))
    assert ev["loss"] == pytest.approx(np.mean([p["loss"] for p in parts]), rel=1e-6)
    assert ev["accuracy"] == pytest.approx(np.mean([p["accuracy"] for p in parts]), rel=1e-12)
    np.testing.assert_array_equal(
        m.predict(iter(chunks)), np.concatenate([m.predict(b[0]) for b in chunks])
    )
    # a batch with the wrong channels is refused before its step; the one before it trained
    m = build()
    with pytest.raises(ValueError, match=r"x \(batch 1 of epoch 1\).*channels"):
        m.fit([chunks[0], (np.zeros((5, 8, 8, 2), np.float32), chunks[0][1])], verbose=0)
    one = build()
    one.train_on_batch(*chunks[0])
    np.testing.assert_array_equal(m.store.params, one.store.params)
