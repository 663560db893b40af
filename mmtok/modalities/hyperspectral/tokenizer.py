"""The ``hyperspectral`` modality: labelled pixels of a cube -> SpectralFormer band tokens.

Samples: with ``tokenize CUBE --label-map MAP`` one sample per labelled pixel of the cube
(label 0 = unlabelled, skipped), ids ``CUBE#r=ROW,c=COL`` in row-major order, label = the
map's value - 1, class names ``1`` .. the map's largest value. Without a label map, every
file is one sample: its centre pixel (a folder of small patch files, class = sub-folder).

Tokens (SpectralFormer, Hong et al. 2021; Meta-Transformer's hyperspectral branch): one
token per kept band. Band ``j``'s token holds the ``patch x patch`` neighbourhood of the
pixel (row-major; mirror padding at the borders, SpectralFormer's ``mirror_hsi``, i.e.
``numpy.pad(mode="symmetric")``) in band ``j`` and, with ``band_group = g``, in its ``g - 1``
neighbouring bands (``j - g//2 .. j + g//2``, circular at the ends, in that order:
SpectralFormer's ``gain_neighborhood_band``), so a token has ``g * patch * patch`` values.
``patch=1, band_group=1`` (Meta-Transformer's default) gives one scalar per band.

Bands: ``drop_bands`` removes 1-based band numbers (``104-108,150-163,220`` turns Indian
Pines' 220 bands into the usual 200); ``bands`` is the number left, fixed by the config
(fitted by ``--stats-from-data``). Scaling per kept band, ``(x - band_offset) /
band_scale``: ``scale=minmax`` (offset min, scale max - min, SpectralFormer's) or
``standard`` (mean, std), fitted with ``--stats-from-data`` on the training pixels only (the
labelled pixels of the train map; the reference fits on the whole image, test pixels
included) and reused unchanged with ``--config-from``; ``scale=none`` keeps raw values.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ...errors import SampleError, UsageError
from ...store.layout import ArraySpec
from ..base import PartsBatch, Tokenizer
from .readers import CUBE_EXTENSIONS, Cube, open_cube, read_label_map

PART = re.compile(r"r=(\d+),c=(\d+)")
BLOCK_BYTES = 64 << 20  # rows read at once stay under this
TOKEN_BLOCK_BYTES = 8 << 20  # a block's pixels' tokens stay under this (cache-friendly steps)
SCALES = ("none", "minmax", "standard")
GATHER_CHUNK = 16  # pixels gathered and grouped at a time


def parse_bands(text: str) -> tuple[int, ...]:
    """``"104-108,150-163,220"`` -> the sorted 1-based band numbers."""
    bands: set[int] = set()
    for piece in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", piece)
        if match is None:
            raise UsageError(f"drop_bands {text!r}: {piece!r} is not N or N-M (1-based band "
                             "numbers)")
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if lo < 1 or hi < lo:
            raise UsageError(f"drop_bands {text!r}: {piece!r} is not a range of band numbers "
                             ">= 1")
        bands.update(range(lo, hi + 1))
    return tuple(sorted(bands))


@dataclass(frozen=True)
class HyperspectralConfig:
    modality: str = "hyperspectral"
    patch: int = 1  # odd: the pixel's patch x patch neighbourhood per band
    band_group: int = 1  # odd: neighbouring bands per token (SpectralFormer's band_patches)
    bands: int = 200  # bands after drop_bands (the token count); fitted by --stats-from-data
    drop_bands: str = ""  # 1-based band numbers to remove, e.g. "104-108,150-163,220"
    scale: str = "none"  # "none", "minmax" or "standard" (fitted per band)
    band_offset: tuple[float, ...] = ()
    band_scale: tuple[float, ...] = ()
    variable: str = ""  # the .mat variable holding the cube (default: the only 3-D array)

    def __post_init__(self) -> None:
        problems = []
        for name in ("patch", "band_group"):
            value = getattr(self, name)
            if value < 1 or value % 2 == 0:
                problems.append(f"{name} must be a positive odd number, not {value}")
        if self.bands < 1:
            problems.append(f"bands must be at least 1, not {self.bands}")
        if self.band_group > self.bands:
            problems.append(f"band_group {self.band_group} is more than bands {self.bands}")
        if self.scale not in SCALES:
            problems.append(f"scale must be one of {', '.join(SCALES)}, not {self.scale!r}")
        elif self.scale != "none" and self.fitted:
            if len(self.band_offset) != self.bands or len(self.band_scale) != self.bands:
                problems.append(f"scale={self.scale} needs {self.bands} band_offset and "
                                f"band_scale values, not {len(self.band_offset)} and "
                                f"{len(self.band_scale)}")
            elif not all(math.isfinite(v) for v in self.band_offset) or not all(
                    v > 0 and math.isfinite(v) for v in self.band_scale):
                problems.append("band_offset must be finite and band_scale positive")
        if problems:
            raise UsageError("; ".join(problems))
        parse_bands(self.drop_bands)

    @property
    def fitted(self) -> bool:
        return bool(self.band_offset or self.band_scale)

    @property
    def token_width(self) -> int:
        return self.band_group * self.patch * self.patch


def reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Mirror (``numpy.pad`` ``symmetric``) indices into ``0..size-1``, any distance out."""
    index = np.mod(index, 2 * size)
    return np.where(index >= size, 2 * size - 1 - index, index)


