"""Time-series projectors, chosen at embed time with ``--projector-option kind=...``:

- ``informer`` (default for ``timeseries``): Meta-Transformer's time-series embedding,
  Informer's ``DataEmbedding`` without time features: ``Conv1d(C -> D, kernel 3, circular
  padding, no bias)`` per step plus a fixed sinusoidal position embedding; one token a step.
  The circular wrap joins a sample's last *real* step to its first (not the padding), so a
  padded sample embeds like the same sample unpadded.
- ``patch``: PatchTST: instance normalisation with the sample's own mean and
  ``sqrt(var + 1e-5)`` (the ``mean``/``std`` arrays), end padding by replicating the last real
  step ``stride`` times, channel-independent patches of ``patch`` steps every ``stride``
  steps (16 / 8), one shared ``Linear(patch -> D)``, learned patch-position and channel
  embeddings. PatchTST runs each channel as its own sequence; here the patches of every
  channel form one sequence (channel-major), so one feature describes the sample.
- ``imagebind`` (default for ``imu``): ImageBind's IMU stem: non-overlapping patches of
  ``patch`` steps (8) over all channels (C x 8 values, channel-major) -> ``Linear(8C -> D, no
  bias)`` + LayerNorm, a cls token and learned position embeddings.

Every kind has a cls token (so a sample always attends to something), masks the tokens that
hold only padding, and is trainable with ``train-head --tune tokenizer``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..projected import Projected
from ...errors import UsageError

KINDS = ("informer", "patch", "imagebind")
MAX_POSITIONS = 512  # learned position tables hold at least this many rows, so that a
# sample's embedding does not depend on the window it was padded to (rows are sliced)
OPTION_DEFAULTS = {"informer": {}, "patch": {"patch": 16, "stride": 8},
                   "imagebind": {"patch": 8}}


def sinusoidal(steps: int, width: int) -> torch.Tensor:
    """Informer's fixed ``PositionalEmbedding``: sin on even, cos on odd channels."""
    position = torch.arange(steps, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, width, 2, dtype=torch.float64) * -(math.log(10000.0) / width))
    table = torch.zeros(steps, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)[:, : width // 2]
    return table.float()


class InformerProjector(nn.Module):
    trainable = True

    def __init__(self, channels: int, steps: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, width, kernel_size=3, bias=False)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_in", nonlinearity="leaky_relu")
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.register_buffer("pos_embed", sinusoidal(steps, width)[None], persistent=False)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        x = batch["tokens"].float()  # (B, T, C)
        length = batch["length"].long().clamp(min=1)
        steps = torch.arange(x.shape[1], device=x.device)[None, :]
        # circular padding within each sample's real steps
        previous = torch.remainder(steps - 1, length[:, None])
        following = torch.remainder(steps + 1, length[:, None])
        gather = lambda index: torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[2]))
        window = torch.stack([gather(previous), x, gather(following)], dim=-1)  # (B, T, C, 3)
        tokens = torch.einsum("btck,dck->btd", window, self.conv.weight) + self.pos_embed
        mask = steps < batch["length"].long()[:, None]
        tokens = tokens * mask[:, :, None]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return Projected(x, mask, self.prefix)


class PatchTSTProjector(nn.Module):
    trainable = True

    def __init__(self, channels: int, steps: int, width: int, patch: int, stride: int) -> None:
        super().__init__()
        self.patch, self.stride, self.channels = patch, stride, channels
        self.patches = (steps + stride - patch) // stride + 1
        self.embed = nn.Linear(patch, width)
        rows = max(MAX_POSITIONS, self.patches)
        self.position = nn.Parameter(torch.empty(1, 1, rows, width).uniform_(-0.02, 0.02))
        self.channel = nn.Parameter(torch.randn(1, channels, 1, width) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        x = batch["tokens"].float()
        length = batch["length"].long().clamp(min=1)
        mean, std = batch["mean"].float()[:, None, :], batch["std"].float()[:, None, :]
        x = (x - mean) / std  # instance norm (RevIN without affine)
        steps = torch.arange(x.shape[1] + self.stride, device=x.device)[None, :]
        index = torch.minimum(steps, length[:, None] - 1)  # replicate the last real step
        x = torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[2]))
        patches = x.transpose(1, 2).unfold(2, self.patch, self.stride)  # (B, C, P, patch)
        position = self.position[:, :, :self.patches]
        tokens = self.embed(patches) + position + self.channel  # (B, C, P, D)
        real = (batch["length"].long()[:, None] + self.stride - self.patch) // self.stride + 1
        mask = torch.arange(self.patches, device=x.device)[None, :] < real
        mask = mask[:, None, :].expand(-1, self.channels, -1).reshape(x.shape[0], -1)
        tokens = tokens.reshape(x.shape[0], -1, tokens.shape[-1])
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return Projected(x, mask, self.prefix)


