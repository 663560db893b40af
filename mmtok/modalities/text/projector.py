"""The text projector: a token embedding table, a learned position embedding and a cls
token; padding (positions at or beyond the sample's ``length``) is masked out of attention
and pooling, so a text's feature does not depend on its padding. Trainable with
``train-head --tune tokenizer``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected


MIN_POSITIONS = 512


class TextProjector(nn.Module):
    trainable = True

    def __init__(self, vocab_size: int, context_length: int, width: int) -> None:
        super().__init__()
        # drawn first and for at least MIN_POSITIONS positions, so that position p starts
        # equal whatever the context length: more padding never changes a feature
        self.pos_embed = nn.Parameter(
            torch.randn(1, max(context_length, MIN_POSITIONS), width) * 0.01)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.token_embed = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        self.vocab_size = vocab_size
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]):
        tokens = batch["tokens"].long()
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        mask = steps[None, :] < batch["length"].long()[:, None]
        # ids outside the table (a damaged store) would index out of range: clamp, and mask
        tokens = tokens.clamp(0, self.vocab_size - 1)
        x = self.token_embed(tokens) + self.pos_embed[:, :tokens.shape[1]]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return Projected(x, mask, self.prefix)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    vocab_size = int(statics["vocab_size"][0])
    return (TextProjector(vocab_size, int(token_config["context_length"]), encoder.width),
            {"kind": "token-embedding+learned-position+cls", "vocab_size": vocab_size})
