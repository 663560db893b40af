"""The ``graph`` modality: a graph -> TokenGT tokens (Kim et al. 2022).

Tokens, in this order: ``max_nodes`` node slots, then ``max_edges`` edge slots (padding
after the real ones, counted by ``num_nodes`` and ``num_edges``). Every token is one row
of ``tokens``: ``[P_u, P_v, attributes]`` with ``P`` the node's Laplacian identifier (the
first ``lap_k`` eigenvectors, :mod:`.laplacian`), ``u = v`` for a node token, and its float
attributes zero-padded to ``attr_dim``. ``token_label`` holds a node's or edge's integer
type + 1 (0: none or padding), ``eigvals`` the ``lap_k`` smallest eigenvalues (zero beyond
the node count).

Edges: the graph is undirected (a directed file's ``u -> v`` and ``v -> u`` are one edge);
duplicates collapse onto their first occurrence in the file (its features are kept); edges
are ordered by ``(min, max)`` node; ``edges="both"`` (TokenGT) makes each edge two tokens,
``(u, v)`` then ``(v, u)``, ``edges="undirected"`` one, ``(u, v)`` with ``u < v``. Self
loops are dropped (``self_loops="drop"``) or kept as one token ``(u, u)``
(``"keep"``); they never enter the Laplacian.

Integer types are stored when ``node_types`` / ``edge_types`` (vocabulary sizes) are above
0, float attributes when ``attr_dim`` is; ``--stats-from-data`` fits all three from the
training graphs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import SampleError, UsageError
from ...store.layout import ArraySpec
from ..base import Tokenizer
from . import tudataset
from .readers import EXTENSIONS, Graph, Limits, read_graph


@dataclass(frozen=True)
class GraphConfig:
    modality: str = "graph"
    max_nodes: int = 128
    max_edges: int = 512  # edge tokens (both directions count with edges="both")
    lap_k: int = 16
    edges: str = "both"  # "both": (u, v) and (v, u), as TokenGT; "undirected": once
    self_loops: str = "drop"  # "drop" or "keep" (one token (u, u); never in the Laplacian)
    attr_dim: int = 0  # float attributes stored per token (0: none)
    node_types: int = 0  # integer node types 0..node_types-1 stored (0: none)
    edge_types: int = 0
    dense_max: int = 256  # dense eigh up to this many nodes, sparse eigsh above
    max_file_mb: float = 16.0

    def __post_init__(self) -> None:
        problems = []
        for name in ("max_nodes", "max_edges", "lap_k", "dense_max"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("attr_dim", "node_types", "edge_types"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, not {getattr(self, name)}")
        if self.edges not in ("both", "undirected"):
            problems.append(f"edges must be 'both' or 'undirected', not {self.edges!r}")
        if self.self_loops not in ("drop", "keep"):
            problems.append(f"self_loops must be 'drop' or 'keep', not {self.self_loops!r}")
        if not (self.max_file_mb > 0 and math.isfinite(self.max_file_mb)):
            problems.append(f"max_file_mb must be positive, not {self.max_file_mb}")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def length(self) -> int:
        return self.max_nodes + self.max_edges

    @property
    def width(self) -> int:
        return 2 * self.lap_k + self.attr_dim

    @property
    def limits(self) -> Limits:
        return Limits(int(self.max_file_mb * 2**20), 4 * self.max_edges)


class GraphTokenizer(Tokenizer):
    extensions = EXTENSIONS

    def __init__(self, config: GraphConfig) -> None:
        self.config = config

    def sample_arrays(self) -> dict[str, ArraySpec]:
        c = self.config
        return {
            "tokens": ArraySpec((c.length, c.width), "float32"),
            "token_label": ArraySpec((c.length,), "int32"),
            "eigvals": ArraySpec((c.lap_k,), "float32"),
            "num_nodes": ArraySpec((), "int32"),
            "num_edges": ArraySpec((), "int32"),
        }

    # --- TUDataset folders: DS_A.txt holds many graphs ------------------------------------

    def list_parts(self, path: str):  # type: ignore[override]
        if tudataset.dataset_prefix(path) is None:
            return None
        return tudataset.list_graphs(path)

    def part_class_names(self, path: str):  # type: ignore[override]
        return tudataset.class_names(path)

    def is_companion(self, path: str) -> bool:
        return tudataset.is_companion(path)

    # --- tokenize -------------------------------------------------------------------------

    def load(self, path: str, parts: Sequence[str | None]) -> list[Graph | SampleError]:
        if all(p is None for p in parts):
            try:
                graph: Graph | SampleError = read_graph(path, self.config.limits)
            except SampleError as exc:
                graph = exc
            return [graph] * len(parts)
        return tudataset.read_graphs(path, [tudataset.graph_number(p) for p in parts])

    def tokenize_parts(self, path: str, parts: Sequence[str | None]
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        """A TUDataset's graphs of one run are read with one pass over its files."""
        out: list[dict[str, np.ndarray] | SampleError] = []
        for graph in self.load(path, parts):
            if isinstance(graph, SampleError):
                out.append(graph)
                continue
            try:
                out.append(self.tokenize_graph(graph))
            except SampleError as exc:
                out.append(exc)
        return out

    def tokenize_graph(self, graph: Graph) -> dict[str, np.ndarray]:
        c = self.config
        n, k = graph.num_nodes, c.lap_k
        if n == 0:
            raise SampleError("empty_graph", "the graph has no nodes")
        if n > c.max_nodes:
            raise SampleError("too_large", f"{n} nodes is more than max_nodes {c.max_nodes}; "
                              "raise --set max_nodes=...")
        u, v, rows, loops = self.edge_tokens(graph)
        if len(u) > c.max_edges:
            raise SampleError("too_large", f"{len(u)} edge tokens (edges={c.edges!r}) is "
                              f"more than max_edges {c.max_edges}; raise --set max_edges=...")
        from .laplacian import laplacian_ids  # scipy.linalg: only a graph run pays its import

        values, vectors = laplacian_ids(n, *loops, k, c.dense_max)
        ids = np.zeros((n, k))
        ids[:, :vectors.shape[1]] = vectors
        tokens = np.zeros((c.length, c.width), np.float32)
        labels = np.zeros(c.length, np.int32)
        e0, e1 = c.max_nodes, c.max_nodes + len(u)
        tokens[:n, :k] = ids
        tokens[:n, k:2 * k] = ids
        tokens[e0:e1, :k] = ids[u]
        tokens[e0:e1, k:2 * k] = ids[v]
        if c.attr_dim:
            if graph.node_attr is not None:
                tokens[:n, 2 * k:2 * k + graph.node_attr.shape[1]] = self._attrs(
                    graph.node_attr, "node")
            if graph.edge_attr is not None:
                tokens[e0:e1, 2 * k:2 * k + graph.edge_attr.shape[1]] = self._attrs(
                    graph.edge_attr, "edge")[rows]
        if c.node_types and graph.node_type is not None:
            labels[:n] = self._types(graph.node_type, c.node_types, "node") + 1
        if c.edge_types and graph.edge_type is not None:
            labels[e0:e1] = self._types(graph.edge_type, c.edge_types, "edge")[rows] + 1
        eigvals = np.zeros(k, np.float32)
        eigvals[:len(values)] = values
        return {"tokens": tokens, "token_label": labels, "eigvals": eigvals,
                "num_nodes": np.int32(n), "num_edges": np.int32(len(u))}

    def edge_tokens(self, graph: Graph) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                 tuple[np.ndarray, np.ndarray]]:
        """``(u, v, source row, (a, b))``: the edge tokens' endpoints, the file row each
        token's features come from, and the Laplacian's undirected edges ``a < b``."""
        n = graph.num_nodes
        e = graph.edges.reshape(-1, 2)
        a, b = np.minimum(e[:, 0], e[:, 1]), np.maximum(e[:, 0], e[:, 1])
        keys, first = np.unique(a * n + b, return_index=True)  # sorted; first occurrence
        ua, ub = keys // n, keys % n
        loop = ua == ub
        lap = (ua[~loop], ub[~loop])
        if self.config.self_loops == "drop":
            ua, ub, first, loop = ua[~loop], ub[~loop], first[~loop], loop[~loop]
        if self.config.edges == "undirected":
            return ua, ub, first, lap
        reps = np.where(loop, 1, 2)
        idx = np.repeat(np.arange(len(ua)), reps)
        second = np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps) == 1
        u, v = ua[idx], ub[idx]
        u[second], v[second] = v[second], u[second].copy()
        return u, v, first[idx], lap

    def _attrs(self, values: np.ndarray, what: str) -> np.ndarray:
        if values.shape[1] > self.config.attr_dim:
            raise SampleError("bad_feature", f"{values.shape[1]} {what} attributes is more "
                              f"than attr_dim {self.config.attr_dim}; raise --set attr_dim=...")
        if not np.isfinite(values).all():
            raise SampleError("nan_attribute", f"a {what} attribute is NaN or infinite")
        return values

    def _types(self, values: np.ndarray, vocabulary: int, what: str) -> np.ndarray:
        if values.size and (values.min() < 0 or values.max() >= vocabulary):
            raise SampleError("bad_feature", f"{what} type {int(values.max())} (or a negative "
                              f"one) is outside {what}_types {vocabulary}; raise --set "
                              f"{what}_types=... (or fit it with --stats-from-data)")
        return values.astype(np.int32)

    # --- fitted: vocabulary sizes and attribute width -------------------------------------

    def statistics_from(self, paths: list[str]) -> dict:
        """``node_types``, ``edge_types`` (largest type + 1) and ``attr_dim`` (widest
        attributes) over the training graphs; unreadable graphs are skipped."""
        fitted = {"node_types": 0, "edge_types": 0, "attr_dim": 0}
        for path in paths:
            parts = self.list_parts(path)
            names = [None] if parts is None else [name for name, _ in parts]
            try:
                graphs = self.load(path, names)
            except SampleError:
                continue
            for g in graphs:
                if isinstance(g, SampleError):
                    continue
                for key, values in (("node_types", g.node_type), ("edge_types", g.edge_type)):
                    if values is not None and values.size:
                        fitted[key] = max(fitted[key], int(values.max()) + 1)
                for values in (g.node_attr, g.edge_attr):
                    if values is not None:
                        fitted["attr_dim"] = max(fitted["attr_dim"], values.shape[1])
        return fitted
