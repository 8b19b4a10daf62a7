"""Object detection, the second problem of the course: a single-stage,
YOLO-style grid detector trained on generated multi-object scenes.

    python examples/detect.py            # full settings (8,000 scenes, 15 epochs)
    python examples/detect.py --quick    # under a minute

Scenes: 64x64 canvases cut into four 32x32 quadrants; each quadrant holds,
with probability 0.7, one shape from ``cnnx.datasets.make_shapes`` (circle,
square, triangle or line; its size and place inside the quadrant drawn at
random, 8 to 20 pixels across), plus Gaussian noise over the whole canvas.
Every scene has 1 to 4 objects, each with its tight box and class.

The network (all ``cnnx`` layers): four 3x3 convolutions with ReLU and batch
normalisation and three 2x2 max poolings take the 64x64 image to an 8x8 grid
of 64-channel features, one per 8x8-pixel cell (receptive field 38 pixels,
enough to see a whole object from its centre cell). Then the head: two 1x1
convolutions, the second with ``5 + n_classes`` filters, predict per cell
``[objectness, t_x, t_y, t_w, t_h, class logits]`` (see
:mod:`cnnx.detection` for the encoding: centre offset in the cell through a
sigmoid, size as ``anchor * exp(t)``).

The loss, on the library's API (``F.sigmoid``, ``F.softmax_cross_entropy``),
summed over cells and averaged over images:

- objectness: binary cross-entropy on every cell (gradient ``sigmoid(o) - t``);
- box: ``5 * [(sigmoid(t_xy) - offset)^2 + (t_wh - log(size/anchor))^2]`` on
  the cells that hold an object;
- class: softmax cross-entropy on those cells.

The gradient w.r.t. the head's output goes through ``model.backward`` and an
Adam step. Evaluation: decode, drop scores below 0.05, per-class NMS at IoU
0.5, then mAP@0.5 (PASCAL VOC all-point AP) on held-out scenes drawn with
other seeds. A PNG of test scenes with their predicted boxes (green: right
class and IoU >= 0.5 with a true box; red: wrong) goes to ``--out-dir``.
The last line printed is the mAP.
"""

import argparse
import os
import time

import numpy as np

import cnnx
import cnnx.functional as F
from cnnx import detection as D
from cnnx.datasets import SHAPE_NAMES, make_shapes

SIZE, GRID, ANCHOR = 64, 8, 12.0


def make_scenes(n, seed, p_object=0.7, noise=0.05):
    """``n`` 64x64 scenes: images (n, 64, 64, 1), boxes (n, 4, 4), labels (n, 4) (-1: none)."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((n, SIZE, SIZE, 1), np.float32)
    boxes = np.zeros((n, 4, 4), np.float32)
    labels = np.full((n, 4), -1, np.int64)
    present = rng.random((n, 4)) < p_object
    present[~present.any(axis=1), rng.integers(0, 4)] = True  # at least one object
    half = SIZE // 2
    for q in range(4):  # four quadrants, each one vectorised make_shapes call
        y0, x0 = half * (q // 2), half * (q % 2)
        img, lab, box = make_shapes(n, size=half, seed=seed * 7 + q + 1, noise=0.0)
        keep = present[:, q]
        canvas[:, y0 : y0 + half, x0 : x0 + half] = img * keep[:, None, None, None]
        boxes[:, q] = box + np.array([x0, y0, x0, y0], np.float32)
        labels[:, q] = np.where(keep, lab, -1)
    canvas += rng.normal(0.0, noise, canvas.shape).astype(np.float32)
    np.clip(canvas, 0.0, 1.0, out=canvas)
    return canvas, boxes, labels


def build_model(n_classes):
    def conv(c, k=3):
        return [
            cnnx.Conv2D(c, k, padding="same", use_bias=False),
            cnnx.BatchNormalization(momentum=0.9),
            cnnx.ReLU(),
        ]

    return cnnx.Sequential(
        conv(16)
        + [cnnx.MaxPool2D(2)]
        + conv(32)
        + [cnnx.MaxPool2D(2)]
        + conv(64)
        + [cnnx.MaxPool2D(2)]
        + conv(64)
        + [
            cnnx.Conv2D(64, 1, activation="relu"),  # 1x1: mixes channels per cell
            cnnx.Conv2D(D.N_BOX_CHANNELS + n_classes, 1),
        ],  # 1x1: the per-cell predictions
        input_shape=(SIZE, SIZE, 1),
    )


def detection_loss(out, t, box_weight=5.0):
    """Loss and its gradient w.r.t. the head's output ``out`` (m, G, G, 5+K)."""
    m = out.shape[0]
    grad = np.zeros_like(out)
    # objectness: binary cross-entropy with logits on every cell
    o = out[..., 0]
    p = F.sigmoid(o)
    eps = 1e-7
    obj = t["obj"]
    l_obj = -np.sum(obj * np.log(p + eps) + (1 - obj) * np.log(1 - p + eps)) / m
    grad[..., 0] = (p - obj) / m
    pos = obj > 0
    n_pos = int(pos.sum())
    l_box = l_cls = 0.0
    if n_pos:
        # box: centre offsets through a sigmoid, log-sizes directly
        txy = np.ascontiguousarray(out[..., 1:3][pos])
        sxy = F.sigmoid(txy)
        dxy = sxy - t["xy"][pos]
        twh = out[..., 3:5][pos]
        dwh = twh - t["wh"][pos]
        l_box = box_weight * (np.sum(dxy * dxy) + np.sum(dwh * dwh)) / m
        g = np.zeros((n_pos, 4), np.float32)
        g[:, 0:2] = F.sigmoid_backward(2 * box_weight * dxy / m, sxy)
        g[:, 2:4] = 2 * box_weight * dwh / m
        grad[..., 1:5][pos] = g
        # class: softmax cross-entropy on the cells holding an object
        logits = np.ascontiguousarray(out[..., D.N_BOX_CHANNELS :][pos])
        lc, dlog = F.softmax_cross_entropy(logits, t["cls"][pos])
        l_cls = lc * n_pos / m
        grad[..., D.N_BOX_CHANNELS :][pos] = dlog * (n_pos / m)
    return l_obj + l_box + l_cls, (l_obj, l_box, l_cls), grad


