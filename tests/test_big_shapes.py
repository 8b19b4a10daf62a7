"""Shapes with more than 2**31 elements: every index must be 64-bit.

These tests need ~11 GB of memory and a few minutes, so they run only
with ``CNNX_SLOW_TESTS=1`` (and enough free memory); otherwise they are
skipped with the reason. Inputs hold an integer-valued pattern, so the
NumPy references are exact and the comparison is bitwise; the checks look
hardest at the elements beyond index 2**31, where a 32-bit index would wrap.
"""

import os

import numpy as np
import pytest

import cnnx.functional as F

SLOW = os.environ.get("CNNX_SLOW_TESTS") == "1"
GiB = 1 << 30


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _need(gib):
    if not SLOW:
        pytest.skip(
            "big-shape test: set CNNX_SLOW_TESTS=1 to run (needs ~11 GB of RAM and a few minutes)"
        )
    avail = _available_bytes()
    if avail < gib * GiB:
        pytest.skip(
            f"big-shape test: needs {gib} GiB of free memory, {avail / GiB:.1f} GiB available"
        )


def _pattern(shape):
    """x[n, h, w, c] = (h*131 + w*31 + c*7) % 97, as float32, built in row blocks."""
    x = np.empty(shape, np.float32)
    _, h, w, c = shape
    cols = np.arange(w, dtype=np.int64)[:, None] * 31 + np.arange(c, dtype=np.int64)[None, :] * 7
    for h0 in range(0, h, 1024):
        rows = np.arange(h0, min(h, h0 + 1024), dtype=np.int64)
        x[0, h0 : h0 + len(rows)] = ((rows[:, None, None] * 131 + cols[None]) % 97).astype(
            np.float32
        )
    return x


def test_max_and_avg_pool_beyond_2_31_elements():
    _need(12)
    shape = (1, 32768, 16400, 4)  # 2,149,580,800 elements (8.6 GB)
    assert np.prod(shape) > 2**31
    x = _pattern(shape)
    y = F.max_pool2d(x, 2)  # (1, 16384, 8200, 4)
    assert y.shape == (1, 16384, 8200, 4)
    # reference in row blocks (exact: a max of integers): the first block and
    # the last, which reads input rows 28672..32767 (index 2**31 is in row 32736)
    for h0 in (0, 16384 - 2048):
        blk = x[0, 2 * h0 : 2 * (h0 + 2048)].reshape(2048, 2, 8200, 2, 4).max(axis=(1, 3))
        np.testing.assert_array_equal(y[0, h0 : h0 + 2048], blk, err_msg=f"max rows {h0}")
    del y
    # the last output row reads input elements past 2**31
    assert ((2 * 16383) * 16400 * 4) > 2**31
    ya = F.avg_pool2d(x[:, -4:], 2)  # a view: copied to 4 rows, small
    want = x[0, -4:].reshape(2, 2, 8200, 2, 4).astype(np.float64).mean(axis=(1, 3))
    np.testing.assert_allclose(ya[0], want, rtol=1e-6)
    y = F.avg_pool2d(x, 2)
    np.testing.assert_allclose(y[0, -1], want[-1], rtol=1e-6)
    np.testing.assert_allclose(
        y[0, 0], x[0, :2].reshape(2, 8200, 2, 4).mean(axis=(0, 2)), rtol=1e-6
    )
    del y
    y_tail = F.max_pool2d(x, 2)[0, -3:]
    np.testing.assert_array_equal(y_tail, x[0, -6:].reshape(3, 2, 8200, 2, 4).max(axis=(1, 3)))


def test_one_by_one_conv_beyond_2_31_elements():
    _need(12)
    shape = (1, 32768, 16400, 4)  # input of 2,149,580,800 elements
    x = _pattern(shape)
    w = np.array([1, 2, 4, 8], np.float32).reshape(1, 1, 4, 1)  # exact integer sums
    assert F.conv2d_algorithm(x.shape, w.shape) in (
        "gemm_1x1",
        "implicit_gemm",
        "implicit_gemm_t",
        "igemm",
    )
    y = F.conv2d(x, w)  # (1, 32768, 16400, 1)
    for h0 in (0, 16384, 32768 - 1024):  # first rows, the middle, and past 2**31
        want = x[0, h0 : h0 + 1024] @ np.array([1, 2, 4, 8], np.float32)
        np.testing.assert_array_equal(y[0, h0 : h0 + 1024, :, 0], want, err_msg=f"rows {h0}")


def test_skip_reason_is_clear():
    """Without the flag the tests above skip and say how to run them."""
    if SLOW:
        pytest.skip("CNNX_SLOW_TESTS=1 is set: the big-shape tests themselves ran")
    with pytest.raises(pytest.skip.Exception, match="CNNX_SLOW_TESTS=1"):
        _need(12)
