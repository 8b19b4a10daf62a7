"""ONNX graph -> functional cnnx model (:func:`load`).

Reads the graphs that cnnx exports, those ``torch.onnx.export`` writes (the
TorchScript exporter and the ``dynamo=True`` one, whose weights may sit in a
``.onnx.data`` file beside the model) and the classic model-zoo networks
(AlexNet to DenseNet). Any directed acyclic graph of the supported operators
becomes a ``cnnx.Model`` (the functional API) with one input per graph
input and one output per graph output, taking **NHWC** images:

- OIHW Conv kernels become HWIO; explicit ``pads`` / ``auto_pad`` become
  cnnx's ``((top, bottom), (left, right))``;
- Concat, Sum/Add, Sub, Mul and Mean of computed tensors become
  ``Concatenate``, ``Add``, ``Subtract``, ``Multiply`` and ``Average``;
- layouts are tracked per tensor (:mod:`._import_ops`): the Gemm/MatMul
  after a Flatten of an NCHW image gets its rows permuted from (c, h, w)
  to cnnx's (h, w, c) order, Transposes between NCHW and NHWC cost nothing;
- a ``Mul``/``Add``/``Sub``/``Div`` by a per-channel constant (old Caffe2
  exports scale and shift after each BatchNormalization) folds into the
  layer before it, or becomes a 1x1 depthwise convolution;
- a Relu / LeakyRelu / Sigmoid / Tanh / Softmax right after a Conv, Gemm
  or Add becomes that layer's fused ``activation``;
- ``ConvTranspose``, ``Pad``, ``Resize``/``Upsample`` by integer factors,
  ``DepthToSpace``/``SpaceToDepth`` and the Reshape-Transpose-Reshape of a
  channel shuffle or pixel (un)shuffle become cnnx's layout layers
  (:mod:`._import_layout`);
- weights computed from constants (a Transpose or Reshape of an
  initializer, ``ConstantOfShape``...) and shape arithmetic are evaluated
  at import (:mod:`._import_fold`).

Every node the outputs need is checked against its ONNX schema, and every
operator, attribute, broadcast and layout against what cnnx computes: anything
cnnx cannot run exactly raises :class:`~cnnx.onnx.ONNXConversionError` naming
the operator, the node and what is supported. A graph whose shapes ONNX
shape inference finds inconsistent is refused (ONNX Runtime refuses it too).
Nodes no output needs are not converted. Nothing is converted
approximately (folding a scale into weights, or a division by a constant
into a multiplication, changes results by float rounding only).
"""

import os

from ._common import ONNXConversionError, require_onnx
from ._external import external_tensors, inline_external_data
from ._import_ctx import Ctx
from ._import_fold import try_fold
from ._import_ir import Graph, build, fold_affines, fuse_activations, global_pools, prune
from ._import_ops import CONVERTERS, OVal, flat_tensor

__all__ = ["load", "from_onnx", "MAX_NODES"]

#: the most nodes a graph may have (ResNet-152 has about 500)
MAX_NODES = 100_000


def _shape_of(vi):
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim)


def _inferred_shapes(onnx, proto):
    """ONNX shape inference, on a view of ``proto`` whose large weights are
    declared (type and shape) rather than copied: a cross-check of every
    converted shape, at a cost independent of the weights' size."""
    view = onnx.ModelProto()
    view.ir_version = max(proto.ir_version, 4)  # initializers typed without being inputs
    view.opset_import.extend(proto.opset_import)
    view.functions.extend(proto.functions)
    g = view.graph
    g.node.extend(proto.graph.node)
    g.input.extend(proto.graph.input)
    g.output.extend(proto.graph.output)
    declared = {i.name for i in proto.graph.input}
    for init in proto.graph.initializer:
        n = 1
        for d in init.dims:
            n *= int(d)
        if n <= 4096:
            g.initializer.append(init)
        elif init.name not in declared:
            g.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    shapes = {}
    inferred = onnx.shape_inference.infer_shapes(view, strict_mode=True)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        s = _shape_of(vi)
        if s is not None:
            shapes[vi.name] = s
    return shapes


