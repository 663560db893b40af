"""Process-wide memory settings that keep a long run's peak RSS at its working set."""

from __future__ import annotations

import functools

_MMAP_THRESHOLD = 1 << 20


@functools.cache
def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 1 MiB (``mallopt(M_MMAP_THRESHOLD)``), once per process.

    glibc otherwise raises the threshold to the size of each freed large buffer (up to
    32 MiB), after which buffers of a few MB (a block of features, a Zarr chunk being
    compressed) are carved from the heap, whose fragments are not given back: the peak
    RSS of a run then grows with the number of shards it handles (tokenize: 30 MB over 21
    shards of a hyperspectral cube, none with it fixed). Process-wide and irreversible (the
    dynamic threshold cannot be switched back on); False where there is no glibc.

    Not for training loops: there every step's activations of more than 1 MiB would be
    mapped and unmapped anew, page faults each time (a token-fusion epoch took 1.6x as
    long, most of it system time)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, _MMAP_THRESHOLD))  # -3 = M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False
