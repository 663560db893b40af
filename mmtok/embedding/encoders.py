"""The frozen shared encoder: a timm ViT by name, or the Meta-Transformer checkpoint layout.

Names ``load_encoder`` understands:

* any timm model name (optionally with a pretrained tag) whose model is a timm
  ``VisionTransformer`` (or a subclass such as DeiT's distilled ViT):
  ``vit_base_patch16_clip_224``, ``vit_base_patch16_224``, ``vit_tiny_patch16_224``, ...
  Other timm families (ResNet, EVA, Swin, ...) are refused with a :class:`UsageError`.
* ``metatransformer-b16``: 12 bare timm ``Block``s, width 768, 12 heads (the released
  ``Meta-Transformer_base_patch16_encoder.pth``, 144 tensors);
* ``metatransformer-l14``: 24 blocks, width 1024, 16 heads (``..._large_patch14_encoder.pth``,
  288 tensors);
* ``metatransformer:depth=D,width=W,heads=H[,mlp_ratio=R]``: the same layout with custom
  dimensions (tiny ones for tests).

The Meta-Transformer layout is exactly the official demo's ``nn.Sequential`` of
``Block(dim, heads, mlp_ratio=4, qkv_bias=True, norm_layer=nn.LayerNorm, act_layer=nn.GELU)``:
keys ``{i}.norm1.*``, ``{i}.attn.qkv.*``, ``{i}.attn.proj.*``, ``{i}.norm2.*``,
``{i}.mlp.fc1.*``, ``{i}.mlp.fc2.*``; no patch embedding, cls token, position embedding or final
norm. Its LayerNorms use torch's default eps 1e-5 (the CLIP / OpenCLIP towers it was taken from
use 1e-5 too), not timm's ViT default of 1e-6.

Weights come from a local file (``weights=``: ``.safetensors``, or a torch checkpoint read with
``weights_only=True`` so no arbitrary object is ever unpickled), from the timm / Hugging Face
hub (``pretrained=True``, timm models only), or, without either, from a random init seeded by
``seed``. Loading is strict: every missing, unexpected or mis-shaped key is reported at once.
The encoder comes back frozen (``requires_grad=False`` everywhere, eval mode).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import pickle
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import MmtokError, MmtokWarning, UsageError

if TYPE_CHECKING:  # timm is imported lazily: it takes seconds to import
    from timm.models.vision_transformer import VisionTransformer

__all__ = [
    "METATRANSFORMER_SIZES",
    "AdaptedCheckpointWarning",
    "Encoder",
    "EncoderHubError",
    "EncoderWeightsError",
    "check_state_dict",
    "file_sha256",
    "key_padding_mask",
    "load_encoder",
    "metatransformer_blocks",
    "parse_metatransformer",
    "RandomWeightsWarning",
    "read_state_dict",
]


class EncoderWeightsError(MmtokError):
    """A weights file that cannot be read, or whose tensors do not fit the encoder.

    ``missing``, ``unexpected`` and ``mismatched`` (``key -> (expected, found)`` shapes) hold
    the offending keys when the failure is a key mismatch.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]] | None = None,
    ) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.mismatched = dict(mismatched or {})


class EncoderHubError(MmtokError):
    """Pretrained weights could not be fetched from the hub (offline, not cached, ...)."""

    exit_code = 2


class RandomWeightsWarning(MmtokWarning):
    """The encoder has random weights (no weights file, not pretrained): its features come
    from an untrained model, fine for a test, meaningless for real use."""


class AdaptedCheckpointWarning(MmtokWarning):
    """timm's checkpoint filter resized some of the checkpoint's tensors to fit the encoder,
    so the features are not exactly those of the checkpoint's own model."""


# --------------------------------------------------------------------------------------------
# The encoder


