"""What a pickle holds: whether it would import any class or function to load."""

from __future__ import annotations

import pickletools

_IMPORTS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE"}


def names_no_class(data: bytes) -> bool:
    """True when `data` is plain values only (tuples, ints, strings, bytes, None...)."""
    return not any(op.name in _IMPORTS for op, _arg, _pos in pickletools.genops(data))