def _order(ctx, nodes, known):
    """The nodes in an order where each comes after those it reads (Kahn's algorithm);
    errors for a value nobody computes, a value computed twice, or a cycle."""
    producer = {}
    for i, node in enumerate(nodes):
        for o in node.output:
            if not o:
                continue
            if o in producer or o in known:
                raise ctx.fail(node, f"output {o!r} is also computed elsewhere in the graph")
            producer[o] = i
    waiting = [0] * len(nodes)
    readers = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            if not name or name in known:
                continue
            if name not in producer:
                raise ctx.fail(
                    node,
                    f"input {name!r} is neither a graph input, a constant nor "
                    "the output of another node",
                )
            waiting[i] += 1
            readers.setdefault(producer[name], []).append(i)
    ready = [i for i in range(len(nodes)) if waiting[i] == 0]
    ready.reverse()
    order = []
    while ready:
        i = ready.pop()
        order.append(nodes[i])
        for j in reversed(readers.get(i, [])):
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        stuck = next(n for i, n in enumerate(nodes) if waiting[i] > 0)
        raise ctx.fail(stuck, "the graph has a cycle through this node")
    return order


def _live(nodes, outputs):
    """The nodes some graph output needs, in order, and every ONNX name they read."""
    needed = set(outputs)
    live = set()
    for node in reversed(nodes):
        if any(o in needed for o in node.output if o):
            live.add(id(node))
            needed.update(i for i in node.input if i)
    return [n for n in nodes if id(n) in live], needed


def _input_shapes(ctx, inputs, input_shape, live):
    """Per graph input: (cnnx shape, layout)."""
    if input_shape is None:
        given = [None] * len(inputs)
    elif len(inputs) == 1 and not (
        isinstance(input_shape, (list, tuple))
        and input_shape
        and isinstance(input_shape[0], (list, tuple))
    ):
        given = [input_shape]
    else:
        given = list(input_shape)
        if len(given) != len(inputs):
            raise ValueError(
                f"input_shape: the graph has {len(inputs)} inputs; expected "
                f"{len(inputs)} shapes, got {input_shape!r}"
            )
    out = []
    for inp, g in zip(inputs, given):
        dims = _shape_of(inp)
        readers = [n for n in live if inp.name in n.input]
        nhwc = bool(readers) and all(
            n.op_type == "Transpose"
            and [int(p) for p in ctx.attrs(n).get("perm", [])] == [0, 3, 1, 2]
            for n in readers
        )
        if g is not None:
            try:
                shape = tuple(int(s) for s in g)
            except (TypeError, ValueError):
                raise ValueError(
                    f"input_shape: expected (H, W, C) or (features,), got {g!r}"
                ) from None
            if len(shape) not in (1, 3) or min(shape) < 1:
                raise ValueError(f"input_shape: expected (H, W, C) or (features,), got {shape}")
        else:
            if dims is None or len(dims) not in (2, 4) or any(d is None for d in dims[1:]):
                raise ONNXConversionError(
                    f"{ctx.where}: input {inp.name!r} has shape {dims}; cnnx needs a fixed "
                    "(C, H, W) or (features,) after the batch (pass input_shape=(H, W, C))"
                )
            if min(dims[1:]) < 1:
                raise ONNXConversionError(f"{ctx.where}: input {inp.name!r} has shape {dims}")
            if len(dims) == 2:
                shape = (dims[1],)
            elif nhwc:
                shape = tuple(dims[1:])
            else:
                shape = (dims[2], dims[3], dims[1])
        layout = "flat" if len(shape) == 1 else "nhwc" if nhwc else "nchw"
        out.append((shape, layout))
    return out


def _check_shape(ctx, node, name, ov):
    """Compare the converted shape with ONNX shape inference's, when it knows it."""
    known = ctx.inferred.get(name)
    if known is None or len(known) < 1 or any(d is None for d in known[1:]):
        return
    if tuple(known[1:]) != ov.onnx_shape:
        raise ctx.fail(
            node, f"output shape {('N',) + ov.onnx_shape} in cnnx but {known} in the ONNX graph"
        )


