"""cnnx.viz: pictures are written; feature maps match a hand-run forward pass."""

import numpy as np
import pytest

import cnnx
from cnnx import viz

PNG = b"\x89PNG\r\n\x1a\n"


def small_model():
    cnnx.set_seed(0)
    return cnnx.Sequential(
        [
            cnnx.Conv2D(4, 3, activation="relu"),
            cnnx.MaxPool2D(2),
            cnnx.Flatten(),
            cnnx.Dense(3, activation="softmax"),
        ],
        input_shape=(10, 10, 3),
    )


def test_feature_maps_match_manual_forward(rng):
    m = small_model()
    img = rng.uniform(0, 1, (10, 10, 3)).astype(np.float32)
    k, b = m.layers[0].params["kernel"], m.layers[0].params["bias"]
    # conv by explicit loops + relu, then 2x2 max pooling by reshaping
    ref = np.zeros((8, 8, 4))
    for i in range(8):
        for j in range(8):
            ref[i, j] = np.tensordot(img[i : i + 3, j : j + 3, :], k, axes=3) + b
    ref = np.maximum(ref, 0)
    np.testing.assert_allclose(viz.feature_maps(m, img, 0), ref, rtol=1e-4, atol=1e-5)
    pooled = ref.reshape(4, 2, 4, 2, 4).max(axis=(1, 3))
    np.testing.assert_allclose(viz.feature_maps(m, img[None], 1), pooled, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        viz.feature_maps(m, img, m.layers[1].name), pooled, rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ValueError, match="^layer"):
        viz.feature_maps(m, img, 9)
    with pytest.raises(ValueError, match="^image"):
        viz.feature_maps(m, np.zeros((2, 10, 10, 3)), 0)


def test_pictures_are_written(tmp_path, rng):
    pytest.importorskip("matplotlib")
    m = small_model()
    img = rng.uniform(0, 1, (10, 10, 3)).astype(np.float32)
    viz.plot_filters(m.layers[0], path=tmp_path / "f.png")
    viz.plot_filters(rng.standard_normal((5, 5, 1, 6)), path=tmp_path / "f1.png")
    viz.plot_feature_maps(m, img, 0, path=tmp_path / "fm.png")
    viz.plot_history(
        {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]},
        path=tmp_path / "sub" / "h.png",
    )
    viz.plot_images({"a": img, "b": img[..., 0]}, path=tmp_path / "i.png", symmetric=[False, True])
    for name in ("f.png", "f1.png", "fm.png", "sub/h.png", "i.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_plot_errors():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="^weights"):
        viz.plot_filters(np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match="^history"):
        viz.plot_history({})
    m = small_model()
    with pytest.raises(ValueError, match="^layer"):
        viz.plot_feature_maps(m, np.zeros((10, 10, 3), np.float32), 3)  # Dense: no maps


def test_plot_history_panels(tmp_path):
    pytest.importorskip("matplotlib")
    h = {
        "loss": [1.0, 0.5],
        "val_loss": [1.1, 0.7],
        "accuracy": [0.5, 0.8],
        "lr": [0.1, 0.05],
        "time": [3.0, 3.1],
    }
    fig = viz.plot_history(h)
    assert sorted(ax.get_title() for ax in fig.axes) == ["accuracy", "loss"]
    loss_ax = [ax for ax in fig.axes if ax.get_title() == "loss"][0]
    assert sorted(line.get_label() for line in loss_ax.get_lines()) == ["loss", "val_loss"]
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_ydata(), [1.0, 0.5])
    fig = viz.plot_history(h, keys=["lr"])
    assert [ax.get_title() for ax in fig.axes] == ["lr"]
    with pytest.raises(ValueError, match="^keys"):
        viz.plot_history(h, keys=["top5"])
