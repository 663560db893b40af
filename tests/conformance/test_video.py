"""Conformance of video (4 frames at rate 2, 32 px), from H.264 MP4, MJPEG AVI and VP9 WebM
clips of a square moving left (class a) or right (class b)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")

import videofiles as vf  # noqa: E402

from .base import Malformed, TokenizerConformance  # noqa: E402

FORMATS = [ext for ext, (codec, _) in vf.FORMATS.items() if vf.encoder_available(codec)]


def moving_square(direction: int, start: int):
    def pixels(index: int, width: int, height: int) -> np.ndarray:
        frame = np.full((height, width, 3), 40, np.uint8)
        step = index + start
        x = 4 + 3 * step if direction > 0 else width - 20 - 3 * step
        frame[16:32, x:x + 16] = 230
        return frame
    return pixels


def cut_mp4(path: Path) -> None:
    vf.write_clip(path, 12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the 'moov' index is written last


def eight_k(path: Path) -> None:
    vf.write_clip(path, 1, ext="avi", width=7680, height=4320,
                  pixels=lambda i, w, h: np.zeros((h, w, 3), np.uint8))


def jpeg(path: Path) -> None:
    from PIL import Image

    Image.fromarray(vf.frame_pixels(0)).save(path, format="JPEG")


class TestVideo(TokenizerConformance):
    modality = "video"
    extension = ".mp4"
    holds_floats = False  # 8-bit pixels: nothing can be NaN

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        ext = FORMATS[index % len(FORMATS)]
        path = folder / f"{stem}.{ext}"
        vf.write_clip(path, 12, pixels=moving_square(1 if label else -1, index % 3))
        return path

    def malformed_inputs(self) -> dict[str, Malformed]:
        return {
            "cut.mp4": Malformed(cut_mp4, "truncated", "truncated"),
            "eight_k.avi": Malformed(eight_k, "too_large", "absurd_size"),
            "photo.mp4": Malformed(jpeg, "not_a_video", "wrong_content"),
            "one_frame.mp4": Malformed(lambda p: vf.write_clip(p, 1), None, "short"),
        }
