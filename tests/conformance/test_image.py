"""Conformance of the image family: image, xray, infrared, depth (32x32, 16x16 patches)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hostilefiles import bmp_header_bomb, float_tiff
from imagefiles import jpeg_bytes, png_bomb
from PIL import Image

from .base import TINY_VIT, Malformed, TokenizerConformance

SIZE = (40, 36)  # not square and not 32: every sample is resized and cropped


def pixels(label: int, index: int, high: int, channels: int) -> np.ndarray:
    """Noise whose brightness depends on the class."""
    rng = np.random.default_rng(index)
    shape = (SIZE[1], SIZE[0], channels) if channels > 1 else (SIZE[1], SIZE[0])
    base = rng.uniform(0.0, 0.45, shape) + 0.5 * label
    return (base * high).astype(np.uint16 if high > 255 else np.uint8)


def png_cut() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()[:60]


class ImageFamilyConformance(TokenizerConformance):
    extension = ".png"
    encoder = TINY_VIT
    encoder_options = {"img_size": 32, "depth": 1}
    tunable = False  # the projector is the ViT's own patch embedding, frozen with it

    def malformed_inputs(self) -> dict[str, Malformed]:
        return {
            "cut.png": Malformed(lambda p: p.write_bytes(png_cut()), "truncated", "truncated"),
            "cut.jpg": Malformed(lambda p: p.write_bytes(jpeg_bytes()[:300]), "truncated",
                                 "truncated"),
            "nan.tif": Malformed(lambda p: float_tiff(p, float("nan")), "nan_pixels",
                                 "nonfinite"),
            "inf.tif": Malformed(lambda p: float_tiff(p, float("inf")), "nan_pixels",
                                 "nonfinite"),
            "bomb.png": Malformed(png_bomb, "too_large", "absurd_size"),
            "bomb.bmp": Malformed(bmp_header_bomb, "too_large", "absurd_size"),
        }


class TestImage(ImageFamilyConformance):
    modality = "image"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        path = folder / f"{stem}{('.png', '.jpg', '.webp')[index % 3]}"
        Image.fromarray(pixels(label, index, 255, 3)).save(path, quality=95, lossless=True)
        return path


class TestXray(ImageFamilyConformance):
    modality = "xray"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        path = folder / f"{stem}{('.png', '.tif')[index % 2]}"
        Image.fromarray(pixels(label, index, 65535, 1)).save(path)  # 16-bit gray
        return path


class TestInfrared(ImageFamilyConformance):
    modality = "infrared"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        path = folder / f"{stem}{('.png', '.jpg', '.bmp')[index % 3]}"
        Image.fromarray(pixels(label, index, 255, 1)).save(path, quality=95)
        return path


class TestDepth(ImageFamilyConformance):
    modality = "depth"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        path = folder / f"{stem}.png"
        Image.fromarray(pixels(label, index, 65535, 1)).save(path)  # 16-bit depth map
        return path