@dataclass
class Encoder:
    """A frozen transformer shared by every modality.

    ``forward_tokens`` runs ``blocks`` then ``norm`` on tokens that a projector has already
    brought to ``width`` (with whatever prefix tokens and position embeddings it adds).
    """

    name: str
    blocks: nn.Sequential
    norm: nn.Module
    width: int
    num_heads: int
    weights_sha256: str | None
    weights_source: str
    vit: VisionTransformer | None = None
    adapted: tuple[str, ...] = ()
    """Checkpoint keys timm's checkpoint filter resized to fit the model (e.g. ``pos_embed``
    for another image size, ``patch_embed.proj.weight`` for another patch size)."""
    adapted_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=dict)
    """``key -> (shape in the file, shape loaded)`` for every key of ``adapted``."""
    data_config: dict[str, Any] | None = None
    """How the encoder wants its images: timm's data config for timm models
    (``resolve_model_data_config``: input_size, interpolation, mean, std, crop_pct,
    crop_mode; input_size is the model's own), CLIP's mean and std for the Meta-Transformer
    layout (CLIP-trained blocks)."""

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def module(self) -> nn.Module:
        """The module that owns every weight (the timm model, or the bare blocks)."""
        return self.vit if self.vit is not None else self.blocks

    @property
    def device(self) -> torch.device:
        return next(self.blocks.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.blocks.parameters()).dtype

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Encoder:
        """Move the weights in place (``norm`` moves too; it is part of the same model)."""
        self.module.to(device=device, dtype=dtype)
        self.norm.to(device=device, dtype=dtype)
        return self

    def forward_tokens(
        self,
        x: torch.Tensor,
        *,
        lengths: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, L, width)`` tokens -> ``(B, L, width)`` features: the blocks, then the norm.

        ``lengths`` (``(B,)`` ints: valid tokens at the start of each row, prefix tokens such
        as cls included) masks the padding keys out of every attention, so that padding never
        changes the features of real tokens. ``attn_mask`` passes any mask timm's attention
        accepts (bool, True = attend; or additive float), broadcastable to ``(B, heads, L, L)``.
        """
        if lengths is not None:
            if attn_mask is not None:
                raise UsageError("forward_tokens: pass lengths or attn_mask, not both")
            attn_mask = key_padding_mask(lengths, x.shape[1])
        if attn_mask is None:
            x = self.blocks(x)
        else:
            for block in self.blocks:
                x = block(x, attn_mask=attn_mask)
        return self.norm(x)


def key_padding_mask(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """``(B,)`` valid lengths -> ``(B, 1, 1, L)`` bool mask, True on keys that may be attended."""
    lengths = torch.as_tensor(lengths)
    positions = torch.arange(seq_len, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


# --------------------------------------------------------------------------------------------
# Meta-Transformer layout

METATRANSFORMER_SIZES: dict[str, dict[str, int]] = {
    "b16": {"depth": 12, "width": 768, "heads": 12},
    "l14": {"depth": 24, "width": 1024, "heads": 16},
}
_MT_PREFIXES = ("metatransformer-", "metatransformer:")


def _is_metatransformer(name: str) -> bool:
    return name.startswith(_MT_PREFIXES)


def parse_metatransformer(spec: str) -> dict[str, Any]:
    """``"b16"``, ``"l14"`` or ``"depth=2,width=64,heads=4[,mlp_ratio=4]"`` (a full encoder
    name such as ``metatransformer-b16`` or ``metatransformer:depth=2,...`` works too) ->
    ``{"depth", "width", "heads", "mlp_ratio"}``."""
    for prefix in _MT_PREFIXES:
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
            break
    if spec in METATRANSFORMER_SIZES:
        return {**METATRANSFORMER_SIZES[spec], "mlp_ratio": 4.0}
    hint = (
        f"unknown Meta-Transformer size {spec!r}: use metatransformer-b16, metatransformer-l14 "
        "or metatransformer:depth=D,width=W,heads=H[,mlp_ratio=R]"
    )
    dims: dict[str, Any] = {"mlp_ratio": 4.0}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("depth", "width", "heads", "mlp_ratio"):
            raise UsageError(hint)
        try:
            dims[key] = float(value) if key == "mlp_ratio" else int(value)
        except ValueError:
            raise UsageError(f"{hint} ({key}={value!r} is not a number)") from None
    if not {"depth", "width", "heads"} <= dims.keys():
        raise UsageError(hint)
    if min(dims["depth"], dims["width"], dims["heads"]) < 1 or dims["mlp_ratio"] <= 0:
        raise UsageError(f"{hint} (all dimensions must be positive)")
    if dims["width"] % dims["heads"]:
        raise UsageError(f"Meta-Transformer width {dims['width']} is not divisible by heads {dims['heads']}")
    return dims


def metatransformer_blocks(size: str = "b16") -> nn.Sequential:
    """The Meta-Transformer encoder layout: an ``nn.Sequential`` of bare timm ``Block``s.

    ``size`` is ``"b16"`` (12 x 768, 12 heads), ``"l14"`` (24 x 1024, 16 heads) or custom
    dimensions ``"depth=2,width=64,heads=4[,mlp_ratio=4]"``. State-dict keys are exactly
    ``{i}.norm1.{weight,bias}``, ``{i}.attn.qkv.{weight,bias}``, ``{i}.attn.proj.{weight,bias}``,
    ``{i}.norm2.{weight,bias}``, ``{i}.mlp.fc1.{weight,bias}``, ``{i}.mlp.fc2.{weight,bias}``
    (12 per block). Weights are timm's random init under torch's current RNG.
    """
    from timm.models.vision_transformer import Block

    dims = parse_metatransformer(size)
    return nn.Sequential(
        *[
            Block(
                dims["width"],
                dims["heads"],
                mlp_ratio=dims["mlp_ratio"],
                qkv_bias=True,
                norm_layer=nn.LayerNorm,  # eps 1e-5, as in the official demo (not timm's 1e-6)
                act_layer=nn.GELU,
            )
            for _ in range(dims["depth"])
        ]
    )


# --------------------------------------------------------------------------------------------
# Weights files


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat ``{key: tensor}`` dict from a ``.safetensors`` file or a torch checkpoint.

    Torch checkpoints are loaded with ``weights_only=True`` on the CPU: a file that needs
    arbitrary unpickling is refused. A state dict nested under ``"model"`` or ``"state_dict"``
    is unwrapped, and a leading ``module.`` (DataParallel / DDP) is stripped from every key.
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderWeightsError(f"weights file {str(path)!r} does not exist or is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:  # SafetensorError, OSError, ...
            raise EncoderWeightsError(
                f"cannot read {str(path)!r} as safetensors: {type(e).__name__}: {e}"
            ) from e
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EncoderWeightsError(
                f"refusing to load {str(path)!r}: it holds Python objects other than tensors, "
                "and mmtok never unpickles arbitrary objects (torch.load weights_only=True said: "
                f"{first}). Save just the state dict (torch.save(model.state_dict(), ...)) or "
                "convert it to .safetensors from code you trust."
            ) from e
        except Exception as e:  # not a torch file, truncated zip, ...
            raise EncoderWeightsError(
                f"cannot read {str(path)!r} as a torch checkpoint: {type(e).__name__}: {e}. "
                "Weights files must be .safetensors or a torch state dict (.pth/.pt/.bin)."
            ) from e

    for _ in range(2):  # {"model": sd} / {"state_dict": sd} / {"state_dict": {"model": sd}}
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in ("model", "state_dict") if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping):
        raise EncoderWeightsError(
            f"{str(path)!r} holds a {type(obj).__name__}, not a state dict of tensors"
        )
    bad = sorted(str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor)))
    if bad:
        shown = ", ".join(bad[:10]) + (f", ... ({len(bad)} in all)" if len(bad) > 10 else "")
        raise EncoderWeightsError(
            f"{str(path)!r} is not a flat state dict of tensors: entries {shown} are not tensors"
        )
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _shape(shape: Any) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Load ``state`` into ``module`` after checking every key and shape (see check_state_dict)."""
    expected = {k: v.shape for k, v in module.state_dict().items()}
    check_state_dict(expected, state, what=what)
    module.load_state_dict(state, strict=True)


