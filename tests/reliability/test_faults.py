"""Faults around a run: a second writer, Ctrl-C, a read-only and a full file system. Each
ends in a one-line error with its exit code (never a traceback) and a store that resumes to
the same bytes as an undisturbed run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import zarr
from imagefiles import noise_image
from killing import assert_same_store, committed, mmtok_command, wait_for_lock
from pointfiles import random_cloud

import mmtok
from mmtok.store.lock import StoreLock

TINY_ENCODER = "metatransformer:depth=1,width=32,heads=2"


def image_folder(root: Path, count: int, side: int) -> Path:
    (root / "a").mkdir(parents=True)
    for i in range(count):
        noise_image(root / "a" / f"{i:02d}.png", size=(side, side), seed=i)
    return root


def test_a_second_tokenize_writer_is_refused_and_the_first_is_unharmed(tmp_path, cli):
    data = image_folder(tmp_path / "data", 40, 40)
    options = ("--size", "32", "--shard-size", "1", "--no-progress")
    assert cli("tokenize", data, "-o", tmp_path / "ref.zarr", *options).exit_code == 0
    store = tmp_path / "t.zarr"
    first = subprocess.Popen(mmtok_command("tokenize", data, "-o", store, *options))
    assert wait_for_lock(first, store)
    first.send_signal(signal.SIGSTOP)  # holds the lock, mid-run, however fast this machine is
    try:
        second = cli("tokenize", data, "-o", store, *options)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.exit_code == 3 and f"is being written by pid {first.pid}" in second.stderr
    assert first.wait(timeout=120) == 0
    assert_same_store(store, tmp_path / "ref.zarr")


def test_embed_refuses_a_second_writer_and_stops_cleanly_on_ctrl_c(tmp_path, cli):
    (tmp_path / "data").mkdir()
    for i in range(40):
        np.save(tmp_path / "data" / f"{i:02d}.npy", random_cloud(100, seed=i))
    tokens, features = tmp_path / "t.zarr", tmp_path / "f.zarr"
    mmtok.tokenize(tmp_path / "data", tokens, "points", num_points=64, num_groups=8,
                   group_size=8, shard_size=1, progress=False)
    options = ("--encoder", TINY_ENCODER, "--batch-size", "1", "--no-progress")
    assert cli("embed", tokens, "-o", tmp_path / "ref.zarr", *options).exit_code == 0
    with StoreLock(features):  # a real second process for tokenize is tested above
        second = cli("embed", tokens, "-o", features, *options)
    assert second.exit_code == 3 and "is being written by pid" in second.stderr
    assert not features.exists(), "a refused writer must not touch the store"
    first = subprocess.Popen(mmtok_command("embed", tokens, "-o", features, *options),
                             stderr=subprocess.PIPE, text=True)
    assert wait_for_lock(first, features)
    deadline = time.monotonic() + 60
    while committed(features) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted; rerun the same command to resume" in stderr
    assert committed(features) < 40, "the interrupt landed after the end"
    with StoreLock(features):  # released
        pass
    assert cli("embed", tokens, "-o", features, *options).exit_code == 0
    assert_same_store(features, tmp_path / "ref.zarr")


def mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Path]:
    """A 2 MB tmpfs of our own, to fill up or remount read-only."""
    where = tmp_path / "fs"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8) to mount a small tmpfs")
    result = mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where))
    if result.returncode != 0:
        pytest.skip(f"this machine does not let us mount a tmpfs: {result.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def assert_clear_error(result, code: int, words: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("mmtok: error: cannot write") and words in result.stderr
    assert "Traceback" not in result.output and "rerun the same command" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_file_system_stops_with_a_clear_error_and_resumes(tmp_path, small_fs, cli,
                                                                 workers):
    data = image_folder(tmp_path / "data", 48, 128)  # about 3 MB of tokens: more than fits
    options = ("--size", "128", "--shard-size", "4", "--no-progress", "-j", workers)
    assert cli("tokenize", data, "-o", tmp_path / "ref.zarr", *options).exit_code == 0
    store = small_fs / "t.zarr"
    assert_clear_error(cli("tokenize", data, "-o", store, *options), 7,
                       "No space left on device")
    report = mmtok.validate_store(store)
    assert 0 < report.shards_checked < 12
    assert all("is not committed" in problem for problem in report.problems), report.problems
    with StoreLock(store):
        pass
    assert mount("-o", "remount,size=16m", str(small_fs)).returncode == 0
    assert cli("tokenize", data, "-o", store, *options).exit_code == 0
    assert_same_store(store, tmp_path / "ref.zarr")


def test_a_read_only_file_system_stops_with_a_clear_error_and_resumes(tmp_path, small_fs,
                                                                      cli):
    data = image_folder(tmp_path / "data", 12, 40)
    options = ("--size", "32", "--shard-size", "4", "--no-progress")
    assert cli("tokenize", data, "-o", tmp_path / "ref.zarr", *options).exit_code == 0
    store = small_fs / "t.zarr"
    assert cli("tokenize", data, "-o", store, *options).exit_code == 0
    zarr.open_array(store / "commits", mode="r+")[2] = ""  # as if the run had stopped there
    assert mount("-o", "remount,ro", str(small_fs)).returncode == 0
    assert_clear_error(cli("tokenize", data, "-o", store, *options), 7,
                       "Read-only file system")
    checked = cli("validate", store)  # reading needs no write
    assert checked.exit_code == 1 and "shard 2 is not committed" in checked.stdout
    assert mount("-o", "remount,rw", str(small_fs)).returncode == 0
    assert cli("tokenize", data, "-o", store, *options).exit_code == 0
    assert_same_store(store, tmp_path / "ref.zarr")
