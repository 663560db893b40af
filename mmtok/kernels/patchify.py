"""Patch extraction ("patchify"): (B, C, H, W) images -> (B, L, C*ph*pw) patch vectors.

The last axis of the output is in (channel, row-in-patch, col-in-patch) order, which is
exactly the flattening of a PyTorch/timm ``Conv2d`` patch-embedding weight of shape
(D, C, ph, pw). So ``patchify(x, p) @ W.reshape(D, -1).T`` equals ``conv2d(x, W, stride=p)``
with its (B, D, gh, gw) output flattened to (B, gh*gw, D). Patches are ordered row-major
over the patch grid (see :func:`patch_grid`); rows/columns of the image beyond the last
full patch are ignored, as a strided convolution ignores them.

Four implementations share these semantics:

* ``numpy``  -- one zero-copy ``as_strided`` window view + one copy; the CPU hot path.
* ``torch``  -- the same with ``torch.as_strided`` (works on any device).
* ``triton`` -- the ``_patchify_kernel`` Triton kernel (CUDA, or CPU under TRITON_INTERPRET=1),
  reading the input through its element strides (channel-last views need no copy) and
  optionally fusing the normalisation.
* :func:`patchify_reference` -- a deliberately naive loop, the reference for the tests.

Normalisation: when ``mean``/``std`` are given (or ``scale != 1``) each element becomes
``(x * scale - mean[c]) / std[c]``, computed in float32 (float64 in the reference), and the
output dtype defaults to float16. Without them the op is a pure gather and keeps the input
dtype. ``out_dtype`` overrides the output dtype in both cases.

:func:`normalize_patches` applies the same normalisation to patches that are already cut (the
projectors' stored tokens): it views the (B, L, C*e) tokens as a (B, C, L, e) image of
1 x e patches -- a view, never a copy -- so on CUDA the Triton kernel's fused path reads the
stored integers once and writes the normalised floats once.

Neither torch nor triton is imported by this module: torch tensors are recognised through
``sys.modules`` (if torch was never imported, the input cannot be a tensor), and triton is
imported only when the Triton path runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._tensors import is_torch, torch_module
from ._triton import interpreter_enabled, next_power_of_2, triton_available

__all__ = ["normalize_patches", "patch_grid", "patchify", "patchify_reference"]

IMPLS = ("auto", "numpy", "torch", "triton")
NORMALIZE_IMPLS = ("auto", "torch", "triton")
_INPUT_DTYPES = ("uint8", "uint16", "float16", "float32")
_OUTPUT_DTYPES = ("uint8", "uint16", "float16", "float32", "bfloat16")
_FLOAT_OUTPUT_DTYPES = ("float16", "float32", "bfloat16")


# --------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            items = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
        ):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{name} must be positive, got {pair}")
    return pair


def _grid_shape(
    height: int, width: int, patch: tuple[int, int], stride: tuple[int, int]
) -> tuple[int, int]:
    ph, pw = patch
    if height < ph or width < pw:
        raise ValueError(
            f"image of size {height}x{width} (HxW) is smaller than the patch {ph}x{pw}; "
            "resize or pad it before patchify"
        )
    return (height - ph) // stride[0] + 1, (width - pw) // stride[1] + 1


def patch_grid(
    height: int, width: int, patch: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Grid positions of the patches, in output order.

    Returns an (L, 2) int32 array of (row, col) grid indices, row-major, with
    L = gh * gw, gh = (height - ph) // sh + 1 and gw = (width - pw) // sw + 1.
    Patch ``i`` covers image rows ``row*sh : row*sh + ph`` and columns ``col*sw : col*sw + pw``.
    Raises ValueError if the image is smaller than the patch.
    """
    ph, pw = _pair(patch, "patch")
    sh, sw = _pair(stride, "stride")
    gh, gw = _grid_shape(int(height), int(width), (ph, pw), (sh, sw))
    rows, cols = np.divmod(np.arange(gh * gw, dtype=np.int32), np.int32(gw))
    return np.stack([rows, cols], axis=1).astype(np.int32, copy=False)


