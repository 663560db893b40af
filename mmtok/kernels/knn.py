"""k-nearest-neighbour grouping (the Point-MAE / Point-BERT grouping), exactly.

For each centre, the k nearest points of the cloud, ordered by squared distance ascending,
ties broken towards the lowest point index -- i.e. the first k entries of a *stable*
argsort of the distances -- and their neighbourhoods ``points[idx] - centre``.

* ``d(p, c) = (dx*dx + dy*dy) + dz*dz`` with ``dx = p.x - c.x`` etc., every operation
  rounded to float32 (the same rounding as :mod:`mmtok.kernels.fps`; no expansion, no FMA).
* Centres are given either as point indices (an integer array (G,) / (B, G), e.g. FPS
  output) or as coordinates (a float array (G, 3) / (B, G, 3)). When the centre is a point
  of the cloud its first neighbour is at distance 0: the centre itself, unless a duplicate
  of it has a lower index (then that duplicate comes first; either way the first
  neighbourhood row is (0, 0, 0)).
* Returns ``(indices, neighborhoods)``: int64 (G, k) / (B, G, k) and float32
  (G, k, 3) / (B, G, k, 3), numpy for numpy input, else tensors on the input's device.
* Padded batches of uneven clouds: ``lengths`` is an optional (B,) integer numpy array,
  torch tensor or sequence of ints for batched (B, N, 3) points. Cloud b is
  ``points[b, :lengths[b]]``; the rows beyond are padding, never read and never returned
  as neighbours (they may hold anything, even NaN: the finite check looks at the valid
  rows only). ``lengths`` refers to the points only: every cloud still has G centres,
  (B, G) indices or (B, G, 3) coordinates. Each cloud's result is identical to calling
  the function on ``points[b, :lengths[b]]`` and ``centers[b]`` alone. Every cloud needs
  ``1 <= lengths[b] <= N`` and ``k <= lengths[b]``, and centre indices of cloud b must be
  ``< lengths[b]`` (ValueError naming the cloud otherwise); centre coordinates may lie
  anywhere. ``lengths`` with unbatched (N, 3) points is a ValueError.

Implementations:

* ``numba`` (CPU): the cloud is bucketed on a grid (tight boxes per bucket); for each
  centre the nearest bucket and its neighbours fill a top-k list sorted by (distance,
  index), then every other bucket whose box lower bound is <= the current k-th distance
  is scanned. The lower bound never exceeds a point's float32 distance, so the result is
  exactly the brute-force one, ties included. Batches run in parallel threads (``prange``).
* ``triton`` (CUDA tensors): ``_knn_kernel``, one program per (cloud, block of centres),
  walking the cloud in chunks and keeping a (BLOCK_G, k) top-k in registers; writes the
  indices and the centred neighbourhoods directly. Compiled with
  ``enable_fp_fusion=False``. With ``lengths`` each program reads its cloud's length from
  a device tensor and walks only that many points.
* :func:`knn_group_reference`: brute force numpy with ``np.argsort(kind="stable")``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from ._tensors import is_torch
from ._triton import next_power_of_2, triton_available
from .fps import (
    _as_numpy_f32,
    _check_finite_tensor,
    _check_impl,
    _check_lengths,
    _check_lengths_cover,
    _float_dtype_ok,
    _lengths_on,
    _longest,
    _points_shape,
    _triton_input,
)

__all__ = ["knn_group", "knn_group_reference"]

IMPLS = ("auto", "numba", "triton")

# Points per grid bucket in the numba search.
_BUCKET_POINTS = 8
# Triton tile sizes: centres per program and points per chunk.
_TRITON_BLOCK_G = 16
_TRITON_BLOCK_N = 128


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of points N={n}")
    return k


def _centres_kind(centers: Any, batched: int, nb: int) -> tuple[bool, int]:
    """Validates the centres' container/shape; returns (given_as_indices, G)."""
    if not (isinstance(centers, np.ndarray) or is_torch(centers)):
        raise TypeError(
            "centers must be a numpy array or a torch tensor of point indices or coordinates, "
            f"got {type(centers).__name__}"
        )
    shape = tuple(int(s) for s in centers.shape)
    if isinstance(centers, np.ndarray):
        as_idx = centers.dtype.kind in "iu"
        is_float = centers.dtype.kind == "f"
    else:
        as_idx = not centers.dtype.is_floating_point and not centers.dtype.is_complex
        as_idx = as_idx and str(centers.dtype) != "torch.bool"
        is_float = centers.dtype.is_floating_point
    if not (as_idx or is_float):
        raise TypeError(f"centers must be integer indices or float coordinates, got dtype {centers.dtype}")
    if as_idx:
        want = 2 if batched else 1
        if len(shape) != want or (batched and shape[0] != nb):
            exp = f"({nb}, G)" if batched else "(G,)"
            raise ValueError(f"center indices must have shape {exp}, got shape {shape}")
        return True, shape[-1]
    want = 3 if batched else 2
    if len(shape) != want or shape[-1] != 3 or (batched and shape[0] != nb):
        exp = f"({nb}, G, 3)" if batched else "(G, 3)"
        raise ValueError(f"center coordinates must have shape {exp}, got shape {shape}")
    return False, shape[-2]


