"""Tests for mmtok.kernels.knn: numba (grid buckets and brute force) and Triton against the
stable-argsort brute-force reference (exactly, ties included) and scipy's cKDTree."""

from __future__ import annotations


import numpy as np
import pytest
from paddedclouds import pad_clouds
from pyrun import ADVERSARIAL_CLOUDS, run_interpreted
import torch
from scipy.spatial import cKDTree

from mmtok.kernels import _numba
from mmtok.kernels.fps import farthest_point_sample
from mmtok.kernels.knn import _knn_numba, knn_group, knn_group_reference

from test_fps import CLOUD_IDS, CLOUDS, uneven_clouds  # tests/kernels is on sys.path (rootdir-less test modules)


def _assert_same(got, ref, msg=""):
    np.testing.assert_array_equal(got[0], ref[0], err_msg=f"indices {msg}")
    np.testing.assert_array_equal(got[1], ref[1], err_msg=f"neighbourhoods {msg}")


def _ks(n: int) -> list[int]:
    return sorted({1, min(n, 5), min(n, 32), n if n <= 100 else 64})


@pytest.mark.parametrize("name,cloud", CLOUDS, ids=CLOUD_IDS)
def test_numba_paths_match_reference(name, cloud):
    rng = np.random.default_rng(2)
    n = len(cloud)
    g = min(n, 24)
    centre_sets = {
        "fps-indices": farthest_point_sample(cloud, g),
        "coordinates": (rng.standard_normal((g, 3)) * cloud.std(axis=0).max() + cloud.mean(axis=0)).astype(np.float32),
    }
    for cname, centres in centre_sets.items():
        for k in _ks(n):
            ref = knn_group_reference(cloud, centres, k)
            assert ref[0].shape == (g, k) and ref[0].dtype == np.int64
            assert ref[1].shape == (g, k, 3) and ref[1].dtype == np.float32
            _assert_same(knn_group(cloud, centres, k), ref, f"{name} {cname} k={k} auto")
            coords = cloud[centres] if cname == "fps-indices" else centres
            ctr = np.ascontiguousarray(coords, dtype=np.float32)[None]
            _assert_same(_knn_numba(cloud[None], ctr, k, method=0), (ref[0][None], ref[1][None]), f"{name} brute")
            for target in (1, 3, max(1, n // 8), n):
                idx = np.empty((g, k), np.int64)
                nbh = np.empty((g, k, 3), np.float32)
                _numba.knn_grid(cloud, ctr[0], k, idx, nbh, target)
                _assert_same((idx, nbh), ref, f"{name} {cname} k={k} target={target}")


def test_centre_is_its_own_first_neighbour():
    cloud = CLOUDS[2][1]  # random-1024, no duplicates
    centres = farthest_point_sample(cloud, 64)
    idx, nbh = knn_group(cloud, centres, 32)
    np.testing.assert_array_equal(idx[:, 0], centres)
    assert not nbh[:, 0].any()
    np.testing.assert_array_equal(nbh, cloud[idx] - cloud[centres][:, None])
    # distances ascending along each row
    d = (nbh.astype(np.float64) ** 2).sum(-1)
    assert (np.diff(d, axis=1) >= 0).all()


def test_ties_go_to_the_lowest_index():
    # A centre with 6 lattice neighbours at distance 1 and duplicates of itself.
    cloud = np.float32(
        [[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, -1], [5, 5, 5]]
    )
    # reversed: (5, 5, 5) first, the six unit neighbours at 1..6, the origin at 7 and 8
    cloud = np.concatenate([cloud[::-1], cloud[:1]])
    idx, nbh = knn_group(cloud, np.array([8]), 5)
    np.testing.assert_array_equal(idx[0], [7, 8, 1, 2, 3])  # duplicate 7 before the centre 8
    assert not nbh[0, :2].any()
    _assert_same((idx, nbh), knn_group_reference(cloud, np.array([8]), 5))


def test_large_cloud_matches_reference_and_ckdtree():
    rng = np.random.default_rng(4)
    cloud = rng.standard_normal((8192, 3)).astype(np.float32)
    centres = farthest_point_sample(cloud, 64)
    ref = knn_group_reference(cloud, centres, 32)
    got = knn_group(cloud, centres, 32)
    _assert_same(got, ref)
    # set-identical to scipy's KD-tree (random data: no ties)
    _, kd = cKDTree(cloud).query(cloud[centres], 32)
    assert all(set(a) == set(b) for a, b in zip(got[0].tolist(), kd.tolist()))
    np.testing.assert_array_equal(got[0], kd)  # and in the same order


@pytest.mark.parametrize("n,g", [(100, 16), (1024, 64), (2048, 256)])
def test_sets_match_ckdtree(n, g):
    rng = np.random.default_rng(n)
    cloud = rng.random((n, 3)).astype(np.float32)
    centres = rng.random((g, 3)).astype(np.float32)
    idx, _ = knn_group(cloud, centres, 16)
    _, kd = cKDTree(cloud).query(centres, 16)
    assert [set(r) for r in idx.tolist()] == [set(r) for r in kd.tolist()]


@pytest.mark.parametrize("method", [0, 1])
def test_batched_matches_per_cloud(method):
    rng = np.random.default_rng(8)
    batch = rng.standard_normal((4, 500, 3)).astype(np.float32)
    batch[1] = np.round(batch[1])  # ties
    batch[2] = batch[2, :1]  # all identical
    centres = farthest_point_sample(batch, 20)
    ref = knn_group_reference(batch, centres, 16)
    assert ref[0].shape == (4, 20, 16) and ref[1].shape == (4, 20, 16, 3)
    for b in range(4):
        one = knn_group_reference(batch[b], centres[b], 16)
        np.testing.assert_array_equal(ref[0][b], one[0])
    ctr = np.take_along_axis(batch, centres[:, :, None], axis=1)
    _assert_same(_knn_numba(batch, np.ascontiguousarray(ctr), 16, method=method), ref)
    _assert_same(knn_group(batch, centres, 16), ref)
    _assert_same(knn_group(batch, ctr, 16), ref)  # centres as coordinates


def test_torch_cpu_tensors():
    cloud = CLOUDS[1][1]
    centres = farthest_point_sample(cloud, 10)
    ref = knn_group_reference(cloud, centres, 8)
    idx, nbh = knn_group(torch.from_numpy(cloud), torch.from_numpy(centres), 8)
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64
    assert isinstance(nbh, torch.Tensor) and nbh.dtype == torch.float32
    _assert_same((idx.numpy(), nbh.numpy()), ref)
    # int32 indices and float64 points are accepted
    _assert_same(knn_group(cloud.astype(np.float64), centres.astype(np.int32), 8), ref)


# --------------------------------------------------------------------------------------
# padded batches of uneven clouds (lengths)
# --------------------------------------------------------------------------------------


def _each_alone(clouds, centres, k):
    """Per-cloud reference results stacked: (B, G, k), (B, G, k, 3)."""
    refs = [knn_group_reference(c, centres[b], k) for b, c in enumerate(clouds)]
    return np.stack([r[0] for r in refs]), np.stack([r[1] for r in refs])


def test_lengths_match_each_cloud_alone():
    clouds = uneven_clouds([700, 1024, 3000])
    batch, lengths = pad_clouds(clouds, 3000)
    centres = farthest_point_sample(batch, 64, lengths=lengths)  # (B, G), each < lengths[b]
    ref = _each_alone(clouds, centres, 32)
    got = knn_group(batch, centres, 32, lengths=lengths)
    _assert_same(got, ref, "indices as centres")
    assert all(got[0][b].max() < lengths[b] for b in range(3))
    _assert_same(knn_group_reference(batch, centres, 32, lengths=lengths), ref, "reference")
    ctr = np.ascontiguousarray(np.take_along_axis(batch, centres[:, :, None], axis=1))
    _assert_same(_knn_numba(batch, ctr, 32, method=0, lengths=lengths), ref, "brute force")
    _assert_same(knn_group(batch, ctr, 32, lengths=lengths), ref, "coordinates as centres")
    # coordinates anywhere (also beyond the short clouds' extent); k = the shortest length
    rng = np.random.default_rng(3)
    coords = (rng.standard_normal((3, 10, 3)) * 3).astype(np.float32)
    _assert_same(knn_group(batch, coords, 700, lengths=lengths), _each_alone(clouds, coords, 700), "k=700")
    with pytest.raises(ValueError, match="NaN or infinite"):
        knn_group(batch, centres, 32)  # the padding really is garbage


def test_lengths_containers_and_single_cloud():
    clouds = uneven_clouds([50, 120, 9, 90])
    batch, lengths = pad_clouds(clouds, 128)
    centres = farthest_point_sample(batch, 9, lengths=lengths)
    ref = _each_alone(clouds, centres, 9)
    for lens in (lengths, lengths.astype(np.uint16), lengths.tolist(), torch.from_numpy(lengths)):
        _assert_same(knn_group(batch, centres, 9, lengths=lens), ref, f"{type(lens).__name__}")
    idx, nbh = knn_group(torch.from_numpy(batch), torch.from_numpy(centres), 9, lengths=torch.from_numpy(lengths))
    assert isinstance(idx, torch.Tensor) and isinstance(nbh, torch.Tensor)
    _assert_same((idx.numpy(), nbh.numpy()), ref)
    _assert_same(knn_group(batch, centres, 9, lengths=lengths, check_finite=False), ref, "unchecked")
    one, one_len = pad_clouds(clouds[1:2], 128)  # B = 1: the single-cloud path
    for method in (0, 1):
        ctr = np.ascontiguousarray(clouds[1][centres[1:2]])
        got = _knn_numba(one, ctr, 9, method=method, lengths=one_len)
        _assert_same((got[0][0], got[1][0]), knn_group_reference(clouds[1], centres[1], 9), f"B=1 method={method}")


@pytest.mark.parametrize("fn", [knn_group, knn_group_reference])
def test_lengths_errors(fn):
    batch, lengths = pad_clouds(uneven_clouds([5, 10, 8]), 10)
    centres = np.array([[0, 4], [0, 9], [1, 7]])
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\) = \(3,\)"):
        fn(batch, centres, 2, lengths=lengths[1:])
    with pytest.raises(ValueError, match=r"lengths\[0\]=0 is out of range"):
        fn(batch, centres, 2, lengths=[0, 10, 8])
    with pytest.raises(ValueError, match=r"lengths\[1\]=12 is out of range.*N=10"):
        fn(batch, centres, 2, lengths=[5, 12, 8])
    with pytest.raises(ValueError, match=r"k=6 is larger than cloud 0's length lengths\[0\]=5"):
        fn(batch, centres, 6, lengths=lengths)
    beyond = r"center indices of cloud 2 must be in \[0, lengths\[2\]=8\), got values in \[1, 8\]"
    with pytest.raises(ValueError, match=beyond):
        fn(batch, np.array([[0, 4], [0, 9], [1, 8]]), 2, lengths=lengths)
    with pytest.raises(ValueError, match=r"only for batched"):
        fn(batch[0], centres[0], 2, lengths=[5])
    with pytest.raises(TypeError, match="lengths must hold integers"):
        fn(batch, centres, 2, lengths=torch.tensor([5.0, 10.0, 8.0]))
    bad = batch.copy()
    bad[0, 4, 2] = np.inf  # the last valid row of cloud 0
    with pytest.raises(ValueError, match=r"NaN or infinite coordinates in cloud 0"):
        fn(bad, centres, 2, lengths=lengths)


@pytest.mark.parametrize("fn", [knn_group, knn_group_reference])
def test_errors(fn):
    cloud = np.zeros((10, 3), np.float32)
    centres = np.array([0, 1])
    with pytest.raises(ValueError, match=r"k=11 is larger than the number of points N=10"):
        fn(cloud, centres, 11)
    with pytest.raises(ValueError, match="k must be >= 1"):
        fn(cloud, centres, 0)
    bad = cloud.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(bad, centres, 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(cloud, np.float32([[0, np.inf, 0]]), 2)
    with pytest.raises(ValueError, match=r"center indices must be in \[0, 10\)"):
        fn(cloud, np.array([0, 10]), 2)
    with pytest.raises(ValueError, match=r"center coordinates must have shape \(G, 3\)"):
        fn(cloud, np.zeros((2, 2), np.float32), 2)
    with pytest.raises(ValueError, match=r"center indices must have shape \(2, G\)"):
        fn(np.zeros((2, 10, 3), np.float32), np.array([0, 1]), 2)
    with pytest.raises(TypeError, match="integer indices or float coordinates"):
        fn(cloud, np.array([True, False]), 2)


def test_bad_impl_and_triton_without_interpreter(monkeypatch):
    cloud = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"unknown impl 'cpu'.*auto, numba, triton"):
        knn_group(cloud, np.array([0]), 2, impl="cpu")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="impl='triton'"):
        knn_group(torch.zeros(10, 3), torch.tensor([0]), 2, impl="triton")


