"""Demo data for graphs: rings, stars and grids of random sizes with random node order,
written as edge lists, node-link JSON and GraphML. Same seed, same files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SHAPES = ("grid", "ring", "star")


def _edges(shape: str, rng: np.random.Generator) -> tuple[int, list[tuple[int, int]]]:
    if shape == "ring":
        n = int(rng.integers(8, 21))
        return n, [(i, (i + 1) % n) for i in range(n)]
    if shape == "star":
        n = int(rng.integers(8, 21))
        return n, [(0, i) for i in range(1, n)]
    rows, cols = int(rng.integers(2, 5)), int(rng.integers(3, 6))
    edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    return rows * cols, edges


def write_graph(path: Path, n: int, edges: list[tuple[int, int]]) -> None:
    """One graph in the format ``path``'s extension names (.edgelist, .json, .graphml)."""
    if path.suffix == ".json":
        path.write_text(json.dumps({"directed": False, "multigraph": False, "graph": {},
                                    "nodes": [{"id": i} for i in range(n)],
                                    "edges": [{"source": u, "target": v} for u, v in edges]}))
    elif path.suffix == ".graphml":
        body = "".join(f'<node id="{i}"/>' for i in range(n))
        body += "".join(f'<edge source="{u}" target="{v}"/>' for u, v in edges)
        path.write_text('<?xml version="1.0" encoding="utf-8"?><graphml xmlns='
                        '"http://graphml.graphdrawing.org/xmlns"><graph edgedefault='
                        f'"undirected">{body}</graph></graphml>')
    else:
        path.write_text("# u v\n" + "".join(f"{u} {v}\n" for u, v in edges))


def make_demo_graph(folder: str | os.PathLike, per_class: int = 20, seed: int = 0) -> Path:
    """Write ``per_class`` graphs of each shape under ``folder/<shape>/``."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    formats = (".edgelist", ".json", ".graphml")
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            n, edges = _edges(shape, rng)
            relabel = rng.permutation(n)
            edges = [(int(relabel[u]), int(relabel[v])) for u, v in edges]
            write_graph(folder / shape / f"{i:03d}{formats[i % 3]}", n, edges)
    return folder
