#!/usr/bin/env python
"""Laplacian node ids (graph modality) against a networkx + numpy loop, side by side.

For G graphs of 10-200 nodes (a path through every node plus 2n random edges, so no node is
isolated and networkx's ``normalized_laplacian_matrix`` is the same matrix as ours), both
sides start from the same edge arrays:

* mmtok: ``laplacian_ids(n, a, b, k=16)`` per graph: the dense Laplacian in numpy, LAPACK
  ``evr`` for the 17 smallest eigenpairs, and the documented sign/basis rule;
* peer: ``nx.Graph`` from the edges, ``nx.normalized_laplacian_matrix(g).toarray()``,
  ``numpy.linalg.eigh``, first 16 columns (TokenGT's own recipe).

Both run on one thread, interleaved in blocks (the machine is shared). Same subspaces: for
every graph, each whole eigenvalue cluster inside the first 16 spans the same space on both
sides (projector difference below 1e-8) and every vector of ours lies in the peer's cluster.
Goal (issue 16): >= 3x the peer for 10,000 graphs.

    python benchmarks/bench_graph.py            # 10,000 graphs, ~1 minute on 2 cores
    python benchmarks/bench_graph.py --quick    # 1,000 graphs
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    cpu_snapshot,
    describe_machine,
    foreign_cpu,
    foreign_cpu_notes,
    machine_line,
    pin_single_thread,
    result_row,
    result_section,
    standard_args,
    write_result,
)

pin_single_thread()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
K = 16


def make_graphs(count: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(count):
        n = int(rng.integers(10, 201))
        a = np.concatenate([np.arange(n - 1), rng.integers(0, n, 2 * n)])
        b = np.concatenate([np.arange(1, n), rng.integers(0, n, 2 * n)])
        keep = a != b
        lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
        key = np.unique(lo * n + hi)
        graphs.append((n, key // n, key % n))
    return graphs


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="1,000 graphs", json_help="print the result as JSON")
    parser.add_sized("--graphs", 10_000, 1_000, "generated graphs")
    args = parser.parse_args(argv)
    count = args.graphs

    import networkx as nx
    import numpy as np
    import scipy

    from mmtok.modalities.graph.laplacian import clusters, laplacian_ids

    machine = describe_machine({"numpy": np.__version__, "scipy": scipy.__version__,
                                "networkx": nx.__version__})
    print(f"# Laplacian ids, {count} graphs of 10-200 nodes, k = {K}\n{machine_line(machine)}")
    graphs = make_graphs(count)

    def ours(graph):
        return laplacian_ids(*graph, K)

    def peer(graph):
        n, a, b = graph
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(a.tolist(), b.tolist()))
        lap = nx.normalized_laplacian_matrix(g, nodelist=range(n)).toarray()
        values, vectors = np.linalg.eigh(lap)
        return values, vectors

    ours(graphs[0]), peer(graphs[0])  # warm-up
    snapshot = cpu_snapshot()
    times = {"mmtok": 0.0, "networkx+eigh": 0.0}
    mismatched = 0
    block = 100
    for start in range(0, count, block):  # interleaved blocks: both see the same load
        chunk = graphs[start:start + block]
        t = time.perf_counter()
        mine = [ours(g) for g in chunk]
        times["mmtok"] += time.perf_counter() - t
        t = time.perf_counter()
        theirs = [peer(g) for g in chunk]
        times["networkx+eigh"] += time.perf_counter() - t
        for (values, vectors), (ref_values, ref_vectors) in zip(mine, theirs):
            m = vectors.shape[1]
            ok = np.allclose(values, ref_values[:m], atol=1e-8)
            for lo, hi in clusters(ref_values):
                if lo >= m:
                    break
                space = ref_vectors[:, lo:hi]
                part = vectors[:, lo:min(hi, m)]
                ok &= np.allclose(space @ (space.T @ part), part, atol=1e-8)
                if hi <= m:
                    ok &= np.allclose(part @ part.T, space @ space.T, atol=1e-8)
            mismatched += not ok
    foreign, share = foreign_cpu(snapshot)
    ratio = times["networkx+eigh"] / times["mmtok"]
    print(f"\n| side | total s | per graph ms |\n|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {1000 * seconds / count:.3f} |")
    print(f"\nmmtok is {ratio:.2f}x the networkx + numpy.linalg.eigh loop (goal >= 3x); "
          f"same subspaces: {count - mismatched} / {count} graphs")
    notes = foreign_cpu_notes(foreign, share)
    for note in notes:
        print(note)
    rows = [result_row(f"{count} graphs: mmtok", times["mmtok"], "s", peer="networkx+eigh",
                       peer_value=times["networkx+eigh"], ratio=ratio, ratio_of="speed-up",
                       goal=">= 3x", passed=ratio >= 3 and mismatched == 0,
                       note=f"same subspaces on {count - mismatched} / {count}")]
    sections = [result_section(f"Laplacian ids, {count} graphs", rows, notes)]
    write_result(args.result, "graph", "Laplacian node ids", sections, quick=args.quick,
                 params={"graphs": count, "k": K}, machine=machine)
    if args.json:
        print(json.dumps({"graphs": count, "seconds": times, "ratio": ratio,
                          "mismatched": mismatched, "machine": machine}))
    return 0 if mismatched == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
