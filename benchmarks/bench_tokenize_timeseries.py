#!/usr/bin/env python
"""Time-series tokenize against the read floor: a long 8-channel CSV cut into 96/48 windows,
and UEA ``.ts`` cases against sktime.

1. CSV: one file of R rows x 8 float channels. Floor: ``pyarrow.csv.read_csv`` of the file
   (all threads) + numpy windowing into a contiguous float32 (windows, 96, 8) array
   (``sliding_window_view`` every 48 steps, copied). mmtok: ``mmtok.tokenize(file,
   "timeseries", window=96, stride=48, scaling=none)``: listing (a line scan), each shard's
   rows read through the sparse row index, windows, per-window statistics and the
   Zstd-compressed Zarr writes. Goal: mmtok <= 1.5x the floor's wall time. Each contestant
   runs in a fresh child process (its peak RSS from ``wait4``; its time measured inside,
   imports excluded) at R and at R / 4: mmtok's peak RSS must stay flat (within 10 %),
   where the floor's grows with the file.
2. ``.ts``: N cases of 3 channels x 100 steps (some values missing). mmtok: tokenize the file
   (``window=100``); peer: sktime's ``load_from_tsfile(..., return_type="numpy3d")`` when
   sktime is installed (skipped otherwise). Goal: mmtok faster.

    .venv/bin/python benchmarks/bench_tokenize_timeseries.py            # 10M rows, 10,000 cases
    .venv/bin/python benchmarks/bench_tokenize_timeseries.py --quick    # 1M rows, 2,000 cases
    .venv/bin/python benchmarks/bench_tokenize_timeseries.py --rows 2000000 --json
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import (
    cpu_snapshot,
    describe_machine,
    foreign_cpu,
    foreign_cpu_notes,
    machine_line,
    result_row,
    result_section,
    standard_args,
    verdict,
    write_result,
    write_results_json,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_JSON = HERE / "results" / "tokenize_timeseries.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-tokenize-timeseries"
CHANNELS, WINDOW, STRIDE = 8, 96, 48
TIME_GOAL, RSS_GOAL = 1.5, 1.10
GEN_VERSION = 1

FLOOR = """
import sys, time
import numpy as np
from pyarrow import csv
t0 = time.perf_counter()
table = csv.read_csv(sys.argv[1])
x = np.stack([c.to_numpy() for c in table.columns], axis=1).astype(np.float32)
windows = np.lib.stride_tricks.sliding_window_view(x, {window}, axis=0)[::{stride}]
windows = np.ascontiguousarray(windows.transpose(0, 2, 1))
print(time.perf_counter() - t0, len(windows))
"""

MMTOK = """
import sys, time
import mmtok
import mmtok.pipeline  # the lazy imports (zarr, the registry) are not the work measured
from pyarrow import csv  # imported by the reader; excluded from the time, as the floor's
t0 = time.perf_counter()
s = mmtok.tokenize([sys.argv[1]], sys.argv[2], "timeseries", window={window}, stride={stride},
                   scaling="none", num_channels={channels}, progress=False)
assert s.num_invalid == 0, s.line()
print(time.perf_counter() - t0, s.num_samples)
"""

TS_MMTOK = """
import sys, time
import mmtok
import mmtok.pipeline  # the lazy imports (zarr, the registry) are not the work measured
from pyarrow import csv  # imported by the reader; excluded from the time, as the floor's
t0 = time.perf_counter()
s = mmtok.tokenize([sys.argv[1]], sys.argv[2], "timeseries", window=100, max_gap=4,
                   scaling="none", num_channels=3, progress=False)
