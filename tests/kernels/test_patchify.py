"""Tests for mmtok.kernels.patchify: numpy, torch and Triton paths against the naive reference."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pyrun import run_interpreted, subprocess_env
import torch

from mmtok.kernels.patchify import normalize_patches, patch_grid, patchify, patchify_reference

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _random_images(shape, dtype, seed=0, channel_last=False):
    """(B, C, H, W) images; with channel_last, a transposed view of a (B, H, W, C) array."""
    rng = np.random.default_rng(seed)
    B, C, H, W = shape
    storage_shape = (B, H, W, C) if channel_last else (B, C, H, W)
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        data = rng.integers(0, np.iinfo(dtype).max, size=storage_shape, endpoint=True, dtype=dtype)
    else:
        data = (rng.standard_normal(storage_shape) * 3).astype(dtype)
    if channel_last:
        view = data.transpose(0, 3, 1, 2)
        assert np.shares_memory(view, data)
        assert C == 1 or not view.flags.c_contiguous  # with C == 1 both layouts coincide
        return view
    return data


# (shape, patch, stride) cases that hit the edge cases: C in {1, 3}, non-square images,
# H/W not multiples of the patch (border ignored), overlapping and gapped strides,
# rectangular patches.
GATHER_CASES = [
    pytest.param((2, 3, 32, 48), 16, None, id="c3-exact-multiple"),
    pytest.param((1, 1, 37, 50), 8, None, id="c1-border-ignored"),
    pytest.param((2, 3, 30, 21), 7, None, id="c3-border-odd-patch"),
    pytest.param((1, 1, 128, 200), 16, 10, id="c1-overlap-16s10"),
    pytest.param((2, 3, 20, 13), (4, 2), None, id="c3-rect-4x2"),
    pytest.param((2, 3, 17, 23), (4, 2), (3, 1), id="c3-rect-overlap"),
    pytest.param((1, 3, 19, 25), (3, 4), (5, 6), id="c3-gapped-stride"),
]


def _expected_grid(shape, patch, stride):
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    if stride is None:
        sh, sw = ph, pw
    else:
        sh, sw = (stride, stride) if isinstance(stride, int) else stride
    gh = (shape[2] - ph) // sh + 1
    gw = (shape[3] - pw) // sw + 1
    return gh * gw, shape[1] * ph * pw


# --------------------------------------------------------------------------------------
# gather (no normalisation): exact equality
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel_last", [False, True], ids=["chw", "hwc-view"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float16", "float32"])
@pytest.mark.parametrize("shape,patch,stride", GATHER_CASES)
def test_gather_numpy_matches_reference(shape, patch, stride, dtype, channel_last):
    x = _random_images(shape, dtype, channel_last=channel_last)
    ref = patchify_reference(x, patch, stride)
    out = patchify(x, patch, stride)  # auto -> numpy for numpy input
    L, K = _expected_grid(shape, patch, stride)
    assert isinstance(out, np.ndarray)
    assert out.shape == ref.shape == (shape[0], L, K)
    assert out.dtype == ref.dtype == np.dtype(dtype)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("channel_last", [False, True], ids=["chw", "hwc-view"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float16", "float32"])
@pytest.mark.parametrize("shape,patch,stride", GATHER_CASES)
def test_gather_torch_matches_reference(shape, patch, stride, dtype, channel_last):
    x = torch.from_numpy(_random_images(shape, dtype, channel_last=channel_last))
    ref = patchify_reference(x, patch, stride)
    out = patchify(x, patch, stride)  # auto -> torch for a CPU tensor
    assert isinstance(out, torch.Tensor)
    assert out.dtype == x.dtype
    assert out.is_contiguous()
    assert tuple(out.shape) == ref.shape
    np.testing.assert_array_equal(out.numpy(), ref)


def test_gather_torch_permuted_channel_last_tensor():
    # What callers do with decoded (B, H, W, C) uint8 frames.
    hwc = torch.from_numpy(np.ascontiguousarray(_random_images((3, 3, 24, 40), "uint8").transpose(0, 2, 3, 1)))
    assert hwc.shape == (3, 24, 40, 3) and hwc.is_contiguous()
    x = hwc.permute(0, 3, 1, 2)
    assert not x.is_contiguous()
    ref = patchify_reference(x, 8)
    for impl in ("torch", "numpy"):
        out = patchify(x, 8, impl=impl)
        assert isinstance(out, torch.Tensor)
        np.testing.assert_array_equal(out.numpy(), ref)


def test_gather_torch_view_with_storage_offset():
    # A cropped view: the window view must start at the view's own storage offset.
    base = torch.from_numpy(_random_images((2, 3, 40, 40), "uint8"))
    x = base[1:, :, 5:37, 3:35]
    assert x.storage_offset() > 0
    out = patchify(x, 8, impl="torch")
    np.testing.assert_array_equal(out.numpy(), patchify_reference(x, 8))


def test_gather_out_dtype_casts():
    x = _random_images((2, 3, 16, 16), "uint8")
    out = patchify(x, 8, out_dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, patchify_reference(x, 8).astype(np.float32))
    out_t = patchify(torch.from_numpy(x), 8, out_dtype=torch.float16)
    assert out_t.dtype == torch.float16
    np.testing.assert_array_equal(out_t.numpy(), patchify_reference(x, 8, out_dtype=np.float16))


def test_audio_spectrogram_overlapping_patches():
    # AST: patch 16, stride 10 on a (1, 1, 128, 1024) spectrogram -> 12 * 101 patches.
    x = _random_images((1, 1, 128, 1024), "float32")
    out = patchify(x, 16, 10)
    assert out.shape == (1, 12 * 101, 256)
    np.testing.assert_array_equal(out, patchify_reference(x, 16, 10))
    out_t = patchify(torch.from_numpy(x), 16, 10)
    np.testing.assert_array_equal(out_t.numpy(), out)


# --------------------------------------------------------------------------------------
# fused normalisation
# --------------------------------------------------------------------------------------

NORM_CASES = [
    pytest.param("uint8", dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=1 / 255), id="u8-imagenet"),
    pytest.param("uint8", dict(mean=[0.5], std=[0.5], scale=1 / 255), id="u8-broadcast"),
    pytest.param("uint16", dict(mean=[100.0, 200.0, 300.0], std=[1000.0, 2000.0, 3000.0], scale=0.05), id="u16"),
    pytest.param("float32", dict(mean=[0.1, -0.2, 0.3], std=[2.0, 3.0, 4.0]), id="f32"),
    pytest.param("float16", dict(mean=[0.1], std=[2.0], scale=0.5), id="f16-in"),
    pytest.param("uint8", dict(scale=1 / 255), id="u8-scale-only"),
]


def _assert_close_to_reference(out, ref, out_dtype):
    if out_dtype == "float16":
        np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), atol=1e-3, rtol=1e-3)
    else:
        np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("out_dtype", ["float16", "float32"])
@pytest.mark.parametrize("channel_last", [False, True], ids=["chw", "hwc-view"])
@pytest.mark.parametrize("dtype,norm", NORM_CASES)
def test_normalised_matches_reference(dtype, norm, channel_last, out_dtype):
    x = _random_images((2, 3, 24, 20), dtype, seed=1, channel_last=channel_last)
    kwargs = dict(norm)
    if out_dtype == "float32":
        kwargs["out_dtype"] = np.float32  # float16 is the default when normalising
    ref = patchify_reference(x, (8, 4), (4, 4), **kwargs)
    assert ref.dtype == np.dtype(out_dtype)

    out_np = patchify(x, (8, 4), (4, 4), impl="numpy", **kwargs)
    assert out_np.dtype == np.dtype(out_dtype)
    _assert_close_to_reference(out_np, ref, out_dtype)

    torch_kwargs = dict(kwargs)
    if out_dtype == "float32":
        torch_kwargs["out_dtype"] = torch.float32  # torch dtypes are accepted too
    out_t = patchify(torch.from_numpy(x), (8, 4), (4, 4), impl="torch", **torch_kwargs)
    assert out_t.dtype == getattr(torch, out_dtype)
    _assert_close_to_reference(out_t.numpy(), ref, out_dtype)

    # Both fast paths do the same float32 arithmetic, so they agree bit for bit.
    np.testing.assert_array_equal(out_t.numpy(), out_np)


def test_normalised_uint8_float16_table_matches_arithmetic():
    # The numpy path looks uint8 -> float16 values up in a table; it must equal computing
    # (x * scale - mean) / std in float32 and casting, for every one of the 256 values.
    x = np.arange(256 * 3, dtype=np.uint8).reshape(1, 3, 16, 16)
    out = patchify(x, 16, mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=1 / 255)
    xf = x.astype(np.float32)[0]
    m = np.float32(IMAGENET_MEAN).reshape(3, 1, 1)
    s = np.float32(IMAGENET_STD).reshape(3, 1, 1)
    expected = ((xf * np.float32(1 / 255) - m) / s).astype(np.float16).reshape(1, 1, -1)
    np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------------------
# normalize_patches: already-cut patches (the projectors' stored tokens)
# --------------------------------------------------------------------------------------


def _stored_tokens(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 255
    return torch.from_numpy(rng.integers(0, top, size=shape, endpoint=True).astype(dtype))


def _per_element(values, channels, per_channel):
    return torch.tensor(values, dtype=torch.float32).expand(channels).repeat_interleave(per_channel)


def test_normalize_patches_torch_path_is_the_projectors_old_arithmetic_bit_for_bit():
    m3, s3 = _per_element(IMAGENET_MEAN, 3, 16), _per_element(IMAGENET_STD, 3, 16)
    rgb = _stored_tokens((2, 5, 48), "uint8")
    old = (rgb.float() * (1 / 255) - m3) / s3  # the image projector, 8-bit RGB
    new = normalize_patches(rgb, 16, IMAGENET_MEAN, IMAGENET_STD, scale=1 / 255)
    assert new.dtype == torch.float32 and new.is_contiguous() and torch.equal(new, old)
    old = (rgb.float() / 255.0 - m3) / s3  # the video projector divides
    assert torch.equal(normalize_patches(rgb, 16, IMAGENET_MEAN, IMAGENET_STD, divide_by=255.0),
                       old)
    assert not torch.equal(old, (rgb.float() * (1 / 255) - m3) / s3)  # the two differ
    gray = _stored_tokens((2, 5, 16), "uint16")
    old = (gray.repeat(1, 1, 3).float() * (1 / 65535) - m3) / s3  # gray repeated to RGB
    new = normalize_patches(gray, 16, IMAGENET_MEAN, IMAGENET_STD, channels=3, scale=1 / 65535)
    assert new.shape == (2, 5, 48) and torch.equal(new, old)
    one = _per_element([0.5], 1, 16)
    old = (gray.float() * (1 / 65535) - one) / one  # gray with gray statistics
    assert torch.equal(normalize_patches(gray, 16, [0.5], [0.5], scale=1 / 65535), old)
    as_bf16 = normalize_patches(rgb, 16, IMAGENET_MEAN, IMAGENET_STD, scale=1 / 255,
                                out_dtype=torch.bfloat16)
    ref = normalize_patches(rgb, 16, IMAGENET_MEAN, IMAGENET_STD, scale=1 / 255)
    assert as_bf16.dtype == torch.bfloat16 and torch.equal(as_bf16, ref.to(torch.bfloat16))


def test_normalize_patches_views_the_tokens_as_an_image_without_copying():
    from mmtok.kernels.patchify import _tokens_as_image

    tokens = _stored_tokens((2, 5, 3 * 8), "uint8")
    image = _tokens_as_image(tokens, 8, None)
    assert image.shape == (2, 3, 5, 8) and image.data_ptr() == tokens.data_ptr()
    assert torch.equal(image[1, 2, 4], tokens[1, 4, 16:24])  # channel 2 of patch 4
    gray = _stored_tokens((2, 5, 8), "uint8")
    image = _tokens_as_image(gray, 8, 3)
    assert image.shape == (2, 3, 5, 8) and image.stride(1) == 0
    assert image.data_ptr() == gray.data_ptr()


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(per_channel=5), ValueError, "whole number of channel blocks"),
    (dict(channels=2), ValueError, "only one gray channel"),
    (dict(mean=[0.1, 0.2]), ValueError, "mean must have 1 or C=3"),
    (dict(std=[0.0]), ValueError, "non-zero"),
    (dict(scale=0.5, divide_by=2.0), ValueError, "not both"),
    (dict(divide_by=0.0), ValueError, "divide_by must be non-zero"),
    (dict(out_dtype=torch.uint8), TypeError, "out_dtype"),
    (dict(impl="numpy"), ValueError, "unknown impl"),
])
def test_normalize_patches_bad_arguments_raise(kwargs, exc, match):
    args = dict(per_channel=8, mean=[0.5], std=[0.5]) | kwargs
    with pytest.raises(exc, match=match):
        normalize_patches(_stored_tokens((1, 2, 24), "uint8"), **args)


def test_normalize_patches_bad_tokens_raise():
    with pytest.raises(TypeError, match="torch tensor"):
        normalize_patches(np.zeros((1, 2, 8), np.uint8), 8, [0.5], [0.5])
    with pytest.raises(ValueError, match="shape"):
        normalize_patches(torch.zeros(2, 8, dtype=torch.uint8), 8, [0.5], [0.5])
    with pytest.raises(TypeError, match="dtype"):
        normalize_patches(torch.zeros(1, 2, 8, dtype=torch.int64), 8, [0.5], [0.5])


def test_normalize_patches_triton_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    pytest.importorskip("triton")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        normalize_patches(_stored_tokens((1, 2, 8), "uint8"), 8, [0.5], [0.5], impl="triton")


# --------------------------------------------------------------------------------------
# layout: the (channel, row, col) order of a Conv2d patch-embedding weight
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize(
    "patch,stride", [((16, 16), (16, 16)), ((8, 4), (8, 4)), ((16, 16), (10, 10))], ids=["p16", "p8x4", "p16s10"]
)
def test_matches_conv2d_patch_embedding(impl, patch, stride):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 70, 52, generator=gen)  # not multiples of the patch
    D = 24
    weight = torch.randn(D, 3, *patch, generator=gen) * 0.05
    conv = torch.nn.functional.conv2d(x, weight, stride=stride)  # (B, D, gh, gw)
    expected = conv.flatten(2).transpose(1, 2)  # (B, L, D), row-major over the grid

    tokens = patchify(x, patch, stride, impl=impl)
    got = tokens @ weight.reshape(D, -1).T
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------
# patch_grid, dispatch and errors
# --------------------------------------------------------------------------------------


def test_patch_grid_values():
    grid = patch_grid(5, 7, (2, 3), (2, 2))  # gh = 2, gw = 3
    assert grid.dtype == np.int32
    np.testing.assert_array_equal(grid, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])
    assert patch_grid(224, 224, (16, 16), (16, 16)).shape == (196, 2)
    ast = patch_grid(128, 1024, (16, 16), (10, 10))
    assert ast.shape == (12 * 101, 2)
    np.testing.assert_array_equal(ast[-1], [11, 100])
    np.testing.assert_array_equal(patch_grid(16, 16, (16, 16), (16, 16)), [[0, 0]])


def test_patch_grid_matches_reference_order():
    # Patch i of the output is the image region at grid cell patch_grid(...)[i].
    x = _random_images((1, 2, 13, 11), "uint8")
    out = patchify(x, (4, 3), (3, 2))
    for i, (row, col) in enumerate(patch_grid(13, 11, (4, 3), (3, 2))):
        cell = x[0, :, row * 3 : row * 3 + 4, col * 2 : col * 2 + 3]
        np.testing.assert_array_equal(out[0, i], cell.reshape(-1))


def test_image_smaller_than_patch_raises():
    with pytest.raises(ValueError, match=r"10x20 \(HxW\) is smaller than the patch 16x16"):
        patch_grid(10, 20, (16, 16), (16, 16))
    x = np.zeros((1, 3, 10, 20), np.uint8)
    with pytest.raises(ValueError, match="smaller than the patch"):
        patchify(x, 16)
    with pytest.raises(ValueError, match="smaller than the patch"):
        patchify(torch.from_numpy(x), 16)
    with pytest.raises(ValueError, match="smaller than the patch"):
        patchify_reference(x, 16)


def test_bad_impl_raises():
    x = np.zeros((1, 3, 16, 16), np.uint8)
    with pytest.raises(ValueError, match=r"unknown impl 'cuda'.*auto, numpy, torch, triton"):
        patchify(x, 8, impl="cuda")


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(mean=[0.1, 0.2]), ValueError, r"mean must have 1 or C=3 values"),
        (dict(std=[1.0, 0.0, 1.0]), ValueError, "std must be non-zero"),
        (dict(patch=0), ValueError, "patch must be positive"),
        (dict(stride=(1, 2, 3)), TypeError, "stride must be an int or a pair"),
        (dict(mean=[0.0], out_dtype=np.uint8), TypeError, "out_dtype for normalised output"),
    ],
)
def test_bad_arguments_raise(kwargs, exc, match):
    x = np.zeros((1, 3, 16, 16), np.uint8)
    kwargs = {"patch": 8, **kwargs}
    with pytest.raises(exc, match=match):
        patchify(x, **kwargs)


def test_bad_images_raise():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        patchify(np.zeros((3, 16, 16), np.uint8), 8)
    with pytest.raises(TypeError, match="dtype must be one of"):
        patchify(np.zeros((1, 3, 16, 16), np.int64), 8)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        patchify([[[[0]]]], 1)


def test_triton_on_cpu_tensor_without_interpreter_raises(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="impl='triton'"):
        patchify(x, 8, impl="triton")


def test_dispatch_returns_input_container_type():
    x = _random_images((1, 3, 16, 16), "uint8")
    ref = patchify_reference(x, 8)
    out = patchify(x, 8, impl="torch")
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, ref)
    out = patchify(torch.from_numpy(x), 8, impl="numpy")
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.numpy(), ref)
    out = patchify(torch.from_numpy(x), 8)
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu"


def test_cpu_use_does_not_import_triton():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import mmtok
        from mmtok.kernels.patchify import patchify
        x = np.zeros((1, 3, 32, 32), np.uint8)
        patchify(x, 16)
        patchify(x, 16, mean=[0.5], std=[0.5], scale=1 / 255)
        import mmtok.pipeline
        assert "triton" not in sys.modules, "CPU tokenization imported triton"
        assert "torch" not in sys.modules, "CPU tokenization imported torch"
        """
    )
    env = subprocess_env()
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------
# Triton kernel under the interpreter (CPU), in a subprocess so that TRITON_INTERPRET=1
# is set before triton is first imported there.
# --------------------------------------------------------------------------------------

