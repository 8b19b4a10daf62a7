"""Box utilities for object detection: IoU, non-max suppression, mAP@0.5,
and the encoding of boxes on a YOLO-style grid.

Boxes are ``(x_min, y_min, x_max, y_max)`` in pixels, max exclusive (as
:func:`cnnx.datasets.make_shapes` returns them): a box's width is
``x_max - x_min`` and its area ``width * height``.

The grid head (``examples/detect.py``): the image of ``image_size`` pixels
is cut into ``grid x grid`` cells of ``cell = image_size / grid`` pixels and
the network outputs ``(m, grid, grid, 5 + n_classes)`` numbers, per cell::

    [objectness logit, t_x, t_y, t_w, t_h, class logits ...]

An object belongs to the cell holding its centre. Its targets there are
objectness 1, ``sigmoid(t_x) = c_x / cell - col`` (the centre's offset
inside the cell, in [0, 1)), the same for y, ``t_w = log(w / anchor)``,
``t_h = log(h / anchor)`` and its class; every other cell has objectness 0
and no box or class target. :func:`encode_grid` builds those targets,
:func:`decode_grid` turns outputs back into boxes with scores, and
:func:`postprocess` keeps confident ones and applies per-class NMS.
Everything is vectorised over boxes and cells; only the greedy NMS loop
runs once per *kept* box.
"""

import numpy as np

__all__ = [
    "box_area",
    "box_iou",
    "nms",
    "batched_nms",
    "average_precision",
    "mean_average_precision",
    "encode_grid",
    "decode_grid",
    "postprocess",
    "N_BOX_CHANNELS",
]

#: channels before the class logits: objectness, t_x, t_y, t_w, t_h
N_BOX_CHANNELS = 5


def _boxes(b, name):
    a = np.asarray(b, dtype=np.float64)
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(
            f"{name}: expected boxes of shape (n, 4) as (x_min, y_min, x_max, "
            f"y_max), got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: boxes must be finite")
    return a


def box_area(boxes):
    """Area of each box, ``max(x_max - x_min, 0) * max(y_max - y_min, 0)``."""
    b = _boxes(boxes, "boxes")
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_iou(a, b):
    """Intersection over union of every box of ``a`` (n, 4) with every box of ``b`` (k, 4).

    Returns ``(n, k)`` float64; two empty boxes have IoU 0.
    """
    a = _boxes(a, "a")
    b = _boxes(b, "b")
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes, scores, iou_threshold=0.5):
    """Greedy non-max suppression: indices of the kept boxes, highest score first.

    Repeatedly keep the best remaining box and drop every remaining box whose
    IoU with it is *greater than* ``iou_threshold``. Ties in score keep the
    lower index first.
    """
    b = _boxes(boxes, "boxes")
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (b.shape[0],):
        raise ValueError(f"scores: expected shape ({b.shape[0]},), got {s.shape}")
    t = float(iou_threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"iou_threshold: expected a number in [0, 1], got {iou_threshold!r}")
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        iou = box_iou(b[i : i + 1], b[order[1:]])[0]
        order = order[1:][iou <= t]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes, scores, labels, iou_threshold=0.5):
    """NMS within each class (boxes of different labels never suppress each other).

    Done in one :func:`nms` call by shifting each class's boxes to its own
    region of the plane. Returns kept indices, highest score first.
    """
    b = _boxes(boxes, "boxes")
    lab = np.asarray(labels)
    if lab.shape != (b.shape[0],):
        raise ValueError(f"labels: expected shape ({b.shape[0]},), got {lab.shape}")
    if b.shape[0] == 0:
        return np.zeros(0, np.int64)
    span = float(np.abs(b).max()) * 2 + 1
    shifted = b + (lab.astype(np.float64) * span)[:, None]
    return nms(shifted, scores, iou_threshold)


