#!/usr/bin/env python
"""Tabular tokenize: mmtok against pyarrow + numpy and scikit-learn on one generated CSV.

One CSV of N rows x 20 columns (default N = 1,000,000: 10 numeric columns of normal,
log-normal and uniform floats, 10 categorical columns of 3 to 60 string categories; a few
empty cells), and in one run:

1. mmtok: ``mmtok.tokenize(csv, store, "tabular", stats_from_data=True, workers=1)`` in this
   process (listing, schema fit, quantile-to-normal transform, vocabulary ids, missing flags,
   Zstd-compressed Zarr writes included);
2. floor: ``pyarrow.csv.read_csv`` of the whole file, then the same fit and transform in
   numpy/pyarrow (mmtok's own quantile and ``index_in`` helpers on whole columns), nothing
   written; goal: mmtok <= 2x its time;
3. peer: scikit-learn ``ColumnTransformer([QuantileTransformer(output_distribution="normal",
   n_quantiles=1000, subsample=100000), OrdinalEncoder(handle_unknown=...)]).fit_transform``
   on the table pyarrow read (as pandas; the read is not timed for it); goal: mmtok no slower.
   mmtok's time includes reading the CSV (twice: the fit, then the tokenize pass) and
   writing its store; the peer's neither, so an informational row also times the peer from
   the file (``pyarrow.csv.read_csv(...).to_pandas()`` + the same ``fit_transform``);
4. peak RSS of a fresh process running 1. on N/4 and on N rows (``VmHWM``); goal: within 10 %
   (``--quick``: 100,000 and 400,000 rows; below ~70,000 rows a file is smaller than one of
   mmtok's read blocks, so its memory is, too).

Times are the median of ``--reps`` interleaved repetitions after one warm-up run of each
on the N/4 file (imports and first calls not timed; the file is in the page cache).
pyarrow's reader uses its thread pool; mmtok runs with one worker.

    .venv/bin/python benchmarks/bench_tokenize_tabular.py            # 1,000,000 rows
    .venv/bin/python benchmarks/bench_tokenize_tabular.py --quick    # 100,000 rows
    .venv/bin/python benchmarks/bench_tokenize_tabular.py --json     # also write results JSON
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import (
    cpu_snapshot,
    describe_machine,
    foreign_cpu,
    foreign_cpu_notes,
    interleaved_times,
    machine_line,
    result_row,
    result_section,
    standard_args,
    verdict,
    write_result,
    write_results_json,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_JSON = HERE / "results" / "tokenize_tabular.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-tokenize-tabular"
GEN_VERSION = 1
NUMERIC = [f"n{i}" for i in range(10)]
CATEGORICAL = [f"c{i}" for i in range(10)]
SKLEARN_FROM_FILE = "pyarrow read_csv -> pandas + sklearn fit_transform"
GOAL_FLOOR = 2.0
GOAL_RSS = 0.10


def generate(path: Path, rows: int) -> Path:
    """The CSV (reused when its stamp matches), written in blocks by pyarrow."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    stamp = path.with_suffix(".json")
    wanted = {"version": GEN_VERSION, "rows": rows}
    if path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    block = 100_000
    with pcsv.CSVWriter(str(path), pa.schema(
            [(n, pa.float64()) for n in NUMERIC] + [(c, pa.string()) for c in CATEGORICAL])) as out:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            columns = {}
            for i, name in enumerate(NUMERIC):
                x = (rng.normal(i, 1 + i, n) if i % 3 == 0 else rng.lognormal(0, 1, n)
                     if i % 3 == 1 else rng.uniform(-i, i + 1, n))
                x = np.round(x, 6)
                columns[name] = pa.array(x, mask=rng.random(n) < 0.002)
            for i, name in enumerate(CATEGORICAL):
                k = 3 + 7 * i  # 3 .. 66 categories, skewed
                codes = np.minimum(rng.geometric(2.0 / k, n) - 1, k - 1)
                values = np.array([f"{name}_{v}" for v in range(k)], dtype=object)[codes]
                columns[name] = pa.array(values, mask=rng.random(n) < 0.002)
            out.write_table(pa.table(columns))
    stamp.write_text(json.dumps(wanted))
    return path


