"""The audio projector, as AST: a linear patch embedding and a cls token, with a fixed 2-D
sine-cosine (frequency, time) position embedding; patches beyond the clip's real length are
masked out of attention and pooling. Trainable with ``train-head --tune tokenizer``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected
from ...errors import UsageError


def sincos_2d(positions: torch.Tensor, width: int) -> torch.Tensor:
    """(L, 2) grid positions -> (L, width) fixed 2-D sine-cosine embedding (as MAE): half the
    channels encode the row, half the column, so a patch's embedding depends only on where it
    is, never on how large the grid is."""
    if width % 4:
        raise UsageError(f"a 2-D sine-cosine position embedding needs a width divisible by 4, "
                         f"not {width}")
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    parts = []
    for axis in range(2):
        angle = positions[:, axis, None].double() * omega[None, :]
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).float()


class AudioProjector(nn.Module):
    """AST-style: a linear patch embedding (the Conv2d(1, D, 16, stride 10) as a matmul) and a
    cls token, with a fixed 2-D sine-cosine position embedding of each patch's (frequency,
    time) cell. Patches whose time column starts beyond the clip's real frames are masked out,
    so the same clip padded to any length gives the same feature."""

    trainable = True

    def __init__(self, config: dict, width: int, positions: torch.Tensor) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(config["patch"] * config["patch"], width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.register_buffer("pos_embed", sincos_2d(positions, width)[None], persistent=False)
        self.register_buffer("time_column", positions[:, 1].long(), persistent=False)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        x = self.patch_embed(batch["tokens"].float()) + self.pos_embed
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        mask = self.time_column[None, :] < batch["valid_columns"].long()[:, None]
        return Projected(x, mask, self.prefix)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    positions = torch.from_numpy(statics["positions"])
    return (AudioProjector(token_config, encoder.width, positions),
            {"kind": "ast-linear-patch-embed"})
