"""The building blocks of benchmarks/bench_models.py, at tiny sizes.

Each framework's worker runs in this process here (the benchmark runs them in
their own processes); what is checked is that the models the benchmark times
are the models it claims, and that a wrong result stops it.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

import cnnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_models.py"
if not _PATH.exists():
    pytest.skip("benchmarks/ is not beside tests/ (installed-wheel run)", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("bench_models", _PATH)
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

TINY_CFG = [(1, 8, 1, 1), (6, 8, 2, 2), (6, 16, 1, 2)]
TINY = {
    "resnet20": (
        lambda relu6: B.cnnx_resnet20(size=8, widths=(4, 8, 16), blocks=1),
        lambda relu6: B.torch_resnet20(widths=(4, 8, 16), blocks=1),
    ),
    "mobilenetv2": (
        lambda relu6: B.cnnx_mobilenetv2(size=8, cfg=TINY_CFG, last=32, relu6=relu6),
        lambda relu6: B.torch_mobilenetv2(cfg=TINY_CFG, last=32, relu6=relu6),
    ),
}


@pytest.fixture(autouse=True)
def _one_thread():
    # one thread: on a busy machine, PyTorch's 2-thread barriers can be 100x slower
    c, t = cnnx.get_num_threads(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    cnnx.set_num_threads(c)
    torch.set_num_threads(t)


def test_flops_count_matches_a_hand_count(tmp_path):
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 10),
    ).eval()
    path = tmp_path / "m.onnx"
    B.export_torch(net, str(path), size=8)
    expected = 2 * (8 * 8 * 4 * 3 * 9 + 4 * 4 * 4 * 2 * 9 + 64 * 10)
    assert B.conv_dense_flops(str(path)) == expected
    model = cnnx.onnx.load(str(path))
    model.predict(np.zeros((1, 8, 8, 3), np.float32))
    plan = model._inference_plan()
    if plan is not None:  # the plan counts every op; conv + dense are most of it
        assert plan.plan.flops_per_image >= expected


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2-relu", "mobilenetv2"])
def test_torch_models_export_and_load_as_the_same_function(tmp_path, name):
    flops = B.prepare_infer(name, str(tmp_path), size=32, threads=1)
    assert flops > 0
    ref = np.load(tmp_path / f"{name}.ref.npy")
    assert np.all(np.isfinite(ref)) and ref.std() > 0
    for fw in ("onnxruntime", "torch", "cnnx"):
        res = B.infer_worker(fw, name, 2, 1, 0.01, str(tmp_path), 1e-3)
        if "refused" in res:  # ReLU6 exports as Clip, which cnnx may not import yet
            assert fw == "cnnx" and name == "mobilenetv2" and "Clip" in res["refused"]
            continue
        assert res["err"] < 1e-4 and res["seconds"] > 0


def test_a_wrong_output_is_not_timed(tmp_path):
    name = "mobilenetv2-relu"
    B.prepare_infer(name, str(tmp_path), size=32, threads=1)
    ref_path = tmp_path / f"{name}.ref.npy"
    np.save(ref_path, np.load(ref_path) * 1.01)
    with pytest.raises(B.WrongResult, match="not timed"):
        B.infer_worker("cnnx", name, 1, 1, 0.01, str(tmp_path), 1e-3)


def test_zoo_graph_gets_random_weights_and_a_free_batch(tmp_path):
    import onnx

    path = tmp_path / "sq.onnx"
    B.fill_zoo(B.zoo_source("squeezenet"), str(path))
    proto = onnx.load(str(path))
    assert not any(n.op_type == "ConstantOfShape" for n in proto.graph.node)
    assert [i.name for i in proto.graph.input] == ["data_0"]
    again = tmp_path / "sq2.onnx"
    B.fill_zoo(B.zoo_source("squeezenet"), str(again))
    assert path.read_bytes() == again.read_bytes()  # seeded
    sess = B._ort_session(str(path), 1)
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    p = sess.run(None, {"data_0": x})[0].reshape(3, -1)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-4)
    assert p.max() < 0.9  # the logits were scaled: the softmax is far from one-hot
    try:
        model = cnnx.onnx.load(str(path))
    except cnnx.onnx.ONNXConversionError as e:  # before the DAG importer: Concat refused
        assert "Concat" in str(e)
    else:
        got = model.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).reshape(3, -1)
        assert B.rel_err(got, p) < 1e-4


def test_training_pair_matches_a_float64_step_and_memory_is_measured(tmp_path):
    for name in TINY:
        B.prepare_train(name, str(tmp_path), size=8, builders=TINY)
        ref = dict(np.load(tmp_path / f"train-{name}.ref.npz"))
        for fw in ("cnnx", "torch"):
            res = B.train_worker(fw, name, 4, 1, 0.01, str(tmp_path), 1e-3, builders=TINY)
            assert res["err"] < 1e-5 and res["w_err"] < 1e-2 and res["seconds"] > 0
        # a gradient that is wrong in one layer is caught
        relu6 = bool(ref["relu6"])
        assert relu6 == (name == "mobilenetv2" and hasattr(cnnx, "ReLU6"))
        got = B.train_check_run("cnnx", B.cnnx_trainer(lambda: TINY[name][0](relu6)), size=8)
        key = next(k for k in got if k.startswith("w1/") and k.endswith("weight"))
        got[key] = 2 * got[key] - got["w0/" + key[3:]]
        _, w_err, worst, where = B.train_check_errors(got, ref)
        assert worst > 0.5 and where == key[3:]
    mem = B.memory_worker("cnnx", "resnet20", 8, 1, str(tmp_path), steps=1, builders=TINY)
    assert mem["peak"] >= mem["base"] > 0


def test_refusal_is_reported_and_a_loadable_graph_is_not(tmp_path):
    B.prepare_infer("mobilenetv2-relu", str(tmp_path), size=32, threads=1)
    assert B.cnnx_refusal(str(tmp_path / "mobilenetv2-relu.onnx")) is None
    B.prepare_infer("mobilenetv2", str(tmp_path), size=32, threads=1)
    refused = B.cnnx_refusal(str(tmp_path / "mobilenetv2.onnx"))
    assert refused is None or "Clip" in refused


def test_case_selection():
    acts = ("relu6", "relu")
    every = B.select_cases([], acts)
    assert ("infer", "squeezenet") in every and ("memory", "resnet20") in every
    assert B.select_cases(["resnet20"], acts) == [("train", "resnet20"), ("memory", "resnet20")]
    assert B.select_cases(["infer/resnet50", "train"], acts) == [
        ("infer", "resnet50"),
        ("train", "resnet20"),
        ("train", "mobilenetv2"),
    ]
    assert ("infer", "mobilenetv2") not in B.select_cases(["infer"], ("relu",))
    # the default: ReLU6 only (the ReLU variant replaces it later if cnnx refuses Clip)
    auto = B.select_cases(["infer"], ("auto",))
    assert ("infer", "mobilenetv2") in auto and ("infer", "mobilenetv2-relu") not in auto
    assert B.select_cases(["mobilenetv2-relu"], ("auto",)) == [
        ("infer", "mobilenetv2"),
        ("train", "mobilenetv2"),
    ]
    with pytest.raises(SystemExit):
        B.select_cases(["vgg"], acts)
