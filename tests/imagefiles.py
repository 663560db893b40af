"""Real image files of every format the image reader claims, written with Pillow."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

RED, GREEN, BLUE = (220, 20, 30), (10, 200, 40), (20, 30, 210)


def solid(mode: str, size: tuple[int, int], colour) -> Image.Image:
    return Image.new(mode, size, colour)


def palette_image(size=(64, 48)) -> Image.Image:
    image = Image.new("P", size, 0)
    image.putpalette([*GREEN, *RED] + [0] * 762)
    return image


def exif_rotated_jpeg(path: Path) -> None:
    """A 64x32 image, left half red, right half blue, stored with EXIF orientation 6
    (display = rotate 90 degrees clockwise)."""
    array = np.zeros((32, 64, 3), np.uint8)
    array[:, :32] = RED
    array[:, 32:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(array).save(path, quality=98, exif=exif)


def animated_gif(path: Path) -> None:
    frames = [solid("RGB", (40, 40), RED), solid("RGB", (40, 40), BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def gray16(value: int, size=(48, 40)) -> Image.Image:
    return Image.fromarray(np.full(size[::-1], value, dtype=np.uint16))


def png_bomb(path: Path, side: int = 100_000) -> None:
    """A valid PNG header declaring side x side pixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * (side + 1))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))


def write_format_zoo(folder: Path) -> dict[str, dict]:
    """One file per claimed format/mode; returns {relative path: expectation}."""
    folder.mkdir(parents=True, exist_ok=True)
    expect: dict[str, dict] = {}

    def save(name: str, image: Image.Image, colour, **kwargs) -> None:
        image.save(folder / name, **kwargs)
        expect[name] = {"colour": colour}

    save("rgb.png", solid("RGB", (50, 40), RED), RED)
    save("rgba.png", solid("RGBA", (50, 40), (*GREEN, 128)), GREEN)
    save("gray.png", solid("L", (50, 40), 77), (77, 77, 77))
    save("gray_alpha.png", solid("LA", (50, 40), (99, 200)), (99, 99, 99))
    save("palette.png", palette_image(), GREEN)
    save("gray16.png", gray16(257 * 100), (100, 100, 100))
    save("rgb.jpg", solid("RGB", (50, 40), RED), RED, quality=95)
    save("cmyk.jpg", solid("CMYK", (50, 40), (0, 255, 255, 0)), (255, 0, 0), quality=95)
    save("rgb.bmp", solid("RGB", (50, 40), BLUE), BLUE)
    save("rgb.tif", solid("RGB", (50, 40), GREEN), GREEN)
    save("gray16.tif", gray16(257 * 30), (30, 30, 30))
    save("rgb.webp", solid("RGB", (50, 40), RED), RED, lossless=True)
    animated_gif(folder / "anim.gif")
    expect["anim.gif"] = {"colour": RED}
    exif_rotated_jpeg(folder / "exif_rot.jpg")
    expect["exif_rot.jpg"] = {"colour": None, "orig_size": (64, 32)}
    return expect


def jpeg_bytes(size=(64, 64)) -> bytes:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def noise_image(path: Path, size=(96, 72), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def write_class_tree(root: Path, classes=("cat", "dog"), per_class: int = 6,
                     size=(96, 72)) -> list[str]:
    """A labelled ImageFolder tree of noise PNGs; returns the sorted ids."""
    ids = []
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise_image(root / name / f"{i:02d}.png", size, seed=100 * c + i)
            ids.append(f"{name}/{i:02d}.png")
    return sorted(ids)
