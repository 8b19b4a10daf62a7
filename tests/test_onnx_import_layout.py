"""ONNX import of the transposed convolution and the layout operators
(onnx/_import_layout.py): the PyTorch-converted single-layer tests the onnx
package ships, models exported by PyTorch (ConvTranspose, Pad, Resize,
PixelShuffle / PixelUnshuffle, channel shuffle as Reshape-Transpose-Reshape,
an H <-> W Transpose), cnnx's own exports read back, and refusals."""

import os

import numpy as np
import pytest

import cnnx

from conftest import torch_or_skip

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

PT_TESTS = [
    "test_ConstantPad2d",
    "test_ConvTranspose2d",
    "test_ConvTranspose2d_no_bias",
    "test_PixelShuffle",
    "test_ReflectionPad2d",
    "test_ReplicationPad2d",
    "test_ZeroPad2d",
]


@pytest.mark.parametrize("name", PT_TESTS)
def test_pytorch_converted_layer_tests(name):
    from onnx import numpy_helper

    base = os.path.join(
        os.path.dirname(onnx.__file__), "backend", "test", "data", "pytorch-converted", name
    )
    if not os.path.isdir(base):
        pytest.skip(f"{name} is not shipped with this onnx")
    m = cnnx.onnx.load(os.path.join(base, "model.onnx"))
    x = numpy_helper.to_array(onnx.load_tensor(os.path.join(base, "test_data_set_0", "input_0.pb")))
    want = numpy_helper.to_array(
        onnx.load_tensor(os.path.join(base, "test_data_set_0", "output_0.pb"))
    )
    y = m.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def _torch_export(torch, module, shape, path):
    module.eval()
    x = torch.randn(*shape)
    kw = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(
        module, (x,), path, input_names=["x"], output_names=["y"], opset_version=17, **kw
    )
    with torch.no_grad():
        return x.numpy(), module(x).numpy()


def test_pytorch_exports(tmp_path):
    torch = torch_or_skip()
    nn = torch.nn
    torch.manual_seed(0)

    class Shuffle(nn.Module):  # ShuffleNet's own code (the exporter has no channel_shuffle)
        def __init__(self, groups):
            super().__init__()
            self.groups = groups

        def forward(self, x):
            n, c, h, w = x.shape
            x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
            return x.view(n, c, h, w)

    class SwapHW(nn.Module):
        def forward(self, x):
            return x.transpose(2, 3)

    nets = {
        "decoder": (
            nn.Sequential(
                nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1),
                nn.ReLU(),
                nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=False),
            ),
            (2, 8, 5, 4),
        ),
        "pads": (
            nn.Sequential(
                nn.ReflectionPad2d((1, 2, 3, 0)),
                nn.ReplicationPad2d(2),
                nn.ZeroPad2d((0, 1, 1, 0)),
                nn.ConstantPad2d(1, -0.5),
            ),
            (2, 3, 6, 5),
        ),
        "shuffles": (
            nn.Sequential(
                nn.Conv2d(4, 16, 1),
                nn.PixelShuffle(2),
                nn.Conv2d(4, 12, 1),
                Shuffle(3),
                nn.PixelUnshuffle(2),
                SwapHW(),
                nn.Conv2d(48, 4, 1),
            ),
            (2, 4, 6, 4),
        ),
    }
    for name, (net, shape) in nets.items():
        path = str(tmp_path / f"{name}.onnx")
        x, want = _torch_export(torch, net, shape, path)
        m = cnnx.onnx.load(path)
        y = m.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5, err_msg=name)


def test_cnnx_exports_read_back(tmp_path):
    rng = np.random.default_rng(0)
    cnnx.set_seed(0)
    x = cnnx.Input((6, 8, 4))
    a = cnnx.Conv2D(8, 3, padding="same", activation="relu")(x)
    a = cnnx.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(a)
    a = cnnx.UpSampling2D((1, 2), interpolation="bilinear")(a)
    a = cnnx.ReflectionPadding2D(1)(a)
    a = cnnx.Cropping2D(((1, 1), (2, 0)))(a)
    a = cnnx.ReplicationPadding2D(((0, 2), (0, 0)))(a)
    a = cnnx.ChannelShuffle(4)(a)
    a = cnnx.SpaceToDepth(2, "CRD")(a)
    a = cnnx.DepthToSpace(2)(cnnx.Conv2D(16, 1)(a))
    y = cnnx.Conv2D(3, 1)(a)
    m = cnnx.Model(x, y)
    path = cnnx.onnx.export(m, str(tmp_path / "m.onnx"))
    m2 = cnnx.onnx.load(path)
    xs = rng.standard_normal((2, 6, 8, 4)).astype(np.float32)
    np.testing.assert_allclose(m2.predict(xs), m.predict(xs), rtol=1e-4, atol=1e-5)


def _one_node_model(tmp_path, node, in_shape, inits=(), opset=17):
    h = onnx.helper
    graph = h.make_graph(
        [node],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, in_shape)],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=list(inits),
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    path = str(tmp_path / "one.onnx")
    onnx.save(model, path)
    return path


def test_unsupported_forms_are_refused_by_name(tmp_path):
    h = onnx.helper
    from cnnx.onnx import ONNXConversionError

    scales = onnx.numpy_helper.from_array(np.array([1, 1, 1.5, 2], np.float32), "s")
    path = _one_node_model(
        tmp_path,
        h.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"),
        [1, 2, 4, 4],
        [scales],
    )
    with pytest.raises(ONNXConversionError, match="integer upsampling"):
        cnnx.onnx.load(path)
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    path = _one_node_model(
        tmp_path,
        h.make_node(
            "Resize",
            ["x", "", "s"],
            ["y"],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        ),
        [1, 2, 4, 4],
        [scales],
    )
    with pytest.raises(ONNXConversionError, match="align_corners"):
        cnnx.onnx.load(path)
    pads = onnx.numpy_helper.from_array(np.array([0, 0, 4, 0, 0, 0, 0, 0], np.int64), "p")
    path = _one_node_model(
        tmp_path, h.make_node("Pad", ["x", "p"], ["y"], mode="reflect"), [1, 2, 4, 4], [pads]
    )
    with pytest.raises(ONNXConversionError, match="reflection pads"):
        cnnx.onnx.load(path)
    path = _one_node_model(
        tmp_path, h.make_node("Pad", ["x", "p"], ["y"], mode="wrap"), [1, 2, 4, 4], [pads], opset=19
    )
    with pytest.raises(ONNXConversionError, match="mode='wrap'"):
        cnnx.onnx.load(path)
