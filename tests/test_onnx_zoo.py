"""The model-zoo architectures that the ``onnx`` package ships with their weights
stripped (``onnx/backend/test/data/light``: AlexNet, DenseNet-121, Inception
v1 and v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512; old Caffe2
exports at opset 9), given seeded random weights of the same shapes, loaded
by ``cnnx.onnx.from_onnx`` and compared with ONNX Runtime on the same graph.

A model either loads and matches ONNX Runtime within 1e-3 of its output's
scale (max |cnnx - ORT| / max |ORT|, on the probabilities and on the logits
before the final Softmax, which the test adds as a second graph output), or
is refused naming the operator cnnx lacks (the Reshape of ShuffleNet's
channel shuffle). None may load and give a wrong result. AlexNet, ZFNet-512
and Inception v1 load since LRN (and ceil-mode pooling) came with issue 19.

Random weights: He-normal convolutions, Glorot-like Gemm weights, scales in
[0.5, 1.5], small offsets, and BatchNormalization statistics set near the
real ones of the layer's input (one ONNX Runtime pass) so that activations
stay of order one through 50-120 layers instead of saturating the softmax.
"""

import os
import re
import time

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import cnnx.onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

TOL = 1e-3
LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")

#: architecture -> None (loads and matches) or the operator of its refusal
ZOO = {
    "bvlc_alexnet": None,
    "densenet121": None,
    "inception_v1": None,
    "inception_v2": None,
    "resnet50": None,
    "shufflenet": None,  # its channel shuffle (5-D Reshape, Transpose, Reshape): ChannelShuffle
    "squeezenet": None,
    "vgg19": None,
    "zfnet512": None,
}


def _roles(graph):
    """Constant name -> what it is (so that its random values have a sensible scale)."""
    role = {}
    for n in graph.node:
        if n.op_type == "Conv":
            role[n.input[1]] = "conv"
        elif n.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            role[n.input[1]] = "gemm_t" if trans_b else "gemm"
        elif n.op_type == "BatchNormalization":
            role.update(zip(n.input[1:5], ("scale", "offset", "mean", "var")))
        elif n.op_type == "Mul":
            for i in n.input:
                role.setdefault(i, "scale")
    for n in graph.node:  # a weight reshaped or unsqueezed before use
        if n.op_type in ("Reshape", "Unsqueeze") and n.output[0] in role:
            role.setdefault(n.input[0], role[n.output[0]])
    return role


def randomised(name, seed=0):
    """The light model with seeded random float constants (same shapes).

    The stripped weights are ``ConstantOfShape`` nodes (or small
    initializers); each becomes an initializer of random values.
    """
    path = os.path.join(LIGHT, f"light_{name}.onnx")
    if not os.path.exists(path):
        pytest.skip(f"this onnx has no {path}")
    proto = onnx.load(path)
    g = proto.graph
    rng = np.random.default_rng(seed)
    inits = {i.name: i for i in g.initializer}
    shapes = {i.name: tuple(i.dims) for i in g.initializer if i.data_type == onnx.TensorProto.FLOAT}
    stripped = [n for n in g.node if n.op_type == "ConstantOfShape" and n.input[0] in inits]
    for n in stripped:
        shapes[n.output[0]] = tuple(int(d) for d in numpy_helper.to_array(inits[n.input[0]]))
    role = _roles(g)
    new = {}
    for key, shape in shapes.items():
        r = role.get(key, "offset")
        if r == "conv":
            a = rng.standard_normal(shape, dtype=np.float32)
            a *= np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
        elif r in ("gemm", "gemm_t"):
            fan_in = shape[1] if r == "gemm_t" and len(shape) == 2 else shape[0]
            if len(shape) != 2:
                fan_in = int(np.prod(shape)) // 1000
            a = rng.standard_normal(shape, dtype=np.float32)
            a *= np.float32(np.sqrt(1.0 / fan_in))
        elif r in ("scale", "var"):
            a = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:  # biases, offsets, means
            a = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        new[key] = numpy_helper.from_array(a, key)
    nodes = [n for n in g.node if not any(n is s for s in stripped)]
    used = {i for n in nodes for i in n.input}
    kept = [i for i in g.initializer if i.name not in new and i.name in used]
    kept += [t for k, t in new.items() if k in used]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(kept)
    names = {i.name for i in kept}
    inputs = [i for i in g.input if i.name not in names and i.name in used]
    del g.input[:]
    g.input.extend(inputs)
    return proto


