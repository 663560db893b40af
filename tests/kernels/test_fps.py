"""Tests for mmtok.kernels.fps: numba (vanilla and grid buckets) and Triton against the
numpy vanilla reference, index for index, on random and adversarial clouds."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from paddedclouds import pad_clouds
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
# padded batches of uneven clouds (lengths)
# --------------------------------------------------------------------------------------


def uneven_clouds(sizes, seed: int = 21) -> list[np.ndarray]:
    """Clouds of the given sizes, of different kinds: random, rounded (ties), uniform,
    few distinct positions (duplicates), cycling."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        kind = i % 4
        if kind == 0:
            cloud = rng.standard_normal((n, 3))
        elif kind == 1:
            cloud = np.round(rng.standard_normal((n, 3)) * 2)
        elif kind == 2:
            cloud = rng.random((n, 3))
        else:
            cloud = rng.integers(-2, 3, size=(6, 3))[rng.integers(0, 6, n)]
        out.append(cloud.astype(np.float32))
    return out


@pytest.mark.parametrize("m", [64, 256])  # 64: vanilla for the short clouds, buckets for 3000
def test_lengths_match_each_cloud_alone(m):
    clouds = uneven_clouds([700, 1024, 3000])
    batch, lengths = pad_clouds(clouds, 3000)
    alone = [farthest_point_sample_reference(c, m) for c in clouds]
    got = farthest_point_sample(batch, m, lengths=lengths)
    assert got.shape == (3, m) and got.dtype == np.int64
    for b, ref in enumerate(alone):
        np.testing.assert_array_equal(got[b], ref, err_msg=f"cloud {b}")
        assert got[b].max() < lengths[b]
    np.testing.assert_array_equal(farthest_point_sample_reference(batch, m, lengths=lengths), np.stack(alone))
    for method in (0, 1):  # forced vanilla / buckets for every cloud
        np.testing.assert_array_equal(_fps_numba(batch, m, 0, method=method, lengths=lengths), np.stack(alone))
    # the padding really is garbage: without lengths the batch is refused
    with pytest.raises(ValueError, match="NaN or infinite"):
        farthest_point_sample(batch, m)


def test_lengths_containers_start_and_single_cloud():
    clouds = uneven_clouds([50, 120, 7, 90])
    batch, lengths = pad_clouds(clouds, 128)
    ref = np.stack([farthest_point_sample_reference(c, 7, start=3) for c in clouds])
    for lens in (lengths, lengths.astype(np.int32), lengths.tolist(), torch.from_numpy(lengths),
                 torch.from_numpy(lengths).to(torch.int32)):
        np.testing.assert_array_equal(farthest_point_sample(batch, 7, start=3, lengths=lens), ref)
    out = farthest_point_sample(torch.from_numpy(batch), 7, start=3, lengths=torch.from_numpy(lengths))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), ref)
    # B = 1 takes the single-cloud path; full lengths equal lengths=None
    one, one_len = pad_clouds(clouds[:1], 128)
    np.testing.assert_array_equal(farthest_point_sample(one, 7, lengths=one_len)[0],
                                  farthest_point_sample_reference(clouds[0], 7))
    full = np.stack([c[:7] for c in clouds])
    np.testing.assert_array_equal(farthest_point_sample(full, 7, lengths=[7] * 4), farthest_point_sample(full, 7))
    # M = 0 and check_finite=False still skip the padding
    assert farthest_point_sample(batch, 0, lengths=lengths).shape == (4, 0)
    np.testing.assert_array_equal(farthest_point_sample(batch, 7, start=3, lengths=lengths, check_finite=False), ref)


