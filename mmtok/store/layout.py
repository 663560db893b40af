"""The store skeleton shared by token and feature stores.

    STORE/zarr.json   attrs["mmtok"]: version, kind, modality, config, config_hash,
                      class_names, num_samples, shard_size, source, source_hash
    STORE/<arrays>    per-sample arrays, sample axis first, sharded S samples per shard
    STORE/label       (N,) int32, -1 where unknown
    STORE/valid       (N,) bool
    STORE/id          (N,) variable-length UTF-8 strings
    STORE/commits     (num_shards,) JSON strings, one chunk per shard: the commit markers

A missing chunk of ``commits`` reads back as ``""``: that shard is not committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

ATTRS_KEY = "mmtok"
COMMITS = "commits"
FITTED = "fitted"  # attrs key: where fitted statistics came from (see mmtok/fitted.py)
STANDARD_ARRAYS = ("label", "valid", "id")
# per-token feature stores (embed --pool none): (N, L) bool, True for the real tokens of
# ``features`` (prefix tokens always), False for padding and for invalid samples
TOKEN_MASK = "token_mask"
TARGET_CHUNK_BYTES = 4 << 20  # inner chunks of a few MB: fast partial reads, few files
CHECKSUM_BLOCK_ITEMS = 1 << 14  # strings hashed per sha256 update


@dataclass(frozen=True)
class ArraySpec:
    """A per-sample array: ``shape`` excludes the sample axis; ``dims`` optionally names
    those axes (Zarr v3 ``dimension_names``, after ``sample``; see :func:`dimension_names`)."""

    shape: tuple[int, ...]
    dtype: str
    dims: tuple[str, ...] = ()

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


SAMPLE_DIM = "sample"


def dimension_names(name: str, shape: tuple[int, ...], dims: tuple[str, ...] = (),
                    sample_axis: bool = True) -> tuple[str, ...]:
    """Zarr v3 ``dimension_names`` of an array, so a store opens as labelled arrays
    (``xarray.open_zarr``): ``sample`` first for per-sample arrays, then the given ``dims``,
    or ``NAME_dimK`` where none are given (unique per array, so that two arrays never claim
    one dimension name with different sizes)."""
    if dims and len(dims) != len(shape):
        raise ValueError(f"array {name!r}: {len(dims)} dimension names for shape {shape}")
    rest = tuple(dims) or tuple(f"{name}_dim{i}" for i in range(1, len(shape) + 1))
    return ((SAMPLE_DIM,) if sample_axis else ()) + rest


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def config_hash(kind: str, modality: str, config: dict, shard_size: int) -> str:
    """What makes two stores' bytes comparable: the tokenizer config and the shard layout."""
    payload = {"kind": kind, "modality": modality, "config": config, "shard_size": shard_size}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def config_hash_intact(attrs: dict) -> bool:
    """Whether a store's recorded config still hashes to its recorded ``config_hash`` (if
    not, zarr.json was edited and the markers can no longer say which config made them)."""
    return config_hash(attrs.get("kind"), attrs.get("modality"), attrs.get("config"),
                       attrs.get("shard_size")) == attrs.get("config_hash")


def num_shards(num_samples: int, shard_size: int) -> int:
    return max(1, -(-num_samples // shard_size))


def shard_bounds(shard: int, num_samples: int, shard_size: int) -> tuple[int, int]:
    start = shard * shard_size
    return start, min(start + shard_size, num_samples)


def inner_chunk(shard_size: int, sample_bytes: int) -> int:
    """Largest divisor of the shard size whose chunk stays under TARGET_CHUNK_BYTES."""
    best = 1
    for candidate in range(1, shard_size + 1):
        if shard_size % candidate == 0 and candidate * sample_bytes <= TARGET_CHUNK_BYTES:
            best = candidate
    return best


def array_checksum(values: np.ndarray) -> str:
    """Checksum of array contents (not file bytes), so it survives re-encoding."""
    digest = hashlib.sha256()
    if values.dtype.kind in "OTU":
        # each item's UTF-8 and a NUL, hashed a block of items at a time (the same bytes
        # as one update per item, without a Python call per item)
        items = [str(item) for item in values.tolist()]
        for at in range(0, len(items), CHECKSUM_BLOCK_ITEMS):
            block = items[at:at + CHECKSUM_BLOCK_ITEMS]
            digest.update(("\0".join(block) + "\0").encode("utf-8", "surrogateescape"))
    else:
        # the array's own buffer, not a tobytes() copy: a 60 MB shard costs no extra 60 MB
        digest.update(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return digest.hexdigest()
