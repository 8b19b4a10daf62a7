"""Real networks: cnnx vs ONNX Runtime and PyTorch at 224x224, and CIFAR-size training (issue 20).

    python benchmarks/bench_models.py                      # everything: 2 threads, 3 rounds
    python benchmarks/bench_models.py --quick              # smoke run: small sizes, 1 round
    python benchmarks/bench_models.py --cases resnet50 train --rounds 5 --json out.json
    python benchmarks/bench_models.py --relu               # MobileNetV2 with ReLU in place of ReLU6
    python benchmarks/bench_models.py --threads 1 --cpu-time   # ratios on a busy machine

Cases (``--cases`` takes case ids, model names or the parts ``infer``, ``train``, ``memory``):

- ``infer/resnet18``, ``infer/mobilenetv2`` (ReLU6), ``infer/mobilenetv2-relu`` (ReLU in
  place of ReLU6): written here in PyTorch from their papers (He et al. 2015; Sandler et
  al. 2018), seeded He-normal weights, batch norm in eval mode with randomised running
  statistics, exported with ``torch.onnx.export`` (opset 17, TorchScript exporter) and
  imported with ``cnnx.onnx.load``. ReLU6 exports as ``Clip``. By default MobileNetV2 runs
  with ReLU6, and when cnnx refuses its ``Clip`` the ReLU variant is timed in its place and
  the output says so; ``--relu6`` times ReLU6 only (a refusal shows as "refused", the peers
  still timed), ``--relu`` the ReLU variant only, ``--both-acts`` both.
- ``infer/resnet50``, ``infer/squeezenet``: the ``onnx`` package's model-zoo graphs
  (``backend/test/data/light``). Their weights are stripped (``ConstantOfShape`` nodes):
  every weight becomes a seeded random initializer of its shape (He-normal convolutions,
  positive batch-norm variances), the last layer is scaled so that the logits have a
  standard deviation of about 2 (a softmax far from one-hot, so the output check means
  something), the batch dimension is made free, and ResNet-50's ``Reshape`` to ``(1, 2048)``
  becomes ``(-1, 2048)`` so that batch 16 runs. cnnx and ONNX Runtime load that same file.
- ``train/resnet20`` (He et al.'s CIFAR ResNet: 3 stages of 3 basic blocks, 16/32/64
  channels, batch norm, 1x1 projection shortcuts) and ``train/mobilenetv2`` (MobileNetV2's
  inverted residual blocks at 32x32, CIFAR strides; ReLU6 when cnnx has a ``ReLU6`` layer,
  else ReLU in both frameworks, and the output says which):
  built in cnnx (``Sequential`` + ``Residual``) and as the same PyTorch module, the cnnx
  weights copied into it. SGD (momentum 0.9) + cross-entropy, the step of bench_train.py.
- ``memory/resnet20``: peak RSS of one ResNet-20 training process per batch size (its
  ``VmHWM``: on Linux ``ru_maxrss`` also counts the parent's RSS at fork time) minus its
  RSS once the model and the batches exist, per image; and the cost of one more image
  (the peak's slope between the two largest batches).

Method (as bench_infer.py and bench_train.py): each framework runs in its own process
(two OpenMP runtimes in one process steal each other's cores); the processes alternate in a
rotating order for ``--rounds`` rounds and the best round of each is kept; inputs come
from a pool of random batches. Before any timing, each worker checks its own output against
a reference computed in the parent (PyTorch eager for the PyTorch-defined models, ONNX
Runtime without graph optimisations for the zoo graphs, PyTorch eager SGD steps for
training: losses and every weight after 3 steps) and stops loudly when they disagree, so a
wrong result is never timed. An FMA-peak micro-benchmark (``cnnx._core.measure_fma_peak``)
runs at the start and end of the same run; each inference case reports GFLOP/s and % of
that peak, with FLOPs counted from the ONNX graph (convolutions and dense layers,
multiply-add = 2). Ratios are the peer's time over cnnx's time: above 1 means cnnx is faster.

- ONNX Runtime: CPU execution provider, ``ORT_ENABLE_ALL``, ``intra_op_num_threads`` =
  threads, ``inter_op_num_threads`` = 1, sequential execution, NCHW input.
- PyTorch: channels_last, ``torch.inference_mode`` (inference), ``set_num_threads(threads)``,
  one inter-op thread; the NHWC batches are viewed as channels_last tensors (no copy).
- cnnx: ``model.predict(x, batch_size=batch)`` and ``model.train_on_batch(x, y)``.

No NumPy/OpenBLAS process is timed here, so ``OPENBLAS_*`` is left as it is.
"""

import argparse
import functools
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

FRAMEWORKS = ("cnnx", "onnxruntime", "torch")
INFER_MODELS = ("resnet18", "mobilenetv2", "mobilenetv2-relu", "resnet50", "squeezenet")
ZOO_FILES = {"resnet50": "light_resnet50.onnx", "squeezenet": "light_squeezenet.onnx"}
TRAIN_NETS = ("resnet20", "mobilenetv2")
MEMORY_NETS = ("resnet20",)
CHECK_IMAGES = 2  # images in the inference output check
# the training check compares one SGD step: at float32 a second step of a random
# MobileNetV2 on random data already differs by ~40% between PyTorch and PyTorch in float64
CHECK_STEPS = 1
LR = 0.01  # small, so random labels never drive the timed nets to NaN
POOL_IMAGES = {"infer": 64, "train": 1024}
# the workers' clock: wall time, or this process's CPU time with --cpu-time (1 thread)
CLOCK = time.perf_counter


def _log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# PyTorch models, written from the papers
# ---------------------------------------------------------------------------


def _torch_classes():
    """The module classes (defined lazily: importing this file must not need torch)."""
    import torch.nn as nn

    class BasicBlock(nn.Module):
        """ResNet's basic block: two 3x3 convs; a 1x1 projection when the shape changes."""

        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + (x if self.down is None else self.down(x)))

    class ResNet(nn.Module):
        """ResNet-18 (ImageNet stem) or the CIFAR ResNet-20 (3x3 stem, no pooling)."""

        def __init__(self, widths, blocks, num_classes, cifar):
            super().__init__()
            w0 = widths[0]
            if cifar:
                stem = [
                    nn.Conv2d(3, w0, 3, 1, 1, bias=False),
                    nn.BatchNorm2d(w0),
                    nn.ReLU(inplace=True),
                ]
            else:
                stem = [
                    nn.Conv2d(3, w0, 7, 2, 3, bias=False),
                    nn.BatchNorm2d(w0),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2, 1),
                ]
            layers, cin = [], w0
            for i, (c, n) in enumerate(zip(widths, blocks)):
                for j in range(n):
                    layers.append(BasicBlock(cin, c, 2 if i > 0 and j == 0 else 1))
                    cin = c
            self.features = nn.Sequential(*stem, *layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    class InvertedResidual(nn.Module):
        """MobileNetV2's block: 1x1 expand, depthwise 3x3, linear 1x1 projection."""

        def __init__(self, cin, cout, stride, expand, act):
            super().__init__()
            hidden = cin * expand
            layers = []
            if expand != 1:
                layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()]
            layers += [
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden),
                act(),
                nn.Conv2d(hidden, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            ]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, cfg, stem_stride, last, num_classes, relu6):
            super().__init__()
            act = (lambda: nn.ReLU6(inplace=True)) if relu6 else (lambda: nn.ReLU(inplace=True))
            layers = [nn.Conv2d(3, 32, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(32), act()]
            cin = 32
            for t, c, n, s in cfg:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t, act))
                    cin = c
            layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), act()]
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(last, num_classes)

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))

    return ResNet, MobileNetV2


