"""Conformance of hyperspectral patch files (one sample per file: its centre pixel, 12
bands, 3 x 3 neighbourhoods, band groups of 3), from NPY, ENVI, MAT and TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from cubefiles import write_envi
from hostilefiles import cut

from .base import Malformed, TokenizerConformance

BANDS = 12


def patch(label: int, index: int, side: int = 5) -> np.ndarray:
    """A 5 x 5 x 12 patch: a dim rising spectrum for class 0, a bright falling one for 1."""
    rng = np.random.default_rng(index)
    spectrum = np.linspace(0.2, 1.0, BANDS)
    spectrum = spectrum if label == 0 else 2.5 - spectrum
    return (spectrum + 0.05 * rng.normal(size=(side, side, BANDS))).astype(np.float32)


class TestHyperspectral(TokenizerConformance):
    modality = "hyperspectral"
    extension = ".npy"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        values = patch(label, index)
        kind = index % 4
        if kind == 0:
            path = folder / f"{stem}.npy"
            np.save(path, values)
        elif kind == 1:
            path = write_envi(folder / f"{stem}.hdr", values, ("bsq", "bil", "bip")[index % 3])
        elif kind == 2:
            path = folder / f"{stem}.mat"
            scipy.io.savemat(path, {"patch": values})
        else:
            import tifffile

            path = folder / f"{stem}.tif"
            tifffile.imwrite(path, values, photometric="minisblack", planarconfig="contig")
        return path

    def sample_ids(self, name: str) -> list[str]:
        return [] if name.endswith(".img") else [name]  # an ENVI header's raw data

    def malformed_inputs(self) -> dict[str, Malformed]:
        values = patch(0, 0)
        nan = values.copy()
        nan[2, 2, 3] = np.nan

        def short_envi(path: Path) -> None:  # the header promises more than the file holds
            hdr = write_envi(path.with_suffix(".hdr"), values)
            raw = hdr.with_suffix(".img")
            raw.write_bytes(raw.read_bytes()[:100])

        def absurd_envi(path: Path) -> None:  # 10^5 x 10^5 x 10^3 declared over 4 KB
            hdr = write_envi(path.with_suffix(".hdr"), values)
            hdr.write_text(hdr.read_text().replace("samples = 5", "samples = 100000")
                           .replace("lines = 5", "lines = 100000")
                           .replace("bands = 12", "bands = 1000"))

        return {
            "cut.npy": Malformed(cut(lambda p: np.save(p, values), 0.5), "decode_error",
                                 "truncated"),
            "short.hdr": Malformed(short_envi, "bad_header", "truncated"),
            "nan.npy": Malformed(lambda p: np.save(p, nan), "nan_pixel", "nonfinite"),
            "absurd.hdr": Malformed(absurd_envi, "bad_header", "absurd_size"),
            "flat.npy": Malformed(lambda p: np.save(p, values[:, :, 0]), "bad_shape",
                                  "absurd_size"),
            "bands.npy": Malformed(lambda p: np.save(p, values[:, :, :7]), "band_mismatch",
                                   "bands"),
        }