def check_state_dict(
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    found: Mapping[str, torch.Tensor],
    *,
    what: str = "the encoder",
) -> None:
    """Strict key check: raise :class:`EncoderWeightsError` listing every missing, unexpected
    and mis-shaped key (sorted, with shapes) unless ``found`` fits ``expected`` exactly."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = {
        k: (tuple(expected[k]), tuple(found[k].shape))
        for k in sorted(set(expected) & set(found))
        if tuple(expected[k]) != tuple(found[k].shape)
    }
    if not (missing or unexpected or mismatched):
        return
    counts = ", ".join(
        f"{n} {label}"
        for n, label in ((len(missing), "missing"), (len(unexpected), "unexpected"), (len(mismatched), "mis-shaped"))
        if n
    )
    lines = [f"the checkpoint does not fit {what} ({counts} key(s)):"]
    lines += [f"  missing:    {k} (expected {_shape(expected[k])})" for k in missing]
    lines += [f"  unexpected: {k} (found {_shape(found[k].shape)})" for k in unexpected]
    lines += [f"  mis-shaped: {k} (expected {_shape(e)}, found {_shape(f)})" for k, (e, f) in mismatched.items()]
    hint = _layout_hint(found)
    if hint:
        lines.append(hint)
    raise EncoderWeightsError("\n".join(lines), missing=tuple(missing), unexpected=tuple(unexpected), mismatched=mismatched)


def _layout_hint(found: Mapping[str, torch.Tensor]) -> str:
    """Say what the checkpoint looks like, so a wrong ``--encoder`` is easy to spot."""
    blocks = {int(m.group(1)) for k in found if (m := re.match(r"^(?:blocks\.)?(\d+)\.norm1\.weight$", k))}
    if not blocks:
        return ""
    prefix = "blocks." if any(k.startswith("blocks.") for k in found) else ""
    norm = found.get(f"{prefix}{min(blocks)}.norm1.weight")
    width = f", width {norm.shape[0]}" if norm is not None and norm.ndim == 1 else ""
    kind = "a timm ViT" if prefix else "the Meta-Transformer layout (bare blocks)"
    return f"  (the checkpoint looks like {kind} with {len(blocks)} blocks{width}; check --encoder)"


# --------------------------------------------------------------------------------------------
# Loading


def load_encoder(
    name: str,
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    model_kwargs: Mapping[str, Any] | None = None,
) -> Encoder:
    """Build the frozen shared encoder ``name`` (see the module docstring for the names).

    ``weights``: a local ``.safetensors`` or torch state-dict file, loaded strictly (its sha256
    is recorded). ``pretrained``: timm's own hub loading (timm models only). Neither: random
    init from ``seed``, without touching torch's global RNG. ``model_kwargs`` go to
    ``timm.create_model`` (e.g. ``img_size=384``, or ``depth=2`` for a tiny test model).
    """
    if weights is not None and pretrained:
        raise UsageError("pass either --weights FILE or --pretrained, not both")
    if _is_metatransformer(name):
        if pretrained:
            raise UsageError(
                f"{name}: the Meta-Transformer weights are not on the hub; download "
                "Meta-Transformer_base_patch16_encoder.pth (B/16) or "
                "Meta-Transformer_large_patch14_encoder.pth (L/14) and pass --weights FILE"
            )
        if model_kwargs:
            raise UsageError(f"{name}: model options apply to timm encoders only")
        encoder = _load_metatransformer(name, weights, seed)
    else:
        encoder = _load_timm(name, weights, pretrained, seed, dict(model_kwargs or {}))
    encoder.module.requires_grad_(False)
    encoder.module.eval()
    encoder.norm.requires_grad_(False)
    encoder.norm.eval()
    return encoder.to(device=device, dtype=dtype)


def _random_source(seed: int) -> str:
    return f"random(seed={seed})"


def _load_metatransformer(name: str, weights: str | os.PathLike | None, seed: int) -> Encoder:
    dims = parse_metatransformer(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        blocks = metatransformer_blocks(name)
    sha = None
    source = _random_source(seed)
    if weights is not None:
        load_strict(blocks, read_state_dict(weights), what=f"encoder {name!r}")
        sha = file_sha256(weights)
        source = f"file:{Path(weights).resolve()}"
    from timm.data.constants import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    return Encoder(
        name=name,
        blocks=blocks,
        norm=nn.Identity(),
        width=dims["width"],
        num_heads=dims["heads"],
        weights_sha256=sha,
        weights_source=source,
        vit=None,
        data_config={"mean": tuple(OPENAI_CLIP_MEAN), "std": tuple(OPENAI_CLIP_STD)},
    )


def _timm_usage_checks(name: str, model_kwargs: dict[str, Any]) -> nn.Module:
    """Refuse unknown and non-ViT names before any weights are built or downloaded."""
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown encoder {name!r}: not a timm model name nor metatransformer-b16 / "
            f"metatransformer-l14 / metatransformer:depth=D,width=W,heads=H{hint}"
        )
    from timm.models.vision_transformer import VisionTransformer

    try:
        with torch.device("meta"):  # no memory, no init cost: just the class and config
            probe = timm.create_model(name, pretrained=False, num_classes=0, **model_kwargs)
    except TypeError as e:
        raise UsageError(f"encoder {name!r}: bad model options {model_kwargs}: {e}") from e
    if not isinstance(probe, VisionTransformer):
        raise UsageError(
            f"encoder {name!r} is a timm {type(probe).__name__}, not a VisionTransformer; mmtok's "
            "shared encoder needs a plain ViT (e.g. vit_base_patch16_clip_224, "
            "vit_base_patch16_224) or metatransformer-b16 / -l14"
        )
    return probe


def _checkpoint_filter(model: nn.Module, name: str):
    """The model family's own timm checkpoint filter (converts OpenAI CLIP / OpenCLIP /
    DINOv2 / ... key layouts, resizes pos_embed and patch_embed to the model)."""
    from timm.models import vision_transformer as vt

    module = sys.modules.get(type(model).__module__)
    fn = getattr(module, "checkpoint_filter_fn", vt.checkpoint_filter_fn)
    if fn is vt.checkpoint_filter_fn:
        # also maps DeiT-III's original gamma_1/gamma_2 keys to ls1/ls2 (a no-op otherwise)
        fn = partial(fn, adapt_layer_scale=True)
        if "flexi" in name or "radio" in name:  # timm's own choice for these variants
            fn = partial(fn, interpolation="bilinear", antialias=False)
    return fn


HUB_PROBE_SECONDS = 3.0
# the files timm looks for in a hub repo (its safetensors alternative first)
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                    "open_clip_pytorch_model.bin")


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached (``HF_HUB_OFFLINE``, no DNS, no route), or
    None. One TCP connect of at most a few seconds, instead of huggingface_hub's retries
    (five, with back-off: about a minute) before it falls back to the cache."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=HUB_PROBE_SECONDS).close()
    except OSError as exc:
        return f"cannot connect to {endpoint.hostname}:{port}: {exc.strerror or exc}"
    return None


def _hub_cached(cfg: Mapping[str, Any]) -> bool:
    """Whether the hub weights named by timm's ``pretrained_cfg`` are in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    repo = cfg.get("hf_hub_id")
    if not repo:
        return False
    names = [cfg.get("hf_hub_filename"), *HUB_WEIGHT_FILES]
    return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names if n)


