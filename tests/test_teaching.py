"""cnnx.teaching: the course's arithmetic, checked against hand counts and
the numbers printed in the notes."""

import math

import pytest

from cnnx import teaching as T


def test_quiz_280():
    # 10 filters of 3x3x3: (27 weights + 1 bias) * 10, counted by hand
    assert T.count_params("conv", f=3, n_C_prev=3, n_C=10) == (3 * 3 * 3 + 1) * 10 == 280
    assert T.conv_params(3, 3, 10) == 280


def test_conv_formula_is_not_the_notes_slip():
    # the notes' slip (f*f + 1)*n_C would give 26*8 = 208 for CONV1; the table says 608
    assert T.conv_params(5, 3, 8) == 608 != (5 * 5 + 1) * 8
    assert T.conv_params(5, 8, 16) == 3216


def test_conv_params_variants():
    assert T.conv_params((3, 5), 4, 6) == (3 * 5 * 4 + 1) * 6
    assert T.conv_params(3, 4, 6, use_bias=False) == 3 * 3 * 4 * 6
    assert T.conv_params(3, 4, 6, groups=2) == (3 * 3 * 2 + 1) * 6
    assert T.conv_params(1, 192, 32) == 192 * 32 + 32  # 1x1 conv shrinking n_C
    with pytest.raises(ValueError, match="^groups"):
        T.conv_params(3, 4, 6, groups=3)
    with pytest.raises(ValueError, match="^n_C"):
        T.conv_params(3, 0, 6)


def test_dense_params_and_seed_rows():
    assert T.count_params("dense", n_in=400, n_out=120) == 48120
    assert T.count_params("fc", n_in=120, n_out=84) == 10164
    assert T.dense_params(84, 10) == 850
    assert T.dense_params(84, 10, use_bias=False) == 840
    assert T.count_params("pool") == 0


def test_count_params_on_objects():
    class Fake:
        def count_params(self):
            return 7

    assert T.count_params(Fake()) == 7
    with pytest.raises(TypeError, match="^what"):
        T.count_params(3.0)
    with pytest.raises(ValueError, match="^what"):
        T.count_params("lstm")


def test_seed_table_recomputed_from_formulas():
    rows = T.seed_network_table()
    assert [(r[1], r[2], r[3]) for r in rows] == [(r[1], r[2], r[3]) for r in T.SEED_TABLE]
    # The notes' table, typed in by hand (not from the module):
    assert [r[3] for r in rows] == [0, 608, 0, 3216, 0, 48120, 10164, 850]
    assert [r[2] for r in rows] == [3072, 6272, 1568, 1600, 400, 120, 84, 10]
    assert sum(r[3] for r in rows) == 62958


def test_conv_output_size_reexported():
    from cnnx import functional as F

    assert T.conv_output_size is F.conv_output_size
    for n, f, p, s in [(6, 3, 0, 1), (7, 3, 1, 2), (32, 5, 0, 1), (5, 5, 2, 1)]:
        assert T.conv_output_size(n, f, p, s) == math.floor((n + 2 * p - f) / s) + 1


def test_pool_output_shape_keeps_channels():
    assert T.pool_output_shape((28, 28, 8), 2, 2) == (14, 14, 8)
    assert T.pool_output_shape((5, 7, 3), 3, 2) == (2, 3, 3)
    assert T.pool_output_shape((4, 4, 3), 2) == (2, 2, 3)  # s defaults to f
    with pytest.raises(ValueError, match="^input_shape"):
        T.pool_output_shape((4, 4), 2)


@pytest.mark.parametrize("n,out", [(8, 4), (12, 3), (7, 7), (10, 1), (32, 8)])
def test_adaptive_course_rule_exact_when_divisible(n, out):
    stride, kernel = T.adaptive_pool_course_params(n, out)
    windows = [(i * stride, i * stride + kernel) for i in range(out)]
    assert windows == T.adaptive_pool_windows(n, out)


@pytest.mark.parametrize("n,out", [(10, 4), (7, 3), (5, 3)])
def test_adaptive_exact_windows_cover_input(n, out):
    w = T.adaptive_pool_windows(n, out)
    assert w[0][0] == 0 and w[-1][1] == n
    covered = set()
    for i, (a, b) in enumerate(w):
        assert a == (i * n) // out and b == math.ceil((i + 1) * n / out)
        covered |= set(range(a, b))
    assert covered == set(range(n))


@pytest.mark.parametrize("n,out", [(10, 4), (5, 3), (11, 4)])
def test_adaptive_course_rule_differs_when_not_divisible(n, out):
    stride, kernel = T.adaptive_pool_course_params(n, out)
    assert [(i * stride, i * stride + kernel) for i in range(out)] != T.adaptive_pool_windows(
        n, out
    )


def test_compare_conv_dense_course_example():
    c = T.compare_conv_dense((32, 32, 3), filters=6, kernel_size=5)
    assert c.output_shape == (28, 28, 6)
    assert c.conv_params == (5 * 5 * 3 + 1) * 6 == 456
    assert c.dense_params == 3072 * 4704 + 4704
    assert c.ratio == pytest.approx(c.dense_params / 456)
    assert c.conv_inputs_per_output == 75 and c.dense_inputs_per_output == 3072
    text = str(c)
    assert "parameter sharing" in text and "sparse connections" in text


def test_compare_conv_dense_same_padding_and_stride():
    c = T.compare_conv_dense((9, 9, 2), filters=4, kernel_size=3, strides=2, padding="same")
    assert c.output_shape == (5, 5, 4)
    assert c.dense_params == 9 * 9 * 2 * 100 + 100
    with pytest.raises(ValueError, match="^input_shape"):
        T.compare_conv_dense((9, 9))


def test_lenet5_is_the_notes_table():
    pytest.importorskip("cnnx.models")
    m = T.lenet5()  # 32x32x3, as in the notes
    rows = m.summary(print_fn=None)
    assert [r.params for r in rows] == [0, 608, 0, 3216, 0, 48120, 10164, 850]
    assert [r.activation_size for r in rows] == [3072, 6272, 1568, 1600, 400, 120, 84, 10]
    assert T.count_params(m) == 62958
    # MNIST (28x28, "same" first conv) and 8x8 digits (3x3 filters) build too
    assert T.lenet5((28, 28, 1)).count_params() == 62958 - 400  # conv1 (5*5*1+1)*8 = 208
    assert T.lenet5((8, 8, 1)).output_shape == (10,)


def test_small_resnet_hand_count():
    pytest.importorskip("cnnx.models")
    m = T.small_resnet((28, 28, 1), n_classes=10, width=16, stages=2)
    names = [type(l).__name__ for l in m.layers]
    assert names == ["Conv2D", "MaxPool2D", "Residual", "Residual", "Flatten", "Dense"]
    stem = 3 * 3 * 1 * 16 + 16
    block1 = 2 * (3 * 3 * 16 * 16) + 2 * (2 * 16)  # convs without bias + BN gamma/beta
    block2 = 3 * 3 * 16 * 32 + 3 * 3 * 32 * 32 + 2 * (2 * 32) + (16 * 32 + 32)  # + 1x1 shortcut
    head = 7 * 7 * 32 * 10 + 10
    assert [l.count_params() for l in m.layers] == [stem, 0, block1, block2, 0, head]
    assert m.layers[3].output_shape == (7, 7, 32)
    g = T.small_resnet((28, 28, 1), head="gap", batch_norm=False)
    assert type(g.layers[-2]).__name__ == "GlobalAvgPool2D"
    with pytest.raises(ValueError, match="^head"):
        T.small_resnet(head="avg")
