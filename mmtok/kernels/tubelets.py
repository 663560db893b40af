"""Tubelet extraction, the 3-D patchify: (B, C, T, H, W) videos -> (B, L, C*pt*ph*pw).

The last axis of the output is in (channel, time-in-tubelet, row-in-tubelet, col-in-tubelet)
order, exactly the flattening of a PyTorch ``Conv3d`` patch-embedding weight of shape
(D, C, pt, ph, pw) (VideoMAE's 2x16x16 tubelets). So ``tubelets(x, t) @ W.reshape(D, -1).T``
equals ``conv3d(x, W, stride=t)`` with its (B, D, gt, gh, gw) output flattened to
(B, gt*gh*gw, D). Tubelets are ordered (time, row, col) over the grid (see
:func:`tubelet_grid`); frames, rows and columns beyond the last full tubelet are ignored, as a
strided convolution ignores them. Tubelets never overlap (VideoMAE's stride is the tubelet).

Four implementations share these semantics (a pure gather; the input dtype is kept):

* ``numpy``  -- one reshape/transpose view + one copy; the CPU hot path.
* ``torch``  -- the same on any device.
* ``triton`` -- the ``_tubelet_kernel`` Triton kernel (CUDA, or CPU under TRITON_INTERPRET=1),
  reading the input through its element strides (a channel-last (B, T, H, W, C) view of
  decoded frames needs no copy).
* :func:`tubelets_reference` -- a deliberately naive loop, the reference for the tests.

Neither torch nor triton is imported by this module: torch tensors are recognised through
``sys.modules``, and triton is imported only when the Triton path runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._tensors import is_torch
from ._triton import interpreter_enabled, next_power_of_2, triton_available

__all__ = ["tubelet_grid", "tubelets", "tubelets_reference"]

IMPLS = ("auto", "numpy", "torch", "triton")
_DTYPES = ("uint8", "uint16", "float16", "float32")


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------


def _triple(value: int | Sequence[int], name: str = "tubelet") -> tuple[int, int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        items: tuple = (int(value),) * 3
    else:
        try:
            items = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int or a triple of ints, got {value!r}") from None
        if len(items) != 3 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
        ):
            raise TypeError(f"{name} must be an int or a triple of ints, got {value!r}")
    triple = (int(items[0]), int(items[1]), int(items[2]))
    if min(triple) < 1:
        raise ValueError(f"{name} must be positive, got {triple}")
    return triple


def _grid_shape(shape: tuple[int, int, int], tubelet: tuple[int, int, int]) -> tuple[int, int, int]:
    if any(s < p for s, p in zip(shape, tubelet)):
        raise ValueError(f"video of size {shape[0]}x{shape[1]}x{shape[2]} (TxHxW) is smaller than "
                         f"the tubelet {tubelet[0]}x{tubelet[1]}x{tubelet[2]}; resize or pad it "
                         "first")
    return tuple(s // p for s, p in zip(shape, tubelet))  # type: ignore[return-value]


def tubelet_grid(frames: int, height: int, width: int,
                 tubelet: int | Sequence[int]) -> np.ndarray:
    """(L, 3) int32 (t, row, col) grid indices of the tubelets, in output order
    (time-major, then row-major), L = (T//pt) * (H//ph) * (W//pw)."""
    grid = _grid_shape((int(frames), int(height), int(width)), _triple(tubelet))
    cells = np.indices(grid, dtype=np.int32).reshape(3, -1).T
    return np.ascontiguousarray(cells)


def _check(videos: Any) -> str:
    if isinstance(videos, np.ndarray):
        name = videos.dtype.name
    elif is_torch(videos):
        name = str(videos.dtype).removeprefix("torch.")
    else:
        raise TypeError(f"videos must be a numpy array or a torch tensor, got "
                        f"{type(videos).__name__}")
    if videos.ndim != 5:
        raise ValueError(f"videos must have shape (B, C, T, H, W), got {tuple(videos.shape)}")
    if name not in _DTYPES:
        raise TypeError(f"videos dtype must be one of {', '.join(_DTYPES)}, got {name}")
    return name


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def tubelets(videos, tubelet: int | Sequence[int] = (2, 16, 16), *, impl: str = "auto"):
    """Cuts a (B, C, T, H, W) batch into non-overlapping tubelets; returns (B, L, C*pt*ph*pw).

    Args:
        videos: numpy array or torch tensor, shape (B, C, T, H, W), any strides (a permuted
            (B, T, H, W, C) view of decoded RGB frames is not copied first), dtype uint8,
            uint16, float16 or float32.
        tubelet: (pt, ph, pw), or one int for all three.
        impl: "auto" (Triton for CUDA tensors when triton imports, torch for other tensors,
            numpy for arrays), or force "numpy", "torch" or "triton".

    Returns:
        The same container type as ``videos`` (numpy array, or torch tensor on its device),
        C-contiguous, the input's dtype, last axis in (channel, t, row, col) order and
        tubelets ordered as :func:`tubelet_grid`.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; valid choices are: {', '.join(IMPLS)}")
    _check(videos)
    pt, ph, pw = _triple(tubelet)
    B, C, T, H, W = (int(s) for s in videos.shape)
    grid = _grid_shape((T, H, W), (pt, ph, pw))
    is_tensor = is_torch(videos)
    if impl == "auto":
        if is_tensor:
            impl = "triton" if videos.device.type == "cuda" and triton_available() else "torch"
        else:
            impl = "numpy"
    if impl == "numpy":
        if not is_tensor:
            return _tubelets_numpy(videos, (pt, ph, pw), grid)
        if videos.device.type != "cpu":
            raise ValueError(f"impl='numpy' needs a CPU tensor, got one on {videos.device}")
        import torch

        return torch.from_numpy(_tubelets_numpy(videos.detach().numpy(), (pt, ph, pw), grid))
    if impl == "torch":
        import torch

        tensor = videos if is_tensor else torch.from_numpy(np.ascontiguousarray(videos))
        out = _tubelets_torch(tensor, (pt, ph, pw), grid)
        return out if is_tensor else out.numpy()
    if not triton_available():
        raise RuntimeError("impl='triton' was requested but triton cannot be imported; "
                           "install triton or use impl='torch'/'numpy'")
    import torch

    tensor = videos if is_tensor else torch.from_numpy(np.ascontiguousarray(videos))
    if tensor.device.type == "cpu" and not interpreter_enabled():
        raise RuntimeError("impl='triton' on a CPU tensor needs the Triton interpreter: set "
                           "TRITON_INTERPRET=1 before triton is first imported, or move the "
                           "input to CUDA")
    out = _tubelets_triton(tensor, (pt, ph, pw), grid)
    return out if is_tensor else out.numpy()


def tubelets_reference(videos, tubelet: int | Sequence[int] = (2, 16, 16)) -> np.ndarray:
    """Naive reference for :func:`tubelets`: a Python loop over videos and grid cells.
    Always returns a numpy array. Slow on purpose; it exists to check the fast paths."""
    _check(videos)
    if is_torch(videos):
        videos = videos.detach().cpu().numpy()
    x = np.asarray(videos)
    pt, ph, pw = _triple(tubelet)
    B, C, T, H, W = x.shape
    grid = tubelet_grid(T, H, W, (pt, ph, pw))
    out = np.empty((B, len(grid), C * pt * ph * pw), dtype=x.dtype)
    for b in range(B):
        for i, (t, row, col) in enumerate(grid):
            cell = x[b, :, t * pt:(t + 1) * pt, row * ph:(row + 1) * ph, col * pw:(col + 1) * pw]
            out[b, i] = cell.reshape(-1)  # row-major (C, pt, ph, pw) == (channel, t, row, col)
    return out


# --------------------------------------------------------------------------------------
# numpy and torch paths
# --------------------------------------------------------------------------------------


def _tubelets_numpy(x: np.ndarray, tubelet, grid) -> np.ndarray:
    pt, ph, pw = tubelet
    gt, gh, gw = grid
    B, C = x.shape[:2]
    x = x[:, :, : gt * pt, : gh * ph, : gw * pw]  # the unused border (a view)
    # Splitting an axis never copies: (B, C, gt, pt, gh, ph, gw, pw), then the grid axes in
    # front; one strided copy into C order is the (B, L, K) layout.
    windows = x.reshape(B, C, gt, pt, gh, ph, gw, pw).transpose(0, 2, 4, 6, 1, 3, 5, 7)
    return np.ascontiguousarray(windows).reshape(B, gt * gh * gw, C * pt * ph * pw)


def _tubelets_torch(x, tubelet, grid):
    pt, ph, pw = tubelet
    gt, gh, gw = grid
    B, C = x.shape[:2]
    x = x[:, :, : gt * pt, : gh * ph, : gw * pw]
    windows = x.unflatten(4, (gw, pw)).unflatten(3, (gh, ph)).unflatten(2, (gt, pt))
    return windows.permute(0, 2, 4, 6, 1, 3, 5, 7).contiguous().reshape(
        B, gt * gh * gw, C * pt * ph * pw)


# --------------------------------------------------------------------------------------
# Triton path
# --------------------------------------------------------------------------------------

triton = None
tl = None

_TILE_ELEMS = 4096
_MAX_BLOCK_K = 512


@functools.lru_cache(maxsize=1)
def _build_kernel():
    """Imports triton and defines the kernel (lazily, so CPU users never import triton)."""
    global triton, tl
    import triton
    import triton.language as tl

    @triton.jit
    def _tubelet_kernel(
        x_ptr,  # input, element strides below; any layout
        out_ptr,  # (B, L, K) contiguous output
        L,  # tubelets per video = gt * gh * gw
        K,  # elements per tubelet = C * PT * PH * PW
        gh,
        gw,  # tubelet grid rows and columns
        n_lblocks,  # cdiv(L, BLOCK_L)
        stride_b,
        stride_c,
        stride_t,
        stride_h,
        stride_w,  # input element strides
        PT: tl.constexpr,
        PH: tl.constexpr,
        PW: tl.constexpr,
        BLOCK_L: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        # 1-D launch grid over (video, block of tubelets): pid = b * n_lblocks + lblock.
        pid = tl.program_id(0)
        b = pid // n_lblocks
        lblock = pid % n_lblocks
        offs_l = lblock * BLOCK_L + tl.arange(0, BLOCK_L)
        mask_l = offs_l < L
        # grid cell (gt_i, gy, gx) of each tubelet, time-major then row-major
        gx = offs_l % gw
        gy = (offs_l // gw) % gh
        gz = offs_l // (gw * gh)
        cell_off = ((gz * PT).to(tl.int64) * stride_t + (gy * PH).to(tl.int64) * stride_h
                    + (gx * PW).to(tl.int64) * stride_w)
        in_base = x_ptr + b.to(tl.int64) * stride_b
        out_row = (b.to(tl.int64) * L + offs_l) * K
        for k0 in range(0, K, BLOCK_K):
            # k = ((c*PT + t)*PH + r)*PW + q, the (channel, time, row, col) order of a Conv3d
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < K
            q = offs_k % PW
            r = (offs_k // PW) % PH
            t = (offs_k // (PW * PH)) % PT
            c = offs_k // (PW * PH * PT)
            elem_off = (c.to(tl.int64) * stride_c + t.to(tl.int64) * stride_t
                        + r.to(tl.int64) * stride_h + q.to(tl.int64) * stride_w)
            mask = mask_l[:, None] & mask_k[None, :]
            vals = tl.load(in_base + cell_off[:, None] + elem_off[None, :], mask=mask, other=0)
            tl.store(out_ptr + out_row[:, None] + offs_k[None, :], vals, mask=mask)

    return _tubelet_kernel


def _tubelets_triton(x, tubelet, grid):
    import torch

    kernel = _build_kernel()
    pt, ph, pw = tubelet
    gt, gh, gw = grid
    B, C = int(x.shape[0]), int(x.shape[1])
    L, K = gt * gh * gw, C * pt * ph * pw
    out = torch.empty((B, L, K), dtype=x.dtype, device=x.device)
    if B == 0 or L == 0:
        return out
    block_k = min(next_power_of_2(K), _MAX_BLOCK_K)
    block_l = max(1, min(next_power_of_2(L), _TILE_ELEMS // block_k))
    n_lblocks = triton.cdiv(L, block_l)
    sB, sC, sT, sH, sW = x.stride()
    guard = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[(B * n_lblocks,)](
            x, out, L, K, gh, gw, n_lblocks, sB, sC, sT, sH, sW,
            PT=pt, PH=ph, PW=pw, BLOCK_L=block_l, BLOCK_K=block_k,
        )
    return out
