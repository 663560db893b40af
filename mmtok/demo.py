"""The embedded default data set and the end-to-end demo run by ``make demo``.

The data set is generated, not shipped, one folder per modality, same seed same files:
images of three shape classes (circle, square, triangle) drawn with Pillow at random sizes,
colours and positions in a mix of formats; point clouds of three solids (sphere, cube,
cylinder) sampled with random scale, rotation and noise, saved as PLY and NPY; one-second
clips of three sound classes (low tones, high tones, noise) as WAV and FLAC.
"""

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


SOLIDS = ("sphere", "cube", "cylinder")


def _solid_points(solid: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` points on the surface of a unit solid."""
    if solid == "sphere":
        points = rng.normal(size=(count, 3))
        return points / np.linalg.norm(points, axis=1, keepdims=True)
    if solid == "cube":
        points = rng.uniform(-1, 1, size=(count, 3))
        face = rng.integers(0, 3, size=count)
        points[np.arange(count), face] = rng.choice([-1.0, 1.0], size=count)
        return points
    angle = rng.uniform(0, 2 * np.pi, size=count)
    height = rng.uniform(-1, 1, size=count)
    return np.stack([np.cos(angle), np.sin(angle), height], axis=1)


def make_demo_points(folder: str | os.PathLike, per_class: int = 20, seed: int = 0,
                     count: int = 2048) -> Path:
    """Write ``per_class`` clouds of each solid under ``folder/<solid>/`` (PLY and NPY)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for solid in SOLIDS:
        (folder / solid).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            points = _solid_points(solid, count, rng) * rng.uniform(0.5, 2.0, size=3)
            rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            points = points @ rotation.T + rng.normal(scale=0.01, size=points.shape)
            points = points.astype(np.float32)
            if i % 2:
                np.save(folder / solid / f"{i:03d}.npy", points)
            else:
                _write_ascii_ply(folder / solid / f"{i:03d}.ply", points)
    return folder


def _write_ascii_ply(path: Path, points: np.ndarray) -> None:
    header = (f"ply\nformat ascii 1.0\nelement vertex {len(points)}\nproperty float x\n"
              "property float y\nproperty float z\nend_header\n")
    body = "\n".join(f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in points)
    path.write_text(header + body + "\n")


SOUNDS = ("low", "high", "noise")


def make_demo_audio(folder: str | os.PathLike, per_class: int = 20, seed: int = 0,
                    rate: int = 16000) -> Path:
    """Write ``per_class`` one-second clips of each sound class (WAV and FLAC): low tones
    (150-400 Hz), high tones (2-4 kHz) and white noise, at random levels."""
    import soundfile

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    time = np.arange(rate) / rate
    for sound in SOUNDS:
        (folder / sound).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            level = rng.uniform(0.05, 0.5)
            if sound == "noise":
                clip = rng.normal(scale=level / 2, size=rate)
            else:
                low, high = (150, 400) if sound == "low" else (2000, 4000)
                clip = level * np.sin(2 * np.pi * rng.uniform(low, high) * time)
            extension = ".wav" if i % 2 else ".flac"
            soundfile.write(folder / sound / f"{i:03d}{extension}", clip.astype(np.float32), rate)
    return folder


DEMO_MODALITIES = {
    "image": (make_demo_images, {}),
    "points": (make_demo_points, {}),
    "audio": (make_demo_audio, {}),
}
# The tiny default encoders: random weights from a fixed seed, two blocks, width 192. The
# image family needs a timm ViT (its patch embedding is the image projector); the other
# modalities share bare Meta-Transformer-layout blocks.
DEMO_ENCODERS = {
    "image": ("vit_tiny_patch16_224", {"depth": 2}),
    "points": ("metatransformer:depth=2,width=192,heads=3", None),
    "audio": ("metatransformer:depth=2,width=192,heads=3", None),
}


TEST_SEED, TEST_PER_CLASS = 1, 10


def run_demo(workdir: str | os.PathLike, workers: int = 2, progress: bool = True) -> dict:
    """Generate each modality's demo data (a training set and a test set drawn with another
    seed), tokenize both (the training set fitting its tokenizer's statistics, the test set
    reusing the training store's config: ``config_from``), embed both with a tiny encoder, train a linear probe on the
    training features, score it on the test features, and validate every store.

    Returns ``{modality: {"tokenize", "embed": RunSummary, "head": HeadRun, "info",
    "features": dict, "problems": list[str]}}``; ``problems`` gathers the stores'
    validation problems.
    """
    from .heads.train import train_head
    from .store.inspect import store_info, validate_store

    workdir = Path(workdir)
    results = {}
    for modality, (make_data, options) in DEMO_MODALITIES.items():
        train = _tokenize_and_embed(make_data(workdir / "data" / modality), workdir, modality,
                                    options, workers, progress)
        test_data = make_data(workdir / "data" / f"{modality}-test", per_class=TEST_PER_CLASS,
                              seed=TEST_SEED)
        test = _tokenize_and_embed(test_data, workdir, f"{modality}-test", options, workers,
                                   progress, modality, config_from=train["tokens"])
        head = train_head(train["features"], workdir / f"{modality}.head", test=test["features"],
                          overwrite=True, progress=progress)
        stores = (train["tokens"], train["features"], test["tokens"], test["features"])
        results[modality] = {"tokenize": train["tokenize"], "embed": train["embed"],
                             "head": head, "info": store_info(train["tokens"]),
                             "features": store_info(train["features"]),
                             "problems": [p for store in stores
                                          for p in validate_store(store).problems]}
    return results


def _tokenize_and_embed(data: Path, workdir: Path, name: str, options: dict, workers: int,
                        progress: bool, modality: str | None = None,
                        config_from: Path | None = None) -> dict:
    """Tokenize and embed ``data``: a training set fits the statistics its tokenizer fits
    (audio: fbank mean/std), a test set reuses the training store's config (``config_from``)
    so that nothing about it is fitted on test data."""
    from .embedding.pipeline import embed
    from .modalities import create_tokenizer
    from .modalities.base import fits_statistics
    from .pipeline import tokenize

    modality = modality or name
    tokens, features = workdir / f"{name}.zarr", workdir / f"{name}.features.zarr"
    if config_from is None:
        fit = fits_statistics(create_tokenizer(modality, **options))
        summary = tokenize(data, tokens, modality, workers=workers, shard_size=16,
                           progress=progress, stats_from_data=fit, **options)
    else:
        summary = tokenize(data, tokens, workers=workers, progress=progress,
                           config_from=config_from)
    encoder, encoder_options = DEMO_ENCODERS[modality]
    embedded = embed(tokens, features, encoder, encoder_options=encoder_options,
                     pool_how="cls+mean+max", progress=progress)
    return {"tokens": tokens, "features": features, "tokenize": summary, "embed": embedded}
