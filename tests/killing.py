"""Kill a writing mmtok process at seeded random moments, resume it, and compare stores.

A kill is aimed at the part of a run that touches the store: the delay is drawn after the
child has taken the store's lock (the lock file then names its pid), because the interpreter
start-up before that touches nothing and kills there would test nothing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from mmtok.store.lock import lock_path

POLL_SECONDS = 0.001


def mmtok_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "mmtok", *(str(a) for a in args)]


def wait_for_lock(process: subprocess.Popen, store: Path, timeout: float = 120.0) -> bool:
    """True once ``process`` holds the store's lock; False when it exited first."""
    lock = lock_path(store)
    wanted = f"pid {process.pid} ".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if lock.read_bytes().startswith(wanted):
                return True
        except FileNotFoundError:
            pass
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{process.args} did not take the lock of {store} in {timeout} s")


def committed(store: Path) -> int:
    folder = store / "commits" / "c"
    return len([p for p in folder.iterdir() if not p.name.endswith(".partial")]) \
        if folder.is_dir() else 0


@dataclass
class KillLog:
    kills: int = 0  # runs that were SIGKILLed while holding the lock
    finished_early: bool = False  # a run completed before its kill moment
    progress: list[int] = field(default_factory=list)  # committed shards after each kill


def timed_run(command: list[str], store: Path) -> float:
    """Run to completion; seconds from taking the lock to exit (the store-touching part)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    assert wait_for_lock(process, store), f"{command} exited before taking the lock"
    started = time.monotonic()
    assert process.wait(timeout=600) == 0, f"{command} failed"
    return time.monotonic() - started


def kill_repeatedly(command: list[str], store: Path, rng: np.random.Generator, kills: int,
                    window: float) -> KillLog:
    """Start ``command`` and SIGKILL it ``uniform(0, window)`` seconds after it takes the
    lock, until ``kills`` kills landed; then run it to completion."""
    log = KillLog()
    while log.kills < kills:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if not wait_for_lock(process, store):
            break  # the store was already complete: nothing left to interrupt
        deadline = time.monotonic() + rng.uniform(0, window)
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(POLL_SECONDS)
        if process.poll() is not None:
            log.finished_early = True
            assert process.returncode == 0, f"{command} failed before its kill"
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        log.kills += 1
        log.progress.append(committed(store))
    finish = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=600)
    assert finish.returncode == 0, finish.stderr
    return log


def store_snapshot(store: Path) -> dict:
    """Attrs, every array's contents and every commit marker of a store."""
    group = zarr.open_group(store, mode="r")
    arrays = {name: group[name][...] for name in sorted(group.array_keys())}
    markers = [json.loads(m) if m else None for m in arrays.pop("commits").tolist()]
    return {"attrs": group.attrs.asdict(), "arrays": arrays, "markers": markers}


# A marker holds counts, errors and checksums, and no timings or worker counts: every field
# must agree between an interrupted and an uninterrupted run.
MARKER_FIELDS = {"shard", "start", "stop", "config_hash", "num_valid", "errors", "checksums"}


def file_bytes(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file()}


def assert_same_store(actual: Path, expected: Path) -> None:
    """Equal attrs, arrays and markers, and equal files byte for byte."""
    got, want = store_snapshot(actual), store_snapshot(expected)
    assert got["attrs"] == want["attrs"]
    assert sorted(got["arrays"]) == sorted(want["arrays"])
    for name, values in want["arrays"].items():
        np.testing.assert_array_equal(got["arrays"][name], values, err_msg=name)
    assert all(m is not None and set(m) == MARKER_FIELDS for m in want["markers"])
    assert got["markers"] == want["markers"]
    assert file_bytes(actual) == file_bytes(expected)


def assert_ids_complete(store: Path, expected_ids: list[str]) -> None:
    """Every source id exactly once, in source order: nothing lost or duplicated."""
    ids = [str(i) for i in zarr.open_array(store / "id", mode="r")[:]]
    assert len(ids) == len(set(ids)) and ids == expected_ids


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except FileNotFoundError:  # it (or one of its threads) has just exited
        pass
    return found


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper that may never come (PID 1 in a
    container need not reap)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