def _read(onnx, proto, where):
    """The import context with the graph's constants; its inputs and output names.
    Refuses oversized graphs, unread external data, other domains, non-float inputs."""
    graph = proto.graph
    if len(graph.node) > MAX_NODES:
        raise ONNXConversionError(
            f"{where}: the graph has {len(graph.node)} nodes, more than "
            f"cnnx imports (cnnx.onnx.MAX_NODES = {MAX_NODES})"
        )
    ext = external_tensors(onnx, proto)
    if ext:
        raise ONNXConversionError(
            f"{where}: tensor {ext[0].name!r} keeps its data in an external "
            "file; load the model with cnnx.onnx.load(path), which reads "
            "it from the model's folder"
        )
    opset = 1
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            opset = int(o.version)
    ctx = Ctx(onnx, where, opset, Graph())
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ctx.fail(
                node,
                f"operator domain {node.domain!r} not supported (only the standard ONNX domain)",
            )
    for init in graph.initializer:
        ctx.consts[init.name] = ctx.to_array(init, f"initializer {init.name!r}")
    inputs = [i for i in graph.input if i.name not in ctx.consts]
    outputs = [o.name for o in graph.output]
    if not outputs:
        raise ONNXConversionError(f"{where}: the graph has no outputs")
    for inp in inputs:
        if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            dtype = onnx.TensorProto.DataType.Name(inp.type.tensor_type.elem_type)
            raise ONNXConversionError(
                f"{where}: input {inp.name!r} has element type {dtype}; cnnx takes float32"
            )
    batches = {(_shape_of(i) or (None,))[0] for i in inputs}
    if len(batches) == 1 and None not in batches:
        ctx.batch = batches.pop()
    try:
        ctx.inferred = _inferred_shapes(onnx, proto)
    except onnx.shape_inference.InferenceError as e:
        # ONNX Runtime refuses such a graph too; refused after conversion, whose own
        # message (naming the node) comes first when it has one
        ctx.inconsistent = str(e).splitlines()[0]
    except Exception:  # noqa: BLE001 - otherwise shape inference is only a cross-check
        pass
    return ctx, inputs, outputs


def _checker(onnx, proto):
    """Check one node against its operator's schema (inputs, required attributes...)."""
    context = onnx.checker.C.CheckerContext()
    context.ir_version = proto.ir_version
    context.opset_imports = {o.domain: o.version for o in proto.opset_import}

    optional = onnx.defs.OpSchema.FormalParameterOption.Optional

    def check(ctx, node):
        try:
            onnx.checker.check_node(node, context)
            formal = onnx.defs.get_schema(node.op_type, ctx.opset, node.domain).inputs
        except Exception as e:  # noqa: BLE001 - onnx raises its own ValidationError
            raise ctx.fail(
                node,
                f"is not a valid {node.op_type} at opset {ctx.opset} ({str(e).splitlines()[0]})",
            ) from None
        for i, name in enumerate(node.input):  # "" only where an input is optional
            if not name and formal and formal[min(i, len(formal) - 1)].option != optional:
                raise ctx.fail(node, f"input {i} is empty, but {node.op_type} requires it")

    return check


def _convert(ctx, live, check):
    """Fold or convert each node some output needs (in order)."""
    for node in live:
        check(ctx, node)
        if node.op_type == "Constant" and node.output[0] in ctx.consts:
            continue  # read with the initializers
        if try_fold(ctx, node):
            continue
        convert = CONVERTERS.get(node.op_type)
        if convert is None:
            raise ctx.unsupported_op(node)
        ins = [ctx.vals.get(i, ctx.consts.get(i)) if i else None for i in node.input]
        if not any(isinstance(v, OVal) for v in ins):
            raise ctx.fail(
                node,
                "cnnx cannot evaluate this operator on constants (only on "
                "tensors computed from the graph's inputs)",
            )
        try:
            outs = convert(ctx, node, ins)
        except ONNXConversionError:
            raise
        except (ValueError, TypeError) as e:  # e.g. a shape helper refused the settings
            raise ctx.fail(node, f"cannot be expressed in cnnx ({e})") from None
        for name, ov in zip(node.output, outs if isinstance(outs, list) else [outs]):
            if name:
                ctx.vals[name] = ov
                _check_shape(ctx, node, name, ov)