assert s.num_invalid == 0, s.line()
print(time.perf_counter() - t0, s.num_samples)
"""

TS_SKTIME = """
import sys, time
from sktime.datasets import load_from_tsfile  # excluded from the time, as mmtok's imports
t0 = time.perf_counter()
x, y = load_from_tsfile(sys.argv[1], return_data_type="numpy3d")
print(time.perf_counter() - t0, len(x))
"""


def write_csv(path: Path, rows: int) -> Path:
    """``rows`` x 8 channels of random-walk floats (6 significant digits), written in blocks."""
    import numpy as np

    stamp = path.with_suffix(f".v{GEN_VERSION}-{rows}")
    if stamp.exists() and path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        handle.write(",".join(f"ch{c}" for c in range(CHANNELS)) + "\n")
        level = np.zeros(CHANNELS)
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            block = level + np.cumsum(rng.normal(size=(n, CHANNELS)), axis=0)
            level = block[-1]
            np.savetxt(handle, block, fmt="%.6g", delimiter=",")
    stamp.touch()
    return path


def write_ts_cases(path: Path, count: int) -> Path:
    import numpy as np

    stamp = path.with_suffix(f".v{GEN_VERSION}-{count}")
    if stamp.exists() and path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    lines = ["@problemName Bench", "@timeStamps false", "@missing true", "@univariate false",
             "@dimensions 3", "@equalLength true", "@seriesLength 100",
             "@classLabel true a b", "@data"]
    for i in range(count):
        x = np.round(rng.normal(size=(3, 100)), 4).astype(str)
        x[1, rng.integers(0, 100)] = "?"
        lines.append(":".join(",".join(ch) for ch in x) + ":" + "ab"[i % 2])
    path.write_text("\n".join(lines) + "\n")
    stamp.touch()
    return path


def run_child(code: str, *args: str) -> tuple[float, int, int]:
    """(seconds measured inside the child, its second output number, peak RSS bytes)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"child failed ({process.returncode}): {err[-3000:]}")
    seconds, count = out.split()[-2:]
    return float(seconds), int(count), usage.ru_maxrss * 1024


def csv_contest(workdir: Path, rows: int, reps: int) -> dict:
    path = write_csv(workdir / f"rows{rows}.csv", rows)
    store = workdir / "csv.zarr"
    floor_code = FLOOR.format(window=WINDOW, stride=STRIDE)
    mmtok_code = MMTOK.format(window=WINDOW, stride=STRIDE, channels=CHANNELS)
    best: dict[str, tuple[float, int]] = {}
    windows = {}
    for _ in range(reps):
        for name, code, extra in (("floor", floor_code, ()), ("mmtok", mmtok_code, (store,))):
            shutil.rmtree(store, ignore_errors=True)
            seconds, count, rss = run_child(code, path, *extra)
            windows[name] = count
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, max(rss, best.get(name, (0, 0))[1]))
            else:
                best[name] = (best[name][0], max(rss, best[name][1]))
    shutil.rmtree(store, ignore_errors=True)
    expected = (rows - WINDOW) // STRIDE + 1
    assert windows == {"floor": expected, "mmtok": expected}, windows
    return {"rows": rows, "bytes": path.stat().st_size, "windows": expected,
            "seconds": {k: round(v[0], 3) for k, v in best.items()},
            "peak_rss_mb": {k: round(v[1] / 2**20, 1) for k, v in best.items()}}


def ts_contest(workdir: Path, count: int, reps: int) -> dict:
    path = write_ts_cases(workdir / f"cases{count}.ts", count)
    store = workdir / "ts.zarr"
    try:
        import sktime  # noqa: F401

        has_sktime = True
    except ImportError:
        has_sktime = False
    times: dict[str, float] = {}
    for _ in range(reps):
        contestants = [("mmtok", TS_MMTOK, (store,))]
        if has_sktime:
            contestants.append(("sktime", TS_SKTIME, ()))
        for name, code, extra in contestants:
            shutil.rmtree(store, ignore_errors=True)
            seconds, got, _ = run_child(code, path, *extra)
            assert got == count, (name, got)
            times[name] = min(seconds, times.get(name, float("inf")))
    shutil.rmtree(store, ignore_errors=True)
    return {"cases": count, "seconds": {k: round(v, 3) for k, v in times.items()},
            "sktime": has_sktime}


