"""Pictures: learned filters, feature maps, training curves, image grids.

matplotlib is an optional extra (``pip install "cnnx[viz]"``); it is
imported only when a picture is drawn, and only its object API is used (no
pyplot, no display needed). Every function returns a
``matplotlib.figure.Figure`` and, given ``path``, also writes it (PNG, SVG
or PDF by extension).
"""

import math

import numpy as np

__all__ = ["plot_filters", "feature_maps", "plot_feature_maps", "plot_history", "plot_images"]


def _figure(ncols, nrows, cell=1.6, extra_h=0.4):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "cnnx.viz needs matplotlib: pip install 'cnnx[viz]' (or pip install matplotlib)"
        ) from None
    return Figure(figsize=(max(cell * ncols, 3.0), cell * nrows + extra_h), dpi=100)


def _save(fig, path):
    if path is not None:
        import os

        d = os.path.dirname(os.fspath(path))
        if d:
            os.makedirs(d, exist_ok=True)
        fig.savefig(os.fspath(path), bbox_inches="tight")
    return fig


def _grid(n, ncols=None):
    ncols = ncols or min(n, max(1, math.ceil(math.sqrt(n))))
    return ncols, math.ceil(n / ncols)


def plot_images(
    images, titles=None, path=None, ncols=None, cmap="gray", suptitle=None, symmetric=False
):
    """A grid of 2-D (or RGB) images. ``images``: a list, an ``(n, H, W)``
    array, or a dict title -> image. ``symmetric=True`` (or one bool per
    image) shows signed values such as edge responses on a blue-white-red
    scale centred on zero, clipped at the 99.5th percentile of |value| so a
    few strong pixels do not wash out the rest."""
    if isinstance(images, dict):
        titles = list(images.keys())
        images = list(images.values())
    images = [np.asarray(im, dtype=np.float32) for im in images]
    if not images:
        raise ValueError("images: expected at least one image")
    ncols, nrows = _grid(len(images), ncols)
    fig = _figure(ncols, nrows, cell=2.2)
    signed = (
        list(symmetric) if isinstance(symmetric, (list, tuple)) else [bool(symmetric)] * len(images)
    )
    for i, im in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if im.ndim == 3 and im.shape[2] == 1:
            im = im[..., 0]
        if im.ndim == 3:
            lo, hi = float(im.min()), float(im.max())
            ax.imshow((im - lo) / (hi - lo + 1e-12))
        elif i < len(signed) and signed[i]:
            v = float(np.percentile(np.abs(im), 99.5)) or float(np.abs(im).max()) or 1.0
            ax.imshow(im, cmap="RdBu_r", vmin=-v, vmax=v)
        else:
            ax.imshow(im, cmap=cmap)
        if titles is not None and i < len(titles):
            ax.set_title(str(titles[i]), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


def _kernel_of(weights):
    if hasattr(weights, "params") and isinstance(weights.params, dict):
        if "kernel" not in weights.params:
            raise ValueError(f"weights: layer {getattr(weights, 'name', weights)!r} has no kernel")
        weights = weights.params["kernel"]
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(
            f"weights: expected an HWIO kernel (f_h, f_w, n_C_prev, n_C) or a "
            f"Conv2D layer, got shape {w.shape}"
        )
    return w


def plot_filters(weights, path=None, ncols=None, max_filters=64, title=None):
    """A grid of learned filters: one cell per output channel (``n_C``).

    ``weights``: an HWIO kernel ``(f_h, f_w, n_C_prev, n_C)`` or a built
    ``Conv2D`` layer. RGB filters (``n_C_prev == 3``) are shown in colour,
    others as the mean over the input channels on a blue-white-red scale.
    """
    w = _kernel_of(weights)
    n = min(w.shape[3], int(max_filters))
    cells = []
    for j in range(n):
        k = w[:, :, :, j]
        cells.append(k if k.shape[2] == 3 else k.mean(axis=2))
    rgb = w.shape[2] == 3
    return plot_images(
        cells,
        titles=[f"#{j}" for j in range(n)],
        path=path,
        ncols=ncols,
        symmetric=not rgb,
        suptitle=title or f"{n} filters of {w.shape[0]}x{w.shape[1]}x{w.shape[2]}",
    )


def feature_maps(model, image, layer):
    """Activations of ``model`` for one image after ``layer``.

    ``layer``: an index into ``model.layers`` or a layer's name. ``image``:
    ``(n_H, n_W, n_C)`` or a batch of one. Returns ``(n_H', n_W', n_C')``.
    """
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"image: expected (n_H, n_W, n_C) or (1, n_H, n_W, n_C), got {x.shape}")
    layers = list(model.layers)
    if isinstance(layer, str):
        names = [getattr(lay, "name", None) for lay in layers]
        if layer not in names:
            raise ValueError(f"layer: no layer named {layer!r}; layers are {names}")
        idx = names.index(layer)
    else:
        idx = int(layer)
        if not -len(layers) <= idx < len(layers):
            raise ValueError(f"layer: index {layer} out of range for {len(layers)} layers")
        idx %= len(layers)
    for lay in layers[: idx + 1]:
        x = lay.forward(x, training=False)
    return x[0]


def plot_feature_maps(model, image, layer, path=None, max_maps=16, ncols=None):
    """The first ``max_maps`` channels of a layer's output for one image."""
    a = feature_maps(model, image, layer)
    if a.ndim != 3:
        raise ValueError(f"layer: its output has shape {a.shape}; pick a layer with (H, W, C) maps")
    n = min(a.shape[2], int(max_maps))
    name = layer if isinstance(layer, str) else getattr(model.layers[layer], "name", layer)
    return plot_images(
        [a[:, :, c] for c in range(n)],
        titles=[f"ch {c}" for c in range(n)],
        path=path,
        ncols=ncols,
        cmap="viridis",
        suptitle=f"{name}: {a.shape[0]}x{a.shape[1]}x{a.shape[2]} feature maps",
    )


def plot_history(history, path=None, title=None, keys=None):
    """Loss and metric curves per epoch from a ``History`` (``.history``
    dict) or a plain dict of lists, e.g. ``{"loss": [...], "val_loss":
    [...], "accuracy": [...]}``. One panel per quantity, validation dashed.
    ``keys``: the quantities to draw (default: all but ``lr`` and ``time``)."""
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h:
        raise ValueError("history: expected a History or a dict of per-epoch lists")
    base = []
    for k in h:
        b = k[4:] if k.startswith("val_") else k
        if b not in base and (b in keys if keys is not None else b not in ("lr", "time")):
            base.append(b)
    if not base:
        raise ValueError(f"keys: none of {keys!r} is in the history ({sorted(h)})")
    fig = _figure(len(base), 1, cell=3.2)
    from matplotlib.ticker import MaxNLocator

    for i, b in enumerate(base):
        ax = fig.add_subplot(1, len(base), i + 1)
        for key, style in ((b, "-o"), ("val_" + b, "--s")):
            if key in h and len(h[key]):
                ys = np.asarray(h[key], dtype=float)
                ax.plot(np.arange(1, len(ys) + 1), ys, style, label=key, markersize=3)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(b)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
