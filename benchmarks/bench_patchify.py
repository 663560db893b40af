#!/usr/bin/env python
"""Patchify: uint8 images -> normalised float16 patch vectors, against the memory-copy rate.

The step embed and tokenize cut images with: B uint8 RGB images of 224 x 224 (channel-last,
as decoded; seen through a (B, C, H, W) view) -> (B, 196, 768) float16 patch vectors of
patch 16, each value ``(x / 255 - mean[c]) / std[c]`` (ImageNet statistics). The work reads
each input byte once and writes two bytes per value: it is bound by memory bandwidth, so
the figure is bytes read + written per second, against a plain copy of a large array on
the same device in the same run (counted the same way: bytes read + written).

CPU section: mmtok ``patchify`` (the numpy path: one strided window view, one pass) against
the same computation in plain torch ops (float, scale, normalise, reshape + permute, half),
on ``--batch`` images, median of ``--reps`` interleaved calls; both as a share of
``numpy.copyto`` of ``--copy-mib`` MiB. No goal: the figures show where the CPU path stands.

GPU section (when CUDA is present; issue 19): B = 256 on the device, the Triton kernel
(``impl="triton"``) with the normalisation fused, fed the channel-last view and, second, a
contiguous (B, C, H, W) batch; goal: >= 80 % of the device-to-device copy bandwidth of a
2 GiB tensor measured in the same run. Inputs rotate over enough batches to exceed the L2
cache, so the figure is memory, not cache. Also: the same plain torch ops on the device
(the peer), the pure uint8 gather (no normalisation; tokenize's case, informational), and
whether the kernel's output is within float16 rounding of the float64 reference.

    .venv/bin/python benchmarks/bench_patchify.py             # 64 images, 256 MiB copy
    .venv/bin/python benchmarks/bench_patchify.py --quick     # 8 images, 64 MiB copy
    .venv/bin/python benchmarks/bench_patchify.py --gpu-only  # the GPU section alone
"""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
from _common import (
    describe_machine,
    machine_line,
    result_row,
    result_section,
    standard_args,
    timed,
    write_result,
)
from _gpu import Accelerator, on_cuda, print_rows

SIDE, PATCH, CHANNELS = 224, 16, 3
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GPU_BATCH = 256
GPU_COPY_BYTES = 2 << 30
GOAL_SHARE = 0.80
GPU_TITLE = (f"GPU: patchify B = {GPU_BATCH} at {SIDE}, patch {PATCH}, uint8 -> normalised "
             "float16 (Triton)")
DEFAULT_L2_BYTES = 64 << 20  # where torch does not report the device's L2 size


def channel_last_batch(rng, count: int, side: int) -> np.ndarray:
    """``count`` random uint8 images (count, side, side, 3), as a decoder returns them."""
    return rng.integers(0, 256, size=(count, side, side, CHANNELS), dtype=np.uint8)


def torch_patches(images, patch: int):
    """The peer: plain torch ops on a (B, C, H, W) uint8 batch -> (B, L, C*p*p) float16
    normalised patches, the values and layout mmtok's patchify produces."""
    import torch

    b, c, h, w = images.shape
    mean = torch.tensor(MEAN, device=images.device).view(1, c, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, c, 1, 1)
    x = (images.float() / 255 - mean) / std
    x = x.reshape(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch).half()


def moved_bytes(count: int, side: int, out_bytes_per_value: int) -> int:
    """Bytes read (uint8 input) + written (the patches) by one call on ``count`` images."""
    values = count * CHANNELS * (side // PATCH * PATCH) ** 2
    return values + values * out_bytes_per_value


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="8 images, a 64 MiB copy, 3 repetitions (GPU: 20 "
                                          "calls)", reps=(15, 3),
                           reps_help="repetitions, the median counts", gpu=True)
    parser.add_sized("--batch", 64, 8, "images in the CPU section")
    parser.add_sized("--copy-mib", 256, 64, "MiB copied for the CPU copy bandwidth")
    parser.add_sized("--gpu-reps", 100, 20, "timed calls per contestant in the GPU section")
    args = parser.parse_args(argv)
    import torch

    machine = describe_machine({"numpy": np.__version__}, with_torch=True)
    print(f"# Patchify: uint8 -> normalised float16 patches\n\n{machine_line(machine)}",
          flush=True)
    sections = [] if args.gpu_only else [cpu_section(args)]
    sections.append(gpu_section(args))
    write_result(args.result, "patchify", "Patchify (uint8 -> normalised float16) against the "
                 "copy bandwidth", sections, quick=args.quick,
                 params={"batch": args.batch, "copy_mib": args.copy_mib, "reps": args.reps,
                         "gpu_batch": GPU_BATCH, "gpu_reps": args.gpu_reps,
                         "gpu_only": args.gpu_only, "torch_threads": torch.get_num_threads()},
                 machine=machine)
    return 0