def _check_centre_indices(idx: np.ndarray, n: int, lengths: np.ndarray | None) -> None:
    """ValueError unless every centre index of cloud b is in [0, lengths[b]) ([0, N))."""
    if not idx.size:
        return
    if lengths is None:
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"center indices must be in [0, {n}), got values in [{idx.min()}, {idx.max()}]")
        return
    bad = np.flatnonzero(((idx < 0) | (idx >= lengths[:, None])).any(axis=1))
    if bad.size:
        b = int(bad[0])
        raise ValueError(
            f"center indices of cloud {b} must be in [0, lengths[{b}]={int(lengths[b])}), "
            f"got values in [{idx[b].min()}, {idx[b].max()}]"
        )


def _centre_coords_numpy(
    arr: np.ndarray, centers: Any, as_idx: bool, nb: int, g: int, lengths: np.ndarray | None = None
) -> np.ndarray:
    """(B, G, 3) float32 centre coordinates from indices or coordinates."""
    n = arr.shape[1]
    if as_idx:
        idx = centers.detach().to("cpu").numpy() if is_torch(centers) else np.asarray(centers)
        idx = idx.astype(np.int64, copy=False).reshape(nb, g)
        _check_centre_indices(idx, n, lengths)
        return np.ascontiguousarray(np.take_along_axis(arr, idx[:, :, None], axis=1))
    return _as_numpy_f32(centers, "centers").reshape(nb, g, 3)


