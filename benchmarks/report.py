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

The GPU check (``benchmarks/gpu_check.sh`` runs it on a GPU machine): ``--gpu-only`` runs
each named benchmark's GPU sections alone (``bench_x.py --gpu-only``), ``--gpu-tests`` first
runs the tests marked ``gpu`` and puts their outcome in the same report, ``--budget`` keeps
the whole run inside a time limit. docs/benchmarks.md keeps that report in a block of its
own at its end: ``--publish`` of a CPU report leaves the block as it is, ``--publish`` of a
GPU report (or ``--publish-gpu FILE``, for a report made on another machine) replaces it.

    .venv/bin/python benchmarks/report.py --publish          # everything, full sizes
    .venv/bin/python benchmarks/report.py --quick            # small sizes (smoke run)
    .venv/bin/python benchmarks/report.py --quick --only fps,fbank
    .venv/bin/python benchmarks/report.py --gpu-only --gpu-tests --only fps,knn --budget 450
    .venv/bin/python benchmarks/report.py --publish-gpu gpu_report.md
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from _common import describe_machine, utc_now

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PUBLISHED = ROOT / "docs" / "benchmarks.md"
TESTS = ROOT / "tests"
GPU_MARK = "pytest.mark.gpu"
GPU_BLOCK_START = ("<!-- gpu-check: start (the GPU check's report: written by `benchmarks/report.py "
                   "--publish-gpu FILE`, kept by the CPU report) -->")
GPU_BLOCK_END = "<!-- gpu-check: end -->"
GPU_PLACEHOLDER = """## GPU check

Not run on a GPU machine yet. `benchmarks/gpu_check.sh` runs the tests marked `gpu` and the
benchmarks' GPU sections (FPS, KNN, patchify, points tokenize, embed) in one call of under
8 minutes and writes one report; `python benchmarks/report.py --publish-gpu gpu_report.md`
puts it here. See [benchmarks/README.md](../benchmarks/README.md), "The GPU check".
"""
LIBRARIES = ("mmtok", "torch", "timm", "numpy", "zarr", "numba", "pillow", "librosa", "soxr",
             "scipy", "open3d", "fpsample", "triton")
TAIL_LINES = 25


@dataclass
class Run:
    """One benchmark's run: how it ended and what it wrote."""

    name: str
    script: Path
    status: str                      # "ok", "failed (exit N)", "timed out", "no result",
    seconds: float                   # "not run (...)"
    result: dict | None = None
    tail: list[str] = field(default_factory=list)
    gpu_only: bool = False           # run with --gpu-only (a GPU check)

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


def run_benchmark(script: Path, out_dir: Path, quick: bool, timeout: float,
                  gpu_only: bool = False) -> Run:
    """Run one script in a subprocess (output to a log file), then read its result."""
    name = bench_name(script)
    result_path, log_path = out_dir / f"{name}.json", out_dir / f"{name}.log"
    command = [sys.executable, str(script), "--result", str(result_path)]
    command += ["--quick"] if quick else []
    command += ["--gpu-only"] if gpu_only else []
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
    return Run(name, script, status, seconds, result, tail, gpu_only)


MIN_RUN_SECONDS = 10  # a run that would get less than this is not started


class Budget:
    """The time left of ``--budget`` seconds (None: no limit) for the runs still to start."""

    def __init__(self, seconds: float | None) -> None:
        self.deadline = None if seconds is None else time.perf_counter() + seconds

    def timeout(self, limit: float) -> float | None:
        """``limit``, shortened to what is left; None when too little is left to start."""
        if self.deadline is None:
            return limit
        left = self.deadline - time.perf_counter()
        return min(limit, left) if left >= MIN_RUN_SECONDS else None


def run_all(scripts: list[Path], out_dir: Path, quick: bool, timeout: float,
            gpu_only: bool, budget: Budget) -> list[Run]:
    runs = []
    for script in scripts:
        limit = budget.timeout(timeout)
        if limit is None:
            runs.append(Run(bench_name(script), script, "not run (time budget spent)", 0.0,
                            gpu_only=gpu_only))
            print(f"[{bench_name(script)}] not run: the time budget is spent", flush=True)
            continue
        runs.append(run_benchmark(script, out_dir, quick, limit, gpu_only))
    return runs


