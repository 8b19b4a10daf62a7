"""Type aliases of the public API's annotations."""

from typing import Optional, Tuple, Union

from numpy.typing import ArrayLike

#: an int for both axes, or (height, width)
IntPair = Union[int, Tuple[int, int]]
#: "valid", "same", an int for every side, (top/bottom, left/right) or ((top, bottom), (left, right))
Padding = Union[str, int, Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]
#: a per-example shape (no batch axis); None marks a size known only when data arrives
Shape = Tuple[Optional[int], ...]

__all__ = ["ArrayLike", "IntPair", "Padding", "Shape"]
