"""The image family's projector: the timm ViT's own patch embedding (as a matmul over the
stored (channel, row, column) patches), cls token, position embedding and pre-norm, so a
feature equals timm's ``forward_features`` on the same normalised image. The normalisation
(uint8/uint16 -> float, minus mean, over std) is
:func:`mmtok.kernels.patchify.normalize_patches`: on CUDA, one pass of the patchify Triton
kernel's fused path. It has no weights of its own (it reads the encoder's), so it is not
trainable.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..projected import Projected
from ...errors import PreprocessingMismatchWarning, UsageError
from ...kernels.patchify import normalize_patches


def pixel_dtype(tokens: torch.Tensor) -> torch.dtype:
    """The dtype the normalised pixels are written in: float32, or on CUDA under autocast the
    autocast dtype. The patch-embedding matmul that follows would round its float32 input to
    that dtype anyway (to nearest even, as the kernel's store rounds), so writing it directly
    gives the matmul the same values for half the memory traffic. On the CPU the pixels stay
    float32 whatever the autocast: today's ops, bit for bit."""
    if tokens.device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        return torch.get_autocast_dtype("cuda")
    return torch.float32


class ImageProjector(nn.Module):
    """Stored uint8/uint16 patches -> the timm ViT's embedding of the same normalised image."""

    trainable = False
    frozen_because = "the encoder's own patch embedding, which stays frozen with the encoder"
    # normalize_patches' implementation: "auto" (the Triton kernel on CUDA, torch ops on the
    # CPU); tests force "triton" to run the kernel under the interpreter
    kernel_impl = "auto"

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
        # gray tokens with per-channel statistics (an RGB encoder's own): repeat the gray
        # channel, as converting the image to RGB would, and use the weights unchanged
        if channels == 1 and len(config["mean"]) == weight.shape[1] > 1:
            channels = weight.shape[1]
        elif channels != weight.shape[1]:
            if channels != 1:
                raise UsageError(f"{channels}-channel tokens cannot use a {weight.shape[1]}-"
                                 "channel patch embedding")
            weight = weight.sum(dim=1, keepdim=True)  # gray input: timm's adapt_input_conv
        if len(config["mean"]) not in (1, channels) or len(config["std"]) != len(config["mean"]):
            raise UsageError(f"statistics mean {tuple(config['mean'])} / std "
                             f"{tuple(config['std'])} do not fit {channels}-channel tokens")
        self.channels, self.per_channel = channels, patch * patch
        self.mean = tuple(float(v) for v in config["mean"])  # 1 or `channels` values
        self.std = tuple(float(v) for v in config["std"])
        self.register_buffer("weight", weight.reshape(weight.shape[0], -1).T.contiguous())
        bias = vit.patch_embed.proj.bias
        self.register_buffer("bias", bias.detach() if bias is not None else
                             torch.zeros(weight.shape[0]))
        self.scale = 1.0 / (255.0 if config["bit_depth"] == 8 else 65535.0)
        self.vit = vit
        self.prefix = vit.num_prefix_tokens

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        tokens = batch["tokens"]
        # (channel, row, col) patches; a repeated gray channel is a stride-0 view, not a copy
        pixels = normalize_patches(tokens, self.per_channel, self.mean, self.std,
                                   channels=self.channels, scale=self.scale,
                                   out_dtype=pixel_dtype(tokens), impl=self.kernel_impl)
        x = torch.addmm(self.bias, pixels.flatten(0, 1), self.weight).view(
            pixels.shape[0], pixels.shape[1], -1)
        x = self.vit.patch_embed.norm(x)
        x = self.vit.norm_pre(self.vit.patch_drop(self.vit._pos_embed(x)))
        return Projected(x, None, self.prefix)


class ResizeMismatchWarning(PreprocessingMismatchWarning):
    """The token store was cut with other resize settings than the encoder's data config."""


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    from .encoder_config import resize_differences

    data_config = getattr(encoder, "data_config", None)
    if encoder.vit is not None and data_config and "input_size" in data_config:
        differences = resize_differences(token_config, data_config)
        if differences:
            warnings.warn(
                f"the tokens were resized differently from {encoder.name}'s own preprocessing "
                f"({'; '.join(differences)}); re-tokenize with --like-encoder {encoder.name} "
                "to give it the pixels it was trained on", ResizeMismatchWarning, stacklevel=2)
    return (ImageProjector(encoder.vit, token_config),
            {"kind": "timm-patch-embed", "source": encoder.weights_source})
