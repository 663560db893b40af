"""Hyperspectral cubes and label maps written by the tests with real writers (numpy, scipy.io,
h5py, tifffile, Pillow, and ENVI headers by hand), and SpectralFormer's own gather as the
reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ENVI_CODES = {"uint8": 1, "int16": 2, "int32": 3, "float32": 4, "float64": 5, "uint16": 12,
              "uint32": 13, "int64": 14, "uint64": 15}


def write_envi(path_hdr: Path, cube: np.ndarray, interleave: str = "bsq", big: bool = False,
               offset: int = 0, data_suffix: str = ".img", extra: str = "") -> Path:
    """``cube`` (H, W, B) as an ENVI header + raw binary in ``interleave`` order."""
    h, w, b = cube.shape
    order = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    stored = np.ascontiguousarray(cube.transpose(order))
    dtype = stored.dtype.newbyteorder(">" if big else "<")
    data = Path(str(path_hdr)[:-4] + data_suffix)
    data.write_bytes(b"\0" * offset + stored.astype(dtype).tobytes())
    path_hdr.write_text(
        "ENVI\ndescription = {a test cube,\n  written by hand}\n"
        f"samples = {w}\nlines = {h}\nbands = {b}\nheader offset = {offset}\n"
        f"file type = ENVI Standard\ndata type = {ENVI_CODES[cube.dtype.name]}\n"
        f"interleave = {interleave}\nbyte order = {int(big)}\n"
        "band names = {b1, b2,\n b3}\n" + extra)
    return path_hdr


def write_mat73(path: Path, name: str, array: np.ndarray) -> Path:
    """A MATLAB v7.3 file (HDF5 with the 512-byte user block MATLAB writes): MATLAB's
    column-major (H, W, B) array is stored as (B, W, H)."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(name, data=array.T)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, written by the tests".ljust(116))
    return path


def mirror_hsi(cube: np.ndarray, patch: int) -> np.ndarray:
    """SpectralFormer's ``mirror_hsi`` (demo.py), loop for loop."""
    height, width, band = cube.shape
    padding = patch // 2
    out = np.zeros((height + 2 * padding, width + 2 * padding, band), dtype=float)
    out[padding:padding + height, padding:padding + width, :] = cube
    for i in range(padding):
        out[padding:height + padding, i, :] = cube[:, padding - i - 1, :]
    for i in range(padding):
        out[padding:height + padding, width + padding + i, :] = cube[:, width - 1 - i, :]
    for i in range(padding):
        out[i, :, :] = out[padding * 2 - i - 1, :, :]
    for i in range(padding):
        out[height + padding + i, :, :] = out[height + padding - 1 - i, :, :]
    return out


def spectralformer_tokens(cube: np.ndarray, pixels: np.ndarray, patch: int,
                          band_patch: int) -> np.ndarray:
    """SpectralFormer's ``gain_neighborhood_pixel`` + ``gain_neighborhood_band`` (g = 1 or
    3, where its two loops agree with any offset order) per pixel: (N, B, g * p * p)."""
    mirror = mirror_hsi(cube, patch)
    band = cube.shape[2]
    x = np.stack([mirror[r:r + patch, c:c + patch, :] for r, c in pixels])  # per-pixel loop
    nn = band_patch // 2
    pp = patch * patch
    flat = x.reshape(len(pixels), pp, band)
    out = np.zeros((len(pixels), pp * band_patch, band))
    out[:, nn * pp:(nn + 1) * pp, :] = flat
    for i in range(nn):  # left: band j takes band j - 1 - i (circular)
        out[:, i * pp:(i + 1) * pp, :i + 1] = flat[:, :, band - i - 1:]
        out[:, i * pp:(i + 1) * pp, i + 1:] = flat[:, :, :band - i - 1]
    for i in range(nn):  # right: band j takes band j + 1 + i
        out[:, (nn + i + 1) * pp:(nn + i + 2) * pp, :band - i - 1] = flat[:, :, i + 1:]
        out[:, (nn + i + 1) * pp:(nn + i + 2) * pp, band - i - 1:] = flat[:, :, :i + 1]
    return out.transpose(0, 2, 1)
