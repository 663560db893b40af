#!/usr/bin/env python
"""Run every ``benchmarks/bench_*.py`` and write one Markdown report.

Each benchmark runs in its own subprocess as ``python bench_x.py --result FILE [--quick]``
and writes its figures to FILE (the result format: see README.md, "Result format"). A
benchmark that fails, times out or writes no result is reported as such, and the others
still run. The report lists the machine and library versions, every goal with its figure,
peer, ratio and PASS/FAIL, peak memory as the data grows, then each benchmark's sections
(the GPU section says "skipped: no CUDA" on a machine without one).

Outputs: ``benchmarks/results/report-STAMP.md`` plus, per benchmark, the result JSON and the
full log under ``benchmarks/results/STAMP/``; ``--publish`` also writes the report to
``docs/benchmarks.md`` (the copy the README links to).

    .venv/bin/python benchmarks/report.py --publish          # everything, full sizes
    .venv/bin/python benchmarks/report.py --quick            # small sizes (smoke run)
    .venv/bin/python benchmarks/report.py --quick --only fps,fbank
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from _common import describe_machine, utc_now

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PUBLISHED = ROOT / "docs" / "benchmarks.md"
LIBRARIES = ("mmtok", "torch", "timm", "numpy", "zarr", "numba", "pillow", "librosa", "soxr",
             "scipy", "open3d", "fpsample", "triton")
TAIL_LINES = 25


@dataclass
class Run:
    """One benchmark's run: how it ended and what it wrote."""

    name: str
    script: Path
    status: str                      # "ok", "failed (exit N)", "timed out", "no result"
    seconds: float
    result: dict | None = None
    tail: list[str] = field(default_factory=list)

    @property
    def goal_rows(self) -> list[dict]:
        return [row for section in (self.result or {}).get("sections", [])
                for row in section["rows"] if row.get("pass") is not None]


# --------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------


def discover(bench_dir: Path, only: list[str] | None) -> list[Path]:
    """``bench_*.py`` in ``bench_dir``, sorted; ``only`` keeps the named ones (``fps`` or
    ``bench_fps``); an unknown name is an error, so a typo does not pass as an empty run."""
    scripts = sorted(bench_dir.glob("bench_*.py"))
    if not only:
        return scripts
    by_name = {bench_name(p): p for p in scripts}
    wanted = [n.strip().removeprefix("bench_").removesuffix(".py") for n in only if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}; "
                         f"there are: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def bench_name(script: Path) -> str:
    return script.stem.removeprefix("bench_")


def run_benchmark(script: Path, out_dir: Path, quick: bool, timeout: float) -> Run:
    """Run one script in a subprocess (output to a log file), then read its result."""
    name = bench_name(script)
    result_path, log_path = out_dir / f"{name}.json", out_dir / f"{name}.log"
    command = [sys.executable, str(script), "--result", str(result_path)]
    command += ["--quick"] if quick else []
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False).returncode
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - started
    tail = log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    result = None
    if status == "ok":
        try:
            result = json.loads(result_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            status = f"no result ({type(exc).__name__})"
    print(f"[{name}] {status} in {seconds:.0f} s", flush=True)
    return Run(name, script, status, seconds, result, tail)


# --------------------------------------------------------------------------------------
# the machine
# --------------------------------------------------------------------------------------


def gpu_description() -> str:
    """The CUDA devices torch sees, or why there are none."""
    try:
        import torch
    except ImportError:
        return "unknown (torch not installed)"
    if not torch.cuda.is_available():
        return "none (CUDA not available)"
    names = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        names.append(f"{props.name} ({props.total_memory / 2**30:.0f} GiB)")
    return f"{', '.join(names)}; CUDA {torch.version.cuda}"


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries the benchmarks use (missing ones left out)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty.strip() else "")


def describe() -> dict:
    """:func:`_common.describe_machine`'s description plus the GPU, the installed library
    versions and the mmtok revision."""
    return {**describe_machine({}), "gpu": gpu_description(),
            "libraries": library_versions(), "revision": git_revision()}


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------


