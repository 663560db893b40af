"""Tests for mmtok.kernels.fps: numba (vanilla and grid buckets) and Triton against the
numpy vanilla reference, index for index, on random and adversarial clouds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pyrun import ADVERSARIAL_CLOUDS, run_interpreted, subprocess_env
import torch

from mmtok.kernels import _numba
from mmtok.kernels.fps import (
    _fps_numba,
    farthest_point_sample,
    farthest_point_sample_reference,
)

RNG_SEED = 1234


def _lattice(side: int) -> np.ndarray:
    g = np.arange(side, dtype=np.float32)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def _clouds():
    """(name, cloud) pairs: random clouds of several sizes and adversarial ones."""
    rng = np.random.default_rng(RNG_SEED)
    out = [
        ("random-7", rng.standard_normal((7, 3)).astype(np.float32)),
        ("random-100", rng.standard_normal((100, 3)).astype(np.float32)),
        ("random-1024", rng.standard_normal((1024, 3)).astype(np.float32)),
        ("uniform-1024", rng.random((1024, 3)).astype(np.float32)),
    ]
    # 1024 points drawn from 10 distinct positions: fewer positions than samples
    positions = rng.integers(-3, 4, size=(10, 3)).astype(np.float32)
    out.append(("duplicates-10-positions", positions[rng.integers(0, 10, 1024)]))
    # every point duplicated 4 times, shuffled: ties between twins all the way down
    base = rng.standard_normal((200, 3)).astype(np.float32)
    out.append(("twins", base[rng.permutation(np.repeat(np.arange(200), 4))]))
    # collinear, evenly spaced (many equal distances), and in a shuffled order
    line = (np.arange(300, dtype=np.float32)[:, None] * np.float32([1.0, 2.0, -0.5]))
    out.append(("collinear", line))
    out.append(("collinear-shuffled", line[rng.permutation(300)]))
    # integer lattice: huge numbers of exactly equal distances
    out.append(("lattice-10", _lattice(10)))
    out.append(("lattice-shuffled", _lattice(8)[rng.permutation(512)]))
    # a flat (planar) cloud and a sphere surface (bucket grids with many empty cells)
    flat = rng.standard_normal((500, 3)).astype(np.float32)
    flat[:, 2] = 0
    out.append(("planar", flat))
    v = rng.standard_normal((800, 3))
    out.append(("sphere", (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)))
    # two far clusters with a tiny one: extremes of bucket occupancy
    clusters = np.concatenate(
        [
            rng.standard_normal((400, 3)) * 0.01,
            rng.standard_normal((400, 3)) * 0.01 + 1000,
            rng.standard_normal((5, 3)) * 0.01 - 50,
        ]
    ).astype(np.float32)
    out.append(("clusters", clusters))
    out.append(("all-identical", np.full((64, 3), 0.25, np.float32)))
    out.append(("single-point", np.float32([[1.0, 2.0, 3.0]])))
    return out


CLOUDS = _clouds()
CLOUD_IDS = [name for name, _ in CLOUDS]


def _sample_counts(n: int) -> list[int]:
    return sorted({1, min(n, 2), min(n, 16), min(n, 64), n if n <= 1024 else 256})


# --------------------------------------------------------------------------------------
# CPU fast paths == reference, index for index
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,cloud", CLOUDS, ids=CLOUD_IDS)
def test_numba_paths_match_reference(name, cloud):
    n = len(cloud)
    for m in _sample_counts(n):
        ref = farthest_point_sample_reference(cloud, m)
        assert ref.shape == (m,) and ref.dtype == np.int64
        batch = cloud[None]
        for method in (0, 1):  # vanilla, grid buckets
            got = _fps_numba(batch, m, 0, method=method)[0]
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} M={m} method={method}")
        # bucket grids from one bucket to one point per bucket
        for target in (1, 3, max(1, n // 8), n):
            out = np.empty(m, np.int64)
            _numba.fps_grid(cloud, m, 0, out, target)
            np.testing.assert_array_equal(out, ref, err_msg=f"{name} M={m} target={target}")
        got = farthest_point_sample(cloud, m)
        np.testing.assert_array_equal(got, ref, err_msg=f"{name} M={m} auto")


@pytest.mark.parametrize("start", [1, 5, 99])
def test_start_index(start):
    cloud = CLOUDS[1][1]  # random-100
    for m in (1, 10, 100):
        ref = farthest_point_sample_reference(cloud, m, start=start)
        assert ref[0] == start
        for method in (0, 1):
            np.testing.assert_array_equal(_fps_numba(cloud[None], m, start, method=method)[0], ref)
        np.testing.assert_array_equal(farthest_point_sample(cloud, m, start=start), ref)


def test_large_cloud_matches_reference():
    rng = np.random.default_rng(7)
    cloud = rng.standard_normal((8192, 3)).astype(np.float32)
    ref = farthest_point_sample_reference(cloud, 96)
    np.testing.assert_array_equal(farthest_point_sample(cloud, 96), ref)  # grid buckets
    np.testing.assert_array_equal(_fps_numba(cloud[None], 96, 0, method=0)[0], ref)
    # the same cloud quantised to a coarse lattice: thousands of exact ties
    coarse = np.round(cloud * 2).astype(np.float32)
    ref = farthest_point_sample_reference(coarse, 128)
    np.testing.assert_array_equal(farthest_point_sample(coarse, 128), ref)


def test_all_distinct_until_exhausted_then_index_zero():
    # Documented rule: once every point coincides with a picked one, picks are index 0.
    cloud = np.float32([[0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]])
    got = farthest_point_sample(cloud, 5, start=2)
    np.testing.assert_array_equal(got, [2, 0, 0, 0, 0])
    np.testing.assert_array_equal(got, farthest_point_sample_reference(cloud, 5, start=2))
    same = np.ones((6, 3), np.float32)
    np.testing.assert_array_equal(farthest_point_sample(same, 4, start=3), [3, 0, 0, 0])
    # with as many distinct positions as samples, no index repeats
    cloud = CLOUDS[4][1]  # duplicates-10-positions
    got = farthest_point_sample(cloud, 10)
    assert len(set(got.tolist())) == len(np.unique(cloud, axis=0))


def _fps_highest_index_ties(points: np.ndarray, m: int) -> np.ndarray:
    """Vanilla FPS breaking ties towards the HIGHEST index (fpsample's vanilla rule)."""
    n = len(points)
    dist = np.full(n, np.inf, np.float32)
    out = np.empty(m, np.int64)
    cur = 0
    for j in range(m):
        out[j] = cur
        diff = points - points[cur]
        d = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
        np.minimum(dist, d, out=dist)
        cur = n - 1 - int(np.argmax(dist[::-1]))
    return out


@pytest.mark.parametrize("cloud", [CLOUDS[8][1], _lattice(4)], ids=["lattice-10", "lattice-4"])
def test_tie_rule_is_lowest_index(cloud):
    # On a lattice the two tie rules diverge: this test fails if the fast paths broke
    # ties the other way (or arbitrarily).
    m = 32
    ours = farthest_point_sample(cloud, m)
    highest = _fps_highest_index_ties(cloud, m)
    assert not np.array_equal(ours, highest)
    np.testing.assert_array_equal(ours, farthest_point_sample_reference(cloud, m))
    for method in (0, 1):
        got = _fps_numba(cloud[None], m, 0, method=method)[0]
        assert not np.array_equal(got, highest)
    # a 2x2 square: from corner 0 the far corner 3, then corners 1 and 2 tie -> 1 first
    square = np.float32([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(farthest_point_sample(square, 4), [0, 3, 1, 2])
    np.testing.assert_array_equal(_fps_highest_index_ties(square, 4), [0, 3, 2, 1])


def test_distance_is_not_the_expanded_formula():
    # Far from the origin |a|^2 + |b|^2 - 2ab cancels catastrophically in float32; the
    # direct difference formula keeps the order. All paths must use the direct form.
    rng = np.random.default_rng(3)
    cloud = (rng.standard_normal((300, 3)) * 1e-3 + 1e4).astype(np.float32)
    ref = farthest_point_sample_reference(cloud, 40)
    np.testing.assert_array_equal(farthest_point_sample(cloud, 40), ref)
    np.testing.assert_array_equal(_fps_numba(cloud[None], 40, 0, method=1)[0], ref)


# --------------------------------------------------------------------------------------
# batches, containers, dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [0, 1])
def test_batched_matches_per_cloud(method):
    rng = np.random.default_rng(11)
    batch = rng.standard_normal((5, 700, 3)).astype(np.float32)
    batch[2] = np.round(batch[2])  # one cloud full of ties
    batch[3] = batch[3, :1]  # one all-identical cloud
    ref = farthest_point_sample_reference(batch, 48)
    assert ref.shape == (5, 48)
    for b in range(5):
        np.testing.assert_array_equal(ref[b], farthest_point_sample_reference(batch[b], 48))
    np.testing.assert_array_equal(_fps_numba(batch, 48, 0, method=method), ref)
    np.testing.assert_array_equal(farthest_point_sample(batch, 48), ref)


def test_torch_cpu_tensor_and_dtypes():
    cloud = CLOUDS[2][1]
    ref = farthest_point_sample_reference(cloud, 64)
    t = torch.from_numpy(cloud)
    out = farthest_point_sample(t, 64)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), ref)
    # float64 input is rounded to float32 first (as the reference does)
    np.testing.assert_array_equal(farthest_point_sample(cloud.astype(np.float64), 64), ref)
    # non-contiguous view
    wide = np.concatenate([cloud, cloud], axis=1)[:, ::2]
    np.testing.assert_array_equal(farthest_point_sample(wide, 64), farthest_point_sample_reference(wide, 64))
    # M = 0
    assert farthest_point_sample(cloud, 0).shape == (0,)
    assert farthest_point_sample(cloud[None], 0).shape == (1, 0)


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [farthest_point_sample, farthest_point_sample_reference])
def test_errors(fn):
    cloud = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"num_samples=11 is larger than the number of points N=10"):
        fn(cloud, 11)
    bad = cloud.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(bad, 2)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(bad, 2)
    with pytest.raises(ValueError, match=r"shape \(N, 3\) or \(B, N, 3\)"):
        fn(np.zeros((10, 2), np.float32), 2)
    with pytest.raises(ValueError, match="empty cloud"):
        fn(np.zeros((0, 3), np.float32), 0)
    with pytest.raises(ValueError, match="start=10 is out of range"):
        fn(cloud, 2, start=10)
    with pytest.raises(ValueError, match="num_samples must be >= 0"):
        fn(cloud, -1)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        fn([[0.0, 0.0, 0.0]], 1)


