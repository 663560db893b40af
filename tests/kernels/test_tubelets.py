"""Tests for mmtok.kernels.tubelets: numpy, torch and Triton paths against the naive
reference and against Conv3d with identity weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyrun import run_interpreted

from mmtok.kernels.tubelets import tubelet_grid, tubelets, tubelets_reference

CASES = [
    pytest.param((2, 3, 4, 32, 48), (2, 16, 16), id="videomae-like"),
    pytest.param((1, 3, 5, 35, 33), (2, 16, 16), id="border-frame-row-col-ignored"),
    pytest.param((2, 1, 6, 9, 10), (3, 4, 5), id="c1-odd-tubelet"),
]


def _videos(shape, dtype=np.uint8, seed=0, channel_last=False):
    rng = np.random.default_rng(seed)
    B, C, T, H, W = shape
    storage = (B, T, H, W, C) if channel_last else shape
    if np.dtype(dtype).kind == "u":
        data = rng.integers(0, np.iinfo(dtype).max, size=storage, endpoint=True, dtype=dtype)
    else:
        data = rng.standard_normal(storage).astype(dtype)
    return data.transpose(0, 4, 1, 2, 3) if channel_last else data


@pytest.mark.parametrize("shape,tubelet", CASES)
@pytest.mark.parametrize("channel_last", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_numpy_and_torch_equal_reference(shape, tubelet, channel_last, dtype):
    x = _videos(shape, dtype, channel_last=channel_last)
    ref = tubelets_reference(x, tubelet)
    out = tubelets(x, tubelet)
    assert out.flags.c_contiguous and out.dtype == x.dtype
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(tubelets(torch.from_numpy(np.ascontiguousarray(x)), tubelet,
                                           impl="torch").numpy(), ref)
    np.testing.assert_array_equal(tubelets(x, tubelet, impl="torch"), ref)
    B, C, T, H, W = shape
    assert len(tubelet_grid(T, H, W, tubelet)) == ref.shape[1]


def test_reference_is_not_vacuous():
    """The reference's layout is what a hand-written index says: element (c, t, r, q) of
    tubelet (gz, gy, gx) is x[c, gz*pt + t, gy*ph + r, gx*pw + q]."""
    x = _videos((1, 3, 4, 8, 12), seed=3)
    ref = tubelets_reference(x, (2, 4, 4))
    grid = tubelet_grid(4, 8, 12, (2, 4, 4))
    assert grid.tolist()[:4] == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 0]]
    for i, (gz, gy, gx) in enumerate(grid):
        for c, t, r, q in [(0, 0, 0, 0), (2, 1, 3, 2), (1, 0, 2, 3)]:
            k = ((c * 2 + t) * 4 + r) * 4 + q
            assert ref[0, i, k] == x[0, c, gz * 2 + t, gy * 4 + r, gx * 4 + q]


@pytest.mark.parametrize("shape,tubelet", CASES)
def test_equals_conv3d_with_identity_weights(shape, tubelet):
    """tubelets(x) @ W.reshape(D, -1).T == conv3d(x, W, stride=tubelet) for W the identity
    (D = K): a Conv3d patch embedding's weight applies unchanged."""
    x = _videos(shape, np.float32, seed=1)
    C = shape[1]
    K = C * int(np.prod(tubelet))
    weight = torch.eye(K).reshape(K, C, *tubelet)
    conv = torch.nn.functional.conv3d(torch.from_numpy(x), weight, stride=tubelet)
    expected = conv.flatten(2).transpose(1, 2).numpy()
    np.testing.assert_allclose(tubelets(x, tubelet), expected, rtol=0, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="smaller than the tubelet"):
        tubelets(np.zeros((1, 3, 1, 16, 16), np.uint8), (2, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        tubelets(np.zeros((3, 2, 16, 16), np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        tubelets(np.zeros((1, 3, 2, 16, 16), np.int64))
    with pytest.raises(ValueError, match="unknown impl"):
        tubelets(np.zeros((1, 3, 2, 16, 16), np.uint8), impl="cuda")


_PRELUDE = """
import numpy as np
import torch
from mmtok.kernels.tubelets import tubelets, tubelets_reference

def videos(shape, dtype, channel_last=False, seed=0):
    rng = np.random.default_rng(seed)
    B, C, T, H, W = shape
    storage = (B, T, H, W, C) if channel_last else shape
    if np.dtype(dtype).kind == "u":
        data = rng.integers(0, 255, size=storage, dtype=dtype)
    else:
        data = rng.standard_normal(storage).astype(dtype)
    t = torch.from_numpy(data)
    return t.permute(0, 4, 1, 2, 3) if channel_last else t

def check(x, tubelet):
    out = tubelets(x, tubelet, impl="triton")
    ref = tubelets_reference(x, tubelet)
    assert out.is_contiguous() and tuple(out.shape) == ref.shape, (out.shape, ref.shape)
    np.testing.assert_array_equal(out.numpy(), ref)
"""


@pytest.mark.interpret
def test_triton_interpreter_equals_reference():
    run_interpreted(_PRELUDE, """
        check(videos((2, 3, 4, 32, 32), np.uint8), (2, 16, 16))            # K = 1536 > block
        xl = videos((1, 3, 5, 17, 18), np.uint8, channel_last=True)
        assert not xl.is_contiguous()
        check(xl, (2, 8, 8))                                                # channel-last view
        check(videos((2, 1, 6, 9, 10), np.float32), (3, 4, 5))              # K = 60, odd sizes
        """)


@pytest.mark.gpu
def test_triton_cuda_matches_reference():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    thwc = _videos((2, 3, 16, 224, 224), channel_last=True, seed=5)  # (B, C, T, H, W) view
    ref = tubelets_reference(thwc, (2, 16, 16))
    base = torch.from_numpy(np.ascontiguousarray(thwc.transpose(0, 2, 3, 4, 1)))  # (B,T,H,W,C)
    for x in (base.cuda().permute(0, 4, 1, 2, 3), base.permute(0, 4, 1, 2, 3).contiguous().cuda()):
        out = tubelets(x, (2, 16, 16), impl="triton")
        assert out.is_cuda and out.dtype == torch.uint8 and tuple(out.shape) == (2, 1568, 1536)
        np.testing.assert_array_equal(out.cpu().numpy(), ref)
        assert torch.equal(tubelets(x, (2, 16, 16)), out)  # auto picks Triton on CUDA