def from_onnx(proto, input_shape=None, where="proto"):
    """A functional cnnx ``Model`` from an ONNX ``ModelProto`` (see :func:`load`)."""
    onnx = require_onnx()
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"{where}: expected an onnx.ModelProto, got {type(proto).__name__}")
    ctx, inputs, outputs = _read(onnx, proto, where)
    nodes = _order(ctx, list(proto.graph.node), set(ctx.consts) | {i.name for i in inputs})
    for node in nodes:  # constants, like initializers, are read (and checked) even unused
        if node.op_type == "Constant" and not node.input:
            try_fold(ctx, node)
    live, ctx.needed = _live(nodes, outputs)
    ir = ctx.graph
    for inp, (shape, layout) in zip(inputs, _input_shapes(ctx, inputs, input_shape, live)):
        ctx.vals[inp.name] = OVal(ir.input(shape, inp.name), layout)
    _convert(ctx, live, _checker(onnx, proto))
    _set_outputs(ctx, inputs, outputs)
    if ctx.inconsistent:
        raise ONNXConversionError(
            f"{where}: the graph's shapes are inconsistent (ONNX shape "
            f"inference: {ctx.inconsistent})"
        )
    fold_affines(ir, ctx.fail)
    fuse_activations(ir)
    global_pools(ir)
    prune(ir)
    return build(ir, proto.graph.name or "Model", len(inputs) == 1, len(outputs) == 1, ctx.fail)


def _set_outputs(ctx, inputs, outputs):
    """The graph's outputs as cnnx tensors; every input must lead to one."""
    ir = ctx.graph
    for name in outputs:
        ov = ctx.vals.get(name)
        if ov is None:
            what = "a constant" if name in ctx.consts else "not computed"
            raise ONNXConversionError(f"{ctx.where}: output {name!r} is {what}")
        if ov.layout == "flat":
            if ov.perm is not None:
                what = (
                    "a flattened {}x{}x{} NCHW tensor".format(*ov.chw)
                    if ov.chw
                    else "features of flattened NCHW tensors"
                )
                raise ONNXConversionError(
                    f"{ctx.where}: output {name!r} is {what}, in (c, h, w) order; cnnx would "
                    "give them in (h, w, c) order"
                )
            ir.outputs.append(flat_tensor(ctx, None, ov))
        else:
            ir.outputs.append(ov.t)
    used = set()
    stack = list(ir.outputs)
    while stack:
        t = stack.pop()
        if id(t) in used:
            continue
        used.add(id(t))
        if t.producer is not None:
            stack.extend(t.producer.inputs)
    for inp in inputs:
        t = ctx.vals[inp.name].t
        if id(t) not in used:
            raise ONNXConversionError(
                f"{ctx.where}: input {inp.name!r} is not used by any "
                "output; cnnx models use all their inputs"
            )


def load(path, input_shape=None):
    """Load an ONNX model file as a functional ``cnnx.Model`` that takes NHWC input.

    Args:
        path: an ``.onnx`` file; weights stored as external data (e.g. the
            ``.onnx.data`` file of ``torch.onnx.export(..., dynamo=True)``)
            are read from beside it, never from outside its folder.
        input_shape: ``(H, W, C)`` (or ``(features,)``; a list of them for
            several inputs) when a graph input has dynamic spatial sizes;
            normally read from the graph.

    The model has one input per graph input (NCHW images become NHWC; a
    graph that takes NHWC and transposes, as cnnx exports, keeps NHWC) and
    one output per graph output (images NHWC). Supported: Conv (any
    pads/auto_pad, strides, dilations, group), MaxPool (dilations,
    ceil_mode), AveragePool (ceil_mode), GlobalAveragePool /
    GlobalMaxPool / ReduceMean / ReduceMax over H, W, Gemm, MatMul, Add,
    Sub, Mul, Div (by constants, or Add/Sub/Mul of equally shaped tensors),
    Sum, Mean, Concat, Relu, LeakyRelu, Sigmoid, Tanh, Softmax,
    BatchNormalization (inference form), Dropout (unused mask), Flatten,
    Reshape / Squeeze / Unsqueeze that flatten or unflatten, NCHW <-> NHWC
    Transposes, Identity, and constant expressions
    (:data:`~cnnx.onnx.FOLDED_IMPORT_OPS`).

    The model is not compiled; call ``compile`` to train it further with
    ``fit``. Raises :class:`~cnnx.onnx.ONNXConversionError` naming the operator
    and node for anything it cannot run exactly.
    """
    onnx = require_onnx()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    try:
        proto = onnx.load(path, load_external_data=False)  # cnnx reads external data itself
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise ValueError(f"path: {path!r} is not a readable ONNX model ({e})") from None
    inline_external_data(onnx, proto, os.path.dirname(os.path.abspath(path)), where="path")
    return from_onnx(proto, input_shape, where="path")
