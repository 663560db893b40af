#!/usr/bin/env python
"""k-NN grouping on the CPU: mmtok ``knn_group`` against scipy's cKDTree, one run.

For (N, G) in (1024, 64), (1024, 256), (8192, 512) and k = 32 (centres: the FPS picks of
the cloud, as Point-MAE groups them), per cloud and for a batch of B clouds, times the
median of ``--reps`` interleaved repetitions after a warm-up call (numba's JIT compile is
not in the figures):

* mmtok ``knn_group(points, centre_indices, k)``: indices and centred neighbourhoods
  (exact grid-bucket search), and the forced numba brute force for reference;
* scipy ``cKDTree(points).query(centres, k)`` plus the gather ``points[idx] - centre``
  (the same output), tree build included, ``workers=1``; and the query alone.

Exactness: ``=ref`` says whether the indices equal the brute-force reference (stable
argsort: distance ascending, ties by lowest index) and the neighbourhoods are
bit-identical; ``=mmtok`` whether cKDTree's indices equal mmtok's (on random data there
are no ties, so they should).

Goal (issue 3): mmtok no slower than cKDTree (build + query + gather).

GPU section (when CUDA is present; issue 19): ``knn_group`` on CUDA tensors, B = 64 clouds
of N = 8192 points, k = 32 around G = 512 FPS centres (the Triton kernel), median of
``--gpu-reps`` calls timed with CUDA events, against the goal of <= 0.15 ms, against
``torch.cdist`` + ``topk`` + the same gather on the same device (the peer, same run) and
against the numba batched call (the ratio); its output must equal the CPU path's.

    .venv/bin/python benchmarks/bench_knn.py            # ~30 s on 2 cores
    .venv/bin/python benchmarks/bench_knn.py --gpu-only # the GPU section alone
"""

from __future__ import annotations

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
    result_row,
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

SIZES = [(1024, 64), (1024, 256), (8192, 512)]
K = 32
GPU_B, GPU_N, GPU_G = 64, 8192, 512
GPU_GOAL_MS = 0.15
GPU_TITLE = f"GPU: KNN B = {GPU_B}, N = {GPU_N}, G = {GPU_G}, k = {K} (Triton)"


def main() -> int:
    args = parse_point_args(__doc__)

    import numba
    import scipy

    t0 = time.perf_counter()
    from mmtok.kernels.knn import knn_group

    knn_group(np.zeros((4, 3), np.float32), np.array([0]), 2)
    cold = time.perf_counter() - t0

    machine = describe_machine({"numpy": np.__version__, "numba": numba.__version__,
                                "scipy": scipy.__version__})
    print_point_header(f"# KNN grouping benchmark ({args.cloud} clouds, float32, k = {K}, "
                       "centres = FPS picks)", machine, args.reps, cold)
    sections = [] if args.gpu_only else cpu_sections(args)
    sections.append(gpu_section(args))
    write_result(args.result, "knn", "k-NN grouping on the CPU and the GPU", sections,
                 quick=args.quick,
                 params={"reps": args.reps, "batch": args.batch, "cloud": args.cloud, "k": K,
                         "gpu_reps": args.gpu_reps, "gpu_only": args.gpu_only},
                 machine=machine)
    return 0


def cpu_sections(args) -> list[dict]:
    """Every size, one cloud and a batch, against cKDTree; prints the goals."""
    import numba
    from scipy.spatial import cKDTree

    from mmtok.kernels.fps import farthest_point_sample
    from mmtok.kernels.knn import _knn_numba, knn_group, knn_group_reference

    rng = np.random.default_rng(0)
    goals = []
    sections = []

    def kdtree_group(cloud, ctr):
        _, idx = cKDTree(cloud).query(ctr, K, workers=1)
        return idx, cloud[idx] - ctr[:, None, :]

    for n, g in SIZES:
        cloud = make_cloud(n, args.cloud, rng)
        centres = farthest_point_sample(cloud, g)
        ctr = cloud[centres]
        ref = knn_group_reference(cloud, centres, K)
        tree = cKDTree(cloud)
        fns = {
            "mmtok": lambda: knn_group(cloud, centres, K),
            "mmtok numba brute force": lambda: _knn_numba(cloud[None], ctr[None], K, method=0),
            "cKDTree build+query+gather": lambda: kdtree_group(cloud, ctr),
            "cKDTree query only (prebuilt)": lambda: tree.query(ctr, K, workers=1),
        }
        outs = {k: f() for k, f in fns.items()}
        times = timed(fns, args.reps)
        base = times["mmtok"]
        ours = outs["mmtok"]
        exactness = {}
        for name, out in outs.items():
            if name == "mmtok numba brute force":
                idx, nbh = out[0][0], out[1][0]
            elif name == "cKDTree query only (prebuilt)":
                idx, nbh = out[1], None
            else:
                idx, nbh = out
            same_ref = np.array_equal(idx, ref[0]) and (nbh is None or np.array_equal(nbh, ref[1]))
            same_ours = np.array_equal(idx, ours[0])
            exactness[name] = "yes" if same_ref else "no", "yes" if same_ours else "no"
        print_cloud_table(f"## N = {n}, G = {g}, one cloud", times, exactness)
        goals.append((f"N = {n}, G = {g}", base, times["cKDTree build+query+gather"]))
        sections.append(result_section(
            f"KNN N = {n}, G = {g}, k = {K}, one cloud (median of {args.reps})",
            speed_rows(f"N = {n}, G = {g}", times, "mmtok",
                       {"cKDTree build+query+gather": "mmtok no slower"})))

        batch = make_cloud_batch(args.batch, n, args.cloud, rng)
        bcent = farthest_point_sample(batch, g)
        bctr = np.take_along_axis(batch, bcent[:, :, None], axis=1)
        bfns = {
            f"mmtok batched (prange, {numba.get_num_threads()} threads)": lambda: knn_group(batch, bcent, K),
            "mmtok loop over clouds": lambda: [knn_group(batch[b], bcent[b], K) for b in range(args.batch)],
            "cKDTree loop (build+query+gather)": lambda: [
                kdtree_group(batch[b], bctr[b]) for b in range(args.batch)
            ],
        }
        bout = knn_group(batch, bcent, K)
        identical = all(np.array_equal(bout[0][b], knn_group_reference(batch[b], bcent[b], K)[0])
                        for b in range(2))
        sections[-1]["rows"] += batch_contest(f"N = {n}, G = {g}", f"N = {n}, G = {g}", bfns,
                                              args.reps, args.batch, identical)

    print_goals("## Goal: mmtok no slower than cKDTree (build + query + gather), one cloud", goals,
                "cKDTree")
    return sections


