"""Projectors: one modality's tokens -> a sequence at the encoder's width.

Every projector returns a :class:`Projected`: ``x`` (B, prefix + T, D), ``mask`` (B, T) True
for real content tokens (None when every token is real), the number of prefix tokens, and
optionally a position embedding to add before every encoder block.

- image family: the timm ViT's own patch embedding (as a matmul over the stored
  (channel, row, column) patches), cls token, position embedding and pre-norm, so a feature
  equals timm's ``forward_features`` on the same normalised image;
- points: Point-MAE's mini-PointNet over each group plus an MLP over the centres as position
  embedding, added before every block (Meta-Transformer's point model);
- audio: AST's linear patch embedding and a cls token, with a fixed 2-D sine-cosine
  (frequency, time) position embedding; patches beyond the clip's real length are masked out
  of attention and pooling;
- projectors without pretrained weights start from a recorded seed and can be loaded from a
  safetensors file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UsageError

IMAGE_FAMILY = ("image", "xray", "infrared", "depth")


@dataclass
class Projected:
    x: torch.Tensor
    mask: torch.Tensor | None
    prefix: int
    block_position: torch.Tensor | None = None


class ImageProjector(nn.Module):
    """Stored uint8/uint16 patches -> the timm ViT's embedding of the same normalised image."""

    trainable = False

    def __init__(self, vit: nn.Module, config: dict) -> None:
        super().__init__()
        if vit is None:
            raise UsageError("image stores need a timm ViT encoder (its patch embedding is the "
                             "image projector); choose e.g. --encoder vit_base_patch16_224")
        patch, grid = config["patch"], config["size"] // config["patch"]
        if tuple(vit.patch_embed.patch_size) != (patch, patch):
            raise UsageError(f"tokens are {patch}x{patch} patches but the encoder's patches are "
                             f"{tuple(vit.patch_embed.patch_size)}; re-tokenize with a matching "
                             "--patch or choose another encoder")
        if not vit.dynamic_img_size and tuple(vit.patch_embed.grid_size) != (grid, grid):
            raise UsageError(f"tokens form a {grid}x{grid} grid but the encoder's position "
                             f"embedding covers {tuple(vit.patch_embed.grid_size)}; re-tokenize "
                             f"with --size {vit.patch_embed.grid_size[0] * patch}")
        weight = vit.patch_embed.proj.weight.detach()  # (D, C, p, p)
        channels = config["channels"]
        if channels != weight.shape[1]:
            if channels != 1:
                raise UsageError(f"{channels}-channel tokens cannot use a {weight.shape[1]}-"
                                 "channel patch embedding")
            weight = weight.sum(dim=1, keepdim=True)  # gray input: timm's adapt_input_conv
        per_element = patch * patch
        mean = torch.tensor(config["mean"], dtype=torch.float32).expand(channels)
        std = torch.tensor(config["std"], dtype=torch.float32).expand(channels)
        self.register_buffer("weight", weight.reshape(weight.shape[0], -1).T.contiguous())
        bias = vit.patch_embed.proj.bias
        self.register_buffer("bias", bias.detach() if bias is not None else
                             torch.zeros(weight.shape[0]))
        self.register_buffer("mean", mean.repeat_interleave(per_element))
        self.register_buffer("std", std.repeat_interleave(per_element))
        self.scale = 1.0 / (255.0 if config["bit_depth"] == 8 else 65535.0)
        self.vit = vit
        self.prefix = vit.num_prefix_tokens

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        pixels = (batch["tokens"].float() * self.scale - self.mean) / self.std
        x = torch.addmm(self.bias, pixels.flatten(0, 1), self.weight).view(
            pixels.shape[0], pixels.shape[1], -1)
        x = self.vit.patch_embed.norm(x)
        x = self.vit.norm_pre(self.vit.patch_drop(self.vit._pos_embed(x)))
        return Projected(x, None, self.prefix)


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


def build_projector(modality: str, token_config: dict, encoder: Any, seed: int,
                    weights: str | os.PathLike | None = None,
                    statics: dict | None = None) -> tuple[nn.Module, dict]:
    """The projector for ``modality`` and the record of how it was made."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if modality in IMAGE_FAMILY:
            projector = ImageProjector(encoder.vit, token_config)
            record = {"kind": "timm-patch-embed", "source": encoder.weights_source}
        elif modality == "points":
            projector = PointsProjector(token_config, encoder.width)
            record = {"kind": "mini-pointnet", "source": f"random(seed={seed})"}
        elif modality == "audio":
            positions = torch.from_numpy((statics or {})["positions"])
            projector = AudioProjector(token_config, encoder.width, positions)
            record = {"kind": "ast-linear-patch-embed", "source": f"random(seed={seed})"}
        else:
            raise UsageError(f"no projector for modality {modality!r} yet")
    if weights is not None:
        if not projector.trainable:
            raise UsageError(f"the {modality} projector is the encoder's own patch embedding; "
                             "it takes no --projector file")
        record = {**record, **load_projector_weights(projector, weights)}
    projector.requires_grad_(False).eval()
    return projector, record


def load_projector_weights(projector: nn.Module, path: str | os.PathLike) -> dict:
    from safetensors.torch import load_file

    from .encoders import file_sha256, load_strict

    load_strict(projector, load_file(os.fspath(path)), what="the projector")
    return {"source": f"file:{os.path.basename(path)}", "sha256": file_sha256(path)}


def run_encoder(encoder: Any, projected: Projected) -> torch.Tensor:
    """The frozen blocks over a projected batch; padding keys are masked out of attention."""
    x, attn_mask = projected.x, None
    if projected.mask is not None:
        prefix = torch.ones(x.shape[0], projected.prefix, dtype=torch.bool, device=x.device)
        attn_mask = torch.cat([prefix, projected.mask], dim=1)[:, None, None, :]
    for block in encoder.blocks:
        if projected.block_position is not None:
            x = x + projected.block_position
        x = block(x, attn_mask=attn_mask)
    return encoder.norm(x)
