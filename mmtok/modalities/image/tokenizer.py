"""Image-family modalities: ``image``, ``xray``, ``infrared``, ``depth``.

Reader: Pillow decodes PNG (8/16-bit, gray, gray+alpha, RGB, RGBA, palette), JPEG (CMYK,
EXIF orientation), BMP, TIFF (16-bit), WebP and GIF (first frame). The pixel count is checked
from the header before any pixel is decoded, so a decompression bomb is a recorded
``too_large`` error instead of an out-of-memory kill.

Tokenizer: convert to the preset's channels and bit depth, resize (shorter side + centre
crop folded into one resampling, timm's two-step ``scale_crop``, or a plain resize), then cut into non-overlapping patches stored as integers in
(channel, row, column) order: the flattening of a timm ``PatchEmbed`` conv weight, so the
encoder's patch embedding applies to a token unchanged. Normalisation is not applied here
(tokens stay compact integers); its statistics are recorded in the config for the embed step.
"""

from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ...errors import SampleError, UsageError
from ...kernels.patchify import patch_grid, patchify
from ...store.layout import ArraySpec
from ..base import Tokenizer
from ..files import check_input_file

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
RESIZE_MODES = ("shorter", "scale_crop", "plain")
HIGH_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
ORIENTATION_TAG = 0x0112
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # the ones that swap width and height


@dataclass(frozen=True)
class ImageConfig:
    modality: str = "image"
    size: int = 224
    patch: int = 16
    # "shorter": the centre crop_pct square of the shorter side resampled to size (one step);
    # "scale_crop": shorter side to floor(size / crop_pct), then a centre crop of size (timm's
    # and torchvision's eval transform, pixel for pixel); "plain": the whole image to size
    resize: str = "shorter"
    crop_pct: float = 1.0
    interpolation: str = "bicubic"
    channels: int = 3
    bit_depth: int = 8
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD
    max_pixels: int = 100_000_000
    jpeg_draft: bool = False  # decode big JPEGs at 1/2..1/8 scale: faster, pixels differ slightly

    def __post_init__(self) -> None:
        problems = []
        if self.size <= 0 or self.patch <= 0 or self.size % self.patch:
            problems.append(f"size {self.size} must be a positive multiple of patch {self.patch}")
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {', '.join(RESIZE_MODES)}, not "
                            f"{self.resize!r}")
        if not 0 < self.crop_pct <= 1:
            problems.append(f"crop_pct must be in (0, 1], not {self.crop_pct}")
        if self.interpolation not in RESAMPLE:
            problems.append(f"interpolation must be one of {sorted(RESAMPLE)}")
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3, not {self.channels}")
        if self.bit_depth not in (8, 16):
            problems.append(f"bit_depth must be 8 or 16, not {self.bit_depth}")
        if len(self.mean) not in (1, self.channels) or len(self.std) != len(self.mean):
            problems.append(f"mean/std need 1 or {self.channels} values each")
        if problems:
            raise UsageError("; ".join(problems))
        # normalise lists from JSON/CLI into tuples so configs compare and hash equal
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))


GRAY_STATS = {"mean": (0.5,), "std": (0.5,)}  # neutral: maps [0, 1] to [-1, 1]
PRESETS = {
    "image": {},
    "xray": {"channels": 1, "bit_depth": 16, **GRAY_STATS},
    "infrared": {"channels": 1, "bit_depth": 8, **GRAY_STATS},
    "depth": {"channels": 1, "bit_depth": 16, "interpolation": "nearest", **GRAY_STATS},
}


DraftRequest = Callable[[int, int], tuple[str, tuple[int, int]]]
_PIXEL_LIMIT_LOCK = threading.Lock()


