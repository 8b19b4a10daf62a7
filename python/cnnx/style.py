"""Neural style transfer's losses: Gram matrices, content loss, style loss.

For feature maps ``x`` of shape ``(m, n_H, n_W, n_C)`` let ``F`` be one
image's maps as an ``(n_H*n_W, n_C)`` matrix (one row per position, NHWC
makes that a free reshape). Its **Gram matrix**::

    G = F^T F / (n_H * n_W)          (n_C x n_C)

holds how strongly each pair of channels fires *together*, averaged over
positions: where things are is summed away, what co-occurs (textures,
colours, strokes) stays. That is "style". Content is the maps themselves.

- ``content_loss(x, target) = mean((x - target)^2)``;
- ``style_loss(x, target_gram) = mean((G(x) - target_gram)^2)`` over the
  ``m * n_C * n_C`` entries.

Both return ``(loss, dloss/dx)``. The gradient of the Gram matrix is
``dF = F (dG + dG^T) / (n_H*n_W)``. The products run on the core SGEMM
(one call per image, each a full ``(n_C x n_H*n_W) x (n_H*n_W x n_C)``
product, the transpose folded into the kernel), not in Python.
"""

import numpy as np

from . import _core
from ._validate import as_float32

__all__ = ["gram_matrix", "gram_matrix_backward", "content_loss", "style_loss"]


def _maps(x, name):
    x = as_float32(x, name)
    if x.ndim != 4:
        raise ValueError(f"{name}: expected feature maps (m, n_H, n_W, n_C), got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: expected non-empty feature maps, got shape {x.shape}")
    return x


def gram_matrix(x):
    """``(m, n_C, n_C)`` Gram matrices ``F^T F / (n_H n_W)`` of NHWC maps ``x``."""
    x = _maps(x, "x")
    m, h, w, c = x.shape
    alpha = 1.0 / (h * w)
    out = np.empty((m, c, c), np.float32)
    for i in range(m):  # one GEMM per image (the kernel does the work)
        out[i] = _core.sgemm(x[i].reshape(h * w, c), x[i].reshape(h * w, c), True, False, alpha)
    return out


def gram_matrix_backward(dg, x):
    """Gradient w.r.t. ``x`` given ``dg = dL/dG``: ``F (dG + dG^T) / (n_H n_W)`` per image."""
    x = _maps(x, "x")
    m, h, w, c = x.shape
    dg = as_float32(dg, "dg")
    if dg.shape != (m, c, c):
        raise ValueError(f"dg: expected shape {(m, c, c)}, got {dg.shape}")
    sym = np.ascontiguousarray(dg + dg.transpose(0, 2, 1), dtype=np.float32)
    alpha = 1.0 / (h * w)
    dx = np.empty_like(x)
    for i in range(m):
        dx[i] = _core.sgemm(x[i].reshape(h * w, c), sym[i], False, False, alpha).reshape(h, w, c)
    return dx


def content_loss(x, target):
    """``mean((x - target)^2)`` and its gradient ``2 (x - target) / x.size``."""
    x = as_float32(x, "x")
    target = as_float32(target, "target")
    if target.shape != x.shape:
        raise ValueError(f"target: expected shape {x.shape} (x's), got {target.shape}")
    d = x - target
    return float(np.mean(d.astype(np.float64) ** 2)), (d * np.float32(2.0 / d.size))


def style_loss(x, target_gram):
    """``mean((gram_matrix(x) - target_gram)^2)`` and its gradient w.r.t. ``x``.

    ``target_gram``: ``(n_C, n_C)`` (the same style for every image) or
    ``(m, n_C, n_C)``.
    """
    x = _maps(x, "x")
    m, _, _, c = x.shape
    t = as_float32(target_gram, "target_gram")
    if t.shape == (c, c):
        t = t[None]
    if t.shape not in ((1, c, c), (m, c, c)):
        raise ValueError(f"target_gram: expected shape {(c, c)} or {(m, c, c)}, got {t.shape}")
    g = gram_matrix(x)
    d = g - t
    loss = float(np.mean(d.astype(np.float64) ** 2))
    dg = d * np.float32(2.0 / d.size)
    return loss, gram_matrix_backward(dg, x)
