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
from pathlib import Path

import pytest
from hostilefiles import CORPORA, Corpus
from killing import mmtok_command

from conformance.base import tiny_cli_options
from conformance.bounded import PEAK_RSS_LIMIT, outcomes, run_bounded
from mmtok.sources import printable_id

TIME_LIMIT = 240  # seconds; a whole corpus takes a few
# the points corpus holds a cloud above the default max_points that must be refused early
EXTRA_OPTIONS = {"points": ("--set", "max_points=1000000")}
OUTSIDE = {"image": "outside.png", "points": "outside.npy", "audio": "outside.wav"}


def write_listing(folder: Path, corpus: Corpus, listing: Path) -> None:
    names = sorted(name.split("#")[0] for name in corpus)
    listing.write_bytes(b"\0".join(os.fsencode(folder / name) for name in names))


@pytest.mark.parametrize("modality", ["image", "points", "audio"])
def test_every_hostile_file_is_tokenized_or_recorded_with_its_kind(tmp_path, modality):
    folder, store = tmp_path / "data", tmp_path / "t.zarr"
    corpus = CORPORA[modality](folder, tmp_path / OUTSIDE[modality])
    write_listing(folder, corpus, tmp_path / "listing")
    command = mmtok_command(
        "tokenize", "--files-from", tmp_path / "listing", "--root", folder, "-m", modality,
        "-o", store, "--json", "--no-progress", "--shard-size", "8", *tiny_cli_options(modality),
        *EXTRA_OPTIONS.get(modality, ()))  # [python, "-m", "mmtok", ARGS...]
    stdout, peak = run_bounded(command[0], command[3:], tmp_path / "out", TIME_LIMIT)
    summary = json.loads(stdout)
    assert summary["status"] == "complete" and summary["num_samples"] == len(corpus)
    expected = {printable_id(name): kind for name, kind in corpus.items()}
    assert outcomes(store) == expected
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak >> 20} MB"