# MobileNetV2's table 2 (expansion t, channels c, repeats n, stride s) ...
MOBILENETV2_CFG = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
# ... and its usual CIFAR form: stem and second stage at stride 1 (32x32 -> 4x4 at the end)
MOBILENETV2_CIFAR_CFG = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def torch_model(name, num_classes=1000):
    """An ImageNet model of the ``infer`` part, random weights (not yet randomised BN)."""
    ResNet, MobileNetV2 = _torch_classes()
    if name == "resnet18":
        return ResNet((64, 128, 256, 512), (2, 2, 2, 2), num_classes, cifar=False)
    if name in ("mobilenetv2", "mobilenetv2-relu"):
        return MobileNetV2(MOBILENETV2_CFG, 2, 1280, num_classes, relu6=name == "mobilenetv2")
    raise ValueError(f"name: no PyTorch model {name!r}")


def randomise_torch(net, seed=0, size=224):
    """Seeded He-normal conv weights; batch norm with a random affine part and random
    running statistics: those of random images (as a trained network's statistics match
    its data, so activations stay near unit scale through the depth), then perturbed."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2 / fan_in))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.reset_running_stats()
                m.momentum = None  # a plain average over the calibration pass
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(m.in_features))
                m.bias.copy_(0.01 * torch.randn(m.out_features, generator=g))
        net.train()
        net(torch.randn((4, 3, size, size), generator=g))
        for m in bns:
            c = m.num_features
            m.momentum = 0.1
            m.running_mean.add_(0.1 * m.running_var.sqrt() * torch.randn(c, generator=g))
            m.running_var.mul_(torch.exp(0.2 * torch.randn(c, generator=g)))
    return net.eval()


def export_torch(net, path, size=224):
    """``torch.onnx.export`` with the TorchScript exporter, opset 17, free batch size."""
    import torch

    x = torch.zeros(1, 3, size, size)
    torch.onnx.export(
        net,
        (x,),
        path,
        opset_version=17,
        dynamo=False,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
    )


# ---------------------------------------------------------------------------
# the onnx model zoo's graphs with random weights
# ---------------------------------------------------------------------------


def zoo_source(name):
    import onnx

    return os.path.join(
        os.path.dirname(onnx.__file__), "backend", "test", "data", "light", ZOO_FILES[name]
    )


def fill_zoo(src, dst, seed=0, logit_std=2.0):
    """Write ``src`` (a stripped zoo graph) to ``dst`` with seeded random weights.

    Every ``ConstantOfShape`` that stands for a weight becomes an initializer and every
    float initializer a node reads is refilled by role; anything else fails loudly.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(src)
    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    shapes, nodes = {}, []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shapes[node.output[0]] = tuple(int(d) for d in inits[node.input[0]])
        else:
            nodes.append(node)
    role = {}
    for node in nodes:
        ins = list(node.input)
        if node.op_type == "BatchNormalization":
            for name, r in zip(ins[1:5], ("bn_scale", "bn_bias", "bn_mean", "bn_var")):
                role[name] = r
        elif node.op_type in ("Conv", "Gemm"):
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            role[ins[1]] = (
                "conv_w" if node.op_type == "Conv" else ("gemm_w_t" if trans_b else "gemm_w")
            )
            if len(ins) > 2 and ins[2]:
                role[ins[2]] = "bias"
    rng = np.random.default_rng(seed)
    used = {i for node in nodes for i in node.input}
    arrays = {}
    for name in sorted(used):
        if name in shapes:
            shape = shapes[name]
        elif name in inits and inits[name].dtype == np.float32:
            shape = inits[name].shape
        else:
            continue
        r = role.get(name)
        if r is None:
            raise ValueError(f"{src}: float constant {name!r} has no known role")
        if r == "conv_w":
            a = rng.standard_normal(shape) * math.sqrt(2 / math.prod(shape[1:]))
        elif r in ("gemm_w", "gemm_w_t"):
            fan_in = shape[1] if r == "gemm_w_t" else shape[0]
            a = rng.standard_normal(shape) / math.sqrt(fan_in)
        elif r == "bias":
            a = 0.01 * rng.standard_normal(shape)
        elif r in ("bn_scale", "bn_var"):
            a = 0.5 + rng.random(shape)
        else:
            a = 0.1 * rng.standard_normal(shape)
        arrays[name] = a.astype(np.float32)
    keep = [
        numpy_helper.from_array(inits[n], n)
        for n in sorted(used)
        if n in inits and n not in arrays and n not in shapes
    ]
    for t in keep:  # the Reshape to (1, features) after the pooling: any batch
        if t.data_type == onnx.TensorProto.INT64 and list(t.dims) == [2]:
            v = numpy_helper.to_array(t).copy()
            if v[0] == 1:
                v[0] = -1
                t.CopyFrom(numpy_helper.from_array(v, t.name))
    data = [i for i in g.input if i.name not in inits]
    if len(data) != 1:
        raise ValueError(f"{src}: expected one data input, got {[i.name for i in data]}")
    data[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for o in g.output:
        o.type.tensor_type.shape.dim[0].dim_param = "N"
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(keep + [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    del g.input[:]
    g.input.extend(data)
    del g.value_info[:]
    proto.ir_version = max(proto.ir_version, 4)  # initializers that are not graph inputs
    onnx.checker.check_model(proto)

    # the logits' scale: run once, then scale the last weighted layer (everything after it
    # is positively homogeneous: ReLU, pooling) so that the softmax is not saturated
    last = next(n for n in reversed(nodes) if n.op_type in ("Conv", "Gemm"))
    soft = next(n for n in nodes if n.op_type == "Softmax")
    probe = onnx.helper.make_tensor_value_info(soft.input[0], onnx.TensorProto.FLOAT, None)
    g.output.append(probe)
    x = np.random.default_rng(seed + 1).standard_normal((4,) + _zoo_chw(proto)).astype(np.float32)
    logits = _ort_session(proto.SerializeToString(), 1, optimise=False).run(
        [soft.input[0]], {data[0].name: x}
    )[0]
    g.output.pop()
    k = logit_std / float(np.std(logits))
    for _i, name in enumerate(last.input[1:3]):
        t = next(t for t in g.initializer if t.name == name)
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(k), name))
    onnx.save(proto, dst)


def _zoo_chw(proto):
    d = proto.graph.input[0].type.tensor_type.shape.dim
    return tuple(int(x.dim_value) for x in d[1:])


def _ort_session(model, threads, optimise=True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimise
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def conv_dense_flops(path):
    """FLOPs per image of the Conv and Gemm/MatMul nodes of an ONNX file (multiply-add = 2)."""
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(path))
    g = proto.graph
    dims = {}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        dims[v.name] = [
            d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim
        ]
    inits = {i.name: tuple(i.dims) for i in g.initializer}
    total = 0
    for node in g.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]  # (C_out, C_in / groups, kh, kw)
            out = dims[node.output[0]]  # (N, C_out, H, W)
            total += 2 * out[1] * out[2] * out[3] * math.prod(w[1:])
        elif node.op_type in ("Gemm", "MatMul"):
            w = inits.get(node.input[1])
            if w is not None:
                total += 2 * math.prod(w)
    return total


