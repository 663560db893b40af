"""The modality registry and the interface every tokenizer implements.

A modality is one package under ``mmtok/modalities/`` that registers one
:class:`ModalitySpec`: a frozen config dataclass (exactly what goes into the store's attrs),
the file extensions a folder source picks up, the tokenizer built from the config, the
projector the embed step builds for its tokens, presets, demo data and tiny test options.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from ..errors import SampleError, UsageError
from ..store.layout import ArraySpec


class PartsBatch(Sequence):
    """What ``tokenize_parts`` may return for many parts at once: ``arrays`` hold every
    part's values along the first axis (a failed part's row is ignored and written as
    zeros), ``errors`` map a part's position to its :class:`SampleError`. It is also the
    sequence of per-part dicts and errors the interface promises (built on access), so
    callers that index it see the same thing; ``work_shard`` copies the arrays whole, not
    one part at a time, and a batch that is a whole shard (one file's parts) it writes as
    is, zeroing failed rows in place: return fresh arrays, not views of a cache."""

    def __init__(self, arrays: Mapping[str, np.ndarray], errors: Mapping[int, SampleError],
                 count: int, counts: Mapping[str, int] | None = None) -> None:
        self.arrays, self.errors, self.count = dict(arrays), dict(errors), count
        # counts of notable parts among those that succeeded (e.g. rows with unparsable
        # cells), added to the shard's Tokenizer.tally
        self.counts = dict(counts or {})

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):
        positions = range(self.count)[index]  # negatives, bounds and slices as a list's
        if isinstance(index, slice):
            return [self._part(i) for i in positions]
        return self._part(positions)

    def _part(self, index: int) -> dict[str, np.ndarray] | SampleError:
        if index in self.errors:
            return self.errors[index]
        return {name: values[index] for name, values in self.arrays.items()}


class Tokenizer:
    """Turns one input file into fixed-shape arrays. Deterministic, no learned weights.

    ``tokenize_file`` raises :class:`mmtok.errors.SampleError` for a bad sample; any other
    exception is a bug and stops the run. The pipeline calls ``tokenize_parts`` once per
    run of consecutive samples of one file in a shard; tokenizers of multi-sample files
    override it to open the file once and read the rows or windows together.
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
        """Arrays for one sample: the whole file, or the ``part`` named by ``list_parts``.

        A tokenizer that implements ``tokenize_parts`` (many samples per file) need not
        implement this too: by default it is that call with one part."""
        if type(self).tokenize_parts is Tokenizer.tokenize_parts:
            raise NotImplementedError(f"{type(self).__name__} implements neither "
                                      "tokenize_file nor tokenize_parts")
        outcome = self.tokenize_parts(path, [part])[0]
        if isinstance(outcome, SampleError):
            raise outcome
        return outcome

    def tally(self, arrays: dict[str, np.ndarray], valid: np.ndarray) -> dict[str, int]:
        """Counts of notable *valid* samples in one shard's arrays (e.g. ``truncated`` texts,
        ``missing COLUMN`` cells), recorded in the shard's marker and summed into the run
        summary and ``mmtok info``. Default: nothing counted."""
        return {}

    def tokenize_parts(
        self, path: str, parts: Sequence[str | None]
    ) -> list[dict[str, np.ndarray] | SampleError]:
        """Arrays for several samples of the file ``path``, one entry per ``parts`` item, in
        that order: the sample's arrays, or the :class:`SampleError` it failed with.

        A ``SampleError`` raised by the call itself (the file cannot be opened, its header
        is bad) is every part's error. The results must equal ``tokenize_file(path, part)``
        for each part, byte for byte, errors included; an override only saves the repeated
        opening, header parsing and reading. Any other exception is a bug and stops the run.
        This default loops over ``tokenize_file``.
        """
        results: list[dict[str, np.ndarray] | SampleError] = []
        for part in parts:
            try:
                results.append(self.tokenize_file(path, part))
            except SampleError as exc:
                results.append(exc)
        return results

    # ---- the batched device path (``tokenize --device cuda``, see mmtok.devices) ----
    # A tokenizer with compute-heavy steps that batch well (points: FPS + KNN; images:
    # patchify) splits its work in two: ``read_parts`` decodes on the CPU worker, then
    # ``tokenize_batch`` gets up to ``device_batch_size`` decoded samples of a shard (from
    # any files) and runs the heavy steps on the device. Together they must give exactly
    # ``tokenize_parts``'s arrays, byte for byte, errors included.
    device_batch_size: ClassVar[int] = 64

    @classmethod
    def has_batched_path(cls) -> bool:
        return cls.tokenize_batch is not Tokenizer.tokenize_batch

    def read_parts(self, path: str, parts: Sequence[str | None]) -> list[Any]:
        """The decoded samples of ``path`` (one per part, or its SampleError) that
        ``tokenize_batch`` takes; a SampleError raised here is every part's error."""
        raise NotImplementedError(f"{type(self).__name__} has no batched device path")

    def tokenize_batch(self, decoded: Sequence[Any], device: Any
                       ) -> list[dict[str, np.ndarray] | SampleError]:
        """Arrays for each of ``read_parts``' decoded samples, computed on ``device`` (a
        :class:`mmtok.devices.ComputeDevice`); numpy arrays on the host, as
        ``tokenize_parts`` returns them."""
        raise NotImplementedError(f"{type(self).__name__} has no batched device path")

    # Files that hold several samples (ModelNet HDF5 rows, long audio split into windows)
    # override this; it runs once per file while the sample list is built, so it must be
    # cheap (read headers, not data).
    # Parts may be ``(name, label)`` pairs when the file stores labels (HDF5 rows); then
    # ``part_class_names(path)`` may name the classes.
    # A part's label may also be a class name (a string): a table's label column; the class
    # names are then every name seen, sorted. With ``list_parts_label_column`` the pipeline
    # calls ``list_parts(path, label_column=...)`` with ``--label-column`` (None when not
    # given), so a table's tokenizer can read labels from the column the user names.
    list_parts: Callable[..., list[str] | list[tuple[str, int | str | None]] | None] | None = None
    part_class_names: Callable[[str], list[str] | None] | None = None
    # the most samples a default-sized shard holds: tokenizers of tiny samples (a table row)
    # raise it, so a million rows are not 245 shards of per-shard write overhead
    max_shard_samples: ClassVar[int] = 4096
    list_parts_label_column: ClassVar[bool] = False  # also: statistics_from(paths, label_column=)

    # A file that belongs to another file's samples (a TUDataset's DS_graph_indicator.txt
    # beside its DS_A.txt): True leaves it out of the sample list. Cheap: names, not data.
    is_companion: Callable[[str], bool] | None = None

    # Files whose samples are labelled elements (the pixels of a hyperspectral cube) take
    # their labels from a map given beside the source (``tokenize --label-map PATH``): a
    # source option, outside the hashed config, so that it combines with --config-from (a
    # train map with --stats-from-data, a test map with --config-from).
    takes_label_map: ClassVar[bool] = False
    label_map: str | None = None

    def with_label_map(self, path: str) -> "Tokenizer":
        """A copy of this tokenizer that lists and labels samples by the map ``path``."""
        if not self.takes_label_map:
            raise UsageError(f"modality {self.config.modality!r} takes no --label-map")
        import copy

        bound = copy.copy(self)
        bound.label_map = path
        return bound

    def statistics_from(self, paths: list[str]) -> dict[str, Any]:
        """The fitted fields: config overrides computed from the training data
        (``tokenize --stats-from-data``), e.g. audio's ``{"mean": .., "std": ..}``.

        Must be deterministic (a rerun fits the same values, so the store resumes) and
        return config field names only: the pipeline records them, with the hash of the
        sample list they came from, as the store's ``fitted`` provenance, and
        ``--config-from`` reuses them unchanged for validation and test data. A tokenizer
        without statistics keeps this default, which refuses.
        """
        raise UsageError(f"modality {self.config.modality!r} cannot compute its normalisation "
                         "statistics from the data; pass them with --set instead")


def fits_statistics(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer`` fits statistics from data (overrides ``statistics_from``);
    lets callers refuse ``--stats-from-data`` before any pass over the data."""
    return type(tokenizer).statistics_from is not Tokenizer.statistics_from


@dataclass(frozen=True)
class DemoSpec:
    """What ``mmtok demo`` needs to show a modality end to end.

    ``make_data`` is ``"module:function"``, a function ``(folder, per_class=..., seed=...)``
    that writes a small labelled data set in the modality's folder layout and returns it;
    ``encoder`` and ``encoder_options`` name the tiny random-weight encoder it is embedded with.
    """

    make_data: str
    encoder: str
    encoder_options: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ModalitySpec:
    """Everything modality-specific that code outside ``mmtok/modalities/`` may need.

    Generic code (the CLI, the folder source, embed, tokenizer tuning, the demo, the docs'
    option tables) loops over these entries and never branches on a modality's name.

    - ``config_class``: a frozen dataclass, exactly what the store records; its field
      ``modality`` holds the name.
    - ``tokenizer``: builds the :class:`Tokenizer` from a config (numpy only: tokenize
      workers never import torch).
    - ``projector``: ``"module:function"`` of the function that builds the embed step's
      projector, ``(token_config, encoder, statics) -> (nn.Module, record)``; imported only
      when embedding, since it imports torch.
    - ``inputs``: the token-store arrays that projector reads, in the order it reads them.
    - ``defaults``: config values that differ from the dataclass's for this name (``xray``
      is the image tokenizer with one 16-bit channel).
    - ``presets``: named bundles of options a user picks with ``--set preset=NAME``; needs a
      ``preset`` field in the config (the preset is recorded with the store).
    - ``tiny_options``: the smallest sensible config, for tests and quick tries.
    - ``statistics``: config fields holding normalisation statistics that the projector
      applies at embed time (image: ``mean``, ``std``). ``embed`` replaces them with the
      encoder's own (``Encoder.data_config``) by default, or with given ones, and records
      which it used; empty when tokens are stored normalised.
    - ``like_encoder``: ``"module:function"`` of ``(encoder_name, config) -> overrides``,
      the config options that cut tokens as that encoder's own preprocessing would
      (``tokenize --like-encoder``); empty when the modality has none.
    """

    name: str
    config_class: type
    tokenizer: Callable[[Any], Tokenizer]
    extensions: tuple[str, ...]
    help: str
    projector: str
    inputs: tuple[str, ...] = ("tokens",)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    presets: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    tiny_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    demo: DemoSpec | None = None
    docs: str = ""
    statistics: tuple[str, ...] = ()
    like_encoder: str = ""

    def __post_init__(self) -> None:
        fields = {f.name for f in dataclasses.fields(self.config_class)}
        if "modality" not in fields:
            raise TypeError(f"{self.config_class.__name__} needs a 'modality' field")
        if self.presets and "preset" not in fields:
            raise TypeError(f"modality {self.name!r} has presets but its config has no "
                            "'preset' field to record the chosen one")
        named = set(self.defaults) | set(self.tiny_options) | set(self.statistics)
        named |= {key for preset in self.presets.values() for key in preset}
        unknown = sorted(named - fields)
        if unknown:
            raise TypeError(f"modality {self.name!r} sets unknown config fields {unknown}")


# The old name, for code written against the first registry.
ModalityEntry = ModalitySpec

_REGISTRY: dict[str, ModalitySpec] = {}


def register_modality(spec: ModalitySpec) -> ModalitySpec:
    """Add a modality to the registry; a name registered twice is an error, not an overwrite
    (two packages claiming one name would otherwise silently shadow each other)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"modality {spec.name!r} is registered twice (by "
                         f"{_REGISTRY[spec.name].tokenizer.__module__} and "
                         f"{spec.tokenizer.__module__})")
    _REGISTRY[spec.name] = spec
    return spec