def average_precision(recall, precision):
    """Area under the precision-recall curve, all-point interpolation (PASCAL VOC 2010+).

    ``recall``/``precision`` are the cumulative values down the score-sorted
    detections. Precision is first made monotone (each point takes the best
    precision at any higher recall), then summed over the recall steps.
    """
    r = np.concatenate([[0.0], np.asarray(recall, np.float64), [1.0]])
    p = np.concatenate([[0.0], np.asarray(precision, np.float64), [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def mean_average_precision(detections, ground_truth, iou_threshold=0.5, n_classes=None):
    """mAP at an IoU threshold (0.5: "mAP@0.5"), PASCAL VOC style.

    Args:
        detections: one ``(boxes (d, 4), scores (d,), labels (d,))`` per image.
        ground_truth: one ``(boxes (g, 4), labels (g,))`` per image.
        iou_threshold: a detection is a true positive when its IoU with a
            not yet matched ground-truth box of its class is at least this.
        n_classes: classes ``0..n_classes-1`` (default: every label seen).

    Per class, detections of all images are sorted by score; each is matched
    to the unmatched ground-truth box of its image with the highest IoU
    (>= threshold: true positive, else false positive, as is a second hit on
    an already matched box). AP is :func:`average_precision` of the
    resulting curve; classes with no ground-truth box are left out of the
    mean. Returns ``(mAP, {class: AP})``.
    """
    if len(detections) != len(ground_truth):
        raise ValueError(
            f"detections: expected one entry per image ({len(ground_truth)}), got {len(detections)}"
        )
    thr = float(iou_threshold)
    if not 0.0 < thr <= 1.0:
        raise ValueError(f"iou_threshold: expected a number in (0, 1], got {iou_threshold!r}")
    dets = []
    gts = []
    for i, (d, g) in enumerate(zip(detections, ground_truth)):
        db = _boxes(d[0], "detections")
        ds = np.asarray(d[1], np.float64).reshape(-1)
        dl = np.asarray(d[2]).reshape(-1).astype(np.int64)
        if not (len(ds) == len(dl) == db.shape[0]):
            raise ValueError(
                f"detections: image {i} has {db.shape[0]} boxes, {len(ds)} scores "
                f"and {len(dl)} labels"
            )
        gb = _boxes(g[0], "ground_truth")
        gl = np.asarray(g[1]).reshape(-1).astype(np.int64)
        if len(gl) != gb.shape[0]:
            raise ValueError(
                f"ground_truth: image {i} has {gb.shape[0]} boxes and {len(gl)} labels"
            )
        dets.append((db, ds, dl))
        gts.append((gb, gl))
    seen = set()
    for _gb, gl in gts:
        seen.update(gl.tolist())
    if n_classes is None:
        classes = sorted(seen)
    else:
        classes = [c for c in range(int(n_classes)) if c in seen]
    aps = {}
    for c in classes:
        img_idx, scores, boxes = [], [], []
        for i, (db, ds, dl) in enumerate(dets):
            m = dl == c
            img_idx.append(np.full(int(m.sum()), i))
            scores.append(ds[m])
            boxes.append(db[m])
        img_idx = np.concatenate(img_idx)
        scores = np.concatenate(scores)
        boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
        gt_c = [gb[gl == c] for gb, gl in gts]
        n_gt = sum(len(g) for g in gt_c)
        order = np.argsort(-scores, kind="stable")
        matched = [np.zeros(len(g), bool) for g in gt_c]
        tp = np.zeros(len(order))
        for k, j in enumerate(order):
            g = gt_c[img_idx[j]]
            if len(g) == 0:
                continue
            iou = box_iou(boxes[j : j + 1], g)[0]
            best = int(np.argmax(np.where(matched[img_idx[j]], -1.0, iou)))
            if iou[best] >= thr and not matched[img_idx[j]][best]:
                matched[img_idx[j]][best] = True
                tp[k] = 1.0
        ctp = np.cumsum(tp)
        cfp = np.cumsum(1.0 - tp)
        recall = ctp / n_gt
        precision = ctp / np.maximum(ctp + cfp, 1e-12)
        aps[c] = average_precision(recall, precision)
    m_ap = float(np.mean(list(aps.values()))) if aps else 0.0
    return m_ap, aps


# ---------------------------------------------------------------------------
# The grid encoding
# ---------------------------------------------------------------------------


def _grid_args(grid, image_size, anchor):
    grid = int(grid)
    if grid < 1:
        raise ValueError(f"grid: expected a positive int, got {grid!r}")
    image_size = float(image_size)
    if not image_size > 0:
        raise ValueError(f"image_size: expected a positive number, got {image_size!r}")
    anchor = float(anchor)
    if not anchor > 0:
        raise ValueError(f"anchor: expected a positive number, got {anchor!r}")
    return grid, image_size, anchor


def encode_grid(boxes, labels, grid, image_size, anchor):
    """Targets of the grid head for a batch.

    Args:
        boxes: ``(m, k, 4)`` boxes, padded; ``labels``: ``(m, k)`` ints,
            ``-1`` marks padding (no object).
        grid: cells per side; image_size: pixels per side; anchor: the box
            size (pixels) that ``t_w = 0`` stands for.

    Returns a dict of arrays: ``obj`` ``(m, grid, grid)`` float32 0/1,
    ``xy`` ``(m, grid, grid, 2)`` the centre's offset in its cell in [0, 1),
    ``wh`` ``(m, grid, grid, 2)`` ``log(size / anchor)``, ``cls``
    ``(m, grid, grid)`` int64 (-1 where no object). When two objects share
    a cell the later one wins.
    """
    grid, size, anchor = _grid_args(grid, image_size, anchor)
    b = np.asarray(boxes, np.float64)
    lab = np.asarray(labels).astype(np.int64)
    if b.ndim != 3 or b.shape[2] != 4:
        raise ValueError(f"boxes: expected shape (m, k, 4), got {b.shape}")
    if lab.shape != b.shape[:2]:
        raise ValueError(f"labels: expected shape {b.shape[:2]}, got {lab.shape}")
    m = b.shape[0]
    cell = size / grid
    obj = np.zeros((m, grid, grid), np.float32)
    xy = np.zeros((m, grid, grid, 2), np.float32)
    wh = np.zeros((m, grid, grid, 2), np.float32)
    cls = np.full((m, grid, grid), -1, np.int64)
    img, k = np.nonzero(lab >= 0)
    if img.size == 0:
        return {"obj": obj, "xy": xy, "wh": wh, "cls": cls}
    bb = b[img, k]
    w = bb[:, 2] - bb[:, 0]
    h = bb[:, 3] - bb[:, 1]
    if np.any(w <= 0) or np.any(h <= 0):
        raise ValueError("boxes: every labelled box needs x_max > x_min and y_max > y_min")
    cx = (bb[:, 0] + bb[:, 2]) / 2 / cell
    cy = (bb[:, 1] + bb[:, 3]) / 2 / cell
    col = np.clip(np.floor(cx).astype(np.int64), 0, grid - 1)
    row = np.clip(np.floor(cy).astype(np.int64), 0, grid - 1)
    obj[img, row, col] = 1.0
    xy[img, row, col, 0] = np.clip(cx - col, 0.0, 1.0)
    xy[img, row, col, 1] = np.clip(cy - row, 0.0, 1.0)
    wh[img, row, col, 0] = np.log(w / anchor)
    wh[img, row, col, 1] = np.log(h / anchor)
    cls[img, row, col] = lab[img, k]
    return {"obj": obj, "xy": xy, "wh": wh, "cls": cls}


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def decode_grid(output, image_size, anchor):
    """Boxes, scores and labels from the grid head's raw output.

    ``output``: ``(m, grid, grid, 5 + n_classes)`` as the module docstring
    lays out. Returns ``boxes (m, grid*grid, 4)``, ``scores (m, grid*grid)``
    = sigmoid(objectness) * the best class probability, ``labels (m,
    grid*grid)`` (cells in row-major order).
    """
    out = np.asarray(output, np.float64)
    if out.ndim != 4 or out.shape[1] != out.shape[2] or out.shape[3] < N_BOX_CHANNELS + 1:
        raise ValueError(f"output: expected (m, grid, grid, 5 + n_classes), got {out.shape}")
    grid = out.shape[1]
    grid, size, anchor = _grid_args(grid, image_size, anchor)
    cell = size / grid
    m = out.shape[0]
    cols = np.arange(grid)[None, None, :]
    rows = np.arange(grid)[None, :, None]
    cx = (cols + _sigmoid(out[..., 1])) * cell
    cy = (rows + _sigmoid(out[..., 2])) * cell
    w = anchor * np.exp(np.clip(out[..., 3], -10, 10))
    h = anchor * np.exp(np.clip(out[..., 4], -10, 10))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    logits = out[..., N_BOX_CHANNELS:]
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=-1, keepdims=True)
    labels = p.argmax(axis=-1)
    scores = _sigmoid(out[..., 0]) * p.max(axis=-1)
    return (
        boxes.reshape(m, grid * grid, 4),
        scores.reshape(m, grid * grid),
        labels.reshape(m, grid * grid),
    )


def postprocess(output, image_size, anchor, score_threshold=0.05, iou_threshold=0.5):
    """Detections per image: ``[(boxes, scores, labels), ...]`` after a score
    threshold and per-class NMS, highest score first."""
    boxes, scores, labels = decode_grid(output, image_size, anchor)
    res = []
    for b, s, l in zip(boxes, scores, labels):
        keep = s >= float(score_threshold)
        b, s, l = b[keep], s[keep], l[keep]
        k = batched_nms(b, s, l, iou_threshold)
        res.append((b[k], s[k], l[k]))
    return res