# ---------------------------------------------------------------------------
# the training networks, in cnnx and in PyTorch with the same weights
# ---------------------------------------------------------------------------


def _conv_bn(cnnx, c, k, s, relu, groups=1, act=None):
    layers = [
        cnnx.Conv2D(c, k, strides=s, padding=k // 2, groups=groups, use_bias=False),
        cnnx.BatchNormalization(momentum=0.9, epsilon=1e-5),
    ]
    return layers + ([(act or cnnx.ReLU)()] if relu else [])


def cnnx_resnet20(size=32, widths=(16, 32, 64), blocks=3, num_classes=10):
    """He et al.'s CIFAR ResNet (6n+2 layers, n = blocks) with 1x1 projection shortcuts."""
    import cnnx

    layers, cin = _conv_bn(cnnx, widths[0], 3, 1, True), widths[0]
    for i, c in enumerate(widths):
        for j in range(blocks):
            s = 2 if i > 0 and j == 0 else 1
            short = None if s == 1 and cin == c else _conv_bn(cnnx, c, 1, s, False)
            layers.append(
                cnnx.Residual(
                    _conv_bn(cnnx, c, 3, s, True) + _conv_bn(cnnx, c, 3, 1, False), shortcut=short
                )
            )
            cin = c
    layers += [cnnx.GlobalAvgPool2D(), cnnx.Dense(num_classes, activation="softmax")]
    return cnnx.Sequential(layers, input_shape=(size, size, 3))


def torch_resnet20(widths=(16, 32, 64), blocks=3, num_classes=10):
    ResNet, _ = _torch_classes()
    return ResNet(widths, (blocks,) * len(widths), num_classes, cifar=True)


def train_relu6():
    """Whether the training MobileNetV2 uses ReLU6: only if this cnnx has the layer."""
    import cnnx

    return hasattr(cnnx, "ReLU6")


def cnnx_mobilenetv2(size=32, cfg=MOBILENETV2_CIFAR_CFG, last=1280, num_classes=10, relu6=None):
    """MobileNetV2 at CIFAR size; ReLU6 if cnnx has it (``relu6=None``), else ReLU."""
    import cnnx

    relu6 = train_relu6() if relu6 is None else relu6
    act = cnnx.ReLU6 if relu6 else cnnx.ReLU
    layers, cin = _conv_bn(cnnx, 32, 3, 1, True, act=act), 32
    for t, c, n, s in cfg:
        for i in range(n):
            stride, hidden = (s if i == 0 else 1), cin * t
            block = _conv_bn(cnnx, hidden, 1, 1, True, act=act) if t != 1 else []
            block += _conv_bn(cnnx, hidden, 3, stride, True, groups=hidden, act=act)
            block += _conv_bn(cnnx, c, 1, 1, False)
            if stride == 1 and cin == c:
                layers.append(cnnx.Residual(block, activation=None))
            else:
                layers += block
            cin = c
    layers += _conv_bn(cnnx, last, 1, 1, True, act=act)
    layers += [cnnx.GlobalAvgPool2D(), cnnx.Dense(num_classes, activation="softmax")]
    return cnnx.Sequential(layers, input_shape=(size, size, 3))


def torch_mobilenetv2(cfg=MOBILENETV2_CIFAR_CFG, last=1280, num_classes=10, relu6=False):
    """``relu6`` is passed by the parent, which knows what cnnx has (torch processes never
    import cnnx)."""
    _, MobileNetV2 = _torch_classes()
    return MobileNetV2(cfg, 1, last, num_classes, relu6=relu6)


# the networks of the train and memory parts: (cnnx builder, torch builder), each called
# with relu6= (the parent's choice, from what cnnx has; ResNet-20 ignores it)
TRAIN_BUILDERS = {
    "resnet20": (lambda relu6: cnnx_resnet20(), lambda relu6: torch_resnet20()),
    "mobilenetv2": (
        lambda relu6: cnnx_mobilenetv2(relu6=relu6),
        lambda relu6: torch_mobilenetv2(relu6=relu6),
    ),
}


def _cnnx_weighted_layers(layers):
    import cnnx

    for layer in layers:
        if isinstance(layer, cnnx.Residual):
            yield from _cnnx_weighted_layers(layer.block)
            yield from _cnnx_weighted_layers(layer.shortcut or [])
        elif isinstance(layer, (cnnx.Conv2D, cnnx.BatchNormalization, cnnx.Dense)):
            yield layer


def _pairs(model, net):
    """(cnnx layer, torch module) in order; their kinds and shapes are checked."""
    import torch.nn as nn

    import cnnx

    mods = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    ours = list(_cnnx_weighted_layers(model.layers))
    if len(ours) != len(mods):
        raise ValueError(f"{len(ours)} cnnx layers with weights vs {len(mods)} torch modules")
    kinds = {cnnx.Conv2D: nn.Conv2d, cnnx.BatchNormalization: nn.BatchNorm2d, cnnx.Dense: nn.Linear}
    for a, b in zip(ours, mods):
        if not isinstance(b, kinds[type(a)]):
            raise ValueError(f"{a.name} ({type(a).__name__}) vs {type(b).__name__}")
    return list(zip(ours, mods))


def _torch_view(layer):
    """The cnnx layer's trainable arrays in PyTorch's layout, by torch parameter name."""
    import cnnx

    p = layer.params
    if isinstance(layer, cnnx.Conv2D):
        out = {"weight": p["kernel"].transpose(3, 2, 0, 1)}
        if layer.use_bias:
            out["bias"] = p["bias"]
        return out
    if isinstance(layer, cnnx.Dense):
        return {"weight": p["kernel"].T, "bias": p["bias"]}
    return {"weight": p["gamma"], "bias": p["beta"]}


def copy_to_torch(model, net):
    """Copy the cnnx model's weights (and BN statistics) into the torch module ``net``."""
    import numpy as np
    import torch

    with torch.no_grad():
        for layer, m in _pairs(model, net):
            for k, a in _torch_view(layer).items():
                t = getattr(m, k)
                if tuple(t.shape) != a.shape:
                    raise ValueError(f"{layer.name}.{k}: {a.shape} vs torch {tuple(t.shape)}")
                t.copy_(torch.from_numpy(np.ascontiguousarray(a)))
            if hasattr(m, "running_mean"):
                m.running_mean.copy_(torch.from_numpy(layer.buffers["moving_mean"].copy()))
                m.running_var.copy_(torch.from_numpy(layer.buffers["moving_var"].copy()))
    return net


def weights_of_cnnx(model):
    import numpy as np

    return {
        f"{i}.{k}": np.array(a, np.float32)
        for i, layer in enumerate(_cnnx_weighted_layers(model.layers))
        for k, a in _torch_view(layer).items()
    }


def weights_of_torch(net):
    import torch.nn as nn

    mods = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    return {
        f"{i}.{k}": getattr(m, k).detach().numpy().copy()
        for i, m in enumerate(mods)
        for k in ("weight", "bias")
        if getattr(m, k, None) is not None
    }


def cnnx_trainer(build_cnnx, lr=LR, seed=0):
    """The cnnx network from seeded initial weights, compiled for SGD (momentum 0.9)."""
    import cnnx

    cnnx.set_seed(seed)
    model = build_cnnx()
    model.compile(optimizer=cnnx.optim.SGD(lr=lr, momentum=0.9), loss="cross_entropy")
    return model


def torch_trainer(build_torch, state, lr=LR, channels_last=True, dtype=None):
    """The PyTorch network with the weights ``state`` (cnnx's, copied), and its optimiser."""
    import torch

    net = build_torch()
    net.load_state_dict(state)
    if dtype is not None:
        net = net.to(dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    return net, torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)


def torch_train_step(net, opt, x, y):
    """bench_train.py's step."""
    import torch.nn.functional as F

    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def check_batches(size, batch=16, n=None, seed=2):
    import numpy as np

    n = CHECK_STEPS if n is None else n
    rng = np.random.default_rng(seed)
    return [
        (
            rng.standard_normal((batch, size, size, 3)).astype(np.float32),
            rng.integers(0, 10, batch).astype(np.int64),
        )
        for _ in range(n)
    ]


def nchw(x, channels_last=False, dtype=None):
    """A torch tensor of NHWC array ``x``: a copy in NCHW, or a free channels_last view."""
    import numpy as np
    import torch

    t = (
        torch.from_numpy(x).permute(0, 3, 1, 2)
        if channels_last
        else torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    )
    return t if dtype is None else t.to(dtype)


def train_check_run(fw, model, net=None, opt=None, size=32, channels_last=True, dtype=None):
    """Losses and weights (before, after) of CHECK_STEPS SGD steps on the check batches."""
    import numpy as np

    out = {}
    if fw == "cnnx":
        out.update({"w0/" + k: v for k, v in weights_of_cnnx(model).items()})
        losses = [float(model.train_on_batch(x, y)) for x, y in check_batches(size)]
        out.update({"w1/" + k: v for k, v in weights_of_cnnx(model).items()})
    else:
        import torch

        out.update({"w0/" + k: v for k, v in weights_of_torch(net).items()})
        losses = [
            torch_train_step(net, opt, nchw(x, channels_last, dtype), torch.from_numpy(y))
            for x, y in check_batches(size)
        ]
        out.update({"w1/" + k: v for k, v in weights_of_torch(net).items()})
    out["losses"] = np.array(losses, np.float64)
    return out


def train_check_errors(got, ref):
    """(worst relative loss error, relative L2 error of the whole weight change, worst
    relative L2 error of one array's change among the arrays that carry at least 1e-4 of
    the change's squared norm, that array's name)."""
    import numpy as np

    losses = float(np.max(np.abs(got["losses"] - ref["losses"]) / np.abs(ref["losses"])))
    per, num, den = [], 0.0, 0.0
    for k in ref:
        if k.startswith("w1/"):
            w0 = "w0/" + k[3:]
            d_ref = np.asarray(ref[k], np.float64) - ref[w0]
            d_got = np.asarray(got[k], np.float64) - got[w0]
            e, n = float(((d_got - d_ref) ** 2).sum()), float((d_ref**2).sum())
            num, den = num + e, den + n
            per.append((n, e, k[3:]))
    den = max(den, 1e-300)
    worst, where = max(((e / max(n, 1e-300)) ** 0.5, k) for n, e, k in per if n >= 1e-4 * den)
    return losses, (num / den) ** 0.5, worst, where


# ---------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------


def time_per_call(step, n, seconds, min_calls=3):
    """Mean seconds of ``step(i)`` over at least ``seconds`` and ``min_calls`` calls, after
    two warm-up calls (the first compiles plans, allocates, pages in)."""
    for i in range(2):
        step(i % n)
    calls = 0
    t0 = CLOCK()
    while True:
        step(calls % n)
        calls += 1
        t = CLOCK() - t0
        if calls >= min_calls and t >= seconds:
            return t / calls


def rss_bytes():
    """The current resident set size (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes():
    """This process's peak RSS: ``VmHWM`` on Linux, else ``ru_maxrss``.

    On Linux ``getrusage(RUSAGE_SELF).ru_maxrss`` keeps the high-water mark of the image
    that called exec, i.e. of the parent at fork time (measured here: every worker
    reported the parent's 995 MB); VmHWM belongs to this process's own memory map.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def rel_err(out, ref):
    """max |out - ref| over the reference output's scale (its max |value|)."""
    import numpy as np

    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} vs reference {ref.shape}")
    if not np.all(np.isfinite(out)):
        return math.inf
    return float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-30))


