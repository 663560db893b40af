"""The video projector: the encoder's 2-D patch embedding inflated over time, as ImageBind
does (the Conv2d weight repeated over the tubelet's frames and divided by their number), the
ViT's spatial position embedding for each tubelet's (row, column) plus a learned temporal
position embedding (zero at the start), and the ViT's cls token.

Untrained, a video made of one image repeated projects to that image's patch embeddings,
once per tubelet time step: each tubelet sums ``W / 2`` over two equal frames, which is ``W``
over the image. The projector holds its own copies of these weights, so ``train-head --tune
tokenizer`` trains them while the encoder stays frozen. Encoders without a patch embedding
(``metatransformer:...`` blocks) get a randomly initialised one with a fixed 2-D sine-cosine
spatial embedding. The tubelets' normalisation is
:func:`mmtok.kernels.patchify.normalize_patches` (on CUDA, the patchify Triton kernel's fused
path), as for images.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..projected import Projected
from ...errors import UsageError
from ...kernels.patchify import normalize_patches
from ..audio.projector import sincos_2d
from ..image.projector import pixel_dtype


class VideoProjector(nn.Module):
    """Stored uint8 tubelets (channel, t, row, col) -> encoder tokens with a cls token."""

    trainable = True
    kernel_impl = "auto"  # normalize_patches' implementation (tests force "triton")

    def __init__(self, config: dict, encoder: Any, positions: torch.Tensor) -> None:
        super().__init__()
        patch, tubelet = config["patch"], config["tubelet"]
        grid = config["size"] // patch
        steps = config["num_frames"] // tubelet
        vit = getattr(encoder, "vit", None)
        width = encoder.width
        if vit is not None:
            if tuple(vit.patch_embed.patch_size) != (patch, patch):
                raise UsageError(f"tubelets are {patch}x{patch} in space but the encoder's "
                                 f"patches are {tuple(vit.patch_embed.patch_size)}; re-tokenize "
                                 "with a matching --set patch=... or choose another encoder")
            if tuple(vit.patch_embed.grid_size) != (grid, grid):
                raise UsageError(f"tubelets form a {grid}x{grid} grid but the encoder's position "
                                 f"embedding covers {tuple(vit.patch_embed.grid_size)}; "
                                 f"re-tokenize with --set size={vit.patch_embed.grid_size[0] * patch}")
            if vit.cls_token is None or vit.num_prefix_tokens != 1:
                raise UsageError("the video projector needs a ViT with one cls token and no "
                                 "register tokens")
            weight2d = vit.patch_embed.proj.weight.detach().float()  # (D, C, p, p)
            bias = vit.patch_embed.proj.bias
            bias = bias.detach().float() if bias is not None else torch.zeros(width)
            table = vit.pos_embed.detach().float()[0]  # (prefix + grid*grid, D) or (grid*grid, D)
            if vit.no_embed_class:
                cls_pos, spatial = torch.zeros(width), table
            else:
                cls_pos, spatial = table[0], table[1:]
            cls = vit.cls_token.detach().float().reshape(width) + cls_pos
            self._frozen = (vit.patch_embed.norm, vit.norm_pre)  # the encoder's, not ours
            source = "inflated-encoder-patch-embed"
        else:
            weight2d = torch.empty(width, 3, patch, patch)
            nn.init.trunc_normal_(weight2d, std=0.02)
            bias = torch.zeros(width)
            spatial = sincos_2d(torch.stack(torch.meshgrid(
                torch.arange(grid), torch.arange(grid), indexing="ij"), -1).reshape(-1, 2), width)
            cls = torch.randn(width) * 0.02
            self._frozen = (nn.Identity(), nn.Identity())
            source = "random-inflated-patch-embed"
        # Inflate: (D, C, p, p) -> (D, C, T, p, p), the frames of a tubelet sharing W / T.
        weight3d = weight2d[:, :, None].expand(-1, -1, tubelet, -1, -1) / tubelet
        self.weight = nn.Parameter(weight3d.reshape(width, -1).T.contiguous())  # (K, D)
        self.bias = nn.Parameter(bias.clone())
        self.cls_token = nn.Parameter(cls.reshape(1, 1, width).clone())
        self.temporal = nn.Parameter(torch.zeros(steps, width))
        positions = positions.long()
        self.register_buffer("spatial", spatial[positions[:, 1] * grid + positions[:, 2]].clone(),
                             persistent=False)
        self.register_buffer("step", positions[:, 0].clone(), persistent=False)
        self.per_channel = tubelet * patch * patch
        self.mean = tuple(float(v) for v in config["mean"])  # 1 or 3 values
        self.std = tuple(float(v) for v in config["std"])
        self.prefix = 1
        self.source = source

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        tokens = batch["tokens"]
        # x / 255 (not x * (1/255)): the CPU numbers stay the bits they always were
        pixels = normalize_patches(tokens, self.per_channel, self.mean, self.std, channels=3,
                                   divide_by=255.0, out_dtype=pixel_dtype(tokens),
                                   impl=self.kernel_impl)
        x = pixels @ self.weight + self.bias
        norm, norm_pre = self._frozen
        x = norm(x) + self.spatial + self.temporal[self.step]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return Projected(norm_pre(x), None, self.prefix)


def build(token_config: dict, encoder: Any, statics: dict) -> tuple[nn.Module, dict]:
    positions = torch.from_numpy(statics["positions"])
    projector = VideoProjector(token_config, encoder, positions)
    record = {"kind": projector.source}
    if getattr(encoder, "vit", None) is not None:  # its starting weights are the encoder's
        record["source"] = f"inflated from {encoder.weights_source}"
    return projector, record