@contextmanager
def _hub_access(name: str, cfg: Mapping[str, Any]) -> Iterator[None]:
    """Offline with the weights cached: load them in offline mode (no network attempts).
    Offline without them: fail now with what to do, not after a minute of retries."""
    from huggingface_hub import constants

    why = _hub_unreachable() if cfg.get("hf_hub_id") else None
    if why is None:
        yield
        return
    if not _hub_cached(cfg):
        raise EncoderHubError(
            f"cannot fetch pretrained weights for {name!r}: the hub is unreachable ({why}) and "
            f"the weights of {cfg['hf_hub_id']} are not in the local cache "
            f"({constants.HF_HUB_CACHE}). Download them where there is network (e.g. "
            f"`hf download {cfg['hf_hub_id']}`, then copy the cache) or pass --weights FILE "
            "(.safetensors or .pth)")
    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub's requests
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _load_timm(
    name: str,
    weights: str | os.PathLike | None,
    pretrained: bool,
    seed: int,
    model_kwargs: dict[str, Any],
) -> Encoder:
    import timm

    probe = _timm_usage_checks(name, model_kwargs)
    sha = None
    adapted: tuple[str, ...] = ()
    adapted_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    if pretrained:
        cfg = getattr(probe, "pretrained_cfg", None) or {}
        if not any(cfg.get(k) for k in ("hf_hub_id", "url", "file", "state_dict")):
            raise UsageError(f"timm has no pretrained weights for {name!r}; pass --weights FILE")
        try:
            with _hub_access(name, cfg):
                model = timm.create_model(name, pretrained=True, num_classes=0, **model_kwargs)
        except MmtokError:
            raise
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise EncoderHubError(
                f"cannot fetch pretrained weights for {name!r}: the hub is unreachable or the "
                f"weights are not in the local cache ({type(e).__name__}: {msg}). Download them "
                "where there is network and pass --weights FILE (.safetensors or .pth)."
            ) from e
        tag = cfg.get("tag")
        arch = cfg.get("architecture") or name.split(".")[0]
        source = f"hub:{cfg.get('hf_hub_id') or (f'{arch}.{tag}' if tag else arch)}"
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(name, pretrained=False, num_classes=0, **model_kwargs)
        source = _random_source(seed)
        if weights is not None:
            raw = read_state_dict(weights)
            state = _checkpoint_filter(model, name)(dict(raw), model)
            adapted_shapes = {
                k: (tuple(raw[k].shape), tuple(v.shape)) for k, v in sorted(state.items())
                if k in raw and tuple(raw[k].shape) != tuple(v.shape)}
            adapted = tuple(adapted_shapes)
            if not any(k.startswith("head.") for k in model.state_dict()):  # num_classes=0
                state = {k: v for k, v in state.items() if not k.startswith("head.")}
            _load_filtered(model, state, adapted_shapes, name)
            sha = file_sha256(weights)
            source = f"file:{Path(weights).resolve()}"
    return Encoder(
        name=name,
        blocks=model.blocks,
        norm=model.norm,
        width=int(model.embed_dim),
        num_heads=int(model.blocks[0].attn.num_heads) if len(model.blocks) else 0,
        weights_sha256=sha,
        weights_source=source,
        vit=model,
        adapted=adapted,
        adapted_shapes=adapted_shapes,
        data_config=_timm_data_config(model),
    )