_INTERPRET_PRELUDE = """
import numpy as np
import torch
from mmtok.kernels.patchify import patchify, patchify_reference

def images(shape, dtype, seed=0, channel_last=False):
    rng = np.random.default_rng(seed)
    B, C, H, W = shape
    storage = (B, H, W, C) if channel_last else shape
    if np.dtype(dtype).kind == "u":
        data = rng.integers(0, np.iinfo(dtype).max, size=storage, endpoint=True, dtype=dtype)
    else:
        data = (rng.standard_normal(storage) * 3).astype(dtype)
    t = torch.from_numpy(data)
    return t.permute(0, 3, 1, 2) if channel_last else t

def check(x, patch, stride=None, atol=0.0, rtol=0.0, **kw):
    out = patchify(x, patch, stride, impl="triton", **kw)
    ref = patchify_reference(x, patch, stride, **kw)
    assert isinstance(out, torch.Tensor) and out.is_contiguous()
    assert tuple(out.shape) == ref.shape, (tuple(out.shape), ref.shape)
    assert out.numpy().dtype == ref.dtype, (out.dtype, ref.dtype)
    if atol == 0.0 and rtol == 0.0:
        np.testing.assert_array_equal(out.numpy(), ref)
    else:
        np.testing.assert_allclose(out.numpy().astype(np.float64), ref.astype(np.float64), atol=atol, rtol=rtol)
    return out
"""