def modality_names() -> list[str]:
    return sorted(_REGISTRY)


def registered_modalities() -> list[ModalitySpec]:
    return [_REGISTRY[name] for name in modality_names()]


def batched_modality_names() -> list[str]:
    """Modalities whose tokenizer has a batched device path (``tokenize --device cuda``)."""
    return [spec.name for spec in registered_modalities()
            if isinstance(spec.tokenizer, type) and spec.tokenizer.has_batched_path()]


def get_modality(name: str) -> ModalitySpec:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UsageError(f"unknown modality {name!r}{hint}; choose one of: "
                         f"{', '.join(modality_names())} (`mmtok modalities` lists them)")
    return _REGISTRY[name]


def make_config(modality: str, **overrides: Any) -> Any:
    """The modality's config: its preset defaults, then ``overrides`` (None means default)."""
    entry = get_modality(modality)
    fields = {f.name for f in dataclasses.fields(entry.config_class)}
    given = {k: v for k, v in overrides.items() if v is not None}
    presets = entry.presets
    if "preset" in given and given["preset"] not in presets:
        raise UsageError(f"modality {modality!r} has no preset {given['preset']!r}; "
                         f"choose one of: {', '.join(sorted(presets))}")
    default_preset = entry.defaults.get("preset", _field_default(entry.config_class, "preset"))
    preset = presets.get(given.get("preset", default_preset), {})
    unknown = sorted(set(given) - fields)
    if unknown:
        raise UsageError(f"modality {modality!r} has no option(s) {', '.join(unknown)}; "
                         f"its options are: {', '.join(sorted(fields - {'modality'}))}")
    return entry.config_class(**{**entry.defaults, **preset, **given, "modality": modality})


