"""Graph files -> :class:`Graph` (node count, edges in file order, optional features).

Formats (one graph per file): edge lists (``.edgelist``/``.txt``/``.csv``/``.tsv``: ``u v
[weight]`` per line, comma-separated for ``.csv``, tab for ``.tsv``, whitespace otherwise;
``#`` starts a comment; a line with one id declares an isolated node; a first line of
column names such as ``source,target,weight`` is skipped), GraphML, GML, node-link JSON
(``links`` or networkx 3.6's ``edges``), NPZ (``edge_index`` (2, E), optional ``x``,
``edge_attr``, ``num_nodes``). TUDataset folders are read in :mod:`.tudataset`.

Features, the same in every format: a node's or edge's integer ``type`` is its label (NPZ:
an integer 1-D ``x`` / ``edge_attr``); float attributes are a node's ``x`` (a number, a
list, or in GraphML a string of numbers) and an edge's ``attr`` (same) or else its
``weight`` (NPZ: a float ``x`` (N, F) / ``edge_attr`` (E, F)).

Node ids may be any strings: they are mapped to 0..n-1 in sorted order (numerically when
every id is an integer), so the same graph gives the same node order in every format.
Files with declared nodes (GraphML, GML, JSON, NPZ with ``x``) refuse edges to undeclared
nodes. A file larger than ``max_file_mb`` or with more than 4 x ``max_edges`` edge records
is ``too_large``, found before it is parsed.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import SampleError
from ..files import check_input_file

EDGE_LIST_EXTENSIONS = (".edgelist", ".txt", ".csv", ".tsv")
EXTENSIONS = (*EDGE_LIST_EXTENSIONS, ".graphml", ".gml", ".json", ".npz")
HEADER_WORDS = {"source", "target", "src", "dst", "from", "to", "u", "v", "node1", "node2",
                "weight", "w", "i", "j"}


@dataclass
class Graph:
    num_nodes: int
    edges: np.ndarray  # (E, 2) int64, file order (self loops, duplicates, both directions)
    node_type: np.ndarray | None = None  # (N,) int64
    node_attr: np.ndarray | None = None  # (N, F) float64
    edge_type: np.ndarray | None = None  # (E,) int64
    edge_attr: np.ndarray | None = None  # (E, F) float64


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_edge_records: int


def read_graph(path: str, limits: Limits) -> Graph:
    size = check_input_file(path)
    if size > limits.max_file_bytes:
        raise SampleError("too_large", f"{size / 2**20:.1f} MB is more than max_file_mb "
                          f"{limits.max_file_bytes / 2**20:g}; raise it with --set "
                          "max_file_mb=... (and max_nodes / max_edges)")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            return read_npz(path, limits)
        with open(path, "rb") as handle:
            data = handle.read()
        if ext in EDGE_LIST_EXTENSIONS:
            return read_edge_list(data, ext, limits)
        if ext == ".graphml":
            return read_graphml(data, limits)
        if ext == ".gml":
            return read_gml(data, limits)
        if ext == ".json":
            return read_node_link(data, limits)
    except SampleError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, SyntaxError, zipfile.BadZipFile, EOFError,
            OSError) as exc:
        raise SampleError("decode_error", f"not a readable {ext} graph: "
                          f"{type(exc).__name__}: {exc}") from None
    raise SampleError("decode_error", f"no graph reader for {ext!r} files")


def _too_many(count: int, limits: Limits, what: str) -> None:
    if count > limits.max_edge_records:
        raise SampleError("too_large", f"{count} {what} is more than 4 x max_edges "
                          f"({limits.max_edge_records}); raise --set max_edges=...")


# --- ids -> indices ---------------------------------------------------------------------


def _int_id(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if str(value) == text else None


def build_graph(declared: list[str] | None, src: list[str], dst: list[str],
                node_type: dict[str, Any] | None = None, node_attr: dict[str, Any] | None = None,
                edge_type: list | None = None, edge_attr: list | None = None) -> Graph:
    """A :class:`Graph` from string node ids (``declared``: the file's node list, or None
    when the nodes are the edges' endpoints)."""
    if declared is not None:
        ids = list(declared)
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            twice = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise SampleError("bad_graph", f"node {twice!r} is declared twice")
        known = set(ids)
        for number, (u, v) in enumerate(zip(src, dst)):
            for end in (u, v):
                if end not in known:
                    raise SampleError("bad_graph", f"edge {number} ({u!r} -> {v!r}) names "
                                      f"node {end!r}, which the file does not declare")
    else:
        ids = list(dict.fromkeys([*src, *dst]))
    as_int = [_int_id(i) for i in ids]
    if all(x is not None for x in as_int):
        order = sorted(range(len(ids)), key=lambda j: as_int[j])
    else:
        order = sorted(range(len(ids)), key=lambda j: ids[j])
    index = {ids[j]: rank for rank, j in enumerate(order)}
    sorted_ids = [ids[j] for j in order]
    edges = np.array([[index[u], index[v]] for u, v in zip(src, dst)], dtype=np.int64)
    graph = Graph(len(ids), edges.reshape(-1, 2))
    if node_type:
        graph.node_type = _node_types(sorted_ids, node_type)
    if node_attr:
        graph.node_attr = _rows([node_attr.get(i) for i in sorted_ids], "node")
    if edge_type is not None and any(t is not None for t in edge_type):
        graph.edge_type = _ints(edge_type, "edge")
    if edge_attr is not None and any(a is not None for a in edge_attr):
        graph.edge_attr = _rows(edge_attr, "edge")
    return graph


def _node_types(ids: list[str], types: dict[str, Any]) -> np.ndarray:
    return _ints([types.get(i) for i in ids], "node")


def _ints(values: list, what: str) -> np.ndarray:
    out = np.empty(len(values), np.int64)
    for j, value in enumerate(values):
        if value is None:
            raise SampleError("bad_feature", f"{what} {j} has no 'type' while others do")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise SampleError("bad_feature", f"{what} {j}: type {value!r} is not an "
                              "integer") from None
        if not number.is_integer() or number < 0:
            raise SampleError("bad_feature", f"{what} {j}: type {value!r} is not a "
                              "non-negative integer")
        out[j] = int(number)
    return out


def _numbers(value: Any) -> list[float]:
    if isinstance(value, str):
        return [float(x) for x in re.split(r"[,\s]+", value.strip()) if x]
    if isinstance(value, (list, tuple)):
        return [float(x) for x in value]
    return [float(value)]


def _rows(values: list, what: str) -> np.ndarray:
    rows = []
    for j, value in enumerate(values):
        if value is None:
            raise SampleError("bad_feature", f"{what} {j} has no attributes while others do")
        try:
            rows.append(_numbers(value))
        except (TypeError, ValueError):
            raise SampleError("bad_feature", f"{what} {j}: attributes {value!r} are not "
                              "numbers") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise SampleError("bad_feature", f"{what} attributes have different lengths "
                          f"{sorted(widths)}")
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


# --- edge lists -------------------------------------------------------------------------


def read_edge_list(data: bytes, ext: str, limits: Limits) -> Graph:
    _too_many(data.count(b"\n"), limits, "lines")
    text = data.decode("utf-8")
    separator = {".csv": ",", ".tsv": "\t"}.get(ext)
    declared_extra: list[str] = []
    src: list[str] = []
    dst: list[str] = []
    weights: list[float | None] = []
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in (line.split(separator) if separator else line.split())]
        if first and all(f.lower() in HEADER_WORDS for f in fields):
            first = False
            continue
        first = False
        if len(fields) == 1:
            declared_extra.append(fields[0])
            continue
        if len(fields) > 3:
            raise SampleError("decode_error", f"line {number}: expected 'u v [weight]', got "
                              f"{len(fields)} fields")
        src.append(fields[0])
        dst.append(fields[1])
        if len(fields) == 3:
            try:
                weights.append(float(fields[2]))
            except ValueError:
                raise SampleError("decode_error", f"line {number}: weight {fields[2]!r} is "
                                  "not a number") from None
        else:
            weights.append(None)
    graph_nodes = list(dict.fromkeys([*src, *dst, *declared_extra]))
    edge_attr = None
    if any(w is not None for w in weights):
        if any(w is None for w in weights):
            raise SampleError("bad_feature", "some edges have a weight and some do not")
        edge_attr = [[w] for w in weights]
    return build_graph(graph_nodes, src, dst, edge_attr=edge_attr)


