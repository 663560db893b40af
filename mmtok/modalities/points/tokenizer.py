"""The ``points`` modality: Point-MAE / Point-BERT grouping, as Meta-Transformer uses it.

For one cloud: check it (finite, not empty, not degenerate), thin million-point clouds with a
seeded random subset (so the quadratic work stays bounded), normalise (centroid to the
origin, farthest point on the unit sphere; optional), bring it to ``num_points`` points
(farthest point sampling or a seeded random subset; fewer points are an error or, if asked,
padded by repeating the cloud in index order), then pick ``num_groups`` centres by farthest
point sampling from point 0 and take each centre's ``group_size`` nearest neighbours
(ordered by distance, ties by index). Tokens are the neighbourhoods minus their centre.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import NotASample, SampleError, UsageError
from ...kernels.fps import farthest_point_sample
from ...kernels.knn import knn_group
from ...store.layout import ArraySpec
from ..base import Tokenizer
from .cloud import Cloud
from .readers import (
    DEFAULT_MAX_POINTS,
    HDF5_EXTENSIONS,
    MESH_EXTENSIONS,
    POINT_EXTENSIONS,
    hdf5_rows,
    iter_hdf5_rows,
    read_cloud,
)

EXTENSIONS = POINT_EXTENSIONS + MESH_EXTENSIONS + HDF5_EXTENSIONS
CHANNELS = ("normals", "colors")
PRESETS = {
    "metatransformer": {"num_points": 1024, "num_groups": 256, "group_size": 32},
    "point-mae": {"num_points": 1024, "num_groups": 64, "group_size": 32},
    "modelnet8k": {"num_points": 8192, "num_groups": 512, "group_size": 32},
}


@dataclass(frozen=True)
class PointsConfig:
    modality: str = "points"
    preset: str = "metatransformer"
    num_points: int = 1024
    num_groups: int = 256
    group_size: int = 32
    normalize: bool = True
    reduce: str = "fps"  # clouds above num_points: "fps" or "random" (seeded)
    pad: str = "error"  # clouds below num_points: "error" or "repeat"
    prereduce: int = 16  # clouds above prereduce * num_points are thinned to that first
    channels: tuple[str, ...] = ()  # extra per-point channels carried along: normals, colors
    mesh_points: int = 8192  # points sampled on a mesh's surface before reduction
    seed: int = 0
    max_points: int = DEFAULT_MAX_POINTS

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.num_groups <= self.num_points:
            problems.append(f"num_groups {self.num_groups} must be between 1 and num_points "
                            f"{self.num_points}")
        if not 1 <= self.group_size <= self.num_points:
            problems.append(f"group_size {self.group_size} must be between 1 and num_points")
        if self.reduce not in ("fps", "random"):
            problems.append(f"reduce must be 'fps' or 'random', not {self.reduce!r}")
        if self.pad not in ("error", "repeat"):
            problems.append(f"pad must be 'error' or 'repeat', not {self.pad!r}")
        if self.prereduce < 1:
            problems.append("prereduce must be at least 1")
        unknown = sorted(set(self.channels) - set(CHANNELS))
        if unknown:
            problems.append(f"unknown channels {unknown}; choose from {list(CHANNELS)}")
        if problems:
            raise UsageError("; ".join(problems))
        channels = tuple(c for c in CHANNELS if c in self.channels)  # canonical order
        object.__setattr__(self, "channels", channels)


def check_cloud(cloud: Cloud, config: PointsConfig) -> None:
    if len(cloud) == 0:
        raise SampleError("empty_cloud", "the cloud has no points")
    if len(cloud) > config.max_points:
        raise SampleError("too_large", f"{len(cloud)} points exceeds max_points "
                          f"{config.max_points}")
    if not np.isfinite(cloud.xyz).all():
        bad = int((~np.isfinite(cloud.xyz)).any(axis=1).sum())
        raise SampleError("nan_points", f"{bad} point(s) have NaN or infinite coordinates")
    if np.ptp(cloud.xyz, axis=0).max() == 0:
        raise SampleError("degenerate_cloud", f"all {len(cloud)} points are identical")
    for name in config.channels:
        values = getattr(cloud, name)
        if values is None:
            raise SampleError("missing_channel", f"{name} were asked for but the file has none")
        if not np.isfinite(values).all():
            raise SampleError("nan_points", f"{name} contain NaN or infinite values")


def seeded_subset(count: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct indices of ``count``, sorted, the same for the same seed."""
    chosen = np.random.default_rng(seed).choice(count, size=size, replace=False)
    return np.sort(chosen)


