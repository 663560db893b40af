"""Pooling of encoder outputs into one feature per sample, masked by true length.

``x`` is (B, P + T, D): P prefix tokens (the cls token) then T content tokens; ``mask``
(B, T) marks the real content tokens (None: all are real). Padding never changes a feature.
``how="none"`` keeps every token; :func:`token_mask` then says which of them are real.
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


def token_mask(mask: torch.Tensor | None, prefix: int, x: torch.Tensor) -> torch.Tensor:
    """(B, P + T) bool for unpooled ``x``: True for the prefix tokens and the real content
    tokens, False for padding. A mask, not a length: a projector's padding need not come
    last (a graph's node slots come before its edge slots; audio and PatchTST patches are
    frequency- or channel-major, so a short clip's padding lies in every row)."""
    prefixes = torch.ones((x.shape[0], prefix), dtype=torch.bool, device=x.device)
    if mask is None:
        content = torch.ones((x.shape[0], x.shape[1] - prefix), dtype=torch.bool,
                             device=x.device)
    else:
        content = mask.to(device=x.device, dtype=torch.bool)
    return torch.cat([prefixes, content], dim=1)
