"""The file behind :class:`cnnx.callbacks.BackupAndRestore`: everything a
``fit`` needs to continue exactly after its last completed epoch, in one
``.npz`` written atomically (temporary file, fsync, rename, fsync of the
directory), so a kill at any moment leaves the previous backup or the new
one, never a mix.

Arrays: ``params``, ``buffer/<layer>/<name>``, ``opt/<state>``,
``callback/<index>/<key>``; ``meta`` holds the rest as JSON bytes (epoch,
optimiser scalars, the bit-generator states, callback scalars).
"""

import json
import os
import secrets

import numpy as np

__all__ = ["write", "read", "restore", "restore_callbacks", "remove_temporaries"]

_TMP_PREFIX = ".cnnx-backup-"


def _plain(v):
    """A JSON value (NumPy scalars as Python numbers)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _buffers(model):
    from .layers.base import walk

    return [
        (i, name, buf)
        for i, (layer, _) in enumerate(walk(model.layers))
        for name, buf in layer.buffers.items()
    ]


def write(path, model, state, epoch):
    """Write the backup of a fit whose epoch ``epoch`` just ended."""
    from . import random as _random

    arrays = {"params": model.store.params}
    for i, name, buf in _buffers(model):
        arrays[f"buffer/{i}/{name}"] = buf
    opt = model.optimizer
    sd = opt.state_dict()
    for k, v in sd["state"].items():
        arrays[f"opt/{k}"] = v
    callbacks = []
    for i, cb in enumerate(state.callbacks):
        get = getattr(cb, "state_dict", None)
        st = get() if callable(get) else None
        if st is None:
            continue
        scalars = {}
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                arrays[f"callback/{i}/{k}"] = v
            else:
                scalars[k] = _plain(v)
        callbacks.append(
            {
                "index": i,
                "class": type(cb).__name__,
                "state": scalars,
                "arrays": [k for k, v in st.items() if isinstance(v, np.ndarray)],
            }
        )
    meta = {
        "format": "cnnx-backup",
        "version": 1,
        "epoch": int(epoch),
        "optimizer": {
            "class": sd["class"],
            "config": _plain(sd["config"]),
            "iterations": sd["iterations"],
            "initial_lr": _plain(sd["initial_lr"]),
            "lr": _plain(opt.lr) if isinstance(opt.lr, (int, float, np.generic)) else None,
        },
        "fit_rng": _plain(state.rng.bit_generator.state),
        "package_rng": _plain(_random.get_rng().bit_generator.state),
        "callbacks": callbacks,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f"{_TMP_PREFIX}{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a crash of the machine
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def read(path):
    """``(meta, arrays)`` of a backup; ValueError naming the file if it is unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(
            f"backup_dir: {path!r} is not a readable cnnx backup ({e}); delete it to start afresh"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != "cnnx-backup":
        raise ValueError(f"backup_dir: {path!r} is not a cnnx backup")
    return meta, arrays


def restore(model, state, saved, path):
    """Put the backup into the model, its optimiser and the generators; returns
    ``(epoch, callback states)``. Nothing changes if the backup does not fit."""
    from . import random as _random

    meta, arrays = saved
    where = f"backup_dir: the backup {path!r}"
    params = arrays.get("params")
    if params is None or params.shape != model.store.params.shape:
        got = "no" if params is None else f"{params.size:,}"
        raise ValueError(
            f"{where} holds {got} parameters, the model has "
            f"{model.store.params.size:,}: it belongs to another model (delete it "
            "or use another backup_dir)"
        )
    buffers = _buffers(model)
    for i, name, buf in buffers:
        a = arrays.get(f"buffer/{i}/{name}")
        if a is None or a.shape != buf.shape:
            raise ValueError(f"{where} does not match the model's buffer {name!r} of layer {i}")
    opt = model.optimizer
    o = meta["optimizer"]
    if o["class"] != type(opt).__name__:
        raise ValueError(
            f"{where} was written with optimizer {o['class']}, the model is "
            f"compiled with {type(opt).__name__}"
        )
    opt_state = {k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}
    # all checked: now change things
    model.store.params[...] = params
    for i, name, buf in buffers:
        buf[...] = arrays[f"buffer/{i}/{name}"]
    opt.load_state_dict(
        {"iterations": o["iterations"], "initial_lr": o["initial_lr"], "state": opt_state}
    )
    if o.get("lr") is not None:
        opt.lr = float(o["lr"])
    state.rng.bit_generator.state = meta["fit_rng"]
    package = _random.get_rng()
    if package is not state.rng:
        package.bit_generator.state = meta["package_rng"]
    callback_states = []
    for c in meta.get("callbacks", []):
        st = dict(c["state"])
        for k in c.get("arrays", []):
            st[k] = arrays[f"callback/{c['index']}/{k}"]
        callback_states.append((c["index"], c["class"], st))
    return int(meta["epoch"]), callback_states


def restore_callbacks(callbacks, states):
    """Give each callback (same place in the list, same class) its saved state."""
    for index, cls, st in states:
        if index < len(callbacks) and type(callbacks[index]).__name__ == cls:
            callbacks[index].load_state_dict(st)


def remove_temporaries(directory):
    """Temporaries of writes that were killed."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for n in names:
        if n.startswith(_TMP_PREFIX) and n.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, n))
            except OSError:
                pass
