"""Layers given a size known only when data arrives (None) where they need it
refuse with a ValueError naming input_shape (found by mypy: these were
TypeErrors from None arithmetic), and an unbuilt Sequential can zero its
gradients."""

import pytest

import cnnx


@pytest.mark.parametrize(
    "make",
    [
        lambda: cnnx.Conv2D(4, 3),
        lambda: cnnx.DepthwiseConv2D(3),
        lambda: cnnx.SeparableConv2D(4, 3),
        lambda: cnnx.Conv2DTranspose(4, 3),
        lambda: cnnx.GroupNormalization(2),
        lambda: cnnx.LayerNormalization(),
        lambda: cnnx.LocalResponseNormalization(),
    ],
)
def test_unknown_channels_refused_by_name(make):
    with pytest.raises(ValueError, match="input_shape"):
        make()(cnnx.Input((8, 8, None)))


def test_reshape_of_any_size_refused_by_name():
    with pytest.raises(ValueError, match="input_shape: Reshape needs a fixed size"):
        cnnx.Reshape((-1,))(cnnx.Input((None, None, 3)))
    assert cnnx.Reshape((-1,))(cnnx.Input((2, 2, 3))).shape == (12,)


def test_unbuilt_sequential_zero_grad():
    model = cnnx.Sequential([cnnx.Dense(2)])
    model.zero_grad()  # nothing to zero yet
    model.build((3,))
    model.layers[0].grads["kernel"][...] = 1.0
    model.zero_grad()
    assert not model.layers[0].grads["kernel"].any()