# --- GraphML ----------------------------------------------------------------------------


def read_graphml(data: bytes, limits: Limits) -> Graph:
    import xml.etree.ElementTree as ET

    _too_many(data.count(b"<edge"), limits, "edges")
    root = ET.fromstring(data)
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    keys = {key.get("id"): key.get("attr.name", key.get("id"))
            for key in root.iter(f"{ns}key")}
    graph = root.find(f"{ns}graph")
    if graph is None:
        raise SampleError("decode_error", "GraphML without a <graph> element")

    def data_of(element) -> dict[str, str]:
        return {keys.get(d.get("key"), d.get("key")): (d.text or "")
                for d in element.findall(f"{ns}data")}

    nodes, node_type, node_attr = [], {}, {}
    for node in graph.findall(f"{ns}node"):
        nid = node.get("id")
        nodes.append(nid)
        values = data_of(node)
        if "type" in values:
            node_type[nid] = values["type"]
        if "x" in values:
            node_attr[nid] = values["x"]
    src, dst, edge_type, edge_attr = [], [], [], []
    for edge in graph.findall(f"{ns}edge"):
        src.append(edge.get("source"))
        dst.append(edge.get("target"))
        values = data_of(edge)
        edge_type.append(values.get("type"))
        edge_attr.append(values.get("attr", values.get("weight")))
    return build_graph(nodes, src, dst, node_type, node_attr, edge_type, edge_attr)


# --- GML --------------------------------------------------------------------------------


