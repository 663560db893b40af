"""``--engine ray``: the same stores as the local engine, retried by Ray after a worker dies,
failing cleanly when retries run out, on Ctrl-C, and when GPUs are asked for but absent.

Everything runs on one session-scoped local Ray instance (``ray_session``, conftest.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import raykill
from imagefiles import noise_image
from killing import assert_same_store, committed, mmtok_command, wait_for_lock
from pointfiles import random_cloud

import mmtok
from mmtok.errors import UsageError, WorkerDied
from mmtok.store.lock import StoreLock

TINY_ENCODER = "metatransformer:depth=1,width=32,heads=2"
POINTS = {"num_points": 64, "num_groups": 8, "group_size": 8}


def image_folder(root: Path, count: int = 12, side: int = 40) -> Path:
    for i in range(count):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        noise_image(root / f"c{i % 2}" / f"{i:02d}.png", size=(side, side), seed=i)
    return root


def point_folder(root: Path, count: int = 12) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        np.save(root / f"{i:02d}.npy", random_cloud(100, seed=i))
    return root


def tokenize(data: Path, out: Path, modality: str, **kwargs) -> mmtok.store.summary.RunSummary:
    options = {"size": 32} if modality == "image" else POINTS
    return mmtok.tokenize(data, out, modality, shard_size=3, progress=False,
                          **options, **kwargs)


@pytest.mark.parametrize("modality", ["image", "points"])
def test_ray_tokenize_writes_the_local_engines_bytes(tmp_path, ray_session, modality):
    data = (image_folder if modality == "image" else point_folder)(tmp_path / "data")
    tokenize(data, tmp_path / "local.zarr", modality, workers=2)
    summary = tokenize(data, tmp_path / "ray.zarr", modality, engine="ray", workers=2)
    assert (summary.status, summary.shards_written) == ("complete", 4)
    assert_same_store(tmp_path / "ray.zarr", tmp_path / "local.zarr")
    again = tokenize(data, tmp_path / "ray.zarr", modality, engine="ray")
    assert (again.samples_written, again.shards_skipped) == (0, 4)


def embed_one_thread(tokens: Path, out: Path, **options) -> None:
    """The local reference with the thread count of a 1-CPU actor: CPU float sums are
    ordered by the thread count, so only runs with the same count agree to the bit."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        mmtok.embed(tokens, out, **options)
    finally:
        torch.set_num_threads(threads)


def test_ray_embed_writes_the_local_engines_bytes_though_an_actor_dies_mid_shard(
        tmp_path, ray_session, monkeypatch):
    """Two CPU actors, one killed in the middle of a shard (once): Ray restarts it and
    retries the call, and the store is the local engine's, byte for byte."""
    tokens = tmp_path / "t.zarr"
    tokenize(point_folder(tmp_path / "data"), tokens, "points")
    options = dict(encoder=TINY_ENCODER, batch_size=2, device="cpu", progress=False)
    embed_one_thread(tokens, tmp_path / "local.zarr", **options)
    monkeypatch.setattr("mmtok.embedding.pipeline.EmbedJob", raykill.EmbedKilledOnce)
    out = tmp_path / "ray.zarr"
    summary = mmtok.embed(tokens, out, engine="ray", ray_actors=2, **options)
    assert Path(str(out) + ".killed").exists(), "the kill never happened"
    assert summary.status == "complete"
    assert_same_store(out, tmp_path / "local.zarr")


def test_a_task_killed_after_its_data_before_its_marker_is_retried(tmp_path, ray_session,
                                                                  monkeypatch):
    data = image_folder(tmp_path / "data")
    tokenize(data, tmp_path / "ref.zarr", "image")
    monkeypatch.setattr("mmtok.pipeline.TokenizeJob", raykill.KillOnceBeforeMarker)
    out = tmp_path / "t.zarr"
    summary = tokenize(data, out, "image", engine="ray", max_retries=2)
    assert Path(str(out) + ".killed").exists(), "the kill never happened"
    assert summary.status == "complete" and mmtok.validate_store(out).ok
    assert_same_store(out, tmp_path / "ref.zarr")
    monkeypatch.undo()
    assert tokenize(data, out, "image", engine="ray").samples_written == 0


