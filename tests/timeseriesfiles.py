"""Writers of time-series test files (CSV/TSV/Parquet through pyarrow, NPY/NPZ, UEA .ts)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def write_table(path: Path, values: np.ndarray, names: Sequence[str] | None = None,
                extra: dict[str, Sequence] | None = None) -> Path:
    """(T, C) values as a table with columns ``names`` (c0, c1, ...) plus ``extra`` columns
    first; the format follows the suffix (.csv, .tsv, .parquet), written by pyarrow."""
    import pyarrow as pa

    names = list(names or [f"c{i}" for i in range(values.shape[1])])
    columns = {**(extra or {}), **{n: values[:, i] for i, n in enumerate(names)}}
    table = pa.table(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, row_group_size=97)  # several row groups
    else:
        from pyarrow import csv

        csv.write_csv(table, path, csv.WriteOptions(
            delimiter="\t" if path.suffix == ".tsv" else ",", quoting_style="none"))
    return path


def format_ts_value(v: float) -> str:
    return "?" if np.isnan(v) else repr(float(v))


def write_ts(path: Path, cases: Sequence[np.ndarray], labels: Sequence[str] | None,
             classes: Sequence[str] | None = None, problem: str = "Test",
             equal_length: bool | None = None, dimensions: int | None = None,
             missing: bool | None = None) -> Path:
    """A UEA/sktime ``.ts`` file of (L_i, C) cases: one line a case, channels ':'-separated,
    values ','-separated, '?' for NaN, the class label last."""
    dims = dimensions if dimensions is not None else cases[0].shape[1]
    lengths = {len(c) for c in cases}
    equal = equal_length if equal_length is not None else len(lengths) == 1
    has_missing = missing if missing is not None else any(np.isnan(c).any() for c in cases)
    lines = [f"# written by the mmtok tests", f"@problemName {problem}", "@timeStamps false",
             f"@missing {str(has_missing).lower()}",
             f"@univariate {str(dims == 1).lower()}", f"@dimensions {dims}",
             f"@equalLength {str(equal).lower()}"]
    if equal:
        lines.append(f"@seriesLength {len(cases[0])}")
    if labels is not None:
        lines.append(f"@classLabel true {' '.join(classes or sorted(set(labels)))}")
    else:
        lines.append("@classLabel false")
    lines.append("@data")
    for i, case in enumerate(cases):
        fields = [",".join(format_ts_value(v) for v in case[:, c]) for c in range(case.shape[1])]
        if labels is not None:
            fields.append(labels[i])
        lines.append(":".join(fields))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def parse_ts_directly(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """An independent, plain parse of a ``.ts`` file: (L, C) float arrays and labels."""
    cases, labels, data = [], [], False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not data:
            data = line.lower() == "@data"
            continue
        *channels, label = line.split(":")
        cases.append(np.array([[float("nan") if v == "?" else float(v) for v in ch.split(",")]
                               for ch in channels]).T)
        labels.append(label)
    return cases, labels


def sine_cases(count: int, steps: int, channels: int, seed: int = 0,
               lengths: Sequence[int] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """A learnable two-class task: class 1's channel 0 oscillates three times faster and
    with three times the amplitude of class 0's; random phase and noise everywhere."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    cases = []
    for i in range(count):
        n = steps if lengths is None else lengths[i]
        t = np.arange(n)
        x = rng.normal(scale=0.3, size=(n, channels))
        freq = 2 * np.pi * (1 / 16 if labels[i] == 0 else 3 / 16)
        amplitude = rng.uniform(0.5, 1.0) * (1 if labels[i] == 0 else 3)
        x[:, 0] += amplitude * np.sin(freq * t + rng.uniform(0, 2 * np.pi))
        cases.append(x)
    return cases, labels