def _check_arguments(points: Any, centers: Any, k: Any, lengths: Any):
    """Shared validation of the public functions: (batched, B, N, k, lengths, as_idx, G)."""
    batched, nb, n = _points_shape(points)
    k = _check_k(k, n)
    lens = _check_lengths(lengths, batched, nb, n)
    if lens is not None:
        _check_lengths_cover(lens, k, f"k={k}", "knn_group")
    as_idx, g = _centres_kind(centers, batched, nb)
    return batched, nb, n, k, lens, as_idx, g


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def knn_group(points, centers, k: int, *, lengths=None, impl: str = "auto", check_finite: bool = True):
    """k nearest points of each centre and the centred neighbourhoods.

    Args:
        points: (N, 3) or (B, N, 3) numpy array or torch tensor (converted to float32).
        centers: centre point indices, integer (G,) / (B, G) (e.g. the output of
            :func:`~mmtok.kernels.fps.farthest_point_sample`), or centre coordinates,
            float (G, 3) / (B, G, 3).
        k: neighbours per centre, 1 <= k <= N (and k <= lengths[b]).
        lengths: optional (B,) integers (numpy array, torch tensor on any device, or a
            sequence of ints) for a padded batch of uneven clouds: cloud b is
            ``points[b, :lengths[b]]``, its padding rows are never read nor returned. Needs
            batched points, ``1 <= lengths[b] <= N``, ``k <= lengths[b]`` and centre
            indices of cloud b below ``lengths[b]`` (ValueError naming the cloud). Every
            cloud keeps all G centres. None: all N points.
        impl: "auto" (Triton for CUDA tensors when triton imports, numba otherwise),
            "numba" or "triton".
        check_finite: raise ValueError on NaN/inf coordinates of the valid rows and of
            coordinate centres (default; on CUDA it costs a reduction and a host sync).

    Returns:
        ``(indices, neighborhoods)``: int64 (G, k) / (B, G, k), distance ascending and ties
        by lowest index; float32 (G, k, 3) / (B, G, k, 3) = ``points[indices] - centre``.
        numpy for numpy points, else tensors on the points' device.
    """
    _check_impl(impl)
    batched, nb, n, k, lens, as_idx, g = _check_arguments(points, centers, k, lengths)
    is_tensor = is_torch(points)
    if impl == "auto":
        on_cuda = is_tensor and points.device.type == "cuda"
        impl = "triton" if on_cuda and triton_available() else "numba"

    if impl == "numba":
        _float_dtype_ok(points, "points")
        if check_finite:
            arr = _as_numpy_f32(points, lengths=lens)
        else:
            host = points.detach().to("cpu").numpy() if is_tensor else points
            arr = np.ascontiguousarray(host, dtype=np.float32)
        arr = arr.reshape(nb, n, 3)
        ctr = _centre_coords_numpy(arr, centers, as_idx, nb, g, lens)
        idx, nbh = _knn_numba(arr, ctr, k, lengths=lens)
        if not batched:
            idx, nbh = idx[0], nbh[0]
        if is_tensor:
            import torch

            dev = points.device
            return torch.from_numpy(idx).to(dev), torch.from_numpy(nbh).to(dev)
        return idx, nbh

    # impl == "triton"
    import torch

    tensor = _triton_input(points, is_tensor).reshape(nb, n, 3)
    lens_dev = None if lens is None else _lengths_on(lens, tensor.device)
    if check_finite:
        _check_finite_tensor(tensor, "points", lens_dev)
    c = centers if is_torch(centers) else torch.from_numpy(np.ascontiguousarray(centers))
    c = c.to(tensor.device)
    if as_idx:
        c = c.to(torch.int64).reshape(nb, g)
        limit = n if lens_dev is None else lens_dev[:, None]
        if c.numel() and bool(((c < 0) | (c >= limit)).any()):
            _check_centre_indices(c.cpu().numpy(), n, lens)  # raises, naming the range
        ctr = torch.gather(tensor, 1, c[:, :, None].expand(nb, g, 3))
    else:
        ctr = c.to(torch.float32).reshape(nb, g, 3)
        if check_finite:
            _check_finite_tensor(ctr, "centers")
    idx, nbh = _knn_triton(tensor, ctr.contiguous(), k, lens_dev, _longest(lens))
    if not batched:
        idx, nbh = idx[0], nbh[0]
    if is_tensor:
        return idx, nbh
    return idx.cpu().numpy(), nbh.cpu().numpy()


def knn_group_reference(points, centers, k: int, *, lengths=None) -> tuple[np.ndarray, np.ndarray]:
    """Brute force numpy reference: all distances, ``np.argsort(kind="stable")``, first k.

    Same arguments and validation as :func:`knn_group`; always returns numpy arrays. With
    ``lengths``, cloud b's neighbours come from ``points[b, :lengths[b]]`` alone.
    """
    batched, nb, n, k, lens, as_idx, g = _check_arguments(points, centers, k, lengths)
    arr = _as_numpy_f32(points, lengths=lens).reshape(nb, n, 3)
    ctr = _centre_coords_numpy(arr, centers, as_idx, nb, g, lens)
    idx = np.empty((nb, g, k), dtype=np.int64)
    nbh = np.empty((nb, g, k, 3), dtype=np.float32)
    for b in range(nb):
        pts = arr[b] if lens is None else arr[b, : lens[b]]
        for j in range(g):
            c = ctr[b, j]
            diff = pts - c  # float32
            d = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
            order = np.argsort(d, kind="stable")[:k]
            idx[b, j] = order
            nbh[b, j] = pts[order] - c
    if not batched:
        return idx[0], nbh[0]
    return idx, nbh


# --------------------------------------------------------------------------------------
# numba path
# --------------------------------------------------------------------------------------


