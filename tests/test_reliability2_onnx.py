"""Reliability II (issue 17): hostile ONNX files.

- external data is confined to the model's folder by cnnx itself: a symlink
  leading out, ``../`` and absolute locations, FIFOs and devices are refused
  even when the installed ``onnx`` would follow them (simulated here by
  replacing onnx's loader with a naive one, as onnx 1.15 behaved);
- values that load but could never run (pads of ``2**62``, dilations of
  ``2**40``) are refused naming the attribute;
- an initializer whose dims disagree with its data is named;
- 1,500 nested residual Adds and graphs over ``MAX_NODES`` nodes raise
  ``ONNXConversionError`` naming the limit, while a ResNet-152-sized graph
  and 1,500 consecutive residual blocks load quickly.
"""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import cnnx

onnx = pytest.importorskip("onnx")
import cnnx.onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _graph(nodes, inits, in_shape, out_name, opset=17):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] + list(in_shape))
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _conv_model(seed=0, **conv_attrs):
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **conv_attrs)
    return _graph([conv], [w], (1, 6, 6), "y")


# ---------------------------------------------------------------------------
# external data confined to the model's folder
# ---------------------------------------------------------------------------


def _external_model(folder, location, length=None, offset=None):
    """A Conv model whose weight 'w' claims to live at ``location``."""
    m = _conv_model()
    w = m.graph.initializer[0]
    nbytes = len(w.raw_data) or 2 * 9 * 4
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "length": str(nbytes if length is None else length)}
    if offset is not None:
        entries["offset"] = str(offset)
    for k, v in entries.items():
        e = w.external_data.add()
        e.key, e.value = k, v
    path = folder / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return path


@pytest.fixture
def naive_onnx(monkeypatch):
    """Make the installed onnx follow any external-data location, as old versions did."""
    from onnx import external_data_helper as edh

    def naive(tensor, base_dir):
        info = edh.ExternalDataInfo(tensor)
        with open(os.path.join(base_dir, info.location), "rb") as f:
            if info.offset:
                f.seek(info.offset)
            data = f.read(info.length) if info.length else f.read()
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT

    monkeypatch.setattr(edh, "load_external_data_for_tensor", naive)


@pytest.fixture
def secret(tmp_path):
    s = tmp_path / "outside" / "secret.bin"
    s.parent.mkdir()
    s.write_bytes(np.arange(18, dtype=np.float32).tobytes())  # exactly the weight's size
    folder = tmp_path / "models"
    folder.mkdir()
    return s, folder


def test_symlink_out_of_the_folder_is_refused(secret, naive_onnx):
    s, folder = secret
    os.symlink(s, folder / "weights.bin")
    path = _external_model(folder, "weights.bin")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="outside the model's folder"):
        cnnx.onnx.load(path)
    # a symlinked folder on the way out is the same
    os.symlink(s.parent, folder / "sub")
    with pytest.raises(ValueError, match="outside the model's folder"):
        cnnx.onnx.load(_external_model(folder, "sub/secret.bin"))


@pytest.mark.parametrize(
    "location", ["../outside/secret.bin", "ABS", "sub/../../outside/secret.bin"]
)
def test_paths_out_of_the_folder_are_refused(secret, naive_onnx, location):
    s, folder = secret
    (folder / "sub").mkdir()
    path = _external_model(folder, str(s) if location == "ABS" else location)
    with pytest.raises(ValueError, match="^path: .*outside the model's folder"):
        cnnx.onnx.load(path)


def test_special_files_are_refused(tmp_path, naive_onnx):
    os.symlink("/dev/zero", tmp_path / "zero.bin")
    with pytest.raises(ValueError, match="outside the model's folder"):
        cnnx.onnx.load(_external_model(tmp_path, "zero.bin"))
    (tmp_path / "dir.bin").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        cnnx.onnx.load(_external_model(tmp_path, "dir.bin"))
    try:  # a character device inside the folder (needs CAP_MKNOD)
        os.mknod(tmp_path / "null.bin", 0o600 | 0o020000, os.makedev(1, 3))
    except (OSError, AttributeError):
        pass
    else:
        with pytest.raises(ValueError, match="not a regular file"):
            cnnx.onnx.load(_external_model(tmp_path, "null.bin"))


def test_fifo_is_refused_without_hanging(tmp_path):
    """In a child (a naive reader would block on the FIFO forever)."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = {sys.path!r}
        from onnx import external_data_helper as edh
        def naive(tensor, base_dir):
            with open(os.path.join(base_dir, edh.ExternalDataInfo(tensor).location), "rb") as f:
                tensor.raw_data = f.read()
            del tensor.external_data[:]
        edh.load_external_data_for_tensor = naive
        import cnnx.onnx
        try:
            cnnx.onnx.load(sys.argv[1])
        except ValueError as e:
            print("refused:", e)
    """)
    os.mkfifo(tmp_path / "fifo.bin")
    path = _external_model(tmp_path, "fifo.bin")
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert "refused:" in out.stdout and "not a regular file" in out.stdout, out


def test_byte_range_and_size_are_checked(tmp_path):
    (tmp_path / "w.bin").write_bytes(bytes(72))
    with pytest.raises(ValueError, match="outside 'w.bin'"):
        cnnx.onnx.load(_external_model(tmp_path, "w.bin", offset=8))
    with pytest.raises(ValueError, match="need 72"):
        cnnx.onnx.load(_external_model(tmp_path, "w.bin", length=40))
    ok = cnnx.onnx.load(_external_model(tmp_path, "w.bin"))  # the honest case loads
    assert float(np.abs(ok.layers[0].params["kernel"]).sum()) == 0.0