def test_a_worker_killed_by_pid_mid_task_is_retried(tmp_path, ray_session, monkeypatch):
    import os
    import threading

    data = image_folder(tmp_path / "data")
    tokenize(data, tmp_path / "ref.zarr", "image")
    monkeypatch.setattr("mmtok.pipeline.TokenizeJob", raykill.SlowFirstAttempt)
    out = tmp_path / "t.zarr"
    pid_file, killed = Path(str(out) + ".worker-pid"), []

    def kill_the_worker() -> None:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the pid is written before the file is closed
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    started = time.monotonic()
    summary = tokenize(data, out, "image", engine="ray", max_retries=1)
    killer.join(timeout=5)
    assert killed and time.monotonic() - started < 50, "the worker was not killed mid-task"
    assert summary.status == "complete"
    assert_same_store(out, tmp_path / "ref.zarr")


def test_retries_exhausted_list_the_failed_shards_and_a_rerun_completes(tmp_path, ray_session,
                                                                       monkeypatch, cli):
    data = image_folder(tmp_path / "data")
    tokenize(data, tmp_path / "ref.zarr", "image")
    out = tmp_path / "t.zarr"
    with monkeypatch.context() as patch:
        patch.setattr("mmtok.pipeline.TokenizeJob", raykill.KillAlways)
        with pytest.raises(WorkerDied) as failure:
            tokenize(data, out, "image", engine="ray", max_retries=1)
    message = str(failure.value)
    assert "1 shard(s) failed after 1 retries (shards 1;" in message
    assert "rerun the same command to resume" in message and failure.value.exit_code == 6
    problems = mmtok.validate_store(out).problems  # every other shard was committed
    assert len(problems) == 1 and "shard 1 " in problems[0] and "not committed" in problems[0]
    with StoreLock(out):  # the driver released the lock
        pass
    assert tokenize(data, out, "image", engine="ray").shards_written == 1
    assert_same_store(out, tmp_path / "ref.zarr")


def test_one_actor_per_gpu_each_sees_its_own_device(tmp_path, ray_session):
    from mmtok.engines import EngineOptions, Report, make_engine

    engine = make_engine(EngineOptions("ray"))
    job, markers = raykill.WhereAmI(str(tmp_path / "none")), []
    engine.prepare(job)
    engine.run(job, [(shard, None) for shard in range(6)], Report(markers.append, lambda n: None))
    assert sorted(p["CUDA_VISIBLE_DEVICES"] for p in engine.placements) == ["0", "1"]
    seen = {m["pid"]: m["CUDA_VISIBLE_DEVICES"] for m in markers}
    assert sorted(seen.values()) == ["0", "1"] and all(m["device"] == "cuda" for m in markers)


def test_gpus_asked_of_a_cluster_without_gpus_is_a_clear_error(tmp_path, ray_session,
                                                              monkeypatch):
    tokens = tmp_path / "t.zarr"
    tokenize(point_folder(tmp_path / "data", 3), tokens, "points")
    monkeypatch.setattr(ray_session, "cluster_resources", lambda: {"CPU": 2.0})
    with pytest.raises(UsageError, match="the Ray cluster has no GPUs .* --device cpu "
                                         "--ray-actors N"):
        mmtok.embed(tokens, tmp_path / "f.zarr", encoder=TINY_ENCODER, device="cuda:0",
                    engine="ray", progress=False)
    assert not (tmp_path / "f.zarr").exists(), "refused before the store was touched"


def test_ray_usage_errors(tmp_path, cli, monkeypatch):
    data = image_folder(tmp_path / "data", 2)
    relative = cli("tokenize", data, "-o", "t.zarr", "--engine", "ray",
                   "--ray-address", "10.0.0.1:6379")
    assert relative.exit_code == 2 and "t.zarr is a relative path" in relative.stderr
    local_only = cli("tokenize", data, "-o", tmp_path / "t.zarr", "--ray-num-cpus", "2")
    assert local_only.exit_code == 2 and "only apply with --engine ray" in local_only.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    missing = cli("tokenize", data, "-o", tmp_path / "t.zarr", "--engine", "ray")
    assert missing.exit_code == 2 and "pip install 'mmtok[ray]'" in missing.stderr
    assert not (tmp_path / "t.zarr").exists()


RAY_INTERNAL_CRASH = "You have likely discovered a bug in Ray"


