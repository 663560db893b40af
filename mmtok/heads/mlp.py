"""The small MLP head: AdamW, warm-up + cosine schedule, early stopping on validation."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import as_tensors
from .model import Head
from .schedule import TrainSettings, warmup_cosine


@dataclass
class MlpSettings(TrainSettings):
    hidden: int = 512
    dropout: float = 0.1
    patience: int = 10


def train_mlp(head: Head, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
              val_y: np.ndarray, device: torch.device, settings: MlpSettings,
              seed: int) -> list[dict]:
    """Train ``head`` in place; it ends with the weights of its best validation epoch
    (highest top-1, ties to lower loss). Returns the per-epoch history."""
    generator = torch.Generator().manual_seed(seed)
    tx, ty = as_tensors(train_x, train_y, device)
    vx, vy = as_tensors(val_x, val_y, device)
    # Small sets get smaller batches (at least 8 steps an epoch): a few hundred samples in
    # one or two batches an epoch would barely move the weights before early stopping.
    batch_size = max(1, min(settings.batch_size, len(ty) // 8))
    steps_per_epoch = -(-len(ty) // batch_size)
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    schedule = warmup_cosine(optimizer, settings.epochs * steps_per_epoch,
                             settings.warmup_epochs * steps_per_epoch)
    history: list[dict] = []
    best, best_state, waited = (-1.0, 0.0), None, 0
    for epoch in range(1, settings.epochs + 1):
        train_loss = _epoch(head, tx, ty, optimizer, schedule, batch_size, generator)
        val_top1, val_loss = evaluate(head, vx, vy)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_top1": val_top1, "lr": optimizer.param_groups[0]["lr"]})
        if (val_top1, -val_loss) > best:
            best, best_state, waited = (val_top1, -val_loss), copy.deepcopy(head.state_dict()), 0
        else:
            waited += 1
            if waited >= settings.patience:
                break
    head.load_state_dict(best_state)
    return history


def _epoch(head: Head, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
           schedule, batch_size: int, generator: torch.Generator) -> float:
    head.train()
    order = torch.randperm(len(y), generator=generator).to(x.device)
    total = 0.0
    for begin in range(0, len(y), batch_size):
        rows = order[begin:begin + batch_size]
        loss = F.cross_entropy(head(x[rows]), y[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(rows)
    return total / len(y)


@torch.no_grad()
def evaluate(head: Head, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(top-1, mean cross-entropy)."""
    head.eval()
    logits = head(x)
    return (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()
