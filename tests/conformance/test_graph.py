"""Conformance of graphs (24 node and 64 edge slots, k = 4), from edge lists, node-link
JSON, GraphML, GML and NPZ."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
from hostilefiles import cut

from .base import Malformed, TokenizerConformance


def graph(label: int, index: int) -> nx.Graph:
    """Class 0 a ring, class 1 a star, 8 to 14 nodes."""
    n = 8 + (index * 5) % 7
    return nx.cycle_graph(n) if label == 0 else nx.star_graph(n - 1)


def write(path: Path, g: nx.Graph) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(nx.node_link_data(g, edges="edges")))
    elif path.suffix == ".graphml":
        nx.write_graphml(g, path)
    elif path.suffix == ".gml":
        nx.write_gml(g, path)
    elif path.suffix == ".npz":
        np.savez(path, edge_index=np.array(list(g.edges)).T)
    else:
        nx.write_edgelist(g, path, data=False)


class TestGraph(TokenizerConformance):
    modality = "graph"
    extension = ".edgelist"
    # the same graphs with more node or edge slots: more masked padding, the same features
    padding_variants = ({"max_nodes": 32}, {"max_edges": 96})

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        suffix = (".edgelist", ".json", ".graphml", ".gml", ".npz")[index % 5]
        path = folder / f"{stem}{suffix}"
        write(path, graph(label, index))
        return path

    def malformed_inputs(self) -> dict[str, Malformed]:
        g = graph(0, 0)
        nan = nx.node_link_data(g, edges="edges")
        for j, node in enumerate(nan["nodes"]):
            node["x"] = float("nan") if j == 3 else float(j)
        return {
            "cut.graphml": Malformed(cut(lambda p: nx.write_graphml(g, p), 0.5),
                                     "decode_error", "truncated"),
            "cut.npz": Malformed(cut(lambda p: write(p, g), 0.5), "decode_error", "truncated"),
            "nan.json": Malformed(lambda p: p.write_text(json.dumps(nan)), "nan_attribute",
                                  "nonfinite"),
            # a million edges declared in a tiny compressed file: refused from its header
            "million.npz": Malformed(lambda p: np.savez_compressed(
                p, edge_index=np.zeros((2, 1_000_000), np.int8)), "too_large", "absurd_size"),
            "wide.json": Malformed(lambda p: p.write_text(json.dumps(nx.node_link_data(
                nx.star_graph(40), edges="edges"))), "too_large", "absurd_size"),
            "undeclared.json": Malformed(lambda p: p.write_text(json.dumps(
                {"nodes": [{"id": 0}], "edges": [{"source": 0, "target": 9}]})), "bad_graph",
                "bad_graph"),
            "nodes.json": Malformed(lambda p: p.write_text('{"nodes": [], "edges": []}'),
                                    "empty_graph", "empty"),
        }