def test_ctrl_c_on_the_driver_cancels_its_tasks_and_the_store_resumes(tmp_path, ray_session):
    data = tmp_path / "data"
    for i in range(24):
        (data / "a").mkdir(parents=True, exist_ok=True)
        noise_image(data / "a" / f"{i:02d}.png", size=(640, 480), seed=i)
    address = ray_session.get_runtime_context().gcs_address
    for attempt in range(2):
        out = tmp_path / f"t{attempt}.zarr"
        command = mmtok_command("tokenize", data, "-o", out, "--shard-size", 2, "--no-progress",
                                "--size", 64, "--engine", "ray", "--ray-address", address)
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        assert wait_for_lock(process, out)
        deadline = time.monotonic() + 120
        while committed(out) == 0 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        # Ray 2.60's core worker sometimes aborts on a task reply racing the cancel ("Check
        # failed ... Tried to complete task that was not pending", its own bug report
        # request): that is Ray's crash, not ours, so the interrupt is tried once more
        if process.returncode == 130 or RAY_INTERNAL_CRASH not in stderr:
            break
    assert process.returncode == 130, stderr
    assert "interrupted; rerun the same command to resume" in stderr and "Traceback" not in stderr
    assert committed(out) < 12, "the interrupt landed after the end"
    with StoreLock(out):  # released
        pass
    assert subprocess.run(command, stderr=subprocess.DEVNULL).returncode == 0
    assert mmtok.validate_store(out).ok


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_a_separate_ray_start_head_process(tmp_path):
    """A cluster of its own (`ray start --head` on a free loopback port), stopped through its
    own process group: never `ray stop`, which kills every Ray process on the machine."""
    import os

    pytest.importorskip("ray")
    data = image_folder(tmp_path / "data")
    tokenize(data, tmp_path / "ref.zarr", "image")
    port = free_port()
    import tempfile

    # token auth off on both sides: a `ray start` head and a driver disagree on it otherwise
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="rayt", dir="/tmp")  # short: Ray's socket paths are long
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard", "false",
                             "--object-store-memory", str(96 << 20), "--temp-dir", temp],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        command = mmtok_command("tokenize", data, "-o", tmp_path / "t.zarr", "--size", 32,
                                "--shard-size", 3, "--no-progress", "--engine", "ray",
                                "--ray-address", f"127.0.0.1:{port}")
        deadline, result = time.monotonic() + 120, None
        while time.monotonic() < deadline:  # the head takes a while to accept drivers
            result = subprocess.run(command, env=env, capture_output=True, text=True,
                                    timeout=180)
            if result.returncode == 0 or "cannot connect" not in result.stderr:
                break
            time.sleep(2)
        assert result is not None and result.returncode == 0, result.stderr
        assert_same_store(tmp_path / "t.zarr", tmp_path / "ref.zarr")
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:  # Ray's own processes are in the group too, and may outlive `ray start`
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


NODE_REMOVAL = r"""
import sys, threading, time
from pathlib import Path
import ray
from ray.cluster_utils import Cluster
import mmtok, mmtok.pipeline, raykill
from killing import committed

data, out = Path(sys.argv[1]), Path(sys.argv[2])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                        "include_dashboard": False})
worker = cluster.add_node(num_cpus=1)
ray.init(address=cluster.address)
mmtok.pipeline.TokenizeJob = raykill.Sleepy

def remove_the_worker_node():
    while committed(out) < 1:
        time.sleep(0.01)
    cluster.remove_node(worker)

threading.Thread(target=remove_the_worker_node, daemon=True).start()
summary = mmtok.tokenize(data, out, "image", size=32, shard_size=1, engine="ray", workers=2,
                         progress=False)
print(summary.status)
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
def test_a_node_removed_mid_run_has_its_shards_retried(tmp_path):
    import os

    pytest.importorskip("ray")
    data = image_folder(tmp_path / "data", 12)
    mmtok.tokenize(data, tmp_path / "ref.zarr", "image", size=32, shard_size=1, progress=False)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", NODE_REMOVAL, str(data), str(tmp_path / "t.zarr")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("complete"), done.stderr[-3000:]
    assert_same_store(tmp_path / "t.zarr", tmp_path / "ref.zarr")
