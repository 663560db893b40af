"""The tabular projector, FT-Transformer's feature tokenizer: numeric column j becomes
``x_j * W_j + b_j`` (a learned missing embedding in place of ``x_j * W_j`` where the cell is
missing), categorical column j becomes its own embedding row plus a per-column bias; a cls
token leads. Every column is a real token (no padding). Trainable with
``train-head --tune tokenizer``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected


class TabularProjector(nn.Module):
    trainable = True

    def __init__(self, kinds: list[str], vocab_sizes: list[int], width: int) -> None:
        super().__init__()
        self.is_numeric = [k == "numeric" for k in kinds]
        n_num = sum(self.is_numeric)
        n_cat = len(kinds) - n_num
        self.num_weight = nn.Parameter(torch.randn(n_num, width) * 0.02)
        self.num_bias = nn.Parameter(torch.zeros(n_num, width))
        self.num_missing = nn.Parameter(torch.randn(n_num, width) * 0.02)
        # one table for every categorical column: column j's ids start at offsets[j];
        # each column has V real values, then unknown (V) and missing (V + 1)
        sizes = [v + 2 for v in vocab_sizes]
        offsets = torch.tensor([0] + sizes[:-1], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets[:n_cat], persistent=False)
        self.cat_embed = nn.Embedding(max(1, sum(sizes)), width)
        nn.init.normal_(self.cat_embed.weight, std=0.02)
        self.cat_bias = nn.Parameter(torch.zeros(n_cat, width))
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        order = torch.argsort(torch.tensor([0 if n else 1 for n in self.is_numeric]),
                              stable=True)
        # tokens come out in the schema's column order
        self.register_buffer("order", torch.argsort(order), persistent=False)
        self.register_buffer("numeric_slots",
                             torch.tensor([j for j, n in enumerate(self.is_numeric) if n],
                                          dtype=torch.long), persistent=False)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]):
        numeric = batch["numeric"].float()[:, :self.num_weight.shape[0]]
        missing = batch["missing"].bool()
        parts = []
        if numeric.shape[1]:
            gone = missing[:, self.numeric_slots].unsqueeze(-1)
            value = numeric.unsqueeze(-1) * self.num_weight
            parts.append(torch.where(gone, self.num_missing.expand_as(value), value)
                         + self.num_bias)
        categorical = batch["categorical"].long()[:, :self.cat_bias.shape[0]]
        if categorical.shape[1]:
            parts.append(self.cat_embed(categorical + self.offsets) + self.cat_bias)
        x = torch.cat(parts, dim=1)[:, self.order]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return Projected(x, None, self.prefix)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    kinds = list(token_config["kinds"])
    vocab_sizes = [len(v) for v in token_config["vocabularies"]]
    return (TabularProjector(kinds, vocab_sizes, encoder.width),
            {"kind": "ft-transformer-feature-tokenizer+cls", "columns": len(kinds)})
