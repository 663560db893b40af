"""Feature stores the head tests make: Gaussian classes written through mmtok's own store
writer, so they are real feature stores (markers, checksums) without running an encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmtok.store.layout import ArraySpec, shard_bounds
from mmtok.store.writer import ShardData, ShardWriter, StoreSpec, prepare_store

ENCODER_CONFIG = {
    "encoder": "test-encoder", "encoder_options": {}, "weights_sha256": "0" * 64,
    "width": None, "projector": {"kind": "test", "source": "random(seed=0)"}, "pool": "cls",
    "tokens_config_hash": "t" * 16,
}


def gaussian_classes(num_samples: int, dim: int, num_classes: int, separation: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points around class centres drawn once from ``seed``; labels drawn uniformly."""
    centres = np.random.default_rng(1234).normal(size=(num_classes, dim)) * separation
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, num_samples)
    features = centres[labels] + rng.normal(size=(num_samples, dim))
    return features.astype(np.float32), labels


def write_feature_store(path: Path, features: np.ndarray, labels: np.ndarray,
                        class_names: list[str] | None = None, *,
                        valid: np.ndarray | None = None, shard_size: int = 256,
                        ids: list[str] | None = None, extra: dict[str, np.ndarray] | None = None,
                        **config_changes) -> Path:
    """A complete feature store holding ``features`` (N, D) or (N, L, D) and ``labels``
    (N,); ``ids`` default to ``sample-00000``...; ``extra`` adds per-sample arrays (e.g.
    ``token_mask``)."""
    num = len(features)
    valid = np.ones(num, bool) if valid is None else valid
    if class_names is None:
        class_names = [f"class{i}" for i in range(int(labels.max()) + 1)]
    config = {**ENCODER_CONFIG, "width": int(features.shape[-1]), **config_changes}
    spec = StoreSpec(kind="features", modality="test", config=config,
                     arrays={"features": ArraySpec(features.shape[1:], "float32"),
                             **{name: ArraySpec(values.shape[1:], str(values.dtype))
                                for name, values in (extra or {}).items()}},
                     static_arrays={}, num_samples=num, shard_size=shard_size,
                     class_names=class_names, source={"root": str(path)}, source_hash="s")
    prepare_store(path, spec, overwrite=True)
    writer = ShardWriter(path)
    for shard in range(spec.num_shards):
        start, stop = shard_bounds(shard, num, shard_size)
        shard_ids = ([f"sample-{i:05d}" for i in range(start, stop)] if ids is None
                     else list(ids[start:stop]))
        arrays = {"features": features[start:stop],
                  **{name: values[start:stop] for name, values in (extra or {}).items()}}
        writer.write(shard, ShardData(arrays,
                                      labels[start:stop].astype(np.int32), valid[start:stop],
                                      shard_ids, []))
    return path
