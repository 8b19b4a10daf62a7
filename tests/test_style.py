"""cnnx.style: Gram matrix vs NumPy, loss gradients vs finite differences, and
the style-transfer gradient through a frozen network (model.backward)."""

import numpy as np
import pytest

import cnnx
from cnnx import style


def _np_gram(x):
    x = np.asarray(x, np.float64)
    m, h, w, c = x.shape
    f = x.reshape(m, h * w, c)
    return np.einsum("mpi,mpj->mij", f, f) / (h * w)


@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (2, 4, 4, 16), (1, 9, 3, 33)])
def test_gram_matrix_vs_numpy(rng, shape, isa):
    x = rng.standard_normal(shape).astype(np.float32)
    g = style.gram_matrix(x)
    assert g.shape == (shape[0], shape[3], shape[3]) and g.dtype == np.float32
    np.testing.assert_allclose(g, _np_gram(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g, g.transpose(0, 2, 1), atol=1e-6)


def test_gram_backward_vs_numpy(rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    dg = rng.standard_normal((2, 4, 4)).astype(np.float32)  # not symmetric
    got = style.gram_matrix_backward(dg, x)
    # d/dF of sum(dG * F^T F / P) = F (dG + dG^T) / P
    f = x.astype(np.float64).reshape(2, 15, 4)
    want = np.einsum("mpi,mij->mpj", f, dg + dg.transpose(0, 2, 1)) / 15
    np.testing.assert_allclose(got, want.reshape(x.shape), rtol=1e-5, atol=1e-5)


def _fd_check(loss_fn, x, grad, rng, n=12, eps=1e-2, rtol=3e-2):
    flat = x.reshape(-1)
    for idx in rng.choice(flat.size, n, replace=False):
        xp = flat.copy()
        xm = flat.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd = (loss_fn(xp.reshape(x.shape)) - loss_fn(xm.reshape(x.shape))) / (2 * eps)
        g = grad.reshape(-1)[idx]
        assert abs(fd - g) <= rtol * max(abs(fd), abs(g)) + 1e-5, (idx, fd, g)


def test_style_loss_gradient_finite_differences(rng):
    x = rng.standard_normal((1, 4, 5, 3)).astype(np.float32)
    target = _np_gram(rng.standard_normal((1, 4, 5, 3)))[0].astype(np.float32)
    loss, grad = style.style_loss(x, target)
    want = np.mean((_np_gram(x)[0] - target) ** 2)
    assert loss == pytest.approx(want, rel=1e-5)

    def f(z):
        return np.mean((_np_gram(z)[0] - target) ** 2)  # float64 reference loss

    _fd_check(f, x.astype(np.float64), grad, rng)


def test_content_loss_and_gradient(rng):
    x = rng.standard_normal((1, 3, 3, 2)).astype(np.float32)
    t = rng.standard_normal((1, 3, 3, 2)).astype(np.float32)
    loss, grad = style.content_loss(x, t)
    assert loss == pytest.approx(np.mean((x.astype(np.float64) - t) ** 2), rel=1e-6)
    _fd_check(lambda z: np.mean((z - t) ** 2), x.astype(np.float64), grad, rng, eps=1e-3)


def test_style_transfer_gradient_through_frozen_network(rng):
    """The gradient the example descends: style + content loss of a frozen conv
    net's features, w.r.t. the input image, via model.backward."""
    cnnx.set_seed(3)
    net = cnnx.Sequential(
        [
            cnnx.Conv2D(6, 3, padding="same", activation="relu"),
            cnnx.AvgPool2D(2),
            cnnx.Conv2D(8, 3, padding="same"),
        ],
        input_shape=(8, 8, 3),
    )
    net.trainable = False
    before = [w.copy() for w in net.get_weights()]
    img = rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)
    target_gram = style.gram_matrix(net.forward(rng.uniform(0, 1, (1, 8, 8, 3))))[0]
    content = net.forward(rng.uniform(0, 1, (1, 8, 8, 3)))

    def total(z):
        feats = net.forward(z.astype(np.float32))
        return style.style_loss(feats, target_gram)[0] + style.content_loss(feats, content)[0]

    feats = net.forward(img, training=True)
    _, gs = style.style_loss(feats, target_gram)
    _, gc = style.content_loss(feats, content)
    net.zero_grad()
    dx = net.backward(gs + gc)
    assert dx.shape == img.shape
    _fd_check(lambda z: total(z), img.astype(np.float64), dx, rng, n=16, eps=2e-3, rtol=5e-2)
    # frozen: no parameter gradients, no change to the weights
    assert all(np.all(g == 0) for l in net.layers for g in l.grads.values())
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_style_bad_input():
    with pytest.raises(ValueError, match="^x:"):
        style.gram_matrix(np.zeros((3, 3, 2), np.float32))
    with pytest.raises(ValueError, match="^dg:"):
        style.gram_matrix_backward(np.zeros((1, 3, 3)), np.zeros((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="^target_gram:"):
        style.style_loss(np.zeros((1, 2, 2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="^target:"):
        style.content_loss(np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 3)))
