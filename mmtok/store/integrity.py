"""Whether a committed shard can be trusted; shared by ``validate`` and by resuming runs.

A resumed run does the cheap checks on every committed shard (the marker parses, covers the
right samples, and every array's shard file exists: a deleted file reads back as zeros in
plain Zarr). ``--repair`` and ``validate`` also decode every shard and compare its contents
with the checksums in the marker, which reads the whole store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .layout import array_checksum, shard_bounds


def shard_file(path: Path, name: str, shard: int, ndim: int) -> Path:
    """The file holding one shard of an array (Zarr v3 default chunk keys)."""
    return path.joinpath(name, "c", str(shard), *(["0"] * (ndim - 1)))


def parse_marker(text: str) -> dict | None:
    """A marker string -> dict (None when the shard is not committed); ValueError when the
    text is not a JSON object."""
    if not text:
        return None
    marker = json.loads(text)
    if not isinstance(marker, dict):
        raise ValueError(f"expected a JSON object, got {type(marker).__name__}")
    return marker


def describe(shard: int, attrs: Mapping[str, Any]) -> str:
    start, stop = shard_bounds(shard, attrs["num_samples"], attrs["shard_size"])
    return f"shard {shard} (samples {start}..{stop - 1})"


def shard_problems(path: Path, shard: int, marker: dict, attrs: Mapping[str, Any],
                   arrays: Mapping[str, Any], names: Sequence[str],
                   verify_data: bool) -> list[str]:
    """Every problem of one committed shard, each prefixed with where it is."""
    start, stop = shard_bounds(shard, attrs["num_samples"], attrs["shard_size"])
    where = describe(shard, attrs)
    if (marker.get("start"), marker.get("stop")) != (start, stop):
        return [f"{where}: marker covers {marker.get('start')}..{marker.get('stop')}"]
    problems = []
    if marker.get("config_hash") != attrs["config_hash"]:
        problems.append(f"{where}: marker was written with another config")
    for name in names:
        located = shard_file(path, name, shard, arrays[name].ndim)
        if not located.exists():
            problems.append(f"{where}: {name} shard file {located.relative_to(path)} "
                            "is missing")
        elif verify_data:
            problems += _content_problems(where, name, arrays[name], start, stop, marker)
    return problems


def checksum_mismatches(rows: dict[str, np.ndarray], marker: dict) -> list[str]:
    """The names among ``rows`` (one shard's values per array) whose checksum differs from
    the one its commit marker recorded."""
    recorded = marker.get("checksums", {})
    return [name for name, values in rows.items() if array_checksum(values) != recorded.get(name)]


def _content_problems(where: str, name: str, array: Any, start: int, stop: int,
                      marker: dict) -> list[str]:
    try:
        values = array[start:stop]
    except Exception as exc:  # noqa: BLE001 - a decode failure is the finding
        return [f"{where}: {name} cannot be read ({type(exc).__name__}: {exc})"]
    if checksum_mismatches({name: values}, marker):
        return [f"{where}: {name} checksum does not match its commit marker"]
    if name == "valid":
        num_valid = int(np.count_nonzero(values))
        errors = len(marker.get("errors", []))
        if num_valid != marker.get("num_valid") or stop - start - num_valid != errors:
            return [f"{where}: {num_valid} valid samples but the marker records "
                    f"{marker.get('num_valid')} valid and {errors} errors"]
    return []