def part_name(row: int, col: int) -> str:
    return f"r={row},c={col}"


class HyperspectralTokenizer(Tokenizer):
    extensions = CUBE_EXTENSIONS
    takes_label_map = True

    def __init__(self, config: HyperspectralConfig) -> None:
        self.config = config
        self.dropped = parse_bands(config.drop_bands)

    def sample_arrays(self) -> dict[str, ArraySpec]:
        c = self.config
        if c.scale != "none" and not c.fitted:  # refused before any store is made
            raise UsageError(f"scale={c.scale} needs per-band statistics: fit them on the "
                             "training pixels with --stats-from-data (then tokenize test "
                             "data with --config-from the training store)")
        return {"tokens": ArraySpec((c.bands, c.token_width), "float32"),
                "position": ArraySpec((2,), "int32")}

    # --- samples ---------------------------------------------------------------------------

    def is_companion(self, path: str) -> bool:
        return self.label_map is not None and os.path.abspath(path) == self.label_map

    def list_parts(self, path: str):  # type: ignore[override]
        """With a label map: ``(r=R,c=C, label - 1)`` of every labelled pixel, row-major;
        reads the cube's header (its shape) and the map, never the cube's values."""
        if self.label_map is None:
            return None
        labels = read_label_map(self.label_map)
        with open_cube(path, self.config.variable) as cube:
            shape = cube.shape
        if labels.shape != shape[:2]:
            raise SampleError("size_mismatch", f"the cube is {shape[0]} x {shape[1]} pixels, "
                              f"the label map {os.path.basename(self.label_map)} "
                              f"{labels.shape[0]} x {labels.shape[1]}")
        rows, cols = np.nonzero(labels)
        return [(part_name(r, c), int(v) - 1)
                for r, c, v in zip(rows.tolist(), cols.tolist(), labels[rows, cols].tolist())]

    def part_class_names(self, path: str):  # type: ignore[override]
        if self.label_map is None:
            return None
        top = int(read_label_map(self.label_map).max())
        return [str(v) for v in range(1, top + 1)]

    # --- tokenize --------------------------------------------------------------------------

    def tokenize_parts(self, path: str, parts: Sequence[str | None]) -> PartsBatch:
        """Every pixel of the run from one open cube, gathered in blocks of rows (one
        vectorised gather per block) straight into the run's one token array: a run of
        a whole shard costs one shard of tokens, which ``work_shard`` then writes as is."""
        c = self.config
        with open_cube(path, self.config.variable) as cube:
            kept = self.kept_bands(cube.shape[2])
            pixels = np.array([self.pixel(cube.shape, p) for p in parts], dtype=np.int64)
            tokens = np.empty((len(pixels), c.bands, c.token_width), np.float32)
            errors: dict[int, SampleError] = {}
            for block in self.blocks(pixels, cube.shape):
                errors.update(self.tokenize_block(cube, pixels[block], kept, tokens[block],
                                                  block.start))
        for row in errors:  # a failed pixel's row holds zeros, as the store writes it
            tokens[row] = 0
        return PartsBatch({"tokens": tokens, "position": pixels.astype(np.int32)}, errors,
                          len(pixels))

    def pixel(self, shape: tuple[int, int, int], part: str | None) -> tuple[int, int]:
        if part is None:  # a patch file: its centre pixel
            return shape[0] // 2, shape[1] // 2
        match = PART.fullmatch(part)
        if match is None:
            raise UsageError(f"hyperspectral part {part!r} is not a pixel name r=ROW,c=COL")
        return int(match.group(1)), int(match.group(2))

    def kept_bands(self, total: int) -> np.ndarray:
        c = self.config
        if self.dropped and self.dropped[-1] > total:
            raise SampleError("band_mismatch", f"drop_bands names band {self.dropped[-1]}, "
                              f"but the cube has {total} bands")
        kept = np.setdiff1d(np.arange(total), np.array(self.dropped, dtype=np.int64) - 1)
        if len(kept) != c.bands:
            raise SampleError("band_mismatch", f"the cube has {total} bands, {len(kept)} "
                              f"after drop_bands, but the config has bands={c.bands}; set "
                              f"--set bands={len(kept)} (or fit it with --stats-from-data)")
        return kept

    def blocks(self, pixels: np.ndarray, shape: tuple[int, int, int]) -> Iterator[slice]:
        """Consecutive runs of pixels whose rows (with the neighbourhood) and gathered
        values each stay under BLOCK_BYTES."""
        h, w, b = shape
        half = self.config.patch // 2
        per_pixel = max(self.config.patch ** 2 * b * 4,
                        self.config.bands * self.config.token_width * 4)
        start = 0
        while start < len(pixels):
            stop, lo, hi = start, None, None
            while stop < len(pixels):
                r = pixels[stop, 0]
                new_lo = r - half if lo is None else min(lo, r - half)
                new_hi = r + half if hi is None else max(hi, r + half)
                rows = min(h, new_hi + 1) - max(0, new_lo)
                if stop > start and (rows * w * b * 4 > BLOCK_BYTES
                                     or (stop - start + 1) * per_pixel > TOKEN_BLOCK_BYTES):
                    break
                lo, hi, stop = new_lo, new_hi, stop + 1
            yield slice(start, stop)
            start = stop

    def tokenize_block(self, cube: Cube, pixels: np.ndarray, kept: np.ndarray,
                       out: np.ndarray, first: int) -> dict[int, SampleError]:
        """Tokens of ``pixels`` into ``out`` (one row each); the errors of those that
        failed, keyed by their position in the run (``first`` + their row here)."""
        h, w, _ = cube.shape
        errors: dict[int, SampleError] = {}
        inside = (pixels[:, 0] < h) & (pixels[:, 1] < w)
        for i in np.flatnonzero(~inside):
            errors[first + int(i)] = SampleError(
                "bad_pixel", f"pixel ({pixels[i, 0]}, {pixels[i, 1]}) is outside the "
                f"{h} x {w} cube")
        good = np.flatnonzero(inside)
        if len(good) == len(pixels):
            finite = self.gather(cube, pixels, kept, out)
        elif len(good):  # the few pixels outside the cube: gathered apart, then placed
            tokens = np.empty((len(good), *out.shape[1:]), out.dtype)
            finite = self.gather(cube, pixels[good], kept, tokens)
            out[good] = tokens
        else:
            finite = np.ones(0, bool)
        for i in good[~finite]:
            errors[first + int(i)] = SampleError("nan_pixel", "the pixel's neighbourhood "
                                                 "holds NaN or infinite values")
        return errors

    def gather(self, cube: Cube, pixels: np.ndarray, kept: np.ndarray, out: np.ndarray
               ) -> np.ndarray:
        """The (P, bands, g * p * p) float32 tokens of ``pixels`` (all inside the cube)
        into ``out``; returns whether each pixel's neighbourhood is finite."""
        c = self.config
        h, w, _ = cube.shape
        half, g = c.patch // 2, c.band_group // 2
        offsets = np.arange(-half, half + 1)
        rows = reflect(pixels[:, 0, None] + offsets, h)  # (P, p)
        cols = reflect(pixels[:, 1, None] + offsets, w)
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        block = cube.rows(r0, r1)
        if len(kept) != block.shape[2]:
            block = block[:, :, kept]
        flat = block.reshape(-1, c.bands)  # (rows * W, bands): one row per pixel position
        where = ((rows - r0)[:, :, None] * w + cols[:, None, :]).reshape(len(pixels), -1)
        pp = c.patch * c.patch
        finite = np.empty(len(pixels), bool)
        offset = np.asarray(c.band_offset, np.float32) if c.scale != "none" else None
        scale = np.asarray(c.band_scale, np.float32) if c.scale != "none" else None
        # in chunks of pixels whose values stay in cache (memory traffic, not arithmetic,
        # is the cost: 3-5x faster than one gather over the whole block)
        for start in range(0, len(pixels), GATHER_CHUNK):
            values = flat[where[start:start + GATHER_CHUNK]]  # (n, p*p, bands): spectra
            finite[start:start + GATHER_CHUNK] = np.isfinite(values).all(axis=(1, 2))
            if offset is not None:
                values -= offset
                values /= scale
            spectra = np.ascontiguousarray(values.transpose(0, 2, 1))  # (n, bands, p*p)
            target = out[start:start + GATHER_CHUNK]
            for i, d in enumerate(range(-g, g + 1)):  # band j takes band (j + d) mod bands
                cells = slice(i * pp, (i + 1) * pp)
                shift = d % c.bands
                target[:, :c.bands - shift, cells] = spectra[:, shift:]
                target[:, c.bands - shift:, cells] = spectra[:, :shift]
        return finite

    # --- fitted: per-band scaling on the training pixels only ----------------------------

    def statistics_from(self, paths: list[str]) -> dict:
        """``bands``, ``band_offset`` and ``band_scale`` over the training pixels only: the
        labelled pixels of the label map (or each patch file's centre pixel); pixels with
        NaN or infinite values are left out. ``scale=none`` fits min-max."""
        method = "minmax" if self.config.scale == "none" else self.config.scale
        lo = hi = total = squares = None
        count = 0
        bands = None
        for path in paths:
            parts = self.list_parts(path)
            names = [None] if parts is None else [name for name, _ in parts]
            if not names:
                continue
            with open_cube(path, self.config.variable) as cube:
                kept = np.setdiff1d(np.arange(cube.shape[2]),
                                    np.array(self.dropped, dtype=np.int64) - 1)
                if bands is not None and len(kept) != bands:
                    raise UsageError(f"{path}: {len(kept)} bands after drop_bands, other "
                                     f"training cubes have {bands}")
                bands = len(kept)
                pixels = np.array([self.pixel(cube.shape, p) for p in names], dtype=np.int64)
                for block in self.blocks(pixels, cube.shape):
                    chosen = pixels[block]
                    r0, r1 = int(chosen[:, 0].min()), int(chosen[:, 0].max()) + 1
                    values = cube.rows(r0, r1)[chosen[:, 0] - r0, chosen[:, 1]][:, kept]
                    values = values[np.isfinite(values).all(axis=1)].astype(np.float64)
                    if not len(values):
                        continue
                    count += len(values)
                    if lo is None:
                        lo, hi = values.min(axis=0), values.max(axis=0)
                        total, squares = values.sum(axis=0), np.square(values).sum(axis=0)
                    else:
                        lo, hi = np.minimum(lo, values.min(axis=0)), np.maximum(hi, values.max(axis=0))
                        total += values.sum(axis=0)
                        squares += np.square(values).sum(axis=0)
        if count == 0:
            raise UsageError("no readable training pixel to fit the band scaling on (is the "
                             "label map empty?)")
        if method == "minmax":
            offset, scale = lo, hi - lo
        else:
            offset = total / count
            scale = np.sqrt(np.maximum(squares / count - offset ** 2, 0.0))
        flat = np.flatnonzero(~(scale > 0))
        if len(flat):
            numbers = np.setdiff1d(np.arange(1, 100_000), self.dropped)[flat] if self.dropped \
                else flat + 1
            raise UsageError(f"band(s) {', '.join(map(str, numbers[:10].tolist()))} are "
                             "constant on the training pixels (saturated or dead); drop them "
                             "with --set drop_bands=...")
        return {"bands": int(bands), "scale": method,
                "band_offset": tuple(float(v) for v in offset),
                "band_scale": tuple(float(v) for v in scale)}
