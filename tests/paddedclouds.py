"""Padded batches of uneven point clouds for the ``lengths`` tests of the FPS and KNN kernels.

Plain numpy (importable in the Triton-interpreter subprocesses too). The padding rows hold
garbage that changes any result if a kernel reads them: NaN and infinities (poison every
distance and fail the finite check), huge values (farther than every real point: FPS would
pick them at once), and exact copies of the cloud's own points (a KNN that read them would
return them as tied neighbours, an FPS would find them at distance 0).
"""

from __future__ import annotations

import numpy as np

_GARBAGE_KINDS = 5


def pad_clouds(clouds: list[np.ndarray], n_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Stacks (n_b, 3) clouds into a (B, n_pad, 3) float32 batch with garbage padding;
    returns (batch, lengths) with lengths (B,) int64."""
    lengths = np.array([len(c) for c in clouds], dtype=np.int64)
    if (lengths > n_pad).any() or (lengths < 1).any():
        raise ValueError(f"every cloud needs 1 <= length <= n_pad={n_pad}, got {lengths.tolist()}")
    batch = np.empty((len(clouds), n_pad, 3), np.float32)
    for b, cloud in enumerate(clouds):
        n = len(cloud)
        batch[b, :n] = cloud
        rows = np.arange(n_pad - n)
        kind = rows % _GARBAGE_KINDS
        pad = np.empty((n_pad - n, 3), np.float32)
        pad[kind == 0] = np.nan
        pad[kind == 1] = np.float32([np.inf, -np.inf, np.inf])
        pad[kind == 2] = np.float32(1e30)  # squared distances overflow to inf
        pad[kind == 3] = np.float32([-3e18, 3e18, 0.0])  # finite, far beyond every real point
        pad[kind == 4] = cloud[rows[kind == 4] % n]  # exact copies of real points
        batch[b, n:] = pad
    return batch, lengths
