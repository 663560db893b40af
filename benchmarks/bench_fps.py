#!/usr/bin/env python
"""Farthest point sampling on the CPU: mmtok against fpsample, Open3D and numpy, one run.

For (N, M) in (1024, 64), (1024, 256), (8192, 512), per cloud and for a batch of B clouds,
times (median of ``--reps`` interleaved repetitions, after a warm-up call, so numba's JIT
compile is not in the figures):

* mmtok ``farthest_point_sample`` (auto: vanilla numba loop for tiny clouds, exact grid
  buckets otherwise) and the forced numba vanilla loop;
* fpsample ``fps_sampling`` (vanilla) and ``bucket_fps_kdline_sampling`` (h = 5), both
  with ``start_idx=0``;
* Open3D ``PointCloud.farthest_point_down_sample(M, 0)`` (the PointCloud is built outside
  the timing; it returns points, mapped back to indices for the comparison);
* the numpy vanilla reference (per cloud only; it is slow).

Exactness columns: ``=ref`` says whether the output equals the numpy reference index for
index (start 0, ties towards the lowest index); ``=mmtok`` whether a peer's output equals
mmtok's ("same set" when only the order differs: Open3D returns its picks in index
order). Peers are expected to differ where their rules differ (see the README).

Goals (issue 3): 8192 -> 512 no slower than fpsample's kdline method; 1024 -> 64 no slower
than the fastest peer. Single cloud = one thread everywhere. The batch row runs mmtok's
batched call (numba ``prange`` over clouds, all cores) and, for reference, mmtok and the
peers looping over clouds on one thread.

GPU section (when CUDA is present; issue 19): ``farthest_point_sample`` on a CUDA tensor of
B = 64 clouds of N = 8192 -> M = 512 (the Triton kernel), median of ``--gpu-reps`` calls
timed with CUDA events, against the goal of <= 0.3 ms and against the numba batched call on
the same clouds (the ratio); its indices must equal the CPU path's.

    .venv/bin/python benchmarks/bench_fps.py              # ~1 minute on 2 cores
    .venv/bin/python benchmarks/bench_fps.py --reps 5 --batch 8   # quicker
    .venv/bin/python benchmarks/bench_fps.py --gpu-only   # the GPU section alone
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from _common import (
    batch_contest,
    describe_machine,
    make_cloud,
    make_cloud_batch,
    parse_point_args,
    print_cloud_table,
    print_goals,
    print_point_header,
    result_section,
    speed_rows,
    timed,
    write_result,
)
from _gpu import (
    Accelerator,
    identical_row,
    on_cuda,
    print_rows,
    time_rows,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [(1024, 64), (1024, 256), (8192, 512)]
GPU_B, GPU_N, GPU_M = 64, 8192, 512
GPU_GOAL_MS = 0.3
GPU_TITLE = f"GPU: FPS B = {GPU_B}, N = {GPU_N} -> M = {GPU_M} (Triton)"


def main() -> int:
    args = parse_point_args(__doc__)

    t0 = time.perf_counter()
    from mmtok.kernels.fps import farthest_point_sample

    farthest_point_sample(np.zeros((4, 3), np.float32), 2)
    cold = time.perf_counter() - t0

    try:
        import fpsample
    except ImportError as e:
        fpsample = None
        print(f"fpsample skipped: {e}")
    try:
        import open3d as o3d
    except ImportError as e:
        o3d = None
        print(f"Open3D skipped: {e}")

    import numba

    machine = describe_machine({
        "numpy": np.__version__, "numba": numba.__version__,
        "fpsample": getattr(fpsample, "__version__", "unknown") if fpsample else None,
        "open3d": o3d.__version__ if o3d else None})
    print_point_header(f"# FPS benchmark ({args.cloud} clouds, float32, start 0)", machine,
                       args.reps, cold)
    sections = [] if args.gpu_only else cpu_sections(args, fpsample, o3d)
    sections.append(gpu_section(args))
    write_result(args.result, "fps", "Farthest point sampling on the CPU and the GPU", sections,
                 quick=args.quick, params={"reps": args.reps, "batch": args.batch,
                                           "cloud": args.cloud, "gpu_reps": args.gpu_reps,
                                           "gpu_only": args.gpu_only},
                 machine=machine)
    return 0


def cpu_sections(args, fpsample, o3d) -> list[dict]:
    """Every size, one cloud and a batch, against the peers; prints the goals."""
    import numba

    from mmtok.kernels.fps import (
        _fps_numba,
        farthest_point_sample,
        farthest_point_sample_reference,
    )

    rng = np.random.default_rng(0)
    goals = []
    sections = []

    def peers(cloud, m):
        fns = {}
        if fpsample is not None:
            fns["fpsample vanilla"] = lambda: fpsample.fps_sampling(cloud, m, start_idx=0)
            fns["fpsample kdline h=5"] = lambda: fpsample.bucket_fps_kdline_sampling(cloud, m, 5, start_idx=0)
        if o3d is not None:
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.astype(np.float64)))
            fns["Open3D"] = lambda: pc.farthest_point_down_sample(m, 0)
        return fns

    def as_indices(name, result, cloud):
        if name == "Open3D":  # points -> indices (clouds without duplicate points)
            lookup = {tuple(p): i for i, p in enumerate(cloud.astype(np.float64).tolist())}
            pts = np.asarray(result.points)
            return np.array([lookup.get(tuple(p), -1) for p in pts.tolist()])
        return np.asarray(result, dtype=np.int64)

    def same(a, b):
        if np.array_equal(a, b):
            return "yes"
        return "same set" if np.array_equal(np.sort(a), np.sort(b)) else "no"

    for n, m in SIZES:
        cloud = make_cloud(n, args.cloud, rng)
        ref = farthest_point_sample_reference(cloud, m)
        ours = farthest_point_sample(cloud, m)
        fns = {
            "mmtok": lambda: farthest_point_sample(cloud, m),
            "mmtok numba vanilla": lambda: _fps_numba(cloud[None], m, 0, method=0),
        }
        fns.update(peers(cloud, m))
        outs = {k: f() for k, f in fns.items()}  # warm-up (JIT) + outputs
        ref_reps = max(1, min(args.reps, 3 if n > 2000 else args.reps))
        times = timed(fns, args.reps)
        times["numpy reference"] = timed({"r": lambda: farthest_point_sample_reference(cloud, m)}, ref_reps)["r"]
        base = times["mmtok"]
        exactness = {"numpy reference": ("yes", "yes" if np.array_equal(ours, ref) else "no")}
        for name, out in outs.items():
            idx = out[0] if name == "mmtok numba vanilla" else as_indices(name, out, cloud)
            exactness[name] = same(idx, ref), same(idx, ours)
        print_cloud_table(f"## N = {n}, M = {m}, one cloud", times, exactness)
        peer_times = {k: v for k, v in times.items() if k not in ("mmtok", "mmtok numba vanilla", "numpy reference")}
        goal_peers = {}
        if (n, m) == (8192, 512) and "fpsample kdline h=5" in times:
            goals.append(("8192 -> 512 <= fpsample kdline", base, times["fpsample kdline h=5"]))
            goal_peers["fpsample kdline h=5"] = "mmtok no slower"
        if (n, m) == (1024, 64) and peer_times:
            fastest = min(peer_times, key=peer_times.get)
            goals.append((f"1024 -> 64 <= fastest peer ({fastest})", base, peer_times[fastest]))
            goal_peers[fastest] = "mmtok no slower than the fastest peer"
        sections.append(result_section(
            f"FPS N = {n} -> M = {m}, one cloud (median of {args.reps})",
            speed_rows(f"{n} -> {m}", times, "mmtok", goal_peers)))

        # batch
        batch = make_cloud_batch(args.batch, n, args.cloud, rng)
        bref = farthest_point_sample(batch, m)
        bfns = {
            f"mmtok batched (prange, {numba.get_num_threads()} threads)": lambda: farthest_point_sample(batch, m),
            "mmtok loop over clouds": lambda: [farthest_point_sample(c, m) for c in batch],
        }
        if fpsample is not None:
            bfns["fpsample vanilla loop"] = lambda: [fpsample.fps_sampling(c, m, start_idx=0) for c in batch]
            bfns["fpsample kdline loop"] = lambda: [
                fpsample.bucket_fps_kdline_sampling(c, m, 5, start_idx=0) for c in batch
            ]
        if o3d is not None:
            pcs = [o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c.astype(np.float64))) for c in batch]
            bfns["Open3D loop"] = lambda: [pc.farthest_point_down_sample(m, 0) for pc in pcs]
        identical = all(np.array_equal(bref[b], farthest_point_sample_reference(batch[b], m))
                        for b in range(min(2, args.batch)))
        sections[-1]["rows"] += batch_contest(f"N = {n}, M = {m}", f"{n} -> {m}", bfns,
                                              args.reps, args.batch, identical)

    print_goals("## Goals", goals)
    return sections


def gpu_section(args) -> dict:
    """The GPU section on CUDA; skipped with the reason where CUDA is absent."""
    return on_cuda(GPU_TITLE, lambda acc: measure_gpu(acc, GPU_B, GPU_N, GPU_M, args.cloud,
                                                      args.gpu_reps, max(1, args.reps // 3)))


def measure_gpu(acc: Accelerator, b: int, n: int, m: int, cloud: str, reps: int,
                cpu_reps: int) -> dict:
    """``b`` clouds of ``n`` -> ``m`` through the Triton kernel on ``acc`` against the goal
    and against the numba batched call on the same clouds, whose indices it must equal."""
    import numba
    import torch

    from mmtok.kernels.fps import farthest_point_sample

    batch = make_cloud_batch(b, n, cloud, np.random.default_rng(19))
    on_device = torch.from_numpy(batch).to(acc.device)

    def ours():
        return farthest_point_sample(on_device, m, impl="triton")

    cpu_out = farthest_point_sample(batch, m)  # also the numba warm-up
    same = np.array_equal(ours().cpu().numpy(), cpu_out)
    gpu_t = acc.median_seconds({"mmtok": ours}, reps)["mmtok"]
    cpu_name = f"mmtok numba batched (prange, {numba.get_num_threads()} threads)"
    cpu_t = timed({cpu_name: lambda: farthest_point_sample(batch, m)}, cpu_reps)[cpu_name]
    rows = time_rows("mmtok farthest_point_sample, device tensor (Triton)", gpu_t,
                     {cpu_name: cpu_t}, goal_ms=GPU_GOAL_MS)
    rows.append(identical_row("indices identical to the numba CPU path", same))
    notes = [f"Device: {acc.name}; {b} {cloud} clouds of {n} float32 points, start 0; "
             f"device: median of {reps} calls timed by {acc.how_timed}; CPU: median of "
             f"{cpu_reps} wall-clock calls."]
    title = f"GPU: FPS B = {b}, N = {n} -> M = {m} (Triton)"
    print_rows(title, rows, notes)
    return result_section(title, rows, notes)


if __name__ == "__main__":
    sys.exit(main())
