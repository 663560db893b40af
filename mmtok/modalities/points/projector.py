"""The points projector: Point-MAE's mini-PointNet over each group plus an MLP over the centres
as a position embedding added before every block (Meta-Transformer's point model). Starts
from the embed step's recorded seed; trainable with ``train-head --tune tokenizer``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected


class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: shared MLP, group max, concat, MLP, max over the group."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Conv1d(in_channels, 128, 1), nn.BatchNorm1d(128),
                                   nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1))
        self.second = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512),
                                    nn.ReLU(inplace=True), nn.Conv1d(512, width, 1))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:  # (B, G, k, C) -> (B, G, D)
        batch, count, size, channels = groups.shape
        x = groups.reshape(batch * count, size, channels).transpose(1, 2)
        x = self.first(x)
        x = torch.cat([x.amax(dim=2, keepdim=True).expand(-1, -1, size), x], dim=1)
        return self.second(x).amax(dim=2).view(batch, count, -1)


class PointsProjector(nn.Module):
    """Groups -> mini-PointNet tokens; centres -> position embedding added before each block."""

    trainable = True

    def __init__(self, config: dict, width: int) -> None:
        super().__init__()
        channels = 3 + 3 * len(config.get("channels", []))
        self.encoder = MiniPointNet(channels, width)
        self.position = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.cls_position = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        x = self.encoder(batch["tokens"].float())
        position = self.position(batch["centers"].float())
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        block_position = torch.cat([self.cls_position.expand(x.shape[0], -1, -1), position], 1)
        return Projected(torch.cat([cls, x], dim=1), None, self.prefix, block_position)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    return PointsProjector(token_config, encoder.width), {"kind": "mini-pointnet"}