def machine_info() -> dict:
    import numpy as np
    import pyarrow

    try:
        import sktime

        sk = sktime.__version__
    except ImportError:
        sk = None
    return describe_machine({"numpy": np.__version__, "pyarrow": pyarrow.__version__,
                             "sktime": sk})


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="1M rows, 2,000 cases, 1 repetition", reps=(2, 1),
                           reps_help="repetitions", workdir=DEFAULT_WORKDIR,
                           json_help=f"also write {RESULTS_JSON}")
    parser.add_sized("--rows", 10_000_000, 1_000_000, "CSV rows at the large size")
    parser.add_sized("--cases", 10_000, 2_000, ".ts cases")
    args = parser.parse_args(argv)
    rows, cases, reps = args.rows, args.cases, args.reps

    m = machine_info()
    print(machine_line(m))
    snapshot = cpu_snapshot()
    small = csv_contest(args.workdir, rows // 4, reps)
    large = csv_contest(args.workdir, rows, reps)
    ts = ts_contest(args.workdir, cases, reps)
    foreign, share = foreign_cpu(snapshot)

    ratio = large["seconds"]["mmtok"] / large["seconds"]["floor"]
    growth = large["peak_rss_mb"]["mmtok"] / small["peak_rss_mb"]["mmtok"]
    floor_growth = large["peak_rss_mb"]["floor"] / small["peak_rss_mb"]["floor"]
    print(f"\nCSV, {CHANNELS} channels, windows {WINDOW}/{STRIDE}, best of {reps}, each run in "
          "a fresh process (imports excluded)\n")
    print("| rows | MB | windows | floor: pyarrow read_csv + numpy windows (s) | mmtok tokenize "
          "(s) | mmtok / floor | peak RSS floor (MB) | peak RSS mmtok (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in (small, large):
        print(f"| {r['rows']:,} | {r['bytes'] / 1e6:.0f} | {r['windows']:,} | "
              f"{r['seconds']['floor']:.2f} | {r['seconds']['mmtok']:.2f} | "
              f"{r['seconds']['mmtok'] / r['seconds']['floor']:.2f}x | "
              f"{r['peak_rss_mb']['floor']:.0f} | {r['peak_rss_mb']['mmtok']:.0f} |")
    print(f"\nmmtok <= {TIME_GOAL}x floor at {rows:,} rows: {ratio:.2f}x "
          f"{verdict(ratio <= TIME_GOAL)}")
    print(f"mmtok peak RSS {rows // 4:,} -> {rows:,} rows: x{growth:.2f} (goal <= "
          f"x{RSS_GOAL:.2f}) {verdict(growth <= RSS_GOAL)}; the floor's: x{floor_growth:.2f}")
    if ts["sktime"]:
        ts_ratio = ts["seconds"]["sktime"] / ts["seconds"]["mmtok"]
        print(f"\n.ts, {cases:,} cases x 3 channels x 100 steps: mmtok "
              f"{ts['seconds']['mmtok']:.2f} s, sktime load_from_tsfile "
              f"{ts['seconds']['sktime']:.2f} s: mmtok {ts_ratio:.2f}x faster "
              f"{verdict(ts_ratio > 1)}")
    else:
        ts_ratio = None
        print(f"\n.ts, {cases:,} cases x 3 channels x 100 steps: mmtok "
              f"{ts['seconds']['mmtok']:.2f} s; sktime is not installed: peer skipped")
    notes = foreign_cpu_notes(foreign, share)
    for note in notes:
        print(note)

    results = {"csv": [small, large], "ts": ts, "ratio_to_floor": round(ratio, 3),
               "rss_growth": round(growth, 3), "floor_rss_growth": round(floor_growth, 3)}
    if args.json:
        write_results_json(RESULTS_JSON, {"machine": m, "reps": reps, **results},
                           announce=False)
    rows_out = [
        result_row(f"CSV {rows:,} x {CHANNELS}: mmtok tokenize", large["seconds"]["mmtok"], "s",
                   peer="pyarrow read_csv + numpy windowing (floor)",
                   peer_value=large["seconds"]["floor"], ratio=round(ratio, 3),
                   ratio_of="mmtok / floor (time)", goal=f"<= {TIME_GOAL}x",
                   passed=ratio <= TIME_GOAL),
        result_row(f"CSV peak RSS {rows // 4:,} -> {rows:,} rows", large["peak_rss_mb"]["mmtok"],
                   "MB", peer="floor peak RSS", peer_value=large["peak_rss_mb"]["floor"],
                   ratio=round(growth, 3), ratio_of="mmtok RSS growth",
                   goal=f"<= {RSS_GOAL}x", passed=growth <= RSS_GOAL),
        result_row(f".ts {cases:,} cases: mmtok tokenize", ts["seconds"]["mmtok"], "s",
                   peer="sktime load_from_tsfile" if ts["sktime"] else None,
                   peer_value=ts["seconds"].get("sktime"),
                   ratio=round(ts_ratio, 3) if ts_ratio else None,
                   ratio_of="sktime / mmtok (time)" if ts_ratio else None,
                   goal="> 1x" if ts_ratio else None,
                   passed=(ts_ratio > 1) if ts_ratio else None,
                   note=None if ts["sktime"] else "sktime not installed: peer skipped"),
    ]
    write_result(args.result, "tokenize_timeseries", "Time-series tokenize against the read floor",
                 [result_section(f"CSV windows {WINDOW}/{STRIDE}, .ts cases; best of {reps}",
                                 rows_out, notes=notes)],
                 quick=args.quick, params={"rows": rows, "cases": cases, "reps": reps},
                 machine=m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
