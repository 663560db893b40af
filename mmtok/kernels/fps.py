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
* Padded batches of uneven clouds (as pytorch3d's ``sample_farthest_points(points,
  lengths=...)``): ``lengths`` is an optional (B,) integer numpy array, torch tensor or
  sequence of ints for batched (B, N, 3) input. Cloud b is ``points[b, :lengths[b]]``; the
  rows beyond are padding and are never read (they may hold anything, even NaN: the finite
  check looks at the valid rows only). Each cloud's picks are index-identical to sampling
  ``points[b, :lengths[b]]`` on its own. Every cloud must satisfy
  ``1 <= lengths[b] <= N``, ``num_samples <= lengths[b]`` and ``start < lengths[b]``, else
  ValueError naming the cloud (unlike pytorch3d, which pads short clouds' output with -1,
  every row of the output is a full set of M real picks). ``lengths`` with unbatched
  (N, 3) input is a ValueError. ``lengths=None``: every cloud has all N points.

Implementations:

* ``numba`` (CPU, the default for arrays and CPU tensors): for small clouds a vanilla
  O(N*M) loop; otherwise an exact bucket method in the spirit of QuickFPS: points are
  bucketed on a grid, each bucket keeps its box and the max of its points' ``min_dist``,
  a new centre only touches buckets whose box can be closer than that max (a float32
  lower bound that provably never exceeds a point's float32 distance), and the argmax over
  buckets keeps the global lowest-index tie rule. Index-identical to the vanilla loop on
  every input. Batches run cloud by cloud in parallel threads (numba ``prange``); with
  ``lengths`` the vanilla/buckets choice is made per cloud from its own length.
* ``triton`` (CUDA tensors): ``_fps_kernel``, one program per cloud running the whole
  M-step loop in one launch; the cloud lives in registers for N <= 8192, above that it is
  walked in chunks with ``min_dist`` in a global scratch buffer. Compiled with
  ``enable_fp_fusion=False`` so that distances round exactly like the CPU paths. With
  ``lengths`` each program reads its own cloud's length from a device tensor; the register
  block / chunk choice follows the longest cloud.
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


def _as_numpy_f32(points: Any, name: str = "points", lengths: np.ndarray | None = None) -> np.ndarray:
    """C-contiguous float32 numpy copy/view of a numpy array or CPU/GPU tensor; checks
    that every coordinate is finite (only the valid rows of a padded batch with
    ``lengths``)."""
    _float_dtype_ok(points, name)
    if is_torch(points):
        points = points.detach().to("cpu").numpy()
    arr = np.ascontiguousarray(points, dtype=np.float32)
    _check_finite_array(arr, name, lengths)
    return arr


def _first_bad_cloud_message(name: str, cloud: int, length: int) -> str:
    return (
        f"{name} contains NaN or infinite coordinates in cloud {cloud} "
        f"(among its valid rows {name}[{cloud}, :{length}])"
    )


def _check_finite_array(arr: np.ndarray, name: str, lengths: np.ndarray | None = None) -> None:
    """ValueError on NaN/inf; with ``lengths`` ((B,) for a (B, N, 3) array) the padding
    rows ``arr[b, lengths[b]:]`` are not looked at."""
    if lengths is None:
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite coordinates")
        return
    bad_rows = ~np.isfinite(arr).all(axis=-1) & _valid_rows(lengths, arr.shape[1])
    bad_clouds = np.flatnonzero(bad_rows.any(axis=1))
    if bad_clouds.size:
        b = int(bad_clouds[0])
        raise ValueError(_first_bad_cloud_message(name, b, int(lengths[b])))


def _check_finite_tensor(t: Any, name: str, lengths: Any = None) -> None:
    """Like :func:`_check_finite_array` for a tensor, on its device; ``lengths`` is a numpy
    array or a tensor (moved to the tensor's device)."""
    if lengths is None:
        if not bool(t.isfinite().all()):
            raise ValueError(f"{name} contains NaN or infinite coordinates")
        return
    torch = torch_module()
    lens = torch.as_tensor(lengths, device=t.device)
    valid = torch.arange(t.shape[1], device=t.device)[None, :] < lens[:, None]
    bad_clouds = (~t.isfinite().all(dim=-1) & valid).any(dim=1)
    if bool(bad_clouds.any()):
        b = int(bad_clouds.to(torch.int8).argmax())
        raise ValueError(_first_bad_cloud_message(name, b, int(lens[b])))


def _valid_rows(lengths: np.ndarray, n: int) -> np.ndarray:
    """(B, N) bool: True for the rows of a padded batch that belong to their cloud."""
    return np.arange(n)[None, :] < lengths[:, None]


def _check_lengths(lengths: Any, batched: bool, nb: int, n: int) -> np.ndarray | None:
    """Validates ``lengths`` for (B, N, 3) points; returns it as a (B,) int64 numpy array
    (None stays None)."""
    if lengths is None:
        return None
    if not batched:
        raise ValueError(
            "lengths is only for batched (B, N, 3) points; for a single (N, 3) cloud pass "
            "points[:length] instead"
        )
    if is_torch(lengths):
        torch = torch_module()
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must hold integers (one point count per cloud), got dtype {lengths.dtype}")
        arr = lengths.detach().to("cpu").numpy()
    else:
        arr = np.asarray(lengths)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"lengths must hold integers (one point count per cloud), got dtype {arr.dtype}")
    if arr.shape != (nb,):
        raise ValueError(f"lengths must have shape (B,) = ({nb},), one point count per cloud; got shape {arr.shape}")
    arr = arr.astype(np.int64)
    out_of_range = np.flatnonzero((arr < 1) | (arr > n))
    if out_of_range.size:
        b = int(out_of_range[0])
        raise ValueError(
            f"lengths[{b}]={int(arr[b])} is out of range: every cloud needs 1 <= lengths[b] <= N={n} "
            "(N, the padded size, is points.shape[1])"
        )
    return arr


