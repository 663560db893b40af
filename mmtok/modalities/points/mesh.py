"""Meshes -> points sampled on the surface.

OFF files are parsed here: ModelNet40 ships many with the malformed first line ``OFF490 518 0``
(counts glued to the keyword), which general readers reject. OBJ and STL go through Open3D.
Sampling is area-weighted and seeded (numpy's PCG64 with the config's seed), so the same
mesh always gives the same points: pick triangles with probability proportional to their
area, then a uniform point in each with the square-root barycentric rule.
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import SampleError
from .cloud import Cloud, open3d_quiet


def _off_tokens(path: str) -> list[str]:
    with open(path, "rb") as handle:
        text = handle.read().decode("ascii", errors="replace")
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    tokens = " ".join(lines).split()
    if not tokens or not tokens[0].startswith("OFF"):
        raise SampleError("decode_error", "not an OFF file (no OFF keyword)")
    if tokens[0] != "OFF":  # "OFF490 518 0": counts glued to the keyword
        tokens = ["OFF", tokens[0][3:], *tokens[1:]]
    return tokens


def read_off(path: str) -> tuple[np.ndarray, np.ndarray]:
    tokens = _off_tokens(path)
    try:
        n_vertices, n_faces = int(tokens[1]), int(tokens[2])
        start = 4
        if len(tokens) < start + 3 * n_vertices + n_faces:  # each face needs its count at least
            raise IndexError(f"the header declares {n_vertices} vertices and {n_faces} faces, "
                             f"the file holds {len(tokens) - start} numbers")
        vertices = np.array(tokens[start:start + 3 * n_vertices], dtype=np.float64)
        vertices = vertices.reshape(n_vertices, 3)
        position = start + 3 * n_vertices
        triangles = []
        for _ in range(n_faces):
            count = int(tokens[position])
            corners = [int(t) for t in tokens[position + 1:position + 1 + count]]
            position += 1 + count
            triangles.extend((corners[0], corners[i], corners[i + 1]) for i in range(1, count - 1))
    except (IndexError, ValueError) as exc:
        raise SampleError("truncated" if isinstance(exc, IndexError) else "decode_error",
                          f"malformed OFF file: {exc}") from None
    faces = np.array(triangles, dtype=np.int64).reshape(-1, 3)
    if len(faces) and (faces.min() < 0 or faces.max() >= n_vertices):
        raise SampleError("decode_error", "a face refers to a vertex that does not exist")
    return vertices.astype(np.float32), faces


def read_mesh(path: str) -> tuple[np.ndarray, np.ndarray]:
    if os.path.splitext(path)[1].lower() == ".off":
        vertices, faces = read_off(path)
    else:
        mesh = open3d_quiet().io.read_triangle_mesh(path)
        vertices = np.asarray(mesh.vertices, dtype=np.float32)
        faces = np.asarray(mesh.triangles, dtype=np.int64)
    if len(vertices) == 0:
        raise SampleError("empty_cloud", "the mesh has no vertices (or could not be read)")
    return vertices, faces


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int) -> Cloud:
    """``count`` points on the surface, area-weighted; a mesh without area yields its vertices."""
    if not np.isfinite(vertices).all():
        raise SampleError("nan_points", "the mesh has NaN or infinite vertex coordinates")
    if len(faces) == 0:
        return Cloud(vertices)
    a, b, c = (vertices[faces[:, i]].astype(np.float64) for i in range(3))
    cross = np.cross(b - a, c - a)
    areas = 0.5 * np.linalg.norm(cross, axis=1)
    total = areas.sum()
    if not total > 0:
        return Cloud(vertices)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(faces), size=count, p=areas / total)
    r1 = np.sqrt(rng.random(count))[:, None]
    r2 = rng.random(count)[:, None]
    points = (1 - r1) * a[chosen] + r1 * (1 - r2) * b[chosen] + r1 * r2 * c[chosen]
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = cross[chosen] / np.linalg.norm(cross[chosen], axis=1, keepdims=True)
    return Cloud(points.astype(np.float32), np.nan_to_num(normals).astype(np.float32))
