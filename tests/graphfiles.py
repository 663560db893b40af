"""Graphs written by the tests with real writers (networkx, numpy): one graph, every format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import networkx as nx
import numpy as np


def featured_graph() -> nx.Graph:
    """A small graph with non-contiguous integer ids, integer types and float attributes
    on nodes and edges, one isolated node and two components."""
    g = nx.Graph()
    ids = [10, 3, 7, 25, 4, 99, 12]
    for j, node in enumerate(ids):
        g.add_node(node, type=j % 3, x=[0.5 * j, -1.0 + j])
    for j, (u, v) in enumerate([(10, 3), (3, 7), (7, 10), (25, 4), (4, 12), (12, 25),
                                (3, 25)]):
        g.add_edge(u, v, type=j % 2, attr=[0.25 * j])
    g.add_node(1000, type=2, x=[9.0, 9.0])  # isolated
    return g


def write_all(g: nx.Graph, folder: Path) -> dict[str, Path]:
    """``g`` in GraphML, GML, node-link JSON (``links`` and ``edges``) and NPZ."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    h = nx.Graph()
    for n, d in g.nodes(data=True):  # GraphML cannot hold lists: attributes as a string
        h.add_node(n, type=d["type"], x=" ".join(repr(float(x)) for x in d["x"]))
    for u, v, d in g.edges(data=True):
        h.add_edge(u, v, type=d["type"], attr=" ".join(repr(float(x)) for x in d["attr"]))
    out["graphml"] = folder / "g.graphml"
    nx.write_graphml(h, out["graphml"])
    out["gml"] = folder / "g.gml"
    nx.write_gml(g, out["gml"])
    for key in ("links", "edges"):
        data = nx.node_link_data(g, edges=key)
        out[f"json-{key}"] = folder / f"g-{key}.json"
        out[f"json-{key}"].write_text(json.dumps(data))
    nodes = sorted(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    edges = list(g.edges(data=True))
    out["npz-types"] = folder / "g-types.npz"
    np.savez(out["npz-types"], edge_index=np.array([[index[u] for u, _, _ in edges],
                                                    [index[v] for _, v, _ in edges]]),
             x=np.array([g.nodes[n]["type"] for n in nodes]),
             edge_attr=np.array([d["type"] for _, _, d in edges]))
    out["npz-attrs"] = folder / "g-attrs.npz"
    np.savez(out["npz-attrs"], edge_index=np.array([[index[u] for u, _, _ in edges],
                                                    [index[v] for _, v, _ in edges]]),
             x=np.array([g.nodes[n]["x"] for n in nodes], dtype=np.float32),
             edge_attr=np.array([d["attr"] for _, _, d in edges], dtype=np.float32))
    return out


def write_edge_lists(g: nx.Graph, folder: Path) -> dict[str, Path]:
    """``g`` (edge ``weight``s) as .edgelist (networkx), .csv with a header, .tsv and .txt
    with comments, and NPZ with a float (E, 1) edge_attr."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"edgelist": folder / "g.edgelist"}
    nx.write_weighted_edgelist(g, out["edgelist"])
    rows = [(u, v, d["weight"]) for u, v, d in g.edges(data=True)]
    out["csv"] = folder / "g.csv"
    out["csv"].write_text("source,target,weight\n" + "".join(f"{u},{v},{w!r}\n"
                                                            for u, v, w in rows))
    out["tsv"] = folder / "g.tsv"
    out["tsv"].write_text("".join(f"{u}\t{v}\t{w!r}\n" for u, v, w in rows))
    out["txt"] = folder / "g.txt"
    out["txt"].write_text("# a comment\n" + "".join(f"{u} {v} {w!r}  # edge\n"
                                                   for u, v, w in rows))
    nodes = sorted(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    out["npz"] = folder / "g.npz"
    np.savez(out["npz"], edge_index=np.array([[index[u] for u, _, _ in rows],
                                              [index[v] for _, v, _ in rows]]),
             edge_attr=np.array([[w] for _, _, w in rows]))
    return out


def write_tudataset(folder: Path, name: str, graphs: list[nx.Graph], labels: list[int]) -> Path:
    """A TUDataset folder: DS_A.txt (both directions, 1-based), indicator, graph labels,
    node labels (the nodes' ``type``) and edge attributes (``attr``)."""
    folder.mkdir(parents=True, exist_ok=True)
    a, indicator, node_labels, edge_attrs = [], [], [], []
    offset = 0
    for number, g in enumerate(graphs, start=1):
        nodes = sorted(g.nodes)
        index = {n: offset + i + 1 for i, n in enumerate(nodes)}
        for n in nodes:
            indicator.append(number)
            node_labels.append(g.nodes[n].get("type", 0))
        for u, v, d in g.edges(data=True):
            for x, y in ((u, v), (v, u)):
                a.append(f"{index[x]}, {index[y]}")
                edge_attrs.append(", ".join(repr(float(t)) for t in d.get("attr", [0.0])))
        offset += len(nodes)
    prefix = os.path.join(folder, name)
    Path(f"{prefix}_A.txt").write_text("\n".join(a) + "\n")
    Path(f"{prefix}_graph_indicator.txt").write_text("\n".join(map(str, indicator)) + "\n")
    Path(f"{prefix}_graph_labels.txt").write_text("\n".join(map(str, labels)) + "\n")
    Path(f"{prefix}_node_labels.txt").write_text("\n".join(map(str, node_labels)) + "\n")
    Path(f"{prefix}_edge_attributes.txt").write_text("\n".join(edge_attrs) + "\n")
    (folder / "README.txt").write_text("a TUDataset\n")
    return Path(f"{prefix}_A.txt")