def _session(proto, optimise=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimise:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def calibrate(proto, x, seed=1):
    """Set each BatchNormalization's mean and variance near those of its input on x."""
    g = proto.graph
    bns = [n for n in g.node if n.op_type == "BatchNormalization"]
    if not bns:
        return proto
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    for n in bns:
        probe.graph.output.append(helper.make_empty_tensor_value_info(n.input[0]))
    sess = _session(probe, optimise=False)
    stats = sess.run([n.input[0] for n in bns], {sess.get_inputs()[0].name: x})
    rng = np.random.default_rng(seed)
    inits = {i.name: i for i in g.initializer}
    for n, y in zip(bns, stats):
        axes = (0,) + tuple(range(2, y.ndim))
        m, v = y.mean(axes), y.var(axes)
        mean = m + rng.standard_normal(m.shape) * 0.1 * np.sqrt(v)
        var = v * rng.uniform(0.7, 1.4, v.shape) + 1e-3
        for key, a in ((n.input[3], mean), (n.input[4], var)):
            inits[key].CopyFrom(numpy_helper.from_array(a.astype(np.float32), key))
    return proto


def _with_logits(proto):
    """Add the input of a final Softmax as a second graph output."""
    last = proto.graph.node[-1]
    if last.op_type == "Softmax" and last.output[0] == proto.graph.output[0].name:
        proto.graph.output.append(helper.make_empty_tensor_value_info(last.input[0]))
    return proto


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a


@pytest.mark.parametrize("name", list(ZOO))
def test_light_model(name):
    proto = randomised(name)
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    calibrate(proto, rng.standard_normal(shape).astype(np.float32))
    _with_logits(proto)
    t0 = time.process_time()
    try:
        model = cnnx.onnx.from_onnx(proto)
    except cnnx.onnx.ONNXConversionError as e:
        want = ZOO[name]
        assert want is not None, f"{name} was refused: {e}"
        assert re.match(rf"proto: {want} \(node '[^']*'\): ", str(e)), str(e)
        return
    load_s = time.process_time() - t0
    threads = cnnx.get_num_threads()
    cnnx.set_num_threads(1)
    try:
        gots = model.predict(_nhwc(x))
    finally:
        cnnx.set_num_threads(threads)
    gots = gots if isinstance(gots, list) else [gots]
    del model  # VGG-19's weights: one copy in memory at a time
    sess = _session(proto)
    wants = sess.run(None, {sess.get_inputs()[0].name: x})
    del sess
    assert len(gots) == len(wants)
    for got, want in zip(gots, wants):
        want = _nhwc(want)
        assert got.shape == want.shape
        scale = float(np.abs(want).max())
        assert np.isfinite(got).all() and scale > 0
        err = float(np.abs(got - want).max()) / scale
        assert err < TOL, f"{name}: max |cnnx - ORT| / max |ORT| = {err:.2e}"
    assert ZOO[name] is None, f"{name} now loads and matches: update ZOO"
    assert load_s < 60


def test_light_model_structure():
    """What the joins became (a quick look that the graphs are what they claim)."""
    kinds, models = {}, {}
    for name in ("densenet121", "inception_v2", "resnet50", "squeezenet", "shufflenet"):
        models[name] = model = cnnx.onnx.from_onnx(randomised(name))
        kinds[name] = [type(l).__name__ for l in model.layers]
        assert model.input_shape == (224, 224, 3)
    assert kinds["densenet121"].count("Concatenate") == 58
    # Caffe2's scale-and-shift after each BatchNormalization folds into it
    assert kinds["densenet121"].count("BatchNormalization") == 121
    assert "Conv2D" in kinds["densenet121"] and "Multiply" not in kinds["densenet121"]
    assert kinds["inception_v2"].count("Concatenate") == 10
    assert kinds["squeezenet"].count("Concatenate") == 8
    # each residual Sum with the Relu after it as its activation
    adds = [l for l in models["resnet50"].layers if isinstance(l, cnnx.Add)]
    assert len(adds) == 16 and all(l.activation == "relu" for l in adds)
    # each Reshape-Transpose-Reshape is one channel shuffle; no 5-D reshapes remain
    assert kinds["shufflenet"].count("ChannelShuffle") == 16
    assert "Reshape" not in kinds["shufflenet"] and "Permute" not in kinds["shufflenet"]


def test_most_of_the_zoo_loads():
    assert sum(v is None for v in ZOO.values()) == len(
        ZOO
    )  # all 9 load (LRN and channel shuffle are here)


def test_lrn_networks_structure():
    """AlexNet's, ZFNet-512's and Inception v1's two LRNs each, with their settings."""
    for name, n_lrn in (("bvlc_alexnet", 2), ("zfnet512", 2), ("inception_v1", 2)):
        proto = randomised(name)
        model = cnnx.onnx.from_onnx(proto)
        lrns = [l for l in model.layers if isinstance(l, cnnx.LocalResponseNormalization)]
        assert len(lrns) == n_lrn == sum(n.op_type == "LRN" for n in proto.graph.node)
        want = [n for n in proto.graph.node if n.op_type == "LRN"][0]
        attrs = {a.name: helper.get_attribute_value(a) for a in want.attribute}
        assert lrns[0].size == attrs["size"] and np.isclose(lrns[0].alpha, attrs["alpha"])
        assert np.isclose(lrns[0].bias, attrs["bias"]) and np.isclose(lrns[0].beta, attrs["beta"])