def _knn_numba(arr: np.ndarray, ctr: np.ndarray, k: int, method: int = 1, lengths: np.ndarray | None = None):
    """(B, N, 3), (B, G, 3) float32 -> (B, G, k) int64, (B, G, k, 3) float32.
    ``method`` 1 = grid buckets (default), 0 = brute force (for the tests). ``lengths``:
    (B,) int64 valid points per cloud (None: all N); the bucket count follows each cloud's
    own length."""
    from . import _numba

    nb, n, _ = arr.shape
    g = ctr.shape[1]
    idx = np.empty((nb, g, k), dtype=np.int64)
    nbh = np.empty((nb, g, k, 3), dtype=np.float32)
    if g == 0:
        return idx, nbh
    if nb == 1:
        cloud = arr[0] if lengths is None else arr[0, : lengths[0]]
        if method == 0:
            _numba.knn_brute(cloud, ctr[0], k, idx[0], nbh[0])
        else:
            _numba.knn_grid(cloud, ctr[0], k, idx[0], nbh[0], max(1, len(cloud) // _BUCKET_POINTS))
        return idx, nbh
    lens = np.full(nb, n, dtype=np.int64) if lengths is None else lengths.astype(np.int64)
    targets = np.maximum(1, lens // _BUCKET_POINTS)
    _numba.run_parallel(_numba.knn_batch, arr, lens, ctr, k, idx, nbh, method, targets)
    return idx, nbh


# --------------------------------------------------------------------------------------
# Triton path
# --------------------------------------------------------------------------------------

# Module globals filled in by _build_kernel(); the jitted kernel resolves `tl` and its
# helper `_worst` here.
triton = None
tl = None
_worst = None


@functools.lru_cache(maxsize=1)
def _build_kernel():
    """Imports triton and defines the kernel (lazily: CPU users never import triton)."""
    global triton, tl, _worst
    import triton
    import triton.language as tl

    @triton.jit
    def _worst(topd, topi, offs_k):
        """Per row: the largest (distance, index) slot of the top-k set."""
        wd = tl.max(topd, axis=1)
        is_wd = topd == wd[:, None]
        wi = tl.max(tl.where(is_wd, topi, -1), axis=1)
        wslot = tl.max(tl.where(is_wd & (topi == wi[:, None]), offs_k[None, :], -1), axis=1)
        return wd, wi, wslot

    @triton.jit
    def _knn_kernel(
        pts_ptr,  # (B, N, 3) float32, element strides below
        ctr_ptr,  # (B, G, 3) float32, contiguous
        idx_ptr,  # (B, G, K) int64 out
        nb_ptr,  # (B, G, K, 3) float32 out
        len_ptr,  # (B,) int32 points per cloud, read only when HAS_LENGTHS
        N,
        G,
        K,
        n_gblocks,
        stride_b,
        stride_n,
        stride_c,
        BLOCK_G: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        HAS_LENGTHS: tl.constexpr,  # a padded batch: cloud b is its first len_ptr[b] rows
    ):
        pid = tl.program_id(0)
        b = pid // n_gblocks
        gblk = pid % n_gblocks
        if HAS_LENGTHS:
            n_b = tl.load(len_ptr + b)
        else:
            n_b = N
        base = pts_ptr + b.to(tl.int64) * stride_b
        offs_g = gblk * BLOCK_G + tl.arange(0, BLOCK_G)
        mask_g = offs_g < G
        crow = (b.to(tl.int64) * G + offs_g) * 3
        cx = tl.load(ctr_ptr + crow, mask=mask_g, other=0.0)
        cy = tl.load(ctr_ptr + crow + 1, mask=mask_g, other=0.0)
        cz = tl.load(ctr_ptr + crow + 2, mask=mask_g, other=0.0)

        offs_k = tl.arange(0, BLOCK_K)
        active = offs_k < K  # slots beyond K are padding: (-inf, -1), never the worst
        # an unsorted top-k set per centre: empty slots are (+inf, N + slot)
        topd = tl.where(active[None, :], float("inf"), float("-inf")) + tl.zeros((BLOCK_G, BLOCK_K), tl.float32)
        topi = tl.where(active[None, :], N + offs_k[None, :], -1) + tl.zeros((BLOCK_G, BLOCK_K), tl.int32)
        wd, wi, wslot = _worst(topd, topi, offs_k)

        for n0 in range(0, n_b, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            mask_n = offs_n < n_b
            px = tl.load(base + offs_n * stride_n, mask=mask_n, other=0.0)
            py = tl.load(base + offs_n * stride_n + stride_c, mask=mask_n, other=0.0)
            pz = tl.load(base + offs_n * stride_n + 2 * stride_c, mask=mask_n, other=0.0)
            dx = px[None, :] - cx[:, None]
            dy = py[None, :] - cy[:, None]
            dz = pz[None, :] - cz[:, None]
            d = dx * dx + dy * dy + dz * dz  # (BLOCK_G, BLOCK_N)
            on = offs_n[None, :]
            # candidates: (d, index) lexicographically below the row's worst slot
            valid = mask_n[None, :] & ((d < wd[:, None]) | ((d == wd[:, None]) & (on < wi[:, None])))
            nvalid = tl.sum(tl.sum(valid.to(tl.int32), axis=1), axis=0)
            while nvalid > 0:
                # the best candidate of each row replaces that row's worst slot
                cd = tl.where(valid, d, float("inf"))
                bd = tl.min(cd, axis=1)
                bi = tl.min(tl.where(valid & (cd == bd[:, None]), on, 2147483647), axis=1)
                has = bi < 2147483647
                sel = has[:, None] & (offs_k[None, :] == wslot[:, None])
                topd = tl.where(sel, bd[:, None], topd)
                topi = tl.where(sel, bi[:, None], topi)
                wd, wi, wslot = _worst(topd, topi, offs_k)
                valid = valid & (on != bi[:, None])
                valid = valid & ((d < wd[:, None]) | ((d == wd[:, None]) & (on < wi[:, None])))
                nvalid = tl.sum(tl.sum(valid.to(tl.int32), axis=1), axis=0)

        # emit the set in (distance, index) order with the centred neighbourhoods
        od = tl.where(active[None, :], topd, float("inf"))
        oi = tl.where(active[None, :], topi, 2147483647)
        orow = b.to(tl.int64) * G + offs_g  # (BLOCK_G,) output rows
        for t in range(K):
            md = tl.min(od, axis=1)
            mi = tl.min(tl.where(od == md[:, None], oi, 2147483647), axis=1)
            tl.store(idx_ptr + orow * K + t, mi.to(tl.int64), mask=mask_g)
            pptr = base + mi.to(tl.int64) * stride_n
            qx = tl.load(pptr, mask=mask_g, other=0.0)
            qy = tl.load(pptr + stride_c, mask=mask_g, other=0.0)
            qz = tl.load(pptr + 2 * stride_c, mask=mask_g, other=0.0)
            nptr = nb_ptr + (orow * K + t) * 3
            tl.store(nptr, qx - cx, mask=mask_g)
            tl.store(nptr + 1, qy - cy, mask=mask_g)
            tl.store(nptr + 2, qz - cz, mask=mask_g)
            taken = oi == mi[:, None]
            od = tl.where(taken, float("inf"), od)
            oi = tl.where(taken, 2147483647, oi)

    return _knn_kernel


def _knn_triton(x, ctr, k: int, lengths=None, max_length: int | None = None):
    """(B, N, 3) float32 points, (B, G, 3) contiguous float32 centres -> indices,
    neighbourhoods. ``lengths``: optional (B,) int32 tensor on x's device, ``max_length``
    its maximum (the point chunk is sized for the longest cloud)."""
    import torch

    kernel = _build_kernel()
    nb, n, _ = (int(v) for v in x.shape)
    g = int(ctr.shape[1])
    idx = torch.empty((nb, g, k), dtype=torch.int64, device=x.device)
    nbh = torch.empty((nb, g, k, 3), dtype=torch.float32, device=x.device)
    if nb == 0 or g == 0:
        return idx, nbh
    longest = n if lengths is None else int(max_length)
    block_g = min(_TRITON_BLOCK_G, next_power_of_2(g))
    block_n = min(_TRITON_BLOCK_N, next_power_of_2(longest))
    block_k = next_power_of_2(k)
    n_gblocks = (g + block_g - 1) // block_g
    sB, sN, sC = x.stride()
    guard = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[(nb * n_gblocks,)](
            x,
            ctr,
            idx,
            nbh,
            idx if lengths is None else lengths,  # any pointer when unused
            n,
            g,
            k,
            n_gblocks,
            sB,
            sN,
            sC,
            BLOCK_G=block_g,
            BLOCK_N=block_n,
            BLOCK_K=block_k,
            HAS_LENGTHS=lengths is not None,
            num_warps=4,
            enable_fp_fusion=False,  # a*b + c must round twice, like numpy
        )
    return idx, nbh