def number(value) -> str:
    """A figure for a table: a few significant digits, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    magnitude = abs(value)
    if magnitude == 0 or 1e-3 <= magnitude < 1e6:
        return f"{value:,.1f}" if magnitude >= 100 else f"{value:.3g}"
    return f"{value:.2e}"


def verdict_cell(row: dict) -> str:
    return {True: "PASS", False: "**FAIL**", None: "-"}[row.get("pass")]


def ratio_cell(row: dict) -> str:
    if row.get("ratio") is None:
        return "-"
    return f"{row['ratio']:.3g}x" + (f" {row['ratio_of']}" if row.get("ratio_of") else "")


def value_cell(value, unit: str) -> str:
    return number(value) + (f" {unit}" if unit and value is not None else "")


ROW_HEADER = ["| Figure | Value | Peer | Peer value | Ratio | Goal | Result |",
              "|---|---:|---|---:|---:|---|---|"]


def cell(text: str) -> str:
    """Text for a table cell: a bare ``|`` would end the cell."""
    return text.replace("|", "\\|")


def row_line(row: dict, prefix: str = "") -> str:
    figure = row["figure"] + (f" ({row['note']})" if row.get("note") else "")
    cells = [figure, value_cell(row["value"], row["unit"]), row.get("peer") or "-",
             value_cell(row.get("peer_value"), row["unit"]), ratio_cell(row),
             row.get("goal") or "-", verdict_cell(row)]
    return f"| {prefix}" + " | ".join(cell(c) for c in cells) + " |"


def header_lines(machine: dict, quick: bool, date: str, command: str) -> list[str]:
    mode = ("**quick** (small sizes, few repetitions: checks that every benchmark runs; "
            "the figures are indicative only)" if quick else "full (default sizes)")
    libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    return [
        "# mmtok benchmarks", "",
        "Generated by `benchmarks/report.py`; do not edit by hand (rerun it: see "
        "[benchmarks/README.md](../benchmarks/README.md)).", "",
        f"- Mode: {mode}",
        f"- Date: {date}",
        f"- Command: `{command}`",
        f"- mmtok revision: {machine['revision']}", "",
        "## Machine", "",
        "| | |", "|---|---|",
        (f"| CPU | {machine['cpu_model']}, {machine['cpu_count']} cores "
         f"({machine['cpus_usable']} usable) |"),
        f"| Memory | {machine['mem_total_gib']} GiB |",
        f"| GPU | {machine['gpu']} |",
        f"| System | {machine['platform']}, Python {machine['python']} |",
        f"| Libraries | {libraries} |", "",
    ]


def summary_lines(runs: list[Run]) -> list[str]:
    lines = ["## Summary", "", "| Benchmark | Status | Goals passed | Wall time |",
             "|---|---|---:|---:|"]
    for run in runs:
        goals = run.goal_rows
        passed = f"{sum(bool(r['pass']) for r in goals)} / {len(goals)}" if goals else "-"
        status = run.status if run.status == "ok" else f"**{run.status}**"
        lines.append(f"| [{run.name}](#{anchor(run)}) | {status} | {passed} "
                     f"| {run.seconds:.0f} s |")
    return lines + [""]


def anchor(run: Run) -> str:
    return f"bench-{run.name.replace('_', '-')}"


def collected_lines(title: str, intro: str, rows: list[tuple[Run, dict]]) -> list[str]:
    """A table gathering rows from every benchmark (goals, memory), benchmark name first."""
    if not rows:
        return []
    lines = [f"## {title}", "", intro, "",
             "| Benchmark | Figure | Value | Peer | Peer value | Ratio | Goal | Result |",
             "|---|---|---:|---|---:|---:|---|---|"]
    lines += [row_line(row, prefix=f"{run.name} | ") for run, row in rows]
    return lines + [""]


def benchmark_lines(run: Run) -> list[str]:
    title = (run.result or {}).get("title", run.name)
    lines = [f'<a id="{anchor(run)}"></a>', "",
             f"## {title} (`benchmarks/{run.script.name}`)", ""]
    if run.result is None:
        lines += [f"Status: **{run.status}** after {run.seconds:.0f} s. Last lines of its log:",
                  "", "```", *run.tail, "```", ""]
        return lines
    params = ", ".join(f"{k} {v}" for k, v in run.result.get("params", {}).items())
    lines += [f"Parameters: {params or '-'}; wall time {run.seconds:.0f} s.", ""]
    for section in run.result.get("sections", []):
        lines += [f"### {section['title']}", ""]
        if section.get("skipped"):
            lines += [f"skipped: {section['skipped']}", ""]
            continue
        lines += ROW_HEADER + [row_line(row) for row in section["rows"]] + [""]
        lines += [f"- {note}" for note in section.get("notes", [])]
        lines += [""] if section.get("notes") else []
    return lines


def render(runs: list[Run], machine: dict, quick: bool, date: str, command: str) -> str:
    goals = [(run, row) for run in runs for row in run.goal_rows]
    memory = [(run, row) for run in runs for s in (run.result or {}).get("sections", [])
              for row in s["rows"] if row.get("unit") in ("MiB", "GiB")]
    skipped = [f"{run.name}: {s['title']}: skipped: {s['skipped']}" for run in runs
               for s in (run.result or {}).get("sections", []) if s.get("skipped")]
    lines = header_lines(machine, quick, date, command) + summary_lines(runs)
    lines += collected_lines("Goals", "Every figure that has a goal; ratios are the "
                             "benchmark's own (see its section for the other rows).", goals)
    lines += collected_lines("Peak memory as the data grows", "Peak resident memory of a "
                             "fresh process at two data sizes.", memory)
    if skipped:
        lines += ["## Skipped sections", ""] + [f"- {s}" for s in skipped] + [""]
    for run in runs:
        lines += benchmark_lines(run)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="pass --quick to every benchmark (small sizes)")
    parser.add_argument("--only", default=None,
                        help="comma-separated benchmark names (e.g. fps,fbank); default all")
    parser.add_argument("--publish", action="store_true",
                        help=f"also write the report to {PUBLISHED.relative_to(ROOT)}")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results",
                        help="where the timestamped report, result JSONs and logs go")
    parser.add_argument("--bench-dir", type=Path, default=HERE,
                        help="where to look for bench_*.py (default: this folder)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per benchmark before it is stopped (default 3600; "
                             "900 with --quick)")
    args = parser.parse_args(argv)
    scripts = discover(args.bench_dir, args.only.split(",") if args.only else None)
    if not scripts:
        parser.error(f"no bench_*.py in {args.bench_dir}")
    timeout = args.timeout or (900 if args.quick else 3600)
    date = utc_now()
    stamp = date.replace("-", "").replace(":", "")
    out_dir = args.results_dir / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = describe()
    runs = [run_benchmark(script, out_dir, args.quick, timeout) for script in scripts]
    command = "python benchmarks/report.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(runs, machine, args.quick, date, command.strip())
    report = args.results_dir / f"report-{stamp}.md"
    report.write_text(text)
    print(f"wrote {report} (results and logs in {out_dir})")
    if args.publish:
        PUBLISHED.write_text(text)
        print(f"wrote {PUBLISHED}")
    failed = [run.name for run in runs if run.status != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