def _check_lengths_cover(lengths: np.ndarray, need: int, what: str, op: str) -> None:
    """ValueError naming the first cloud shorter than ``need`` points."""
    short = np.flatnonzero(lengths < need)
    if short.size:
        b = int(short[0])
        raise ValueError(
            f"{what} is larger than cloud {b}'s length lengths[{b}]={int(lengths[b])}; "
            f"{op} needs it <= lengths[b] for every cloud"
        )


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


def _check_counts_lengths(m: int, start: int, lengths: np.ndarray) -> None:
    """Per-cloud checks of a padded batch: M picks and the start index in every cloud."""
    _check_lengths_cover(lengths, m, f"num_samples={m}", "farthest_point_sample")
    short = np.flatnonzero(lengths <= start)
    if short.size:
        b = int(short[0])
        raise ValueError(f"start={start} is out of range for cloud {b} of lengths[{b}]={int(lengths[b])} points")


def _pick_method(n: int, m: int) -> tuple[int, int]:
    """(method, target buckets) for the numba kernels: 0 = vanilla, 1 = grid buckets."""
    if n * m <= _VANILLA_MAX_WORK:
        return 0, 1
    leaf = min(64, max(8, n // max(m, 1)))  # points per bucket
    if n >= 8192:
        leaf = max(leaf, 32)
    return 1, max(1, n // leaf)


def _pick_methods(lengths: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_pick_method` per cloud, as (B,) int64 arrays (methods, targets)."""
    distinct, which = np.unique(lengths, return_inverse=True)
    plans = np.array([_pick_method(int(n), m) for n in distinct], dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(plans[which, 0]), np.ascontiguousarray(plans[which, 1])


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def farthest_point_sample(
    points,
    num_samples: int,
    *,
    start: int = 0,
    lengths=None,
    impl: str = "auto",
    check_finite: bool = True,
):
    """Farthest point sampling; returns the indices of the picked points.

    Args:
        points: (N, 3) or batched (B, N, 3) numpy array or torch tensor (converted to
            float32; any real dtype is accepted).
        num_samples: M, how many points to pick (0 <= M <= N, and M <= lengths[b]).
        start: index of the first pick (default 0, as the pointnet2 CUDA kernel), the same
            for every cloud of a batch.
        lengths: optional (B,) integers (numpy array, torch tensor on any device, or a
            sequence of ints) for a padded batch of uneven clouds: cloud b is
            ``points[b, :lengths[b]]`` and its padding rows are never read. Needs batched
            input and ``1 <= lengths[b] <= N``; M and ``start`` must fit every cloud
            (ValueError naming the first cloud that is too short). None: all N points.
        impl: "auto" (Triton for CUDA tensors when triton imports, numba otherwise),
            "numba" or "triton".
        check_finite: raise ValueError on NaN/inf coordinates of the valid rows (default).
            On CUDA the check costs one reduction and a host sync; turn it off for
            pre-validated batches (the result on non-finite input is then unspecified).

    Returns:
        int64 indices, (M,) or (B, M), numpy array for numpy input, else a tensor on the
        input's device. Picks follow the module docstring: largest min-distance to the
        picked set, ties towards the lowest index; index-identical to
        :func:`farthest_point_sample_reference` (per cloud, to the reference on
        ``points[b, :lengths[b]]``).
    """
    _check_impl(impl)
    batched, nb, n = _points_shape(points)
    m, s = _check_counts(num_samples, n, start)
    lens = _check_lengths(lengths, batched, nb, n)
    if lens is not None:
        _check_counts_lengths(m, s, lens)
    is_tensor = is_torch(points)
    if impl == "auto":
        on_cuda = is_tensor and points.device.type == "cuda"
        impl = "triton" if on_cuda and triton_available() else "numba"

    if impl == "numba":
        if is_tensor:
            _float_dtype_ok(points, "points")
            host = points.detach().to("cpu")
            if check_finite:
                _check_finite_tensor(host, "points", lens)
            arr = np.ascontiguousarray(host.numpy(), dtype=np.float32)
        else:
            _float_dtype_ok(points, "points")
            arr = np.ascontiguousarray(points, dtype=np.float32)
            if check_finite:
                _check_finite_array(arr, "points", lens)
        out = _fps_numba(arr.reshape(nb, n, 3), m, s, lengths=lens)
        out = out if batched else out[0]
        if is_tensor:
            import torch

            return torch.from_numpy(out).to(points.device)
        return out

    # impl == "triton"
    tensor = _triton_input(points, is_tensor)
    lens_dev = None if lens is None else _lengths_on(lens, tensor.device)
    if check_finite:
        _check_finite_tensor(tensor, "points", lens_dev)
    out = _fps_triton(tensor.reshape(nb, n, 3), m, s, lens_dev, _longest(lens))
    out = out if batched else out[0]
    return out if is_tensor else out.cpu().numpy()


def farthest_point_sample_reference(points, num_samples: int, *, start: int = 0, lengths=None) -> np.ndarray:
    """The vanilla FPS loop in plain numpy, O(N*M): the definition the fast paths match.

    Same arguments and validation as :func:`farthest_point_sample`; always returns numpy.
    With ``lengths``, cloud b is sampled from ``points[b, :lengths[b]]`` alone.
    """
    batched, nb, n = _points_shape(points)
    m, s = _check_counts(num_samples, n, start)
    lens = _check_lengths(lengths, batched, nb, n)
    if lens is not None:
        _check_counts_lengths(m, s, lens)
    arr = _as_numpy_f32(points, lengths=lens).reshape(nb, n, 3)
    out = np.empty((nb, m), dtype=np.int64)
    for b in range(nb):
        pts = arr[b] if lens is None else arr[b, : lens[b]]
        min_dist = np.full(len(pts), np.inf, dtype=np.float32)
        cur = s
        for j in range(m):
            out[b, j] = cur
            diff = pts - pts[cur]  # float32
            d = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
            np.minimum(min_dist, d, out=min_dist)
            cur = int(np.argmax(min_dist))  # first occurrence: lowest index on ties
    return out if batched else out[0]


def _longest(lengths: np.ndarray | None) -> int | None:
    """The longest cloud of a padded batch (None without lengths or for B = 0)."""
    return int(lengths.max()) if lengths is not None and lengths.size else None


def _lengths_on(lengths: np.ndarray, device: Any):
    """The validated (B,) lengths as an int32 tensor on ``device`` (for the Triton kernels)."""
    import torch

    return torch.from_numpy(lengths.astype(np.int32)).to(device)


# --------------------------------------------------------------------------------------
# numba path
# --------------------------------------------------------------------------------------


def _fps_numba(
    arr: np.ndarray, m: int, start: int, method: int | None = None, lengths: np.ndarray | None = None
) -> np.ndarray:
    """(B, N, 3) float32 C-contiguous -> (B, M) int64. ``method`` forces 0 (vanilla) or
    1 (grid buckets) for the tests; by default it is chosen per cloud from its length and
    M. ``lengths``: (B,) int64 valid points per cloud (None: all N)."""
    from . import _numba

    nb, n, _ = arr.shape
    out = np.empty((nb, m), dtype=np.int64)
    if m == 0:
        return out
    if nb == 1:
        cloud = arr[0] if lengths is None else arr[0, : lengths[0]]
        auto_method, target = _pick_method(len(cloud), m)
        if (auto_method if method is None else method) == 0:
            _numba.fps_vanilla(cloud, m, start, out[0])
        else:
            _numba.fps_grid(cloud, m, start, out[0], target)
        return out
    if lengths is None:  # one plan for every cloud
        auto_method, target = _pick_method(n, m)
        lens = np.full(nb, n, dtype=np.int64)
        methods = np.full(nb, auto_method, dtype=np.int64)
        targets = np.full(nb, target, dtype=np.int64)
    else:
        lens = lengths.astype(np.int64)
        methods, targets = _pick_methods(lens, m)
    if method is not None:
        methods[:] = method
    _numba.run_parallel(_numba.fps_batch, arr, lens, m, start, out, methods, targets)
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
        len_ptr,  # (B,) int32 points per cloud, read only when HAS_LENGTHS
        N,
        M,
        start,
        stride_b,
        stride_n,
        stride_c,
        BLOCK: tl.constexpr,
        SINGLE: tl.constexpr,  # the whole cloud in one block (BLOCK >= every length)
        HAS_LENGTHS: tl.constexpr,  # a padded batch: cloud b is its first len_ptr[b] rows
    ):
        b = tl.program_id(0)
        if HAS_LENGTHS:
            n_b = tl.load(len_ptr + b)
        else:
            n_b = N
        base = pts_ptr + b.to(tl.int64) * stride_b
        out_base = out_ptr + b.to(tl.int64) * M
        offs = tl.arange(0, BLOCK)
        cur = start
        tl.store(out_base, cur.to(tl.int64))
        if SINGLE:
            mask = offs < n_b
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
            for c0 in range(0, n_b, BLOCK):
                o = c0 + offs
                tl.store(dist_base + o, tl.full((BLOCK,), float("inf"), tl.float32), mask=o < n_b)
            for j in range(1, M):
                cptr = base + cur.to(tl.int64) * stride_n
                cx = tl.load(cptr)
                cy = tl.load(cptr + stride_c)
                cz = tl.load(cptr + 2 * stride_c)
                best = -1.0
                besti = cur
                for c0 in range(0, n_b, BLOCK):
                    o = c0 + offs
                    mask = o < n_b
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
                    carg = tl.min(tl.where(dist == cmax, o, n_b), axis=0)
                    # chunks come in index order: a later chunk wins only if strictly larger
                    take = cmax > best
                    best = tl.where(take, cmax, best)
                    besti = tl.where(take, carg, besti)
                cur = besti
                tl.store(out_base + j, cur.to(tl.int64))

    return _fps_kernel


def _fps_triton(x, m: int, start: int, lengths=None, max_length: int | None = None):
    """(B, N, 3) float32 tensor (CUDA, or CPU under the interpreter) -> (B, M) int64.
    ``lengths``: optional (B,) int32 tensor on x's device, ``max_length`` its maximum (the
    register block is sized for the longest cloud, not the padded N)."""
    import torch

    kernel = _build_kernel()
    nb, n, _ = (int(v) for v in x.shape)
    out = torch.empty((nb, m), dtype=torch.int64, device=x.device)
    if nb == 0 or m == 0:
        return out
    longest = n if lengths is None else int(max_length)
    single = longest <= _TRITON_MAX_BLOCK
    block = next_power_of_2(longest) if single else _TRITON_CHUNK
    dist = out if single else torch.empty((nb, n), dtype=torch.float32, device=x.device)
    num_warps = 16 if block >= 4096 else 8 if block >= 1024 else 4
    sB, sN, sC = x.stride()
    guard = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[(nb,)](
            x,
            out,
            dist,
            out if lengths is None else lengths,  # any pointer when unused
            n,
            m,
            start,
            sB,
            sN,
            sC,
            BLOCK=block,
            SINGLE=single,
            HAS_LENGTHS=lengths is not None,
            num_warps=num_warps,
            enable_fp_fusion=False,  # a*b + c must round twice, like numpy
        )
    return out
