"""The hyperspectral projector, as Meta-Transformer's hyperspectral branch (from
SpectralFormer): a linear map of each band token (``band_group * patch * patch`` values) to
the width, a learned band position embedding and a cls token. Every band is real content
(no padding). Trainable with ``train-head --tune tokenizer``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected


class HyperspectralProjector(nn.Module):
    trainable = True

    def __init__(self, config: dict, width: int) -> None:
        super().__init__()
        values = int(config["band_group"]) * int(config["patch"]) ** 2
        self.band_embed = nn.Linear(values, width)
        # a band's position is what tells bands apart: start it at the scale of the band
        # embedding (timm's 0.02 would leave a frozen encoder nearly blind to band order)
        self.pos_embed = nn.Parameter(torch.randn(1, int(config["bands"]), width) * 0.5)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        x = self.band_embed(batch["tokens"].float()) + self.pos_embed
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return Projected(x, None, self.prefix)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    return (HyperspectralProjector(token_config, encoder.width),
            {"kind": "spectralformer-band-embed"})