def test_proto_with_unread_external_data_is_refused(tmp_path):
    m = onnx.load(str(_external_model(tmp_path, "w.bin")), load_external_data=False)
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="external file"):
        cnnx.onnx.from_onnx(m)


# ---------------------------------------------------------------------------
# values that can never run
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attrs,field",
    [
        ({"pads": [2**62] * 4}, "pads"),
        ({"pads": [0, 0, 0, 2**40]}, "pads"),
        ({"dilations": [2**40, 2**40]}, "dilations"),
        ({"dilations": [1, 2**39]}, "dilations"),
        ({"strides": [2**41, 1]}, "strides"),
        ({"strides": [0, 1]}, "strides"),
    ],
)
def test_attributes_that_can_never_run_are_refused(tmp_path, attrs, field):
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(**attrs), str(path))
    with pytest.raises(cnnx.onnx.ONNXConversionError, match=f"^path: Conv .*{field}"):
        cnnx.onnx.load(path)


def test_pool_attributes_that_can_never_run_are_refused(tmp_path):
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2**45, 2**45])
    path = tmp_path / "p.onnx"
    onnx.save(_graph([pool], [], (1, 6, 6), "y"), str(path))
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="strides"):
        cnnx.onnx.load(path)


def test_initializer_dims_that_disagree_with_data_are_named(tmp_path):
    m = _conv_model()
    w = m.graph.initializer[0]
    del w.dims[:]
    w.dims.extend([400, 8])  # 3,200 values claimed, 18 held
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(
        cnnx.onnx.ONNXConversionError,
        match="^path: initializer 'w': dims "
        r"\[400, 8\]",
    ):
        cnnx.onnx.load(path)
    c = numpy_helper.from_array(np.ones(4, np.float32), "c")
    del c.dims[:]
    c.dims.extend([2**40])
    node = helper.make_node("Constant", [], ["k"], value=c)
    relu = helper.make_node("Relu", ["x"], ["y"])
    bad = _graph([node, relu], [], (1, 6, 6), "y")
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="attribute value: dims"):
        cnnx.onnx.from_onnx(bad)


# ---------------------------------------------------------------------------
# graph size and nesting
# ---------------------------------------------------------------------------


def _nested_adds(depth):
    """y_{i+1} = Relu(y_i) + x: each Add's block holds the previous Add."""
    nodes, cur = [], "x"
    for i in range(depth):
        nodes.append(helper.make_node("Relu", [cur], [f"r{i}"]))
        nodes.append(helper.make_node("Add", [f"r{i}", "x"], [f"a{i}"]))
        cur = f"a{i}"
    return _graph(nodes, [], (2, 4, 4), cur)


def _consecutive_blocks(n, convs=0, seed=0):
    """n residual blocks in a row (a ResNet's shape): y = y + Conv/Relu(y)."""
    rng = np.random.default_rng(seed)
    nodes, inits, cur = [], [], "x"
    for i in range(n):
        h = cur
        for j in range(convs):
            w = numpy_helper.from_array(
                (rng.standard_normal((2, 2, 3, 3)) * 0.1).astype(np.float32), f"w{i}_{j}"
            )
            inits.append(w)
            nodes.append(helper.make_node("Conv", [h, w.name], [f"c{i}_{j}"], pads=[1] * 4))
            nodes.append(helper.make_node("Relu", [f"c{i}_{j}"], [f"cr{i}_{j}"]))
            h = f"cr{i}_{j}"
        if not convs:
            nodes.append(helper.make_node("Relu", [h], [f"r{i}"]))
            h = f"r{i}"
        nodes.append(helper.make_node("Add", [h, cur], [f"a{i}"]))
        cur = f"a{i}"
    return _graph(nodes, inits, (2, 4, 4), cur)


def test_deeply_nested_residual_adds_load_without_recursion():
    """The graph loader turns any DAG into a flat functional model (no nested
    Residual layers), so 1,500 nested residual Adds load in linear time with
    no RecursionError anywhere (building, running, saving)."""
    for depth in (63, 1500):
        t = time.process_time()
        m = cnnx.onnx.from_onnx(_nested_adds(depth))
        assert time.process_time() - t < 30
        x = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype(np.float32)
        ref = x.copy()
        for _ in range(depth):
            ref = np.maximum(ref, 0) + x
        np.testing.assert_allclose(m.predict(x), ref, rtol=1e-5)
    assert max(len(l.sublayers()) for l in m.layers) == 0  # nothing nested


def test_too_many_nodes_is_refused_quickly():
    n = cnnx.onnx.MAX_NODES + 1
    nodes = [
        helper.make_node("Relu", ["x" if i == 0 else f"v{i - 1}"], [f"v{i}"]) for i in range(n)
    ]
    m = _graph(nodes, [], (2, 4, 4), f"v{n - 1}")
    t = time.process_time()
    with pytest.raises(cnnx.onnx.ONNXConversionError, match="MAX_NODES = 100000"):
        cnnx.onnx.from_onnx(m)
    assert time.process_time() - t < 5


def test_resnet152_sized_and_long_graphs_load():
    # ResNet-152: 50 bottleneck blocks, ~500 nodes; here 50 blocks of 3 convs
    t = time.process_time()
    m = cnnx.onnx.from_onnx(_consecutive_blocks(50, convs=3))
    assert sum(isinstance(l, cnnx.Add) for l in m.layers) == 50
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 2)).astype(np.float32)
    assert np.isfinite(m.predict(x)).all()
    # 1,500 blocks in a row (4,500 nodes) is long, not deep: it loads, in linear time
    m = cnnx.onnx.from_onnx(_consecutive_blocks(1500))
    assert sum(isinstance(l, cnnx.Add) for l in m.layers) == 1500
    assert time.process_time() - t < 30
