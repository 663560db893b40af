"""Create, resume and write stores, one whole shard at a time.

A shard is written by exactly one process in one go (partial or concurrent writes into one
Zarr shard silently lose data), and its commit marker is written last. Zarr's LocalStore
writes every object to a temporary file and renames it, so a marker is either absent or
complete; a crash leaves at most uncommitted shards, which a rerun rewrites.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from .._version import __version__
from ..errors import ConfigMismatchError, StoreError, StoreWriteError
from .integrity import describe, parse_marker, shard_file, shard_problems
from .layout import (
    ATTRS_KEY,
    COMMITS,
    SAMPLE_DIM,
    STANDARD_ARRAYS,
    ArraySpec,
    array_checksum,
    canonical_json,
    config_hash,
    config_hash_intact,
    dimension_names,
    inner_chunk,
    num_shards,
    shard_bounds,
)

COMPRESSOR = ZstdCodec(level=1)  # fast; token data is mostly incompressible noise anyway
ENCODE_CONCURRENCY = 1  # inner chunks of a shard being copied and compressed at once


@dataclass(frozen=True)
class StoreSpec:
    """Everything that defines a store's layout and meaning, fixed before any work starts."""

    kind: str  # "tokens" or "features"
    modality: str
    config: dict
    arrays: Mapping[str, ArraySpec]
    static_arrays: Mapping[str, np.ndarray]
    num_samples: int
    shard_size: int
    class_names: Sequence[str]
    source: dict
    source_hash: str
    extra_attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        return config_hash(self.kind, self.modality, self.config, self.shard_size)

    @property
    def num_shards(self) -> int:
        return num_shards(self.num_samples, self.shard_size)

    def attrs(self) -> dict:
        return {
            "version": __version__,
            "kind": self.kind,
            "modality": self.modality,
            "config": self.config,
            "config_hash": self.config_hash,
            "class_names": list(self.class_names),
            "num_samples": self.num_samples,
            "shard_size": self.shard_size,
            "num_shards": self.num_shards,
            "arrays": sorted(self.arrays),
            "static_arrays": sorted(self.static_arrays),
            "source": self.source,
            "source_hash": self.source_hash,
            **self.extra_attrs,
        }


# What the file system says when it will not take our bytes; other OSErrors are bugs.
WRITE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EFBIG}


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn the file system refusing a write into a StoreWriteError with what to do next.

    Nothing more needs cleaning up: every object is written to a temporary file and renamed,
    so a failed write leaves at most ``*.partial`` files of uncommitted shards, which the
    next run removes.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        raise StoreWriteError(
            f"cannot write {path}: {exc.strerror}{where}; committed shards are kept: make "
            "room or make it writable, then rerun the same command to resume") from None