# --------------------------------------------------------------------------------------
# the tests marked gpu (--gpu-tests)
# --------------------------------------------------------------------------------------


@dataclass
class TestRun:
    """The outcome of ``pytest -m gpu`` on every test file holding a gpu mark."""

    __test__ = False  # not a test class, whatever its name says to pytest

    status: str                      # "ok", "failed (exit N)", "timed out after N s", ...
    seconds: float
    command: str
    cases: list[dict] = field(default_factory=list)  # name, outcome, seconds, message
    tail: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        outcomes = [case["outcome"] for case in self.cases]
        return {o: outcomes.count(o) for o in ("passed", "failed", "error", "skipped")}

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def gpu_test_files(tests: Path = TESTS) -> list[Path]:
    """The test files that use ``pytest.mark.gpu`` in their code (only these are collected,
    so a module needing a library the GPU machine lacks cannot stop the run)."""
    return sorted(p for p in tests.rglob("test_*.py") if uses_gpu_mark(p.read_text()))


def uses_gpu_mark(source: str) -> bool:
    """Whether ``pytest.mark.gpu`` appears as code (a decorator, ``pytestmark``, a param's
    marks), not merely inside a string."""
    if GPU_MARK not in source:
        return False
    return any(isinstance(node, ast.Attribute) and ast.unparse(node) == GPU_MARK
               for node in ast.walk(ast.parse(source)))


def junit_cases(path: Path) -> list[dict]:
    """Every test case in a pytest ``--junitxml`` file: name, outcome, seconds, message."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            found = case.find(tag)
            if found is not None:
                outcome = name  # a skip's reason is its message; a failure's, its traceback
                message = (found.get("message") if tag == "skipped" else found.text) or ""
                break
        cases.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0), "message": message.strip()})
    return cases


def run_gpu_tests(out_dir: Path, timeout: float | None, files: list[Path] | None = None) -> TestRun:
    """``pytest -m gpu`` on :func:`gpu_test_files`, log and JUnit XML into ``out_dir``."""
    files = gpu_test_files() if files is None else files
    junit, log_path = out_dir / "gpu_tests.xml", out_dir / "gpu_tests.log"
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
               f"--junitxml={junit}", *(os.path.relpath(f, ROOT) for f in files)]
    shown = "python " + " ".join(command[1:]).replace(str(junit), "gpu_tests.xml")
    if not files:
        return TestRun("no test file holds a gpu mark", 0.0, shown)
    if timeout is None:
        return TestRun("not run (time budget spent)", 0.0, shown)
    print(f"[gpu tests] {shown}", flush=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False).returncode
            status = {0: "ok", 5: "no test collected"}.get(code, f"failed (exit {code})")
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
    seconds = time.perf_counter() - started
    tail = log_path.read_text(errors="replace").splitlines()[-TAIL_LINES:]
    cases = junit_cases(junit) if junit.is_file() else []
    if status == "ok" and not any(case["outcome"] == "passed" for case in cases):
        status = "no test passed (all skipped)"  # on a GPU machine: CUDA or Triton unusable
    print(f"[gpu tests] {status} in {seconds:.0f} s", flush=True)
    return TestRun(status, seconds, shown, cases, tail)


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


def header_lines(machine: dict, quick: bool, date: str, command: str,
                 gpu_only: bool = False) -> list[str]:
    mode = ("**quick** (small sizes, few repetitions: checks that every benchmark runs; "
            "the figures are indicative only)" if quick else "full (default sizes)")
    if gpu_only:
        mode += "; the GPU sections alone (`--gpu-only`)"
    libraries = ", ".join(f"{k} {v}" for k, v in machine["libraries"].items())
    return [
        "# mmtok GPU check" if gpu_only else "# mmtok benchmarks", "",
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


def summary_lines(runs: list[Run], tests: TestRun | None = None) -> list[str]:
    lines = ["## Summary", "", "| Benchmark | Status | Goals passed | Wall time |",
             "|---|---|---:|---:|"]
    if tests is not None:
        counts = tests.counts
        passed = f"{counts['passed']} / {len(tests.cases)} tests" if tests.cases else "-"
        status = tests.status if tests.ok else f"**{tests.status}**"
        lines.append(f"| [tests marked gpu](#{TESTS_ANCHOR}) | {status} | {passed} "
                     f"| {tests.seconds:.0f} s |")
    for run in runs:
        goals = run.goal_rows
        passed = f"{sum(bool(r['pass']) for r in goals)} / {len(goals)}" if goals else "-"
        status = run.status if run.status == "ok" else f"**{run.status}**"
        lines.append(f"| [{run.name}](#{anchor(run)}) | {status} | {passed} "
                     f"| {run.seconds:.0f} s |")
    return lines + [""]


def anchor(run: Run) -> str:
    """The report's link target for a benchmark (``gpu-bench-...`` in a GPU report, which
    docs/benchmarks.md holds beside the CPU report's ``bench-...``)."""
    prefix = "gpu-bench" if run.gpu_only else "bench"
    return f"{prefix}-{run.name.replace('_', '-')}"


