"""Run an mmtok command in a child process under an address-space limit and a time limit,
reporting the child's own peak resident memory (``VmHWM``); the conformance suite and the
hostile-input suite (tests/reliability/test_hostile_inputs.py) share it. ``wait4``'s ``ru_maxrss`` would also count
what the pytest process held between fork and exec."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import threading
from pathlib import Path

import zarr

ADDRESS_SPACE_LIMIT = 6 << 30  # a safety net well above a run's few hundred MB
PEAK_RSS_LIMIT = 700 << 20  # a tokenize run needs ~250 MB; a bomb that got through needs more
# Thread pools and malloc arenas reserve address space per core: one thread each keeps
# what a run needs the same on a 2-core laptop and a 64-core server.
ONE_THREAD = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

REPORT_PEAK = """
import runpy, sys
sys.argv = ["mmtok", *sys.argv[1:]]
try:
    runpy.run_module("mmtok", run_name="__main__")
finally:
    peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    with open(__peak__, "w") as report:
        report.write(peak.split()[1])
"""


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_bounded(python: str, args: list[str], output: Path, time_limit: float) -> tuple[str, int]:
    """(stdout, peak RSS in bytes) of ``python -m mmtok ARGS`` run under the limits; fails
    the test on a hang (killed after ``time_limit`` seconds) or a non-zero exit."""
    peak_file = output.with_suffix(".peak")
    command = [python, "-c", REPORT_PEAK.replace("__peak__", repr(str(peak_file))), *args]
    with open(output, "w+b") as out, open(output.with_suffix(".err"), "w+b") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=ONE_THREAD,
                                   preexec_fn=_limit_address_space)
        hung = threading.Event()
        timer = threading.Timer(time_limit, lambda: (hung.set(), process.kill()))
        timer.start()
        _, status, _ = os.wait4(process.pid, 0)
        timer.cancel()
        assert not hung.is_set(), f"mmtok {' '.join(args[:2])} hung for more than {time_limit} s"
        err.seek(0)
        assert os.waitstatus_to_exitcode(status) == 0, err.read().decode(errors="replace")[-4000:]
        out.seek(0)
        return out.read().decode(), int(peak_file.read_text()) * 1024


def outcomes(store: Path) -> dict[str, str | None]:
    """id -> error kind (None for a tokenized sample), read from the store itself."""
    group = zarr.open_group(store, mode="r")
    kinds: dict[str, str | None] = {str(i): None for i in group["id"][:]}
    for marker in group["commits"][:].tolist():
        for error in json.loads(marker)["errors"]:
            kinds[error["id"]] = error["kind"]
    return kinds