def read_attrs(path: str | os.PathLike) -> dict | None:
    """The mmtok attrs of a store, or None when ``path`` holds no mmtok store."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return None
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (json.JSONDecodeError, OSError) as exc:
        raise StoreError(f"{meta} is unreadable ({exc}); the store is damaged") from exc
    return attrs.get(ATTRS_KEY)


@dataclass
class ResumeState:
    """What a run finds in its store: the shards to skip, and the committed shards found
    damaged (un-committed again, so that this run rewrites them), with their problems."""

    done: list[int] = field(default_factory=list)
    repaired: dict[int, list[str]] = field(default_factory=dict)
    errors_in_done: int = 0  # samples recorded invalid in the skipped shards


def prepare_store(path: str | os.PathLike, spec: StoreSpec, overwrite: bool,
                  repair: bool = False) -> ResumeState:
    """Create the store, or check that an existing one matches ``spec``.

    Committed shards are checked cheaply (see :mod:`.integrity`), and with ``repair`` also
    against their checksums; damaged ones lose their marker and are rewritten by this run.
    The caller must hold the store lock.
    """
    path = Path(path)
    existing = read_attrs(path)
    if existing is not None:
        _check_same_kind(path, existing.get("kind"), spec.kind)
    if existing is not None and not overwrite:
        _check_compatible(path, existing, spec)
        state = _check_committed(path, existing, repair)  # may refuse: touch nothing before
        _remove_partial_files(path)
        return state
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a store folder; choose another output path")
    if path.exists() and existing is None and any(path.iterdir()):
        raise StoreError(
            f"{path} exists and is not an mmtok store; refusing to write into or delete "
            "it. Choose another output path."
        )
    # Built beside the store and renamed into place: a run killed half-way through creating
    # it leaves only the temporary folder (removed by the next run), never a half-made store
    # that the next run would have to refuse as "not an mmtok store".
    building = creating_path(path)
    if building.exists():
        shutil.rmtree(building)
    _create(building, spec)
    if path.exists():
        shutil.rmtree(path)
    building.rename(path)
    return ResumeState()


def _check_committed(path: Path, attrs: dict, repair: bool) -> ResumeState:
    names = [*attrs["arrays"], *STANDARD_ARRAYS]
    arrays = {name: zarr.open_array(path / name, mode="r") for name in names}
    commits = zarr.open_array(path / COMMITS, mode="r+")
    state = ResumeState()
    for shard, text in enumerate(commits[:].tolist()):
        try:
            marker = parse_marker(text)
        except ValueError as exc:
            state.repaired[shard] = [f"{describe(shard, attrs)}: commit marker is not valid "
                                     f"JSON ({exc})"]
            continue
        if marker is None:
            continue
        if marker.get("config_hash") != attrs["config_hash"]:
            # never mix configs: this is another run's data, not damage to repair
            raise ConfigMismatchError(
                f"{path}: {describe(shard, attrs)} was committed with another config; pass "
                "--overwrite to replace the store, or choose another output path")
        problems = shard_problems(path, shard, marker, attrs, arrays, names, repair)
        if problems:
            state.repaired[shard] = problems
        else:
            state.done.append(shard)
            state.errors_in_done += len(marker.get("errors", []))
    for shard in state.repaired:
        # the marker goes first: a run killed while rewriting must not find it committed
        commits[shard] = ""
        for name in names:
            # Zarr merges a shard write into the existing shard file, so a corrupt one would
            # make the rewrite fail; the rewrite replaces every byte of it anyway.
            shard_file(path, name, shard, arrays[name].ndim).unlink(missing_ok=True)
    return state


def creating_path(path: Path) -> Path:
    """Where a new store is built before it is renamed into place (beside the lock)."""
    return path.with_name(path.name + ".creating")


# What each kind of store is called in messages, and the command that writes it.
KIND_NAMES = {"tokens": ("token store", "mmtok tokenize"),
              "features": ("feature store", "mmtok embed")}


def check_output_kind(path: str | os.PathLike, kind: str) -> None:
    """Refuse early (before any heavy work) an output that holds a store of another kind."""
    existing = read_attrs(path)
    if existing is not None:
        _check_same_kind(Path(path), existing.get("kind"), kind)


def _check_same_kind(path: Path, found: str | None, kind: str) -> None:
    """A store of another kind is never replaced, not even with --overwrite: a token store
    is the input of every later step, and a config mismatch message would invite
    ``--overwrite``."""
    if found == kind:
        return
    name, maker = KIND_NAMES.get(found, (f"{found} store", "another command"))
    wanted = KIND_NAMES.get(kind, (f"{kind} store", ""))[0]
    raise StoreError(
        f"{path} is a {name} (made by `{maker}`), and this command writes a {wanted}; a store "
        "of another kind is never replaced, even with --overwrite. Choose another output "
        "path, or delete that store yourself if you no longer need it")


def _check_compatible(path: Path, existing: dict, spec: StoreSpec) -> None:
    hint = "pass --overwrite to replace it, or choose another output path"
    if not config_hash_intact(existing):
        raise ConfigMismatchError(
            f"{path}/zarr.json was edited or damaged: its config does not hash to its "
            f"config_hash, so its shards cannot be traced to a config; {hint}")
    if existing.get("version") != __version__:
        raise ConfigMismatchError(
            f"{path} was written by mmtok {existing.get('version')}, this is {__version__}; {hint}"
        )
    if existing.get("config_hash") != spec.config_hash:
        old, new = existing.get("config", {}), spec.config
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if existing.get("shard_size") != spec.shard_size:
            changed.append("shard_size")
        raise ConfigMismatchError(
            f"{path} was made with another config (differs in: {', '.join(changed) or 'kind'}); "
            f"{hint}"
        )
    if sorted(existing.get("arrays", [])) != sorted(spec.arrays):
        # same config, other arrays: a store of an earlier build of this version (before
        # per-token feature stores recorded their token_mask, say)
        raise ConfigMismatchError(
            f"{path} holds the arrays {', '.join(sorted(existing.get('arrays', [])))}; this "
            f"run writes {', '.join(sorted(spec.arrays))}; {hint}")
    if existing.get("source_hash") != spec.source_hash:
        raise ConfigMismatchError(
            f"{path} was made from another list of samples ({existing.get('num_samples')} "
            f"samples then, {spec.num_samples} now, or other ids/labels); {hint}"
        )


def _remove_partial_files(path: Path) -> None:
    """Temp files of writes a crash interrupted; the shards they belonged to are redone."""
    for leftover in path.rglob("*.partial"):
        leftover.unlink()


def _create(path: Path, spec: StoreSpec) -> None:
    group = zarr.open_group(path, mode="w", zarr_format=3)
    shard = spec.shard_size
    for name, array in spec.arrays.items():
        chunk = inner_chunk(shard, array.sample_bytes)
        group.create_array(
            name,
            shape=(spec.num_samples, *array.shape),
            dtype=array.dtype,
            chunks=(chunk, *array.shape),
            shards=(shard, *array.shape),
            compressors=COMPRESSOR,
            fill_value=0,
            dimension_names=dimension_names(name, array.shape, array.dims),
        )
    samples = (SAMPLE_DIM,)
    group.create_array("label", shape=(spec.num_samples,), dtype="int32", chunks=(shard,),
                       fill_value=-1, dimension_names=samples)
    group.create_array("valid", shape=(spec.num_samples,), dtype="bool", chunks=(shard,),
                       fill_value=False, dimension_names=samples)
    group.create_array("id", shape=(spec.num_samples,), dtype=str, chunks=(shard,),
                       dimension_names=samples)
    group.create_array(COMMITS, shape=(spec.num_shards,), dtype=str, chunks=(1,),
                       dimension_names=("shard",))
    for name, values in spec.static_arrays.items():
        static = group.create_array(name, shape=values.shape, dtype=values.dtype,
                                    chunks=values.shape or None,
                                    dimension_names=dimension_names(name, values.shape,
                                                                    sample_axis=False))
        static[...] = values
    # attrs last: a folder without them is not a store yet and is simply recreated
    group.attrs[ATTRS_KEY] = spec.attrs()


def read_markers(path: str | os.PathLike) -> list[dict | None]:
    """Every shard's commit marker (None where the shard is not committed)."""
    markers = []
    for shard, text in enumerate(zarr.open_array(Path(path) / COMMITS, mode="r")[:].tolist()):
        try:
            markers.append(parse_marker(text))
        except ValueError as exc:
            raise StoreError(f"{path}: the commit marker of shard {shard} is damaged ({exc}); "
                             "`mmtok validate` lists every problem, and rerunning the command "
                             "that wrote the store rewrites the shard") from None
    return markers