def evaluate(model, x, boxes, labels, n_classes, batch_size=256):
    out = np.concatenate(
        [model.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )
    dets = D.postprocess(out, SIZE, ANCHOR, score_threshold=0.05, iou_threshold=0.5)
    gt = [(b[l >= 0], l[l >= 0]) for b, l in zip(boxes, labels)]
    m_ap, aps = D.mean_average_precision(dets, gt, 0.5, n_classes=n_classes)
    return m_ap, aps, dets, gt


def draw(x, dets, gt, path, n=8, score=0.3):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError as e:
        print(f"(no picture: {e})")
        return False
    fig, axes = plt.subplots(2, n // 2, figsize=(2.6 * n // 2, 5.6))
    for ax, img, (b, s, l), (gb, gl) in zip(axes.ravel(), x[:n], dets[:n], gt[:n]):
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
        for bb in gb:
            ax.add_patch(
                Rectangle(
                    (bb[0] - 0.5, bb[1] - 0.5),
                    bb[2] - bb[0],
                    bb[3] - bb[1],
                    fill=False,
                    ec="yellow",
                    lw=0.8,
                    ls=":",
                )
            )
        for bb, ss, ll in zip(b, s, l):
            if ss < score:
                continue
            iou = D.box_iou(bb[None], gb)[0] if len(gb) else np.zeros(0)
            ok = len(gb) and np.any((iou >= 0.5) & (gl == ll))
            col = "lime" if ok else "red"
            ax.add_patch(
                Rectangle(
                    (bb[0] - 0.5, bb[1] - 0.5),
                    bb[2] - bb[0],
                    bb[3] - bb[1],
                    fill=False,
                    ec=col,
                    lw=1.5,
                )
            )
            ax.text(bb[0], bb[1] - 1, f"{SHAPE_NAMES[ll]} {ss:.2f}", color=col, fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("predicted boxes (green: correct, red: wrong; yellow dotted: truth)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 scenes, 4 epochs (about 30 s)")
    ap.add_argument("--train", type=int, default=None, help="training scenes (default 8,000)")
    ap.add_argument("--test", type=int, default=None, help="held-out scenes (default 1,000)")
    ap.add_argument("--epochs", type=int, default=None, help="default 15 (4 with --quick)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "detect"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    n_train = args.train or (1000 if args.quick else 8000)
    n_test = args.test or (300 if args.quick else 1000)
    epochs = args.epochs or (4 if args.quick else 15)
    n_classes = len(SHAPE_NAMES)
    cnnx.set_seed(args.seed)

    x, boxes, labels = make_scenes(n_train, seed=1000 + args.seed)
    xt, bt, lt = make_scenes(n_test, seed=2000 + args.seed)
    targets = D.encode_grid(boxes, labels, GRID, SIZE, ANCHOR)
    print(
        f"scenes: {n_train} training, {n_test} held out, {SIZE}x{SIZE}, "
        f"{(labels >= 0).sum() / n_train:.2f} objects per scene, classes {SHAPE_NAMES}"
    )
    model = build_model(n_classes)
    print(
        f"detector: {model.count_params():,} parameters, {GRID}x{GRID} grid of "
        f"{D.N_BOX_CHANNELS + n_classes} outputs per cell"
    )
    opt = cnnx.optim.Adam(lr=args.lr)
    model.compile(optimizer=opt, loss="mse")  # the loss is ours; this binds the optimiser
    rng = np.random.default_rng(args.seed)
    bs = args.batch_size
    t0 = time.perf_counter()
    steps = epochs * ((n_train + bs - 1) // bs)
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(n_train)
        tot = np.zeros(4)
        for i in range(0, n_train, bs):
            idx = order[i : i + bs]
            # cosine decay of the learning rate over all steps
            opt.lr = args.lr * 0.5 * (1 + np.cos(np.pi * step / steps))
            step += 1
            out = model.forward(x[idx], training=True)
            tb = {k: v[idx] for k, v in targets.items()}
            loss, parts, grad = detection_loss(out, tb)
            model.zero_grad()
            model.backward(grad)
            opt.step()
            tot += np.array((loss,) + parts) * len(idx)
        tot /= n_train
        print(
            f"epoch {epoch + 1}/{epochs}: loss {tot[0]:.3f} (objectness {tot[1]:.3f}, "
            f"box {tot[2]:.3f}, class {tot[3]:.3f}), {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
    seconds = time.perf_counter() - t0
    m_ap, aps, dets, gt = evaluate(model, xt, bt, lt, n_classes)
    print("AP@0.5 per class: " + ", ".join(f"{SHAPE_NAMES[c]} {a:.3f}" for c, a in aps.items()))
    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.join(args.out_dir, "detections.png")
    if draw(xt, dets, gt, png):
        print(f"picture: {png}")
    print(
        f"mAP@0.5 on {n_test} held-out scenes: {m_ap:.4f} ({epochs} epochs, "
        f"{seconds:.0f} s training)"
    )


if __name__ == "__main__":
    main()