def test_bad_impl_and_triton_without_interpreter(monkeypatch):
    cloud = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"unknown impl 'cuda'.*auto, numba, triton"):
        farthest_point_sample(cloud, 2, impl="cuda")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="impl='triton'"):
        farthest_point_sample(torch.zeros(10, 3), 2, impl="triton")


def test_cpu_use_does_not_import_torch_or_triton():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from mmtok.kernels.fps import farthest_point_sample
        from mmtok.kernels.knn import knn_group
        pts = np.random.default_rng(0).standard_normal((2, 300, 3)).astype(np.float32)
        idx = farthest_point_sample(pts, 32)
        farthest_point_sample(pts[0], 32)
        knn_group(pts, idx, 8)
        knn_group(pts[0], idx[0], 8)
        assert "triton" not in sys.modules, "CPU FPS/KNN imported triton"
        assert "torch" not in sys.modules, "CPU FPS/KNN imported torch"
        """
    )
    env = subprocess_env()
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------
# Triton kernel under the interpreter (CPU), in a subprocess (TRITON_INTERPRET=1 must be
# set before triton is first imported)
# --------------------------------------------------------------------------------------

_INTERPRET_PRELUDE = """
import numpy as np
import torch
import mmtok.kernels.fps as F
from mmtok.kernels.fps import farthest_point_sample, farthest_point_sample_reference

