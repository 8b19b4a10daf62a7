"""The checks a family of layers shares (issue 19's activations, normalisations
and pooling options): a model runs the same in the compiled inference and
training plans as layer by layer, comes back bit for bit from a save/load round
trip, and exports to ONNX that ONNX Runtime runs to the same outputs.

A test file lists its models as ``(name, make)`` pairs, ``make()`` building a
fresh uncompiled model, and keeps thin tests that call these checks."""

import numpy as np
import pytest

import cnnx


def model_ids(models):
    """The test ids of ``(name, make)`` pairs: their names."""
    return [name for name, _ in models]


def _on_threads(threads, check):
    saved = cnnx.get_num_threads()
    cnnx.set_num_threads(threads)
    try:
        check()
    finally:
        cnnx.set_num_threads(saved)


def check_inference_plan(make, threads, rng, small_batch_mode=None):
    """``predict`` (the compiled inference plan) against ``_forward`` (layer by
    layer) at batch 1, 3 and 17 on ``threads`` threads; ``small_batch_mode``,
    when given, is set on the plan first (-1: off, 0: auto, 1: forced)."""
    cnnx.set_seed(4)
    model = make()
    assert model._inference_plan() is not None
    if small_batch_mode is not None:
        model.predict(np.zeros((1,) + model.input_shape, np.float32))
        model._inference_plan().plan.set_small_batch_mode(small_batch_mode)

    def check():
        for n in (1, 3, 17):
            x = rng.standard_normal((n,) + model.input_shape).astype(np.float32)
            np.testing.assert_allclose(
                model.predict(x), model._forward(x, False), rtol=2e-5, atol=2e-5
            )

    _on_threads(threads, check)


def check_training_plan(make, threads, rng, compare_params=True):
    """Two equal models trained with SGD with momentum on batches of 1, 6 and
    16, one by the compiled training plan and one layer by layer: the same
    losses and gradients (and, with ``compare_params``, parameters) each step."""
    from cnnx.graph import compile_training

    models = []
    for _ in range(2):
        cnnx.set_seed(5)
        m = make()
        m.compile(cnnx.optim.SGD(0.05, momentum=0.9), "cross_entropy")
        models.append(m)
    plan_model, ref_model = models
    assert (
        compile_training(plan_model.to_graph(), plan_model.store.grads, plan_model._loss_specs)
        is not None
    )
    ref_model._training_plan = lambda *shapes: None

    def check():
        for n in (1, 6, 16):
            x = rng.standard_normal((n,) + plan_model.input_shape).astype(np.float32)
            y = rng.integers(0, plan_model.output_shape[-1], n)
            lp = plan_model.train_on_batch(x, y)
            lr = ref_model.train_on_batch(x, y)
            assert lp == pytest.approx(lr, rel=1e-5, abs=1e-6)
            np.testing.assert_allclose(
                plan_model.store.grads, ref_model.store.grads, rtol=1e-3, atol=3e-5
            )
            if compare_params:
                np.testing.assert_allclose(
                    plan_model.store.params, ref_model.store.params, rtol=1e-4, atol=1e-5
                )

    _on_threads(threads, check)


def check_save_load(make, tmp_path, rng):
    """Save and load the model; the loaded one predicts exactly the same.
    Returns ``(model, loaded)`` for checks of the file's own."""
    cnnx.set_seed(2)
    model = make()
    x = rng.standard_normal((2,) + model.input_shape).astype(np.float32)
    model.save(tmp_path / "m.cnnx")
    loaded = cnnx.load_model(tmp_path / "m.cnnx")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    return model, loaded


def check_onnx_export(models, tmp_path, rng, opset=None):
    """Export each model (at ``opset``, None: the default) and run it in ONNX
    Runtime: the same outputs as ``predict`` within 1e-4."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import cnnx.onnx

    if opset is not None and opset > onnx.defs.onnx_opset_version():
        pytest.skip("onnx too old for this opset")
    cnnx.set_seed(3)
    for name, make in models:
        model = make()
        path = tmp_path / f"{name}.onnx"
        try:
            cnnx.onnx.export(model, path, opset=opset)
        except Exception as e:  # pragma: no cover - a message for the failure
            raise AssertionError(f"{name}: {e}") from e
        x = rng.standard_normal((3,) + model.input_shape).astype(np.float32)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, model.predict(x), rtol=1e-4, atol=1e-5, err_msg=name)