# --------------------------------------------------------------------------------------
# Triton kernel under the interpreter, in a subprocess
# --------------------------------------------------------------------------------------

_INTERPRET_PRELUDE = """
import numpy as np
import torch
import mmtok.kernels.knn as KN
from mmtok.kernels.fps import farthest_point_sample
from mmtok.kernels.knn import knn_group, knn_group_reference

rng = np.random.default_rng(6)

""" + ADVERSARIAL_CLOUDS + """
def check(points, centres, k):
    t = torch.from_numpy(np.ascontiguousarray(points))
    c = torch.from_numpy(np.ascontiguousarray(centres))
    idx, nbh = knn_group(t, c, k, impl="triton")
    ref = knn_group_reference(points, centres, k)
    assert idx.dtype == torch.int64 and tuple(idx.shape) == ref[0].shape
    assert nbh.dtype == torch.float32 and tuple(nbh.shape) == ref[1].shape
    np.testing.assert_array_equal(idx.numpy(), ref[0])
    np.testing.assert_array_equal(nbh.numpy(), ref[1])
"""


def _run_interpreted(body: str) -> None:
    run_interpreted(_INTERPRET_PRELUDE, body)


@pytest.mark.interpret
def test_triton_interpreter_knn():
    _run_interpreted(
        """
        for n in (7, 64, 100):
            for name, pts in clouds(n):
                g = min(n, 16)
                centres = farthest_point_sample(pts, g)                   # (2, G) indices
                for k in sorted({1, min(n, 8)}):
                    check(pts, centres, k)
                coords = (rng.standard_normal((2, 5, 3)) * 2).astype(np.float32)
                check(pts, coords, min(n, 8))                             # coordinates
                check(pts[0], centres[0], min(n, 6))                      # unbatched, k not 2^j
        # several chunks of points and centre blocks (tiles smaller than the data)
        KN._TRITON_BLOCK_N = 16
        KN._TRITON_BLOCK_G = 4
        for name, pts in clouds(100):
            check(pts, farthest_point_sample(pts, 10), 8)
        # ties: the duplicate with the lower index comes first
        cloud = np.float32([[0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0], [5, 5, 5]])
        idx, _ = knn_group(torch.from_numpy(cloud), torch.tensor([3]), 4, impl="triton")
        assert idx.tolist() == [[1, 3, 0, 2]], idx
        # a strided (non-contiguous) cloud
        wide = torch.from_numpy(rng.standard_normal((2, 40, 6)).astype(np.float32))[:, :, ::2]
        idx, nbh = knn_group(wide, torch.tensor([[0, 5], [7, 39]]), 5, impl="triton")
        ref = knn_group_reference(wide, np.array([[0, 5], [7, 39]]), 5)
        np.testing.assert_array_equal(idx.numpy(), ref[0])
        np.testing.assert_array_equal(nbh.numpy(), ref[1])
        """
    )


