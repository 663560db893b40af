"""``info`` and ``validate``: what a store holds, and whether its bytes can be trusted."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import zarr

from ..errors import StoreError
from .._version import __version__
from .integrity import parse_marker, shard_problems
from .layout import COMMITS, STANDARD_ARRAYS, config_hash_intact
from .writer import KIND_NAMES, read_attrs, read_markers


def _require_attrs(path: Path) -> dict:
    if not path.exists():
        raise StoreError(f"{path} does not exist")
    attrs = read_attrs(path)
    if attrs is None:
        raise StoreError(f"{path} is not an mmtok store (no mmtok attrs in zarr.json)")
    return attrs


def disk_usage(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


ERROR_FIELDS = ("index", "id", "kind", "stage", "message")


def store_info(path: str | os.PathLike, errors: bool = False) -> dict:
    """Summary of a store, as printed by ``mmtok info``; with ``errors``, also every invalid
    sample's record (``index``, ``id``, ``kind``, ``stage``, ``message``), in sample order."""
    path = Path(path)
    attrs = _require_attrs(path)
    markers = read_markers(path)
    committed = [m for m in markers if m]
    records = sorted((e for m in committed for e in m["errors"]), key=lambda e: e["index"])
    details = _details(path, attrs, committed, records)
    if errors:
        details["errors"] = [{key: e.get(key) for key in ERROR_FIELDS} for e in records]
    return details


def _details(path: Path, attrs: dict, committed: list[dict], errors: list[dict]) -> dict:
    return {
        "path": str(path),
        "kind": attrs["kind"],
        "modality": attrs["modality"],
        "mmtok_version": attrs["version"],
        "num_samples": attrs["num_samples"],
        "num_valid": sum(m["num_valid"] for m in committed),
        "num_invalid": len(errors),
        "samples_committed": sum(m["stop"] - m["start"] for m in committed),
        "shards_done": len(committed),
        "shards_total": attrs["num_shards"],
        "shard_size": attrs["shard_size"],
        "last_shard_size": attrs["num_samples"] - (attrs["num_shards"] - 1) * attrs["shard_size"],
        "complete": len(committed) == attrs["num_shards"],
        "class_names": attrs["class_names"],
        "errors_by_kind": dict(sorted(Counter(e["kind"] for e in errors).items())),
        "bytes_on_disk": disk_usage(path),
        "config_hash": attrs["config_hash"],
        "config": attrs["config"],
        "source": attrs["source"],
        # where fitted statistics came from (tokenize --stats-from-data, kept by
        # --config-from) and the store a reused config came from; None when neither
        "fitted": attrs.get("fitted"),
        "config_from": attrs.get("config_from"),
        "arrays": {name: list(zarr.open_array(path / name, mode="r").shape)
                   for name in attrs["arrays"]},
    }


@dataclass
class ValidationReport:
    path: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shards_checked: int = 0
    advice: list[str] = field(default_factory=list)  # what to do about the problems

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_store(path: str | os.PathLike) -> ValidationReport:
    """Check markers, shapes, counts and checksums; every problem is named precisely."""
    path = Path(path)
    attrs = _require_attrs(path)
    report = ValidationReport(str(path))
    n = attrs["num_samples"]
    names = [*attrs["arrays"], *STANDARD_ARRAYS]
    arrays = {}
    for name in [*names, COMMITS, *attrs.get("static_arrays", [])]:
        try:
            arrays[name] = zarr.open_array(path / name, mode="r")
        except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
            report.problems.append(f"array {name!r} cannot be opened: {exc}")
    if report.problems:
        return report
    for name in names:
        if arrays[name].shape[0] != n:
            report.problems.append(f"array {name!r} has {arrays[name].shape[0]} rows, "
                                   f"attrs say {n} samples")
    if arrays[COMMITS].shape[0] != attrs["num_shards"]:
        report.problems.append(f"{COMMITS} has {arrays[COMMITS].shape[0]} entries, "
                               f"attrs say {attrs['num_shards']} shards")
    if report.problems:
        return report
    _check_origin(attrs, report)
    for shard, text in enumerate(arrays[COMMITS][:].tolist()):
        try:
            marker = parse_marker(text)
        except ValueError as exc:
            report.problems.append(f"shard {shard}: commit marker is not valid JSON ({exc}); "
                                   "rerun the writing command with --repair")
            continue
        if marker is None:
            report.problems.append(f"shard {shard} is not committed (no commit marker); "
                                   "rerun the writing command to finish the store")
            continue
        report.problems += shard_problems(path, shard, marker, attrs, arrays, names,
                                          verify_data=True)
        report.shards_checked += 1
    _advise_repair(attrs, report)
    partial = sorted(str(p.relative_to(path)) for p in path.rglob("*.partial"))
    if partial:
        report.warnings.append(f"{len(partial)} leftover temp file(s) of interrupted writes, "
                               f"e.g. {partial[0]}; a resumed run removes them")
    return report


def _advise_repair(attrs: dict, report: ValidationReport) -> None:
    """Damage only checksums show is invisible to a plain rerun: name the flag that fixes it."""
    damaged = [p for p in report.problems
               if "checksum does not match" in p or "cannot be read" in p]
    if damaged:
        maker = KIND_NAMES.get(attrs.get("kind"), ("store", "the command that wrote it"))[1]
        report.advice.append(
            f"{len(damaged)} shard array(s) fail their checksums or cannot be read: rerun the "
            f"command that wrote this store (`{maker} ...`, same arguments) with --repair to "
            "rewrite the damaged shards; a plain rerun does not verify checksums")


def _check_origin(attrs: dict, report: ValidationReport) -> None:
    """The recorded config must hash to the recorded config hash (else attrs were edited, and
    markers cannot say which config their data came from); another version is a warning:
    the data may be sound, but this mmtok resumes it only with --overwrite."""
    if not config_hash_intact(attrs):
        report.problems.append("the store's config does not hash to its recorded config_hash "
                               "(zarr.json was edited or damaged); its shards cannot be traced "
                               "to a config")
    if attrs.get("version") != __version__:
        report.warnings.append(f"written by mmtok {attrs.get('version')}, this is mmtok "
                               f"{__version__}; a rerun refuses to resume it without --overwrite")
