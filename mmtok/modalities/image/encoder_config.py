"""The image family's knowledge of timm's preprocessing: what ``tokenize --like-encoder NAME``
sets, and the resize settings ``embed`` compares a token store with.

timm describes how each pretrained model wants its images in a data config
(``timm.data.resolve_model_data_config``: input size, interpolation, crop fraction, crop
mode, mean and std), read here from the model registry (offline: no weights are fetched).
Its eval transform (crop mode ``center``) resizes the shorter side to ``floor(size /
crop_pct)`` and centre-crops ``size`` x ``size``: the image tokenizer's ``resize="scale_crop"``
does exactly that, so tokens cut with these options are the pixels timm would feed the model.
"""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from .tokenizer import RESAMPLE, ImageConfig

# the config fields that decide which pixels a token holds (statistics are applied at embed)
RESIZE_FIELDS = ("size", "resize", "crop_pct", "interpolation")


def timm_data_config(name: str) -> tuple[dict[str, Any], int | None]:
    """timm's data config for the model ``name`` (a tag such as ``.openai`` selects that
    pretrained config) and its patch size, from the model registry only."""
    import timm
    import torch
    from timm.data import resolve_model_data_config

    if not timm.is_model(name):
        raise UsageError(f"--like-encoder {name!r}: not a timm model name")
    with torch.device("meta"):  # no memory, no init: the config and the patch size only
        model = timm.create_model(name, pretrained=False, num_classes=0)
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    return dict(resolve_model_data_config(model)), (int(patch[0]) if patch else None)


def resize_settings(data_config: dict[str, Any]) -> dict[str, Any]:
    """The image config's resize fields that reproduce timm's eval transform for a model
    with this data config; a :class:`UsageError` where the tokenizer cannot."""
    _, height, width = data_config["input_size"]
    if height != width:
        raise UsageError(f"the encoder's input is {height}x{width}; image tokens are square")
    crop_mode = data_config.get("crop_mode") or "center"
    crop_pct = float(data_config.get("crop_pct") or 0.875)  # timm's DEFAULT_CROP_PCT
    if crop_mode == "center":
        resize = "scale_crop"
    elif crop_mode == "squash" and crop_pct == 1.0:
        resize = "plain"  # Resize((size, size)) and a crop of the whole image
    else:
        raise UsageError(f"timm crop mode {crop_mode!r} (crop_pct {crop_pct}) has no image "
                         "resize setting yet; choose --resize and --crop-pct yourself")
    interpolation = data_config.get("interpolation") or "bilinear"
    if interpolation not in RESAMPLE:
        raise UsageError(f"timm interpolation {interpolation!r} is not one of "
                         f"{', '.join(sorted(RESAMPLE))}")
    return {"size": int(height), "resize": resize, "crop_pct": crop_pct,
            "interpolation": interpolation}


def like_encoder(name: str, config: ImageConfig) -> dict[str, Any]:
    """Config overrides that cut tokens as timm preprocesses images for ``name``: size,
    patch, resize, crop fraction, interpolation, and the mean and std (3-channel stores
    only; a gray store keeps its own, embed applies the encoder's either way)."""
    data_config, patch = timm_data_config(name)
    options = resize_settings(data_config)
    if patch is not None:
        options["patch"] = patch
    if config.channels == len(data_config["mean"]):
        options["mean"] = tuple(float(v) for v in data_config["mean"])
        options["std"] = tuple(float(v) for v in data_config["std"])
    return options


def resize_differences(token_config: dict[str, Any], data_config: dict[str, Any]) -> list[str]:
    """``field: store -> encoder`` for each resize setting where a token store differs from
    the encoder's data config. ``shorter`` and ``scale_crop`` both centre-crop, so they are
    not told apart here (they differ by sub-pixel resampling only)."""
    try:
        wanted = resize_settings(data_config)
    except UsageError:
        return []
    differences = []
    for field in RESIZE_FIELDS:
        store, encoder = token_config.get(field), wanted[field]
        if field == "resize" and {store, encoder} <= {"shorter", "scale_crop"}:
            continue
        if field == "crop_pct" and store is not None and abs(float(store) - encoder) < 1e-9:
            continue
        if store != encoder:
            differences.append(f"{field} {store} (encoder: {encoder})")
    return differences
