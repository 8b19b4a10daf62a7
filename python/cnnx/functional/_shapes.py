"""Output sizes and padding rules shared by convolution and pooling.

The course's formula for one spatial dimension: an input of n pixels, a
filter of f, padding p on each side and stride s give

    floor((n + 2p - f) / s) + 1

outputs. With dilation d the filter covers (f - 1)*d + 1 pixels.
"""

from .._validate import as_int, as_pair


def conv_output_size(n, f, padding=0, stride=1, dilation=1):
    """Output length along one dimension: ``floor((n + 2p - f_eff)/s) + 1``.

    ``f_eff = (f - 1)*dilation + 1``. ``padding`` is an int (p on each side)
    or a pair ``(before, after)`` (total ``before + after``), as in
    ``conv_output_size(32, 5) == 28`` and ``conv_output_size(7, 3, 1, 2) == 4``.
    Raises ValueError when the (dilated) filter is larger than the padded input.

    Examples:
        >>> import cnnx.functional as F
        >>> F.conv_output_size(32, 5)                  # floor((32 + 0 - 5)/1) + 1
        28
        >>> F.conv_output_size(7, 3, padding=1, stride=2)
        4
    """
    n = as_int(n, "n", 0)
    f = as_int(f, "f", 1)
    s = as_int(stride, "stride", 1)
    d = as_int(dilation, "dilation", 1)
    if isinstance(padding, (tuple, list)):
        if len(padding) != 2:
            raise ValueError(f"padding: expected an int or (before, after), got {padding!r}")
        total = as_int(padding[0], "padding", 0) + as_int(padding[1], "padding", 0)
    else:
        total = 2 * as_int(padding, "padding", 0)
    f_eff = (f - 1) * d + 1
    if n + total < f_eff:
        raise ValueError(
            f"f: the filter ({f_eff} pixels with dilation {d}) is larger than the padded input "
            f"({n} + {total} = {n + total} pixels)"
        )
    return (n + total - f_eff) // s + 1


def same_padding(n, f, stride=1, dilation=1):
    """TensorFlow's "same" rule for one dimension -> (before, after).

    The output has ``ceil(n/s)`` pixels; the total padding is
    ``max((ceil(n/s) - 1)*s + (f - 1)*d + 1 - n, 0)``, and the odd pixel goes
    after (bottom/right). For stride 1 and odd f this is the course's
    ``p = (f - 1)/2`` on each side.

    Examples:
        >>> import cnnx.functional as F
        >>> F.same_padding(32, 5)                      # (before, after): p = (f - 1)/2 each side
        (2, 2)
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + (f - 1) * dilation + 1 - n, 0)
    return (total // 2, total - total // 2)


def resolve_padding(
    padding, in_hw, kernel_hw, stride_hw, dilation_hw=(1, 1), name="padding", allow_same=True
):
    """Normalise any accepted padding spec to ``((top, bottom), (left, right))``.

    Accepted: ``"valid"`` (none), ``"same"`` (TensorFlow rule), an int, a pair
    ``(p_h, p_w)``, or ``((top, bottom), (left, right))``. Negative values are
    refused.
    """
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "same" and allow_same:
            return tuple(
                same_padding(n, f, s, d)
                for n, f, s, d in zip(in_hw, kernel_hw, stride_hw, dilation_hw)
            )
        allowed = "'valid', 'same'" if allow_same else "'valid'"
        raise ValueError(
            f"{name}: expected {allowed}, an int, (p_h, p_w) or "
            f"((top, bottom), (left, right)), got {padding!r}"
        )
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(p, (tuple, list)) for p in padding)
    ):
        (t, b), (l, r) = [as_pair(p, name, 0) for p in padding]
        return ((t, b), (l, r))
    if padding is None:
        raise TypeError(f"{name}: expected 'valid', 'same', an int or a pair, got None")
    ph, pw = as_pair(padding, name, 0)
    return ((ph, ph), (pw, pw))


def output_hw(in_hw, kernel_hw, pads, stride_hw, dilation_hw=(1, 1)):
    """(out_h, out_w) for resolved pads; raises ValueError if the filter doesn't fit."""
    return tuple(
        conv_output_size(n, f, p, s, d)
        for n, f, p, s, d in zip(in_hw, kernel_hw, pads, stride_hw, dilation_hw)
    )