def _dtype_name(dtype: Any) -> str:
    """Canonical name ('uint8', 'float16', ...) of a numpy/torch dtype, type or string."""
    torch = torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        return str(dtype).removeprefix("torch.")
    if isinstance(dtype, str) and dtype.startswith("torch."):
        return dtype.removeprefix("torch.")
    if isinstance(dtype, str) and dtype == "bfloat16":
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"not a dtype: {dtype!r}") from None


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        raise TypeError("numpy has no bfloat16; use the torch or triton path for bfloat16 output")
    return np.dtype(name)


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _check_images(images: Any) -> str:
    """Validates shape/dtype; returns the dtype name."""
    if isinstance(images, np.ndarray):
        name = images.dtype.name
    elif is_torch(images):
        name = str(images.dtype).removeprefix("torch.")
    else:
        raise TypeError(
            f"images must be a numpy array or a torch tensor, got {type(images).__name__}"
        )
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    if name not in _INPUT_DTYPES:
        raise TypeError(f"images dtype must be one of {', '.join(_INPUT_DTYPES)}, got {name}")
    return name


def _norm_params(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    scale: float,
    channels: int,
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Per-channel (mean, std) tuples of length C, or None for a pure gather."""
    if mean is None and std is None and scale == 1.0:
        return None

    def per_channel(values, default: float, name: str) -> tuple[float, ...]:
        if values is None:
            return (default,) * channels
        if isinstance(values, (list, tuple)) and all(isinstance(v, (int, float)) for v in values):
            # plain numbers skip numpy: torch.compile traces this (normalize_patches in a
            # projector's forward) and would split its graph at a numpy round trip
            vals = tuple(float(v) for v in values)
        else:
            vals = tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))
        if len(vals) == 1:
            vals = vals * channels
        if len(vals) != channels:
            raise ValueError(
                f"{name} must have 1 or C={channels} values (one per channel), got {len(vals)}"
            )
        return vals

    mean_t = per_channel(mean, 0.0, "mean")
    std_t = per_channel(std, 1.0, "std")
    if any(s == 0.0 for s in std_t):
        raise ValueError(f"std must be non-zero, got {std_t}")
    return mean_t, std_t


def _out_dtype_name(in_name: str, out_dtype: Any, normalize: bool) -> str:
    if out_dtype is None:
        return "float16" if normalize else in_name
    name = _dtype_name(out_dtype)
    allowed = _FLOAT_OUTPUT_DTYPES if normalize else _OUTPUT_DTYPES
    if name not in allowed:
        what = "normalised output" if normalize else "output"
        raise TypeError(f"out_dtype for {what} must be one of {', '.join(allowed)}, got {name}")
    return name


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def patchify(
    images,
    patch: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 1.0,
    out_dtype=None,
    impl: str = "auto",
):
    """Extracts patches from a (B, C, H, W) batch; returns (B, L, C*ph*pw).

    Args:
        images: numpy array or torch tensor, shape (B, C, H, W), any strides (a permuted
            channel-last view is fine and is not copied first), dtype uint8, uint16,
            float16 or float32.
        patch: patch size, int or (ph, pw).
        stride: step between patches, int or (sh, sw); defaults to ``patch``
            (non-overlapping). Smaller than the patch means overlapping patches.
        mean, std: per-channel sequences (length C, or 1 to broadcast). When given (or
            when ``scale != 1``) the output is ``(x * scale - mean[c]) / std[c]``, computed
            in float32; a missing mean is 0, a missing std is 1.
        scale: multiplier applied before the mean/std, e.g. ``1/255`` for uint8 images.
        out_dtype: output dtype (numpy or torch dtype, or its name). Defaults to the input
            dtype for a pure gather and to float16 when normalising.
        impl: "auto" (Triton for CUDA tensors when triton imports, torch for other
            tensors, numpy for arrays), or force "numpy", "torch" or "triton".

    Returns:
        The same container type as ``images`` (numpy array, or torch tensor on the input's
        device), C-contiguous, shape (B, L, C*ph*pw) with the last axis in (channel,
        row-in-patch, col-in-patch) order and patches row-major over :func:`patch_grid`.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; valid choices are: {', '.join(IMPLS)}")
    in_name = _check_images(images)
    ph, pw = _pair(patch, "patch")
    sh, sw = (ph, pw) if stride is None else _pair(stride, "stride")
    B, C, H, W = (int(s) for s in images.shape)
    gh, gw = _grid_shape(H, W, (ph, pw), (sh, sw))
    norm = _norm_params(mean, std, float(scale), C)
    out_name = _out_dtype_name(in_name, out_dtype, norm is not None)
    args = (images, (ph, pw), (sh, sw), (gh, gw), norm, float(scale), out_name)

    is_tensor = is_torch(images)
    if impl == "auto":
        if is_tensor:
            # inside torch.compile the torch ops trace into the graph; a kernel launch from
            # Python would split it
            use_triton = (images.device.type == "cuda" and triton_available()
                          and not torch_module().compiler.is_compiling())
            impl = "triton" if use_triton else "torch"
        else:
            impl = "numpy"

    if impl == "numpy":
        if not is_tensor:
            return _patchify_numpy(*args)
        if images.device.type != "cpu":
            raise ValueError(
                f"impl='numpy' needs a CPU tensor, got one on {images.device}; "
                "use impl='torch' or 'triton'"
            )
        import torch

        out = _patchify_numpy(images.detach().numpy(), *args[1:])
        return torch.from_numpy(out)

    if impl == "torch":
        import torch

        if is_tensor:
            return _patchify_torch(*args)
        return _patchify_torch(_numpy_to_torch(images), *args[1:]).numpy()

    # impl == "triton"
    if not triton_available():
        raise RuntimeError(
            "impl='triton' was requested but triton cannot be imported; "
            "install triton or use impl='torch'/'numpy'"
        )
    tensor = images if is_tensor else _numpy_to_torch(images)
    if tensor.device.type == "cpu" and not interpreter_enabled():
        raise RuntimeError(
            "impl='triton' on a CPU tensor needs the Triton interpreter: set "
            "TRITON_INTERPRET=1 before triton is first imported, or move the input to CUDA"
        )
    out = _patchify_triton(tensor, *args[1:])
    return out if is_tensor else out.numpy()


def patchify_reference(
    images,
    patch: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float = 1.0,
    out_dtype=None,
) -> np.ndarray:
    """Naive reference for :func:`patchify`: a Python loop over images and grid cells.

    Same semantics as :func:`patchify`, but always returns a numpy array and normalises in
    float64 before the final cast. Slow on purpose; it exists to check the fast paths.
    """
    in_name = _check_images(images)
    if is_torch(images):
        images = images.detach().cpu().numpy()
    x = np.asarray(images)
    ph, pw = _pair(patch, "patch")
    sh, sw = (ph, pw) if stride is None else _pair(stride, "stride")
    B, C, H, W = x.shape
    norm = _norm_params(mean, std, float(scale), C)
    out_dt = _np_dtype(_out_dtype_name(in_name, out_dtype, norm is not None))
    grid = patch_grid(H, W, (ph, pw), (sh, sw))

    out = np.empty((B, len(grid), C * ph * pw), dtype=out_dt)
    for b in range(B):
        for i, (row, col) in enumerate(grid):
            top, left = int(row) * sh, int(col) * sw
            cell = x[b, :, top : top + ph, left : left + pw]  # (C, ph, pw)
            if norm is not None:
                m = np.asarray(norm[0], dtype=np.float64)[:, None, None]
                s = np.asarray(norm[1], dtype=np.float64)[:, None, None]
                cell = (cell.astype(np.float64) * float(scale) - m) / s
            # row-major flattening of (C, ph, pw) == (channel, row, col) order
            out[b, i] = cell.reshape(-1).astype(out_dt)
    return out


def normalize_patches(
    tokens,
    per_channel: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    channels: int | None = None,
    scale: float = 1.0,
    divide_by: float | None = None,
    out_dtype=None,
    impl: str = "auto",
):
    """Normalises already-cut patches: (B, L, S*e) tokens -> (B, L, C*e) floats.

    Each element becomes ``(x * scale - mean[c]) / std[c]`` (or ``(x / divide_by - ...)``),
    computed in float32, where ``c`` is the channel block the element sits in.

    Args:
        tokens: torch tensor (B, L, S*e), dtype uint8, uint16, float16 or float32, each
            patch vector in (channel, ...) order: S blocks of ``per_channel`` elements
            (e.g. (channel, row, col) image patches, e = p*p; (channel, t, row, col)
            tubelets, e = t*p*p).
        per_channel: e, the elements of one channel block.
        mean, std: 1 or C values (per output channel).
        channels: C, the channels of the output; defaults to S. With S == 1 and C > 1 the
            one (gray) block is repeated C times, as converting the image to RGB would --
            through a stride-0 view, so the repeat is never materialised.
        scale: multiplier applied first (e.g. ``1/255``).
        divide_by: instead of ``scale``, divide by this first (the video projector's
            arithmetic). The torch path divides, bit for bit as before; the Triton path
            multiplies by its float32 reciprocal, which is what torch's CUDA division by a
            Python number computes too.
        out_dtype: float32 (default), bfloat16 or float16; the values are computed in
            float32 and rounded (to nearest even) once, when stored.
        impl: "auto" (the Triton kernel for CUDA tensors when triton imports, except while
            ``torch.compile`` traces -- inductor fuses the torch ops into one kernel of its
            own, where a Python-launched kernel would split the graph -- else torch),
            or force "torch" or "triton" (CUDA, or CPU under TRITON_INTERPRET=1).

    Returns:
        A C-contiguous (B, L, C*e) tensor on the tokens' device. The torch path's numbers
        are those of ``(tokens.float() * scale - mean_per_element) / std_per_element``
        exactly; the Triton path's are within a float32 rounding of them (it may fuse the
        multiply and subtract into one FMA).
    """
    import torch

    if impl not in NORMALIZE_IMPLS:
        raise ValueError(f"unknown impl {impl!r}; valid choices are: {', '.join(NORMALIZE_IMPLS)}")
    image = _tokens_as_image(tokens, int(per_channel), channels)  # (B, C, L, e), a view
    batch, count, length, width = (int(s) for s in image.shape)
    if mean is None or std is None:
        raise TypeError("normalize_patches needs both mean and std (1 or C values each)")
    norm = _norm_params(mean, std, 1.0, count)
    if divide_by is not None:
        if scale != 1.0:
            raise ValueError("give scale or divide_by, not both")
        if float(divide_by) == 0.0:
            raise ValueError("divide_by must be non-zero")
    out_name = _out_dtype_name("float32", torch.float32 if out_dtype is None else out_dtype, True)

    if impl == "auto":
        use_triton = (not torch.compiler.is_compiling() and tokens.device.type == "cuda"
                      and triton_available())
        impl = "triton" if use_triton else "torch"
    if impl == "torch":
        return _normalize_torch(image, norm, float(scale), divide_by, out_name)

    if not triton_available():
        raise RuntimeError("impl='triton' was requested but triton cannot be imported; "
                           "install triton or use impl='torch'")
    if tokens.device.type == "cpu" and not interpreter_enabled():
        raise RuntimeError(
            "impl='triton' on a CPU tensor needs the Triton interpreter: set "
            "TRITON_INTERPRET=1 before triton is first imported, or move the input to CUDA")
    if batch == 0 or length == 0:
        return torch.empty((batch, length, count * width), dtype=_torch_dtype(out_name),
                           device=tokens.device)
    # One 1 x e "patch" per image row l: patch l of image b is tokens[b, l] in (channel, e)
    # order, exactly the (B, L, C*e) output layout.
    multiplier = float(scale) if divide_by is None else 1.0 / float(divide_by)
    return _patchify_triton(image, (1, width), (1, width), (length, 1), norm, multiplier,
                            out_name)


def _tokens_as_image(tokens, per_channel: int, channels: int | None):
    """(B, L, S*e) tokens as a (B, C, L, e) image view (channel block c of patch l is image
    row l of channel c); a gray block broadcast to C channels has channel stride 0."""
    if not is_torch(tokens):
        raise TypeError(f"tokens must be a torch tensor, got {type(tokens).__name__}")
    if tokens.ndim != 3:
        raise ValueError(f"tokens must have shape (B, L, channels * per_channel), got shape "
                         f"{tuple(tokens.shape)}")
    name = str(tokens.dtype).removeprefix("torch.")
    if name not in _INPUT_DTYPES:
        raise TypeError(f"tokens dtype must be one of {', '.join(_INPUT_DTYPES)}, got {name}")
    if per_channel < 1 or tokens.shape[2] % per_channel:
        raise ValueError(f"a patch of {tokens.shape[2]} elements is not a whole number of "
                         f"channel blocks of {per_channel}")
    stored = tokens.shape[2] // per_channel
    channels = stored if channels is None else int(channels)
    if channels != stored and stored != 1:
        raise ValueError(f"tokens of {stored} channels cannot be normalised as {channels} "
                         "channels (only one gray channel is repeated)")
    blocks = tokens.unflatten(2, (stored, per_channel))  # (B, L, S, e): splitting is a view
    if channels != stored:
        blocks = blocks.expand(-1, -1, channels, -1)
    return blocks.permute(0, 2, 1, 3)


def _normalize_torch(image, norm, scale: float, divide_by: float | None, out_name: str):
    """The projectors' torch ops, element for element: float32 values, then scale (or
    divide), subtract the channel's mean, divide by its std."""
    import torch

    blocks = image.permute(0, 2, 1, 3)  # back to (B, L, C, e)
    # fresh (C, 1) tensors, not _norm_tensors' cache: torch.compile traces this path
    mean = torch.tensor(norm[0], dtype=torch.float32, device=image.device)[:, None]
    std = torch.tensor(norm[1], dtype=torch.float32, device=image.device)[:, None]
    values = blocks.float()
    values = values * scale if divide_by is None else values / divide_by
    pixels = ((values - mean) / std).flatten(2).contiguous()  # a no-op for stored tokens
    return pixels if out_name == "float32" else pixels.to(_torch_dtype(out_name))


# --------------------------------------------------------------------------------------
# numpy path
# --------------------------------------------------------------------------------------


def _patchify_numpy(x: np.ndarray, patch, stride, grid, norm, scale, out_name) -> np.ndarray:
    ph, pw = patch
    sh, sw = stride
    gh, gw = grid
    B, C = x.shape[:2]
    # A zero-copy view `windows` of shape (B, gh, gw, C, ph, pw) whose element
    # [b, i, j, c, r, q] is x[b, c, i*sh + r, j*sw + q]; copying it into C order gives the
    # (B, L, C*ph*pw) layout directly. Works on any input strides (channel-last views too).
    if (sh, sw) == (ph, pw):
        # Non-overlapping: crop the unused border, split H -> (gh, ph) and W -> (gw, pw)
        # (splitting an axis never copies), and move the grid axes in front.
        if x.shape[2] != gh * ph or x.shape[3] != gw * pw:
            x = x[:, :, : gh * ph, : gw * pw]
        windows = x.reshape(B, C, gh, ph, gw, pw).transpose(0, 2, 4, 1, 3, 5)
    else:
        # Overlapping (or gapped) windows: step sh rows / sw columns between patches.
        sB, sC, sH, sW = x.strides  # byte strides
        windows = np.lib.stride_tricks.as_strided(
            x,
            shape=(B, gh, gw, C, ph, pw),
            strides=(sB, sH * sh, sW * sw, sC, sH, sW),
            writeable=False,
        )
    L, K = gh * gw, C * ph * pw
    out_dt = _np_dtype(out_name)
    if norm is None:
        if out_dt == x.dtype:
            # one strided copy into C order == the (B, L, C*ph*pw) layout
            return np.ascontiguousarray(windows).reshape(B, L, K)
        out = np.empty((B, gh, gw, C, ph, pw), dtype=out_dt)
        np.copyto(out, windows, casting="unsafe")
        return out.reshape(B, L, K)

    if out_dt == np.float16 and x.dtype == np.uint8:
        # The hot case (uint8 images -> float16 tokens). numpy's float32 -> float16 cast is
        # a slow scalar loop (~4 ns/element, more than the rest of the op), so instead look
        # the float16 results up in a (C*256,) table computed with the same float32
        # arithmetic (bit-identical to the branch below): index = c*256 + value.
        lut = _uint8_lut(norm[0], norm[1], float(scale), out_name).reshape(-1)
        idx = np.empty((B, gh, gw, C, ph, pw), dtype=np.intp)
        np.add(windows, _channel_offsets(C), out=idx, casting="unsafe")  # gather + widen
        return np.take(lut, idx, mode="wrap").reshape(B, L, K)

    mean = np.asarray(norm[0], dtype=np.float32).reshape(C, 1, 1)
    std = np.asarray(norm[1], dtype=np.float32).reshape(C, 1, 1)
    # Gather and convert in one pass (the multiply reads the strided view), then finish in
    # place on the contiguous float32 buffer.
    buf = np.empty((B, gh, gw, C, ph, pw), dtype=np.float32)
    np.multiply(windows, np.float32(scale), out=buf, casting="unsafe")
    np.subtract(buf, mean, out=buf)
    np.divide(buf, std, out=buf)
    buf = buf.reshape(B, L, K)
    if out_dt == np.float32:
        return buf
    torch = torch_module()
    if out_dt == np.float16 and torch is not None:
        # torch is already imported: its vectorised cast is much faster than numpy's and
        # rounds the same way (to nearest even). (Not used for the uint8 case above: torch
        # may run it on its thread pool, which contends badly with busy CPUs.)
        return torch.from_numpy(buf).to(torch.float16).numpy()
    return buf.astype(out_dt)


@functools.lru_cache(maxsize=8)
def _channel_offsets(channels: int) -> np.ndarray:
    """(C, 1, 1) array of c*256, the row offsets into a flattened (C, 256) table."""
    offsets = (np.arange(channels, dtype=np.intp) * 256).reshape(channels, 1, 1)
    offsets.setflags(write=False)
    return offsets


@functools.lru_cache(maxsize=32)
def _uint8_lut(
    mean: tuple[float, ...], std: tuple[float, ...], scale: float, out_name: str
) -> np.ndarray:
    """(C, 256) table of ``(v * scale - mean[c]) / std[c]`` for v = 0..255, in float32 then cast."""
    values = np.arange(256, dtype=np.float32)[None, :]
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    table = ((values * np.float32(scale) - m) / s).astype(_np_dtype(out_name))
    table.setflags(write=False)
    return table


def _numpy_to_torch(x: np.ndarray):
    import torch

    if any(s < 0 for s in x.strides) or any(s % x.itemsize for s in x.strides):
        x = np.ascontiguousarray(x)  # torch.from_numpy cannot share these layouts
    return torch.from_numpy(x)


# --------------------------------------------------------------------------------------
# torch path
# --------------------------------------------------------------------------------------


def _patchify_torch(x, patch, stride, grid, norm, scale, out_name):
    import torch

    ph, pw = patch
    sh, sw = stride
    gh, gw = grid
    B, C = x.shape[:2]
    sB, sC, sH, sW = x.stride()  # element strides
    # Same window view as the numpy path; as_strided's storage offset is absolute, so the
    # view's own offset is passed through.
    windows = x.as_strided(
        (B, gh, gw, C, ph, pw),
        (sB, sH * sh, sW * sw, sC, sH, sW),
        x.storage_offset(),
    )
    L, K = gh * gw, C * ph * pw
    out_dt = _torch_dtype(out_name)
    if norm is None:
        out = torch.empty((B, gh, gw, C, ph, pw), dtype=out_dt, device=x.device)
        out.copy_(windows)  # one strided gather (+ cast when out_dtype differs)
        return out.reshape(B, L, K)

    mean, std = (t.reshape(C, 1, 1) for t in _norm_tensors(norm[0], norm[1], str(x.device)))
    buf = torch.empty((B, gh, gw, C, ph, pw), dtype=torch.float32, device=x.device)
    buf.copy_(windows)
    buf.mul_(torch.tensor(scale, dtype=torch.float32)).sub_(mean).div_(std)
    buf = buf.reshape(B, L, K)
    return buf if out_dt == torch.float32 else buf.to(out_dt)


# --------------------------------------------------------------------------------------
# Triton path
# --------------------------------------------------------------------------------------

# Module globals filled in by _build_kernel(); the jitted kernel resolves `tl` here.
triton = None
tl = None

# Elements of the (BLOCK_L, BLOCK_K) tile one program handles per loop step.
_TILE_ELEMS = 4096
_MAX_BLOCK_K = 256


@functools.lru_cache(maxsize=1)
def _build_kernel():
    """Imports triton and defines the kernel (lazily, so CPU users never import triton).

    ``triton.jit`` decides here, once per process, whether the kernel is compiled or run by
    the interpreter (TRITON_INTERPRET=1 at the time of the first Triton call).
    """
    global triton, tl
    import triton
    import triton.language as tl

    @triton.jit
    def _patchify_kernel(
        x_ptr,  # input, element strides below; any layout
        out_ptr,  # (B, L, K) contiguous output
        mean_ptr,  # (C,) float32, read only if NORMALIZE
        std_ptr,  # (C,) float32, read only if NORMALIZE
        scale,  # float32 multiplier applied before mean/std
        L,  # patches per image = gh * gw
        K,  # elements per patch = C * ph * pw
        gw,  # patches per grid row
        n_lblocks,  # cdiv(L, BLOCK_L): patch blocks per image
        stride_b,
        stride_c,
        stride_h,
        stride_w,  # input element strides
        step_h,
        step_w,  # patch stride (sh, sw) in pixels
        PH: tl.constexpr,
        PW: tl.constexpr,
        BLOCK_L: tl.constexpr,
        BLOCK_K: tl.constexpr,
        NORMALIZE: tl.constexpr,
    ):
        # 1-D launch grid over (image, block of patches): pid = b * n_lblocks + lblock.
        pid = tl.program_id(0)
        b = pid // n_lblocks
        lblock = pid % n_lblocks

        # Patch indices of this block and their grid cell (gy, gx), row-major over the grid.
        offs_l = lblock * BLOCK_L + tl.arange(0, BLOCK_L)  # [BLOCK_L]
        mask_l = offs_l < L
        gy = offs_l // gw
        gx = offs_l % gw
        # Top-left pixel of each patch is (gy*step_h, gx*step_w); its offset in the input.
        # int64 so that large batches/strides cannot overflow 32-bit offsets.
        patch_off = (gy * step_h).to(tl.int64) * stride_h + (gx * step_w).to(tl.int64) * stride_w
        in_base = x_ptr + b.to(tl.int64) * stride_b
        # Output rows b*L + l of the contiguous (B*L, K) output.
        out_row = (b.to(tl.int64) * L + offs_l) * K  # [BLOCK_L]

        for k0 in range(0, K, BLOCK_K):
            # Position inside the patch vector, in (channel, row, col) order:
            # k = c*PH*PW + r*PW + q  ->  c = k // (PH*PW), r = (k // PW) % PH, q = k % PW.
            offs_k = k0 + tl.arange(0, BLOCK_K)  # [BLOCK_K]
            mask_k = offs_k < K  # K is rarely a power of two (e.g. 3*16*16 = 768)
            c = offs_k // (PH * PW)
            r = (offs_k // PW) % PH
            q = offs_k % PW
            # Offset of element (c, r, q) relative to the patch's top-left pixel.
            elem_off = c.to(tl.int64) * stride_c + r.to(tl.int64) * stride_h + q.to(tl.int64) * stride_w
            mask = mask_l[:, None] & mask_k[None, :]
            # x[b, c, gy*sh + r, gx*sw + q] for the whole (BLOCK_L, BLOCK_K) tile.
            vals = tl.load(in_base + patch_off[:, None] + elem_off[None, :], mask=mask, other=0)
            if NORMALIZE:
                m = tl.load(mean_ptr + c, mask=mask_k, other=0.0)
                s = tl.load(std_ptr + c, mask=mask_k, other=1.0)
                y = vals.to(tl.float32) * scale - m[None, :]
                # IEEE division (plain `/` may lower to an approximate divide on GPUs), so
                # the result matches the numpy/torch paths bit for bit in float32.
                vals = tl.math.div_rn(y, tl.broadcast_to(s[None, :], (BLOCK_L, BLOCK_K)))
            out_ptrs = out_ptr + out_row[:, None] + offs_k[None, :]
            tl.store(out_ptrs, vals.to(out_ptr.dtype.element_ty), mask=mask)

    return _patchify_kernel


@functools.lru_cache(maxsize=64)
def _norm_tensors(mean: tuple[float, ...], std: tuple[float, ...], device: str):
    """(C,) float32 mean/std tensors on ``device``, cached to avoid a copy per call."""
    import torch

    return (
        torch.tensor(mean, dtype=torch.float32, device=device),
        torch.tensor(std, dtype=torch.float32, device=device),
    )


def _patchify_triton(x, patch, stride, grid, norm, scale, out_name):
    import torch

    kernel = _build_kernel()
    ph, pw = patch
    sh, sw = stride
    gh, gw = grid
    B, C = int(x.shape[0]), int(x.shape[1])
    L, K = gh * gw, C * ph * pw
    out = torch.empty((B, L, K), dtype=_torch_dtype(out_name), device=x.device)
    if B == 0 or L == 0:
        return out

    # Tile sizes must be powers of two; the masks cover the remainder. A program walks the
    # patch vector in BLOCK_K chunks, for BLOCK_L patches at a time.
    block_k = min(next_power_of_2(K), _MAX_BLOCK_K)
    block_l = max(1, min(next_power_of_2(L), _TILE_ELEMS // block_k))
    n_lblocks = triton.cdiv(L, block_l)

    if norm is None:
        mean_t = std_t = out  # never read: NORMALIZE is False
    else:
        mean_t, std_t = _norm_tensors(norm[0], norm[1], str(x.device))
    sB, sC, sH, sW = x.stride()
    # Launch on the input's GPU, whatever the current device is.
    guard = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with guard:
        kernel[(B * n_lblocks,)](
            x,
            out,
            mean_t,
            std_t,
            float(scale),
            L,
            K,
            gw,
            n_lblocks,
            sB,
            sC,
            sH,
            sW,
            sh,
            sw,
            PH=ph,
            PW=pw,
            BLOCK_L=block_l,
            BLOCK_K=block_k,
            NORMALIZE=norm is not None,
        )
    return out
