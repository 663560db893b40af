"""What every trained head (and tuned projector) shares: AdamW settings and the schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class TrainSettings:
    """AdamW with linear warm-up then cosine decay, in epochs of ``batch_size`` samples."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    epochs: int = 100
    batch_size: int = 256
    warmup_epochs: int = 2


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