@dataclass
class ShardData:
    """One shard's worth of per-sample values, ready to write."""

    arrays: dict[str, np.ndarray]
    labels: np.ndarray
    valid: np.ndarray
    ids: list[str]
    errors: list[dict]
    # counts of notable valid samples (Tokenizer.tally: e.g. truncated texts); in the marker
    # only when there are any, so stores of tokenizers that count nothing are unchanged
    counts: dict[str, int] = field(default_factory=dict)


class ShardWriter:
    """Writes whole shards of an existing store; one instance per process."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.group = zarr.open_group(self.path, mode="r+")
        self.attrs = self.group.attrs[ATTRS_KEY]
        self._arrays: dict[str, zarr.Array] = {}  # opened once (each open reads zarr.json)

    def _array(self, name: str) -> zarr.Array:
        """The store's array ``name``, writing chunks equal to the fill value too: Zarr skips
        them by default, and a shard of invalid samples must still exist on disk, or a
        deleted shard file could not be told from it."""
        if name not in self._arrays:
            # an array takes the runtime config in force when it is opened
            with zarr.config.set({"array.write_empty_chunks": True}):
                self._arrays[name] = self.group[name]
        return self._arrays[name]

    def write(self, shard: int, data: ShardData) -> dict:
        start, stop = shard_bounds(shard, self.attrs["num_samples"], self.attrs["shard_size"])
        checksums = {}
        columns = {**data.arrays, "label": data.labels, "valid": data.valid,
                   "id": np.array(data.ids, dtype=object)}
        # One inner chunk encoded at a time: Zarr copies each chunk out of the shard before
        # compressing it, and at its default concurrency (10) those copies added most of a
        # second shard buffer to the peak RSS (one process writes one shard: the codec
        # work itself is a small part of the time).
        with zarr.config.set({"async.concurrency": ENCODE_CONCURRENCY}):
            for name, values in columns.items():
                if len(values) != stop - start:
                    raise StoreError(f"shard {shard}: {name} has {len(values)} rows, "
                                     f"expected {stop - start}")
                self._array(name)[start:stop] = values
                checksums[name] = array_checksum(values)
        marker = {
            "shard": shard,
            "start": start,
            "stop": stop,
            "config_hash": self.attrs["config_hash"],
            "num_valid": int(np.count_nonzero(data.valid)),
            "errors": data.errors,
            "checksums": checksums,
        }
        if data.counts:
            marker["counts"] = {k: int(v) for k, v in sorted(data.counts.items())}
        # the marker goes last: its presence is the shard's commit (written through the
        # group, opened afresh per commit as always; only the data arrays are kept open)
        self.group[COMMITS][shard] = canonical_json(marker)
        return marker
