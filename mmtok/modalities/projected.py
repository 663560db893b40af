"""What every modality's projector returns. Kept here, beside the registry, so that a
modality package depends only on ``mmtok.modalities`` and the embed step depends on the
modalities, never the other way round. No torch import at run time (annotations only), so
tokenize workers that import the registry stay light."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class Projected:
    """A projected batch: ``x`` (B, prefix + T, D); ``mask`` (B, T) True for real content
    tokens (None when every token is real); the number of prefix tokens (cls...); optionally
    a position embedding added before every encoder block."""

    x: torch.Tensor
    mask: torch.Tensor | None
    prefix: int
    block_position: torch.Tensor | None = None