@pytest.mark.parametrize("fn", [farthest_point_sample, farthest_point_sample_reference])
def test_lengths_errors(fn):
    batch, lengths = pad_clouds(uneven_clouds([5, 10, 8]), 10)
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(3,\).*got shape \(2,\)"):
        fn(batch, 2, lengths=lengths[:2])
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(3,\).*got shape \(3, 1\)"):
        fn(batch, 2, lengths=lengths[:, None])
    needs = r"lengths\[1\]=0 is out of range: every cloud needs 1 <= lengths\[b\] <= N=10"
    with pytest.raises(ValueError, match=needs):
        fn(batch, 2, lengths=[5, 0, 8])
    with pytest.raises(ValueError, match=r"lengths\[2\]=11 is out of range"):
        fn(batch, 2, lengths=np.array([5, 10, 11]))
    with pytest.raises(ValueError, match=r"num_samples=6 is larger than cloud 0's length lengths\[0\]=5"):
        fn(batch, 6, lengths=lengths)
    with pytest.raises(ValueError, match=r"start=5 is out of range for cloud 0 of lengths\[0\]=5 points"):
        fn(batch, 2, start=5, lengths=lengths)
    with pytest.raises(ValueError, match=r"only for batched \(B, N, 3\) points.*points\[:length\]"):
        fn(batch[1], 2, lengths=[10])
    with pytest.raises(TypeError, match="lengths must hold integers"):
        fn(batch, 2, lengths=[5.0, 10.0, 8.0])
    with pytest.raises(TypeError, match="lengths must hold integers"):
        fn(batch, 2, lengths=torch.tensor([5.0, 10.0, 8.0]))
    with pytest.raises(TypeError, match="lengths must hold integers"):
        fn(batch, 2, lengths=np.array([True, True, True]))
    bad = batch.copy()
    bad[2, 7] = np.nan  # a valid row of cloud 2
    with pytest.raises(ValueError, match=r"NaN or infinite coordinates in cloud 2 .*points\[2, :8\]"):
        fn(bad, 2, lengths=lengths)
    if fn is farthest_point_sample:
        with pytest.raises(ValueError, match=r"NaN or infinite coordinates in cloud 2"):
            fn(torch.from_numpy(bad), 2, lengths=torch.from_numpy(lengths))


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


@pytest.mark.interpret
def test_triton_interpreter_fps_lengths():
    # Padded batches of uneven clouds (sizes scaled down from 700/1024/3000), the garbage
    # padding never read: the register path (block sized by the longest cloud: 256 < the
    # padded 300 in the second batch), then the chunked path.
    _run_interpreted(
        """
        from paddedclouds import pad_clouds

        def check_lengths(sizes, n_pad, m, start=0):
            for i, (name, pts) in enumerate(clouds(max(sizes))):
                alone = [pts[b % 2, :n] for b, n in enumerate(sizes)]
                batch, lengths = pad_clouds(alone, n_pad)
                lens = torch.from_numpy(lengths) if i % 2 else lengths  # both containers
                out = farthest_point_sample(torch.from_numpy(batch), m, start=start, lengths=lens, impl="triton")
                for b, cloud in enumerate(alone):
                    ref = farthest_point_sample_reference(cloud, m, start=start)
                    np.testing.assert_array_equal(out[b].numpy(), ref, err_msg=f"{name} cloud {b}")

        check_lengths([70, 128, 300], 300, 24)
        check_lengths([70, 128, 200], 300, 16, start=69)
        # numpy in -> numpy out, and NaN in a valid row is still caught
        batch, lengths = pad_clouds([np.zeros((4, 3), np.float32), np.ones((9, 3), np.float32)], 9)
        assert isinstance(farthest_point_sample(batch, 3, lengths=lengths, impl="triton"), np.ndarray)
        batch[1, 3] = np.nan
        try:
            farthest_point_sample(batch, 3, lengths=lengths, impl="triton")
        except ValueError as e:
            assert "cloud 1" in str(e), e
        else:
            raise AssertionError("NaN in a valid row was not reported")
        F._TRITON_MAX_BLOCK = 32
        F._TRITON_CHUNK = 32
        check_lengths([70, 128, 300], 300, 12)
        check_lengths([33, 31, 100], 128, 9, start=30)
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


@pytest.mark.gpu
def test_triton_cuda_lengths_match_each_cloud_alone():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    clouds = uneven_clouds([700, 1024, 3000, 2000])
    batch, lengths = pad_clouds(clouds, 3000)
    x = torch.from_numpy(batch).cuda()
    out = farthest_point_sample(x, 512, lengths=torch.from_numpy(lengths).cuda())
    assert out.is_cuda and out.dtype == torch.int64
    for b, cloud in enumerate(clouds):
        ref = farthest_point_sample_reference(cloud, 512)
        np.testing.assert_array_equal(out[b].cpu().numpy(), ref, err_msg=f"cloud {b}")
    # the chunked kernel (longest cloud above the register block), padding never read
    big = uneven_clouds([5000, 9000, 20000], seed=5)
    batch, lengths = pad_clouds(big, 20000)
    out = farthest_point_sample(torch.from_numpy(batch).cuda(), 256, lengths=lengths)
    np.testing.assert_array_equal(out.cpu().numpy(), farthest_point_sample(batch, 256, lengths=lengths))
