"""The modality registry and the interface every tokenizer implements.

A modality is a frozen config dataclass (exactly what goes into the store's attrs), a set of
file extensions a folder source picks up, and a tokenizer built from the config. Presets are
named config defaults (``xray`` is the image tokenizer with one 16-bit channel, ...).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from ..errors import UsageError
from ..store.layout import ArraySpec


class Tokenizer:
    """Turns one input file into fixed-shape arrays. Deterministic, no learned weights.

    ``tokenize_file`` raises :class:`mmtok.errors.SampleError` for a bad sample; any other
    exception is a bug and stops the run.
    """

    config: Any
    extensions: ClassVar[tuple[str, ...]] = ()

    def sample_arrays(self) -> dict[str, ArraySpec]:
        """Per-sample arrays this tokenizer fills (shape without the sample axis)."""
        raise NotImplementedError

    def static_arrays(self) -> dict[str, np.ndarray]:
        """Arrays shared by every sample (e.g. the patch grid), written once."""
        return {}

    def tokenize_file(self, path: str, part: str | None = None) -> dict[str, np.ndarray]:
        """Arrays for one sample: the whole file, or the ``part`` named by ``list_parts``."""
        raise NotImplementedError

    # Files that hold several samples (ModelNet HDF5 rows, long audio split into windows)
    # override this; it runs once per file while the sample list is built, so it must be
    # cheap (read headers, not data).
    # Parts may be ``(name, label)`` pairs when the file stores labels (HDF5 rows); then
    # ``part_class_names(path)`` may name the classes.
    list_parts: Callable[[str], list[str] | list[tuple[str, int | None]] | None] | None = None
    part_class_names: Callable[[str], list[str] | None] | None = None

    def statistics_from(self, paths: list[str]) -> dict[str, Any]:
        """Config overrides computed from the data (``tokenize --stats-from-data``)."""
        raise UsageError(f"modality {self.config.modality!r} cannot compute its normalisation "
                         "statistics from the data; pass them with --set instead")


@dataclass(frozen=True)
class ModalityEntry:
    name: str
    config_class: type
    factory: Callable[[Any], Tokenizer]
    defaults: Mapping[str, Any]
    extensions: tuple[str, ...]
    help: str


_REGISTRY: dict[str, ModalityEntry] = {}


def register_modality(
    name: str,
    config_class: type,
    factory: Callable[[Any], Tokenizer],
    extensions: tuple[str, ...],
    defaults: Mapping[str, Any] | None = None,
    help: str = "",
) -> None:
    _REGISTRY[name] = ModalityEntry(name, config_class, factory, dict(defaults or {}),
                                    extensions, help)


def modality_names() -> list[str]:
    return sorted(_REGISTRY)


def get_modality(name: str) -> ModalityEntry:
    if name not in _REGISTRY:
        raise UsageError(f"unknown modality {name!r}; choose one of: {', '.join(modality_names())}")
    return _REGISTRY[name]


def make_config(modality: str, **overrides: Any) -> Any:
    """The modality's config: its preset defaults, then ``overrides`` (None means default)."""
    entry = get_modality(modality)
    fields = {f.name for f in dataclasses.fields(entry.config_class)}
    given = {k: v for k, v in overrides.items() if v is not None}
    presets = getattr(entry.config_class, "PRESETS", {})
    if "preset" in given and given["preset"] not in presets:
        raise UsageError(f"modality {modality!r} has no preset {given['preset']!r}; "
                         f"choose one of: {', '.join(sorted(presets))}")
    preset = presets.get(given.get("preset", entry.defaults.get("preset")), {})
    unknown = sorted(set(given) - fields)
    if unknown:
        raise UsageError(f"modality {modality!r} has no option(s) {', '.join(unknown)}; "
                         f"its options are: {', '.join(sorted(fields - {'modality'}))}")
    return entry.config_class(**{**entry.defaults, **preset, **given, "modality": modality})


def parse_options(modality: str, assignments: list[str]) -> dict[str, Any]:
    """``["size=256", "mean=0.5,0.5,0.5"]`` -> typed config overrides for ``modality``.

    Values are converted with the config field's type, so every modality's options are
    reachable from the CLI (``--set KEY=VALUE``) without modality-specific CLI code.
    """
    entry = get_modality(modality)
    fields = {f.name for f in dataclasses.fields(entry.config_class)}
    hints = {k: v for k, v in typing.get_type_hints(entry.config_class).items() if k in fields}
    options: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in hints or key == "modality":
            known = ", ".join(sorted(k for k in hints if k != "modality"))
            raise UsageError(f"--set {assignment!r}: expected KEY=VALUE with KEY one of: {known}")
        options[key] = _convert(text.strip(), hints[key], assignment)
    return options


def _convert(text: str, hint: Any, assignment: str) -> Any:
    try:
        if hint is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes", "on")
        if typing.get_origin(hint) is tuple:
            item = typing.get_args(hint)[0]
            return tuple(item(v) for v in text.split(","))
        return hint(text)
    except ValueError:
        raise UsageError(f"--set {assignment!r}: {text!r} is not {_type_words(hint)}") from None


def _type_words(hint: Any) -> str:
    """``int`` -> "an integer", ``tuple[float, ...]`` -> "comma-separated numbers"."""
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return "comma-separated integers" if item is int else "comma-separated numbers"
    return {int: "an integer", float: "a number", bool: "true or false"}.get(
        hint, f"a valid {getattr(hint, '__name__', hint)}")


def create_tokenizer(modality: str, **overrides: Any) -> Tokenizer:
    entry = get_modality(modality)
    return entry.factory(make_config(modality, **overrides))


def config_to_dict(config: Any) -> dict:
    """JSON-ready dict (tuples become lists) of a config dataclass."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
