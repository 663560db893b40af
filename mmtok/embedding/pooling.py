"""Pooling of encoder outputs into one feature per sample, masked by true length.

``x`` is (B, P + T, D): P prefix tokens (the cls token) then T content tokens; ``mask``
(B, T) marks the real content tokens (None: all are real). Padding never changes a feature.
"""

from __future__ import annotations

import torch

POOLS = ("cls", "mean", "max", "cls+mean+max", "none")


def pool(x: torch.Tensor, mask: torch.Tensor | None, prefix: int, how: str) -> torch.Tensor:
    if how == "none":
        return x
    content = x[:, prefix:]
    if mask is None:
        mask = torch.ones(content.shape[:2], dtype=torch.bool, device=x.device)
    mask = mask.unsqueeze(-1)
    parts = []
    for name in how.split("+"):
        if name == "cls":
            if prefix < 1:
                raise ValueError("--pool cls needs an encoder path with a cls token")
            parts.append(x[:, 0])
        elif name == "mean":
            count = mask.sum(dim=1).clamp(min=1)
            parts.append((content * mask).sum(dim=1) / count)
        elif name == "max":
            parts.append(content.masked_fill(~mask, float("-inf")).amax(dim=1))
        else:
            raise ValueError(f"unknown pooling {name!r}; choose one of {', '.join(POOLS)}")
    return torch.cat(parts, dim=-1)
