"""The ``graph`` modality: ``readers.py`` (edge lists, GraphML, GML, node-link JSON, NPZ)
and ``tudataset.py`` (TUDataset folders) read graphs, ``laplacian.py`` computes TokenGT's
Laplacian node identifiers, ``tokenizer.py`` makes node and edge tokens, ``projector.py``
is TokenGT's token embedding, ``demo.py`` writes a small learnable graph set."""

from ..base import DemoSpec, ModalitySpec, register_modality
from .tokenizer import EXTENSIONS, GraphConfig, GraphTokenizer

__all__ = ["GraphConfig", "GraphTokenizer"]

register_modality(ModalitySpec(
    name="graph", config_class=GraphConfig, tokenizer=GraphTokenizer, extensions=EXTENSIONS,
    help="graphs (edge lists, GraphML, GML, node-link JSON, NPZ, TUDataset folders) -> "
         "TokenGT node + edge tokens with Laplacian eigenvector ids",
    projector="mmtok.modalities.graph.projector:build",
    inputs=("tokens", "token_label", "eigvals", "num_nodes", "num_edges"),
    tiny_options={"max_nodes": 24, "max_edges": 64, "lap_k": 4, "attr_dim": 1},
    demo=DemoSpec("mmtok.modalities.graph.demo:make_demo_graph",
                  "metatransformer:depth=2,width=192,heads=3"),
    docs="docs/modalities/graph.md",
))