class ImageBindProjector(nn.Module):
    trainable = True

    def __init__(self, channels: int, steps: int, width: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.patches = -(-steps // patch)
        self.embed = nn.Linear(channels * patch, width, bias=False)
        self.norm = nn.LayerNorm(width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        rows = max(MAX_POSITIONS, self.patches) + 1
        self.pos_embed = nn.Parameter(torch.randn(1, rows, width) * 0.02)
        self.prefix = 1

    def forward(self, batch: dict[str, torch.Tensor]) -> Projected:
        x = batch["tokens"].float()  # (B, T, C), zeros past the length
        pad = self.patches * self.patch - x.shape[1]
        if pad:
            x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        b, _, c = x.shape
        # (B, P, C, patch) -> C x patch values per patch, channel-major as ImageBind
        patches = x.reshape(b, self.patches, self.patch, c).transpose(2, 3).reshape(b, self.patches, -1)
        tokens = self.norm(self.embed(patches))
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        x = x + self.pos_embed[:, :self.patches + 1]
        starts = torch.arange(self.patches, device=x.device)[None, :] * self.patch
        mask = starts < batch["length"].long()[:, None]
        return Projected(x, mask, self.prefix)


def _options(options: dict, default: str) -> dict[str, Any]:
    given = dict(options)
    kind = str(given.pop("kind", default))
    if kind not in KINDS:
        raise UsageError(f"--projector-option kind={kind}: choose one of {', '.join(KINDS)}")
    allowed = OPTION_DEFAULTS[kind]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        known = ", ".join(["kind", *allowed])
        raise UsageError(f"the {kind} projector has no option(s) {', '.join(unknown)}; its "
                         f"options are: {known}")
    chosen = {"kind": kind}
    for key, value in allowed.items():
        try:
            number = int(given.get(key, value))
        except (TypeError, ValueError):
            raise UsageError(f"--projector-option {key}={given[key]!r}: expected an integer") \
                from None
        if number < 1:
            raise UsageError(f"--projector-option {key}={number}: must be at least 1")
        chosen[key] = number
    return chosen


def _build(token_config: dict, encoder: Any, options: dict, default: str
           ) -> tuple[nn.Module, dict]:
    chosen = _options(options, default)
    steps = int(token_config["window"])
    channels = int(token_config["num_channels"] or len(token_config["channels"])
                   or len(token_config["mean"]))
    width = encoder.width
    kind = chosen["kind"]
    if kind == "informer":
        module: nn.Module = InformerProjector(channels, steps, width)
        name = "informer-conv1d"
    elif kind == "patch":
        if chosen["patch"] > steps + chosen["stride"]:
            raise UsageError(f"patch {chosen['patch']} is longer than the window {steps} plus "
                             f"the stride {chosen['stride']}")
        module = PatchTSTProjector(channels, steps, width, chosen["patch"], chosen["stride"])
        name = "patchtst"
    else:
        module = ImageBindProjector(channels, steps, width, chosen["patch"])
        name = "imagebind-imu-patch"
    return module, {"kind": name, "options": chosen}


def build_timeseries(token_config: dict, encoder: Any, statics: dict,
                     options: dict | None = None) -> tuple[nn.Module, dict]:
    return _build(token_config, encoder, options or {}, "informer")


def build_imu(token_config: dict, encoder: Any, statics: dict,
              options: dict | None = None) -> tuple[nn.Module, dict]:
    return _build(token_config, encoder, options or {}, "imagebind")