def cpu_section(args) -> dict:
    import torch

    from mmtok.kernels.patchify import patchify

    images = channel_last_batch(np.random.default_rng(0), args.batch, SIDE)
    view = images.transpose(0, 3, 1, 2)  # (B, C, H, W), no copy
    as_tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    source = np.random.default_rng(1).integers(0, 256, args.copy_mib << 20, dtype=np.uint8)
    target = np.empty_like(source)
    names = {"mmtok": "mmtok patchify (numpy)", "torch": "plain torch ops (CPU)",
             "copy": f"numpy.copyto, {args.copy_mib} MiB"}
    fns = {names["mmtok"]: lambda: patchify(view, PATCH, mean=MEAN, std=STD, scale=1 / 255),
           names["torch"]: lambda: torch_patches(as_tensor, PATCH),
           names["copy"]: lambda: np.copyto(target, source)}
    for fn in fns.values():
        fn()  # warm-up: page faults, allocator
    times = timed(fns, args.reps)
    ours = fns[names["mmtok"]]()
    peer = fns[names["torch"]]().numpy()
    diff = float(np.abs(ours.astype(np.float32) - peer.astype(np.float32)).max())
    work = moved_bytes(args.batch, SIDE, 2)
    copy_rate = 2 * source.nbytes / times[names["copy"]]
    rate = {name: work / times[names[name]] for name in ("mmtok", "torch")}
    rows = [result_row(names["mmtok"], round(times[names["mmtok"]] * 1e3, 3), "ms",
                       peer=names["torch"], peer_value=round(times[names["torch"]] * 1e3, 3),
                       ratio=round(times[names["torch"]] / times[names["mmtok"]], 2),
                       ratio_of="peer time / mmtok time")]
    for name in ("mmtok", "torch"):
        rows.append(result_row(f"{names[name]}: bytes read + written", round(rate[name] / 1e9, 2),
                               "GB/s", peer=names["copy"], peer_value=round(copy_rate / 1e9, 2),
                               ratio=round(rate[name] / copy_rate, 3), ratio_of="of copy"))
    rows.append(result_row("max |mmtok - plain torch|", diff, "",
                           note="float16 rounding of the same values"))
    notes = [f"{args.batch} images {SIDE} x {SIDE} x {CHANNELS} uint8 (channel-last view) -> "
             f"(B, {(SIDE // PATCH) ** 2}, {CHANNELS * PATCH * PATCH}) float16; "
             f"{work / 2**20:.0f} MiB read + written per call; median of {args.reps} "
             f"interleaved calls; torch threads {torch.get_num_threads()}."]
    title = f"CPU: patchify B = {args.batch} at {SIDE}, patch {PATCH}"
    print_rows(title, rows, notes)
    return result_section(title, rows, notes)


def gpu_section(args) -> dict:
    """The GPU section on CUDA; skipped with the reason where CUDA is absent."""
    return on_cuda(GPU_TITLE, lambda acc: measure_gpu(acc, GPU_BATCH, SIDE, GPU_COPY_BYTES,
                                                      args.gpu_reps))


def l2_bytes(acc: Accelerator) -> int:
    """The device's L2 cache size (0 off CUDA: nothing to rotate past there)."""
    if not acc.is_cuda:
        return 0
    import torch

    props = torch.cuda.get_device_properties(acc.device)
    return int(getattr(props, "L2_cache_size", 0) or DEFAULT_L2_BYTES)


