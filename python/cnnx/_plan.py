"""Compile a built ``Sequential`` into one C++ inference pass, and a compiled
model's training step into one C++ call.

``model.predict`` runs the whole network in one call into C++
(:class:`cnnx._core.InferencePlan`, see ``cpp/include/cnnx/plan.h``) instead
of one Python call per layer. On the way the plan

- folds each BatchNormalization into the convolution or dense layer before
  it (from the live arrays, on every run: the plan never goes stale);
- fuses activations into the layer before them (ReLU into the GEMM's store);
- sees Flatten and Dropout (inference) as free: same buffer, no op;
- turns ``Residual`` into its ops, the sum added in the store of the block's
  last convolution (else one ``add`` op), then the activation;
- reuses activation buffers once a value is dead (liveness), so a chunk of
  images fits in the core's cache.

``compile_training`` does the same for ``train_on_batch`` / ``fit``:
forward, softmax-cross-entropy and backward in one call
(:class:`cnnx._core.TrainPlan`, ``cpp/include/cnnx/train_plan.h``), weight
gradients straight into the model's flat gradient buffer; the optimiser
then runs its one fused update.

A layer the plan does not know (a user's own Layer subclass) makes
:func:`compile_inference` return None, and the model keeps the
layer-by-layer path. ``CNNX_PLAN=0`` in the environment disables plans (to
compare the two paths).
"""
import math
import os

from . import _core

__all__ = ["compile_inference", "compile_training", "plans_enabled"]

ACT_CODES = {None: 0, "linear": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4,
             "softmax": 5}
POOL_CODES = {"max": 0, "avg": 1, "adaptive_avg": 2, "adaptive_max": 3, "global_avg": 4}


def plans_enabled():
    return os.environ.get("CNNX_PLAN", "1") != "0"


class _Unsupported(Exception):
    pass


def _act_of(act_obj):
    """(code, alpha) of an activation object from layers.activations."""
    name = getattr(act_obj, "name", None)
    if name not in ACT_CODES:
        raise _Unsupported(name)
    return ACT_CODES[name], float(getattr(act_obj, "alpha", 0.0))