@contextmanager
def own_pixel_limit() -> Iterator[None]:
    """Switch Pillow's decompression-bomb guard off for mmtok's own decode only.

    mmtok enforces ``max_pixels`` itself from the header (a recorded ``too_large`` error, with
    a user-set limit), so Pillow's fixed warning-then-error would only get in the way; but
    other code in the same program keeps Pillow's guard: the limit is lifted only while
    ``Image.open`` reads a header, and the lock keeps two of our threads from restoring each
    other's value.
    """
    with _PIXEL_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def open_image(path: str, max_pixels: int,
               draft: DraftRequest | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode one image, turning every file problem into a SampleError.

    Returns the upright image (EXIF orientation applied) and its full-resolution
    (height, width), which differs from the image's own size after a JPEG draft decode.

    ``draft(width, height)`` -> (mode, minimum size) lets the JPEG decoder scale down by
    1/2, 1/4 or 1/8 while decoding (Pillow's ``draft``); other formats ignore it.
    """
    check_input_file(path)
    try:
        with own_pixel_limit():  # Pillow checks its limit when it reads the header
            image = Image.open(path)
    except FileNotFoundError:
        raise SampleError("not_found", "no such file") from None
    except (PermissionError, IsADirectoryError) as exc:
        raise SampleError("unreadable", f"cannot read: {exc.strerror}") from None
    except UnidentifiedImageError:
        raise SampleError("decode_error", "not an image file Pillow can identify "
                          "(wrong extension or corrupt header)") from None
    except OSError as exc:
        if exc.errno is not None:  # the operating system refused the read
            raise SampleError("unreadable", f"cannot read: {exc}") from None
        kind = "truncated" if "runcated" in str(exc) else "decode_error"
        raise SampleError(kind, f"{exc}", stage="decode") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise SampleError("too_large", f"{width}x{height} = {width * height} pixels exceeds "
                          f"max_pixels {max_pixels}; raise --max-pixels to accept it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. palette transparency notes
            if draft is not None and image.format == "JPEG":
                image.draft(*draft(width, height))
            image.load()
            turned = image.getexif().get(ORIENTATION_TAG, 1) in TRANSPOSING_ORIENTATIONS
            ImageOps.exif_transpose(image, in_place=True)  # no copy when there is no tag
            return image, ((width, height) if turned else (height, width))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem
        kind = "truncated" if "runcated" in str(exc) else "decode_error"
        raise SampleError(kind, f"{type(exc).__name__}: {exc}", stage="decode") from None


def finite_pixels(image: Image.Image) -> np.ndarray:
    """Float32 pixels of a high-bit image. Float images (TIFF depth maps) may hold NaN or
    infinity, whose integer cast is undefined (it differs between machines): refused."""
    pixels = np.asarray(image, dtype=np.float32)
    if image.mode == "F" and not np.isfinite(pixels).all():
        bad = int((~np.isfinite(pixels)).sum())
        raise SampleError("nan_pixels", f"{bad} pixel(s) are NaN or infinite", stage="decode")
    return pixels


def to_target_mode(image: Image.Image, channels: int, bit_depth: int) -> Image.Image | np.ndarray:
    """Pillow image in mode 'RGB'/'L' (8-bit targets) or a float32 (H, W) array (16-bit)."""
    mode = image.mode
    if mode in ("P", "PA"):
        image, mode = image.convert("RGBA"), "RGBA"
    if bit_depth == 8:
        if mode in HIGH_BIT_MODES:
            gray = finite_pixels(image)
            scaled = np.clip(np.rint(gray / 257.0), 0, 255).astype(np.uint8)
            image = Image.fromarray(scaled, "L")
        target = "RGB" if channels == 3 else "L"
        return image if image.mode == target else image.convert(target)
    if channels != 1:
        raise SampleError("unsupported_mode", "16-bit targets support one channel only")
    if mode in HIGH_BIT_MODES:
        return np.clip(finite_pixels(image), 0, 65535)
    return np.asarray(image.convert("L"), dtype=np.float32) * 257.0


def scale_crop_geometry(width: int, height: int,
                        config: ImageConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """``resize="scale_crop"``: the (width, height) the whole image is resized to and the
    (left, top) of the ``size`` x ``size`` centre crop, computed as timm's eval transform
    (``transforms_imagenet_eval``, crop mode ``center``) and torchvision compute them:
    scale = floor(size / crop_pct); ``Resize(scale)`` gives the shorter side ``scale`` and the
    longer ``int(scale * long / short)``; ``CenterCrop`` starts at ``int(round((side -
    size) / 2))`` on each axis."""
    scale = math.floor(config.size / config.crop_pct)
    if width <= height:
        new_width, new_height = scale, int(scale * height / width)
    else:
        new_width, new_height = int(scale * width / height), scale
    left = int(round((new_width - config.size) / 2.0))
    top = int(round((new_height - config.size) / 2.0))
    return (new_width, new_height), (left, top)


def resize_box(width: int, height: int, config: ImageConfig) -> tuple[float, float, float, float]:
    """Source region that maps onto the output square (centre crop folded into the resize);
    not used by ``scale_crop``, which resizes the whole image before cropping."""
    if config.resize == "plain":
        return (0.0, 0.0, float(width), float(height))
    side = config.crop_pct * min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def resize(image: Image.Image | np.ndarray, config: ImageConfig) -> np.ndarray:
    """(size, size, channels) uint8 or uint16 array."""
    size = (config.size, config.size)
    resample = RESAMPLE[config.interpolation]
    if config.resize == "scale_crop":
        return _scale_crop(image, config, resample)
    if isinstance(image, np.ndarray):  # 16-bit path: resize in float, round back
        height, width = image.shape
        box = resize_box(width, height, config)
        out = Image.fromarray(image, "F").resize(size, resample, box=box)
        return np.clip(np.rint(np.asarray(out)), 0, 65535).astype(np.uint16)[:, :, None]
    box = resize_box(image.width, image.height, config)
    out = np.asarray(image.resize(size, resample, box=box))
    return out[:, :, None] if out.ndim == 2 else out


def _scale_crop(image: Image.Image | np.ndarray, config: ImageConfig, resample) -> np.ndarray:
    """Resize the whole image (shorter side to floor(size / crop_pct)), then crop the centre."""
    float_input = isinstance(image, np.ndarray)
    if float_input:
        image = Image.fromarray(image, "F")
    scaled, (left, top) = scale_crop_geometry(image.width, image.height, config)
    if scaled != image.size:  # torchvision's resize leaves an image of the asked size alone
        image = image.resize(scaled, resample)
    out = np.asarray(image)[top:top + config.size, left:left + config.size]
    if float_input:
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)[:, :, None]
    return out[:, :, None] if out.ndim == 2 else np.ascontiguousarray(out)


class ImageTokenizer(Tokenizer):
    extensions = EXTENSIONS

    def __init__(self, config: ImageConfig) -> None:
        self.config = config
        self.grid = config.size // config.patch
        self.dtype = "uint8" if config.bit_depth == 8 else "uint16"

    def sample_arrays(self) -> dict[str, ArraySpec]:
        c = self.config
        return {
            "tokens": ArraySpec((self.grid * self.grid, c.channels * c.patch * c.patch),
                                self.dtype, ("token", "value")),
            "length": ArraySpec((), "int32"),
            "orig_size": ArraySpec((2,), "int32", ("height_width",)),
        }

    def static_arrays(self) -> dict[str, np.ndarray]:
        c = self.config
        return {"positions": patch_grid(c.size, c.size, (c.patch, c.patch), (c.patch, c.patch))}

    def draft_request(self, width: int, height: int) -> tuple[str, tuple[int, int]]:
        """The smallest decode size that still leaves ``size`` pixels across the crop box."""
        c = self.config
        if c.resize == "plain":
            return ("RGB" if c.channels == 3 else "L"), (c.size, c.size)
        if c.resize == "scale_crop":  # the whole image is resized: its shorter side to scale
            factor = math.floor(c.size / c.crop_pct) / min(width, height)
        else:
            factor = c.size / (c.crop_pct * min(width, height))
        need = (int(np.ceil(width * factor)), int(np.ceil(height * factor)))
        return ("RGB" if c.channels == 3 else "L"), need

    def load(self, path: str) -> tuple[np.ndarray, tuple[int, int]]:
        """Decoded, converted and resized pixels (H, W, C) plus the original (height, width)."""
        c = self.config
        image, original = open_image(path, c.max_pixels,
                                     self.draft_request if c.jpeg_draft else None)
        return resize(to_target_mode(image, c.channels, c.bit_depth), c), original

    def tokenize_file(self, path: str, part: str | None = None) -> dict[str, np.ndarray]:
        pixels, original = self.load(path)
        channel_first = pixels[None].transpose(0, 3, 1, 2)
        tokens = patchify(channel_first, self.config.patch)[0]
        return self._arrays(tokens, original)

    @staticmethod
    def _arrays(tokens: np.ndarray, original: tuple[int, int]) -> dict[str, np.ndarray]:
        return {
            "tokens": tokens,
            "length": np.int32(len(tokens)),
            "orig_size": np.array(original, dtype=np.int32),
        }

    # ---- the batched device path (mmtok.devices): decode and resize here, patchify there
    def read_parts(self, path: str, parts: Sequence[str | None]
                   ) -> list[tuple[np.ndarray, tuple[int, int]] | SampleError]:
        """Each part's resized (H, W, C) pixels and original (height, width)."""
        results: list[tuple[np.ndarray, tuple[int, int]] | SampleError] = []
        for _ in parts:
            try:
                results.append(self.load(path))
            except SampleError as exc:
                results.append(exc)
        return results

    def tokenize_batch(self, decoded: Sequence[tuple[np.ndarray, tuple[int, int]]],
                       device: Any) -> list[dict[str, np.ndarray] | SampleError]:
        """Patchify on the device: the resized batch goes over once, the patches come back
        (resizing stays on the CPU, with Pillow, so the pixels stay Pillow's)."""
        import torch

        pixels = torch.from_numpy(np.stack([p for p, _ in decoded])).to(device.torch)
        impl = "triton" if device.kernels == "triton" else "auto"
        tokens = patchify(pixels.permute(0, 3, 1, 2), self.config.patch, impl=impl)
        tokens = tokens.cpu().numpy()
        return [self._arrays(tokens[b], original) for b, (_, original) in enumerate(decoded)]
