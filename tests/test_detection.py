"""cnnx.detection against hand-worked cases (IoU, NMS, AP/mAP, grid encoding)."""

import math

import numpy as np
import pytest

from cnnx import detection as D


# ---- IoU ---------------------------------------------------------------------


def test_iou_hand_worked():
    a = [[0, 0, 2, 2], [0, 0, 4, 4]]
    b = [[1, 1, 3, 3], [0, 0, 2, 4], [5, 5, 6, 6], [0, 0, 2, 2]]
    got = D.box_iou(a, b)
    # (0,0,2,2) vs (1,1,3,3): intersection 1, union 4 + 4 - 1 = 7
    # (0,0,4,4) vs (0,0,2,4): intersection 8, union 16
    # (0,0,2,2) vs (0,0,2,4): intersection 4, union 4 + 8 - 4 = 8
    # (0,0,4,4) vs (1,1,3,3): intersection 4, union 16; vs (0,0,2,2): 4/16
    want = np.array([[1 / 7, 0.5, 0.0, 1.0], [0.25, 0.5, 0.0, 0.25]])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_iou_touching_and_empty_boxes():
    assert D.box_iou([[0, 0, 1, 1]], [[1, 0, 2, 1]])[0, 0] == 0.0  # shared edge
    assert D.box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0.0  # empty boxes
    assert D.box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_iou_symmetric_and_bounded(rng):
    a = rng.uniform(0, 50, (20, 2))
    a = np.concatenate([a, a + rng.uniform(1, 20, (20, 2))], axis=1)
    b = rng.uniform(0, 50, (15, 2))
    b = np.concatenate([b, b + rng.uniform(1, 20, (15, 2))], axis=1)
    iou = D.box_iou(a, b)
    np.testing.assert_allclose(iou, D.box_iou(b, a).T)
    assert np.all((iou >= 0) & (iou <= 1))
    np.testing.assert_allclose(np.diag(D.box_iou(a, a)), 1.0)


def test_iou_bad_input_names_argument():
    with pytest.raises(ValueError, match="^a:"):
        D.box_iou([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="^b:"):
        D.box_iou([[0, 0, 1, 1]], [[0, 0, np.nan, 1]])


# ---- NMS -----------------------------------------------------------------------


def test_nms_hand_worked():
    boxes = [
        [0, 0, 10, 10],  # A  0.90
        [1, 1, 11, 11],  # B  0.80  IoU(A,B) = 81/119 = 0.68 -> suppressed by A
        [20, 20, 30, 30],  # C  0.70  far away -> kept
        [0, 0, 10, 5],
    ]  # D  0.95  IoU(D,A) = 50/100 = 0.5, not > 0.5 -> A kept
    scores = [0.9, 0.8, 0.7, 0.95]
    np.testing.assert_array_equal(D.nms(boxes, scores, 0.5), [3, 0, 2])
    # a stricter threshold: 0.4 < IoU(D,A) = 0.5 drops A, so B (IoU with D 36/114) survives
    np.testing.assert_array_equal(D.nms(boxes, scores, 0.4), [3, 1, 2])


def test_batched_nms_keeps_other_classes():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]]
    scores = [0.9, 0.8, 0.7]
    labels = [0, 1, 0]
    np.testing.assert_array_equal(D.batched_nms(boxes, scores, labels, 0.5), [0, 1])


def test_nms_bad_input():
    with pytest.raises(ValueError, match="^scores:"):
        D.nms([[0, 0, 1, 1]], [0.1, 0.2])
    with pytest.raises(ValueError, match="^iou_threshold:"):
        D.nms([[0, 0, 1, 1]], [0.1], iou_threshold=1.5)


# ---- AP / mAP --------------------------------------------------------------------


