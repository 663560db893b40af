"""What every projector shares: the :class:`Projected` it returns, building one from the
modality registry, loading trained projector weights, and running the frozen encoder.

Each modality's projector lives in its own package (``mmtok/modalities/<name>/projector.py``)
and is named by its registry entry; it returns a :class:`Projected`: ``x`` (B, prefix + T,
D), ``mask`` (B, T) True for real content tokens (None when every token is real), the number
of prefix tokens, and optionally a position embedding to add before every encoder block.
Projectors without pretrained weights start from a recorded seed and can be loaded from a
safetensors file.

Projector options (``embed --projector-option KEY=VALUE``, ``projector_options=``) go to the
registry's ``build`` function as a fourth argument, ``options``; a builder that takes no
``options`` parameter takes no options (given any, the run is refused). The builder returns
the options it used (defaults filled in) in its record, which the feature store records.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UsageError
from ..modalities.projected import Projected

__all__ = ["Projected", "build_projector", "embed_statistics", "load_projector_weights",
           "run_encoder"]

STATISTICS_CHOICES = ("encoder", "store")


def embed_statistics(modality: str, token_config: dict, encoder: Any,
                     choice: str | Mapping[str, Any] = "encoder") -> tuple[dict, dict | None]:
    """The token config the projector is built from, and the record of the normalisation
    statistics it applies, for a modality whose projector normalises at embed time (its
    registry entry names the ``statistics`` fields).

    ``choice``: ``"encoder"`` (default) takes the encoder's own (``encoder.data_config``:
    timm's data config, CLIP's for the Meta-Transformer layout; the store's where the
    encoder has none); ``"store"`` keeps those recorded at tokenize time; a mapping gives
    every field (values typed as ``--set`` types them). Modalities that store normalised
    tokens have no such fields: only the default applies to them.
    """
    from ..modalities import get_modality, parse_options

    fields = tuple(get_modality(modality).statistics)
    if not fields:
        if choice != "encoder":
            raise UsageError(f"{modality} tokens are normalised when they are tokenized (see "
                             "the token store's config); embed has no statistics to choose")
        return token_config, None
    if isinstance(choice, Mapping):
        if set(choice) != set(fields):
            raise UsageError(f"given statistics must name exactly {', '.join(fields)} for "
                             f"{modality} tokens, not {', '.join(sorted(choice)) or 'none'}")
        values = {k: v for k, v in choice.items() if not isinstance(v, str)}
        text = [f"{k}={v}" for k, v in choice.items() if isinstance(v, str)]
        values.update(parse_options(modality, text))
        source = "given"
    elif choice == "store":
        values, source = {f: token_config[f] for f in fields}, "store"
    elif choice == "encoder":
        own = getattr(encoder, "data_config", None) or {}
        if all(f in own for f in fields):
            values, source = {f: own[f] for f in fields}, "encoder"
        else:
            values, source = {f: token_config[f] for f in fields}, "store"
    else:
        raise UsageError(f"--statistics must be encoder, store or given values (--stat), "
                         f"not {choice!r}")
    values = {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in values.items()}
    return {**token_config, **values}, {"source": source, **values}


def build_projector(modality: str, token_config: dict, encoder: Any, seed: int,
                    weights: str | os.PathLike | None = None,
                    statics: dict | None = None,
                    options: dict[str, Any] | None = None) -> tuple[nn.Module, dict]:
    """The projector the registry names for ``modality`` and the record of how it was made.

    ``options`` (``--projector-option KEY=VALUE``) go to builders that take them; the
    builder refuses unknown keys and records the options it used."""
    build = projector_builder(modality)
    takes_options = "options" in inspect.signature(build).parameters
    if options and not takes_options:
        raise UsageError(f"the {modality} projector takes no --projector-option (given: "
                         f"{', '.join(sorted(options))}); drop them")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if takes_options:
            projector, record = build(token_config, encoder, statics or {},
                                      options=dict(options or {}))
        else:
            projector, record = build(token_config, encoder, statics or {})
    if "source" not in record:  # its weights are its own, drawn from the recorded seed
        record = {**record, "source": f"random(seed={seed})"}
    if weights is not None:
        if not projector.trainable:
            why = getattr(projector, "frozen_because", "part of the frozen encoder")
            raise UsageError(f"the {modality} projector is {why}; it takes no --projector file")
        record = {**record, **load_projector_weights(projector, weights)}
    projector.requires_grad_(False).eval()
    return projector, record


def projector_builder(modality: str) -> Callable[[dict, Any, dict], tuple[nn.Module, dict]]:
    """The modality's ``build`` function, imported only now (it imports torch)."""
    from ..modalities import get_modality

    module_name, _, function = get_modality(modality).projector.partition(":")
    return getattr(importlib.import_module(module_name), function)


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
