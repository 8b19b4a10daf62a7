"""Type stub of the compiled extension (cpp/bindings): its functions and classes
are typed Any here; the Python wrappers in cnnx.functional and friends carry
the annotations."""

from typing import Any

def __getattr__(name: str) -> Any: ...
