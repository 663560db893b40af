"""Labelled features for a head: read from feature stores, checked, split.

Only valid, labelled samples train or score a head. Every feature store records what made
its features (encoder, weights, projector, pooling, tokenizer config); stores whose records
differ cannot be mixed, and a head remembers the record it was trained on so it is never
applied to features of another encoder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..store.reader import Store, open_complete_store

# The parts of a feature store's config that decide what a feature means.
PROVENANCE_KEYS = ("encoder", "encoder_options", "weights_sha256", "width", "projector",
                   "statistics", "pool", "tokens_config_hash")


@dataclass
class FeatureSet:
    """Features of the valid, labelled samples of one store (or a part of one)."""

    features: np.ndarray            # (n, D) float32
    labels: np.ndarray              # (n,) int64
    ids: np.ndarray                 # (n,) str, the store's sample ids
    indices: np.ndarray             # (n,) int64, positions in the store
    class_names: list[str]
    provenance: dict[str, Any]
    source: str = ""
    unlabelled: int = field(default=0)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def subset(self, rows: np.ndarray) -> FeatureSet:
        return FeatureSet(self.features[rows], self.labels[rows], self.ids[rows],
                          self.indices[rows], self.class_names, self.provenance, self.source)


def provenance(config: dict[str, Any]) -> dict[str, Any]:
    """What made a store's features, from its config (see :data:`PROVENANCE_KEYS`)."""
    record = {key: config.get(key) for key in PROVENANCE_KEYS}
    record["projector"] = _projector_identity(record["projector"], config.get("weights_sha256"))
    record["statistics"] = _statistics_values(record["statistics"])
    return record


def _statistics_values(statistics: dict | None) -> dict | None:
    """The normalisation a projector applied (embed's ``statistics``): its values decide
    what a feature means, not where they came from (the encoder's, the store's, given)."""
    if statistics is None:
        return None
    return {k: v for k, v in statistics.items() if k != "source"}


def _projector_identity(projector: dict | None, weights_sha256: str | None) -> dict | None:
    """A projector is identified by bytes, never by a path: a file by its sha256; the image
    projector (the encoder's patch embedding, ``source`` = the encoder's weights) by the
    weights' sha256. Stores written before paths left the config said ``file:<path>``."""
    if projector is None:
        return None
    if "sha256" in projector:
        return {"kind": projector.get("kind"), "sha256": projector["sha256"]}
    source = projector.get("source")
    if isinstance(source, str) and source.startswith("file:") and weights_sha256:
        source = f"sha256:{weights_sha256}"
    return {"kind": projector.get("kind"), "source": source}


def provenance_differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """The provenance fields that differ, as ``key: expected -> found`` lines."""
    return [f"{key}: {expected.get(key)!r} -> {found.get(key)!r}"
            for key in PROVENANCE_KEYS if expected.get(key) != found.get(key)]


def open_feature_store(path: str | os.PathLike) -> Store:
    """A complete feature store, or an error that says which command makes one."""
    return open_complete_store(path, "features", "train-head",
                               " (or use --tune tokenizer on a token store)")


def labelled_rows(store: Store) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows, labels) of the store's valid, labelled samples, and how many valid samples
    have no label."""
    labels = store.group["label"][:].astype(np.int64)
    valid = store.group["valid"][:].astype(bool)
    rows = np.flatnonzero(valid & (labels >= 0))
    return rows, labels[rows], int((valid & (labels < 0)).sum())


def load_features(path: str | os.PathLike) -> FeatureSet:
    """The valid, labelled samples of a feature store (unlabelled ones are counted)."""
    store = open_feature_store(path)
    features = store.group["features"][:]
    if features.ndim != 2:
        raise UsageError(f"{path} keeps per-token features {features.shape[1:]}; heads need "
                         "pooled ones: re-embed with --pool cls, mean, max or cls+mean+max")
    rows, labels, unlabelled = labelled_rows(store)
    ids = np.array([str(i) for i in store.group["id"][:]], dtype=object)
    chosen = FeatureSet(features[rows].astype(np.float32, copy=False), labels, ids[rows],
                        rows.astype(np.int64), list(store.class_names),
                        provenance(store.config), str(path), unlabelled)
    _check_finite(chosen)
    return chosen


def _check_finite(features: FeatureSet) -> None:
    finite = np.isfinite(features.features).all(axis=1)
    if not finite.all():
        bad = features.ids[~finite][:5]
        raise UsageError(f"{features.source}: {int((~finite).sum())} samples have NaN or "
                         f"infinite features (e.g. {', '.join(map(str, bad))}); re-embed them "
                         "(--precision float32 avoids fp16 overflow) or drop them from the source")


def check_trainable(train: FeatureSet) -> None:
    """Labels exist and at least two classes occur."""
    if len(train) == 0:
        hint = (f"{train.unlabelled} valid samples have no label" if train.unlabelled
                else "it has no valid samples")
        raise UsageError(f"{train.source} has nothing to train on: {hint}. Tokenize a folder "
                         "of class subfolders (or a manifest with a label column)")
    present = np.unique(train.labels)
    if len(present) < 2:
        name = train.class_names[present[0]] if train.class_names else str(present[0])
        raise UsageError(f"{train.source} has a single class ({name!r}); a classifier needs "
                         "samples of at least two classes")


def check_compatible(reference: FeatureSet, other: FeatureSet, role: str) -> None:
    """``other`` (a val or test store) can be scored with a head trained on ``reference``."""
    if other.dim != reference.dim:
        raise UsageError(f"{role} features have {other.dim} dimensions but the training "
                         f"features have {reference.dim}; embed both with the same encoder "
                         "and pooling")
    differences = provenance_differences(reference.provenance, other.provenance)
    if differences:
        raise UsageError(f"{role} features were made differently from the training features "
                         f"({'; '.join(differences)}); embed both with the same settings")
    if other.class_names != reference.class_names:
        raise UsageError(f"{role} store's classes {other.class_names} differ from the "
                         f"training store's {reference.class_names}; tokenize both from "
                         "folders with the same class subfolders")


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val): ``fraction`` of each class goes to val, at least one sample
    of every class with two or more samples, seeded."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--val-split must be between 0 and 1, not {fraction}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        take = round(fraction * len(rows))
        take = min(max(take, 1), len(rows) - 1) if len(rows) > 1 else 0
        val.append(rows[:take])
        train.append(rows[take:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def as_tensors(x: np.ndarray, y: np.ndarray,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Features as float32 and labels as int64 on ``device``."""
    return (torch.as_tensor(x, dtype=torch.float32, device=device),
            torch.as_tensor(y, dtype=torch.int64, device=device))