TESTS_ANCHOR = "gpu-tests"


def tests_lines(tests: TestRun) -> list[str]:
    """The tests marked gpu: status, counts, one row per test, failure messages."""
    counts = tests.counts
    lines = [f'<a id="{TESTS_ANCHOR}"></a>', "", "## Tests marked gpu", "",
             f"Command: `{tests.command}`", "",
             f"Status: **{tests.status}** after {tests.seconds:.0f} s; " + ", ".join(
                 f"{n} {outcome}" for outcome, n in counts.items()) + ".", ""]
    if tests.cases:
        lines += ["| Test | Outcome | Seconds |", "|---|---|---:|"]
        for case in tests.cases:
            outcome = case["outcome"] if case["outcome"] == "passed" else f"**{case['outcome']}**"
            lines.append(f"| {cell(case['name'])} | {outcome} | {case['seconds']:.1f} |")
        lines.append("")
    for case in tests.cases:
        if case["outcome"] in ("failed", "error", "skipped") and case["message"]:
            lines += [f"{case['outcome']}: `{case['name']}`", "", "```",
                      *case["message"].splitlines()[-TAIL_LINES:], "```", ""]
    if not tests.ok and not tests.cases and tests.tail:
        lines += ["Last lines of its log:", "", "```", *tests.tail, "```", ""]
    return lines


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


def render(runs: list[Run], machine: dict, quick: bool, date: str, command: str,
           gpu_only: bool = False, tests: TestRun | None = None) -> str:
    goals = [(run, row) for run in runs for row in run.goal_rows]
    memory = [(run, row) for run in runs for s in (run.result or {}).get("sections", [])
              for row in s["rows"] if row.get("unit") in ("MiB", "GiB")]
    skipped = [f"{run.name}: {s['title']}: skipped: {s['skipped']}" for run in runs
               for s in (run.result or {}).get("sections", []) if s.get("skipped")]
    lines = header_lines(machine, quick, date, command, gpu_only) + summary_lines(runs, tests)
    lines += collected_lines("Goals", "Every figure that has a goal; ratios are the "
                             "benchmark's own (see its section for the other rows).", goals)
    lines += collected_lines("Peak memory as the data grows", "Peak resident memory of a "
                             "fresh process at two data sizes.", memory)
    if skipped:
        lines += ["## Skipped sections", ""] + [f"- {s}" for s in skipped] + [""]
    if tests is not None:
        lines += tests_lines(tests)
    for run in runs:
        lines += benchmark_lines(run)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# publishing into docs/benchmarks.md
# --------------------------------------------------------------------------------------


def demoted(report: str) -> str:
    """A whole report one heading level down (``#`` -> ``##``), code blocks left alone, so
    that it sits under the page's own title."""
    lines, fenced = [], False
    for line in report.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(lines)


def split_gpu_block(page: str) -> tuple[str, str | None]:
    """(the page without its GPU block, the block's inside, or None when it has none)."""
    start, end = page.find(GPU_BLOCK_START), page.find(GPU_BLOCK_END)
    if start < 0 or end < start:
        return page, None
    inside = page[start + len(GPU_BLOCK_START):end].strip("\n")
    return (page[:start] + page[end + len(GPU_BLOCK_END):]).rstrip("\n") + "\n", inside