def _timm_data_config(model: nn.Module) -> dict[str, Any]:
    """timm's data config of ``model`` (from its pretrained config), with the input size
    the model was built for (``img_size=`` may differ from the pretrained one)."""
    from timm.data import resolve_model_data_config

    config = dict(resolve_model_data_config(model))
    config["mean"] = tuple(float(v) for v in config["mean"])
    config["std"] = tuple(float(v) for v in config["std"])
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is not None:
        config["input_size"] = (int(config["input_size"][0]), *(int(v) for v in size))
    return config


def _load_filtered(model: nn.Module, state: Mapping[str, torch.Tensor],
                   adapted_shapes: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]],
                   name: str) -> None:
    """``load_strict`` after timm's filter; a failure also names the shapes the *file* holds
    for the keys the filter resized (its message shows the resized ones)."""
    try:
        load_strict(model, state, what=f"timm model {name!r}")
    except EncoderWeightsError as exc:
        if not adapted_shapes:
            raise
        lines = [f"  resized by timm's checkpoint filter: {key} (in the file {_shape(old)}, "
                 f"resized to {_shape(new)})" for key, (old, new) in adapted_shapes.items()]
        raise EncoderWeightsError("\n".join([str(exc), *lines]), missing=exc.missing,
                                  unexpected=exc.unexpected, mismatched=exc.mismatched) from exc
