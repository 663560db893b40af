"""The audio projector, as AST: AST's overlapping 16x16 patches (stride 10) cut from the
stored spectrogram, a linear patch embedding and a cls token, with a fixed 2-D sine-cosine
(frequency, time) position embedding; patches beyond the clip's real length are masked out of
attention and pooling. Trainable with ``train-head --tune tokenizer``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected
from ...errors import UsageError
from ...kernels.patchify import patchify
from .tokenizer import STORE_LAYOUT


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


def spectrogram_patches(spectrogram: torch.Tensor, patch: int, stride: int,
                        impl: str = "auto") -> torch.Tensor:
    """(B, frames, mel) spectrograms -> (B, L, patch * patch) float32 AST patches, in
    (frequency row, time column) order over the (mel, frames) image, each flattened (mel
    offset, frame offset): the flattening of AST's ``Conv2d(1, D, patch, stride)`` weight.

    A pure gather (no arithmetic), on the input's device: a strided window view on the CPU
    (what ``unfold`` does), the patchify Triton kernel's overlapping path on CUDA; the
    transpose to (mel, frames) is a view, never copied. ``impl`` forces one of
    :func:`mmtok.kernels.patchify.patchify`'s implementations (tests)."""
    image = spectrogram.transpose(1, 2).unsqueeze(1)  # (B, 1, mel, frames), a view
    return patchify(image, patch, stride, out_dtype="float32", impl=impl)


def valid_columns(length: torch.Tensor, stride: int, columns: int) -> torch.Tensor:
    """Patch columns that start at a real frame: ``min(columns, ceil(length / stride))``."""
    return torch.clamp(torch.div(length.long() + stride - 1, stride, rounding_mode="floor"),
                       max=columns)


class AudioProjector(nn.Module):
    """AST-style: a linear patch embedding (the Conv2d(1, D, 16, stride 10) as a matmul over
    patches cut from the spectrogram) and a cls token, with a fixed 2-D sine-cosine position
    embedding of each patch's (frequency, time) cell. Patches whose time column starts beyond
    the clip's real frames are masked out, so the same clip padded to any length gives the
    same feature."""

    trainable = True

    def __init__(self, config: dict, width: int, positions: torch.Tensor) -> None:
        super().__init__()
        self.patch, self.stride = int(config["patch"]), int(config["stride"])
        self.patch_embed = nn.Linear(self.patch * self.patch, width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.register_buffer("pos_embed", sincos_2d(positions, width)[None], persistent=False)
        self.register_buffer("time_column", positions[:, 1].long(), persistent=False)
        self.columns = int(positions[:, 1].max()) + 1
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        patches = spectrogram_patches(batch["tokens"], self.patch, self.stride)
        x = self.patch_embed(patches) + self.pos_embed
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        columns = valid_columns(batch["length"], self.stride, self.columns)
        mask = self.time_column[None, :] < columns[:, None]
        return Projected(x, mask, self.prefix)


def check_layout(token_config: dict) -> None:
    """Refuse a store of another audio layout, saying what to do."""
    layout = token_config.get("layout", 1)  # layout 1 predates the field
    if layout != STORE_LAYOUT:
        raise UsageError(
            f"this audio token store has layout {layout} (AST patches stored at tokenize time, "
            f"mmtok 0.1.0 before the spectrogram store); this mmtok stores the spectrogram "
            f"(layout {STORE_LAYOUT}) and cuts the patches when embedding. Re-tokenize the "
            "audio files with this version (same command, with --overwrite, or a new output "
            "path): the patches, and so the features, are the same")


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    check_layout(token_config)
    positions = torch.from_numpy(statics["positions"])
    return (AudioProjector(token_config, encoder.width, positions),
            {"kind": "ast-linear-patch-embed"})
