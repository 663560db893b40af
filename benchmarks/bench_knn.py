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

    .venv/bin/python benchmarks/bench_knn.py            # ~30 s on 2 cores
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
    result_section,
    speed_rows,
    timed,
    write_result,
)

SIZES = [(1024, 64), (1024, 256), (8192, 512)]
K = 32


def main() -> int:
    args = parse_point_args(__doc__)

    import numba
    import scipy
    from scipy.spatial import cKDTree

    t0 = time.perf_counter()
    from mmtok.kernels.fps import farthest_point_sample
    from mmtok.kernels.knn import _knn_numba, knn_group, knn_group_reference

    knn_group(np.zeros((4, 3), np.float32), np.array([0]), 2)
    cold = time.perf_counter() - t0

    machine = describe_machine({"numpy": np.__version__, "numba": numba.__version__,
                                "scipy": scipy.__version__})
    print_point_header(f"# KNN grouping benchmark ({args.cloud} clouds, float32, k = {K}, "
                       "centres = FPS picks)", machine, args.reps, cold)
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

    write_result(args.result, "knn", "k-NN grouping on the CPU", sections, quick=args.quick,
                 params={"reps": args.reps, "batch": args.batch, "cloud": args.cloud, "k": K},
                 machine=machine)
    print_goals("## Goal: mmtok no slower than cKDTree (build + query + gather), one cloud", goals,
                "cKDTree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
