"""Small helpers shared by the Triton kernels.

Triton is imported lazily, inside functions, so that CPU-only use of
``mmtok.kernels`` (the numpy and torch paths) never imports it.
"""

from __future__ import annotations

import functools
import os

__all__ = ["triton_available", "interpreter_enabled", "next_power_of_2"]


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """True when ``import triton`` succeeds in this process (the result is cached)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # ImportError, or a broken install failing at import time
        return False
    return True


def interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton kernels then run on the CPU through numpy.

    Triton reads this variable when it is first imported, so it must be set before then;
    this only reports what the environment says now.
    """
    return os.environ.get("TRITON_INTERPRET") == "1"


def next_power_of_2(n: int) -> int:
    """The smallest power of two >= ``n`` (1 for ``n <= 1``)."""
    n = int(n)
    if n <= 1:
        return 1
    return 1 << (n - 1).bit_length()