class _Graph:
    """Ops over SSA values; buffers are assigned at the end."""

    def __init__(self, input_shape):
        self.shapes = [tuple(input_shape)]  # value id -> per-image shape
        self.producer = [None]              # value id -> op index
        self.pinned = {0}                   # values that must not be changed in place
        self.ops = []                       # dicts: kind, ins, out, args
        self.refs = []                      # (layer, buffers dict) to watch for rebinding

    def new_value(self, shape, op_index):
        self.shapes.append(tuple(shape))
        self.producer.append(op_index)
        return len(self.shapes) - 1

    def emit(self, kind, ins, shape, **args):  # noqa: D401 - args are the op's arguments
        self.ops.append({"kind": kind, "ins": list(ins), "args": args})
        v = self.new_value(shape, len(self.ops) - 1)
        self.ops[-1]["out"] = v
        return v

    def fusable(self, v, kinds):
        """The op producing v if its output may still be changed (not pinned, act none)."""
        i = self.producer[v]
        if i is None or v in self.pinned:
            return None
        op = self.ops[i]
        if op["kind"] not in kinds or op["args"].get("act", 0) != 0:
            return None
        return op

    def activation(self, v, act, alpha):
        if act == 0:
            return v
        op = self.fusable(v, ("conv", "dense", "add"))
        if op is not None:
            op["args"]["act"], op["args"]["alpha"] = act, alpha
            return v
        shape = self.shapes[v]
        return self.emit("activation", [v], shape, act=act, alpha=alpha,
                         n=math.prod(shape), k=shape[-1])

    # ---- layers -------------------------------------------------------------
    def chain(self, layers, v):
        for layer in layers:
            v = self.layer(layer, v)
        return v

    def layer(self, layer, v):
        from .layers import (AdaptiveAvgPool2D, AdaptiveMaxPool2D, AvgPool2D, BatchNormalization,
                             Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU,
                             MaxPool2D, ReLU, Residual, Sigmoid, Softmax, Tanh)

        t = type(layer)
        shape = self.shapes[v]
        if t is Conv2D:
            h, w, c = layer.input_shape
            fh, fw = layer.kernel_size
            geom = (h, w, c, fh, fw, layer.filters, *layer.strides, *layer.dilation_rate,
                    *layer._p4, layer.groups)
            act, alpha = _act_of(layer._act)
            out = self.emit("conv", [v], layer.output_shape, geometry=geom,
                            kernel=layer.params["kernel"], bias=layer.params.get("bias"),
                            act=0, alpha=0.0, bn=None)
            return self.activation(out, act, alpha)
        if t is Dense:
            if len(shape) != 1:
                raise _Unsupported("Dense on a non-flat input")
            act, alpha = _act_of(layer._act)
            out = self.emit("dense", [v], layer.output_shape, in_features=shape[0],
                            out_features=layer.units, kernel=layer.params["kernel"],
                            bias=layer.params.get("bias"), act=0, alpha=0.0, bn=None)
            return self.activation(out, act, alpha)
        if t in (MaxPool2D, AvgPool2D):
            kind = "max" if t is MaxPool2D else "avg"
            return self.emit("pool", [v], layer.output_shape, pool=POOL_CODES[kind],
                             hwc=tuple(shape), geometry=tuple(layer._g),
                             count_include_pad=bool(getattr(layer, "count_include_pad", False)),
                             out_h=0, out_w=0)
        if t in (AdaptiveAvgPool2D, AdaptiveMaxPool2D):
            kind = "adaptive_avg" if t is AdaptiveAvgPool2D else "adaptive_max"
            oh, ow = layer.output_size
            return self.emit("pool", [v], layer.output_shape, pool=POOL_CODES[kind],
                             hwc=tuple(shape), geometry=(1,) * 8, count_include_pad=False,
                             out_h=oh, out_w=ow)
        if t is GlobalAvgPool2D:
            return self.emit("pool", [v], layer.output_shape, pool=POOL_CODES["global_avg"],
                             hwc=tuple(shape), geometry=(1,) * 8, count_include_pad=False,
                             out_h=1, out_w=1)
        if t is Flatten:
            return self.alias(v, layer.output_shape)
        if t is Dropout:
            return v  # identity at inference
        if t is BatchNormalization:
            self.refs.append((layer, layer.buffers, layer.buffers["moving_mean"],
                              layer.buffers["moving_var"]))
            bn = (layer.params.get("gamma"), layer.params.get("beta"),
                  layer.buffers["moving_mean"], layer.buffers["moving_var"],
                  float(layer.epsilon))
            op = self.fusable(v, ("conv", "dense"))
            if op is not None and op["args"]["bn"] is None:
                op["args"]["bn"] = bn
                return v
            return self.emit("batch_norm", [v], shape, channels=shape[-1], n=math.prod(shape),
                             bn=bn)
        if t in (ReLU, LeakyReLU, Sigmoid, Tanh):
            return self.activation(v, *_act_of(layer._act))
        if t is Softmax:
            if layer.axis not in (-1, len(shape)):
                raise _Unsupported("Softmax over a non-last axis")
            return self.activation(v, ACT_CODES["softmax"], 0.0)
        if t is Residual:
            self.pinned.add(v)
            # the shortcut first: then the block's last convolution can add it
            s = v if layer.shortcut is None else self.chain(layer.shortcut, v)
            self.pinned.add(s)
            h = self.chain(layer.block, v)
            op = self.fusable(h, ("conv",))
            if op is not None and h != s and op["args"].get("residual") is None:
                op["args"]["residual"] = s  # the sum in the conv's store
                op["ins"].append(s)
                self.shapes[h] = tuple(layer.output_shape)
                out = h
            else:
                out = self.emit("add", [h, s], layer.output_shape, act=0, alpha=0.0,
                                n=math.prod(layer.output_shape), k=layer.output_shape[-1])
            if layer.activation is not None:
                out = self.activation(out, *_act_of(layer._act))
            return out
        raise _Unsupported(t.__name__)

    def alias(self, v, shape):
        """The same values seen with another shape (Flatten): a new id, the same producer."""
        self.shapes.append(tuple(shape))
        self.producer.append(self.producer[v])
        a = len(self.shapes) - 1
        self._alias_of = getattr(self, "_alias_of", {})
        self._alias_of[a] = self._alias_of.get(v, v)
        if v in self.pinned:
            self.pinned.add(a)
        return a

    def root(self, v):
        return getattr(self, "_alias_of", {}).get(v, v)

    # ---- buffers --------------------------------------------------------------
    def finish(self, final):
        final_root = self.root(final)
        if final_root == 0 or self.producer[final_root] is None:
            shape = self.shapes[final]
            final = self.emit("activation", [final], shape, act=0, alpha=0.0,
                              n=math.prod(shape), k=shape[-1])
            final_root = final
        last_use = {}
        for i, op in enumerate(self.ops):
            for v in op["ins"]:
                last_use[self.root(v)] = i
        size = {}
        for v, shape in enumerate(self.shapes):
            r = self.root(v)
            size[r] = max(size.get(r, 0), math.prod(shape))
        buffer_of = {0: 0, final_root: 1}
        sizes = [size[0], size[final_root]]
        free = []
        for i, op in enumerate(self.ops):
            out = self.root(op["out"])
            if out not in buffer_of:
                if free:
                    b = free.pop()
                    sizes[b] = max(sizes[b], size[out])
                else:
                    sizes.append(size[out])
                    b = len(sizes) - 1
                buffer_of[out] = b
            for v in {self.root(v) for v in op["ins"]}:
                if last_use.get(v) == i and buffer_of[v] >= 2:
                    free.append(buffer_of[v])
        plan = _core.InferencePlan(sizes)
        for op in self.ops:
            a = op["args"]
            src = [buffer_of[self.root(v)] for v in op["ins"]]
            dst = buffer_of[self.root(op["out"])]
            kind = op["kind"]
            if kind == "conv":
                plan.add_conv(src[0], dst, a["geometry"], a["kernel"], a["bias"], a["act"],
                              a["alpha"], a["bn"], src[1] if len(src) > 1 else -1)
            elif kind == "dense":
                plan.add_dense(src[0], dst, a["in_features"], a["out_features"], a["kernel"],
                               a["bias"], a["act"], a["alpha"], a["bn"])
            elif kind == "pool":
                plan.add_pool(src[0], dst, a["pool"], a["hwc"], a["geometry"],
                              a["count_include_pad"], a["out_h"], a["out_w"])
            elif kind == "batch_norm":
                plan.add_batch_norm(src[0], dst, a["channels"], a["n"], a["bn"])
            elif kind == "activation":
                plan.add_activation(src[0], dst, a["act"], a["alpha"], a["n"], a["k"])
            else:
                plan.add_add(src[0], src[1], dst, a["act"], a["alpha"], a["n"], a["k"])
        return plan


