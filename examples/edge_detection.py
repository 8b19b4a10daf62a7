"""Edge detection, the course's first convolution example.

1. The 6x6 image with a bright left half and the vertical edge filter
   [[1, 0, -1]]*3: the 4x4 output lights up (30) where the edge is.
2. Vertical, horizontal, Sobel and Scharr filters on a photo.
3. Convolution vs cross-correlation: only the flipped-kernel version is
   associative, (A*B)*C = A*(B*C).
4. "Learning to detect edges": a single 3x3 Conv2D trained by gradient
   descent to reproduce the Sobel responses learns the Sobel filter itself.

    python examples/edge_detection.py [--quick] [--out-dir DIR]

The last line printed is the headline: how close the learned filter is to
Sobel's.
"""

import argparse
import os

import numpy as np

import cnnx
from cnnx import filters
from cnnx import functional as F
from cnnx.datasets import make_shapes


def sample_image():
    try:
        from skimage import data

        return "camera (scikit-image)", data.camera().astype(np.float32) / 255.0
    except ImportError:
        x, _, _ = make_shapes(16, size=64, seed=1, noise=0.0)
        return "generated shapes", x[:, :, :, 0].reshape(4, 4, 64, 64).transpose(
            0, 2, 1, 3
        ).reshape(256, 256)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings (a few seconds)")
    ap.add_argument("--out-dir", default=os.path.join("cnnx_output", "edge_detection"))
    args = ap.parse_args()
    cnnx.set_seed(0)

    # 1. The course's 6x6 example --------------------------------------------
    img = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=np.float32)
    out = filters.correlate2d(img, filters.vertical_edge())  # valid: 6 - 3 + 1 = 4
    print("6x6 image (bright | dark) * vertical edge filter ->\n", out.astype(int))
    print(
        "dark | bright gives the opposite sign:",
        filters.correlate2d(img[:, ::-1], filters.vertical_edge())[0].astype(int),
    )

    # 2. The four detectors on a photo -----------------------------------------
    name, photo = sample_image()
    if args.quick:
        photo = photo[::4, ::4]
    responses = filters.edge_responses(photo)
    print(
        f"{name} {photo.shape}: mean |Sobel x| {np.abs(responses['sobel_x']).mean():.3f}, "
        f"mean |Sobel y| {np.abs(responses['sobel_y']).mean():.3f}"
    )

    # 3. Convolution is associative, cross-correlation is not --------------------
    demo = filters.associativity_demo()
    print(
        f"(A*B)*C vs A*(B*C), full mode: convolution differs by {demo['convolution_gap']:.2e} "
        f"(round-off), cross-correlation by {demo['correlation_gap']:.2f} "
        f"(values up to {demo['scale']:.1f})"
    )

    # 4. Learning to detect edges ------------------------------------------------
    # Inputs: generated shapes (with noise, so every direction has texture);
    # targets: their Sobel-x responses. One 3x3 filter, no bias, MSE loss.
    n, epochs = (512, 20) if args.quick else (2048, 30)
    x, _, _ = make_shapes(n, size=32, seed=2, noise=0.2)
    target = F.conv2d(x, filters.sobel(1)[:, :, None, None], padding="same")
    model = cnnx.Sequential(
        [cnnx.Conv2D(1, 3, padding="same", use_bias=False)], input_shape=(32, 32, 1)
    )
    model.compile(optimizer=cnnx.optim.Adam(lr=0.05), loss="mse")
    schedule = cnnx.callbacks.LearningRateScheduler("cosine", epochs=epochs)
    history = model.fit(x, target, epochs=epochs, batch_size=32, verbose=0, callbacks=[schedule])
    learned = model.layers[0].params["kernel"][:, :, 0, 0]
    print("learned 3x3 filter:\n", np.round(learned, 2))
    gap = float(np.abs(learned - filters.sobel(1)).max())

    # Pictures ------------------------------------------------------------------
    try:
        from cnnx import viz

        os.makedirs(args.out_dir, exist_ok=True)
        viz.plot_images(
            {"6x6 input": img, "vertical edge filter": filters.vertical_edge(), "4x4 output": out},
            path=os.path.join(args.out_dir, "course_6x6.png"),
        )
        panels = {"input": photo}
        panels.update({k: v for k, v in responses.items() if k != "sobel_magnitude"})
        viz.plot_images(
            panels,
            ncols=4,
            symmetric=[k != "input" for k in panels],
            path=os.path.join(args.out_dir, "edges.png"),
        )
        viz.plot_images(
            {"Sobel x": filters.sobel(1), "learned": learned},
            symmetric=True,
            path=os.path.join(args.out_dir, "learned_filter.png"),
        )
        viz.plot_history(history, path=os.path.join(args.out_dir, "training.png"))
        print(f"pictures in {args.out_dir}/")
    except ImportError as e:
        print(f"(no pictures: {e})")

    print(f"learned filter vs Sobel x: max |difference| = {gap:.4f}")


if __name__ == "__main__":
    main()