def run_mmtok(path: Path, store: Path, rows: int) -> None:
    import mmtok
    from mmtok.modalities import rowfiles

    shutil.rmtree(store, ignore_errors=True)
    # a `mmtok tokenize` command is a fresh process: its row scan is not cached from the
    # previous repetition (the page cache is warm for every contestant alike)
    rowfiles._row_index.cache_clear()
    rowfiles._header_cached.cache_clear()
    summary = mmtok.tokenize(str(path), store, "tabular", stats_from_data=True, workers=1,
                             progress=False)
    assert summary.num_valid == rows, summary.line()


def run_floor(path: Path) -> dict:
    """pyarrow read of the whole file, then the same fit and transform on whole columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    from mmtok.modalities.tabular import schema

    table = pcsv.read_csv(str(path))
    n = table.num_rows
    stride = max(1, -(-n // 100_000))
    numeric = np.zeros((n, len(NUMERIC)), np.float32)
    categorical = np.zeros((n, len(CATEGORICAL)), np.int32)
    missing = np.zeros((n, len(NUMERIC) + len(CATEGORICAL)), bool)
    for j, name in enumerate(NUMERIC):
        values, _ = schema.as_float(table.column(name))
        gone = np.isnan(values)
        sample = values[::stride]
        q = np.asarray(schema.quantiles(sample[~np.isnan(sample)], 1000))
        out = schema.quantile_normal(np.where(gone, q[0], values), q)
        numeric[:, j] = np.where(gone, 0.0, out)
        missing[:, j] = gone
    for j, name in enumerate(CATEGORICAL):
        column = table.column(name)
        counts = pc.value_counts(column.drop_null())
        vocabulary = sorted(str(v) for v in counts.field("values").to_pylist())
        index = pc.index_in(column, value_set=pa.array(vocabulary, pa.string()))
        gone = column.is_null().to_numpy(zero_copy_only=False)
        ids = index.fill_null(len(vocabulary)).to_numpy(zero_copy_only=False)
        categorical[:, j] = np.where(gone, len(vocabulary) + 1, ids)
        missing[:, len(NUMERIC) + j] = gone
    return {"numeric": numeric, "categorical": categorical, "missing": missing}


def sklearn_peer():
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder, QuantileTransformer

    return ColumnTransformer([
        ("num", QuantileTransformer(output_distribution="normal", n_quantiles=1000,
                                    subsample=100_000, random_state=0), NUMERIC),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                               encoded_missing_value=-2), CATEGORICAL)])


PEAK_SCRIPT = """
import re, sys, mmtok
mmtok.tokenize(sys.argv[1], sys.argv[2], "tabular", stats_from_data=True, workers=1,
               progress=False, overwrite=True)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1)) / 1024)