class WrongResult(Exception):
    pass


# ---------------------------------------------------------------------------
# workers: one framework, one case, in this process
# ---------------------------------------------------------------------------


def _threads(fw, threads):
    if fw == "cnnx":
        import cnnx

        cnnx.set_num_threads(threads)
    elif fw == "torch":
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass


def _version(fw):
    mod = {"cnnx": "cnnx", "onnxruntime": "onnxruntime", "torch": "torch"}[fw]
    return __import__(mod).__version__


def infer_worker(fw, model_name, batch, threads, seconds, tmp, tol):
    import numpy as np

    _threads(fw, threads)
    path = os.path.join(tmp, f"{model_name}.onnx")
    check_x = np.load(os.path.join(tmp, f"{model_name}.check_x.npy"))
    ref = np.load(os.path.join(tmp, f"{model_name}.ref.npy"))
    size = check_x.shape[1]
    rng = np.random.default_rng(1)
    n = max(4, min(32, POOL_IMAGES["infer"] // batch))
    xs = [rng.standard_normal((batch, size, size, 3)).astype(np.float32) for _ in range(n)]
    res = {"version": _version(fw)}
    if fw == "cnnx":
        import cnnx
        import cnnx.onnx

        try:
            model = cnnx.onnx.load(path)
        except (cnnx.onnx.ONNXConversionError, NotImplementedError) as e:
            return {"refused": f"{type(e).__name__}: {e}", **res}
        out = model.predict(check_x)
        try:  # the plan's own count (all ops), next to the ONNX graph's conv/dense count
            res["plan_flops"] = model._inference_plan().plan.flops_per_image
        except Exception:  # noqa: BLE001 - a private detail; the table does not need it
            pass

        def step(i):
            model.predict(xs[i], batch_size=batch)
    elif fw == "onnxruntime":
        sess = _ort_session(path, threads)
        name = sess.get_inputs()[0].name
        xs = [np.ascontiguousarray(x.transpose(0, 3, 1, 2)) for x in xs]
        out = sess.run(None, {name: np.ascontiguousarray(check_x.transpose(0, 3, 1, 2))})[0]

        def step(i):
            sess.run(None, {name: xs[i]})
    else:
        import torch

        net = torch_model(model_name)
        net.load_state_dict(torch.load(os.path.join(tmp, f"{model_name}.pt")))
        net = net.eval().to(memory_format=torch.channels_last)
        txs = [nchw(x, channels_last=True) for x in xs]
        assert txs[0].is_contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = net(nchw(check_x, channels_last=True)).numpy()

        def step(i):
            with torch.inference_mode():
                net(txs[i])

    out = np.asarray(out).reshape(ref.shape)
    res["err"] = rel_err(out, ref)
    if not res["err"] <= tol:
        raise WrongResult(
            f"{fw} {model_name}: output differs from the reference by "
            f"{res['err']:.2e} of its scale (tolerance {tol:g}); not timed"
        )
    res["seconds"] = time_per_call(step, len(xs), seconds)
    return res


def _train_pool(batch, size, n_max):
    import numpy as np

    rng = np.random.default_rng(1)
    n = max(2, min(n_max, POOL_IMAGES["train"] // batch))
    return [
        (
            rng.standard_normal((batch, size, size, 3)).astype(np.float32),
            rng.integers(0, 10, batch).astype(np.int64),
        )
        for _ in range(n)
    ]


def _trainer(fw, net_name, tmp, builders, relu6):
    """(cnnx model, None, None) or (None, torch net, optimiser), fresh from the start weights.

    The PyTorch process reads cnnx's start weights from the parent's file: it never
    imports cnnx, so its memory is PyTorch's alone (and cnnx's process never imports torch).
    """
    build_cnnx, build_torch = (functools.partial(b, relu6=relu6) for b in builders[net_name])
    if fw == "cnnx":
        return cnnx_trainer(build_cnnx), None, None
    import torch

    state = torch.load(os.path.join(tmp, f"train-{net_name}.pt"))
    return (None,) + torch_trainer(build_torch, state)


def _step_fn(fw, trainer, pool):
    model, net, opt = trainer
    if fw == "cnnx":
        return lambda i: model.train_on_batch(*pool[i])
    import torch

    tp = [(nchw(x, channels_last=True), torch.from_numpy(y)) for x, y in pool]
    return lambda i: torch_train_step(net, opt, *tp[i])


def train_worker(fw, net_name, batch, threads, seconds, tmp, tol, builders=None):
    import numpy as np

    builders = builders or TRAIN_BUILDERS
    _threads(fw, threads)
    ref = dict(np.load(os.path.join(tmp, f"train-{net_name}.ref.npz")))
    size, relu6 = int(ref["size"]), bool(ref["relu6"])
    trainer = _trainer(fw, net_name, tmp, builders, relu6)
    got = train_check_run(fw, *trainer, size=size)
    loss_err, w_err, w_worst, where = train_check_errors(got, ref)
    if not (loss_err <= tol and w_err <= 50 * tol and w_worst <= 200 * tol):
        raise WrongResult(
            f"{fw} {net_name}: one SGD step differs from the float64 reference "
            f"(loss by {loss_err:.2e}, weight change by {w_err:.2e}, that of "
            f"{where} by {w_worst:.2e}); not timed"
        )
    trainer = _trainer(fw, net_name, tmp, builders, relu6)  # the timed steps start afresh
    pool = _train_pool(batch, size, 64)
    return {
        "version": _version(fw),
        "err": loss_err,
        "w_err": w_err,
        "seconds": time_per_call(_step_fn(fw, trainer, pool), len(pool), seconds),
    }


def memory_worker(fw, net_name, batch, threads, tmp, steps=3, builders=None):
    import gc

    import numpy as np

    _threads(fw, threads)
    with np.load(os.path.join(tmp, f"train-{net_name}.ref.npz")) as ref:
        size, relu6 = int(ref["size"]), bool(ref["relu6"])
    trainer = _trainer(fw, net_name, tmp, builders or TRAIN_BUILDERS, relu6)
    pool = _train_pool(batch, size, 2)
    step = _step_fn(fw, trainer, pool)
    gc.collect()
    base = rss_bytes()
    for i in range(steps):
        step(i % len(pool))
    peak = peak_rss_bytes()
    return {"version": _version(fw), "base": base, "peak": peak, "per_image": (peak - base) / batch}


def peak_worker(threads):
    from cnnx import _core

    res = {
        "peak": max(_core.measure_fma_peak(threads) for _ in range(3)),
        "peak_1t": max(_core.measure_fma_peak(1) for _ in range(3)),
        "isa": _core.active_isa(),
    }
    if CLOCK is time.process_time:
        # the same FMA chains timed by CPU time, as the cases are: the call runs them twice
        # (warm-up, then timed), 24 zmm or 12 ymm chains of 16 or 8 lanes, 2 flops per FMA
        iters = 20_000_000
        per_iter = {"avx512": 24 * 16 * 2, "avx2": 12 * 8 * 2}.get(res["isa"], 0)
        best = 0.0
        for _ in range(3):
            t0 = time.process_time()
            _core.measure_fma_peak(1, iters)
            best = max(best, 2 * per_iter * iters / (time.process_time() - t0) * 1e-9)
        res["peak"] = res["peak_1t"] = best
    return res


# ---------------------------------------------------------------------------
# the parent: preparation, references, rounds, tables
# ---------------------------------------------------------------------------


def prepare_infer(name, tmp, size, threads):
    """Write the model file, the check batch and the reference output; FLOPs per image."""
    import numpy as np

    path = os.path.join(tmp, f"{name}.onnx")
    rng = np.random.default_rng(3)
    if name in ZOO_FILES:
        fill_zoo(zoo_source(name), path)
        import onnx

        chw = _zoo_chw(onnx.load(path))
        check_x = rng.standard_normal((CHECK_IMAGES, chw[1], chw[2], chw[0])).astype(np.float32)
        sess = _ort_session(path, threads, optimise=False)
        ref = sess.run(
            None, {sess.get_inputs()[0].name: np.ascontiguousarray(check_x.transpose(0, 3, 1, 2))}
        )[0]
    else:
        import torch

        torch.manual_seed(0)
        net = randomise_torch(torch_model(name), size=size)
        torch.save(net.state_dict(), os.path.join(tmp, f"{name}.pt"))
        export_torch(net, path, size)
        check_x = rng.standard_normal((CHECK_IMAGES, size, size, 3)).astype(np.float32)
        with torch.no_grad():
            ref = net(nchw(check_x)).numpy()
    np.save(os.path.join(tmp, f"{name}.check_x.npy"), check_x)
    np.save(os.path.join(tmp, f"{name}.ref.npy"), np.asarray(ref, np.float32))
    return conv_dense_flops(path)


def prepare_train(name, tmp, size=32, builders=None):
    """cnnx's start weights for PyTorch, and the reference: PyTorch eager, NCHW, float64.
    Returns whether the network uses ReLU6 (if cnnx has the layer) rather than ReLU."""
    import copy

    import numpy as np
    import torch

    relu6 = name == "mobilenetv2" and train_relu6()
    build_cnnx, build_torch = (
        functools.partial(b, relu6=relu6) for b in (builders or TRAIN_BUILDERS)[name]
    )
    net = copy_to_torch(cnnx_trainer(build_cnnx), build_torch())
    torch.save(net.state_dict(), os.path.join(tmp, f"train-{name}.pt"))
    net64, opt = torch_trainer(
        build_torch, copy.deepcopy(net.state_dict()), channels_last=False, dtype=torch.float64
    )
    ref = train_check_run("torch", None, net64, opt, size, channels_last=False, dtype=torch.float64)
    np.savez(os.path.join(tmp, f"train-{name}.ref.npz"), size=size, relu6=relu6, **ref)
    return relu6


def cnnx_refusal(path):
    """cnnx's message if ``cnnx.onnx.load`` refuses the file, else None (parent side)."""
    import cnnx
    import cnnx.onnx

    try:
        cnnx.onnx.load(path)
    except (cnnx.onnx.ONNXConversionError, NotImplementedError) as e:
        return f"{type(e).__name__}: {e}"[:300]
    return None


def _train_act_note(results, name, relu6):
    if name == "mobilenetv2":
        results["notes"].append(
            "MobileNetV2 training: ReLU6 in both frameworks"
            if relu6
            else "MobileNetV2 training: ReLU in place of ReLU6 in both frameworks "
            "(this cnnx has no ReLU6 layer)"
        )
        _log(f"# {results['notes'][-1]}")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def _launch(argv, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--threads",
        str(args.threads),
        "--seconds",
        str(args.seconds),
        "--tol",
        str(args.tol),
        *argv,
    ]
    if args.cpu_time:
        cmd.append("--cpu-time")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        tail = p.stderr.strip().splitlines()[-1:] or ["(no message)"]
        if "WrongResult" in p.stderr:
            raise SystemExit(f"\nWRONG RESULT, nothing reported: {tail[0]}")
        raise RuntimeError(f"worker {' '.join(argv)} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def select_cases(tokens, mobilenet_acts):
    """``mobilenet_acts``: ("auto",) (ReLU6, with the fallback decided later), ("relu6",),
    ("relu",) or both."""
    if "auto" in mobilenet_acts:
        mobilenet_acts = ("relu6",)
        tokens = ["mobilenetv2" if t == "mobilenetv2-relu" else t for t in tokens]
    infer = [
        m
        for m in INFER_MODELS
        if not (m == "mobilenetv2" and "relu6" not in mobilenet_acts)
        and not (m == "mobilenetv2-relu" and "relu" not in mobilenet_acts)
    ]
    every = (
        [("infer", m) for m in infer]
        + [("train", n) for n in TRAIN_NETS]
        + [("memory", n) for n in MEMORY_NETS]
    )
    if not tokens:
        return every
    out = []
    for part, name in every:
        if any(t in (part, name, f"{part}/{name}") for t in tokens):
            out.append((part, name))
    unknown = [t for t in tokens if not any(t in (p, n, f"{p}/{n}") for p, n in every)]
    if unknown:
        raise SystemExit(
            f"--cases: unknown {unknown}; known: " + ", ".join(f"{p}/{n}" for p, n in every)
        )
    return out


def _rounds(label, fws, argv_of, args, rounds):
    """Best (smallest) seconds per framework over alternated rounds; worker extras kept."""
    best, extra = {}, {}
    for r in range(rounds):
        order = fws[r % len(fws) :] + fws[: r % len(fws)]
        for fw in order:
            if fw in extra and "refused" in extra[fw]:
                continue
            res = _launch(argv_of(fw), args)
            if "refused" in res:
                extra[fw] = res
                continue
            best[fw] = min(best.get(fw, math.inf), res["seconds"])
            extra.setdefault(fw, {}).update({k: v for k, v in res.items() if k != "seconds"})
        _log(
            f"# {label}: round {r + 1}/{rounds}: "
            + "  ".join(
                f"{fw} {1e3 * best[fw]:.1f} ms" if fw in best else f"{fw} refused" for fw in fws
            )
        )
    return best, extra


def _geo(v):
    v = [x for x in v if x and math.isfinite(x)]
    return math.exp(sum(map(math.log, v)) / len(v)) if v else None


def _fmt_ms(s):
    return "—" if s is None else (f"{1e3 * s:.1f}" if s < 10 else f"{1e3 * s:.0f}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 1)[1],
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="timed seconds per measurement (at least 3 calls)",
    )
    ap.add_argument(
        "--cases",
        nargs="+",
        default=[],
        help="case ids (infer/resnet50), model names, or parts (infer train memory)",
    )
    ap.add_argument("--infer-batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--batches", type=int, nargs="+", default=[128], help="training batches")
    ap.add_argument("--memory-batches", type=int, nargs="+", default=[128, 512])
    ap.add_argument(
        "--size",
        type=int,
        default=224,
        help="image size of the PyTorch-defined inference models (the zoo graphs are fixed at 224)",
    )
    act = ap.add_mutually_exclusive_group()
    act.add_argument(
        "--relu6",
        dest="mobilenet_acts",
        action="store_const",
        const=("relu6",),
        help="MobileNetV2 inference with its ReLU6 (Clip) only, even if cnnx refuses it",
    )
    act.add_argument(
        "--relu",
        dest="mobilenet_acts",
        action="store_const",
        const=("relu",),
        help="MobileNetV2 inference with ReLU in place of ReLU6 only",
    )
    act.add_argument(
        "--both-acts",
        dest="mobilenet_acts",
        action="store_const",
        const=("relu6", "relu"),
        help="MobileNetV2 inference with both",
    )
    # default: ReLU6, and the ReLU variant in its place if cnnx refuses Clip
    ap.set_defaults(mobilenet_acts=("auto",))
    ap.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    ap.add_argument(
        "--tol",
        type=float,
        default=1e-3,
        help="output check: max |diff| / output scale (weights: 100x this)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: batch 1 and 2 at 224 (ImageNet models), training batch "
        "16, memory batches 16 and 64, 1 round of 0.3 s",
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by each process's CPU time (needs --threads 1): ratios that "
        "hold on a busy machine; the FMA peak is then timed the same way",
    )
    ap.add_argument("--json", default="", help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cpu_time:
        if args.threads != 1:
            ap.error("--cpu-time needs --threads 1 (CPU time sums threads, spinning included)")
        global CLOCK
        CLOCK = time.process_time

    if args.worker:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        kind, _, fw = args.worker.partition(":")
        if kind == "peak":
            res = peak_worker(args.threads)
        elif kind == "infer":
            res = infer_worker(
                fw, args.model, args.batch, args.threads, args.seconds, args.tmp, args.tol
            )
        elif kind == "train":
            res = train_worker(
                fw, args.model, args.batch, args.threads, args.seconds, args.tmp, args.tol
            )
        else:
            res = memory_worker(fw, args.model, args.batch, args.threads, args.tmp)
        print(json.dumps(res))
        return

    if args.quick:
        args.rounds, args.seconds = 1, 0.3
        args.infer_batches, args.batches, args.memory_batches = [1, 2], [16], [16, 64]
    cases = select_cases(args.cases, args.mobilenet_acts)
    fws = [f for f in FRAMEWORKS if f in args.frameworks]
    load_before, t_start = _load(), time.time()
    tmp = tempfile.mkdtemp(prefix="bench-models-")
    results = {"infer": [], "train": [], "memory": [], "notes": []}
    versions = {}
    try:
        _log(f"# load average before: {load_before}")
        peaks = [_launch(["--worker", "peak"], args)]
        _log(f"# FMA peak: {peaks[0]['peak']:.0f} GFLOP/s on {args.threads} thread(s)")
        import torch

        torch.set_num_threads(1)  # preparation only: nothing is timed in this process
        prepared = set()
        for part, name in cases:
            if part == "infer":
                _log(f"# preparing {name} ...")
                flops = prepare_infer(name, tmp, args.size, args.threads)
                if name == "mobilenetv2" and "auto" in args.mobilenet_acts and "cnnx" in fws:
                    refused = cnnx_refusal(os.path.join(tmp, f"{name}.onnx"))
                    if refused:
                        results["notes"].append(
                            "MobileNetV2 inference: cnnx refused the ReLU6 graph "
                            f"({refused}); timed with ReLU in place of ReLU6 "
                            "(mobilenetv2-relu), in every framework"
                        )
                        _log(f"# {results['notes'][-1]}")
                        name = "mobilenetv2-relu"
                        flops = prepare_infer(name, tmp, args.size, args.threads)
                peers = [f for f in fws if f != "torch" or name not in ZOO_FILES]
                for batch in args.infer_batches:
                    best, extra = _rounds(
                        f"{name} batch {batch}",
                        peers,
                        lambda fw: [
                            "--worker",
                            f"infer:{fw}",
                            "--model",
                            name,
                            "--batch",
                            str(batch),
                            "--tmp",
                            tmp,
                        ],
                        args,
                        args.rounds,
                    )
                    results["infer"].append(
                        {
                            "model": name,
                            "batch": batch,
                            "flops": flops,
                            "seconds": best,
                            "info": extra,
                        }
                    )
            elif part == "train":
                if name not in prepared:
                    _log(f"# preparing training {name} ...")
                    _train_act_note(results, name, prepare_train(name, tmp))
                    prepared.add(name)
                peers = [f for f in fws if f in ("cnnx", "torch")]
                for batch in args.batches:
                    best, extra = _rounds(
                        f"train {name} batch {batch}",
                        peers,
                        lambda fw: [
                            "--worker",
                            f"train:{fw}",
                            "--model",
                            name,
                            "--batch",
                            str(batch),
                            "--tmp",
                            tmp,
                        ],
                        args,
                        args.rounds,
                    )
                    results["train"].append(
                        {"model": name, "batch": batch, "seconds": best, "info": extra}
                    )
            else:
                if name not in prepared:
                    _train_act_note(results, name, prepare_train(name, tmp))
                    prepared.add(name)
                for batch in args.memory_batches:
                    row = {"model": name, "batch": batch}
                    for fw in [f for f in fws if f in ("cnnx", "torch")]:
                        row[fw] = _launch(
                            [
                                "--worker",
                                f"memory:{fw}",
                                "--model",
                                name,
                                "--batch",
                                str(batch),
                                "--tmp",
                                tmp,
                            ],
                            args,
                        )
                    _log(
                        f"# memory {name} batch {batch}: "
                        + "  ".join(
                            f"{fw} peak {row[fw]['peak'] / 2**20:.0f} MB"
                            for fw in row
                            if fw in FRAMEWORKS
                        )
                    )
                    results["memory"].append(row)
        peaks.append(_launch(["--worker", "peak"], args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak = max(p["peak"] for p in peaks)
    for rows in (results["infer"], results["train"], results["memory"]):
        for row in rows:
            for fw, d in (row.get("info") or {}).items():
                versions[fw] = d.get("version", versions.get(fw))
            for fw in FRAMEWORKS:
                if isinstance(row.get(fw), dict):
                    versions[fw] = row[fw]["version"]
    report(results, args, peak, peaks, versions, load_before, _load(), t_start)


def report(results, args, peak, peaks, versions, load_before, load_after, t_start):
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t_start))
    minutes = (time.time() - t_start) / 60
    print(
        f"\ncnnx bench_models: {date}, {_cpu_name()} ({os.cpu_count()} CPUs), "
        f"{args.threads} thread{'s' * (args.threads != 1)}, timed by "
        f"{'process CPU' if args.cpu_time else 'wall'} time, best of {args.rounds} alternated "
        f"rounds of >= {args.seconds:g} s; load average before {load_before}, after {load_after} "
        f"({minutes:.0f} min); " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    )
    print(
        f"FMA peak ({peaks[0]['isa']}, same run, best of start and end): {peak:.0f} GFLOP/s "
        f"on {args.threads} thread{'s' * (args.threads != 1)} "
        f"({max(p['peak_1t'] for p in peaks):.0f} on 1)"
    )
    geo_all = {}
    if results["infer"]:
        print(
            "\nInference, ms per batch (ratio = peer ms / cnnx ms, > 1: cnnx faster; "
            "GFLOP = conv + dense per image)\n"
        )
        print(
            "| model | batch | GFLOP | ONNX Runtime ms | PyTorch ms | cnnx ms | vs ORT | "
            "vs PyTorch | cnnx GFLOP/s | % peak | ORT % peak | max rel. diff |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        ratios = {"onnxruntime": [], "torch": []}
        for row in results["infer"]:
            s, info = row["seconds"], row["info"]
            c = s.get("cnnx")
            cells = []
            for fw in ("onnxruntime", "torch"):
                if fw in s and c:
                    ratios[fw].append(s[fw] / c)
                    cells.append(f"{s[fw] / c:.2f}x")
                else:
                    cells.append(
                        "refused" if "refused" in info.get("cnnx", {}) and fw in s else "—"
                    )
            gf = row["flops"] * 1e-9

            def rate(fw):
                return row["flops"] * row["batch"] / s[fw] * 1e-9 if fw in s else None

            errs = ", ".join(f"{fw} {d['err']:.0e}" for fw, d in info.items() if "err" in d)
            print(
                f"| {row['model']} | {row['batch']} | {gf:.2f} | {_fmt_ms(s.get('onnxruntime'))}"
                f" | {_fmt_ms(s.get('torch'))} | {_fmt_ms(c)} | {cells[0]} | {cells[1]} | "
                + (f"{rate('cnnx'):.0f} | {100 * rate('cnnx') / peak:.0f}%" if c else "— | —")
                + (f" | {100 * rate('onnxruntime') / peak:.0f}%" if "onnxruntime" in s else " | —")
                + f" | {errs} |"
            )
        geo = {fw: _geo(v) for fw, v in ratios.items()}
        print(
            "| geomean | | | | | | "
            + " | ".join(f"{geo[fw]:.2f}x" if geo[fw] else "—" for fw in ("onnxruntime", "torch"))
            + " | | | | |"
        )
        geo_all["infer"] = geo
        said = set()
        for row in results["infer"]:
            ref = row["info"].get("cnnx", {}).get("refused")
            if ref and row["model"] not in said:
                said.add(row["model"])
                print(f"\n{row['model']}: cnnx refused: {ref}")
    if results["train"]:
        print(
            "\nTraining (SGD momentum 0.9 + cross-entropy, 32x32x3), ms per step "
            "(ratio = PyTorch ms / cnnx ms)\n"
        )
        print(
            "| network | batch | PyTorch channels_last ms | cnnx ms | ratio | "
            "check: loss / weight-change rel. diff vs float64 |"
        )
        print("|---|---|---|---|---|---|")
        rs = []
        for row in results["train"]:
            s, info = row["seconds"], row["info"]
            q = s["torch"] / s["cnnx"] if "torch" in s and "cnnx" in s else None
            rs.append(q)
            errs = ", ".join(
                f"{fw} {d['err']:.0e} / {d['w_err']:.0e}" for fw, d in info.items() if "err" in d
            )
            print(
                f"| {row['model']} | {row['batch']} | {_fmt_ms(s.get('torch'))} | "
                f"{_fmt_ms(s.get('cnnx'))} | " + (f"{q:.2f}x" if q else "—") + f" | {errs} |"
            )
        g = _geo(rs)
        print("| geomean | | | | " + (f"{g:.2f}x" if g else "—") + " | |")
        geo_all["train"] = g
    if results["memory"]:
        print(
            "\nTraining memory: peak RSS of the process, and (peak - RSS once the model and "
            "batches exist) / batch (ratio = PyTorch MB per image / cnnx MB per image)\n"
        )
        print(
            "| network | batch | PyTorch peak MB | PyTorch MB/image | cnnx peak MB | "
            "cnnx MB/image | ratio |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in results["memory"]:
            t, c = row.get("torch"), row.get("cnnx")

            def cells(d):
                return f"{d['peak'] / 2**20:.0f} | {d['per_image'] / 2**20:.2f}" if d else "— | —"

            q = t["per_image"] / c["per_image"] if t and c and c["per_image"] > 0 else None
            print(
                f"| {row['model']} | {row['batch']} | {cells(t)} | {cells(c)} | "
                + (f"{q:.2f}x" if q else "—")
                + " |"
            )
        # what one more image costs: the peak's slope between the two largest batches
        for name in dict.fromkeys(r["model"] for r in results["memory"]):
            rows = sorted(
                (r for r in results["memory"] if r["model"] == name), key=lambda r: r["batch"]
            )[-2:]
            if len(rows) < 2:
                continue
            (a, b), slope = rows, {}
            for fw in ("torch", "cnnx"):
                if a.get(fw) and b.get(fw):
                    slope[fw] = (b[fw]["peak"] - a[fw]["peak"]) / (b["batch"] - a["batch"])
            cell = {
                fw: f"{slope[fw] / 2**20:.2f}" if fw in slope else "—" for fw in ("torch", "cnnx")
            }
            q = slope["torch"] / slope["cnnx"] if len(slope) == 2 and slope["cnnx"] > 0 else None
            print(
                f"| {name} | per extra image, {a['batch']} -> {b['batch']} | | "
                f"{cell['torch']} | | {cell['cnnx']} | " + (f"{q:.2f}x" if q else "—") + " |"
            )
    if results.get("notes"):
        print()
        for note in results["notes"]:
            print(f"Note: {note}.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": date,
                    "cpu": _cpu_name(),
                    "threads": args.threads,
                    "clock": "process_time" if args.cpu_time else "perf_counter",
                    "rounds": args.rounds,
                    "seconds": args.seconds,
                    "versions": versions,
                    "load_before": load_before,
                    "load_after": load_after,
                    "fma_peak_gflops": peak,
                    "results": results,
                    "geomean": geo_all,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    try:
        main()
    except WrongResult as e:  # in a worker: the parent reports it and stops
        print(f"WrongResult: {e}", file=sys.stderr)
        sys.exit(3)
