"""What ONNX import knows while it converts a graph: its constants, the tensors
converted so far, the attributes of a node, and the error messages (each
names the argument, the operator and the node)."""

import numpy as np

from ._common import ONNXConversionError, SUPPORTED_IMPORT_OPS

__all__ = ["Ctx", "node_desc", "MAX_EXTENT", "MAX_CONST_ELEMENTS"]

#: per-axis limit of kernels, strides, dilations and pads (the C++ kernels' own)
MAX_EXTENT = 2**40
#: the most values a constant computed at import may hold (ConstantOfShape([2**40])
#: must fail, not allocate); VGG-19's largest weight has 2**26.6
MAX_CONST_ELEMENTS = 2**28


def node_desc(node):
    return f"{node.op_type} (node {node.name or '<unnamed>'!r})"


class Ctx:
    """The state of one import.

    ``consts``: ONNX name -> NumPy array (initializers and folded values);
    ``vals``: ONNX name -> converted tensor (see ``_import_ops.OVal``);
    ``inferred``: ONNX name -> shape from ONNX shape inference (a cross-check);
    ``batch``: the graph inputs' static batch size, if any; ``graph``: the
    cnnx graph being built (``_import_ir.Graph``); ``needed``: the ONNX
    names some graph output depends on.
    """

    def __init__(self, onnx, where, opset, graph):
        self.onnx = onnx
        self.where = where  # "path" or "proto": the argument named in errors
        self.opset = opset
        self.graph = graph
        self.consts = {}
        self.vals = {}
        self.inferred = {}
        self.batch = None
        self.needed = set()  # ONNX names read by the nodes the outputs need, and the outputs
        self.inconsistent = None  # ONNX shape inference's complaint, if any
        self.flat_of = {}  # id(image tensor) -> its Flatten (made once)

    # ---- errors -------------------------------------------------------------------
    def fail(self, node, msg):
        where = f"{node_desc(node)}: " if node is not None else ""
        return ONNXConversionError(f"{self.where}: {where}{msg}")

    def unsupported_op(self, node):
        return self.fail(
            node,
            "operator not supported by cnnx.onnx.load (supported: "
            f"{', '.join(SUPPORTED_IMPORT_OPS)}; and constant expressions)",
        )

    # ---- attributes and constants -----------------------------------------------------
    def attrs(self, node):
        h = self.onnx.helper
        out = {}
        for a in node.attribute:
            v = h.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode(errors="replace")
            out[a.name] = v
        return out

    def check_attrs(self, node, attrs, allowed):
        extra = sorted(set(attrs) - set(allowed))
        if extra:
            raise self.fail(
                node, f"attribute(s) {extra} not supported (supported: {sorted(allowed)})"
            )

    def to_array(self, tensor, what, node=None):
        """A TensorProto as NumPy, or an error naming it (dims that disagree
        with the data, unknown types...) instead of NumPy's bare message."""
        n = 1
        for d in tensor.dims:
            n *= int(d)
        if any(int(d) < 0 for d in tensor.dims) or n > MAX_CONST_ELEMENTS * 2:
            raise self.fail(
                node,
                f"{what}: dims {list(tensor.dims)} and data type "
                f"{tensor.data_type} do not describe its data (or exceed "
                f"{MAX_CONST_ELEMENTS * 2} values)",
            )
        try:
            return self.onnx.numpy_helper.to_array(tensor)
        except Exception as e:  # noqa: BLE001 - NumPy/onnx raise several types
            raise self.fail(
                node,
                f"{what}: dims {list(tensor.dims)} and data type "
                f"{tensor.data_type} do not describe its data ({e})",
            ) from None

    def axis(self, node, a, nd, what="axis"):
        """Axis ``a`` of a rank-``nd`` tensor, made non-negative; an error if out of range."""
        a = int(a)
        if not -nd <= a < nd:
            raise self.fail(node, f"{what} {a} is out of range for a tensor of rank {nd}")
        return a % nd

    def is_const(self, name):
        return name in self.consts

    def const(self, node, name, what):
        """The constant ``name`` (an input of ``node``), or an error naming ``what``."""
        if not name:
            raise self.fail(node, f"input {what} is missing")
        if name not in self.consts:
            raise self.fail(
                node,
                f"{what} ({name!r}) must be a constant (an initializer or "
                "computed from constants), but it is computed from the "
                "graph's inputs",
            )
        return self.consts[name]

    def const_f32(self, node, name, what):
        a = np.asarray(self.const(node, name, what))
        if a.dtype.kind not in "fiub":
            raise self.fail(node, f"{what} ({name!r}) has type {a.dtype}, expected numbers")
        return np.ascontiguousarray(a, np.float32)
