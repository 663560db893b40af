"""Conformance of timeseries and imu (3 channels, 32-step windows), from NPY recordings, CSV
recordings and single-case .ts files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from timeseriesfiles import write_table, write_ts

from .base import Malformed, TokenizerConformance

STEPS = 32  # every recording is one window of the tiny options (window 32, stride 16)


def series(label: int, index: int, steps: int = STEPS) -> np.ndarray:
    """Class 1's first channel swings three times wider and faster than class 0's."""
    rng = np.random.default_rng(index)
    t = np.arange(steps)
    x = 0.3 * rng.normal(size=(steps, 3))
    x[:, 0] += (3.0 if label else 1.0) * np.sin(2 * np.pi * (3 if label else 1) / 16 * t
                                                 + rng.uniform(0, 6.3))
    return x


def npy_bomb(path: Path) -> None:
    """A header declaring 10^12 x 3 float64 steps over 24 bytes of data."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (10 ** 12, 3)}
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(np.zeros(3).tobytes())


def cut_npy(path: Path) -> None:
    np.save(path, series(0, 0))
    path.write_bytes(path.read_bytes()[:200])


def saved(values: np.ndarray):
    return lambda path: np.save(path, values)


class TimeSeriesConformance(TokenizerConformance):
    extension = ".npy"
    # the same 32 steps padded to windows of 40 and 48 (tail=pad keeps a recording shorter
    # than its window as one padded window)
    padding_variants = ({"window": 40, "tail": "pad"}, {"window": 48, "tail": "pad"})

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        values = series(label, index)
        kind = index % 3
        if kind == 0:
            path = folder / f"{stem}.npy"
            np.save(path, values)
        elif kind == 1:
            path = write_table(folder / f"{stem}.csv", values)
        else:
            path = write_ts(folder / f"{stem}.ts", [values], None)  # folder labels
        return path

    def sample_ids(self, name: str) -> list[str]:
        if "zz_broken" in name:  # random bytes: listing fails, one slot with its error
            return [name]
        return [f"{name}#0"] if name.endswith(".ts") else [f"{name}#t=0"]

    def malformed_inputs(self) -> dict[str, Malformed]:
        infinite, missing = series(0, 1), series(0, 2)
        infinite[5, 1] = np.inf
        missing[5:9, 2] = np.nan
        ragged = "c0,c1,c2\n" + "\n".join("1,2,3" if i != 7 else "1,2" for i in range(STEPS))
        text = "c0,c1,c2\n" + "\n".join(f"{i},2,3" if i != 7 else "x1,2,3" for i in range(STEPS))
        return {
            # the header's size against the file's, when listing: one slot, no windows
            "cut.npy": Malformed(cut_npy, "truncated", "truncated"),
            "inf.npy#t=0": Malformed(saved(infinite), "bad_value", "nonfinite"),
            "gap.npy#t=0": Malformed(saved(missing), "missing_values", "nonfinite"),
            "bomb.npy": Malformed(npy_bomb, "truncated", "absurd_size"),
            "short.npy": Malformed(saved(series(0, 3, 10)), "too_short", "short"),
            "ragged.csv": Malformed(lambda p: p.write_text(ragged + "\n"), "ragged_rows",
                                        "ragged"),
            "text.csv": Malformed(lambda p: p.write_text(text + "\n"), "bad_value", "text"),
            "header.ts#0": Malformed(lambda p: write_ts(p, [series(0, 4)], None,
                                                        dimensions=2), "bad_header", "header"),
        }


class TestTimeSeries(TimeSeriesConformance):
    modality = "timeseries"


class TestImu(TimeSeriesConformance):
    modality = "imu"
