"""Dropout: keep rate, scaling, reproducibility, thread-count independence."""

import numpy as np
import pytest

import cnnx
import cnnx.functional as F
from cnnx import _core


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keep_rate_and_scaling(rate):
    n = 400_000
    x = np.ones(n, np.float32) * 2
    y, mask = F.dropout(x, rate, seed=123)
    keep = mask.astype(bool)
    # binomial: 5 standard deviations
    assert abs(keep.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(y[keep], 2 / (1 - rate), rtol=1e-6)
    assert np.all(y[~keep] == 0)
    assert y.mean() == pytest.approx(2.0, rel=0.02)


def test_dropout_reproducible_and_seed_dependent(rng):
    x = rng.standard_normal((8, 16, 16, 4)).astype(np.float32)
    y1, m1 = F.dropout(x, 0.3, seed=7)
    y2, m2 = F.dropout(x, 0.3, seed=7)
    y3, m3 = F.dropout(x, 0.3, seed=8)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(m1, m2)
    assert (m1 != m3).mean() > 0.3  # different seeds: unrelated masks
    assert y1.shape == x.shape and m1.shape == x.shape and m1.dtype == np.uint8


def test_dropout_independent_of_thread_count():
    x = np.ones(1_000_003, np.float32)
    saved = cnnx.get_num_threads()
    try:
        cnnx.set_num_threads(1)
        y1, m1 = F.dropout(x, 0.5, seed=99)
        cnnx.set_num_threads(2)
        y2, m2 = F.dropout(x, 0.5, seed=99)
    finally:
        cnnx.set_num_threads(saved)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)


def test_dropout_bits_look_uniform():
    bits = np.array([_core.dropout_bits(5, i) for i in range(20000)], dtype=np.uint64)
    # each of the 32 bits is set about half the time, neighbours uncorrelated
    for b in range(32):
        frac = ((bits >> np.uint64(b)) & np.uint64(1)).mean()
        assert abs(frac - 0.5) < 0.03
    u = bits.astype(np.float64) / 2**32
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.03


def test_dropout_backward(rng):
    x = rng.standard_normal(1000).astype(np.float32)
    dy = rng.standard_normal(1000).astype(np.float32)
    y, mask = F.dropout(x, 0.25, seed=3)
    dx = F.dropout_backward(dy, mask, 0.25)
    np.testing.assert_allclose(dx, dy * mask / 0.75, rtol=1e-6)
    dx2 = F.dropout_backward(dy, None, 0.25, seed=3)  # regenerated from the seed
    np.testing.assert_array_equal(dx, dx2)


def test_dropout_inactive():
    x = np.arange(6, dtype=np.float32)
    y, mask = F.dropout(x, 0.5, seed=1, training=False)
    assert mask is None
    np.testing.assert_array_equal(y, x)
    y, mask = F.dropout(x, 0.0, seed=1)
    np.testing.assert_array_equal(y, x)


def test_dropout_seed_from_cnnx_random():
    import cnnx.random as cr

    x = np.ones(1000, np.float32)
    cr.set_seed(11)
    _, m1 = F.dropout(x, 0.5)
    cr.set_seed(11)
    _, m2 = F.dropout(x, 0.5)
    np.testing.assert_array_equal(m1, m2)


def test_dropout_bad_input():
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="^rate:"):
        F.dropout(x, 1.0, seed=0)
    with pytest.raises(ValueError, match="^rate:"):
        F.dropout(x, -0.1, seed=0)
    with pytest.raises(TypeError, match="^rate:"):
        F.dropout(x, "0.5", seed=0)
    with pytest.raises(TypeError, match="^seed:"):
        F.dropout(x, 0.5, seed=1.5)
    with pytest.raises(ValueError, match="^seed:"):
        F.dropout(x, 0.5, seed=-1)
    with pytest.raises(ValueError, match="^mask:"):
        F.dropout_backward(x, np.ones(3, np.uint8), 0.5)


def test_dropout_same_mask_on_every_isa():
    from conftest import supported_isas

    x = np.random.default_rng(1).standard_normal(10_001).astype(np.float32)
    saved = _core.active_isa()
    outs = []
    try:
        for level in supported_isas():
            _core.set_active_isa(level)
            outs.append(F.dropout(x, 0.3, seed=5))
    finally:
        _core.set_active_isa(saved)
    for y, m in outs[1:]:
        np.testing.assert_array_equal(m, outs[0][1])
        np.testing.assert_array_equal(y, outs[0][0])