def _run_interpreted(body: str) -> None:
    run_interpreted(_INTERPRET_PRELUDE, body)


@pytest.mark.interpret
def test_triton_interpreter_gather_uint8_layouts():
    _run_interpreted(
        """
        x = images((2, 3, 12, 10), np.uint8)
        check(x, 4)                                           # channel-first, border column ignored
        xl = images((2, 3, 12, 10), np.uint8, channel_last=True)
        assert not xl.is_contiguous()
        check(xl, 4)                                          # channel-last view, no copy
        check(images((1, 1, 9, 13), np.uint16), (4, 3))       # C=1, uint16, rectangular
        check(images((2, 3, 8, 8), np.float16, channel_last=True), 4, out_dtype=torch.float32)
        """
    )


@pytest.mark.interpret
def test_triton_interpreter_overlapping_stride():
    _run_interpreted(
        """
        # non-power-of-two patch width (5) and K = 3*4*5 = 60, overlapping in both axes
        check(images((2, 3, 12, 14), np.uint8), (4, 5), (2, 3))
        check(images((1, 3, 12, 14), np.float32, channel_last=True), (4, 5), (3, 2))
        # AST-style patch 16 / stride 10 on a small spectrogram, and a gapped stride
        check(images((1, 1, 36, 40), np.float32), 16, 10)
        check(images((1, 2, 19, 25), np.uint8), (3, 4), (5, 6))
        """
    )