class CompiledInference:
    """A plan plus what tells whether it still matches the model."""

    def __init__(self, plan, refs, output_shape):
        self.plan = plan
        self.refs = refs
        self.output_shape = tuple(output_shape)

    def valid(self):
        for layer, buffers, mean, var in self.refs:
            if (layer.buffers is not buffers or buffers.get("moving_mean") is not mean
                    or buffers.get("moving_var") is not var):
                return False
        return True

    def __call__(self, x):
        y = self.plan.run(x)
        return y.reshape((x.shape[0],) + self.output_shape)


def compile_inference(model):
    """A :class:`CompiledInference` of a built Sequential, or None when a layer has no op."""
    g = _Graph(model.input_shape)
    try:
        v = g.chain(model.layers, 0)
        plan = g.finish(v)
    except _Unsupported:
        return None
    return CompiledInference(plan, g.refs, model.output_shape)


# ---- the training step ----------------------------------------------------------


class _TrainGraph:
    """Values in forward order (value 0 is the input) and the ops between them."""

    def __init__(self, input_shape):
        self.sizes = [math.prod(input_shape)]
        self.ops = []
        self.refs = []  # (layer, buffers, mean, var) of each batch norm, to notice rebinding

    def new(self, shape):
        self.sizes.append(math.prod(shape))
        return len(self.sizes) - 1

    def chain(self, layers, v, trainable, last_logits=False):
        for i, layer in enumerate(layers):
            logits = last_logits and i == len(layers) - 1
            v = self.layer(layer, v, trainable and layer.trainable, logits)
        return v

    def layer(self, layer, v, trainable, logits):
        from .layers import (AdaptiveAvgPool2D, AdaptiveMaxPool2D, AvgPool2D, BatchNormalization,
                             Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, LeakyReLU,
                             MaxPool2D, ReLU, Residual, Sigmoid, Softmax, Tanh)

        t = type(layer)
        if t in (Conv2D, Dense):
            act, alpha = (0, 0.0) if logits else _act_of(layer._act)
            g = layer.grads if trainable else {}
            bias = layer.params.get("bias")
            out = self.new(layer.output_shape)
            if t is Conv2D:
                h, w, c = layer.input_shape
                fh, fw = layer.kernel_size
                geom = (h, w, c, fh, fw, layer.filters, *layer.strides, *layer.dilation_rate,
                        *layer._p4, layer.groups)
                self.ops.append(("conv", v, out, geom, layer.params["kernel"], bias, act == 1,
                                 g.get("kernel"), g.get("bias") if bias is not None else None))
            else:
                if len(layer.input_shape) != 1:
                    raise _Unsupported("Dense on a non-flat input")
                self.ops.append(("dense", v, out, layer.input_shape[0], layer.units,
                                 layer.params["kernel"], bias, act == 1, g.get("kernel"),
                                 g.get("bias") if bias is not None else None))
            if act not in (0, 1):
                out = self.activation(out, act, alpha, layer.output_shape)
            return out
        if t in (MaxPool2D, AvgPool2D, AdaptiveAvgPool2D, AdaptiveMaxPool2D, GlobalAvgPool2D):
            out = self.new(layer.output_shape)
            hwc = tuple(layer.input_shape)
            if t in (MaxPool2D, AvgPool2D):
                kind = "max" if t is MaxPool2D else "avg"
                args = (POOL_CODES[kind], hwc, tuple(layer._g),
                        bool(getattr(layer, "count_include_pad", False)), 0, 0)
            elif t is GlobalAvgPool2D:
                args = (POOL_CODES["global_avg"], hwc, (1,) * 8, False, 1, 1)
            else:
                kind = "adaptive_avg" if t is AdaptiveAvgPool2D else "adaptive_max"
                args = (POOL_CODES[kind], hwc, (1,) * 8, False, *layer.output_size)
            self.ops.append(("pool", v, out) + args)
            return out
        if t is Flatten:
            if logits:
                raise _Unsupported("Flatten producing the logits")
            return v  # the same values, seen as rows
        if t is Dropout and layer.rate == 0.0 and not logits:
            return v
        if t in (ReLU, LeakyReLU, Sigmoid, Tanh, Softmax) and not logits:
            if t is Softmax and layer.axis not in (-1, len(layer.input_shape)):
                raise _Unsupported("Softmax over a non-last axis")
            act, alpha = _act_of(layer._act)
            return self.activation(v, act, alpha, layer.output_shape)
        if t is BatchNormalization and not logits:
            out = self.new(layer.output_shape)
            g = layer.grads if trainable else {}
            p = layer.params
            self.refs.append((layer, layer.buffers, layer.buffers["moving_mean"],
                              layer.buffers["moving_var"]))
            self.ops.append(("batch_norm", v, out, layer.input_shape[-1], p.get("gamma"),
                             p.get("beta"), layer.buffers["moving_mean"],
                             layer.buffers["moving_var"], 1.0 - layer.momentum, layer.epsilon,
                             g.get("gamma"), g.get("beta")))
            return out
        if t is Residual and not logits:
            h = self.chain(layer.block, v, trainable)
            s = v if layer.shortcut is None else self.chain(layer.shortcut, v, trainable)
            out = self.new(layer.output_shape)
            act, alpha = _act_of(layer._act) if layer.activation is not None else (0, 0.0)
            self.ops.append(("add", h, s, out, 1 if act == 1 else 0))
            if act not in (0, 1):
                out = self.activation(out, act, alpha, layer.output_shape)
            return out
        raise _Unsupported(t.__name__)  # active Dropout, user layers

    def activation(self, v, act, alpha, shape):
        out = self.new(shape)
        self.ops.append(("activation", v, out, act, alpha, shape[-1]))
        return out