def read_gml(data: bytes, limits: Limits) -> Graph:
    import networkx as nx

    _too_many(len(re.findall(rb"\bedge\s*\[", data)), limits, "edges")
    lines = data.decode("utf-8").splitlines()
    try:  # node names: their labels (as networkx writes them), else their ids
        try:
            g = nx.parse_gml(lines, label="label")
        except nx.NetworkXError as exc:
            if "has no 'label'" not in str(exc):
                raise
            g = nx.parse_gml(lines, label=None)
    except nx.NetworkXError as exc:
        raise SampleError("bad_graph", f"GML: {exc}") from None
    nodes = [str(n) for n in g.nodes]
    node_type = {str(n): d["type"] for n, d in g.nodes(data=True) if "type" in d}
    node_attr = {str(n): d["x"] for n, d in g.nodes(data=True) if "x" in d}
    edges = list(g.edges(data=True))
    return build_graph(nodes, [str(u) for u, _, _ in edges], [str(v) for _, v, _ in edges],
                       node_type, node_attr, [d.get("type") for _, _, d in edges],
                       [d.get("attr", d.get("weight")) for _, _, d in edges])


# --- node-link JSON ---------------------------------------------------------------------


def read_node_link(data: bytes, limits: Limits) -> Graph:
    doc = json.loads(data)
    if not isinstance(doc, dict) or "nodes" not in doc:
        raise SampleError("decode_error", "node-link JSON needs a 'nodes' list and a "
                          "'links' (or 'edges') list")
    links = doc.get("links", doc.get("edges", []))
    if not isinstance(links, list) or not isinstance(doc["nodes"], list):
        raise SampleError("decode_error", "node-link JSON 'nodes' and 'links' must be lists")
    _too_many(len(links), limits, "edges")
    nodes = [str(n["id"]) for n in doc["nodes"]]
    node_type = {str(n["id"]): n["type"] for n in doc["nodes"] if "type" in n}
    node_attr = {str(n["id"]): n["x"] for n in doc["nodes"] if "x" in n}
    return build_graph(nodes, [str(e["source"]) for e in links],
                       [str(e["target"]) for e in links], node_type, node_attr,
                       [e.get("type") for e in links],
                       [e.get("attr", e.get("weight")) for e in links])


# --- NPZ --------------------------------------------------------------------------------


def _npz_shape(archive: zipfile.ZipFile, name: str) -> tuple[int, ...] | None:
    member = f"{name}.npy"
    if member not in archive.namelist():
        return None
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, _ = read(handle)
    return shape


def read_npz(path: str, limits: Limits) -> Graph:
    with zipfile.ZipFile(path) as archive:
        shape = _npz_shape(archive, "edge_index")
    if shape is None:
        raise SampleError("decode_error", "NPZ graph without an 'edge_index' array (2, E)")
    if len(shape) != 2 or shape[0] != 2:
        raise SampleError("decode_error", f"edge_index has shape {shape}, not (2, E)")
    _too_many(shape[1], limits, "edges")
    with np.load(path, allow_pickle=False) as npz:
        index = np.asarray(npz["edge_index"])
        x = npz["x"] if "x" in npz.files else None
        edge_attr = npz["edge_attr"] if "edge_attr" in npz.files else None
        num_nodes = int(npz["num_nodes"]) if "num_nodes" in npz.files else None
    if not np.issubdtype(index.dtype, np.integer):
        raise SampleError("decode_error", f"edge_index must hold integers, not {index.dtype}")
    edges = index.T.astype(np.int64)
    if num_nodes is None:
        num_nodes = len(x) if x is not None else (int(edges.max()) + 1 if edges.size else 0)
    if edges.size and (edges.min() < 0 or edges.max() >= num_nodes):
        raise SampleError("bad_graph", f"edge_index names node {int(edges.max())} (or a "
                          f"negative one), but the graph has {num_nodes} nodes")
    graph = Graph(num_nodes, edges)
    if x is not None:
        if len(x) != num_nodes:
            raise SampleError("bad_feature", f"x has {len(x)} rows for {num_nodes} nodes")
        graph.node_type, graph.node_attr = _npz_features(x, "node")
    if edge_attr is not None:
        if len(edge_attr) != len(edges):
            raise SampleError("bad_feature", f"edge_attr has {len(edge_attr)} rows for "
                              f"{len(edges)} edges")
        graph.edge_type, graph.edge_attr = _npz_features(edge_attr, "edge")
    return graph


def _npz_features(values: np.ndarray, what: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    if np.issubdtype(values.dtype, np.integer) and values.ndim == 1:
        if values.size and values.min() < 0:
            raise SampleError("bad_feature", f"{what} types must be non-negative")
        return values.astype(np.int64), None
    if not np.issubdtype(values.dtype, np.number) or values.ndim not in (1, 2):
        raise SampleError("bad_feature", f"{what} features must be integer (N,) types or "
                          f"float (N, F) attributes, not {values.dtype} {values.shape}")
    return None, values.astype(np.float64).reshape(len(values), -1)
