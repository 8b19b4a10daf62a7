"""Neural style transfer, the third problem of the course: repaint a photo
(the content) with the textures and colours of another (the style).

    python examples/style_transfer.py            # 160x160, 300 steps
    python examples/style_transfer.py --quick    # 64x64, 60 steps, a few seconds
    python examples/style_transfer.py --content astronaut --style coffee

Photos: scikit-image's ``chelsea`` (the cat), ``astronaut``, ``coffee``, and
scikit-learn's ``china.jpg`` / ``flower.jpg``; all ship with the packages.

What is optimised: the *image*, not the network. Its features are compared
with the content photo's (content loss, the maps themselves, at the deepest
stage) and with the style photo's Gram matrices (style loss, at every
stage; see :mod:`cnnx.style`). The gradient of the loss w.r.t. the features
is sent back through ``model.backward`` to the input image; every layer is
frozen (``model.trainable = False``), so the parameters get no gradient and
never change. Adam steps on the pixels, which are kept in [0, 1].

Which features, and why they work: a small CNN with **fixed random
filters** (He-normal 3x3 convolutions with ReLU, 32 -> 64 -> 128 -> 128
channels, average pooling between stages, so the four stages see patches of
3, 8, 18 and 38 pixels). No trained network is needed for this: the Gram
matrix of many random ReLU filters measures the second-order statistics of
local patches (which colours, edges and blobs occur together, at each
scale), and two images with matching statistics under enough random
projections look like the same texture (Ustyuzhaninov et al., "Texture
synthesis using shallow convolutional networks with random filters", 2016;
He, Wang & Hopcroft, "A powerful generative model using random weights for
the deep image representation", 2016). A network trained on 28x28 grey
digits, the only kind this project can train in minutes, would know
nothing about colour; random filters on RGB do. The pixels themselves are a
fifth style "stage": their Gram matrix is the colour covariance of the
style photo, matched directly. The content loss at the
deepest stage keeps the layout of the content photo, because those maps
still record *where* things are.

The result (content | style | result) goes to ``--out-dir`` as a PNG. The
last line reports the loss reduction.
"""

import argparse
import os
import time

import numpy as np

import cnnx
from cnnx import style as S

PHOTOS = ("chelsea", "astronaut", "coffee", "china", "flower")


def load_photo(name, size):
    """An RGB photo as float32 (size, size, 3) in [0, 1] (centre crop, then resize).

    Without scikit-image (and scikit-learn for china/flower) a generated
    picture stands in, and the script says so: it still runs end to end.
    """
    try:
        if name in ("china", "flower"):
            from sklearn.datasets import load_sample_image

            img = load_sample_image(name + ".jpg")
        else:
            import skimage.data

            img = getattr(skimage.data, name)()
        from skimage.transform import resize
    except ImportError as e:
        print(f"({name}: {e}; a generated picture stands in for the photo)")
        return generated_picture(name, size)
    img = np.asarray(img, np.float32) / 255.0
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.ascontiguousarray(resize(img, (size, size), anti_aliasing=True), np.float32)


def generated_picture(name, size):
    """A stand-in RGB picture: a lit disc on a gradient (a "scene"), or coloured
    wavy stripes (a "texture"), different for each photo name."""
    k = PHOTOS.index(name)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if k % 2 == 0:
        disc = ((xx - 0.45 - 0.05 * k) ** 2 + (yy - 0.5) ** 2 < 0.08).astype(np.float32)
        img = np.stack([0.3 + 0.5 * yy, 0.2 + 0.3 * xx, 0.6 - 0.4 * yy], axis=-1)
        img = img * (1 - disc[..., None]) + disc[..., None] * np.array([0.9, 0.7, 0.3])
    else:
        phase = 2 * np.pi * (6 + k) * (xx + 0.15 * np.sin(2 * np.pi * 3 * yy))
        img = np.stack(
            [
                0.5 + 0.45 * np.sin(phase),
                0.5 + 0.45 * np.sin(phase + 2.1),
                0.5 + 0.45 * np.sin(phase + 4.2),
            ],
            axis=-1,
        )
    return np.ascontiguousarray(np.clip(img, 0, 1), np.float32)


def feature_stages(size, widths=(32, 64, 128, 128)):
    """Frozen random-filter stages; stage k's output feeds stage k+1."""
    stages = []
    shape = (size, size, 3)
    for i, c in enumerate(widths):
        layers = ([] if i == 0 else [cnnx.AvgPool2D(2)]) + [
            cnnx.Conv2D(c, 3, padding="same", activation="relu")
        ]
        st = cnnx.Sequential(layers, input_shape=shape)
        st.trainable = False
        shape = st.output_shape
        stages.append(st)
    return stages


def total_variation(img):
    """``mean of squared differences between neighbouring pixels`` and its gradient.

    Random filters respond to pixel-level noise as much as to texture, so a
    little smoothing keeps the optimiser from matching the style's
    statistics with high-frequency speckle.
    """
    dy = img[:, 1:] - img[:, :-1]
    dx = img[:, :, 1:] - img[:, :, :-1]
    n = img.size
    loss = float((np.sum(dy.astype(np.float64) ** 2) + np.sum(dx.astype(np.float64) ** 2)) / n)
    g = np.zeros_like(img)
    g[:, 1:] += dy
    g[:, :-1] -= dy
    g[:, :, 1:] += dx
    g[:, :, :-1] -= dx
    return loss, g * np.float32(2.0 / n)