rng = np.random.default_rng(5)

""" + ADVERSARIAL_CLOUDS + """
def check(points, m, start=0):
    t = torch.from_numpy(np.ascontiguousarray(points))
    out = farthest_point_sample(t, m, start=start, impl="triton")
    ref = farthest_point_sample_reference(points, m, start=start)
    assert out.dtype == torch.int64 and tuple(out.shape) == ref.shape
    np.testing.assert_array_equal(out.numpy(), ref)
"""


def _run_interpreted(body: str) -> None:
    run_interpreted(_INTERPRET_PRELUDE, body)


@pytest.mark.interpret
def test_triton_interpreter_fps():
    _run_interpreted(
        """
        for n in (7, 64, 100):
            for name, pts in clouds(n):
                for m in sorted({1, min(n, 7), min(n, 16)}):
                    check(pts, m)
                check(pts, min(n, 16), start=n - 1)
                check(pts[0], min(n, 5))               # unbatched
        # the tie rule: lattice corners tie, the lowest index wins
        square = np.float32([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
        out = farthest_point_sample(torch.from_numpy(square), 4, impl="triton")
        assert out.tolist() == [0, 3, 1, 2], out
        # non-contiguous input (a strided view) is read through its strides
        wide = torch.from_numpy(rng.standard_normal((2, 50, 6)).astype(np.float32))[:, :, ::2]
        assert not wide.is_contiguous()
        out = farthest_point_sample(wide, 12, impl="triton")
        np.testing.assert_array_equal(out.numpy(), farthest_point_sample_reference(wide, 12))
        # numpy in -> numpy out
        assert isinstance(farthest_point_sample(square, 2, impl="triton"), np.ndarray)
        """
    )


@pytest.mark.interpret
def test_triton_interpreter_fps_chunked():
    # Clouds larger than the register block: min-distances in global memory, chunk by chunk.
    _run_interpreted(
        """
        F._TRITON_MAX_BLOCK = 32
        F._TRITON_CHUNK = 32
        for n in (33, 100):
            for name, pts in clouds(n):
                check(pts, 12)
        check(next(clouds(70))[1], 9, start=69)
        """
    )


# --------------------------------------------------------------------------------------
# Triton on a real GPU
# --------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_triton_cuda_matches_reference():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    rng = np.random.default_rng(9)
    batch = rng.standard_normal((64, 8192, 3)).astype(np.float32)
    batch[1] = np.round(batch[1] * 2)  # ties
    batch[2] = batch[2, :10][rng.integers(0, 10, 8192)]  # duplicates
    cpu = farthest_point_sample(batch, 512)  # numba, index-identical to the reference
    for b in (0, 1, 2):
        np.testing.assert_array_equal(cpu[b], farthest_point_sample_reference(batch[b], 512))
    x = torch.from_numpy(batch).cuda()
    out = farthest_point_sample(x, 512)
    assert out.is_cuda and out.dtype == torch.int64
    np.testing.assert_array_equal(out.cpu().numpy(), cpu)
    # a cloud above the register block: the chunked kernel
    big = torch.from_numpy(rng.standard_normal((2, 20000, 3)).astype(np.float32))
    np.testing.assert_array_equal(
        farthest_point_sample(big.cuda(), 256).cpu().numpy(), farthest_point_sample(big.numpy(), 256)
    )