def like_encoder_options(modality: str, encoder: str, **options: Any) -> dict[str, Any]:
    """``options`` with the modality's settings for ``encoder``'s own preprocessing filled
    in underneath (options given explicitly win): ``tokenize --like-encoder``."""
    entry = get_modality(modality)
    if not entry.like_encoder:
        raise UsageError(f"modality {modality!r} has no encoder-specific preprocessing; "
                         "--like-encoder applies to image-like modalities")
    import importlib

    module_name, _, function = entry.like_encoder.partition(":")
    derive = getattr(importlib.import_module(module_name), function)
    given = {k: v for k, v in options.items() if v is not None}
    return {**derive(encoder, make_config(modality, **given)), **given}


def _field_default(config_class: type, name: str) -> Any:
    for f in dataclasses.fields(config_class):
        if f.name == name:
            return f.default
    return None


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
            if typing.get_origin(item) is tuple:  # nested: "a|b,c|d" -> (("a", "b"), ("c", "d"))
                inner = typing.get_args(item)[0]
                return tuple(tuple(inner(x) for x in v.split("|")) if v else ()
                             for v in text.split(","))
            return tuple(item(v) for v in text.split(",")) if text else ()
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
    return get_modality(modality).tokenizer(make_config(modality, **overrides))


def config_to_dict(config: Any) -> dict:
    """JSON-ready dict (tuples become lists, nested ones too) of a config dataclass."""
    return {k: _lists(v) for k, v in dataclasses.asdict(config).items()}


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, (tuple, list)) else value
