"""Real point-cloud and mesh files, written with Open3D, h5py and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def random_cloud(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def write_ply(path: Path, xyz: np.ndarray, normals=None, colors=None, ascii=True) -> None:
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    if normals is not None:
        cloud.normals = o3d.utility.Vector3dVector(normals.astype(np.float64))
    if colors is not None:
        cloud.colors = o3d.utility.Vector3dVector(colors.astype(np.float64))
    assert o3d.io.write_point_cloud(str(path), cloud, write_ascii=ascii)


def cube_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A unit cube centred at the origin: 8 vertices, 12 triangles."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)],
                 dtype=np.float64)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    return v, np.array(faces)


def write_off(path: Path, glued_header: bool = False, quads: bool = False) -> None:
    vertices, faces = cube_mesh()
    header = f"OFF{len(vertices)} {6 if quads else len(faces)} 0\n" if glued_header else \
        f"OFF\n# a comment\n{len(vertices)} {6 if quads else len(faces)} 0\n"
    lines = [header] + [" ".join(f"{c:g}" for c in v) + "\n" for v in vertices]
    if quads:
        for a, b, c, d in [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4),
                           (1, 5, 7, 3)]:
            lines.append(f"4 {a} {b} {c} {d}\n")
    else:
        lines += [f"3 {a} {b} {c}\n" for a, b, c in faces]
    path.write_text("".join(lines))


def write_o3d_mesh(path: Path) -> None:
    import open3d as o3d

    vertices, faces = cube_mesh()
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(faces))
    mesh.compute_triangle_normals()
    mesh.compute_vertex_normals()
    assert o3d.io.write_triangle_mesh(str(path), mesh)


def write_modelnet_h5(path: Path, clouds: np.ndarray, labels: list[int]) -> None:
    import h5py

    with h5py.File(path, "w") as handle:
        handle["data"] = clouds.astype(np.float32)
        handle["label"] = np.array(labels, dtype=np.uint8).reshape(-1, 1)
