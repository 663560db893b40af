"""Conformance of tabular, from Parquet and CSV rows, with a small given schema (fitting
has its own tests in tests/modalities/test_tabular.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .base import Malformed, TokenizerConformance

# nested fields in their --set form ("a|b" per column, columns separated by commas)
SCHEMA = {"columns": ("x", "c"), "kinds": ("numeric", "categorical"),
          "vocabularies": "p|q", "numeric_params": "-2|-1|0|1|2", "max_row_bytes": 4096}


def rows(label: int, index: int) -> dict:
    rng = np.random.default_rng(index)
    x = (1.0 if label else -1.0) + 0.3 * rng.normal(size=2)
    return {"x": x.tolist(), "c": ["q" if label else "p", "r"]}  # "r": unseen, unknown id


class TestTabular(TokenizerConformance):
    modality = "tabular"
    options = SCHEMA
    extension = ".parquet"

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        data = rows(label, index)
        if index % 2:
            path = folder / f"{stem}.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["x", "c"])
                writer.writerows(zip(data["x"], data["c"]))
            return path
        path = folder / f"{stem}.parquet"
        pq.write_table(pa.table(data), path)
        return path

    def sample_ids(self, name: str) -> list[str]:
        if "zz_broken" in name:  # random bytes: not Parquet, one slot with its error
            return [name]
        return [f"{name}#0", f"{name}#1"]

    def malformed_inputs(self) -> dict[str, Malformed]:
        def cut(path: Path) -> None:
            pq.write_table(pa.table(rows(0, 0)), path)
            path.write_bytes(path.read_bytes()[:40])

        def nonfinite(path: Path) -> None:  # valid rows: the cells are flagged missing
            path.write_text("x,c\nnan,p\n")

        def huge(path: Path) -> None:
            path.write_text("x,c\n1," + "p" * 10000 + "\n")

        def ragged(path: Path) -> None:
            path.write_text("x,c\n1,p,extra\n")

        return {
            "cut.parquet": Malformed(cut, "decode_error", "truncated"),
            "nan.csv#0": Malformed(nonfinite, None, "nonfinite"),
            "huge.csv#0": Malformed(huge, "too_large", "absurd_size"),
            "ragged.csv#0": Malformed(ragged, "bad_row", "ragged"),
        }
