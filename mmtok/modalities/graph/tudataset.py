"""TUDataset folders (Morris et al.): ``DS_A.txt`` (``i, j`` per line, 1-based global node
ids, each undirected edge listed in both directions), ``DS_graph_indicator.txt`` (the
1-based graph of every node), ``DS_graph_labels.txt`` (one label per graph), optional
``DS_node_labels.txt``, ``DS_edge_labels.txt`` (integer types), ``DS_node_attributes.txt``,
``DS_edge_attributes.txt`` (comma-separated floats).

``DS_A.txt`` is the sample file: one sample per graph, parts ``g=1`` .. ``g=G`` (TU's graph
numbers), labels from ``DS_graph_labels.txt`` (class names are the label values, sorted
numerically). The other files are its companions and are never samples themselves.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ...errors import SampleError, UsageError
from ..files import check_input_file
from .readers import Graph

SUFFIXES = ("graph_indicator", "graph_labels", "node_labels", "edge_labels",
            "node_attributes", "edge_attributes", "graph_attributes")
PART = re.compile(r"g=(\d+)")


def dataset_prefix(path: str) -> str | None:
    """``/x/MUTAG/MUTAG`` for ``/x/MUTAG/MUTAG_A.txt`` when its graph indicator is beside it."""
    if not path.endswith("_A.txt"):
        return None
    prefix = path[: -len("_A.txt")]
    return prefix if os.path.isfile(f"{prefix}_graph_indicator.txt") else None


def is_companion(path: str) -> bool:
    """A TUDataset side file (or the README beside ``DS_A.txt``): part of the graphs that
    ``DS_A.txt`` holds, not a graph itself."""
    name = os.path.basename(path)
    folder = os.path.dirname(path)
    if name.lower() == "readme.txt":
        return any(f.endswith("_A.txt") for f in os.listdir(folder or "."))
    for suffix in SUFFIXES:
        if name.endswith(f"_{suffix}.txt"):
            prefix = os.path.join(folder, name[: -len(f"_{suffix}.txt")])
            return os.path.isfile(f"{prefix}_A.txt")
    return False


def _numbers(path: str, dtype, rows: bool = False) -> np.ndarray:
    """Every number of a TU text file (commas or whitespace between them), read once;
    ``rows``: as (lines, values a line)."""
    check_input_file(path)
    with open(path, "rb") as handle:
        data = handle.read()
    first = data.lstrip().split(b"\n", 1)[0]
    try:
        values = np.array(data.replace(b",", b" ").split(), dtype=dtype)
    except ValueError as exc:
        raise SampleError("decode_error", f"{os.path.basename(path)}: {exc}") from None
    if rows:
        width = max(1, len(first.split(b",")))
        if values.size % width:
            raise SampleError("decode_error", f"{os.path.basename(path)}: expected "
                              f"{width} values a line")
        values = values.reshape(-1, width)
    return values


def _rows(path: str) -> np.ndarray:
    return _numbers(path, np.float64, rows=True)


def graph_labels(prefix: str) -> np.ndarray:
    path = f"{prefix}_graph_labels.txt"
    if os.path.isfile(path):
        return _numbers(path, np.int64)
    return np.full(int(_numbers(f"{prefix}_graph_indicator.txt", np.int64).max()), -1)


def list_graphs(path: str) -> list[tuple[str, int | None]]:
    """``(g=N, label index)`` of every graph, from the labels file (or the indicator)."""
    prefix = dataset_prefix(path)
    labels = graph_labels(prefix)
    if (labels < 0).all() and not os.path.isfile(f"{prefix}_graph_labels.txt"):
        return [(f"g={i + 1}", None) for i in range(len(labels))]
    values = sorted(set(labels.tolist()))
    index = {v: i for i, v in enumerate(values)}
    return [(f"g={i + 1}", index[v]) for i, v in enumerate(labels.tolist())]


def class_names(path: str) -> list[str] | None:
    prefix = dataset_prefix(path)
    if prefix is None or not os.path.isfile(f"{prefix}_graph_labels.txt"):
        return None
    return [str(v) for v in sorted(set(graph_labels(prefix).tolist()))]


def graph_number(part: str | None) -> int:
    match = PART.fullmatch(part or "")
    if match is None or int(match.group(1)) < 1:
        raise UsageError(f"TUDataset part {part!r} is not a graph name g=N (1-based)")
    return int(match.group(1))


def read_graphs(path: str, numbers: list[int]) -> list[Graph | SampleError]:
    """The graphs numbered ``numbers`` (1-based) of the dataset whose ``DS_A.txt`` is
    ``path``, reading each of its files once."""
    prefix = dataset_prefix(path)
    if prefix is None:
        raise SampleError("decode_error", "a TUDataset DS_A.txt needs DS_graph_indicator.txt "
                          "beside it")
    edges = _numbers(path, np.int64, rows=True).reshape(-1, 2) - 1
    indicator = _numbers(f"{prefix}_graph_indicator.txt", np.int64)
    n_total = len(indicator)
    if edges.size and (edges.min() < 0 or edges.max() >= n_total):
        raise SampleError("bad_graph", f"{os.path.basename(path)} names node "
                          f"{int(edges.max()) + 1}, but the graph indicator lists {n_total} "
                          "nodes")
    optional = {}
    for name, reader in (("node_labels", lambda p: _numbers(p, np.int64)),
                         ("edge_labels", lambda p: _numbers(p, np.int64)),
                         ("node_attributes", _rows), ("edge_attributes", _rows)):
        file = f"{prefix}_{name}.txt"
        if os.path.isfile(file):
            optional[name] = reader(file)
            expected = n_total if name.startswith("node") else len(edges)
            if len(optional[name]) != expected:
                raise SampleError("decode_error", f"{os.path.basename(file)} has "
                                  f"{len(optional[name])} lines, expected {expected}")
    num_graphs = int(indicator.max()) if n_total else 0
    node_start = np.searchsorted(indicator, np.arange(1, num_graphs + 2), side="left")
    if np.any(np.diff(indicator) < 0):
        raise SampleError("decode_error", "the graph indicator is not sorted by graph")
    edge_graph = indicator[edges[:, 0]] if edges.size else np.zeros(0, np.int64)
    order = np.argsort(edge_graph, kind="stable")
    edge_start = np.searchsorted(edge_graph[order], np.arange(1, num_graphs + 2), side="left")
    out: list[Graph | SampleError] = []
    for number in numbers:
        if number > num_graphs:
            out.append(SampleError("bad_graph", f"graph {number} is beyond the dataset's "
                                   f"{num_graphs} graphs"))
            continue
        lo, hi = node_start[number - 1], node_start[number]
        rows = order[edge_start[number - 1]:edge_start[number]]
        local = edges[rows]
        if local.size and (local.min() < lo or local.max() >= hi):
            out.append(SampleError("bad_graph", f"graph {number} has an edge to a node of "
                                   "another graph"))
            continue
        g = Graph(int(hi - lo), local - lo)
        if "node_labels" in optional:
            g.node_type = optional["node_labels"][lo:hi]
        if "node_attributes" in optional:
            g.node_attr = optional["node_attributes"][lo:hi]
        if "edge_labels" in optional:
            g.edge_type = optional["edge_labels"][rows]
        if "edge_attributes" in optional:
            g.edge_attr = optional["edge_attributes"][rows]
        out.append(g)
    return out
