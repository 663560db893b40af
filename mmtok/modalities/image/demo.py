"""Demo data for the image family: shapes of three classes (circle, square, triangle) drawn
with Pillow at random sizes, colours and positions, in a mix of formats. Same seed, same files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
FORMATS = (".png", ".jpg", ".webp", ".bmp")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int],
                colour: tuple[int, int, int]) -> None:
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([((left + right) // 2, top), (right, bottom), (left, bottom)], fill=colour)


def make_demo_images(folder: str | os.PathLike, per_class: int = 20, seed: int = 0) -> Path:
    """Write ``per_class`` images of each shape under ``folder/<shape>/``; returns folder."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            width, height = (int(v) for v in rng.integers(96, 320, size=2))
            background = tuple(int(v) for v in rng.integers(0, 256, size=3))
            image = Image.new("RGB", (width, height), background)
            side = int(rng.integers(min(width, height) // 3, min(width, height) * 3 // 4))
            left = int(rng.integers(0, width - side))
            top = int(rng.integers(0, height - side))
            colour = tuple(255 - c for c in background)
            _draw_shape(ImageDraw.Draw(image), shape, (left, top, left + side, top + side), colour)
            image.save(folder / shape / f"{i:03d}{FORMATS[i % len(FORMATS)]}")
    return folder