@pytest.mark.interpret
def test_triton_interpreter_fused_normalisation():
    _run_interpreted(
        """
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        for channel_last in (False, True):
            x = images((2, 3, 12, 10), np.uint8, channel_last=channel_last)
            out = check(x, 4, mean=mean, std=std, scale=1 / 255, atol=1e-3, rtol=1e-3)
            assert out.dtype == torch.float16
            out32 = check(x, 4, mean=mean, std=std, scale=1 / 255, out_dtype=torch.float32,
                          atol=1e-6, rtol=1e-6)
            assert out32.dtype == torch.float32
            # the same float32 arithmetic as the torch path: bit-identical
            same = patchify(x, 4, mean=mean, std=std, scale=1 / 255, out_dtype=torch.float32, impl="torch")
            assert torch.equal(out32, same)
        # broadcast mean/std, overlapping stride, float32 input
        check(images((1, 3, 12, 14), np.float32), (4, 5), (2, 3), mean=[0.5], std=[2.0],
              out_dtype=torch.float32, atol=1e-6, rtol=1e-6)
        # K = 3*16*16 = 768 > one K block: exercises the loop over K
        check(images((1, 3, 32, 16), np.uint8), 16, mean=mean, std=std, scale=1 / 255,
              atol=1e-3, rtol=1e-3)
        """
    )