@pytest.mark.interpret
def test_triton_interpreter_knn_lengths():
    # Padded batches of uneven clouds (sizes scaled down from 700/1024/3000), the garbage
    # padding never read nor returned; then small tiles (several chunks and centre blocks).
    _run_interpreted(
        """
        from paddedclouds import pad_clouds

        def check_lengths(sizes, n_pad, g, k):
            for i, (name, pts) in enumerate(clouds(max(sizes))):
                alone = [pts[b % 2, :n] for b, n in enumerate(sizes)]
                batch, lengths = pad_clouds(alone, n_pad)
                if i % 2 == 0:  # centre indices (FPS picks), torch lengths
                    ctr, lens = farthest_point_sample(batch, g, lengths=lengths), torch.from_numpy(lengths)
                else:  # centre coordinates, numpy lengths
                    ctr, lens = (rng.standard_normal((len(sizes), 3, 3)) * 2).astype(np.float32), lengths
                idx, nbh = knn_group(torch.from_numpy(batch), torch.from_numpy(ctr), k, lengths=lens, impl="triton")
                for b, cloud in enumerate(alone):
                    ref = knn_group_reference(cloud, ctr[b], k)
                    np.testing.assert_array_equal(idx[b].numpy(), ref[0], err_msg=f"{name} cloud {b}")
                    np.testing.assert_array_equal(nbh[b].numpy(), ref[1], err_msg=f"{name} cloud {b}")

        check_lengths([70, 128, 300], 300, 8, 8)
        try:
            knn_group(torch.zeros(2, 9, 3), torch.tensor([[0], [8]]), 2, lengths=[9, 8], impl="triton")
        except ValueError as e:
            assert "center indices of cloud 1" in str(e), e
        else:
            raise AssertionError("a centre index beyond its cloud was not reported")
        KN._TRITON_BLOCK_N = 16
        KN._TRITON_BLOCK_G = 4
        check_lengths([33, 7, 60], 64, 6, 6)
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
    rng = np.random.default_rng(10)
    batch = rng.standard_normal((64, 8192, 3)).astype(np.float32)
    batch[1] = np.round(batch[1] * 2)  # ties
    centres = farthest_point_sample(batch, 512)
    cpu = knn_group(batch, centres, 32)  # numba, exact
    ref1 = knn_group_reference(batch[1], centres[1], 32)
    np.testing.assert_array_equal(cpu[0][1], ref1[0])
    x = torch.from_numpy(batch).cuda()
    idx, nbh = knn_group(x, torch.from_numpy(centres).cuda(), 32)
    assert idx.is_cuda and nbh.is_cuda
    np.testing.assert_array_equal(idx.cpu().numpy(), cpu[0])
    np.testing.assert_array_equal(nbh.cpu().numpy(), cpu[1])


@pytest.mark.gpu
def test_triton_cuda_lengths_match_each_cloud_alone():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    clouds = uneven_clouds([700, 1024, 3000, 2000])
    batch, lengths = pad_clouds(clouds, 3000)
    lens = torch.from_numpy(lengths).cuda()
    x = torch.from_numpy(batch).cuda()
    centres = farthest_point_sample(x, 256, lengths=lens)
    idx, nbh = knn_group(x, centres, 32, lengths=lens)
    assert idx.is_cuda and nbh.is_cuda
    ref = _each_alone(clouds, centres.cpu().numpy(), 32)
    np.testing.assert_array_equal(idx.cpu().numpy(), ref[0])
    np.testing.assert_array_equal(nbh.cpu().numpy(), ref[1])