def normalize_unit_sphere(xyz: np.ndarray) -> np.ndarray:
    """Centroid to the origin, farthest point at distance 1 (Point-MAE's pc_normalize)."""
    centred = xyz - xyz.mean(axis=0, dtype=np.float64).astype(np.float32)
    radius = np.sqrt((centred.astype(np.float64) ** 2).sum(axis=1).max())
    return (centred / np.float32(radius)).astype(np.float32)


class PointsTokenizer(Tokenizer):
    extensions = EXTENSIONS

    def __init__(self, config: PointsConfig) -> None:
        self.config = config
        self.width = 3 + 3 * len(config.channels)
        self.index_dtype = "int16" if config.num_points <= np.iinfo(np.int16).max else "int32"

    def sample_arrays(self) -> dict[str, ArraySpec]:
        c = self.config
        return {
            "tokens": ArraySpec((c.num_groups, c.group_size, self.width), "float16",
                                ("group", "neighbour", "value")),
            "centers": ArraySpec((c.num_groups, 3), "float32", ("group", "xyz")),
            "group_index": ArraySpec((c.num_groups, c.group_size), self.index_dtype,
                                     ("group", "neighbour")),
            "length": ArraySpec((), "int32"),
            "num_input_points": ArraySpec((), "int64"),
        }

    @staticmethod
    def list_parts(path: str) -> list[tuple[str, int | None]] | None:
        if os.path.splitext(path)[1].lower() in HDF5_EXTENSIONS:
            return hdf5_rows(path)
        if os.path.basename(path) == "shape_names.txt" and any(
                os.path.splitext(n)[1].lower() in HDF5_EXTENSIONS
                for n in os.listdir(os.path.dirname(path) or ".")):
            raise NotASample(path)  # ModelNet's class names (part_class_names), not an XYZ cloud
        return None

    @staticmethod
    def part_class_names(path: str) -> list[str] | None:
        """ModelNet's HDF5 release names its classes in shape_names.txt beside the files."""
        names = os.path.join(os.path.dirname(path), "shape_names.txt")
        if not os.path.isfile(names):
            return None
        with open(names, encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()]

    def prepare(self, cloud: Cloud) -> Cloud:
        """Checked, thinned, normalised cloud of exactly num_points points."""
        cloud = self.thin(cloud)
        if self.needs_fps_reduction(cloud):
            return cloud.take(farthest_point_sample(cloud.xyz, self.config.num_points))
        return self.fit_count(cloud)

    def thin(self, cloud: Cloud) -> Cloud:
        """Checked, thinned and normalised, before it is brought to num_points points (the
        CPU worker's share of the batched device path)."""
        c = self.config
        check_cloud(cloud, c)
        limit = c.prereduce * c.num_points
        if len(cloud) > limit:
            cloud = cloud.take(seeded_subset(len(cloud), limit, c.seed))
        if c.normalize:
            cloud = Cloud(normalize_unit_sphere(cloud.xyz), cloud.normals, cloud.colors)
        if len(cloud) < c.num_points and c.pad == "error":
            raise SampleError("too_few_points", f"{len(cloud)} points, fewer than num_points "
                              f"{c.num_points}; use --set pad=repeat to pad")
        return cloud

    def needs_fps_reduction(self, cloud: Cloud) -> bool:
        return len(cloud) > self.config.num_points and self.config.reduce == "fps"

    def fit_count(self, cloud: Cloud) -> Cloud:
        """A thinned cloud not reduced by FPS, brought to num_points points: a seeded random
        subset of a bigger one, a smaller one repeated in index order."""
        c = self.config
        count = len(cloud)
        if count > c.num_points:
            return cloud.take(seeded_subset(count, c.num_points, c.seed))
        if count < c.num_points:
            return cloud.take(np.arange(c.num_points) % count)
        return cloud

    def group(self, cloud: Cloud) -> dict[str, np.ndarray]:
        c = self.config
        centres = farthest_point_sample(cloud.xyz, c.num_groups)
        index, offsets = knn_group(cloud.xyz, centres, c.group_size)
        parts = [offsets] + [getattr(cloud, name)[index] for name in c.channels]
        return {
            "tokens": np.concatenate(parts, axis=-1).astype(np.float16),
            "centers": cloud.xyz[centres],
            "group_index": index.astype(self.index_dtype),
            "length": np.int32(c.num_groups),
        }

    def tokenize_file(self, path: str, part: str | None = None) -> dict[str, np.ndarray]:
        c = self.config
        return self.tokenize_cloud(read_cloud(path, part, c.mesh_points, c.seed, c.max_points))

    def tokenize_cloud(self, cloud: Cloud) -> dict[str, np.ndarray]:
        """One read cloud's arrays (``tokenize_file`` after the reader)."""
        arrays = self.group(self.prepare(cloud))
        arrays["num_input_points"] = np.int64(len(cloud))
        return arrays

    # ---- the batched device path (mmtok.devices): read and thin here, FPS + KNN there ----
    def read_parts(self, path: str, parts: Sequence[str | None]
                   ) -> list[tuple[Cloud, int] | SampleError]:
        """Each part's thinned cloud and its number of input points."""
        c = self.config
        if os.path.splitext(path)[1].lower() in HDF5_EXTENSIONS and None not in parts:
            results: dict[int, tuple[Cloud, int] | SampleError] = {}
            for row, cloud in iter_hdf5_rows(path, [int(p) for p in parts], c.max_points):
                results[row] = cloud if isinstance(cloud, SampleError) else self._thinned(cloud)
            return [results[int(p)] for p in parts]
        return [self._thinned(lambda part=part: read_cloud(path, part, c.mesh_points, c.seed,
                                                           c.max_points))
                for part in parts]

    def _thinned(self, cloud: Cloud | Callable[[], Cloud]) -> tuple[Cloud, int] | SampleError:
        """(thinned cloud, input points) of a cloud, or of the one ``cloud()`` reads; the
        SampleError either step raises."""
        try:
            cloud = cloud() if callable(cloud) else cloud
            return self.thin(cloud), len(cloud)
        except SampleError as exc:
            return exc

    def tokenize_batch(self, decoded: Sequence[tuple[Cloud, int]], device: Any
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        from .batched import fps_reduce_batch, group_batch

        c = self.config
        clouds = [cloud for cloud, _ in decoded]
        reduce = [i for i, cloud in enumerate(clouds) if self.needs_fps_reduction(cloud)]
        reduced = iter(fps_reduce_batch([clouds[i] for i in reduce], c.num_points, device))
        wanted = set(reduce)
        clouds = [next(reduced) if i in wanted else self.fit_count(cloud)
                  for i, cloud in enumerate(clouds)]
        return group_batch(clouds, [count for _, count in decoded], num_groups=c.num_groups,
                           group_size=c.group_size, channels=c.channels,
                           index_dtype=self.index_dtype, device=device)

    def tokenize_parts(self, path: str, parts: Sequence[str | None]
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        """HDF5 rows: the file is opened once and its rows read in slices
        (:func:`iter_hdf5_rows`); other files go through ``tokenize_file`` per part."""
        if os.path.splitext(path)[1].lower() not in HDF5_EXTENSIONS or None in parts:
            return super().tokenize_parts(path, parts)
        results: dict[int, dict[str, np.ndarray] | SampleError] = {}
        for row, cloud in iter_hdf5_rows(path, [int(p) for p in parts], self.config.max_points):
            if isinstance(cloud, SampleError):
                results[row] = cloud
                continue
            try:  # tokenized as it is read, so only one block of raw rows is held at a time
                results[row] = self.tokenize_cloud(cloud)
            except SampleError as exc:
                results[row] = exc
        return [results[int(p)] for p in parts]
