"""Pairing samples across named feature stores into multimodal samples.

A multimodal sample is one row of a pairs file (CSV/TSV or JSONL: one column per store name
holding that store's sample id, optional ``label`` and task columns), or, with
``pair_by="stem"``, the samples of every store whose ids are equal once the file extension
is removed (``cat/001.png`` and ``cat/001.wav`` pair as ``cat/001``).

An empty cell (or, with stems, an id one store lacks) and an id whose sample is invalid in
its store are *missing*: ``missing="drop"`` drops such rows (counted in ``dropped``),
``missing="absent"`` keeps them with that modality absent (``present`` False), as long as
one modality is present. An id no store has, duplicated rows, a pairs file without a
column for a store, and labels the stores disagree on are errors, raised before any
training.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from ..errors import UsageError
from ..store.layout import TOKEN_MASK
from ..store.reader import Store, read_rows
from .data import open_feature_store, provenance, provenance_differences

MISSING_POLICIES = ("drop", "absent")
PAIR_BY = ("stem",)
LABEL = "label"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
HELD_BYTES_LIMIT = 1 << 30  # features of one split kept in memory up to this size


@dataclass
class Modality:
    """One named store's side of a paired set: which store row each sample uses."""

    name: str
    store: Store
    rows: np.ndarray                # (n,) int64 store row, -1 where the modality is absent
    held: np.ndarray | None = None  # (n, *shape) float32 features (zeros where absent)
    held_mask: np.ndarray | None = None  # (n, tokens) bool token masks of held features

    @property
    def present(self) -> np.ndarray:
        return self.rows >= 0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.store.group["features"].shape[1:])

    @property
    def provenance(self) -> dict[str, Any]:
        return provenance(self.store.config)

    @property
    def source(self) -> str:
        return str(self.store.path)

    @property
    def has_token_mask(self) -> bool:
        """Whether the store says which of its per-token features are padding (``embed
        --pool none`` records ``token_mask``; older stores and pooled ones do not)."""
        return TOKEN_MASK in self.store.array_names

    def take(self, rows: np.ndarray) -> Modality:
        return Modality(self.name, self.store, self.rows[rows],
                        None if self.held is None else self.held[rows],
                        None if self.held_mask is None else self.held_mask[rows])

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Features of the paired samples ``rows`` (zeros where absent), from memory or,
        for a split over the memory limit, from the store (sorted rows, one read)."""
        if self.held is not None:
            return self.held[rows]
        return self._read_store("features", rows, np.float32)

    def read_token_mask(self, rows: np.ndarray) -> np.ndarray | None:
        """Which tokens of the paired samples' per-token features are real (all False
        where absent); None for a store without a ``token_mask``: all its tokens count."""
        if not self.has_token_mask:
            return None
        if self.held_mask is not None:
            return self.held_mask[rows]
        return self._read_store(TOKEN_MASK, rows, np.bool_)

    def _read_store(self, name: str, rows: np.ndarray, dtype: type) -> np.ndarray:
        array = self.store.group[name]
        out = np.zeros((len(rows), *array.shape[1:]), dtype)
        read_rows(array, self.rows[rows], out)
        return out


@dataclass
class PairedSet:
    """Multimodal samples: per-modality store rows, per-task labels (-1 unknown)."""

    modalities: dict[str, Modality]
    keys: np.ndarray                      # (n,) str: the pairs row or stem naming the sample
    labels: dict[str, np.ndarray]         # task -> (n,) int64
    class_names: dict[str, list[str]]     # task -> classes
    source: str
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    @property
    def tasks(self) -> list[str]:
        return list(self.labels)

    def subset(self, rows: np.ndarray) -> PairedSet:
        return PairedSet({n: m.take(rows) for n, m in self.modalities.items()}, self.keys[rows],
                         {t: y[rows] for t, y in self.labels.items()}, self.class_names,
                         self.source, self.dropped)

    def nbytes(self) -> int:
        return sum(len(self) * int(np.prod(m.shape)) * 4 for m in self.modalities.values())

    def hold(self, limit: int = HELD_BYTES_LIMIT) -> PairedSet:
        """Load every modality's features into memory when they fit in ``limit`` bytes;
        otherwise they stay in the stores and are read per block of samples."""
        if self.nbytes() <= limit:
            everything = np.arange(len(self))
            for modality in self.modalities.values():
                if modality.held is None:
                    modality.held = modality.read(everything)
                if modality.held_mask is None and modality.has_token_mask:
                    modality.held_mask = modality.read_token_mask(everything)
        return self


def parse_named_stores(specs: list[str]) -> dict[str, str]:
    """``["image=img.zarr", "audio=aud.zarr"]`` -> ``{"image": "img.zarr", ...}``."""
    stores: dict[str, str] = {}
    for spec in specs:
        name, sep, path = str(spec).partition("=")
        if not sep or not _NAME.match(name) or not path:
            raise UsageError(f"expected NAME=STORE (e.g. image=img.zarr), got {spec!r}")
        if name in stores:
            raise UsageError(f"store name {name!r} is given twice")
        if name == LABEL:
            raise UsageError("'label' names the label column; give the store another name")
        stores[name] = path
    return stores


def is_named_store(spec: str | os.PathLike) -> bool:
    """Whether a command-line store argument is ``NAME=STORE`` rather than a path."""
    name, sep, _ = str(spec).partition("=")
    return bool(sep) and bool(_NAME.match(name)) and not os.path.exists(str(spec))


def pair_stores(stores: dict[str, str | os.PathLike], *, pairs: str | os.PathLike | None = None,
                pair_by: str | None = None, missing: str = "drop",
                tasks: list[str] | None = None, require_labels: bool = True,
                keep_empty: bool = False) -> PairedSet:
    """The multimodal samples of ``stores`` (name -> feature store), paired by the pairs
    file ``pairs`` or by ``pair_by="stem"``; see the module docstring for the rules."""
    if missing not in MISSING_POLICIES:
        raise UsageError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, not {missing!r}")
    if (pairs is None) == (pair_by is None):
        raise UsageError("pair the stores with --pairs FILE or --pair-by stem (one of them)")
    if pair_by is not None and pair_by not in PAIR_BY:
        raise UsageError(f"--pair-by must be one of {', '.join(PAIR_BY)}, not {pair_by!r}")
    opened = {name: open_feature_store(path) for name, path in stores.items()}
    tasks = list(tasks or [LABEL])
    if pairs is not None:
        table, keys = _pairs_table(pairs, opened, tasks)
        source = os.fspath(pairs)
    else:
        table, keys = _stem_table(opened), None
        source = "file stems"
        if tasks != [LABEL]:
            raise UsageError("task columns come from a pairs file; --pair-by stem has only the "
                             "stores' labels")
    return _assemble(opened, table, keys, tasks, missing, source, require_labels, keep_empty)


def _pairs_table(path, stores: dict[str, Store], tasks: list[str]) -> tuple[list[dict], list[str]]:
    from ..sources import _read_manifest_rows

    rows = _read_manifest_rows(os.fspath(path))
    if not rows:
        raise UsageError(f"pairs file {path} has no rows")
    columns = set().union(*(row.keys() for row in rows))
    lacking = [name for name in stores if name not in columns]
    if lacking:
        raise UsageError(f"pairs file {path} has no column for store "
                         f"{', '.join(map(repr, lacking))} "
                         f"(its columns: {', '.join(sorted(columns))})")
    for task in tasks:
        if task != LABEL and task not in columns:
            raise UsageError(f"pairs file {path} has no task column {task!r}")
    table = [{name: _cell(row.get(name)) for name in (*stores, *tasks, "id") if name in columns}
             for row in rows]
    _refuse_duplicates(table, list(stores), path)
    keys = [row.get("id") or f"row{number}" for number, row in enumerate(table, start=1)]
    return table, keys


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _refuse_duplicates(table: list[dict], names: list[str], path) -> None:
    seen: dict[tuple, int] = {}
    for number, row in enumerate(table, start=1):
        key = tuple(row.get(name, "") for name in names)
        if key in seen:
            raise UsageError(f"pairs file {path}: row {number} repeats row {seen[key]} "
                             f"({', '.join(f'{n}={v!r}' for n, v in zip(names, key))}); each "
                             "multimodal sample must appear once")
        seen[key] = number
    ids = [row["id"] for row in table if row.get("id")]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise UsageError(f"pairs file {path}: id {twice!r} appears in more than one row")


def _store_ids(store: Store) -> list[str]:
    return [str(i) for i in store.group["id"][:]]


def stem(sample_id: str) -> str:
    """The id without its file extension: ``cat/001.png`` -> ``cat/001``."""
    path = PurePosixPath(sample_id)
    return str(path.with_suffix("")) if path.suffix else sample_id


def _stem_table(stores: dict[str, Store]) -> list[dict]:
    by_stem: dict[str, dict[str, str]] = {}
    for name, store in stores.items():
        seen: dict[str, str] = {}
        for sample_id in _store_ids(store):
            key = stem(sample_id)
            if key in seen:
                raise UsageError(f"{store.path}: ids {seen[key]!r} and {sample_id!r} have the same "
                                 "stem; pair these stores with a --pairs file")
            seen[key] = sample_id
            by_stem.setdefault(key, {})[name] = sample_id
    return [{"id": key, **by_stem[key]} for key in sorted(by_stem)]


def _assemble(stores: dict[str, Store], table: list[dict], keys: list[str] | None,
              tasks: list[str], missing: str, source: str, require_labels: bool,
              keep_empty: bool = False) -> PairedSet:
    n = len(table)
    keys = keys or [row["id"] for row in table]
    rows, dropped = {}, {}
    for name, store in stores.items():
        position = {sample_id: i for i, sample_id in enumerate(_store_ids(store))}
        valid = store.group["valid"][:].astype(bool)
        wanted = [row.get(name, "") for row in table]
        unknown = [w for w in wanted if w and w not in position]
        if unknown:
            raise UsageError(f"{len(unknown)} ids of the {source} rows are not in store {name!r} "
                             f"({store.path}), e.g. {', '.join(map(repr, unknown[:3]))}")
        found = np.array([position.get(w, -1) for w in wanted], np.int64)
        invalid = (found >= 0) & ~valid[np.maximum(found, 0)]
        dropped[f"{name} missing"] = int((found < 0).sum())
        dropped[f"{name} invalid"] = int(invalid.sum())
        found[invalid] = -1
        rows[name] = found
    present = np.stack([r >= 0 for r in rows.values()])
    keep = present.all(0) if missing == "drop" else present.any(0)
    if keep_empty:
        keep = np.ones(n, bool)
    dropped = {k: v for k, v in dropped.items() if v}
    labels, class_names = _labels(stores, table, rows, tasks, source)
    if require_labels:
        keep &= np.stack([y >= 0 for y in labels.values()]).any(0)
    dropped["dropped rows"] = int(n - keep.sum())
    chosen = np.flatnonzero(keep)
    modalities = {name: Modality(name, stores[name], rows[name][chosen]) for name in stores}
    return PairedSet(modalities, np.array(keys, dtype=object)[chosen],
                     {t: y[chosen] for t, y in labels.items()}, class_names, source, dropped)


def _labels(stores: dict[str, Store], table: list[dict], rows: dict[str, np.ndarray],
            tasks: list[str], source: str) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    labels, class_names = {}, {}
    for task in tasks:
        if task == LABEL and not any(LABEL in row for row in table):
            labels[task], class_names[task] = _store_labels(stores, rows, source)
        else:
            labels[task], class_names[task] = _column_labels(stores, table, task)
    return labels, class_names


def _column_labels(stores: dict[str, Store], table: list[dict], task: str):
    values = [row.get(task, "") for row in table]
    names = sorted({v for v in values if v})
    if task == LABEL:  # keep the stores' class order when the column uses their names
        for store in stores.values():
            if store.class_names and set(names) <= set(store.class_names):
                names = list(store.class_names)
                break
    index = {name: i for i, name in enumerate(names)}
    return np.array([index.get(v, -1) for v in values], np.int64), names


def _store_labels(stores: dict[str, Store], rows: dict[str, np.ndarray], source: str):
    """Labels from the stores themselves (by class name); stores must agree per sample."""
    names: list[str] = []
    for store in stores.values():
        names += [c for c in store.class_names if c not in names]
    index = {name: i for i, name in enumerate(names)}
    n = len(next(iter(rows.values())))
    labels = np.full(n, -1, np.int64)
    for name, store in stores.items():
        stored = store.group["label"][:].astype(np.int64)
        mapping = np.array([index[c] for c in store.class_names] or [0], np.int64)
        found = rows[name]
        theirs = np.where(found >= 0, stored[np.maximum(found, 0)], -1)
        theirs = np.where(theirs >= 0, mapping[np.maximum(theirs, 0)], -1)
        clash = (labels >= 0) & (theirs >= 0) & (labels != theirs)
        if clash.any():
            first = int(np.flatnonzero(clash)[0])
            raise UsageError(f"the stores disagree on the label of paired sample {first + 1} "
                             f"({source}): {names[labels[first]]!r} vs {names[theirs[first]]!r} "
                             f"in {name!r}; give the labels in a 'label' column of a pairs file")
        labels = np.where(labels >= 0, labels, theirs)
    return labels, names


def check_same_making(reference: PairedSet, other: PairedSet, role: str) -> None:
    """``other`` (val or test) has the same modalities, each made like the reference's
    store (encoder, weights, projector, pooling, tokenizer config; feature shape), and the
    same classes per task."""
    if set(other.names) != set(reference.names):
        raise UsageError(f"{role} stores are named {', '.join(other.names)}; the training "
                         f"stores {', '.join(reference.names)}")
    other.modalities = {name: other.modalities[name] for name in reference.names}
    for name in reference.names:
        expected, found = reference.modalities[name], other.modalities[name]
        differences = provenance_differences(expected.provenance, found.provenance)
        if differences:
            raise UsageError(f"{role} store {name!r} ({found.source}) was made differently from "
                             f"the training store ({'; '.join(differences)}); embed both with "
                             "the same settings")
        if found.shape[-1] != expected.shape[-1]:
            raise UsageError(f"{role} store {name!r} has features {found.shape}, the training "
                             f"store {expected.shape}")
    for task in reference.tasks:
        unseen = set(other.class_names.get(task, [])) - set(reference.class_names[task])
        if unseen:
            raise UsageError(f"{role} task {task!r} has classes the training data lacks: "
                             f"{sorted(unseen)}")


def align_classes(reference: PairedSet, other: PairedSet) -> PairedSet:
    """``other``'s labels re-indexed to the reference's class order."""
    for task in reference.tasks:
        if task not in other.labels:
            continue
        index = {c: i for i, c in enumerate(reference.class_names[task])}
        mapping = np.array([index[c] for c in other.class_names[task]] or [0], np.int64)
        y = other.labels[task]
        other.labels[task] = np.where(y >= 0, mapping[np.maximum(y, 0)], -1)
        other.class_names[task] = reference.class_names[task]
    return other
