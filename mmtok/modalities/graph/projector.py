"""The graph projector, TokenGT's tokenizer (Kim et al. 2022): each token's Laplacian
identifier ``[P_u, P_v]`` through ``Linear(2k -> width)``, plus its float attributes through
a linear map, plus an embedding of its integer type (nodes and edges each their own table),
plus a learned node/edge type embedding; a learned graph token is prepended, plus (an
mmtok addition, sign-invariant) a linear map of the graph's ``lap_k`` smallest eigenvalues. Padding slots
are masked out of attention and pooling, so a graph's feature does not depend on them.

While training (``train-head --tune tokenizer``) every eigenvector's sign is flipped at
random per graph (TokenGT's ``--lap-node-id-sign-flip``): the sign rule of the tokenizer
fixes one sign, the augmentation keeps the projector from relying on it. In eval mode
nothing is random.

Unlike the reference (fairseq TokenGT), tensors stay batch-first ``(B, 1 + L, D)`` for the
timm blocks, and weights loaded from a file are never re-initialised afterwards (the
embed step loads them after ``build``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected


class GraphProjector(nn.Module):
    trainable = True

    def __init__(self, config: dict, width: int) -> None:
        super().__init__()
        self.k = int(config["lap_k"])
        self.attr_dim = int(config["attr_dim"])
        self.max_nodes = int(config["max_nodes"])
        length = self.max_nodes + int(config["max_edges"])
        self.lap_embed = nn.Linear(2 * self.k, width, bias=False)
        self.attr_embed = nn.Linear(self.attr_dim, width) if self.attr_dim else None
        self.node_label = nn.Embedding(int(config["node_types"]) + 1, width)
        self.edge_label = nn.Embedding(int(config["edge_types"]) + 1, width)
        self.type_embed = nn.Parameter(torch.randn(2, width) * 0.5)  # node, edge
        self.graph_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.eigval_embed = nn.Linear(self.k, width)  # mmtok: the spectrum, into the graph token
        # unit-scale outputs for the spectrum (eigenvalues lie in [0, 2]): a frozen encoder
        # sees it from the first step of tuning
        nn.init.normal_(self.eigval_embed.weight, std=3.0)
        nn.init.normal_(self.node_label.weight, std=0.02)
        nn.init.normal_(self.edge_label.weight, std=0.02)
        self.register_buffer("slot", torch.arange(length), persistent=False)
        self.register_buffer("is_edge", torch.arange(length) >= self.max_nodes,
                             persistent=False)
        self.prefix = 1
        # the sign flips draw from a generator of their own, seeded from the seed the
        # projector is built with: a tuning run is reproducible
        self.flips = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        tokens = batch["tokens"].float()
        k = self.k
        lap = tokens[..., :2 * k]
        if self.training:  # random sign per eigenvector and graph, the same for P_u and P_v
            signs = torch.randint(0, 2, (tokens.shape[0], 1, k), generator=self.flips)
            signs = (signs * 2 - 1).to(device=lap.device, dtype=lap.dtype)
            lap = lap * torch.cat([signs, signs], dim=-1)
        x = self.lap_embed(lap)
        if self.attr_embed is not None:
            x = x + self.attr_embed(tokens[..., 2 * k:])
        labels = batch["token_label"].long()
        edge = self.is_edge[None, :, None]
        x = x + torch.where(edge, self.edge_label(labels.clamp(max=self.edge_label.num_embeddings - 1)),
                            self.node_label(labels.clamp(max=self.node_label.num_embeddings - 1)))
        x = x + self.type_embed[self.is_edge.long()][None]
        nodes = batch["num_nodes"].long()[:, None]
        edges = batch["num_edges"].long()[:, None]
        slot = self.slot[None, :]
        mask = (slot < nodes) | (self.is_edge[None, :] & (slot < self.max_nodes + edges))
        graph = self.graph_token + self.eigval_embed(batch["eigvals"].float())[:, None]
        x = torch.cat([graph, x], dim=1)
        return Projected(x, mask, self.prefix)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    return GraphProjector(token_config, encoder.width), {"kind": "tokengt"}