def measure_gpu(acc: Accelerator, count: int, side: int, copy_bytes: int, reps: int) -> dict:
    """``count`` images of ``side`` through the Triton kernel on ``acc`` against the copy
    bandwidth (the goal), the plain torch ops and the uint8 gather; checks the output."""
    import torch

    from mmtok.kernels.patchify import patchify, patchify_reference

    copy_rate = acc.copy_bandwidth(copy_bytes)
    rng = np.random.default_rng(2)
    batch_bytes = count * side * side * CHANNELS
    sets = max(2, math.ceil(3 * l2_bytes(acc) / batch_bytes))  # inputs rotate past the L2
    last = [torch.from_numpy(channel_last_batch(rng, count, side)).to(acc.device)
            for _ in range(sets)]
    views = [x.permute(0, 3, 1, 2) for x in last]            # (B, C, H, W) strided views
    planar = [v.contiguous() for v in views]                 # (B, C, H, W) contiguous
    norm = {"mean": MEAN, "std": STD, "scale": 1 / 255}

    def cycling(inputs, call):
        it = itertools.cycle(inputs)
        return lambda: call(next(it))

    names = {"view": "mmtok patchify (Triton), channel-last view",
             "planar": "mmtok patchify (Triton), contiguous (B, C, H, W)",
             "torch": "plain torch ops, channel-last view (peer)",
             "gather": "mmtok patchify (Triton), uint8 gather only, channel-last view"}
    fns = {names["view"]: cycling(views, lambda x: patchify(x, PATCH, impl="triton", **norm)),
           names["planar"]: cycling(planar, lambda x: patchify(x, PATCH, impl="triton", **norm)),
           names["torch"]: cycling(views, lambda x: torch_patches(x, PATCH)),
           names["gather"]: cycling(views, lambda x: patchify(x, PATCH, impl="triton"))}
    times = acc.median_seconds(fns, reps)
    normalised = moved_bytes(count, side, 2)
    work = {names["view"]: normalised, names["planar"]: normalised,
            names["torch"]: normalised, names["gather"]: moved_bytes(count, side, 1)}

    rows = [result_row(f"device-to-device copy, {copy_bytes >> 20} MiB (bytes read + written)",
                       round(copy_rate / 1e9, 1), "GB/s", note="the ceiling, same run")]
    for key in ("view", "planar", "torch", "gather"):
        name = names[key]
        share = work[name] / times[name] / copy_rate
        goal = key in ("view", "planar")
        rows.append(result_row(name, round(work[name] / times[name] / 1e9, 1), "GB/s",
                               peer="device-to-device copy", peer_value=round(copy_rate / 1e9, 1),
                               ratio=round(share, 3), ratio_of="of copy bandwidth",
                               goal=f">= {GOAL_SHARE:.0%} of copy" if goal else None,
                               passed=share >= GOAL_SHARE if goal else None,
                               note=f"{times[name] * 1e3:.4f} ms"))
    sample = views[0][:2]
    expected = patchify_reference(sample.cpu(), PATCH, **norm)
    got = patchify(sample, PATCH, impl="triton", **norm).cpu().numpy()
    close = bool(np.allclose(got.astype(np.float64), expected.astype(np.float64),
                             atol=1e-3, rtol=1e-3))
    rows.append(result_row("Triton output vs the float64 reference (first 2 images)",
                           "within float16 rounding" if close else "DIFFERENT", "",
                           goal="atol = rtol = 1e-3", passed=close))
    notes = [f"Device: {acc.name}; {count} random uint8 images {side} x {side} x {CHANNELS}; "
             f"{normalised / 2**20:.0f} MiB read + written per normalising call; inputs rotate "
             f"over {sets} batches (over the L2 cache); median of {reps} calls each, timed by "
             f"{acc.how_timed}."]
    title = (f"GPU: patchify B = {count} at {side}, patch {PATCH}, uint8 -> normalised "
             "float16 (Triton)")
    print_rows(title, rows, notes)
    return result_section(title, rows, notes)


if __name__ == "__main__":
    sys.exit(main())