"""


def peak_rss_mib(path: Path, store: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path), str(store)],
                          capture_output=True, text=True, env=env, check=True)
    shutil.rmtree(store, ignore_errors=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="100,000 rows, 1 repetition", reps=(2, 1),
                           reps_help="repetitions", workdir=DEFAULT_WORKDIR,
                           json_help=f"also write {RESULTS_JSON}")
    parser.add_sized("--rows", 1_000_000, 100_000, "rows")
    args = parser.parse_args(argv)
    rows, reps = args.rows, args.reps

    import pandas  # noqa: F401  (sklearn's ColumnTransformer selects columns by name)
    import pyarrow
    import pyarrow.csv as pcsv
    import sklearn

    machine = describe_machine({"numpy": np.__version__, "pyarrow": pyarrow.__version__,
                                "sklearn": sklearn.__version__})
    path = generate(args.workdir / f"table-{rows}.csv", rows)
    quarter = generate(args.workdir / f"table-{rows // 4}.csv", rows // 4)
    small, big = (100_000, 400_000) if args.quick else (rows // 4, rows)
    rss_files = {small: generate(args.workdir / f"table-{small}.csv", small),
                 big: generate(args.workdir / f"table-{big}.csv", big)}
    store = args.workdir / "table.zarr"
    frame = pcsv.read_csv(str(path)).to_pandas()
    print(machine_line(machine))
    print(f"{rows:,} rows x 20 columns ({path.stat().st_size / 2**20:.0f} MiB CSV), median "
          f"of {reps} repetitions\n")

    # warm-up on the quarter file: imports, pyarrow's and numpy's first-call costs
    run_mmtok(quarter, store, rows // 4)
    run_floor(quarter)
    sklearn_peer().fit_transform(frame.iloc[:10_000])
    start = cpu_snapshot()
    runs = {"mmtok tokenize --stats-from-data": lambda: run_mmtok(path, store, rows),
            "pyarrow read_csv + numpy fit/transform (floor)": lambda: run_floor(path),
            "sklearn ColumnTransformer fit_transform": lambda: sklearn_peer().fit_transform(frame),
            SKLEARN_FROM_FILE: lambda: sklearn_peer().fit_transform(
                pcsv.read_csv(str(path)).to_pandas())}
    every = interleaved_times(runs, reps)
    times = {k: float(np.median(v)) for k, v in every.items()}
    foreign, share = foreign_cpu(start)
    del frame
    peaks = {n: peak_rss_mib(p, args.workdir / "peak.zarr") for n, p in rss_files.items()}
    shutil.rmtree(store, ignore_errors=True)

    ours = times["mmtok tokenize --stats-from-data"]
    floor = times["pyarrow read_csv + numpy fit/transform (floor)"]
    peer = times["sklearn ColumnTransformer fit_transform"]
    growth = peaks[big] / peaks[small] - 1
    print("| contestant | s | min-max s | rows/s | time / mmtok |")
    print("|---|---:|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {min(every[name]):.2f}-{max(every[name]):.2f} | "
              f"{rows / t:,.0f} | {t / ours:.2f}x |")
    print()
    print(f"- mmtok / floor time: {ours / floor:.2f}x (goal <= {GOAL_FLOOR:g}x): "
          f"{verdict(ours <= GOAL_FLOOR * floor)}")
    print(f"- mmtok vs sklearn: {peer / ours:.2f}x faster (goal >= 1x): {verdict(ours <= peer)}")
    print(f"- mmtok vs sklearn from the file (read_csv + to_pandas timed too; "
          f"informational): {times[SKLEARN_FROM_FILE] / ours:.2f}x faster")
    print(f"- peak RSS: {peaks[small]:.0f} MiB at {small:,} rows, {peaks[big]:.0f} MiB "
          f"at {big:,} rows ({growth:+.1%}; goal within {GOAL_RSS:.0%}): "
          f"{verdict(abs(growth) <= GOAL_RSS)}")
    notes = foreign_cpu_notes(foreign, share)
    for note in notes:
        print(f"- {note}")

    rows_out = [
        result_row("mmtok tokenize --stats-from-data", round(ours, 2), "s",
                   peer="pyarrow read_csv + numpy fit/transform (floor)",
                   peer_value=round(floor, 2), ratio=round(ours / floor, 3),
                   ratio_of="mmtok time / floor time", goal=f"<= {GOAL_FLOOR:g}x",
                   passed=ours <= GOAL_FLOOR * floor),
        result_row("mmtok tokenize --stats-from-data", round(ours, 2), "s",
                   peer="sklearn ColumnTransformer fit_transform", peer_value=round(peer, 2),
                   ratio=round(peer / ours, 3), ratio_of="peer time / mmtok time",
                   goal=">= 1x", passed=ours <= peer),
        result_row("mmtok tokenize --stats-from-data", round(ours, 2), "s",
                   peer=SKLEARN_FROM_FILE, peer_value=round(times[SKLEARN_FROM_FILE], 2),
                   ratio=round(times[SKLEARN_FROM_FILE] / ours, 3),
                   ratio_of="peer time / mmtok time",
                   note="informational: the peer reads the CSV too, as mmtok does"),
        result_row(f"mmtok peak RSS, {big:,} rows", round(peaks[big], 1), "MiB",
                   peer=f"{small:,} rows", peer_value=round(peaks[small], 1),
                   ratio=round(1 + growth, 3), ratio_of="peak at N / peak at N/4",
                   goal=f"within {GOAL_RSS:.0%}", passed=abs(growth) <= GOAL_RSS),
    ]
    if args.json:
        write_results_json(RESULTS_JSON, {"machine": machine, "rows": rows, "reps": reps,
                                          "seconds": times, "every_seconds": every,
                                          "peak_rss_mib": peaks},
                           announce=False)
    write_result(args.result, "tokenize_tabular", "Tabular tokenize against pyarrow + numpy "
                 "and scikit-learn", [result_section(f"{rows:,} rows x 20 columns, median of "
                                                     f"{reps}", rows_out, notes=notes)],
                 quick=args.quick, params={"rows": rows, "reps": reps}, machine=machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