@pytest.mark.interpret
def test_triton_interpreter_normalize_patches_equals_the_torch_path():
    _run_interpreted(
        """
        from mmtok.kernels.patchify import normalize_patches
        rng = np.random.default_rng(1)
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

        def tokens(shape, dtype):
            top = np.iinfo(dtype).max
            return torch.from_numpy(rng.integers(0, top, size=shape, endpoint=True).astype(dtype))

        def same(x, per_channel, exact=True, **kw):
            kernel = normalize_patches(x, per_channel, mean, std, impl="triton", **kw)
            ops = normalize_patches(x, per_channel, mean, std, impl="torch", **kw)
            assert kernel.shape == ops.shape and kernel.dtype == ops.dtype == torch.float32
            assert kernel.is_contiguous()
            if exact:  # the interpreter does not fuse the multiply-subtract: same bits
                assert torch.equal(kernel, ops)
            else:
                torch.testing.assert_close(kernel, ops, rtol=1e-6, atol=1e-6)
            return kernel

        same(tokens((2, 5, 3 * 16), np.uint8), 16, scale=1 / 255)          # L=5: masked rows
        same(tokens((2, 3, 3 * 256), np.uint8), 256, scale=1 / 255)        # K=768: loops over K
        same(tokens((3, 4, 16), np.uint16), 16, channels=3, scale=1 / 65535)  # gray repeated
        same(tokens((1, 7, 3 * 2 * 16), np.uint8), 2 * 16, exact=False, divide_by=255.0)
        wide = tokens((2, 10, 3 * 16), np.uint8)
        same(wide[:, ::2], 16, scale=1 / 255)                               # a strided view
        gray = normalize_patches(tokens((1, 2, 16), np.uint16), 16, [0.5], [0.25], impl="triton",
                                 scale=1 / 65535)
        assert gray.shape == (1, 2, 16)
        for dtype in (torch.bfloat16, torch.float16):
            x = tokens((2, 5, 3 * 16), np.uint8)
            low = normalize_patches(x, 16, mean, std, scale=1 / 255, out_dtype=dtype,
                                    impl="triton")
            ops = normalize_patches(x, 16, mean, std, scale=1 / 255)
            assert low.dtype == dtype
            # (the interpreter truncates to bfloat16; CUDA rounds to nearest even)
            torch.testing.assert_close(low.float(), ops, rtol=1e-2, atol=1e-3)
        empty = normalize_patches(tokens((0, 5, 48), np.uint8), 16, mean, std, impl="triton")
        assert empty.shape == (0, 5, 48)
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
    hwc = torch.from_numpy(_random_images((8, 224, 224, 3), "uint8", seed=3))
    ref = patchify_reference(hwc.permute(0, 3, 1, 2), 16)
    for x in (hwc.cuda().permute(0, 3, 1, 2), hwc.permute(0, 3, 1, 2).contiguous().cuda()):
        out = patchify(x, 16, impl="triton")
        assert out.is_cuda and out.dtype == torch.uint8 and tuple(out.shape) == (8, 196, 768)
        np.testing.assert_array_equal(out.cpu().numpy(), ref)
        assert torch.equal(patchify(x, 16), out)  # auto picks the same result on CUDA

        kw = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, scale=1 / 255)
        norm_ref = patchify_reference(hwc.permute(0, 3, 1, 2), 16, **kw)
        norm = patchify(x, 16, impl="triton", **kw)
        assert norm.dtype == torch.float16
        _assert_close_to_reference(norm.cpu().numpy(), norm_ref, "float16")
        norm32 = patchify(x, 16, impl="triton", out_dtype=torch.float32, **kw)
        torch.testing.assert_close(norm32, patchify(x, 16, impl="torch", out_dtype=torch.float32, **kw))

    # overlapping stride on an audio-sized input
    spec = torch.randn(2, 1, 128, 1024, device="cuda")
    out = patchify(spec, 16, 10, impl="triton")
    np.testing.assert_array_equal(out.cpu().numpy(), patchify_reference(spec, 16, 10))


@pytest.mark.gpu
def test_normalize_patches_cuda_matches_the_torch_path():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    cases = [  # (tokens, per_channel, keyword arguments): the projectors' real shapes
        (_stored_tokens((64, 196, 768), "uint8"), 256, dict(scale=1 / 255)),
        (_stored_tokens((16, 196, 256), "uint16"), 256, dict(channels=3, scale=1 / 65535)),
        (_stored_tokens((8, 1568, 1536), "uint8"), 512, dict(divide_by=255.0)),
    ]
    for cpu_tokens, per_channel, kw in cases:
        tokens = cpu_tokens.cuda()
        kernel = normalize_patches(tokens, per_channel, mean, std, impl="triton", **kw)
        assert kernel.is_cuda and kernel.dtype == torch.float32
        assert torch.equal(normalize_patches(tokens, per_channel, mean, std, **kw), kernel)  # auto
        on_cpu = normalize_patches(cpu_tokens, per_channel, mean, std, **kw)
        torch.testing.assert_close(kernel.cpu(), on_cpu, rtol=1e-6, atol=1e-6)
        for dtype in (torch.bfloat16, torch.float16):
            low = normalize_patches(tokens, per_channel, mean, std, impl="triton",
                                    out_dtype=dtype, **kw)
            assert low.dtype == dtype
            # rounded once, to nearest even: the float32 result cast, bar an FMA's last bit
            torch.testing.assert_close(low.cpu(), on_cpu.to(dtype))
