"""``tokenize --device``: the batched device path writes the CPU path's bytes (the Triton
kernels run in the interpreter without a GPU; on a GPU for real), and a device this machine
lacks is a usage error. The conformance suite checks every batched modality's own data
(tests/conformance/base.py); here: uneven clouds, channels, padding and batches that span
files and shards."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from imagefiles import noise_image, png_bomb, write_format_zoo
from killing import assert_same_store, mmtok_command
from pointfiles import random_cloud, write_modelnet_h5
from pyrun import subprocess_env

import mmtok
from mmtok.devices import CPU, ComputeDevice, resolve_tokenize_device
from mmtok.errors import UsageError

POINTS = {"num_points": 256, "num_groups": 32, "group_size": 16}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def interpreted_tokenize(source, output, modality: str, options: dict, *extra: str) -> None:
    """``mmtok tokenize --device cuda`` in a subprocess: the Triton interpreter without a
    GPU (TRITON_INTERPRET must be set before triton is first imported)."""
    settings = [a for key, value in options.items() for a in ("--set", f"{key}={value}")]
    command = mmtok_command("tokenize", source, "-o", output, "-m", modality, "--no-progress",
                            "--device", "cuda", *settings, *extra)
    env = subprocess_env() if torch.cuda.is_available() else subprocess_env(TRITON_INTERPRET="1")
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-4000:]


def uneven_clouds(folder) -> None:
    """Clouds of 700, 1024 and 3000 points (FPS-reduced to 256 in one padded batch), ones
    that are exactly 256 or fewer (padded by repeating), with normals, in npy and HDF5 rows;
    more than one device batch (64) in all."""
    folder.mkdir()
    sizes = [700, 1024, 3000, 256, 100] + [300 + 7 * i for i in range(40)]
    for i, n in enumerate(sizes):
        xyz = random_cloud(n, seed=i)
        normals = np.random.default_rng(100 + i).normal(size=(n, 3)).astype(np.float32)
        np.save(folder / f"{i:03d}.npy", np.concatenate([xyz, normals], axis=1))
    rows = np.stack([random_cloud(500, seed=1000 + r) for r in range(30)])
    write_modelnet_h5(folder / "rows.h5", rows, [0] * len(rows))
    np.save(folder / "zz_nan.npy", np.full((400, 3), np.nan, np.float32))  # a bad sample


def test_uneven_clouds_give_the_cpu_store_on_the_device_path(tmp_path):
    uneven_clouds(tmp_path / "clouds")
    options = {**POINTS, "pad": "repeat"}
    cpu = tmp_path / "cpu.zarr"
    summary = mmtok.tokenize(tmp_path / "clouds", cpu, "points", labels="none", shard_size=50,
                             progress=False, **options)
    assert (summary.num_samples, summary.num_invalid) == (76, 1)
    interpreted_tokenize(tmp_path / "clouds", tmp_path / "device.zarr", "points", options,
                         "--labels", "none", "--shard-size", "50")
    assert_same_store(tmp_path / "device.zarr", cpu)


def test_images_of_every_mode_give_the_cpu_store_on_the_device_path(tmp_path):
    data = tmp_path / "images"
    write_format_zoo(data)  # every format and mode the reader claims, 8- and 16-bit
    for i in range(3):
        noise_image(data / f"noise{i}.png", size=(40 + 9 * i, 33 + 5 * i), seed=i)
    png_bomb(data / "zz_bomb.png")  # a bad sample: its error record must match too
    for modality, options in (("image", {"size": 32, "patch": 16}),
                              ("xray", {"size": 32, "patch": 8})):
        cpu = tmp_path / f"{modality}-cpu.zarr"
        mmtok.tokenize(data, cpu, modality, labels="none", shard_size=4, progress=False,
                       **options)
        device = tmp_path / f"{modality}-device.zarr"
        interpreted_tokenize(data, device, modality, options, "--labels", "none",
                             "--shard-size", "4")
        assert_same_store(device, cpu)


@NO_CUDA
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path, cli, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(UsageError, match="no CUDA device"):
        resolve_tokenize_device("cuda")
    uneven_clouds(tmp_path / "clouds")
    result = cli("tokenize", tmp_path / "clouds", "-o", tmp_path / "t.zarr", "-m", "points",
                 "--device", "cuda:1", "--no-progress")
    assert result.exit_code == 2
    assert "no CUDA device" in result.stderr and "--device cpu" in result.stderr
    assert not (tmp_path / "t.zarr").exists()  # refused before anything was written


def test_device_names_are_checked(monkeypatch):
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(UsageError, match="cpu, cuda, cuda:N or auto"):
            resolve_tokenize_device(bad)
    assert resolve_tokenize_device("CPU") is CPU and not CPU.batched
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    expected = ComputeDevice("cuda") if torch.cuda.is_available() else CPU
    assert resolve_tokenize_device("auto") == expected  # auto never picks the interpreter


@NO_CUDA
def test_the_interpreter_runs_the_device_path_on_cpu_tensors(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    device = resolve_tokenize_device("cuda")
    assert device == ComputeDevice("cpu", "triton") and device.batched


def test_tokenizing_on_the_cpu_imports_no_torch(tmp_path):
    """``--device cpu`` (the default) resolves without importing torch."""
    code = ("import sys, mmtok.devices as d; d.resolve_tokenize_device('cpu'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
