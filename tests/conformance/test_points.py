"""Conformance of point clouds (64 points, 8 groups of 8), from NPY, XYZ, PCD and ModelNet
HDF5 (two samples in one file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hostilefiles import cut, hdf5_bomb, npy, npy_header_bomb, pcd_header_bomb, write_pcd
from pointfiles import random_cloud, write_modelnet_h5

from .base import Malformed, TokenizerConformance


def cloud(label: int, index: int, n: int = 150) -> np.ndarray:
    """Class 0 a round blob, class 1 a flat disc."""
    xyz = random_cloud(n, seed=index)
    if label:
        xyz[:, 2] *= 0.05
    return xyz


class TestPoints(TokenizerConformance):
    modality = "points"
    extension = ".npy"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        xyz = cloud(label, index)
        kind = index % 4
        if kind == 0:
            path = folder / f"{stem}.npy"
            np.save(path, xyz)
        elif kind == 1:
            path = folder / f"{stem}.xyz"
            np.savetxt(path, xyz, fmt="%.6f")
        elif kind == 2:
            path = folder / f"{stem}.pcd"
            write_pcd(path, xyz)
        else:  # a ModelNet-style container of two rows: samples FILE#0 and FILE#1
            path = folder / f"{stem}.h5"
            write_modelnet_h5(path, np.stack([xyz, cloud(label, index + 100)]), [label] * 2)
        return path

    def sample_ids(self, name: str) -> list[str]:
        return [f"{name}#0", f"{name}#1"] if name.endswith(".h5") else [name]

    def malformed_inputs(self) -> dict[str, Malformed]:
        xyz = cloud(0, 0)
        nan, inf = xyz.copy(), xyz.copy()
        nan[5, 1], inf[7, 2] = np.nan, np.inf
        return {
            "cut.npy": Malformed(cut(npy(xyz), 0.5), "truncated", "truncated"),
            "cut.pcd": Malformed(cut(lambda p: write_pcd(p, xyz), 0.5), "truncated",
                                 "truncated"),
            "nan.xyz": Malformed(lambda p: np.savetxt(p, nan), "nan_points", "nonfinite"),
            "inf.npy": Malformed(npy(inf), "nan_points", "nonfinite"),
            "header_bomb.npy": Malformed(npy_header_bomb, "truncated", "absurd_size"),
            "header_bomb.pcd": Malformed(pcd_header_bomb, "truncated", "absurd_size"),
            "bomb.h5#0": Malformed(hdf5_bomb, "too_large", "absurd_size"),  # a 100 M-point row
        }
