"""Analytic FLOPs of a ViT forward and model FLOP utilisation (MFU), for bench_embed.py.

Only matrix multiplications are counted (patch embedding, qkv, attention scores,
attention @ values, output projection, MLP fc1 and fc2), as timm's and fvcore's GMAC
figures do: ViT-B/16 at 224 is 17.56 GMACs, 35.1 GFLOP at 2 FLOPs per multiply-add.
Norms, softmax, GELU and additions are a fraction of a percent and are left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

PEAKS_FILE = Path(__file__).resolve().parent / "gpu_peaks.json"


@dataclass(frozen=True)
class VitDims:
    """What a ViT forward's matmul count depends on."""

    depth: int
    width: int
    mlp_hidden: int
    patches: int          # patch tokens per image
    prefix: int           # cls / register / distillation tokens
    patch_inputs: int     # in_channels * patch height * patch width

    @property
    def tokens(self) -> int:
        return self.patches + self.prefix


def vit_dims(model) -> VitDims:
    """The dimensions of a timm ``VisionTransformer`` (the classifier head is not counted)."""
    embed = model.patch_embed
    height, width = embed.patch_size
    return VitDims(depth=len(model.blocks), width=int(model.embed_dim),
                   mlp_hidden=int(model.blocks[0].mlp.fc1.out_features),
                   patches=int(embed.num_patches), prefix=int(model.num_prefix_tokens),
                   patch_inputs=int(embed.proj.in_channels) * height * width)


def vit_forward_macs(dims: VitDims) -> int:
    """Multiply-accumulates of one image's forward through the patch embedding and blocks."""
    n, d = dims.tokens, dims.width
    per_block = (n * d * 3 * d              # qkv projection
                 + 2 * n * n * d            # q @ k^T, then attention @ v (all heads together)
                 + n * d * d                # output projection
                 + 2 * n * d * dims.mlp_hidden)  # fc1 and fc2
    return dims.patches * dims.patch_inputs * d + dims.depth * per_block


def vit_forward_flops(dims: VitDims) -> int:
    """FLOPs of one image's forward: 2 per multiply-accumulate."""
    return 2 * vit_forward_macs(dims)


def peak_bf16_tflops(gpu_name: str, table: Path = PEAKS_FILE) -> float | None:
    """Dense bf16 peak of the named GPU from ``gpu_peaks.json``; None when not listed."""
    entries = json.loads(table.read_text())["peaks"]
    name = gpu_name.lower()
    for entry in entries:
        if entry["match"].lower() in name:
            return float(entry["bf16_dense_tflops"])
    return None


def mfu(images_per_second: float, flops_per_image: int, peak_tflops: float | None) -> float | None:
    """Achieved / peak FLOP/s, or None when the peak is unknown."""
    if not peak_tflops:
        return None
    return images_per_second * flops_per_image / (peak_tflops * 1e12)
