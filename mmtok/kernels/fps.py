"""Farthest point sampling (FPS): pick M well-spread points of an (N, 3) cloud, exactly.

Semantics (every implementation, bit for bit):

* ``min_dist`` starts at +inf for every point. The first pick is ``start`` (default 0:
  point 0, as the pointnet2 CUDA kernel). After each pick c, every point's ``min_dist``
  becomes ``min(min_dist, d(p, c))`` and the next pick is the point with the largest
  ``min_dist``, ties broken towards the lowest index -- ``np.argmax`` (first occurrence)
  of the ``min_dist`` array.
* ``d(p, c) = (dx*dx + dy*dy) + dz*dz`` with ``dx = p.x - c.x`` etc., every operation
  rounded to float32 (no ``|a|^2 + |b|^2 - 2ab`` expansion, no fused multiply-add).
* Duplicates: a point equal to an already picked one has ``min_dist == 0``. Once every
  point coincides with a picked point (the cloud has fewer distinct positions than
  ``num_samples``), the largest ``min_dist`` is 0 and the first occurrence of 0 is index
  0, so every remaining pick is **index 0** (even with ``start != 0``). The output then
  holds repeated indices; otherwise all indices are distinct. For example an all-equal
  cloud gives ``[start, 0, 0, ...]``.
* Input (N, 3) or batched (B, N, 3), numpy array or torch tensor, converted to float32;
  output int64 indices (M,) or (B, M) in the same container (and device). Non-finite
  coordinates, ``num_samples > N`` and a bad ``start`` raise ValueError.

Implementations:

* ``numba`` (CPU, the default for arrays and CPU tensors): for small clouds a vanilla
  O(N*M) loop; otherwise an exact bucket method in the spirit of QuickFPS: points are
  bucketed on a grid, each bucket keeps its box and the max of its points' ``min_dist``,
  a new centre only touches buckets whose box can be closer than that max (a float32
  lower bound that provably never exceeds a point's float32 distance), and the argmax over
  buckets keeps the global lowest-index tie rule. Index-identical to the vanilla loop on
  every input. Batches run cloud by cloud in parallel threads (numba ``prange``).
* ``triton`` (CUDA tensors): ``_fps_kernel``, one program per cloud running the whole
  M-step loop in one launch; the cloud lives in registers for N <= 8192, above that it is
  walked in chunks with ``min_dist`` in a global scratch buffer. Compiled with
  ``enable_fp_fusion=False`` so that distances round exactly like the CPU paths.
* :func:`farthest_point_sample_reference`: the plain numpy vanilla loop that defines the
  result (O(N*M), slow).

Neither torch nor triton is imported by this module (torch tensors are recognised through
``sys.modules``); numba is imported on the first CPU call (its JIT compile, a few seconds
the very first time, is cached on disk).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from ._tensors import is_torch, torch_module
from ._triton import interpreter_enabled, next_power_of_2, triton_available

__all__ = ["farthest_point_sample", "farthest_point_sample_reference"]

IMPLS = ("auto", "numba", "triton")

# Clouds with N * M at most this run the vanilla loop (cheaper than building buckets).
_VANILLA_MAX_WORK = 65_536
# Largest cloud the Triton kernel keeps in registers; larger ones are walked in chunks.
_TRITON_MAX_BLOCK = 8192
_TRITON_CHUNK = 4096


# --------------------------------------------------------------------------------------
# argument handling (shared with knn.py)
# --------------------------------------------------------------------------------------


def _check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; valid choices are: {', '.join(IMPLS)}")


def _points_shape(points: Any, name: str = "points") -> tuple[bool, int, int]:
    """Validates the container and shape; returns (batched, B, N)."""
    if not (isinstance(points, np.ndarray) or is_torch(points)):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(points).__name__}")
    shape = tuple(int(s) for s in points.shape)
    if len(shape) not in (2, 3) or shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) or (B, N, 3), got shape {shape}")
    if shape[-2] == 0:
        raise ValueError(f"{name} is an empty cloud (N = 0)")
    batched = len(shape) == 3
    return batched, (shape[0] if batched else 1), shape[-2]


def _float_dtype_ok(points: Any, name: str) -> None:
    if isinstance(points, np.ndarray):
        if points.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {points.dtype}")
    elif points.dtype.is_complex or points.dtype == torch_module().bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {points.dtype}")


def _as_numpy_f32(points: Any, name: str = "points") -> np.ndarray:
    """C-contiguous float32 numpy copy/view of a numpy array or CPU/GPU tensor; checks
    that every coordinate is finite."""
    _float_dtype_ok(points, name)
    if is_torch(points):
        points = points.detach().to("cpu").numpy()
    arr = np.ascontiguousarray(points, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return arr


def _check_finite_tensor(t: Any, name: str) -> None:
    if not bool(t.isfinite().all()):
        raise ValueError(f"{name} contains NaN or infinite coordinates")


def _triton_input(points: Any, is_tensor: bool):
    """The points as a float32 torch tensor the Triton kernels can take, or a clear error."""
    if not triton_available():
        raise RuntimeError(
            "impl='triton' was requested but triton cannot be imported; "
            "install triton or use impl='numba'"
        )
    import torch

    _float_dtype_ok(points, "points")
    tensor = points if is_tensor else torch.from_numpy(np.ascontiguousarray(points))
    if tensor.device.type == "cpu" and not interpreter_enabled():
        raise RuntimeError(
            "impl='triton' on CPU data needs the Triton interpreter: set TRITON_INTERPRET=1 "
            "before triton is first imported, or move the input to CUDA"
        )
    return tensor.to(torch.float32)


def _check_counts(num_samples: Any, n: int, start: Any) -> tuple[int, int]:
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise TypeError(f"num_samples must be an int, got {num_samples!r}")
    m = int(num_samples)
    if m < 0:
        raise ValueError(f"num_samples must be >= 0, got {m}")
    if m > n:
        raise ValueError(f"num_samples={m} is larger than the number of points N={n}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise TypeError(f"start must be an int, got {start!r}")
    s = int(start)
    if not 0 <= s < n:
        raise ValueError(f"start={s} is out of range for a cloud of N={n} points")
    return m, s


def _pick_method(n: int, m: int) -> tuple[int, int]:
    """(method, target buckets) for the numba kernels: 0 = vanilla, 1 = grid buckets."""
    if n * m <= _VANILLA_MAX_WORK:
        return 0, 1
    leaf = min(64, max(8, n // max(m, 1)))  # points per bucket
    if n >= 8192:
        leaf = max(leaf, 32)
    return 1, max(1, n // leaf)


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def farthest_point_sample(
    points,
    num_samples: int,
    *,
    start: int = 0,
    impl: str = "auto",
    check_finite: bool = True,
):
    """Farthest point sampling; returns the indices of the picked points.

    Args:
        points: (N, 3) or batched (B, N, 3) numpy array or torch tensor (converted to
            float32; any real dtype is accepted).
        num_samples: M, how many points to pick (0 <= M <= N).
        start: index of the first pick (default 0, as the pointnet2 CUDA kernel), the same
            for every cloud of a batch.
        impl: "auto" (Triton for CUDA tensors when triton imports, numba otherwise),
            "numba" or "triton".
        check_finite: raise ValueError on NaN/inf coordinates (default). On CUDA the check
            costs one reduction and a host sync; turn it off for pre-validated batches
            (the result on non-finite input is then unspecified).

    Returns:
        int64 indices, (M,) or (B, M), numpy array for numpy input, else a tensor on the
        input's device. Picks follow the module docstring: largest min-distance to the
        picked set, ties towards the lowest index; index-identical to
        :func:`farthest_point_sample_reference`.
    """
    _check_impl(impl)
    batched, nb, n = _points_shape(points)
    m, s = _check_counts(num_samples, n, start)
    is_tensor = is_torch(points)
    if impl == "auto":
        on_cuda = is_tensor and points.device.type == "cuda"
        impl = "triton" if on_cuda and triton_available() else "numba"

    if impl == "numba":
        if is_tensor:
            _float_dtype_ok(points, "points")
            host = points.detach().to("cpu")
            if check_finite:
                _check_finite_tensor(host, "points")
            arr = np.ascontiguousarray(host.numpy(), dtype=np.float32)
        else:
            _float_dtype_ok(points, "points")
            arr = np.ascontiguousarray(points, dtype=np.float32)
            if check_finite and not np.isfinite(arr).all():
                raise ValueError("points contains NaN or infinite coordinates")
        out = _fps_numba(arr.reshape(nb, n, 3), m, s)
        out = out if batched else out[0]
        if is_tensor:
            import torch

            return torch.from_numpy(out).to(points.device)
        return out

    # impl == "triton"
    tensor = _triton_input(points, is_tensor)
    if check_finite:
        _check_finite_tensor(tensor, "points")
    out = _fps_triton(tensor.reshape(nb, n, 3), m, s)
    out = out if batched else out[0]
    return out if is_tensor else out.cpu().numpy()


def farthest_point_sample_reference(points, num_samples: int, *, start: int = 0) -> np.ndarray:
    """The vanilla FPS loop in plain numpy, O(N*M): the definition the fast paths match.

    Same arguments and validation as :func:`farthest_point_sample`; always returns numpy.
    """
    batched, nb, n = _points_shape(points)
    m, s = _check_counts(num_samples, n, start)
    arr = _as_numpy_f32(points).reshape(nb, n, 3)
    out = np.empty((nb, m), dtype=np.int64)
    for b in range(nb):
        pts = arr[b]
        min_dist = np.full(n, np.inf, dtype=np.float32)
        cur = s
        for j in range(m):
            out[b, j] = cur
            diff = pts - pts[cur]  # float32
            d = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
            np.minimum(min_dist, d, out=min_dist)
            cur = int(np.argmax(min_dist))  # first occurrence: lowest index on ties
    return out if batched else out[0]


# --------------------------------------------------------------------------------------
# numba path
# --------------------------------------------------------------------------------------


def _fps_numba(arr: np.ndarray, m: int, start: int, method: int | None = None) -> np.ndarray:
    """(B, N, 3) float32 C-contiguous -> (B, M) int64. ``method`` forces 0 (vanilla) or
    1 (grid buckets) for the tests; by default it is chosen from N and M."""
    from . import _numba

    nb, n, _ = arr.shape
    out = np.empty((nb, m), dtype=np.int64)
    if m == 0:
        return out
    auto_method, target = _pick_method(n, m)
    if method is None:
        method = auto_method
    if nb == 1:
        if method == 0:
            _numba.fps_vanilla(arr[0], m, start, out[0])
        else:
            _numba.fps_grid(arr[0], m, start, out[0], target)
    else:
        _numba.run_parallel(_numba.fps_batch, arr, m, start, out, method, target)
    return out


# --------------------------------------------------------------------------------------
# Triton path
# --------------------------------------------------------------------------------------

# Module globals filled in by _build_kernel(); the jitted kernel resolves `tl` here.
triton = None
tl = None


@functools.lru_cache(maxsize=1)
def _build_kernel():
    """Imports triton and defines the kernel (lazily: CPU users never import triton)."""
    global triton, tl
    import triton
    import triton.language as tl

    # `start` is loop-carried: keep Triton from turning start == 1 into a constexpr.
    @triton.jit(do_not_specialize=["start"])
    def _fps_kernel(
        pts_ptr,  # (B, N, 3) float32, element strides below
        out_ptr,  # (B, M) int64, contiguous
        dist_ptr,  # (B, N) float32 scratch, used only when not SINGLE
        N,
        M,
        start,
        stride_b,
        stride_n,
        stride_c,
        BLOCK: tl.constexpr,
        SINGLE: tl.constexpr,  # the whole cloud in one block (BLOCK >= N)
    ):
        b = tl.program_id(0)
        base = pts_ptr + b.to(tl.int64) * stride_b
        out_base = out_ptr + b.to(tl.int64) * M
        offs = tl.arange(0, BLOCK)
        cur = start
        tl.store(out_base, cur.to(tl.int64))
        if SINGLE:
            mask = offs < N
            x = tl.load(base + offs * stride_n, mask=mask, other=0.0)
            y = tl.load(base + offs * stride_n + stride_c, mask=mask, other=0.0)
            z = tl.load(base + offs * stride_n + 2 * stride_c, mask=mask, other=0.0)
            # padding lanes hold -1 (below every real distance): never picked
            dist = tl.where(mask, float("inf"), -1.0)
            for j in range(1, M):
                cptr = base + cur.to(tl.int64) * stride_n
                cx = tl.load(cptr)
                cy = tl.load(cptr + stride_c)
                cz = tl.load(cptr + 2 * stride_c)
                dx = x - cx
                dy = y - cy
                dz = z - cz
                d = dx * dx + dy * dy + dz * dz
                dist = tl.where(mask, tl.minimum(dist, d), -1.0)
                best = tl.max(dist, axis=0)
                # lowest index among the maxima
                cur = tl.min(tl.where(dist == best, offs, BLOCK), axis=0)
                tl.store(out_base + j, cur.to(tl.int64))
        else:
            dist_base = dist_ptr + b.to(tl.int64) * N
            for c0 in range(0, N, BLOCK):
                o = c0 + offs
                tl.store(dist_base + o, tl.full((BLOCK,), float("inf"), tl.float32), mask=o < N)
            for j in range(1, M):
                cptr = base + cur.to(tl.int64) * stride_n
                cx = tl.load(cptr)
                cy = tl.load(cptr + stride_c)
                cz = tl.load(cptr + 2 * stride_c)
                best = -1.0
                besti = cur
                for c0 in range(0, N, BLOCK):
                    o = c0 + offs
                    mask = o < N
                    x = tl.load(base + o * stride_n, mask=mask, other=0.0)
                    y = tl.load(base + o * stride_n + stride_c, mask=mask, other=0.0)
                    z = tl.load(base + o * stride_n + 2 * stride_c, mask=mask, other=0.0)
                    old = tl.load(dist_base + o, mask=mask, other=-1.0)
                    dx = x - cx
                    dy = y - cy
                    dz = z - cz
                    d = dx * dx + dy * dy + dz * dz
                    dist = tl.where(mask, tl.minimum(old, d), -1.0)
                    tl.store(dist_base + o, dist, mask=mask)
                    cmax = tl.max(dist, axis=0)
                    carg = tl.min(tl.where(dist == cmax, o, N), axis=0)
                    # chunks come in index order: a later chunk wins only if strictly larger
                    take = cmax > best
                    best = tl.where(take, cmax, best)
                    besti = tl.where(take, carg, besti)
                cur = besti
                tl.store(out_base + j, cur.to(tl.int64))

    return _fps_kernel


def _fps_triton(x, m: int, start: int):
    """(B, N, 3) float32 tensor (CUDA, or CPU under the interpreter) -> (B, M) int64."""
    import torch

    kernel = _build_kernel()
    nb, n, _ = (int(v) for v in x.shape)
    out = torch.empty((nb, m), dtype=torch.int64, device=x.device)
    if nb == 0 or m == 0:
        return out
    single = n <= _TRITON_MAX_BLOCK
    block = next_power_of_2(n) if single else _TRITON_CHUNK
    dist = out if single else torch.empty((nb, n), dtype=torch.float32, device=x.device)
    num_warps = 16 if block >= 4096 else 8 if block >= 1024 else 4
    sB, sN, sC = x.stride()
    guard = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[(nb,)](
            x,
            out,
            dist,
            n,
            m,
            start,
            sB,
            sN,
            sC,
            BLOCK=block,
            SINGLE=single,
            num_warps=num_warps,
            enable_fp_fusion=False,  # a*b + c must round twice, like numpy
        )
    return out
