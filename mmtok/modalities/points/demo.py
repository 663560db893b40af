"""Demo data for points: clouds of three solids (sphere, cube, cylinder) sampled with random
scale, rotation and noise, saved as PLY and NPY. Same seed, same files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

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