def features(stages, x, training=False):
    out = []
    for st in stages:
        x = st.forward(x, training=training)
        out.append(x)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64x64 pixels, 60 steps (< 60 s)")
    ap.add_argument("--content", default="chelsea", choices=PHOTOS)
    ap.add_argument("--style", default="flower", choices=PHOTOS)
    ap.add_argument("--size", type=int, default=None, help="pixels per side (160; 64 with --quick)")
    ap.add_argument("--steps", type=int, default=None, help="Adam steps (300; 60 with --quick)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--content-weight", type=float, default=1.0)
    ap.add_argument(
        "--tv-weight", type=float, default=10.0, help="total-variation smoothing (0 turns it off)"
    )
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "style_transfer"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    size = args.size or (64 if args.quick else 160)
    steps = args.steps or (60 if args.quick else 300)
    cnnx.set_seed(args.seed)

    content = load_photo(args.content, size)[None]
    style_img = load_photo(args.style, size)[None]
    stages = feature_stages(size)
    n_params = sum(st.count_params() for st in stages)
    print(
        f"content {args.content}, style {args.style}, {size}x{size}; features: "
        f"{len(stages)} frozen stages of random 3x3 filters ({n_params:,} parameters, "
        f"none trained)"
    )
    before = [w.copy() for st in stages for w in st.get_weights()]

    mean = np.float32(0.5)
    # the pixels themselves count as stage 0 for the style: their Gram matrix
    # is the photo's colour covariance, which random filters only see mixed
    content_feats = [content - mean] + features(stages, content - mean)
    grams = [S.gram_matrix(f)[0] for f in [style_img - mean] + features(stages, style_img - mean)]
    # weights: each stage's style term is 1 for the content image itself at the
    # start, so all scales count alike; content is measured at the last stage
    base = [S.style_loss(f, g)[0] for f, g in zip(content_feats, grams)]
    w_style = [1.0 / max(b, 1e-12) for b in base]
    c_scale = float(np.mean(content_feats[-1] ** 2))
    w_content = args.content_weight / max(c_scale, 1e-12)

    def loss_and_grad(img, need_grad=True):
        feats = [img - mean] + features(stages, img - mean, training=need_grad)
        l_style = 0.0
        dfeat = []
        for f, g, w in zip(feats, grams, w_style):
            l, d = S.style_loss(f, g)
            l_style += w * l
            dfeat.append(d * np.float32(w))
        l_c, d_c = S.content_loss(feats[-1], content_feats[-1])
        dfeat[-1] += d_c * np.float32(w_content)
        l_tv, d_tv = total_variation(img)
        total = l_style + w_content * l_c + args.tv_weight * l_tv
        if not need_grad:
            return total, l_style, w_content * l_c, None
        g = None
        for st, d in zip(stages[::-1], dfeat[:0:-1]):
            g = st.backward(d if g is None else d + g)  # gradient to the stage's input
        return total, l_style, w_content * l_c, g + dfeat[0] + np.float32(args.tv_weight) * d_tv

    img = content.copy()
    m = np.zeros_like(img)
    v = np.zeros_like(img)
    b1, b2, eps = 0.9, 0.999, 1e-8
    t0 = time.perf_counter()
    first = loss_and_grad(img, need_grad=False)
    print(
        f"start (the content photo): total {first[0]:.4f} = style {first[1]:.4f} "
        f"+ content {first[2]:.4f}"
    )
    for k in range(1, steps + 1):
        total, ls, lc, g = loss_and_grad(img)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = args.lr * (m / (1 - b1**k)) / (np.sqrt(v / (1 - b2**k)) + eps)
        img = np.clip(img - step, 0.0, 1.0).astype(np.float32)
        if k == 1 or k % max(steps // 6, 1) == 0:
            print(
                f"step {k}/{steps}: total {total:.4f} = style {ls:.4f} + content {lc:.4f}, "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
    last = loss_and_grad(img, need_grad=False)
    seconds = time.perf_counter() - t0
    after = [w for st in stages for w in st.get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "frozen weights changed"

    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.join(args.out_dir, f"style_transfer_{args.content}_{args.style}.png")
    try:
        from cnnx import viz

        viz.plot_images(
            {
                f"content ({args.content})": content[0],
                f"style ({args.style})": style_img[0],
                f"result ({steps} steps)": img[0],
            },
            path=png,
            ncols=3,
        )
        print(f"picture: {png}")
    except ImportError as e:
        print(f"(no picture: {e})")
    print(f"end: total {last[0]:.4f} = style {last[1]:.4f} + content {last[2]:.4f}")
    red = 100.0 * (1.0 - last[0] / first[0])
    print(
        f"style transfer loss: {first[0]:.4f} -> {last[0]:.4f} ({red:.1f}% lower; style "
        f"{first[1]:.4f} -> {last[1]:.4f}) in {steps} steps, {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
