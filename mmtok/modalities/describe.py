"""Human-readable descriptions of registered modalities, for ``mmtok modalities [NAME]``.

Everything here is read from the registry and the modality's default config, so the help
a user sees can never drift from what the code does.
"""

from __future__ import annotations

import dataclasses

from ..errors import UsageError
from .base import create_tokenizer, get_modality, make_config


def format_value(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def modality_options(name: str) -> list[tuple[str, str]]:
    """``(option, default)`` for every ``--set`` option of the modality."""
    config = make_config(name)
    return [(f.name, format_value(getattr(config, f.name)))
            for f in dataclasses.fields(config) if f.name != "modality"]


def describe_modality(name: str) -> str:
    """One modality in full: what it is, its extensions, options, presets, the arrays its
    token store holds (with the default config's shapes) and the projector embed builds."""
    spec = get_modality(name)
    tokenizer = create_tokenizer(name)
    lines = [f"{spec.name}: {spec.help}",
             f"  extensions: {' '.join(spec.extensions) or '(none: give files or a manifest)'}",
             "  options (--set KEY=VALUE, defaults shown):"]
    lines += [f"    {option}={value}" for option, value in modality_options(name)]
    if spec.presets:
        lines.append("  presets (--set preset=NAME):")
        for preset, values in spec.presets.items():
            shown = " ".join(f"{k}={format_value(v)}" for k, v in values.items())
            lines.append(f"    {preset}: {shown}")
    lines.append("  store arrays, per sample (default options):")
    try:
        arrays = tokenizer.sample_arrays()
    except UsageError as exc:  # shapes that depend on the data (a time series' channels)
        arrays = {}
        lines.append(f"    (shapes follow the options: {exc})")
    for array, array_spec in arrays.items():
        lines.append(f"    {array}: {array_spec.dtype} {tuple(array_spec.shape)}")
    statics = tokenizer.static_arrays()
    if statics:
        lines.append("  store arrays, shared by every sample:")
        lines += [f"    {array}: {values.dtype} {values.shape}" for array, values in statics.items()]
    lines.append("  tokenize --device cuda: " + (
        "the heavy steps batched on the GPU (Triton kernels), same bytes"
        if tokenizer.has_batched_path() else "no batched GPU path; runs on the CPU workers"))
    module = spec.projector.partition(":")[0]
    lines.append(f"  embed: projector {module.replace('.', '/')}.py, reads "
                 f"{', '.join(spec.inputs)}")
    if spec.docs:
        lines.append(f"  documentation: {spec.docs}")
    return "\n".join(lines)