def gpu_section(args) -> dict:
    """The GPU section on CUDA; skipped with the reason where CUDA is absent."""
    return on_cuda(GPU_TITLE, lambda acc: measure_gpu(acc, GPU_B, GPU_N, GPU_G, args.cloud,
                                                      args.gpu_reps, max(1, args.reps // 3)))


def torch_group(points, centres, k: int):
    """The peer: ``torch.cdist`` from the centres to every point, ``topk`` of the k smallest
    (sorted), then the same output as mmtok's: indices and neighbourhoods minus the centre."""
    import torch

    rows = torch.arange(points.shape[0], device=points.device)[:, None]
    ctr = points[rows, centres]                                        # (B, G, 3)
    idx = torch.cdist(ctr, points).topk(k, dim=-1, largest=False).indices  # (B, G, k)
    return idx, points[rows[:, :, None], idx] - ctr[:, :, None]


def measure_gpu(acc: Accelerator, b: int, n: int, g: int, cloud: str, reps: int,
                cpu_reps: int) -> dict:
    """``b`` clouds of ``n`` points, k = 32 around ``g`` FPS centres, through the Triton
    kernel on ``acc``: against the goal, ``torch.cdist`` + ``topk`` on the same device, and
    the numba batched call on the same clouds, whose output it must equal."""
    import numba
    import torch

    from mmtok.kernels.fps import farthest_point_sample
    from mmtok.kernels.knn import knn_group

    batch = make_cloud_batch(b, n, cloud, np.random.default_rng(19))
    centres = farthest_point_sample(batch, g)
    points, centres_dev = (torch.from_numpy(a).to(acc.device) for a in (batch, centres))

    def ours():
        return knn_group(points, centres_dev, K, impl="triton")

    cpu_idx, cpu_nbh = knn_group(batch, centres, K)  # also the numba warm-up
    idx, nbh = ours()
    same = np.array_equal(idx.cpu().numpy(), cpu_idx) and np.array_equal(nbh.cpu().numpy(),
                                                                          cpu_nbh)
    peer_name = "torch.cdist + topk + gather (same device)"
    peer_idx = torch_group(points, centres_dev, K)[0].cpu().numpy()
    peer_same = float((peer_idx == cpu_idx).all(axis=-1).mean())
    times = acc.median_seconds({"mmtok": ours,
                                peer_name: lambda: torch_group(points, centres_dev, K)}, reps)
    cpu_name = f"mmtok numba batched (prange, {numba.get_num_threads()} threads)"
    cpu_t = timed({cpu_name: lambda: knn_group(batch, centres, K)}, cpu_reps)[cpu_name]
    rows = time_rows("mmtok knn_group, device tensors (Triton)", times["mmtok"],
                     {peer_name: times[peer_name], cpu_name: cpu_t}, goal_ms=GPU_GOAL_MS)
    rows.append(identical_row("indices and neighbourhoods identical to the numba CPU path",
                              same))
    rows.append(result_row(f"{peer_name}: neighbour lists equal to mmtok's",
                           round(100 * peer_same, 2), "%",
                           note="informational: cdist's matmul form rounds differently"))
    notes = [f"Device: {acc.name}; {b} {cloud} clouds of {n} float32 points, k = {K} around "
             f"{g} FPS centres; device: median of {reps} calls timed by {acc.how_timed}; "
             f"CPU: median of {cpu_reps} wall-clock calls."]
    title = f"GPU: KNN B = {b}, N = {n}, G = {g}, k = {K} (Triton)"
    print_rows(title, rows, notes)
    return result_section(title, rows, notes)


if __name__ == "__main__":
    sys.exit(main())
