"""SIGKILL at seeded random moments, resume, repeat: the store ends up byte-identical to an
uninterrupted run's, every id exactly once.

The default run kills the image tokenizer twice (and tests/embed kills ``embed`` once: every
``embed`` start costs seconds of imports); the slow run (``make test-all``) kills every
modality's tokenizer, a two-worker tokenizer and ``embed`` at least 20 times each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from imagefiles import noise_image
from killing import (
    alive,
    assert_ids_complete,
    assert_same_store,
    children,
    kill_repeatedly,
    mmtok_command,
    timed_run,
    wait_for_lock,
)
from pointfiles import random_cloud, write_ply

import mmtok
from conformance.base import tiny_cli_options

SHARDS = 40  # one sample per shard: many commits, so kills land between and inside them
KILL_CASES = [pytest.param("image", 2, id="image-2-kills")] + [
    pytest.param(modality, 24, id=f"{modality}-24-kills", marks=pytest.mark.slow)
    for modality in ("image", "points", "audio")]
TINY_ENCODER = "metatransformer:depth=1,width=32,heads=2"


def image_corpus(root: Path) -> list[str]:
    for i in range(SHARDS - 1):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        noise_image(folder / f"{i:02d}.png", size=(40, 40), seed=i)
    (root / "b" / "zz_broken.png").write_bytes(b"\x89PNG not really")  # an error record
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def points_corpus(root: Path) -> list[str]:
    (root / "a").mkdir(parents=True)
    for i in range(SHARDS - 2):
        np.save(root / "a" / f"{i:02d}.npy", random_cloud(150, seed=i))
    write_ply(root / "a" / "zz.ply", random_cloud(150, seed=99))
    (root / "a" / "zz_nan.xyz").write_text("0 0 0\nnan 1 2\n1 1 1\n")
    return sorted(str(p.relative_to(root)) for p in (root / "a").iterdir())


def audio_corpus(root: Path) -> list[str]:
    import soundfile

    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(SHARDS - 1):
        clip = (rng.normal(size=3200) * 0.1).astype(np.float32)
        soundfile.write(root / "a" / f"{i:02d}.wav", clip, 16000)
    (root / "a" / "zz_empty.flac").write_bytes(b"")
    return sorted(str(p.relative_to(root)) for p in (root / "a").iterdir())


CORPORA = {"image": image_corpus, "points": points_corpus, "audio": audio_corpus}


def kill_window(reference_seconds: float) -> float:
    """About two shards' worth of work: each kill lets a run commit a shard or two, so
    every kill still lands inside the run, and some land inside store creation."""
    return 2.5 * reference_seconds / SHARDS


def check_kill_loop(tmp_path: Path, command: list[str], seed: int, kills: int) -> None:
    reference, killed = tmp_path / "ref.zarr", tmp_path / "killed.zarr"
    seconds = timed_run([*command, "-o", str(reference)], reference)
    log = kill_repeatedly([*command, "-o", str(killed)], killed, np.random.default_rng(seed),
                          kills, kill_window(seconds))
    assert log.kills == kills, f"only {log.kills} kills landed before the store was done"
    assert log.progress[-1] < SHARDS, "the last kill must land before the end"
    assert_same_store(killed, reference)
    assert mmtok.validate_store(killed).ok


@pytest.mark.parametrize("modality,kills", KILL_CASES)
def test_tokenize_survives_repeated_sigkill(tmp_path, modality, kills):
    make, options = CORPORA[modality], tiny_cli_options(modality)
    ids = make(tmp_path / "data")
    command = mmtok_command("tokenize", tmp_path / "data", "-m", modality, "--shard-size", 1,
                            "--no-progress", *options)
    check_kill_loop(tmp_path, command, seed=len(modality) + kills, kills=kills)
    assert_ids_complete(tmp_path / "killed.zarr", ids)


@pytest.mark.slow
def test_tokenize_with_two_workers_survives_repeated_sigkill(tmp_path):
    ids = image_corpus(tmp_path / "data")
    command = mmtok_command("tokenize", tmp_path / "data", "--shard-size", 1, "-j", 2,
                            "--no-progress", "--size", "32")
    check_kill_loop(tmp_path, command, seed=7, kills=20)
    assert_ids_complete(tmp_path / "killed.zarr", ids)


@pytest.mark.slow
def test_embed_survives_repeated_sigkill(tmp_path):
    kills = 24
    ids = points_corpus(tmp_path / "data")
    tokens = tmp_path / "tokens.zarr"
    mmtok.tokenize(tmp_path / "data", tokens, "points", num_points=64, num_groups=8,
                   group_size=8, shard_size=1, progress=False)
    command = mmtok_command("embed", tokens, "--encoder", TINY_ENCODER, "--batch-size", 1,
                            "--pool", "cls+mean+max", "--no-progress")
    check_kill_loop(tmp_path, command, seed=kills, kills=kills)
    assert_ids_complete(tmp_path / "killed.zarr", ids)


def test_a_run_killed_while_creating_the_store_leaves_nothing_to_refuse(tmp_path,
                                                                       monkeypatch):
    """The kill loop lands inside store creation only now and then; this lands there always."""
    from mmtok.store import writer

    image_corpus(tmp_path / "data")
    out = tmp_path / "t.zarr"

    def killed_half_way(path: Path, spec) -> None:
        zarr.open_group(path, mode="w", zarr_format=3).create_array("tokens", shape=(1,),
                                                                     dtype="uint8")
        raise KeyboardInterrupt  # stands in for the SIGKILL: nothing after this runs

    with monkeypatch.context() as patch:
        patch.setattr(writer, "_create", killed_half_way)
        with pytest.raises(KeyboardInterrupt):
            mmtok.tokenize(tmp_path / "data", out, size=32, shard_size=8, progress=False)
    assert not out.exists(), "a half-made store must never sit at the output path"
    assert mmtok.tokenize(tmp_path / "data", out, size=32, shard_size=8,
                          progress=False).status == "complete"
    assert mmtok.validate_store(out).ok


def test_workers_do_not_outlive_a_sigkilled_parent(tmp_path):
    image_corpus(tmp_path / "data")
    store = tmp_path / "t.zarr"
    process = subprocess.Popen(mmtok_command("tokenize", tmp_path / "data", "-o", store, "-j", 2,
                                             "--shard-size", 1, "--no-progress", "--size", 32))
    assert wait_for_lock(process, store)
    deadline = time.monotonic() + 60
    while len(workers := children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None and len(workers) >= 2, "the pool must be running"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 20
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    leftover = [w for w in workers if alive(w)]
    for worker in leftover:  # do not leak them into the rest of the suite
        os.kill(worker, signal.SIGKILL)
    assert not leftover, "orphaned workers are still running"