def test_average_precision_hand_worked():
    # detections down the scores: TP, FP, TP, FP with 3 ground-truth boxes
    recall = [1 / 3, 1 / 3, 2 / 3, 2 / 3]
    precision = [1, 1 / 2, 2 / 3, 1 / 2]
    # interpolated precision is 1 up to recall 1/3, then 2/3 up to 2/3, then 0
    assert D.average_precision(recall, precision) == pytest.approx(1 / 3 + (1 / 3) * (2 / 3))
    assert D.average_precision([0.5, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert D.average_precision([], []) == 0.0


def _hand_case():
    gt = [
        ([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]),
        ([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 1]),
    ]
    dets = [
        (
            [
                [0, 0, 10, 10],  # 0.9 class 0: hits image 0's first box -> TP
                [20, 20, 30, 29],  # 0.7 class 0: IoU 0.9 with the second box -> TP
                [0, 0, 10, 10],
            ],  # 0.6 class 0: the first box again -> duplicate, FP
            [0.9, 0.7, 0.6],
            [0, 0, 0],
        ),
        (
            [
                [40, 40, 50, 50],  # 0.8 class 0: nothing there -> FP (image 1's class-0 box missed)
                [52, 50, 62, 60],
            ],  # 0.5 class 1: IoU 80/120 = 0.67 -> TP
            [0.8, 0.5],
            [0, 1],
        ),
    ]
    return dets, gt


def test_map_hand_worked():
    dets, gt = _hand_case()
    m, aps = D.mean_average_precision(dets, gt, 0.5)
    # class 0: TP, FP, TP, FP over 3 boxes -> 5/9; class 1: 1
    assert aps[0] == pytest.approx(5 / 9)
    assert aps[1] == pytest.approx(1.0)
    assert m == pytest.approx((5 / 9 + 1) / 2)


def test_map_threshold_matters():
    dets, gt = _hand_case()
    # at IoU 0.7 the class-1 detection (IoU 0.67) becomes a miss
    _, aps = D.mean_average_precision(dets, gt, 0.7)
    assert aps[1] == 0.0
    assert aps[0] == pytest.approx(5 / 9)  # its hits have IoU 1 and 0.9


def test_map_perfect_and_label_swap():
    gt = [([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 1])]
    perfect = [([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [0, 1])]
    assert D.mean_average_precision(perfect, gt)[0] == pytest.approx(1.0)
    swapped = [([[0, 0, 10, 10], [20, 0, 30, 10]], [0.9, 0.8], [1, 0])]
    assert D.mean_average_precision(swapped, gt)[0] == 0.0


def test_map_bad_input():
    with pytest.raises(ValueError, match="^detections:"):
        D.mean_average_precision([], [([[0, 0, 1, 1]], [0])])
    with pytest.raises(ValueError, match="^detections:"):
        D.mean_average_precision([([[0, 0, 1, 1]], [0.5, 0.2], [0])], [([[0, 0, 1, 1]], [0])])


# ---- the grid encoding ---------------------------------------------------------------


def test_encode_grid_hand_worked():
    # 64 pixels, 8x8 grid: cells of 8 pixels. Box (10,20)-(30,28): centre (20, 24)
    # -> column 2 (20/8 = 2.5), row 3 (24/8 = 3.0); offsets (0.5, 0.0);
    # size 20 x 8 with anchor 16 -> log(1.25), log(0.5)
    boxes = np.array([[[10, 20, 30, 28], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[2, -1]])
    t = D.encode_grid(boxes, labels, grid=8, image_size=64, anchor=16)
    assert t["obj"].sum() == 1 and t["obj"][0, 3, 2] == 1
    np.testing.assert_allclose(t["xy"][0, 3, 2], [0.5, 0.0])
    np.testing.assert_allclose(t["wh"][0, 3, 2], [math.log(1.25), math.log(0.5)], rtol=1e-6)
    assert t["cls"][0, 3, 2] == 2 and (t["cls"] >= 0).sum() == 1


def test_decode_inverts_encode(rng):
    m, grid, k, n_cls = 3, 8, 4, 5
    xy0 = rng.uniform(0, 50, (m, k, 2))
    boxes = np.concatenate([xy0, xy0 + rng.uniform(4, 14, (m, k, 2))], axis=2)
    # one object per cell: place them in distinct quadrants
    boxes[:, :, [0, 2]] = boxes[:, :, [0, 2]] * 0.4 + np.array([0, 32, 0, 32])[None, :, None]
    boxes[:, :, [1, 3]] = boxes[:, :, [1, 3]] * 0.4 + np.array([0, 0, 32, 32])[None, :, None]
    labels = rng.integers(0, n_cls, (m, k))
    t = D.encode_grid(boxes, labels, grid, 64, 12)
    out = np.zeros((m, grid, grid, 5 + n_cls))
    out[..., 0] = np.where(t["obj"] > 0, 8.0, -8.0)
    xy = np.clip(t["xy"], 1e-6, 1 - 1e-6)
    out[..., 1:3] = np.log(xy / (1 - xy))
    out[..., 3:5] = t["wh"]
    out[..., 5:] = 10.0 * np.eye(n_cls)[np.maximum(t["cls"], 0)]
    dets = D.postprocess(out, 64, 12, score_threshold=0.5)
    for i in range(m):
        b, s, l = dets[i]
        assert len(b) == k
        iou = D.box_iou(b, boxes[i])
        np.testing.assert_allclose(iou.max(axis=1), 1.0, atol=1e-4)
        np.testing.assert_array_equal(l, labels[i][iou.argmax(axis=1)])
    gt = [(boxes[i], labels[i]) for i in range(m)]
    assert D.mean_average_precision(dets, gt)[0] == pytest.approx(1.0)


def test_grid_bad_input():
    with pytest.raises(ValueError, match="^boxes:"):
        D.encode_grid(np.zeros((2, 4)), np.zeros((2,)), 8, 64, 16)
    with pytest.raises(ValueError, match="^labels:"):
        D.encode_grid(np.zeros((1, 2, 4)), np.zeros((1, 3)), 8, 64, 16)
    with pytest.raises(ValueError, match="^anchor:"):
        D.encode_grid(np.zeros((1, 2, 4)), -np.ones((1, 2)), 8, 64, 0)
    with pytest.raises(ValueError, match="^output:"):
        D.decode_grid(np.zeros((1, 8, 8, 5)), 64, 16)


# ---- the example's loss: gradient vs finite differences -----------------------------


def _load_detect_example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "detect.py"
    spec = importlib.util.spec_from_file_location("_detect_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_detection_loss_gradient_finite_differences(rng):
    ex = _load_detect_example()
    m, grid, n_cls = 2, 4, 3
    boxes = np.array(
        [[[2, 3, 12, 11], [20, 18, 30, 31]], [[5, 17, 14, 29], [0, 0, 0, 0]]], np.float32
    )
    labels = np.array([[0, 2], [1, -1]])
    t = D.encode_grid(boxes, labels, grid, 32, 8)
    out = rng.standard_normal((m, grid, grid, 5 + n_cls)).astype(np.float32)
    loss, parts, grad = ex.detection_loss(out, t)
    assert loss == pytest.approx(sum(parts), rel=1e-6)
    # the objectness term against a NumPy binary cross-entropy
    p = 1 / (1 + np.exp(-out[..., 0].astype(np.float64)))
    bce = -np.sum(t["obj"] * np.log(p) + (1 - t["obj"]) * np.log(1 - p)) / m
    assert parts[0] == pytest.approx(bce, rel=1e-4)
    flat = out.reshape(-1).astype(np.float64)
    pos = np.argwhere(t["obj"] > 0)
    idxs = [
        np.ravel_multi_index((i, r, c, ch), out.shape) for i, r, c in pos for ch in range(5 + n_cls)
    ] + list(rng.choice(flat.size, 10, replace=False))
    eps = 1e-3
    for k in idxs:
        a, b = flat.copy(), flat.copy()
        a[k] += eps
        b[k] -= eps
        fd = (
            ex.detection_loss(a.reshape(out.shape).astype(np.float32), t)[0]
            - ex.detection_loss(b.reshape(out.shape).astype(np.float32), t)[0]
        ) / (2 * eps)
        g = grad.reshape(-1)[k]
        assert abs(fd - g) <= 2e-2 * max(abs(fd), abs(g)) + 2e-3, (k, fd, g)
