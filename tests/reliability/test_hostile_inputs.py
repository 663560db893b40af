"""Hostile inputs: every file of a malformed corpus is either tokenized or recorded with the
specific error kind it deserves; no crash, no hang, bounded memory.

Each corpus is tokenized by a child process with a hard address-space limit (so a bomb that
gets through cannot take the machine down) and a time limit (a hang fails the test); its
peak resident memory must stay far below what any bomb would need. The child reports its own
high-water mark (``VmHWM``): ``wait4``'s ``ru_maxrss`` would also count the pytest process's
memory that the child held between fork and exec, which grows with the tests run before.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import threading
from pathlib import Path

import pytest
import zarr
from hostilefiles import CORPORA, Corpus
from killing import mmtok_command

from conformance.base import tiny_cli_options
from mmtok.sources import printable_id

ADDRESS_SPACE_LIMIT = 6 << 30  # a safety net well above a normal run's few hundred MB
PEAK_RSS_LIMIT = 700 << 20  # a run needs ~250 MB; every bomb here asks for 0.5 GB or more
TIME_LIMIT = 240  # seconds; a whole corpus takes a few
# the points corpus holds a cloud above the default max_points that must be refused early
EXTRA_OPTIONS = {"points": ("--set", "max_points=1000000")}
# Thread pools and malloc arenas reserve address space per core: one thread each keeps
# what a run needs the same on a 2-core laptop and a 64-core server.
ONE_THREAD = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
OUTSIDE = {"image": "outside.png", "points": "outside.npy", "audio": "outside.wav"}


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


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


def run_bounded(command: list[str], output: Path) -> tuple[str, int]:
    """(stdout, peak RSS in bytes) of the mmtok ``command`` run under the limits."""
    peak_file = output.with_suffix(".peak")
    wrapper = [command[0], "-c", REPORT_PEAK.replace("__peak__", repr(str(peak_file))),
               *command[3:]]
    with open(output, "w+b") as out, open(output.with_suffix(".err"), "w+b") as err:
        process = subprocess.Popen(wrapper, stdout=out, stderr=err, env=ONE_THREAD,
                                   preexec_fn=limit_address_space)
        hung = threading.Event()
        timer = threading.Timer(TIME_LIMIT, lambda: (hung.set(), process.kill()))
        timer.start()
        _, status, _ = os.wait4(process.pid, 0)
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        assert not hung.is_set(), f"tokenize hung for more than {TIME_LIMIT} s"
        err.seek(0)
        assert process.returncode == 0, err.read().decode(errors="replace")[-4000:]
        out.seek(0)
        return out.read().decode(), int(peak_file.read_text()) * 1024


def write_listing(folder: Path, corpus: Corpus, listing: Path) -> None:
    names = sorted(name.split("#")[0] for name in corpus)
    listing.write_bytes(b"\0".join(os.fsencode(folder / name) for name in names))


def outcomes(store: Path) -> dict[str, str | None]:
    """id -> error kind (None for a tokenized sample), from the store itself."""
    group = zarr.open_group(store, mode="r")
    kinds: dict[str, str | None] = {str(i): None for i in group["id"][:]}
    for marker in group["commits"][:].tolist():
        for error in json.loads(marker)["errors"]:
            kinds[error["id"]] = error["kind"]
    return kinds


@pytest.mark.parametrize("modality", ["image", "points", "audio"])
def test_every_hostile_file_is_tokenized_or_recorded_with_its_kind(tmp_path, modality):
    folder, store = tmp_path / "data", tmp_path / "t.zarr"
    corpus = CORPORA[modality](folder, tmp_path / OUTSIDE[modality])
    write_listing(folder, corpus, tmp_path / "listing")
    stdout, peak = run_bounded(mmtok_command(
        "tokenize", "--files-from", tmp_path / "listing", "--root", folder, "-m", modality,
        "-o", store, "--json", "--no-progress", "--shard-size", "8", *tiny_cli_options(modality),
        *EXTRA_OPTIONS.get(modality, ())), tmp_path / "out")
    summary = json.loads(stdout)
    assert summary["status"] == "complete" and summary["num_samples"] == len(corpus)
    expected = {printable_id(name): kind for name, kind in corpus.items()}
    assert outcomes(store) == expected
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak >> 20} MB"
