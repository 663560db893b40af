"""Read a store: ``open_store(path)`` gives a map-style ``torch.utils.data.Dataset``.

``store[i]`` is a dict of numpy arrays and scalars (``tokens``, aux arrays, ``label``,
``valid``, ``id``, ``index``). Only committed shards are readable: a sample in a shard
without a commit marker raises, because its bytes may be from an interrupted write.
Reads go through a one-chunk cache per array, so iterating in order decodes each inner chunk
once instead of once per sample.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from torch.utils.data import Dataset

from ..errors import StoreError, UsageError
from .layout import STANDARD_ARRAYS
from .writer import read_attrs, read_markers


class Store(Dataset):
    """A token or feature store opened for reading."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        attrs = read_attrs(self.path)
        if attrs is None:
            raise StoreError(f"{self.path} is not an mmtok store (no mmtok attrs in zarr.json)")
        self.attrs: dict[str, Any] = attrs
        self.group = zarr.open_group(self.path, mode="r")
        self.array_names: list[str] = list(attrs["arrays"])
        self._arrays = {name: self.group[name] for name in (*self.array_names, *STANDARD_ARRAYS)}
        self._cache: dict[str, tuple[int, int, np.ndarray]] = {}
        self._committed = np.zeros(attrs["num_shards"], dtype=bool)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the commit markers (a writer may have committed more shards)."""
        self.markers: list[dict | None] = read_markers(self.path)
        for shard, marker in enumerate(self.markers):
            self._committed[shard] = marker is not None

    @property
    def modality(self) -> str:
        return self.attrs["modality"]

    @property
    def config(self) -> dict:
        return self.attrs["config"]

    @property
    def class_names(self) -> list[str]:
        return self.attrs["class_names"]

    @property
    def complete(self) -> bool:
        return bool(self._committed.all())

    def static(self, name: str) -> np.ndarray:
        """An array shared by all samples, e.g. ``positions`` (the patch grid)."""
        return self.group[name][...]

    def __len__(self) -> int:
        return self.attrs["num_samples"]

    def _read(self, name: str, index: int) -> Any:
        array = self._arrays[name]
        chunk = array.chunks[0]
        cached = self._cache.get(name)
        if cached is None or not cached[0] <= index < cached[1]:
            start = index - index % chunk
            stop = min(start + chunk, array.shape[0])
            cached = (start, stop, array[start:stop])
            self._cache[name] = cached
        return cached[2][index - cached[0]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a store of {n} samples")
        index %= n
        shard = index // self.attrs["shard_size"]
        if not self._committed[shard]:
            raise StoreError(f"sample {index} is in shard {shard}, which is not committed; "
                             "rerun the command that writes this store to finish it")
        item = {name: self._read(name, index) for name in self.array_names}
        item["label"] = int(self._read("label", index))
        item["valid"] = bool(self._read("valid", index))
        item["id"] = str(self._read("id", index))
        item["index"] = index
        return item

    def __repr__(self) -> str:
        return (f"Store({str(self.path)!r}, kind={self.attrs['kind']}, modality={self.modality}, "
                f"n={len(self)}, committed={int(self._committed.sum())}/{len(self._committed)})")


def open_store(path: str | os.PathLike) -> Store:
    """Open a token or feature store for reading."""
    return Store(path)


# The command that writes each kind of store: an error names it as the way to make or
# finish one.
MADE_BY = {"tokens": ("token", "mmtok tokenize"), "features": ("feature", "mmtok embed")}


def open_complete_store(path: str | os.PathLike, kind: str, reader: str,
                        hint: str = "") -> Store:
    """A complete store of ``kind``; otherwise an error that names the command ``reader``
    refusing it and the command that makes (or finishes) such a store, then ``hint``."""
    noun, maker = MADE_BY[kind]
    store = Store(path)
    if store.attrs["kind"] != kind:
        raise UsageError(f"{path} is a {store.attrs['kind']} store; {reader} reads {noun} "
                         f"stores made by `{maker}`{hint}")
    if not store.complete:
        raise StoreError(f"{path} is not complete; rerun `{maker}` to finish it")
    return store
