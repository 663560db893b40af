"""A trained head: standardisation, then a linear layer or a small MLP; saved as
``head.safetensors`` (weights) beside ``head.json`` (what it is and what it was trained on).

The JSON records the provenance of the training features (encoder, weights sha256,
projector, pooling, tokenizer config hash) so that ``predict`` refuses features that another
encoder made: a head's numbers mean nothing on them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import UsageError

WEIGHTS_FILE = "head.safetensors"
CONFIG_FILE = "head.json"
HEAD_FORMAT = "mmtok-head"
HEAD_KINDS = ("linear", "mlp")


class Head(nn.Module):
    """``(B, D)`` features -> ``(B, K)`` logits."""

    def __init__(self, kind: str, input_dim: int, num_classes: int, hidden: int = 512,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in HEAD_KINDS:
            raise UsageError(f"--head must be one of {', '.join(HEAD_KINDS)}, not {kind!r}")
        self.register_buffer("mean", torch.zeros(input_dim))
        self.register_buffer("scale", torch.ones(input_dim))
        if kind == "linear":
            self.layers = nn.Sequential(nn.Linear(input_dim, num_classes))
        else:
            self.layers = nn.Sequential(nn.Linear(input_dim, hidden), nn.GELU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def set_standardization(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.scale.copy_(scale)

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        """The features as the layers see them (identity unless standardisation is set)."""
        return (features - self.mean) / self.scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(self.standardize(features))


def save_head(head: Head, config: dict[str, Any], folder: str | os.PathLike) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in head.state_dict().items()}
    save_file(state, folder / WEIGHTS_FILE)
    record = {"format": HEAD_FORMAT, "format_version": 1, "mmtok_version": __version__, **config}
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def load_head(folder: str | os.PathLike) -> tuple[Head, dict[str, Any]]:
    """A head saved by ``train-head`` (the folder, or its ``head.json``)."""
    from safetensors.torch import load_file

    from ..embedding.encoders import load_strict

    folder = Path(folder)
    if folder.name == CONFIG_FILE:
        folder = folder.parent
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise UsageError(f"{folder} holds no {CONFIG_FILE}; pass the output folder of "
                         "`mmtok train-head`")
    config = json.loads(config_path.read_text())
    if config.get("format") != HEAD_FORMAT:
        raise UsageError(f"{config_path} is not an mmtok head (format {config.get('format')!r})")
    head = Head(config["kind"], config["input_dim"], len(config["class_names"]),
                config.get("hidden", 512), config.get("dropout", 0.0))
    load_strict(head, load_file(folder / WEIGHTS_FILE), what="the head")
    return head.eval(), config