def with_gpu_block(page: str, inside: str) -> str:
    """``page`` (its own GPU block dropped) with ``inside`` as its GPU block, at its end."""
    body, _ = split_gpu_block(page)
    return f"{body.rstrip()}\n\n{GPU_BLOCK_START}\n\n{inside.strip()}\n\n{GPU_BLOCK_END}\n"


def publish_cpu(report: str, page: Path | None = None) -> None:
    """The CPU report as the page (default docs/benchmarks.md); the page's GPU block (or
    the placeholder) kept after it."""
    page = page or PUBLISHED
    old = page.read_text() if page.is_file() else ""
    _, inside = split_gpu_block(old)
    page.write_text(with_gpu_block(report, inside or GPU_PLACEHOLDER))


def publish_gpu(report: str, page: Path | None = None) -> None:
    """A GPU check's report as the page's (default docs/benchmarks.md) GPU block; the CPU
    report above it untouched."""
    page = page or PUBLISHED
    if not report.startswith("# mmtok GPU check"):
        raise SystemExit("that file is not a GPU check report (benchmarks/gpu_check.sh "
                         "writes one: gpu_report.md); nothing published")
    old = page.read_text() if page.is_file() else "# mmtok benchmarks\n"
    page.write_text(with_gpu_block(old, demoted(report)))


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="pass --quick to every benchmark (small sizes)")
    parser.add_argument("--only", default=None,
                        help="comma-separated benchmark names (e.g. fps,fbank); default all")
    parser.add_argument("--publish", action="store_true",
                        help="also write the report to docs/benchmarks.md")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results",
                        help="where the timestamped report, result JSONs and logs go")
    parser.add_argument("--bench-dir", type=Path, default=HERE,
                        help="where to look for bench_*.py (default: this folder)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per benchmark before it is stopped (default 3600; "
                             "900 with --quick)")
    parser.add_argument("--gpu-only", action="store_true",
                        help="the GPU check: run each benchmark's GPU sections alone "
                             "(bench_x.py --gpu-only; name the benchmarks that have them "
                             "with --only)")
    parser.add_argument("--gpu-tests", action="store_true",
                        help="first run the tests marked gpu (pytest -m gpu) and report them")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="stop starting runs, and shorten the last one's timeout, so that "
                             "everything ends within SECONDS (default: no limit)")
    parser.add_argument("--publish-gpu", type=Path, default=None, metavar="FILE",
                        help="only put the GPU check report FILE (gpu_check.sh's "
                             "gpu_report.md) into docs/benchmarks.md, then stop")
    args = parser.parse_args(argv)
    if args.publish_gpu is not None:
        publish_gpu(args.publish_gpu.read_text())
        print(f"wrote {PUBLISHED} (its GPU check block, from {args.publish_gpu})")
        return 0
    if args.gpu_only and not args.only:
        parser.error("--gpu-only needs --only: the benchmarks that have GPU sections "
                     "(benchmarks/gpu_check.sh names them)")
    scripts = discover(args.bench_dir, args.only.split(",") if args.only else None)
    if not scripts:
        parser.error(f"no bench_*.py in {args.bench_dir}")
    timeout = args.timeout or (900 if args.quick else 3600)
    budget = Budget(args.budget)
    date = utc_now()
    stamp = date.replace("-", "").replace(":", "")
    out_dir = args.results_dir / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = describe()
    tests = run_gpu_tests(out_dir, budget.timeout(timeout)) if args.gpu_tests else None
    runs = run_all(scripts, out_dir, args.quick, timeout, args.gpu_only, budget)
    command = "python benchmarks/report.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(runs, machine, args.quick, date, command.strip(), args.gpu_only, tests)
    report = args.results_dir / f"report-{stamp}.md"
    report.write_text(text)
    print(f"wrote {report} (results and logs in {out_dir})")
    if args.publish:
        (publish_gpu if args.gpu_only else publish_cpu)(text)
        print(f"wrote {PUBLISHED}")
    failed = [run.name for run in runs if run.status != "ok"]
    failed += [] if tests is None or tests.ok else ["tests marked gpu"]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