def compile_training(model):
    """A :class:`CompiledTraining` (a ``_core.TrainPlan``) for a compiled
    Sequential with a cross-entropy head, or None when a layer has no training
    op (active dropout, a user's own layer): the model then keeps the
    layer-by-layer step."""
    if model.loss != "cross_entropy" or model._head is None or model.store is None:
        return None
    layers = list(model.layers)
    if model._head == "softmax":
        layers = layers[:-1]  # the loss takes the logits before it
        if not layers:
            return None
    g = _TrainGraph(model.input_shape)
    try:
        last = g.chain(layers, 0, True, last_logits=True)
    except _Unsupported:
        return None
    if last != len(g.sizes) - 1 or not g.ops:
        return None
    plan = _core.TrainPlan(g.sizes, model.store.grads)
    for op in g.ops:
        kind = op[0]
        if kind == "conv":
            plan.add_conv(*op[1:])
        elif kind == "dense":
            plan.add_dense(*op[1:])
        elif kind == "pool":
            plan.add_pool(*op[1:])
        elif kind == "activation":
            plan.add_activation(*op[1:])
        elif kind == "batch_norm":
            plan.add_batch_norm(*op[1:])
        else:
            plan.add_add(*op[1:])
    return CompiledTraining(plan, g.refs)


class CompiledTraining:
    """A TrainPlan plus what tells whether it still matches the model."""

    def __init__(self, plan, refs):
        self.plan = plan
        self.refs = refs

    valid = CompiledInference.valid

    def step(self, x, y):
        return self.plan.step(x, y)
